//! The change-data-capture model and the decoders that produce it.
//!
//! Every source format eda reads — Qlik Replicate JSON, Qlik's Avro records in the Confluent wire
//! format, and Debezium JSON — is turned into one [`CdcEvent`], so the apply plan, the EventBridge
//! publisher and the dead-letter path never care which format a change arrived in.
//!
//! # Layout
//!
//! - this file: the model ([`CdcEvent`], [`TableRef`], [`Operation`], [`KeyColumn`],
//!   [`KafkaCoordinates`]) and [`DecodeContext`], the per-consumer settings every decoder takes.
//! - [`metadata`]: [`MetadataCache`], table structures learned from Qlik metadata (`MD`) messages,
//!   and [`FallbackKeys`], the configured key columns used when no metadata is known.
//! - [`qlik_json`]: the `atMSG` envelope and the unwrapped `{data, beforeData, headers}` form.
//! - [`avro`]: [`AvroDecoder`], a per-schema-id cache of compiled schemas, and [`SchemaSource`].
//! - `avro_schema`, `avro_read`, `avro_logical` (private): the schema compiled once per id, the
//!   binary reader that walks it, and the rendering of decimals and timestamps.
//! - [`debezium`]: Debezium's `before`/`after`/`op`/`source` envelope and its position-derived
//!   change sequence.
//! - [`error`]: one `thiserror` enum per decoder; each says what is wrong and where.
//!
//! # Change sequences
//!
//! The idempotent DynamoDB apply compares change sequences as strings, so every decoder yields a
//! [`SEQUENCE_LEN`]-digit decimal string that sorts in change order: Qlik's own `changeSequence`
//! (14 digits of UTC time `YYYYMMDDhhmmss` then a 21-digit counter), or for Debezium a layout
//! derived from the connector's source position (see [`debezium`]). A REFRESH (full-load) row may
//! carry no sequence; the apply plan gives it a synthetic one (see `apply_plan`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

pub mod avro;
mod avro_logical;
mod avro_read;
mod avro_schema;
pub mod debezium;
pub mod error;
pub mod metadata;
pub mod qlik_json;
pub mod row;
mod scan;
mod simd;

pub use avro::{AvroDecoder, NoSchemaSource, SchemaSource};
pub use debezium::decode_debezium;
pub use error::{AvroError, DebeziumError, KeyError, QlikJsonError, SchemaSourceError};
pub use metadata::{ColumnMetadata, FallbackKeys, MetadataCache, TableMetadata};
pub use qlik_json::{decode_qlik_json, QlikMessage};
pub use row::{Cell, RowError, RowImage, RowWriter};

/// Length of a change sequence: Qlik's `changeSequence` is 35 decimal digits, and the Debezium
/// decoder derives sequences of the same shape so one guard orders both.
pub const SEQUENCE_LEN: usize = 35;

/// Whether `seq` has the shape every ordered comparison relies on: exactly [`SEQUENCE_LEN`] ASCII
/// digits. Two such strings compare (bytewise) in change order; anything else would mis-order.
pub fn is_valid_sequence(seq: &str) -> bool {
    seq.len() == SEQUENCE_LEN && seq.bytes().all(|b| b.is_ascii_digit())
}

/// The source table a change belongs to; it names the DynamoDB partition key prefix and selects
/// the target table and the key columns. The names are shared (`Arc<str>`): every change of a
/// topic carries its table, and a clone is two reference counts, not two allocations.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableRef {
    /// Source schema (or database, for sources without schemas such as MySQL).
    pub schema: Arc<str>,
    /// Source table name.
    pub table: Arc<str>,
}

impl TableRef {
    /// Builds a table reference.
    pub fn new(schema: impl Into<Arc<str>>, table: impl Into<Arc<str>>) -> Self {
        Self {
            schema: schema.into(),
            table: table.into(),
        }
    }

    /// `schema.table`, the form used in item keys, metrics and configuration.
    pub fn qualified(&self) -> String {
        let mut s = String::with_capacity(self.schema.len() + 1 + self.table.len());
        s.push_str(&self.schema);
        s.push('.');
        s.push_str(&self.table);
        s
    }
}

/// What happened to the row; decides whether the apply writes an item or a tombstone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Operation {
    /// A new row captured by CDC.
    Insert,
    /// A changed row captured by CDC.
    Update,
    /// A removed row; applied as a tombstone so an older insert cannot resurrect it.
    Delete,
    /// A row copied during a full load; carries no real change sequence.
    Refresh,
}

impl Operation {
    /// The upper-case name Qlik uses, also written to the item's `_op` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Insert => "INSERT",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Refresh => "REFRESH",
        }
    }
}

/// One primary-key column and its value, in key order; the apply plan joins the values into the
/// item key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyColumn {
    /// Column name as the source spells it; shared with the table's metadata or configuration.
    pub name: Arc<str>,
    /// Column value, as decoded (Qlik JSON sends most values as strings, Avro as typed values).
    pub value: Value,
}

/// Where a change was read from, so an offset is stored only after its write is acknowledged and
/// a dead letter names its origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KafkaCoordinates {
    /// Kafka topic.
    pub topic: String,
    /// Partition within the topic.
    pub partition: i32,
    /// Offset of the message within the partition.
    pub offset: i64,
}

/// One row change, independent of the format it arrived in. Built on the hot path, so it holds
/// plain owned values and nothing that needs a second pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CdcEvent {
    /// Source table of the row.
    pub table: TableRef,
    /// Kind of change.
    pub operation: Operation,
    /// Primary-key columns in key order; never empty for a decoded event.
    pub key: Vec<KeyColumn>,
    /// Row after the change (`None` for a delete that carries no after image).
    pub after: Option<RowImage>,
    /// Row before the change, when the source sends it (updates and deletes).
    pub before: Option<RowImage>,
    /// The [`SEQUENCE_LEN`]-digit change sequence; may be empty for a REFRESH row.
    pub change_sequence: String,
    /// Source commit time as the source spelled it (Qlik: `2023-09-11T03:23:25.000`, UTC;
    /// Debezium: RFC 3339 UTC derived from `source.ts_ms`).
    pub source_timestamp: Option<String>,
    /// Source transaction id, to group the changes of one transaction.
    pub transaction_id: Option<String>,
    /// Source log position (Qlik `streamPosition`, Debezium LSN/binlog position).
    pub stream_position: Option<String>,
    /// Kafka message the change came from; `None` when fed by a Lambda.
    pub kafka: Option<KafkaCoordinates>,
}

impl CdcEvent {
    /// The image that holds the row's current column values: the after image, or for a delete
    /// without one, the before image.
    pub fn row_image(&self) -> Option<&RowImage> {
        self.after.as_ref().or(self.before.as_ref())
    }
}

/// Settings a decoder needs beyond the bytes, fixed per consumer (per topic).
#[derive(Debug, Clone, Copy)]
pub struct DecodeContext<'a> {
    /// The table a message belongs to when the message itself does not say (Qlik's Kafka target
    /// puts one table per topic and, by default, no table name in data messages).
    pub default_table: Option<&'a TableRef>,
    /// Configured key columns, used when no Qlik metadata message has described the table.
    pub fallback_keys: &'a FallbackKeys,
}

/// Finds the key columns of a row: their names from metadata or configuration, their values from
/// the row image. Shared by every decoder so all formats agree on keys.
pub(crate) fn extract_key(
    names: &[Arc<str>],
    image: Option<&RowImage>,
) -> Result<Vec<KeyColumn>, KeyError> {
    let image = image.ok_or(KeyError::NoRowImage)?;
    let mut key = Vec::with_capacity(names.len());
    for name in names {
        match image.get(name) {
            Some(value) => key.push(KeyColumn {
                name: Arc::clone(name),
                value: value.to_value(),
            }),
            None => {
                return Err(KeyError::MissingKeyColumn {
                    column: name.to_string(),
                })
            }
        }
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    #[test]
    fn sequence_shape_is_checked() {
        assert!(is_valid_sequence("20230911032325000000000000000000005"));
        assert!(!is_valid_sequence("2023091103232500000000000000000005"));
        assert!(!is_valid_sequence("2023091103232500000000000000000000x"));
    }

    #[test]
    fn event_round_trips_through_serde() {
        let mut after = Map::new();
        after.insert("ID".into(), Value::from("2"));
        let event = CdcEvent {
            table: TableRef::new("dbo", "kit"),
            operation: Operation::Update,
            key: vec![KeyColumn {
                name: "ID".into(),
                value: Value::from("2"),
            }],
            after: Some(after.into()),
            before: None,
            change_sequence: "20230911032325000000000000000000005".into(),
            source_timestamp: Some("2023-09-11T03:23:25.000".into()),
            transaction_id: Some("00000000000000000000000000060008".into()),
            stream_position: None,
            kafka: Some(KafkaCoordinates {
                topic: "kit".into(),
                partition: 3,
                offset: 42,
            }),
        };
        let json = serde_json::to_string(&event).expect("serializes");
        assert!(json.contains("\"operation\":\"UPDATE\""));
        let back: CdcEvent = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, event);
    }
}
