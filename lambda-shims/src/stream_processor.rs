//! `stream-processor`: a DynamoDB Streams batch (INSERT / MODIFY / REMOVE, `NEW_AND_OLD_IMAGES`)
//! to change events on the region's EventBridge bus, through the daemon's publisher actor, and
//! — for the changes `routing` replicates — to the other region through the daemon's region
//! routers, as the daemon's CDC applier hands the same change to both.
//!
//! Each record is read back into the change it records (`eda_core::stream_change`), described as
//! the same `BaseEvent` the daemon publishes (`into_base_event`), sent as the same entry
//! (`change_entry`) and, when replicated, as the same routed event (`RoutedEvent::for_change`:
//! the entry's detail in the cross-region envelope). Records are taken in shard order up to the
//! first one that cannot be read; those are published and routed (or dead-lettered by the
//! publisher and the routers, as the daemon does) and the answer's `batchItemFailures` names the
//! first record that was not settled, so Lambda retries the shard from there and nothing before
//! it twice. When the publisher or the routers cannot settle the batch before the invocation's
//! deadline, the whole batch is reported, from its first record.
//!
//! An event too large for EventBridge goes by claim check, decided as the daemon decides it
//! (`eda_core::claim_check`), pointing at the record's own item: both paths publish the same
//! event. An item whose row was stored compressed (`_zcols`) is read back whole first.
//!
//! A REMOVE that DynamoDB's TTL made of an eda item is a tombstone expiring (the DELETE it
//! records was published when the tombstone was written): it is skipped, not published as a new
//! DELETE. A TTL REMOVE in a table eda does not write is published as that table's DELETE.
use crate::cold_start::remaining;
use crate::cold_start::ColdStartError;
use crate::publishing::{CrossRegion, RegionPublisher};
use crate::Shim;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use eda_actors::aws::RegionClients;
use eda_actors::eventbridge_publisher::PublishItem;
use eda_actors::region_router::RoutedEvent;
use eda_actors::settings::event_limits;
use eda_actors::telemetry::{LambdaFunction, Metrics};
use eda_config::{Config, RoutingConfig};
use eda_core::change_event::into_base_event;
use eda_core::claim_check::{change_entry_within, EventLimits, ItemAddress};
use eda_core::dead_letter::DeadLetterSource;
use eda_core::stream_change::record_to_change;
use eda_core::stream_record::{image_to_plain, EventRecord};
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The stream processor's warm state.
pub struct StreamProcessor {
    /// The region's publisher and DLQ writer.
    publisher: RegionPublisher,
    /// The two region routers: replicated changes go to the other region through them.
    cross_region: CrossRegion,
    /// Which changes cross regions (`routing.replicate_tables`, `routing.replicate_event_types`).
    routing: RoutingConfig,
    /// EventBridge `Source` of change events (`publish.source`).
    source: String,
    /// `kafka.key_columns`: how a change's key is named, as the daemon names it.
    key_columns: BTreeMap<String, Vec<String>>,
    /// The sizes an event is held to, as the daemon's appliers hold it: over them it goes by
    /// claim check.
    limits: EventLimits,
}

impl StreamProcessor {
    /// Builds the state from already started actors (tests point them at other resources).
    pub fn new(config: &Config, publisher: RegionPublisher, cross_region: CrossRegion) -> Self {
        Self {
            publisher,
            cross_region,
            routing: config.routing.clone(),
            source: config.publish.source.clone(),
            key_columns: config.kafka.key_columns.clone(),
            limits: event_limits(config),
        }
    }

    /// Handles one batch; `deadline` is when the answer must be back.
    pub async fn process(&self, payload: Value, deadline: Duration) -> DynamoDbEventResponse {
        let raw_records = match payload.get("Records") {
            Some(Value::Array(records)) => records.clone(),
            _ => Vec::new(),
        };
        let mut items = Vec::with_capacity(raw_records.len());
        let mut routed = Vec::new();
        let mut first_sequence = None;
        let mut failed_at = None;
        for raw in raw_records {
            let sequence = raw
                .pointer("/dynamodb/SequenceNumber")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if first_sequence.is_none() {
                first_sequence = sequence.clone();
            }
            match self.item(raw) {
                Ok(Some((item, replicated))) => {
                    items.push(item);
                    routed.extend(replicated);
                }
                Ok(None) => {}
                Err(reason) => {
                    tracing::warn!(
                        sequence_number = sequence.as_deref().unwrap_or("?"),
                        %reason,
                        "Stream record cannot be read; reporting it as the batch's first failure."
                    );
                    failed_at = Some(sequence);
                    break;
                }
            }
        }
        // Published and routed at once, as the applier hands a batch to both.
        let both = async {
            let (published, replicated) = tokio::join!(
                self.publisher.publish(items),
                self.cross_region.route(routed)
            );
            published.and(replicated)
        };
        let settled = tokio::time::timeout(deadline, both).await;
        let failure = match settled {
            Ok(Ok(())) => failed_at,
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "Batch not settled; reporting all of it.");
                Some(first_sequence)
            }
            Err(_) => {
                tracing::warn!("Batch not settled before the deadline; reporting all of it.");
                Some(first_sequence)
            }
        };
        let mut response = DynamoDbEventResponse::default();
        if let Some(sequence) = failure {
            let mut item = DynamoDbBatchItemFailure::default();
            // A record without a sequence number cannot be named: an empty identifier makes
            // Lambda treat the whole batch as failed, which is the safe reading.
            item.item_identifier = Some(sequence.unwrap_or_default());
            response.batch_item_failures.push(item);
        }
        response
    }

    /// The record's change event, and its cross-region copy when the change is replicated;
    /// `None` for a record that is no change (a tombstone DynamoDB's TTL reaped).
    fn item(&self, raw: Value) -> Result<Option<(PublishItem, Option<RoutedEvent>)>, String> {
        let record: EventRecord = serde_json::from_value(raw).map_err(|e| e.to_string())?;
        let Some(change) =
            record_to_change(&record, &self.key_columns).map_err(|e| e.to_string())?
        else {
            tracing::debug!(
                sequence_number = %record.dynamodb.sequence_number,
                "Tombstone reaped by DynamoDB's TTL; no change to publish."
            );
            return Ok(None);
        };
        let table = change.table.qualified();
        let mut base = into_base_event(change, record.aws_region.as_str());
        // The item this record recorded: where a claim check points, as the daemon's does.
        let item = ItemAddress {
            region: &record.aws_region,
            table: record.table_name().unwrap_or_default(),
            key: Some(image_to_plain(&record.dynamodb.keys)),
        };
        let entry = change_entry_within(
            &mut base,
            &self.source,
            &self.publisher.bus,
            &self.limits,
            &item,
        );
        let source = DeadLetterSource::DynamoDbStream {
            event_id: record.event_id,
            sequence_number: record.dynamodb.sequence_number,
        };
        let routed = RoutedEvent::for_change(&self.routing, &table, &base, &entry, &source);
        let item = PublishItem {
            entry,
            source,
            correlation_id: base.correlation_id,
        };
        Ok(Some((item, routed)))
    }
}

impl Shim for StreamProcessor {
    type Response = DynamoDbEventResponse;
    const FUNCTION: LambdaFunction = LambdaFunction::StreamProcessor;

    async fn cold_start(config: Config, metrics: Arc<Metrics>) -> Result<Self, ColdStartError> {
        let region = crate::cold_start::home_region(&config);
        let clients = RegionClients::new(region, &config.aws)
            .await
            .timed(&metrics);
        let publisher = RegionPublisher::spawn(&config, region, &clients, metrics.clone()).await?;
        let cross_region = CrossRegion::spawn(&config, region, publisher.dlq(), metrics).await?;
        Ok(Self::new(&config, publisher, cross_region))
    }

    async fn handle(&self, event: LambdaEvent<Value>) -> Result<Self::Response, crate::Error> {
        Ok(self.process(event.payload, remaining(&event.context)).await)
    }
}
