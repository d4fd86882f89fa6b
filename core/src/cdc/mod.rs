//! The change-data-capture model and the decoders that produce it.
//!
//! Every source format eda reads — Qlik Replicate JSON, Qlik's Avro records in the Confluent wire
//! format, and Debezium JSON — is turned into one [`CdcEvent`], so the apply plan, the EventBridge
//! publisher and the dead-letter path never care which format a change arrived in.
//!
//! # Layout
//!
//! Grouped by what each part reads:
//!
//! - this file: the model ([`CdcEvent`], [`TableRef`], [`Operation`], [`KeyColumn`],
//!   [`KafkaCoordinates`]) and [`DecodeContext`], the per-consumer settings every decoder takes.
//! - [`row`]: [`RowImage`], a row kept as its JSON text with an index of its columns (`row/`:
//!   the image, `writer` for decoders with typed values, `index` for JSON text).
//! - [`metadata`]: [`MetadataCache`], table structures learned from Qlik metadata (`MD`) messages,
//!   and [`FallbackKeys`], the configured key columns used when no metadata is known.
//! - [`qlik`]: Qlik Replicate's JSON — the `atMSG` envelope and the unwrapped
//!   `{data, beforeData, headers}` form (`qlik/read.rs`: the one-pass reader of the message).
//! - [`avro`]: [`AvroDecoder`], a per-schema-id cache of compiled schemas, and [`SchemaSource`]
//!   (`avro/`: `schema` compiled once per id, `read` the binary walker, `logical` the rendering of
//!   decimals and timestamps).
//! - [`debezium`]: Debezium's `before`/`after`/`op`/`source` envelope and its position-derived
//!   change sequence.
//! - `json` (private): the strict one-pass JSON scanner and its SSE2 helpers, shared by the Qlik
//!   reader and the row indexer.
//! - [`error`]: one `thiserror` enum per decoder; each says what is wrong and where.
//!
//! # Change sequences
//!
//! The idempotent DynamoDB apply compares change sequences as strings, so every decoder yields a
//! [`SEQUENCE_LEN`]-digit decimal string that sorts in change order: Qlik's own `changeSequence`
//! (14 digits of UTC time `YYYYMMDDhhmmss` then a 21-digit counter), or for Debezium a layout
//! derived from the connector's source position (see [`debezium`]). A REFRESH (full-load) row may
//! carry no sequence; the apply plan gives it a synthetic one (see `apply_plan`).

use crate::trace::MessageTrace;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

pub mod avro;
pub mod debezium;
pub mod error;
mod json;
pub mod metadata;
pub mod qlik;
pub mod row;

pub use avro::{AvroDecoder, NoSchemaSource, SchemaSource};
pub use debezium::decode_debezium;
pub use error::{AvroError, DebeziumError, KeyError, QlikJsonError, SchemaSourceError};
pub use metadata::{ColumnMetadata, FallbackKeys, MetadataCache, TableMetadata};
pub use qlik::{decode_qlik_json, QlikMessage};
pub use row::{Cell, RowError, RowImage, RowWriter};

/// Length of a change sequence: Qlik's `changeSequence` is 35 decimal digits, and the Debezium
/// decoder derives sequences of the same shape so one guard orders both.
pub const SEQUENCE_LEN: usize = 35;

/// Whether `seq` has the shape every ordered comparison relies on: exactly [`SEQUENCE_LEN`] ASCII
/// digits. Two such strings compare (bytewise) in change order; anything else would mis-order.
pub fn is_valid_sequence(seq: &str) -> bool {
    packed_sequence(seq).is_some()
}

const ONES: u64 = 0x0101_0101_0101_0101;

/// Whether the eight bytes of `w` are all ASCII digits, 0x30..=0x39: each high nibble is 3, and
/// stays 3 when 6 is added (a low nibble above 9 carries into its own byte's high nibble, never
/// further).
#[inline(always)]
fn eight_digits(w: u64) -> bool {
    let high = ONES * 0xf0;
    w & high == ONES * 0x30 && w.wrapping_add(ONES * 6) & high == ONES * 0x30
}

/// Bytes of a [`packed_sequence`].
pub const PACKED_SEQUENCE_LEN: usize = SEQUENCE_LEN.div_ceil(2);

/// The digits of a valid sequence ([`is_valid_sequence`]) two to a byte, high nibble first (the
/// last byte's low nibble is 0); `None` for anything else. Eight digits are checked and packed at
/// a time in a `u64`.
pub fn packed_sequence(seq: &str) -> Option<[u8; PACKED_SEQUENCE_LEN]> {
    let bytes: &[u8; SEQUENCE_LEN] = seq.as_bytes().try_into().ok()?;
    let (words, tail) = bytes.split_at(32);
    let mut packed = [0u8; PACKED_SEQUENCE_LEN];
    for (out, word) in packed.chunks_exact_mut(4).zip(words.chunks_exact(8)) {
        let w = u64::from_le_bytes(word.try_into().ok()?);
        if !eight_digits(w) {
            return None;
        }
        // Byte k of `pairs` is digit k shifted up a nibble joined with digit k + 1; the even
        // bytes are the packed pairs, gathered into the low four.
        let digits = w & (ONES * 0x0f);
        let pairs = (digits << 4 | digits >> 8) & 0x00ff_00ff_00ff_00ff;
        let pairs = (pairs | pairs >> 8) & 0x0000_ffff_0000_ffff;
        let pairs = (pairs | pairs >> 16) as u32;
        out.copy_from_slice(&pairs.to_le_bytes());
    }
    let &[a, b, c] = tail else { return None };
    if ![a, b, c].iter().all(u8::is_ascii_digit) {
        return None;
    }
    packed[16] = (a - b'0') << 4 | (b - b'0');
    packed[17] = (c - b'0') << 4;
    Some(packed)
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
    /// Kafka topic, shared (`Arc<str>`): every message of a partition carries it, and its
    /// changes, their dead-letter sources and routed copies clone it, each clone a reference
    /// count rather than an allocation.
    pub topic: Arc<str>,
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
    /// The trace the change belongs to (its message's trace headers, or the item's `_trace`),
    /// shared by the changes of one message; `None` when nothing traced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<Arc<MessageTrace>>,
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
        assert_eq!(
            packed_sequence("20230911032325000000000000000000005").map(hex::encode),
            Some("202309110323250000000000000000000050".to_owned())
        );
    }

    /// The byte-at-a-time definition [`packed_sequence`] must agree with.
    fn packed_plainly(seq: &str) -> Option<Vec<u8>> {
        let digits = seq.as_bytes();
        if digits.len() != SEQUENCE_LEN || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let nibbles: Vec<u8> = digits.iter().map(|d| d - b'0').chain([0]).collect();
        Some(nibbles.chunks(2).map(|p| p[0] << 4 | p[1]).collect())
    }

    proptest::proptest! {
        // Characters next to the digits ('/' and ':', '0' + 16, non-ASCII ones, an Arabic-Indic
        // digit) in any of the places, and lengths around 35: the word-at-a-time checks must miss
        // none of them.
        #[test]
        fn packed_sequence_agrees_with_the_plain_definition(
            mut digits in proptest::collection::vec(proptest::char::range('0', '9'), 33..=37),
            odd in proptest::option::of((0usize..37, proptest::sample::select(
                vec!['/', ':', '@', '\0', ' ', '?', 'F', 'é', '\u{663}'],
            ))),
        ) {
            if let Some((at, c)) = odd {
                if let Some(slot) = digits.get_mut(at) {
                    *slot = c;
                }
            }
            let seq: String = digits.into_iter().collect();
            proptest::prop_assert_eq!(
                packed_sequence(&seq).map(|p| p.to_vec()),
                packed_plainly(&seq)
            );
            proptest::prop_assert_eq!(is_valid_sequence(&seq), packed_plainly(&seq).is_some());
        }
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
            trace: None,
        };
        let json = serde_json::to_string(&event).expect("serializes");
        assert!(json.contains("\"operation\":\"UPDATE\""));
        let back: CdcEvent = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, event);
    }
}
