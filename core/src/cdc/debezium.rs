//! Debezium change events (JSON converter), with or without the `{"schema":..,"payload":..}`
//! wrapper.
//!
//! `op` maps `c`→Insert, `u`→Update, `d`→Delete and `r` (snapshot read)→Refresh; `t` (truncate)
//! and `m` (message) are rejected. The table is `source.schema` (or `source.db` for MySQL, which
//! has no schemas; MongoDB's `collection` stands for the table) and `source.table`.
//!
//! # Change sequence
//!
//! Debezium has no `changeSequence`, so one is derived from the connector's source position in the
//! same 35-digit shape as Qlik's, zero-padded so string order is position order:
//!
//! | connector | layout (digits) |
//! | --- | --- |
//! | `postgresql` | `lsn` (20) · zeros (15) |
//! | `mysql` | binlog file number (10) · `pos` (15) · `row` (10) |
//! | `sqlserver` | `change_lsn` as one integer (25) · `event_serial_no` (10) |
//! | `oracle` | `scn` (20) · `ssn` (15) |
//! | `mongodb` | `ts_ms` (20) · `ord` (15) |
//! | other, with a numeric `lsn` | as `postgresql` |
//!
//! Snapshot reads (`r`) carry the position the snapshot was taken at, so they sort below every
//! change streamed afterwards, which is exactly the REFRESH rule the apply plan wants. Sequences of
//! different connectors are not comparable with each other, nor with Qlik's; that is fine because
//! one source table is fed by one connector.
//!
//! # Key columns
//!
//! Debezium puts the key in the Kafka message key, so the decoder takes those bytes when the caller
//! has them (a JSON object, wrapped or not); otherwise the configured fallback names the key
//! columns and their values come from the row image.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::DebeziumError;
use super::metadata::table_key;
use super::qlik::Scalar;
use super::row::RowImage;
use super::{CdcEvent, DecodeContext, KafkaCoordinates, KeyColumn, Operation, TableRef};

/// Decodes one Debezium message value. `key` is the Kafka message key, when available. A Kafka
/// tombstone (empty value, or a null payload) that follows a delete yields `Ok(None)`: there is
/// nothing to apply, only an offset to acknowledge.
pub fn decode_debezium(
    value: &[u8],
    key: Option<&[u8]>,
    ctx: &DecodeContext<'_>,
    origin: Option<KafkaCoordinates>,
) -> Result<Option<CdcEvent>, DebeziumError> {
    if value.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let top: Option<Top<'_>> =
        serde_json::from_slice(value).map_err(|e| DebeziumError::from(&e))?;
    let Some(top) = top else { return Ok(None) };
    let wrapped = top.schema.is_some() || top.payload.is_some();
    let p = match (wrapped, top.payload, top.inline) {
        (true, Some(p), _) => p,
        (true, None, _) => return Ok(None),
        (false, _, inline) => inline,
    };
    let op = match p.op.as_deref() {
        Some("c") => Operation::Insert,
        Some("u") => Operation::Update,
        Some("d") => Operation::Delete,
        Some("r") => Operation::Refresh,
        Some(other) => {
            return Err(DebeziumError::Invalid {
                path: "payload.op",
                problem: format!("unsupported op {other:?} (expected c, u, d or r)"),
            })
        }
        None => return Err(DebeziumError::Missing { path: "payload.op" }),
    };
    let source = p.source.ok_or(DebeziumError::Missing {
        path: "payload.source",
    })?;
    let table = match (
        source.schema.as_ref().or(source.db.as_ref()),
        source.table.as_ref().or(source.collection.as_ref()),
    ) {
        (Some(s), Some(t)) => TableRef::new(s.as_ref(), t.as_ref()),
        _ => ctx.default_table.cloned().ok_or(DebeziumError::Missing {
            path: "payload.source.table",
        })?,
    };
    let (change_sequence, stream_position) = derive_sequence(&source)?;
    let after = p.after.map(RowImage::from);
    let before = p.before.map(RowImage::from);
    let image = after.as_ref().or(before.as_ref());
    let key = match key {
        Some(k) if !k.iter().all(u8::is_ascii_whitespace) => key_from_message_key(k)?,
        _ => table_key(&table, None, ctx.fallback_keys, None, image).map_err(|source| {
            DebeziumError::Key {
                table: table.qualified(),
                source,
            }
        })?,
    };
    let ts_ms = match (&source.ts_ms, &p.ts_ms) {
        (Some(Scalar::I64(ms)), _) | (None | Some(Scalar::Null), Some(Scalar::I64(ms))) => {
            Some(*ms)
        }
        (Some(Scalar::U64(ms)), _) | (None | Some(Scalar::Null), Some(Scalar::U64(ms))) => {
            i64::try_from(*ms).ok()
        }
        _ => None,
    };
    let source_timestamp = ts_ms
        .and_then(DateTime::from_timestamp_millis)
        .map(|d| d.to_rfc3339_opts(SecondsFormat::Millis, true));
    let transaction_id = scalar_text(source.tx_id.as_ref()).or_else(|| {
        p.transaction
            .as_ref()
            .and_then(|t| scalar_text(t.id.as_ref()))
    });
    Ok(Some(CdcEvent {
        table,
        operation: op,
        key,
        after,
        before,
        change_sequence,
        source_timestamp,
        transaction_id,
        stream_position: Some(stream_position),
        kafka: origin,
        trace: None,
    }))
}

/// Key columns from the Kafka message key (`{"id":1}` or `{"schema":..,"payload":{"id":1}}`).
fn key_from_message_key(k: &[u8]) -> Result<Vec<KeyColumn>, DebeziumError> {
    let v: Value = serde_json::from_slice(k).map_err(|e| DebeziumError::Invalid {
        path: "key",
        problem: e.to_string(),
    })?;
    let obj = match v {
        Value::Object(mut m) if m.contains_key("payload") && m.contains_key("schema") => {
            m.remove("payload").unwrap_or(Value::Null)
        }
        other => other,
    };
    match obj {
        Value::Object(m) if !m.is_empty() => Ok(m
            .into_iter()
            .map(|(name, value)| KeyColumn {
                name: name.into(),
                value,
            })
            .collect()),
        _ => Err(DebeziumError::Invalid {
            path: "key",
            problem: "expected a non-empty JSON object of key columns".into(),
        }),
    }
}

fn scalar_text(s: Option<&Scalar<'_>>) -> Option<String> {
    match s? {
        Scalar::Str(s) if !s.is_empty() => Some(s.clone().into_owned()),
        Scalar::I64(n) => Some(n.to_string()),
        Scalar::U64(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A non-negative integer from a JSON number or a decimal string.
fn scalar_u128(s: Option<&Scalar<'_>>, path: &'static str) -> Result<Option<u128>, DebeziumError> {
    let bad = |what: String| DebeziumError::Invalid {
        path,
        problem: format!("expected a non-negative integer, found {what}"),
    };
    match s {
        None | Some(Scalar::Null) => Ok(None),
        Some(Scalar::U64(n)) => Ok(Some(u128::from(*n))),
        Some(Scalar::I64(n)) => u128::try_from(*n).map(Some).map_err(|_| bad(n.to_string())),
        Some(Scalar::Str(t)) => t
            .parse::<u128>()
            .map(Some)
            .map_err(|_| bad(format!("{t:?}"))),
        Some(other) => Err(bad(format!("{other:?}"))),
    }
}

/// Zero-pads `v` to `width` digits, or fails if it does not fit (it would mis-order).
fn pad(v: u128, width: usize, path: &'static str) -> Result<String, DebeziumError> {
    let s = format!("{v:0width$}");
    if s.len() > width {
        return Err(DebeziumError::Invalid {
            path,
            problem: format!("{v} does not fit the {width} digits of the change sequence"),
        });
    }
    Ok(s)
}

/// The 35-digit sequence and a readable position, per the table in the module doc.
fn derive_sequence(src: &Source<'_>) -> Result<(String, String), DebeziumError> {
    let connector = src.connector.as_deref().unwrap_or("");
    let no_position = |needed| DebeziumError::NoPosition {
        connector: connector.to_owned(),
        needed,
    };
    match connector {
        "mysql" => {
            let file = src.file.as_deref().ok_or(no_position("file, pos"))?;
            let file_no = file
                .rsplit('.')
                .next()
                .and_then(|n| n.parse::<u128>().ok())
                .ok_or_else(|| DebeziumError::Invalid {
                    path: "payload.source.file",
                    problem: format!("binlog file {file:?} has no numeric suffix"),
                })?;
            let pos = scalar_u128(src.pos.as_ref(), "payload.source.pos")?
                .ok_or(no_position("file, pos"))?;
            let row = scalar_u128(src.row.as_ref(), "payload.source.row")?.unwrap_or(0);
            let seq = pad(file_no, 10, "payload.source.file")?
                + &pad(pos, 15, "payload.source.pos")?
                + &pad(row, 10, "payload.source.row")?;
            Ok((seq, format!("{file}:{pos}:{row}")))
        }
        "sqlserver" => {
            let lsn = src.change_lsn.as_deref().ok_or(no_position("change_lsn"))?;
            let mut value: u128 = 0;
            for part in lsn.split(':') {
                let n = u128::from_str_radix(part, 16).map_err(|_| DebeziumError::Invalid {
                    path: "payload.source.change_lsn",
                    problem: format!("expected hex parts separated by ':', found {lsn:?}"),
                })?;
                let bits = 4 * u32::try_from(part.len()).unwrap_or(u32::MAX);
                value = value
                    .checked_shl(bits)
                    .filter(|_| bits < 128)
                    .map(|v| v | n)
                    .ok_or_else(|| DebeziumError::Invalid {
                        path: "payload.source.change_lsn",
                        problem: format!("{lsn:?} is too long"),
                    })?;
            }
            let serial = scalar_u128(
                src.event_serial_no.as_ref(),
                "payload.source.event_serial_no",
            )?
            .unwrap_or(0);
            let seq = pad(value, 25, "payload.source.change_lsn")?
                + &pad(serial, 10, "payload.source.event_serial_no")?;
            Ok((seq, lsn.to_owned()))
        }
        "oracle" => {
            let scn =
                scalar_u128(src.scn.as_ref(), "payload.source.scn")?.ok_or(no_position("scn"))?;
            let ssn = scalar_u128(src.ssn.as_ref(), "payload.source.ssn")?.unwrap_or(0);
            let seq = pad(scn, 20, "payload.source.scn")? + &pad(ssn, 15, "payload.source.ssn")?;
            Ok((seq, scn.to_string()))
        }
        "mongodb" => {
            let ts = scalar_u128(src.ts_ms.as_ref(), "payload.source.ts_ms")?
                .ok_or(no_position("ts_ms, ord"))?;
            let ord = scalar_u128(src.ord.as_ref(), "payload.source.ord")?.unwrap_or(0);
            let seq = pad(ts, 20, "payload.source.ts_ms")? + &pad(ord, 15, "payload.source.ord")?;
            Ok((seq, format!("{ts}:{ord}")))
        }
        _ => {
            let lsn =
                scalar_u128(src.lsn.as_ref(), "payload.source.lsn")?.ok_or(no_position("lsn"))?;
            let seq = pad(lsn, 20, "payload.source.lsn")? + "000000000000000";
            Ok((seq, lsn.to_string()))
        }
    }
}

/// Either shape at the top: the wrapper's `schema`/`payload`, or the payload's own fields.
#[derive(Deserialize)]
struct Top<'a> {
    #[serde(default)]
    schema: Option<IgnoredAny>,
    #[serde(borrow, default)]
    payload: Option<Payload<'a>>,
    #[serde(borrow, flatten)]
    inline: Payload<'a>,
}

#[derive(Deserialize, Default)]
struct Payload<'a> {
    #[serde(default)]
    before: Option<Map<String, Value>>,
    #[serde(default)]
    after: Option<Map<String, Value>>,
    #[serde(borrow, default)]
    op: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    source: Option<Source<'a>>,
    #[serde(borrow, default)]
    ts_ms: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    transaction: Option<Transaction<'a>>,
}

#[derive(Deserialize)]
struct Transaction<'a> {
    #[serde(borrow, default)]
    id: Option<Scalar<'a>>,
}

#[derive(Deserialize, Default)]
struct Source<'a> {
    #[serde(borrow, default)]
    connector: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    db: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    schema: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    table: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    collection: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    ts_ms: Option<Scalar<'a>>,
    #[serde(rename = "txId", borrow, default)]
    tx_id: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    lsn: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    file: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pos: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    row: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    change_lsn: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    event_serial_no: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    scn: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    ssn: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    ord: Option<Scalar<'a>>,
}
