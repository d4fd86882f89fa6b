//! Qlik Replicate's JSON messages, as its Kafka target writes them.
//!
//! Two shapes are accepted:
//!
//! - the Replicate envelope: `{"magic":"atMSG","type":"DT"|"MD","headers":null,
//!   "messageSchemaId":null,"messageSchema":null,"message":{...}}`, where a `DT` message holds
//!   `{"data":{..},"beforeData":{..},"headers":{..}}` and an `MD` message holds
//!   `{"schemaId":..,"lineage":{"schema","table","tableVersion",..},"tableStructure":
//!   {"tableColumns":{"COL":{"ordinal","type","primaryKeyPosition",..}}},"dataSchema":..}`;
//! - the unwrapped data message `{"data":{..},"beforeData":{..},"headers":{..}}`.
//!
//! The bytes are parsed once into borrowed structs (header strings borrow from the input when they
//! contain no escapes); only the row images are built as owned `serde_json` maps, because they are
//! what the event carries. Metadata messages update the [`MetadataCache`]; data messages take
//! their key columns from it, or from [`super::FallbackKeys`].
//!
//! Where the table comes from: Qlik's Kafka target does not put the table name in a data message
//! by default (one topic per table is the usual layout), so the decoder uses a `schema`/`table`
//! pair in the message when present (added by a Replicate transformation or newer versions), else
//! the consumer's [`super::DecodeContext::default_table`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::QlikJsonError;
use super::metadata::{key_names, ColumnMetadata, MetadataCache, TableMetadata};
use super::row::RowImage;
use super::{
    extract_key, is_valid_sequence, CdcEvent, DecodeContext, KafkaCoordinates, Operation, TableRef,
};

/// What one Qlik JSON message turned out to be.
// `Change` is nearly every message; boxing it to shrink the rare `Metadata` would cost an
// allocation per change on the hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum QlikMessage {
    /// A row change, ready for the apply plan.
    Change(CdcEvent),
    /// A metadata message; the cache now knows this table's structure (unless it already knew a
    /// newer version, in which case `updated` is false). Acknowledge it; nothing is written.
    Metadata {
        /// Table described.
        table: TableRef,
        /// Its `tableVersion`.
        table_version: i64,
        /// Whether the cache changed.
        updated: bool,
    },
}

/// Decodes one Qlik Replicate JSON message (either shape). Metadata messages update `metadata`;
/// data messages read key columns from it. `origin` is stamped on the event as-is.
pub fn decode_qlik_json(
    bytes: &[u8],
    ctx: &DecodeContext<'_>,
    metadata: &mut MetadataCache,
    origin: Option<KafkaCoordinates>,
) -> Result<QlikMessage, QlikJsonError> {
    // UTF-8 checked once for the whole message (fast for ASCII), so the parser need not check
    // every string again; invalid bytes go through `from_slice` for its positioned error.
    let parsed = match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str::<Top<'_>>(text),
        Err(_) => serde_json::from_slice::<Top<'_>>(bytes),
    };
    let top = parsed.map_err(|e| QlikJsonError::from(&e))?;
    match top.magic {
        Some(magic) => {
            if magic != "atMSG" {
                return Err(QlikJsonError::BadMagic {
                    found: magic.into_owned(),
                });
            }
            let kind = top.kind.ok_or(QlikJsonError::Missing { path: "type" })?;
            let body = top
                .message
                .ok_or(QlikJsonError::Missing { path: "message" })?;
            match kind.as_ref() {
                "DT" => {
                    let headers = body.headers.ok_or(QlikJsonError::Missing {
                        path: "message.headers",
                    })?;
                    let parts = DataParts {
                        data: body.data,
                        before: body.before_data,
                        schema: body.schema,
                        table: body.table,
                    };
                    data_message(parts, &headers, "message.headers", ctx, metadata, origin)
                }
                "MD" => metadata_message(body, metadata),
                other => Err(QlikJsonError::BadMessageType {
                    found: other.to_owned(),
                }),
            }
        }
        None => {
            let headers = top
                .headers
                .ok_or(QlikJsonError::Missing { path: "headers" })?;
            let parts = DataParts {
                data: top.data,
                before: top.before_data,
                schema: top.schema,
                table: top.table,
            };
            data_message(parts, &headers, "headers", ctx, metadata, origin)
        }
    }
}

/// The pieces of a data message, whichever shape carried them.
struct DataParts<'a> {
    data: Option<&'a RawValue>,
    before: Option<&'a RawValue>,
    schema: Option<Cow<'a, str>>,
    table: Option<Cow<'a, str>>,
}

fn data_message(
    parts: DataParts<'_>,
    headers: &Headers<'_>,
    hpath: &'static str,
    ctx: &DecodeContext<'_>,
    metadata: &MetadataCache,
    origin: Option<KafkaCoordinates>,
) -> Result<QlikMessage, QlikJsonError> {
    let at = |field: &'static str| -> &'static str {
        // Paths are static so errors stay cheap to build; both shapes are spelled out.
        match (hpath, field) {
            ("headers", "operation") => "headers.operation",
            ("headers", "changeSequence") => "headers.changeSequence",
            ("headers", "timestamp") => "headers.timestamp",
            ("headers", "streamPosition") => "headers.streamPosition",
            ("headers", "transactionId") => "headers.transactionId",
            ("headers", "transactionEventCounter") => "headers.transactionEventCounter",
            ("headers", "transactionLastEvent") => "headers.transactionLastEvent",
            ("headers", "changeMask") => "headers.changeMask",
            ("headers", "columnMask") => "headers.columnMask",
            (_, "changeMask") => "message.headers.changeMask",
            (_, "columnMask") => "message.headers.columnMask",
            (_, "operation") => "message.headers.operation",
            (_, "changeSequence") => "message.headers.changeSequence",
            (_, "timestamp") => "message.headers.timestamp",
            (_, "streamPosition") => "message.headers.streamPosition",
            (_, "transactionId") => "message.headers.transactionId",
            (_, "transactionEventCounter") => "message.headers.transactionEventCounter",
            _ => "message.headers.transactionLastEvent",
        }
    };
    let op_text = match &headers.operation {
        Some(Scalar::Str(s)) => s.as_ref(),
        None | Some(Scalar::Null) => {
            return Err(QlikJsonError::Missing {
                path: at("operation"),
            })
        }
        Some(other) => return Err(invalid(at("operation"), other.expected("a string"))),
    };
    let operation = parse_operation(op_text)
        .ok_or_else(|| invalid(at("operation"), format!("unknown operation {op_text:?}")))?;

    let change_sequence = match optional_string(&headers.change_sequence, at("changeSequence"))? {
        Some(seq) if is_valid_sequence(seq) => seq.to_owned(),
        Some("") | None if operation == Operation::Refresh => String::new(),
        Some(seq) => {
            return Err(invalid(
                at("changeSequence"),
                format!("expected 35 decimal digits, found {seq:?}"),
            ))
        }
        None => {
            return Err(QlikJsonError::Missing {
                path: at("changeSequence"),
            })
        }
    };
    let source_timestamp = match &headers.timestamp {
        None | Some(Scalar::Null) => None,
        Some(Scalar::Str(s)) if s.is_empty() => None,
        Some(Scalar::Str(s)) => Some(s.clone().into_owned()),
        Some(Scalar::I64(n)) => Some(n.to_string()),
        Some(Scalar::U64(n)) => Some(n.to_string()),
        Some(other) => return Err(invalid(at("timestamp"), other.expected("a string"))),
    };
    let stream_position = optional_string(&headers.stream_position, at("streamPosition"))?
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let transaction_id = optional_string(&headers.transaction_id, at("transactionId"))?
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    match &headers.transaction_event_counter {
        None | Some(Scalar::Null | Scalar::I64(_) | Scalar::U64(_)) => {}
        Some(Scalar::Str(s)) if s.parse::<u64>().is_ok() => {}
        Some(other) => {
            return Err(invalid(
                at("transactionEventCounter"),
                other.expected("an integer"),
            ))
        }
    }
    match &headers.transaction_last_event {
        None | Some(Scalar::Null | Scalar::Bool) => {}
        Some(Scalar::Str(s)) if s == "true" || s == "false" => {}
        Some(other) => {
            return Err(invalid(
                at("transactionLastEvent"),
                other.expected("a boolean"),
            ))
        }
    }

    for (mask, field) in [
        (&headers.change_mask, "changeMask"),
        (&headers.column_mask, "columnMask"),
    ] {
        if let Some(m) = optional_string(mask, at(field))? {
            if !m.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(
                    at(field),
                    format!("expected hex digits, found {m:?}"),
                ));
            }
        }
    }

    let image = |raw: Option<&RawValue>, field: &'static str| {
        raw.map(RowImage::from_raw)
            .transpose()
            .map_err(|e| invalid(image_path(hpath, field), e.to_string()))
    };
    let after = image(parts.data, "data")?;
    let before = image(parts.before, "beforeData")?;
    let table = match (parts.schema, parts.table) {
        (Some(schema), Some(table)) => TableRef {
            schema: schema.into_owned(),
            table: table.into_owned(),
        },
        _ => ctx.default_table.cloned().ok_or(QlikJsonError::NoTable)?,
    };
    let key = key_names(&table, Some(metadata), ctx.fallback_keys)
        .and_then(|names| extract_key(names, after.as_ref().or(before.as_ref())))
        .map_err(|source| QlikJsonError::Key {
            table: table.qualified(),
            source,
        })?;
    Ok(QlikMessage::Change(CdcEvent {
        table,
        operation,
        key,
        after,
        before,
        change_sequence,
        source_timestamp,
        transaction_id,
        stream_position,
        kafka: origin,
    }))
}

/// Where a row image sits in either shape, for errors.
fn image_path(hpath: &'static str, field: &'static str) -> &'static str {
    match (hpath, field) {
        ("headers", "data") => "data",
        ("headers", _) => "beforeData",
        (_, "data") => "message.data",
        _ => "message.beforeData",
    }
}

fn metadata_message(
    body: Body<'_>,
    metadata: &mut MetadataCache,
) -> Result<QlikMessage, QlikJsonError> {
    let lineage = body.lineage.ok_or(QlikJsonError::Missing {
        path: "message.lineage",
    })?;
    let schema = lineage.schema.ok_or(QlikJsonError::Missing {
        path: "message.lineage.schema",
    })?;
    let table_name = lineage.table.ok_or(QlikJsonError::Missing {
        path: "message.lineage.table",
    })?;
    let structure = body.table_structure.ok_or(QlikJsonError::Missing {
        path: "message.tableStructure",
    })?;
    let columns = structure
        .table_columns
        .into_iter()
        .map(|(name, c)| ColumnMetadata {
            name,
            ordinal: c.ordinal.unwrap_or(0),
            data_type: c.data_type.unwrap_or_default(),
            primary_key_position: c.primary_key_position.unwrap_or(0),
        })
        .collect();
    let table = TableRef {
        schema,
        table: table_name,
    };
    let table_version = lineage.table_version.unwrap_or(0);
    let updated = metadata.insert(TableMetadata::new(table.clone(), table_version, columns));
    Ok(QlikMessage::Metadata {
        table,
        table_version,
        updated,
    })
}

/// Qlik's operation names; REFRESH is a full-load row.
pub(crate) fn parse_operation(s: &str) -> Option<Operation> {
    match s {
        "INSERT" => Some(Operation::Insert),
        "UPDATE" => Some(Operation::Update),
        "DELETE" => Some(Operation::Delete),
        "REFRESH" => Some(Operation::Refresh),
        _ => None,
    }
}

fn invalid(path: &'static str, problem: String) -> QlikJsonError {
    QlikJsonError::Invalid { path, problem }
}

fn optional_string<'s>(
    v: &'s Option<Scalar<'_>>,
    path: &'static str,
) -> Result<Option<&'s str>, QlikJsonError> {
    match v {
        None | Some(Scalar::Null) => Ok(None),
        Some(Scalar::Str(s)) => Ok(Some(s.as_ref())),
        Some(other) => Err(invalid(path, other.expected("a string"))),
    }
}

/// The top level of either shape; fields of the other shape are simply absent.
#[derive(Deserialize)]
struct Top<'a> {
    #[serde(borrow, default)]
    magic: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    /// Envelope headers (free-form, usually null) or, unwrapped, the change headers.
    #[serde(borrow, default)]
    headers: Option<Headers<'a>>,
    #[serde(borrow, default)]
    message: Option<Body<'a>>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(rename = "beforeData", borrow, default)]
    before_data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    schema: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    table: Option<Cow<'a, str>>,
}

/// The enveloped message: data-message and metadata-message fields side by side, so one pass
/// reads either whatever order the keys come in.
#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(rename = "beforeData", borrow, default)]
    before_data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    headers: Option<Headers<'a>>,
    #[serde(borrow, default)]
    schema: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    table: Option<Cow<'a, str>>,
    #[serde(default)]
    lineage: Option<Lineage>,
    #[serde(rename = "tableStructure", default)]
    table_structure: Option<TableStructure>,
}

#[derive(Deserialize)]
struct Lineage {
    #[serde(default)]
    schema: Option<String>,
    #[serde(default)]
    table: Option<String>,
    #[serde(rename = "tableVersion", default)]
    table_version: Option<i64>,
}

#[derive(Deserialize)]
struct TableStructure {
    #[serde(rename = "tableColumns", default)]
    table_columns: BTreeMap<String, ColumnDef>,
}

#[derive(Deserialize)]
struct ColumnDef {
    #[serde(default)]
    ordinal: Option<i64>,
    #[serde(rename = "type", default)]
    data_type: Option<String>,
    #[serde(rename = "primaryKeyPosition", default)]
    primary_key_position: Option<i64>,
}

/// Change headers, every field lenient so type problems become errors with a field path.
#[derive(Deserialize, Default)]
struct Headers<'a> {
    #[serde(borrow, default)]
    operation: Option<Scalar<'a>>,
    #[serde(rename = "changeSequence", borrow, default)]
    change_sequence: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    timestamp: Option<Scalar<'a>>,
    #[serde(rename = "streamPosition", borrow, default)]
    stream_position: Option<Scalar<'a>>,
    #[serde(rename = "transactionId", borrow, default)]
    transaction_id: Option<Scalar<'a>>,
    #[serde(rename = "transactionEventCounter", borrow, default)]
    transaction_event_counter: Option<Scalar<'a>>,
    #[serde(rename = "transactionLastEvent", borrow, default)]
    transaction_last_event: Option<Scalar<'a>>,
    #[serde(rename = "changeMask", borrow, default)]
    change_mask: Option<Scalar<'a>>,
    #[serde(rename = "columnMask", borrow, default)]
    column_mask: Option<Scalar<'a>>,
}

/// Any JSON value, kept only as far as header checks need (nested values are skipped). Shared
/// with the Debezium decoder, whose source fields are equally loosely typed.
#[derive(Debug)]
pub(crate) enum Scalar<'a> {
    Str(Cow<'a, str>),
    I64(i64),
    U64(u64),
    /// A float; its value is never needed, only its kind for error messages.
    Float,
    /// A boolean; only its kind matters.
    Bool,
    Null,
    Nested,
}

impl Scalar<'_> {
    fn expected(&self, what: &str) -> String {
        let found = match self {
            Scalar::Str(_) => "a string",
            Scalar::I64(_) | Scalar::U64(_) | Scalar::Float => "a number",
            Scalar::Bool => "a boolean",
            Scalar::Null => "null",
            Scalar::Nested => "an object or array",
        };
        format!("expected {what}, found {found}")
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Scalar<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::I64(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar::U64(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                let _ = v;
                Ok(Scalar::Float)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                let _ = v;
                Ok(Scalar::Bool)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
                Scalar::deserialize(d)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Nested)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Nested)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}
