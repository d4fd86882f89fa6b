//! [`TableStructureStore`] on DynamoDB: one item per source table and `tableVersion` in the table
//! `regions.<region>.metadata_table`.
//!
//! The item: `pk` (S, hash key) the `SCHEMA.TABLE` string, `version` (N, range key) Qlik's
//! `tableVersion`, `schema` and `table` (S), `columns` (S, the columns as JSON: name, ordinal,
//! data type, primary-key position), `key_columns` (L of S, for a reader of the table; derived
//! from `columns` again on load), the Kafka message that first described the version when known
//! (`origin_topic` S, `origin_partition` N, `origin_offset` N), and `recorded_at` (S, RFC 3339).
//!
//! A version is written once, under `attribute_not_exists(pk)`: a replayed or repeated metadata
//! message never rewrites it, and no version overwrites another (each has its own item), so an
//! older structure replayed after a restart cannot take a newer one's place. Reads are strongly
//! consistent, so a structure recorded by one pod is seen by the next read of any other.

use super::error::sink_error;
use crate::ports::{SinkError, TableStructureStore};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use eda_core::cdc::{ColumnMetadata, KafkaCoordinates, TableMetadata, TableRef};
use eda_core::failure::ErrorClass;
use futures_util::future::BoxFuture;
use std::collections::HashMap;

/// The hash key: the table, `SCHEMA.TABLE`.
const PK: &str = "pk";
/// The range key: Qlik's `tableVersion`.
const VERSION: &str = "version";

/// Table structures in a DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoDbTableStructures {
    /// The region's client (its endpoint may be DynamoDB Local).
    client: aws_sdk_dynamodb::Client,
    /// The metadata table.
    table_name: String,
}

impl DynamoDbTableStructures {
    /// The store in `table_name`, reached through `client`.
    pub fn new(client: aws_sdk_dynamodb::Client, table_name: impl Into<String>) -> Self {
        Self {
            client,
            table_name: table_name.into(),
        }
    }

    async fn put(&self, structure: &TableMetadata) -> Result<bool, SinkError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table_name)
            .set_item(Some(item_of(structure)?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(sink_error("dynamodb", "PutItem", &err)),
            },
        }
    }

    async fn query(&self, qualified: &str) -> Result<Vec<TableMetadata>, SinkError> {
        let mut structures = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table_name)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", AttributeValue::S(qualified.to_string()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|err| sink_error("dynamodb", "Query", &err))?;
            for item in page.items() {
                structures.push(self.structure_of(item, "Query")?);
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(structures),
            }
        }
    }

    async fn scan(&self) -> Result<Vec<TableMetadata>, SinkError> {
        let mut structures = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table_name)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|err| sink_error("dynamodb", "Scan", &err))?;
            for item in page.items() {
                structures.push(self.structure_of(item, "Scan")?);
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(structures),
            }
        }
    }

    /// The structure an item holds; an item that holds none is an error naming it (it was not
    /// written by eda, or was edited), not something to skip: skipping it could turn its table's
    /// data into dead letters.
    fn structure_of(
        &self,
        item: &HashMap<String, AttributeValue>,
        operation: &'static str,
    ) -> Result<TableMetadata, SinkError> {
        structure_of(item).map_err(|problem| SinkError {
            service: "dynamodb",
            operation,
            class: ErrorClass::Internal,
            message: format!(
                "item {} version {} of table {} is not a table structure: {problem}",
                text(item, PK).unwrap_or("?"),
                number(item, VERSION).map_or_else(|| "?".to_string(), |v| v.to_string()),
                self.table_name
            ),
        })
    }
}

impl TableStructureStore for DynamoDbTableStructures {
    fn record<'a>(
        &'a self,
        structure: &'a TableMetadata,
    ) -> BoxFuture<'a, Result<bool, SinkError>> {
        Box::pin(self.put(structure))
    }

    fn versions<'a>(
        &'a self,
        qualified: &'a str,
    ) -> BoxFuture<'a, Result<Vec<TableMetadata>, SinkError>> {
        Box::pin(self.query(qualified))
    }

    fn all(&self) -> BoxFuture<'_, Result<Vec<TableMetadata>, SinkError>> {
        Box::pin(self.scan())
    }

    fn name(&self) -> &str {
        &self.table_name
    }
}

/// The item recording `structure`.
fn item_of(structure: &TableMetadata) -> Result<HashMap<String, AttributeValue>, SinkError> {
    let columns = serde_json::to_string(&structure.columns).map_err(|err| SinkError {
        service: "dynamodb",
        operation: "PutItem",
        class: ErrorClass::Internal,
        message: format!(
            "the columns of {} do not serialize: {err}",
            structure.table.qualified()
        ),
    })?;
    let key_columns = structure
        .key_columns
        .iter()
        .map(|name| AttributeValue::S(name.to_string()))
        .collect();
    let mut item = HashMap::from([
        (
            PK.to_string(),
            AttributeValue::S(structure.table.qualified()),
        ),
        (
            VERSION.to_string(),
            AttributeValue::N(structure.table_version.to_string()),
        ),
        (
            "schema".to_string(),
            AttributeValue::S(structure.table.schema.to_string()),
        ),
        (
            "table".to_string(),
            AttributeValue::S(structure.table.table.to_string()),
        ),
        ("columns".to_string(), AttributeValue::S(columns)),
        ("key_columns".to_string(), AttributeValue::L(key_columns)),
        (
            "recorded_at".to_string(),
            AttributeValue::S(chrono::Utc::now().to_rfc3339()),
        ),
    ]);
    if let Some(origin) = &structure.origin {
        item.insert(
            "origin_topic".into(),
            AttributeValue::S(origin.topic.to_string()),
        );
        item.insert(
            "origin_partition".into(),
            AttributeValue::N(origin.partition.to_string()),
        );
        item.insert(
            "origin_offset".into(),
            AttributeValue::N(origin.offset.to_string()),
        );
    }
    Ok(item)
}

/// The structure recorded in `item`, or what is wrong with it.
fn structure_of(item: &HashMap<String, AttributeValue>) -> Result<TableMetadata, String> {
    let schema = text(item, "schema").ok_or("no string `schema`")?;
    let table = text(item, "table").ok_or("no string `table`")?;
    let version = number(item, VERSION).ok_or("no integer `version`")?;
    let columns: Vec<ColumnMetadata> =
        serde_json::from_str(text(item, "columns").ok_or("no string `columns`")?)
            .map_err(|err| format!("`columns` is not a list of columns: {err}"))?;
    let origin = match (
        text(item, "origin_topic"),
        number(item, "origin_partition").and_then(|p| i32::try_from(p).ok()),
        number(item, "origin_offset"),
    ) {
        (Some(topic), Some(partition), Some(offset)) => Some(KafkaCoordinates {
            topic: topic.into(),
            partition,
            offset,
        }),
        _ => None,
    };
    Ok(TableMetadata::new(TableRef::new(schema, table), version, columns).read_at(origin))
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s),
        _ => None,
    }
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_structure_survives_its_item() {
        let structure = TableMetadata::new(
            TableRef::new("SALES", "ORDERS"),
            3,
            vec![
                ColumnMetadata {
                    name: "REGION".into(),
                    ordinal: 2,
                    data_type: "STRING".into(),
                    primary_key_position: 2,
                },
                ColumnMetadata {
                    name: "ORDER_ID".into(),
                    ordinal: 1,
                    data_type: "INT4".into(),
                    primary_key_position: 1,
                },
            ],
        )
        .read_at(Some(KafkaCoordinates {
            topic: "qlik.cdc".into(),
            partition: 2,
            offset: 41,
        }));
        let item = item_of(&structure).expect("item");
        assert_eq!(item[PK], AttributeValue::S("SALES.ORDERS".into()));
        assert_eq!(item[VERSION], AttributeValue::N("3".into()));
        assert_eq!(structure_of(&item), Ok(structure));
    }

    #[test]
    fn an_item_that_is_no_structure_says_what_it_lacks() {
        let mut item =
            item_of(&TableMetadata::new(TableRef::new("S", "T"), 1, Vec::new())).expect("item");
        item.insert("columns".into(), AttributeValue::S("{".into()));
        let problem = structure_of(&item).expect_err("broken columns");
        assert!(
            problem.starts_with("`columns` is not a list of columns"),
            "{problem}"
        );
        item.remove("table");
        assert_eq!(structure_of(&item), Err("no string `table`".into()));
    }
}
