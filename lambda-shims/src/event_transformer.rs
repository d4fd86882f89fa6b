//! `event-transformer`: an EventBridge event whose detail is a `BaseEvent` (a change event, or
//! any producer's) through the core transformer, and the outcome published as `transformed` or
//! `validation_failed` (every reason listed) on the region's bus, by the daemon's publisher.
//!
//! Both outcomes are answers: the invocation fails only when the outcome could not be published
//! (nor dead-lettered), so EventBridge retries it and then sends it to the target's DLQ.

use crate::cold_start::ColdStartError;
use crate::publishing::RegionPublisher;
use crate::Shim;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use eda_actors::aws::RegionClients;
use eda_actors::eventbridge_publisher::PublishItem;
use eda_actors::telemetry::{LambdaFunction, Metrics};
use eda_config::Config;
use eda_core::dead_letter::DeadLetterSource;
use eda_core::eventbridge::EventBridgeEntry;
use eda_core::transform::{Outcome, Transformer};
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;

/// The transformer's warm state.
pub struct EventTransformer {
    /// Validation rules, enrichment tables, compiled once.
    transformer: Transformer,
    /// The region's publisher and DLQ writer.
    publisher: RegionPublisher,
    /// EventBridge `Source` of the outcomes (`publish.source`).
    source: String,
}

/// What the function answers: which outcome was published, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransformResponse {
    /// The event's id (the producer's, when it had one).
    pub event_id: String,
    /// `transformed` or `validation_failed`.
    pub detail_type: &'static str,
}

impl EventTransformer {
    /// Builds the state from already started actors.
    pub fn new(config: &Config, publisher: RegionPublisher) -> Result<Self, ColdStartError> {
        Ok(Self {
            transformer: Transformer::new(&config.transformer, publisher.region.clone())?,
            publisher,
            source: config.publish.source.clone(),
        })
    }

    /// Transforms one EventBridge event and publishes the outcome.
    pub async fn process(&self, payload: Value) -> Result<TransformResponse, crate::Error> {
        let event: EventBridgeEvent<Value> = serde_json::from_value(payload)?;
        let id = event.id.clone().unwrap_or_default();
        let outcome = self
            .transformer
            .transform_json(event.detail, chrono::Utc::now());
        let detail_type = outcome.detail_type();
        let (event_id, detail, correlation_id) = match &outcome {
            Outcome::Transformed(t) => (
                t.event_id.clone(),
                serde_json::to_string(t)?,
                t.correlation_id.clone(),
            ),
            Outcome::ValidationFailed(f) => (
                f.event
                    .get("event_id")
                    .and_then(Value::as_str)
                    .map_or_else(|| id.clone(), str::to_owned),
                serde_json::to_string(f)?,
                None,
            ),
        };
        let item = PublishItem {
            entry: EventBridgeEntry {
                source: self.source.clone(),
                detail_type: detail_type.to_string(),
                detail: detail.into(),
                resources: Vec::new(),
                time: None,
                event_bus_name: Some(self.publisher.bus.clone()),
                trace_header: None,
            },
            source: DeadLetterSource::EventBridge { event_id: id },
            correlation_id,
        };
        self.publisher.publish(vec![item]).await?;
        Ok(TransformResponse {
            event_id,
            detail_type,
        })
    }
}

impl Shim for EventTransformer {
    type Response = TransformResponse;
    const FUNCTION: LambdaFunction = LambdaFunction::EventTransformer;

    async fn cold_start(config: Config, metrics: Arc<Metrics>) -> Result<Self, ColdStartError> {
        let region = crate::cold_start::home_region(&config);
        let clients = RegionClients::new(region, &config.aws)
            .await
            .timed(&metrics);
        let publisher = RegionPublisher::spawn(&config, region, &clients, metrics).await?;
        Self::new(&config, publisher)
    }

    async fn handle(&self, event: LambdaEvent<Value>) -> Result<Self::Response, crate::Error> {
        self.process(event.payload).await
    }
}
