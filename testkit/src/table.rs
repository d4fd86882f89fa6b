//! A per-test CDC table, and what a pipeline test finally checks: that the table holds exactly
//! the source's last image of every key (a key deleted at the source is gone or tombstoned).

use crate::local::unique;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use eda_loadtest::history::{pk, History};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// An item of the table, by attribute.
pub type Item = HashMap<String, AttributeValue>;

/// The last image of each key of a history (`None`: its last change deleted it).
pub type Expected = BTreeMap<String, Option<Map<String, Value>>>;

/// A CDC table of this test's own, keyed by `pk` as the applier writes it.
pub struct Table {
    /// A client of the table's region.
    dynamodb: aws_sdk_dynamodb::Client,
    /// The table's name, which the pipeline's configuration points at.
    pub name: String,
}

impl Table {
    /// Creates a uniquely named table with the CDC table's key schema.
    pub async fn create(dynamodb: &aws_sdk_dynamodb::Client) -> Self {
        let name = unique("eda-test");
        dynamodb
            .create_table()
            .table_name(&name)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build()
                    .expect("key schema"),
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("attribute"),
            )
            .send()
            .await
            .expect("create_table");
        Self {
            dynamodb: dynamodb.clone(),
            name,
        }
    }

    /// Creates a uniquely named table with the key schema of `regions.*.metadata_table` (hash
    /// key `pk`, range key `version`, a number), for one test's Qlik table structures; returns its
    /// name.
    pub async fn create_metadata(dynamodb: &aws_sdk_dynamodb::Client) -> String {
        let name = unique("eda-test-metadata");
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .expect("key schema")
        };
        let attribute = |name: &str, kind| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(kind)
                .build()
                .expect("attribute")
        };
        dynamodb
            .create_table()
            .table_name(&name)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("version", KeyType::Range))
            .attribute_definitions(attribute("pk", ScalarAttributeType::S))
            .attribute_definitions(attribute("version", ScalarAttributeType::N))
            .send()
            .await
            .expect("create_table");
        name
    }

    /// Every item of the table, by `pk`, read consistently.
    pub async fn items(&self) -> BTreeMap<String, Item> {
        let mut items = BTreeMap::new();
        let mut start = None;
        loop {
            let page = self
                .dynamodb
                .scan()
                .table_name(&self.name)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            for item in page.items() {
                if let Some(AttributeValue::S(pk)) = item.get("pk") {
                    items.insert(pk.clone(), item.clone());
                }
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return items,
            }
        }
    }

    /// Waits until the table holds at least `count` items (traffic is flowing, so a test can
    /// act mid-run), or fails the test.
    pub async fn wait_until_applied(&self, count: usize, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let applied = self.items().await.len();
            if applied >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {applied} of {count} items applied within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the table holds exactly `history`'s last images; returns the mismatches left
    /// at the deadline (empty: equal).
    pub async fn wait_for(&self, history: &History, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let mismatches = compare(&self.items().await, &history.expected);
            if mismatches.is_empty() || Instant::now() > deadline {
                return mismatches;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
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

/// How `items` differs from `expected`, one line a difference: a key missing, one deleted at
/// the source but live in the table, a column with another value, an item the source never had.
fn compare(items: &BTreeMap<String, Item>, expected: &Expected) -> Vec<String> {
    let mut mismatches = Vec::new();
    for (key, image) in expected {
        let item = items.get(&pk(key));
        let live = item.filter(|i| !matches!(i.get("_deleted"), Some(AttributeValue::Bool(true))));
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
    for pk in items.keys() {
        if !known.contains(pk) {
            mismatches.push(format!("{pk}: not in the source"));
        }
    }
    mismatches
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(compare(&items, &expected), Vec::<String>::new());
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
            compare(&items, &expected),
            [
                "1.NAME: \"eve\" != \"ada\"",
                "2: deleted at the source, live in the table",
                "3: missing",
                "SALES.CUSTOMERS#9: not in the source",
            ]
        );
    }
}
