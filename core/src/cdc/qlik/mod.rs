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
//! The message is read in one pass (`read.rs`) by the strict scanner of `json/scan.rs`: header
//! strings borrow from the input when they contain no escapes, and the row images are indexed
//! (and checked) as they are met, each keeping a copy of its own JSON text ([`RowImage`]).
//! A metadata message decodes to the [`TableMetadata`] it describes, which the caller records (in
//! a [`MetadataCache`], and in the daemon first in the durable store); data messages take their
//! key columns from the cache, or from [`super::FallbackKeys`].
//!
//! Where the table comes from: Qlik's Kafka target does not put the table name in a data message
//! by default (one topic per table is the usual layout), so the decoder uses a `schema`/`table`
//! pair in the message when present (added by a Replicate transformation or newer versions), else
//! the consumer's [`super::DecodeContext::default_table`].

use std::borrow::Cow;
use std::collections::BTreeMap;

mod read;

pub(crate) use read::Scalar;
use read::{image_field, read_top, string_field, Body, Fail, Headers, Seen, Top};

use crate::cdc::error::QlikJsonError;
use crate::cdc::json::scan::{kind_at, line_column, JsonStr, ScanError, Scanner};
use crate::cdc::metadata::{table_key, ColumnMetadata, MetadataCache, TableMetadata};
use crate::cdc::row::{RowError, RowImage};
use crate::cdc::{
    is_valid_sequence, CdcEvent, DecodeContext, KafkaCoordinates, Operation, TableRef,
};

/// What one Qlik JSON message turned out to be.
// `Change` is nearly every message; boxing it to shrink the rare `Metadata` would cost an
// allocation per change on the hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum QlikMessage {
    /// A row change, ready for the apply plan.
    Change(CdcEvent),
    /// A metadata message: the structure of a table at one version, read at `origin`. Record it
    /// (nothing is applied); data messages that follow need it for their key.
    Metadata(TableMetadata),
}

/// Decodes one Qlik Replicate JSON message (either shape). Data messages read their key columns
/// from `metadata`; a metadata message is returned for the caller to record, the cache is left
/// as it is. `origin` is stamped on the event (or the structure) as-is.
pub fn decode_qlik_json(
    bytes: &[u8],
    ctx: &DecodeContext<'_>,
    metadata: &MetadataCache,
    origin: Option<KafkaCoordinates>,
) -> Result<QlikMessage, QlikJsonError> {
    // UTF-8 checked once for the whole message (fast for ASCII); then one pass of the strict
    // scanner reads the envelope and indexes the row images.
    let text = crate::cdc::json::simd::utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let (line, column) = line_column(bytes, at);
        QlikJsonError::Syntax {
            message: format!("invalid UTF-8 (byte {at})"),
            line,
            column,
        }
    })?;
    // The message is read into `top` in place: its parts are large, and returning them through
    // each reader cost a copy per level.
    let mut top = Top::default();
    read_top(text, &mut top).map_err(|fail| fail.into_error(text))?;
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
                .as_mut()
                .ok_or(QlikJsonError::Missing { path: "message" })?;
            match kind.as_ref() {
                "DT" => {
                    let headers = body.headers.as_ref().ok_or(QlikJsonError::Missing {
                        path: "message.headers",
                    })?;
                    data_message(
                        &mut body.parts,
                        headers,
                        "message.headers",
                        ctx,
                        metadata,
                        origin,
                    )
                }
                "MD" => metadata_message(std::mem::take(body), origin),
                other => Err(QlikJsonError::BadMessageType {
                    found: other.to_owned(),
                }),
            }
        }
        None => {
            if let Some(found) = top.headers_not_object {
                return Err(invalid(
                    "headers",
                    format!("expected an object, found {found}"),
                ));
            }
            let headers = top
                .headers
                .as_ref()
                .ok_or(QlikJsonError::Missing { path: "headers" })?;
            data_message(&mut top.parts, headers, "headers", ctx, metadata, origin)
        }
    }
}

/// The pieces of a data message, whichever shape carried them.
#[derive(Default)]
struct DataParts<'a> {
    data: Option<RowImage>,
    before: Option<RowImage>,
    schema: Option<Cow<'a, str>>,
    table: Option<Cow<'a, str>>,
}

/// Where the [`DataParts`] fields sit in one shape, for errors.
struct PartPaths {
    data: &'static str,
    before: &'static str,
    schema: &'static str,
    table: &'static str,
}

const UNWRAPPED: PartPaths = PartPaths {
    data: "data",
    before: "beforeData",
    schema: "schema",
    table: "table",
};

const ENVELOPED: PartPaths = PartPaths {
    data: "message.data",
    before: "message.beforeData",
    schema: "message.schema",
    table: "message.table",
};

impl<'a> DataParts<'a> {
    /// Reads the member `name` if it is one of the parts (answering whether it was); the parts
    /// take bits 8 to 11 of `seen`.
    fn read(
        &mut self,
        scan: &mut Scanner<'a>,
        key: &JsonStr,
        name: &str,
        seen: &mut Seen,
        paths: &PartPaths,
    ) -> Result<bool, Fail> {
        match name {
            "data" => {
                seen.first(8, key, name)?;
                self.data = image_field(scan, paths.data)?;
            }
            "beforeData" => {
                seen.first(9, key, name)?;
                self.before = image_field(scan, paths.before)?;
            }
            "schema" => {
                seen.first(10, key, name)?;
                self.schema = string_field(scan, paths.schema)?;
            }
            "table" => {
                seen.first(11, key, name)?;
                self.table = string_field(scan, paths.table)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

fn data_message(
    parts: &mut DataParts<'_>,
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

    let (after, before) = (parts.data.take(), parts.before.take());
    let table = match (&parts.schema, &parts.table) {
        (Some(schema), Some(table)) => TableRef::new(&**schema, &**table),
        _ => ctx.default_table.cloned().ok_or(QlikJsonError::NoTable)?,
    };
    let image = after.as_ref().or(before.as_ref());
    let key = table_key(
        &table,
        Some(metadata),
        ctx.fallback_keys,
        origin.as_ref(),
        image,
    )
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
        trace: None,
    }))
}

fn metadata_message(
    body: Body<'_>,
    origin: Option<KafkaCoordinates>,
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
    let table = TableRef::new(schema, table_name);
    let table_version = lineage.table_version.unwrap_or(0);
    Ok(QlikMessage::Metadata(
        TableMetadata::new(table, table_version, columns).read_at(origin),
    ))
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
