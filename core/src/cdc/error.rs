//! Typed decode errors, one enum per decoder.
//!
//! A message that fails to decode goes to the dead-letter queue with this error's text, so each
//! variant names what is wrong and where (a field path, or a byte offset in binary input). None of
//! them is retryable: the same bytes will fail the same way, except
//! [`AvroError::SchemaSource`] when the registry was merely unreachable.

use thiserror::Error;

/// Why the key columns of a row could not be found.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// Neither a Qlik metadata message nor the configuration names the key of this table.
    #[error(
        "no key columns known for table {table}: no metadata message seen and no fallback configured"
    )]
    UnknownKey {
        /// `schema.table`.
        table: String,
    },
    /// The message has neither an after nor a before image to read key values from.
    #[error("the change carries no row image to read key values from")]
    NoRowImage,
    /// A key column is absent from the row image.
    #[error("key column {column:?} is missing from the row image")]
    MissingKeyColumn {
        /// The missing column.
        column: String,
    },
}

/// Why a Qlik Replicate JSON message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QlikJsonError {
    /// The bytes are not JSON (or not UTF-8): what is wrong, and where.
    #[error("invalid Qlik JSON at line {line} column {column}: {message}")]
    Syntax {
        /// What is wrong, e.g. `control character in a string`.
        message: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// `magic` is present but is not `atMSG`.
    #[error("magic: expected \"atMSG\", found {found:?}")]
    BadMagic {
        /// The magic found.
        found: String,
    },
    /// The envelope `type` is neither `DT` nor `MD`.
    #[error("type: expected \"DT\" or \"MD\", found {found:?}")]
    BadMessageType {
        /// The type found.
        found: String,
    },
    /// A required field is absent or null.
    #[error("{path}: required field is missing")]
    Missing {
        /// Field path, e.g. `message.headers.operation`.
        path: &'static str,
    },
    /// A field has the wrong JSON type or an unusable value.
    #[error("{path}: {problem}")]
    Invalid {
        /// Field path.
        path: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The table of a data message is unknown: the message does not name it, and neither do its
    /// Kafka headers nor `kafka.topic_tables` for its topic.
    #[error(
        "the data message names no schema/table, and neither do its Kafka headers \
         (kafka.table_header) nor kafka.topic_tables for its topic"
    )]
    NoTable,
    /// The key of the row could not be determined.
    #[error("key of {table}: {source}")]
    Key {
        /// `schema.table`.
        table: String,
        /// Why.
        source: KeyError,
    },
}

/// Why a schema could not be obtained from a [`super::SchemaSource`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SchemaSourceError {
    /// The source does not know this id.
    #[error("schema id {id} is unknown")]
    NotFound {
        /// The id asked for.
        id: u32,
    },
    /// The source could not answer (registry unreachable); worth retrying later.
    #[error("schema id {id} could not be fetched: {message}")]
    Unavailable {
        /// The id asked for.
        id: u32,
        /// Why.
        message: String,
    },
}

/// Why a Confluent-framed Avro message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AvroError {
    /// Fewer than the 5 bytes of the Confluent frame header.
    #[error("message is {len} bytes, shorter than the 5-byte Confluent header")]
    TooShort {
        /// Length of the message.
        len: usize,
    },
    /// The first byte is not the Confluent magic byte 0.
    #[error("byte 0: expected Confluent magic byte 0, found {found}")]
    BadMagic {
        /// The byte found.
        found: u8,
    },
    /// The schema id is not cached and the source could not supply it.
    #[error("schema id {id}: {source}")]
    SchemaSource {
        /// The schema id from the frame.
        id: u32,
        /// What the source said.
        source: SchemaSourceError,
    },
    /// The schema text is not a valid Avro schema.
    #[error("schema id {id} is not a valid Avro schema: {message}")]
    SchemaParse {
        /// The schema id.
        id: u32,
        /// What the parser said.
        message: String,
    },
    /// The schema is valid Avro but not a Qlik data record (e.g. no `headers` record).
    #[error("schema id {id} is not a Qlik data record: {problem}")]
    SchemaShape {
        /// The schema id.
        id: u32,
        /// What is missing.
        problem: String,
    },
    /// The Avro body does not match the schema.
    #[error("schema id {id}, byte offset {offset}, at {path}: {problem}")]
    Body {
        /// The schema id.
        id: u32,
        /// Offset in the whole message (frame header included) where decoding failed.
        offset: usize,
        /// Field path being decoded.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// The record decoded but a header has an unusable value.
    #[error("schema id {id}, {path}: {problem}")]
    Header {
        /// The schema id.
        id: u32,
        /// Field path.
        path: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The table of the record is unknown: the record does not name it, and neither do its
    /// Kafka headers nor `kafka.topic_tables` for its topic.
    #[error(
        "the record names no schema/table, and neither do its Kafka headers \
         (kafka.table_header) nor kafka.topic_tables for its topic"
    )]
    NoTable,
    /// The key of the row could not be determined.
    #[error("key of {table}: {source}")]
    Key {
        /// `schema.table`.
        table: String,
        /// Why.
        source: KeyError,
    },
}

impl AvroError {
    /// Whether waiting and retrying may help: only when the schema source was unavailable.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            AvroError::SchemaSource {
                source: SchemaSourceError::Unavailable { .. },
                ..
            }
        )
    }
}

/// Why a Debezium message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DebeziumError {
    /// The bytes are not JSON of the expected shape.
    #[error("invalid Debezium JSON at line {line} column {column}: {message}")]
    Syntax {
        /// What serde_json reported.
        message: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A required field is absent or null.
    #[error("{path}: required field is missing")]
    Missing {
        /// Field path, e.g. `payload.source.table`.
        path: &'static str,
    },
    /// A field has an unusable value.
    #[error("{path}: {problem}")]
    Invalid {
        /// Field path.
        path: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The source position needed to derive a change sequence is absent for this connector.
    #[error(
        "connector {connector:?}: no source position to derive a change sequence from ({needed})"
    )]
    NoPosition {
        /// `source.connector`.
        connector: String,
        /// Which fields were expected.
        needed: &'static str,
    },
    /// The key of the row could not be determined.
    #[error("key of {table}: {source}")]
    Key {
        /// `schema.table`.
        table: String,
        /// Why.
        source: KeyError,
    },
}

impl From<&serde_json::Error> for DebeziumError {
    fn from(e: &serde_json::Error) -> Self {
        // serde's text ends with its own "at line .. column ..", which the variant prints already.
        let mut message = e.to_string();
        if let Some(at) = message.rfind(" at line ") {
            message.truncate(at);
        }
        DebeziumError::Syntax {
            message,
            line: e.line(),
            column: e.column(),
        }
    }
}
