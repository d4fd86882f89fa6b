//! What a run must leave behind, checked against the history that was produced: the CDC table
//! holds exactly the source's last image of every key (a deleted key gone or tombstoned), and
//! every change's event id was put at least once.
//!
//! The benchmark reads the table through the AWS SDK (`Scan`) and the event ids from the sink's
//! `/_sink/events`, so this module knows neither: it compares plain data.

use crate::history::{pk, History};
use aws_sdk_dynamodb::types::AttributeValue;
use eda_core::cdc::{decode_qlik_json, DecodeContext, FallbackKeys, MetadataCache, QlikMessage};
use eda_core::change_event::event_id;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

/// An item of the table, by attribute.
pub type Item = HashMap<String, AttributeValue>;

/// The last image of each key of a history (`None`: its last change deleted it).
pub type Expected = BTreeMap<String, Option<Map<String, Value>>>;

/// Every item of `table`, by `pk`, read with consistent `Scan` pages.
pub async fn scan_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> anyhow::Result<BTreeMap<String, Item>> {
    let mut items = BTreeMap::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|err| {
                anyhow::anyhow!(
                    "scanning {table}: {}",
                    aws_sdk_dynamodb::error::DisplayErrorContext(err)
                )
            })?;
        for item in page.items() {
            if let Some(AttributeValue::S(pk)) = item.get("pk") {
                items.insert(pk.clone(), item.clone());
            }
        }
        match page.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => return Ok(items),
        }
    }
}

/// How `items` differs from the last images of `history`: see [`mismatches`].
pub fn table_mismatches(items: &BTreeMap<String, Item>, history: &History) -> Vec<String> {
    mismatches(items, &history.expected)
}

/// How `items` differs from `expected`, one line a difference: a key missing, one deleted at
/// the source but live in the table, a column with another value (an item's `_zcols` unpacked
/// first, see [`whole`]), an item the source never had. Empty: exact.
pub fn mismatches(items: &BTreeMap<String, Item>, expected: &Expected) -> Vec<String> {
    let mut mismatches = Vec::new();
    for (key, image) in expected {
        let live = items
            .get(&pk(key))
            .filter(|i| !matches!(i.get("_deleted"), Some(AttributeValue::Bool(true))));
        match (image, live) {
            (None, None) => {}
            (None, Some(_)) => {
                mismatches.push(format!("{key}: deleted at the source, live in the table"))
            }
            (Some(_), None) => mismatches.push(format!("{key}: missing")),
            (Some(image), Some(item)) => {
                let item = whole(item);
                for (column, value) in image {
                    let stored = match item.get(column) {
                        Some(AttributeValue::S(s)) => Value::String(s.clone()),
                        Some(other) => Value::String(format!("{other:?}")),
                        None => Value::Null,
                    };
                    if &stored != value {
                        mismatches.push(format!("{key}.{column}: {stored} != {value}"));
                    }
                }
            }
        }
    }
    let known: HashSet<String> = expected.keys().map(|k| pk(k)).collect();
    mismatches.extend(
        items
            .keys()
            .filter(|pk| !known.contains(*pk))
            .map(|pk| format!("{pk}: not in the source")),
    );
    mismatches
}

/// `item` with the columns its `_zcols` holds (a row over DynamoDB's item limit, stored with
/// its largest columns compressed) put back as attributes: the row as the source had it.
pub fn whole(item: &Item) -> Item {
    use eda_actors::aws::{from_sdk, to_sdk};
    let plain: eda_core::apply_plan::Item =
        item.iter().map(|(k, v)| (k.clone(), from_sdk(v))).collect();
    let unpacked = eda_core::apply_plan::unpacked(&plain).expect("_zcols unpacks");
    unpacked
        .iter()
        .map(|(k, v)| (k.clone(), to_sdk(v)))
        .collect()
}

/// Every event id `history` owes (one per distinct change), with the change it belongs to
/// (`table key sequence operation`), decoded with `fallback` key columns and the history's own
/// metadata messages, as the daemon derives them.
pub fn owed_event_ids(history: &History, fallback: &FallbackKeys) -> BTreeMap<String, String> {
    let ctx = DecodeContext {
        default_table: None,
        fallback_keys: fallback,
    };
    let mut metadata = MetadataCache::new();
    let mut owed = BTreeMap::new();
    for record in &history.records {
        let change = match decode_qlik_json(&record.value, &ctx, &metadata, None) {
            Ok(QlikMessage::Change(change)) => change,
            Ok(QlikMessage::Metadata(structure)) => {
                metadata.insert(structure);
                continue;
            }
            Err(_) => continue,
        };
        let key: Vec<String> = change.key.iter().map(|k| k.value.to_string()).collect();
        owed.insert(
            event_id(&change).to_string(),
            format!(
                "{} {} {} {}",
                change.table.qualified(),
                key.join(","),
                change.change_sequence,
                change.operation.as_str()
            ),
        );
    }
    owed
}

/// The changes of `owed` whose event id is not in `seen`, described, the first `most` of them,
/// and how many there are in all.
pub fn missing_events(
    owed: &BTreeMap<String, String>,
    seen: &HashSet<String>,
    most: usize,
) -> (usize, Vec<String>) {
    let missing: Vec<(&String, &String)> =
        owed.iter().filter(|(id, _)| !seen.contains(*id)).collect();
    let shown = missing
        .iter()
        .take(most)
        .map(|(id, change)| format!("{change} ({id})"))
        .collect();
    (missing.len(), shown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::HistorySpec;

    #[test]
    fn a_table_applied_from_its_history_matches_and_a_stale_one_does_not() {
        let history = History::generate(&HistorySpec {
            keys: 20,
            delete_rate: 0.3,
            ..HistorySpec::default()
        });
        let mut items: BTreeMap<String, Item> = history
            .expected
            .iter()
            .map(|(key, image)| {
                let item: Item = match image {
                    Some(image) => image
                        .iter()
                        .map(|(c, v)| (c.clone(), AttributeValue::S(v.as_str().unwrap().into())))
                        .collect(),
                    None => [("_deleted".to_string(), AttributeValue::Bool(true))].into(),
                };
                (pk(key), item)
            })
            .collect();
        assert_eq!(table_mismatches(&items, &history), Vec::<String>::new());
        let live = history
            .expected
            .iter()
            .find(|(_, i)| i.is_some())
            .unwrap()
            .0;
        items
            .get_mut(&pk(live))
            .unwrap()
            .insert("VERSION".into(), AttributeValue::S("0".into()));
        items.insert(pk("ghost"), Item::new());
        let mismatches = table_mismatches(&items, &history);
        assert_eq!(mismatches.len(), 2, "{mismatches:?}");
        assert!(mismatches[0].starts_with(&format!("{live}.VERSION")));
    }

    #[test]
    fn every_distinct_change_owes_one_event() {
        let history = History::generate(&HistorySpec {
            keys: 30,
            duplicate_rate: 0.3,
            redelivery_rate: 0.3,
            ..HistorySpec::default()
        });
        let fallback = FallbackKeys::none().with_table(
            &eda_core::cdc::TableRef::new("SALES", "CUSTOMERS"),
            vec!["CUSTOMER_ID".to_string()],
        );
        let owed = owed_event_ids(&history, &fallback);
        assert_eq!(owed.len(), history.changes);
        let mut seen: HashSet<String> = owed.keys().cloned().collect();
        let gone = owed.keys().next().unwrap().clone();
        seen.remove(&gone);
        let (count, shown) = missing_events(&owed, &seen, 5);
        assert_eq!(count, 1);
        assert!(shown[0].ends_with(&format!("({gone})")));
    }

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn image(pairs: &[(&str, &str)]) -> Option<Map<String, Value>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                .collect(),
        )
    }

    #[test]
    fn equal_tables_have_no_mismatch_and_a_tombstone_counts_as_deleted() {
        let expected: Expected = [
            ("1".to_string(), image(&[("NAME", "ada")])),
            ("2".to_string(), None),
        ]
        .into();
        let items = [
            (pk("1"), item(&[("NAME", AttributeValue::S("ada".into()))])),
            (pk("2"), item(&[("_deleted", AttributeValue::Bool(true))])),
        ]
        .into();
        assert_eq!(mismatches(&items, &expected), Vec::<String>::new());
    }

    #[test]
    fn every_kind_of_difference_is_named() {
        let expected: Expected = [
            ("1".to_string(), image(&[("NAME", "ada")])),
            ("2".to_string(), None),
            ("3".to_string(), image(&[("NAME", "bob")])),
        ]
        .into();
        let items = [
            (pk("1"), item(&[("NAME", AttributeValue::S("eve".into()))])),
            (pk("2"), item(&[])),
            (pk("9"), item(&[])),
        ]
        .into();
        assert_eq!(
            mismatches(&items, &expected),
            [
                "1.NAME: \"eve\" != \"ada\"",
                "2: deleted at the source, live in the table",
                "3: missing",
                "SALES.CUSTOMERS#9: not in the source",
            ]
        );
    }
}
