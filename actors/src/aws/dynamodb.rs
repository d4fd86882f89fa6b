//! [`ItemWriter`] on DynamoDB: the apply plan's writes as conditional `PutItem`s.
//!
//! A write that the guard lets through returns nothing (`ReturnValues=NONE`): asking for the
//! replaced item (`ALL_OLD`) made DynamoDB send back, and the SDK parse, a whole item of 1-2 KB
//! for every write, only to tell [`Verdict::Publish`](eda_core::apply_plan::Verdict) from
//! `Republish` for the changes a coalesced write covers — both publish; only the
//! `eda_events_republished_total` count differed (see `docs/perf/profile.md`). Neither choice
//! costs write or read units. When the guard fails, the stored item comes back
//! (`ReturnValuesOnConditionCheckFailure=ALL_OLD`, also free of read units) so the applier learns
//! the sequence it lost to without a second read; where a server does not return it, one
//! consistent `GetItem` of `_seq` finds it.

use super::error::sink_error;
use crate::ports::{ItemWriter, SinkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use eda_core::apply_plan::WriteOutcome;
use eda_core::apply_plan::{
    AttrValue, PlannedWrite, GUARD_EXPRESSION, GUARD_SEQ_NAME, GUARD_SEQ_VALUE, PK_ATTR, SEQ_ATTR,
};
use futures_util::future::BoxFuture;
use std::collections::HashMap;

/// Writes planned items to DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoDbItemWriter {
    /// The region's client (its endpoint may be DynamoDB Local).
    client: aws_sdk_dynamodb::Client,
}

impl DynamoDbItemWriter {
    /// A writer on `client`.
    pub fn new(client: aws_sdk_dynamodb::Client) -> Self {
        Self { client }
    }

    async fn put(&self, write: &PlannedWrite) -> Result<WriteOutcome, SinkError> {
        let item: HashMap<String, AttributeValue> = write
            .item
            .iter()
            .map(|(name, value)| (name.clone(), to_sdk(value)))
            .collect();
        let result = self
            .client
            .put_item()
            .table_name(&write.table_name)
            .set_item(Some(item))
            .condition_expression(GUARD_EXPRESSION)
            .expression_attribute_names(GUARD_SEQ_NAME, SEQ_ATTR)
            .expression_attribute_values(GUARD_SEQ_VALUE, AttributeValue::S(write.sequence.clone()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            // Without the replaced item, every change the write covers counts as newly applied.
            Ok(_) => Ok(WriteOutcome::Applied { previous: None }),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    let current = match failed.item().and_then(sequence_of) {
                        Some(seq) => Some(seq),
                        None => self.stored_sequence(write).await?,
                    };
                    Ok(WriteOutcome::Superseded { current })
                }
                _ => Err(sink_error("dynamodb", "PutItem", &err)),
            },
        }
    }

    /// The `_seq` stored under the write's key (consistent read).
    async fn stored_sequence(&self, write: &PlannedWrite) -> Result<Option<String>, SinkError> {
        let output = self
            .client
            .get_item()
            .table_name(&write.table_name)
            .key(PK_ATTR, AttributeValue::S(write.pk().to_string()))
            .consistent_read(true)
            .projection_expression(GUARD_SEQ_NAME)
            .expression_attribute_names(GUARD_SEQ_NAME, SEQ_ATTR)
            .send()
            .await
            .map_err(|err| sink_error("dynamodb", "GetItem", &err))?;
        Ok(output.item().and_then(sequence_of))
    }
}

impl ItemWriter for DynamoDbItemWriter {
    fn write<'a>(
        &'a self,
        write: &'a PlannedWrite,
    ) -> BoxFuture<'a, Result<WriteOutcome, SinkError>> {
        Box::pin(self.put(write))
    }
}

fn sequence_of(item: &HashMap<String, AttributeValue>) -> Option<String> {
    match item.get(SEQ_ATTR) {
        Some(AttributeValue::S(seq)) => Some(seq.clone()),
        _ => None,
    }
}

/// The core's attribute value as the SDK's.
pub fn to_sdk(value: &AttrValue) -> AttributeValue {
    match value {
        AttrValue::S(s) => AttributeValue::S(s.clone()),
        AttrValue::N(n) => AttributeValue::N(n.clone()),
        AttrValue::Bool(b) => AttributeValue::Bool(*b),
        AttrValue::Null => AttributeValue::Null(true),
        AttrValue::M(map) => {
            AttributeValue::M(map.iter().map(|(k, v)| (k.clone(), to_sdk(v))).collect())
        }
        AttrValue::L(list) => AttributeValue::L(list.iter().map(to_sdk).collect()),
        AttrValue::B(bytes) => AttributeValue::B(Blob::new(bytes.clone())),
    }
}

/// The SDK's attribute value as the core's (for tests and tools that read items back).
pub fn from_sdk(value: &AttributeValue) -> AttrValue {
    match value {
        AttributeValue::S(s) => AttrValue::S(s.clone()),
        AttributeValue::N(n) => AttrValue::N(n.clone()),
        AttributeValue::Bool(b) => AttrValue::Bool(*b),
        AttributeValue::M(map) => {
            AttrValue::M(map.iter().map(|(k, v)| (k.clone(), from_sdk(v))).collect())
        }
        AttributeValue::L(list) => AttrValue::L(list.iter().map(from_sdk).collect()),
        AttributeValue::B(bytes) => AttrValue::B(bytes.as_ref().to_vec()),
        _ => AttrValue::Null,
    }
}
