//! `health-checker`: on a schedule, probes every configured region's DynamoDB (ListTables),
//! EventBridge (ListEventBuses) and SQS (ListQueues) at once, classifies the results with the
//! core health aggregation, and publishes one `HealthCheckEvent` (detail-type `health_check`)
//! on the home region's bus.
//!
//! The daemon's per-region health prober actors are not built yet; the probe calls live here
//! until they are, and should move into the prober when it lands (the classification and the
//! event already come from `core::health`).

use crate::publishing::RegionPublisher;
use crate::Shim;
use eda_actors::aws::RegionClients;
use eda_actors::core::dead_letter::DeadLetterSource;
use eda_actors::core::eventbridge::EventBridgeEntry;
use eda_actors::core::health::{
    HealthCheckEvent, ProbeOutcome, ProbeResult, RegionHealth, Service,
};
use eda_actors::eventbridge_publisher::PublishItem;
use eda_actors::telemetry::{LambdaFunction, Metrics};
use eda_config::{Config, HealthConfig};
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

/// The health checker's warm state.
pub struct HealthChecker {
    /// The clients of every region probed.
    regions: Vec<RegionClients>,
    /// Thresholds and timeouts.
    config: HealthConfig,
    /// Where the event is published.
    publisher: RegionPublisher,
    /// EventBridge `Source` (`publish.source`).
    source: String,
}

impl HealthChecker {
    /// Builds the state from clients and an already started publisher.
    pub fn new(config: &Config, regions: Vec<RegionClients>, publisher: RegionPublisher) -> Self {
        Self {
            regions,
            config: config.health.clone(),
            publisher,
            source: config.publish.source.clone(),
        }
    }

    /// Probes every region, publishes the aggregated event and returns it.
    pub async fn check(&self, request_id: &str) -> Result<HealthCheckEvent, crate::Error> {
        let rounds =
            futures_util::future::join_all(self.regions.iter().map(|c| self.probe_region(c))).await;
        let event = HealthCheckEvent::new(uuid::Uuid::new_v4(), rounds);
        let item = PublishItem {
            entry: EventBridgeEntry {
                source: self.source.clone(),
                detail_type: event.detail_type().to_string(),
                detail: serde_json::to_string(&event)?,
                resources: Vec::new(),
                time: None,
                event_bus_name: Some(self.publisher.bus.clone()),
            },
            source: DeadLetterSource::Lambda {
                request_id: request_id.to_string(),
                function: "health-checker".into(),
            },
            correlation_id: None,
        };
        self.publisher.publish(vec![item]).await?;
        Ok(event)
    }

    async fn probe_region(&self, clients: &RegionClients) -> RegionHealth {
        let (dynamodb, eventbridge, sqs) = tokio::join!(
            self.probe(Service::DynamoDb, async {
                clients
                    .dynamodb
                    .list_tables()
                    .limit(1)
                    .send()
                    .await
                    .map(drop)
            }),
            self.probe(Service::EventBridge, async {
                clients
                    .eventbridge
                    .list_event_buses()
                    .limit(1)
                    .send()
                    .await
                    .map(drop)
            }),
            self.probe(Service::Sqs, async {
                clients
                    .sqs
                    .list_queues()
                    .max_results(1)
                    .send()
                    .await
                    .map(drop)
            }),
        );
        RegionHealth::from_probes(
            clients.region.clone(),
            &[dynamodb, eventbridge, sqs],
            &self.config,
            chrono::Utc::now(),
        )
    }

    async fn probe<E: std::error::Error + 'static>(
        &self,
        service: Service,
        call: impl Future<Output = Result<(), E>>,
    ) -> ProbeResult {
        let started = Instant::now();
        let timeout = self.config.call_timeout();
        let outcome = match tokio::time::timeout(timeout, call).await {
            Ok(Ok(())) => ProbeOutcome::Ok,
            Ok(Err(err)) => ProbeOutcome::Error(error_text(&err)),
            Err(_) => ProbeOutcome::TimedOut,
        };
        ProbeResult {
            service,
            latency: if outcome == ProbeOutcome::TimedOut {
                timeout
            } else {
                started.elapsed()
            },
            outcome,
        }
    }
}

/// The error and its sources on one line (the SDK's top-level message alone says little).
fn error_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

impl Shim for HealthChecker {
    type Response = HealthCheckEvent;
    const FUNCTION: LambdaFunction = LambdaFunction::HealthChecker;

    async fn cold_start(config: Config, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let mut regions = Vec::new();
        for (_, region) in config.regions.all() {
            regions.push(RegionClients::new(region, &config.aws).await);
        }
        let home = crate::cold_start::home_region(&config);
        let clients = RegionClients::new(home, &config.aws).await;
        let publisher = RegionPublisher::spawn(&config, home, &clients, metrics).await?;
        Ok(Self::new(&config, regions, publisher))
    }

    async fn handle(&self, event: LambdaEvent<Value>) -> Result<Self::Response, crate::Error> {
        self.check(&event.context.request_id).await
    }
}
