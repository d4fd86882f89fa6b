//! [`ItemWriter`] on DynamoDB: the apply plan's writes as conditional `PutItem`s, gathered
//! where they can be into `BatchExecuteStatement` calls of up to 25 ([`batch`]: what is sent,
//! why it writes what the `PutItem` would, and when a write falls back to its `PutItem`).
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
//!
//! The `PutItem` goes through the [lean client](super::lean): eda writes its JSON body and signs
//! it; the rare `GetItem` stays on the SDK.

mod batch;

pub use batch::MAX_STATEMENTS;

use super::error::sink_error;
use super::lean::{self, json, CallError, LeanClient};
use super::RegionClients;
use crate::ports::{ItemWriter, SinkError};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use eda_core::apply_plan::WriteOutcome;
use eda_core::apply_plan::{
    AttrValue, PlannedWrite, GUARD_EXPRESSION, GUARD_SEQ_NAME, GUARD_SEQ_VALUE, PK_ATTR, SEQ_ATTR,
};
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Arc;

use crate::telemetry::{
    DynamoDbCall, DynamoDbOperation, DynamoDbOutcome, InternalEvent as _, Metrics,
};

/// The `X-Amz-Target` of `PutItem`.
const PUT_ITEM: &str = "DynamoDB_20120810.PutItem";

/// The error code of a refused guard.
const CONDITION_FAILED: &str = "ConditionalCheckFailedException";

/// Writes planned items to DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoDbItemWriter {
    /// The region's lean DynamoDB client, for the `PutItem`s.
    lean: LeanClient,
    /// The region's SDK client (its endpoint may be DynamoDB Local), for the `GetItem` of a
    /// refusal that came back without the stored item.
    client: aws_sdk_dynamodb::Client,
    /// Gathers writes into `BatchExecuteStatement` calls; `None` writes each as a `PutItem`.
    batcher: Option<Arc<batch::Batcher>>,
    /// Where the calls are counted (`eda_dynamodb_operations_total`), if anywhere.
    metrics: Option<Arc<Metrics>>,
}

impl DynamoDbItemWriter {
    /// A writer in the region of `clients`, gathering up to 25 writes per call.
    pub fn new(clients: &RegionClients) -> Self {
        Self::with_statements_per_call(clients, MAX_STATEMENTS)
    }

    /// A writer gathering up to `per_call` writes per `BatchExecuteStatement` (at most
    /// 25); 1 sends each write as its own `PutItem` (`apply.batch_statements`).
    pub fn with_statements_per_call(clients: &RegionClients, per_call: usize) -> Self {
        let lean = clients.lean_dynamodb.clone();
        let batcher = (per_call > 1).then(|| batch::Batcher::new(lean.clone(), per_call, None));
        Self {
            lean,
            client: clients.dynamodb.clone(),
            batcher,
            metrics: None,
        }
    }

    /// The writer, counting each `PutItem` and each statement in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        if let Some(batcher) = &self.batcher {
            self.batcher = Some(batch::Batcher::new(
                self.lean.clone(),
                batcher.per_call(),
                Some(metrics.clone()),
            ));
        }
        self.metrics = Some(metrics);
        self
    }

    /// Writes `write` in the next batch call, or as a `PutItem` where it does not go as a
    /// statement or its statement was refused.
    async fn write_one(&self, write: &PlannedWrite) -> Result<WriteOutcome, SinkError> {
        if let Some(batcher) = &self.batcher {
            match batcher.write(write).await {
                batch::Answer::Applied => return Ok(WriteOutcome::Applied { previous: None }),
                batch::Answer::Superseded(current) => {
                    return Ok(WriteOutcome::Superseded {
                        current: Some(current),
                    })
                }
                batch::Answer::Failed(err) => return Err(err),
                batch::Answer::PutItem => {}
            }
        }
        self.put(write).await
    }

    async fn put(&self, write: &PlannedWrite) -> Result<WriteOutcome, SinkError> {
        let result = self.put_uncounted(write).await;
        if let Some(metrics) = &self.metrics {
            DynamoDbCall {
                operation: DynamoDbOperation::PutItem,
                outcome: match &result {
                    Ok(WriteOutcome::Applied { .. }) => DynamoDbOutcome::Success,
                    Ok(WriteOutcome::Superseded { .. }) => DynamoDbOutcome::ConditionFailed,
                    Err(err) => DynamoDbOutcome::Failed(err.class),
                },
            }
            .emit(metrics);
        }
        result
    }

    async fn put_uncounted(&self, write: &PlannedWrite) -> Result<WriteOutcome, SinkError> {
        let body = lean::body_with(|out| put_item_body(out, write));
        match self.lean.call(PUT_ITEM, body).await {
            // Without the replaced item, every change the write covers counts as newly applied.
            Ok(_) => Ok(WriteOutcome::Applied { previous: None }),
            Err(CallError::Service(err)) if err.code == CONDITION_FAILED => {
                let stored = serde_json::from_slice::<RefusedWrite>(&err.body)
                    .ok()
                    .and_then(|refused| refused.item)
                    .and_then(|item| item.seq)
                    .and_then(|seq| seq.s);
                let current = match stored {
                    Some(seq) => Some(seq),
                    None => self.stored_sequence(write).await?,
                };
                Ok(WriteOutcome::Superseded { current })
            }
            Err(err) => Err(err.into_sink_error("dynamodb", "PutItem")),
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
        Box::pin(self.write_one(write))
    }
}

/// The `PutItem` request of `write`: the item under the sequence guard, nothing returned on
/// success, the stored item returned when the guard refuses.
fn put_item_body(out: &mut Vec<u8>, write: &PlannedWrite) {
    out.push(b'{');
    json::key(out, "TableName");
    json::string(out, &write.table_name);
    out.push(b',');
    json::key(out, "Item");
    json::attribute_map(out, write.item.iter());
    out.push(b',');
    json::key(out, "ConditionExpression");
    json::string(out, GUARD_EXPRESSION);
    out.push(b',');
    json::key(out, "ExpressionAttributeNames");
    out.push(b'{');
    json::string(out, GUARD_SEQ_NAME);
    out.push(b':');
    json::string(out, SEQ_ATTR);
    out.extend_from_slice(b"},");
    json::key(out, "ExpressionAttributeValues");
    out.push(b'{');
    json::string(out, GUARD_SEQ_VALUE);
    out.extend_from_slice(b":{\"S\":");
    json::string(out, &write.sequence);
    out.extend_from_slice(b"}},");
    json::key(out, "ReturnValuesOnConditionCheckFailure");
    out.extend_from_slice(b"\"ALL_OLD\"}");
}

/// What eda reads of a refused `PutItem`: the stored item's `_seq`.
#[derive(serde::Deserialize)]
struct RefusedWrite {
    /// The stored item (`ReturnValuesOnConditionCheckFailure=ALL_OLD`).
    #[serde(rename = "Item")]
    item: Option<StoredSeq>,
}

/// The `_seq` attribute of a stored item; the other attributes are skipped unparsed.
#[derive(serde::Deserialize)]
struct StoredSeq {
    #[serde(rename = "_seq")]
    seq: Option<StringAttr>,
}

/// A `{"S": "…"}` attribute value.
#[derive(serde::Deserialize)]
struct StringAttr {
    #[serde(rename = "S")]
    s: Option<String>,
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
