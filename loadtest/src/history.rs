//! A CDC history as Qlik Replicate would write it to Kafka, with what the table must end up as.
//!
//! Keys of `SALES.CUSTOMERS` go through INSERT, a few UPDATEs and, for some, a DELETE (and
//! sometimes a re-INSERT), with one global, increasing change sequence. The messages are
//! interleaved across keys; then the mess a real pipeline sees is mixed in: exact duplicates
//! right after the original (a producer retry), and older changes of a key delivered again later
//! (a redelivery after a rebalance), always on the key's own partition (Kafka key = item key).
//! Optionally, poison messages (not JSON) that must reach the DLQ, and Qlik's metadata (`MD`)
//! message describing the table (its key columns among them) at the head of each partition, as
//! Qlik sends one before a table's first data message: with it, the daemon needs no
//! `kafka.key_columns` for the table.
//!
//! [`History::expected`] is the source's last image per key (`None`: deleted), which the
//! DynamoDB table must equal once everything is applied, whatever the delivery order.

use eda_core::cdc::{CdcEvent, KeyColumn, Operation, TableRef};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Schema of the generated table.
pub const SCHEMA: &str = "SALES";
/// Name of the generated table.
pub const TABLE: &str = "CUSTOMERS";
/// Its key column (matches `kafka.key_columns` in `config/local.toml`).
pub const KEY_COLUMN: &str = "CUSTOMER_ID";

/// One Kafka record to produce.
#[derive(Debug, Clone)]
pub struct Record {
    /// Kafka key (the item key, so a key's changes share a partition); `None` for poison.
    pub key: Option<String>,
    /// The partition to produce to, when the key must not decide it (a metadata message goes
    /// to every partition); `None`: the key's partition.
    pub partition: Option<i32>,
    /// Message value.
    pub value: Vec<u8>,
    /// Whether this is an original change (not a duplicate, redelivery or poison).
    pub original: bool,
}

impl Record {
    /// A record produced to `partition`, whatever its (absent) key would say.
    pub fn on_partition(partition: i32, value: Vec<u8>) -> Self {
        Self {
            key: None,
            partition: Some(partition),
            value,
            original: true,
        }
    }
}

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct HistorySpec {
    /// Random seed: the same seed gives the same history.
    pub seed: u64,
    /// Distinct keys.
    pub keys: usize,
    /// Changes per key, at least 1 (the INSERT).
    pub changes_per_key: usize,
    /// Probability (0..1) that a change is immediately sent twice.
    pub duplicate_rate: f64,
    /// Probability (0..1) that an older change of the key is sent again after a change.
    pub redelivery_rate: f64,
    /// Probability (0..1) that a key's last change is a DELETE.
    pub delete_rate: f64,
    /// Poison messages mixed in.
    pub poison: usize,
    /// Padding bytes in a NOTES column, to size messages (0: none).
    pub padding: usize,
    /// The first 14 digits of every change sequence (Qlik's `YYYYMMDDhhmmss`): a later run
    /// against the same table must use a later base, or the sequence guard rightly ignores it.
    pub sequence_base: u64,
    /// How messages are encoded.
    pub encoding: Encoding,
    /// Qlik metadata (`MD`) messages describing the table: one at the head of each of the first
    /// this many partitions (give the topic's partition count), before any data message, so a
    /// consumer learns the key columns from the stream (0: none; the consumer then needs
    /// `kafka.key_columns`). JSON only: the Avro decoder reads no metadata messages.
    pub metadata_partitions: i32,
}

/// The wire format of generated messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// Qlik Replicate JSON (the `atMSG` envelope).
    #[default]
    Json,
    /// Qlik Replicate Avro in the Confluent wire format, under this registered schema id.
    Avro(u32),
}

impl Default for HistorySpec {
    fn default() -> Self {
        Self {
            seed: 7,
            keys: 300,
            changes_per_key: 5,
            duplicate_rate: 0.05,
            redelivery_rate: 0.05,
            delete_rate: 0.2,
            poison: 0,
            padding: 0,
            sequence_base: 20260101000000,
            encoding: Encoding::Json,
            metadata_partitions: 0,
        }
    }
}

impl HistorySpec {
    /// A sequence base from the current UTC time, for runs against a table that already holds
    /// earlier runs' changes.
    pub fn base_now() -> u64 {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // Days to a civil date (Howard Hinnant's algorithm), then YYYYMMDDhhmmss.
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let (h, m, s) = (rem / 3_600, rem % 3_600 / 60, rem % 60);
        format!("{year:04}{month:02}{day:02}{h:02}{m:02}{s:02}")
            .parse()
            .unwrap_or(20260101000000)
    }
}

/// A generated history.
#[derive(Debug, Clone)]
pub struct History {
    /// Records in produce order.
    pub records: Vec<Record>,
    /// Key value -> last row image, or `None` when the key's last change is a DELETE.
    pub expected: BTreeMap<String, Option<Map<String, Value>>>,
    /// Distinct changes (one EventBridge event each).
    pub changes: usize,
}

/// The item key (`pk`) the daemon writes for a key value.
pub fn pk(key: &str) -> String {
    format!("{SCHEMA}.{TABLE}#{key}")
}

/// A row of the generated table with key `key` and `notes` in its `NOTES` column (the column
/// tests make as large as they need).
pub fn row_with_notes(key: &str, notes: &str) -> Map<String, Value> {
    let mut row = Map::new();
    row.insert(KEY_COLUMN.into(), key.into());
    row.insert("NAME".into(), "Ada".into());
    row.insert("NOTES".into(), notes.into());
    row
}

/// A change of the generated table's key `key` at `seq`, without images: what its event id and
/// its applier are computed from.
pub fn change_of(key: &str, operation: Operation, seq: &str) -> CdcEvent {
    CdcEvent {
        table: TableRef::new(SCHEMA, TABLE),
        operation,
        key: vec![KeyColumn {
            name: KEY_COLUMN.into(),
            value: json!(key),
        }],
        after: None,
        before: None,
        change_sequence: seq.into(),
        source_timestamp: None,
        transaction_id: None,
        stream_position: None,
        kafka: None,
        trace: None,
    }
}

/// A change sequence in Qlik's 35-digit layout, with the default base.
pub fn sequence(n: u64) -> String {
    sequence_at(HistorySpec::default().sequence_base, n)
}

/// A change sequence: 14 digits of `base`, then the 21-digit counter `n`.
pub fn sequence_at(base: u64, n: u64) -> String {
    format!("{base:014}{n:021}")
}

/// A Qlik JSON change message (the `atMSG` envelope naming its table).
pub fn qlik_message(
    operation: &str,
    seq: &str,
    data: &Map<String, Value>,
    before: Option<&Map<String, Value>>,
) -> Vec<u8> {
    let message = json!({
        "magic": "atMSG",
        "type": "DT",
        "headers": null,
        "messageSchemaId": null,
        "messageSchema": null,
        "message": {
            "schema": SCHEMA,
            "table": TABLE,
            "data": data,
            "beforeData": before,
            "headers": {
                "operation": operation,
                "changeSequence": seq,
                "timestamp": "2026-01-01T00:00:00.000",
                "streamPosition": format!("00000000.{}", &seq[20..]),
                "transactionId": format!("{:032}", &seq[20..]),
                "changeMask": "01",
                "columnMask": "1f",
                "transactionEventCounter": 1,
                "transactionLastEvent": true
            }
        }
    });
    serde_json::to_vec(&message).expect("JSON serializes")
}

/// The Qlik JSON metadata (`MD`) message of the generated table at `table_version`: its columns
/// in ordinal order, the key column first with `primaryKeyPosition` 1.
pub fn qlik_metadata_message(table_version: i64) -> Vec<u8> {
    let columns = [
        (KEY_COLUMN, "STRING", 1),
        ("NAME", "STRING", 0),
        ("EMAIL", "STRING", 0),
        ("VERSION", "STRING", 0),
        ("BALANCE", "NUMERIC", 0),
        ("NOTES", "STRING", 0),
    ];
    let table_columns: Map<String, Value> = columns
        .iter()
        .enumerate()
        .map(|(i, (name, kind, pk))| {
            let column = json!({
                "ordinal": i + 1,
                "type": kind,
                "length": 0,
                "precision": 0,
                "scale": 0,
                "primaryKeyPosition": pk
            });
            (name.to_string(), column)
        })
        .collect();
    let message = json!({
        "magic": "atMSG",
        "type": "MD",
        "headers": null,
        "messageSchemaId": null,
        "messageSchema": null,
        "message": {
            "schemaId": format!("{SCHEMA}.{TABLE}.v{table_version}"),
            "lineage": {
                "server": "eda-loadtest",
                "task": "history",
                "schema": SCHEMA,
                "table": TABLE,
                "tableVersion": table_version,
                "timestamp": "2026-01-01T00:00:00.000"
            },
            "tableStructure": { "tableColumns": table_columns },
            "dataSchema": null
        }
    });
    serde_json::to_vec(&message).expect("JSON serializes")
}

impl History {
    /// Generates a history per `spec`.
    pub fn generate(spec: &HistorySpec) -> Self {
        let mut rng = fastrand::Rng::with_seed(spec.seed);
        let per_key = spec.changes_per_key.max(1);
        // The order in which keys take their next change: each key appears `per_key` times.
        let mut turns: Vec<usize> = (0..spec.keys)
            .flat_map(|k| std::iter::repeat_n(k, per_key))
            .collect();
        rng.shuffle(&mut turns);
        let mut done = vec![0usize; spec.keys];
        let mut images: Vec<Option<Map<String, Value>>> = vec![None; spec.keys];
        let mut sent: Vec<Vec<Vec<u8>>> = vec![Vec::new(); spec.keys];
        let mut records = Vec::with_capacity(turns.len() * 2);
        if spec.encoding == Encoding::Json {
            for partition in 0..spec.metadata_partitions.max(0) {
                records.push(Record {
                    key: Some(format!("{SCHEMA}.{TABLE}")),
                    partition: Some(partition),
                    value: qlik_metadata_message(1),
                    original: false,
                });
            }
        }
        let mut counter = 0u64;
        let padding = "x".repeat(spec.padding);
        let deletes: Vec<bool> = (0..spec.keys)
            .map(|_| rng.f64() < spec.delete_rate)
            .collect();
        for k in turns {
            let key = format!("C{k:06}");
            let step = done[k];
            done[k] += 1;
            counter += 1;
            let seq = sequence_at(spec.sequence_base, counter);
            let last = step + 1 == per_key;
            let (operation, data, before) = match (&images[k], last && deletes[k]) {
                (None, _) => ("INSERT", row(&key, step, &padding), None),
                (Some(current), true) => ("DELETE", current.clone(), Some(current.clone())),
                (Some(current), false) => {
                    ("UPDATE", row(&key, step, &padding), Some(current.clone()))
                }
            };
            let value = match spec.encoding {
                Encoding::Json => qlik_message(operation, &seq, &data, before.as_ref()),
                Encoding::Avro(id) => {
                    crate::avro::qlik_avro_message(id, operation, &seq, &data, before.as_ref())
                }
            };
            images[k] = if operation == "DELETE" {
                None
            } else {
                Some(data)
            };
            records.push(Record {
                key: Some(pk(&key)),
                partition: None,
                value: value.clone(),
                original: true,
            });
            if rng.f64() < spec.duplicate_rate {
                records.push(Record {
                    key: Some(pk(&key)),
                    partition: None,
                    value: value.clone(),
                    original: false,
                });
            }
            sent[k].push(value);
            if rng.f64() < spec.redelivery_rate {
                let older = &sent[k][rng.usize(0..sent[k].len())];
                records.push(Record {
                    key: Some(pk(&key)),
                    partition: None,
                    value: older.clone(),
                    original: false,
                });
            }
        }
        let first_data = records.iter().take_while(|r| r.partition.is_some()).count();
        for i in 0..spec.poison {
            let at = rng.usize(first_data..=records.len());
            records.insert(
                at,
                Record {
                    key: None,
                    partition: None,
                    value: format!("{{\"magic\":\"atMSG\",\"type\":\"DT\",\"message\": poison {i}")
                        .into_bytes(),
                    original: false,
                },
            );
        }
        let expected = (0..spec.keys)
            .map(|k| (format!("C{k:06}"), images[k].clone()))
            .collect();
        Self {
            records,
            expected,
            changes: spec.keys * per_key,
        }
    }
}

fn row(key: &str, step: usize, padding: &str) -> Map<String, Value> {
    let mut row = Map::new();
    row.insert(KEY_COLUMN.into(), json!(key));
    row.insert("NAME".into(), json!(format!("Customer {key}")));
    row.insert(
        "EMAIL".into(),
        json!(format!("{}@example.com", key.to_lowercase())),
    );
    row.insert("VERSION".into(), json!(step.to_string()));
    row.insert(
        "BALANCE".into(),
        json!(format!("{}.{:02}", step * 10, step)),
    );
    if !padding.is_empty() {
        row.insert("NOTES".into(), json!(padding));
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_ends_as_its_last_change_and_deleted_keys_are_absent() {
        let spec = HistorySpec {
            keys: 50,
            changes_per_key: 4,
            delete_rate: 0.5,
            ..HistorySpec::default()
        };
        let history = History::generate(&spec);
        assert_eq!(history.expected.len(), 50);
        let deleted = history.expected.values().filter(|v| v.is_none()).count();
        assert!(deleted > 5 && deleted < 45, "{deleted} of 50 deleted");
        for (key, image) in &history.expected {
            if let Some(image) = image {
                assert_eq!(image[KEY_COLUMN], json!(key));
                assert_eq!(image["VERSION"], json!("3"));
            }
        }
        assert_eq!(history.records.iter().filter(|r| r.original).count(), 200);
    }

    #[test]
    fn a_later_base_sorts_after_an_earlier_one() {
        let now = HistorySpec::base_now();
        assert!(
            now > 20_260_101_000_000 && now < 99_991_231_235_959,
            "{now}"
        );
        assert!(sequence_at(now, 1) > sequence(999_999));
        assert_eq!(sequence_at(now, 1).len(), 35);
    }

    #[test]
    fn metadata_messages_head_each_partition_and_name_the_key() {
        let spec = HistorySpec {
            keys: 20,
            poison: 5,
            metadata_partitions: 3,
            ..HistorySpec::default()
        };
        let history = History::generate(&spec);
        let heads: Vec<Option<i32>> = history.records[..4].iter().map(|r| r.partition).collect();
        assert_eq!(heads, [Some(0), Some(1), Some(2), None]);
        let md: Value = serde_json::from_slice(&history.records[0].value).expect("JSON");
        assert_eq!(md["type"], "MD");
        assert_eq!(md["message"]["lineage"]["tableVersion"], 1);
        let columns = &md["message"]["tableStructure"]["tableColumns"];
        assert_eq!(columns[KEY_COLUMN]["primaryKeyPosition"], 1);
        assert_eq!(columns["NAME"]["primaryKeyPosition"], 0);
        assert!(
            history.records[3..].iter().all(|r| r.partition.is_none()),
            "poison and data come after every metadata message"
        );
        // The daemon's decoder learns the key from it, and keys the data with it.
        let none = eda_core::cdc::FallbackKeys::none();
        let ctx = eda_core::cdc::DecodeContext {
            default_table: None,
            fallback_keys: &none,
        };
        let mut cache = eda_core::cdc::MetadataCache::new();
        match eda_core::cdc::decode_qlik_json(&history.records[0].value, &ctx, &cache, None) {
            Ok(eda_core::cdc::QlikMessage::Metadata(structure)) => {
                assert_eq!(structure.key_columns, [std::sync::Arc::from(KEY_COLUMN)]);
                cache.insert(structure);
            }
            other => panic!("a metadata message: {other:?}"),
        }
        let data = history.records.iter().find(|r| r.original).expect("data");
        assert!(matches!(
            eda_core::cdc::decode_qlik_json(&data.value, &ctx, &cache, None),
            Ok(eda_core::cdc::QlikMessage::Change(_))
        ));
        assert_eq!(history.changes, 20 * spec.changes_per_key);
    }

    #[test]
    fn the_same_seed_gives_the_same_history() {
        let spec = HistorySpec::default();
        let a = History::generate(&spec);
        let b = History::generate(&spec);
        assert_eq!(a.records.len(), b.records.len());
        assert!(a
            .records
            .iter()
            .zip(&b.records)
            .all(|(x, y)| x.value == y.value));
    }
}
