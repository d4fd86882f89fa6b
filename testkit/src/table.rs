//! A per-test CDC table, and what a pipeline test finally checks: that the table holds exactly
//! the source's last image of every key (a key deleted at the source is gone or tombstoned).

use crate::local::unique;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use eda_loadtest::history::History;
use eda_loadtest::verify::mismatches;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub use eda_loadtest::verify::{whole, Expected, Item};

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
            let mismatches = mismatches(&self.items().await, &history.expected);
            if mismatches.is_empty() || Instant::now() > deadline {
                return mismatches;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
