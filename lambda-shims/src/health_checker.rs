//! `health-checker`: on a schedule, probes every configured region's DynamoDB (ListTables),
//! EventBridge (ListEventBuses) and SQS (ListQueues) at once, classifies the results with the
//! core health aggregation, and publishes one `HealthCheckEvent` (detail-type `health_check`)
//! on the home region's bus.
//!
//! The probe calls are the daemon's health prober's ([`eda_actors::health_prober::probe_region`]);
//! the classification and the event come from `eda_core::health`.

use crate::cold_start::ColdStartError;
use crate::publishing::RegionPublisher;
use crate::Shim;
use eda_actors::aws::RegionClients;
use eda_actors::eventbridge_publisher::PublishItem;
use eda_actors::health_prober::probe_region;
use eda_actors::telemetry::{LambdaFunction, Metrics};
use eda_config::{Config, HealthConfig};
use eda_core::dead_letter::DeadLetterSource;
use eda_core::eventbridge::EventBridgeEntry;
use eda_core::health::{HealthCheckEvent, RegionHealth};
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use std::sync::Arc;

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
                detail: serde_json::to_string(&event)?.into(),
                resources: Vec::new(),
                time: None,
                event_bus_name: Some(self.publisher.bus.clone()),
                trace_header: None,
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
        let probes = probe_region(clients, self.config.call_timeout()).await;
        RegionHealth::from_probes(
            clients.region.clone(),
            &probes,
            &self.config,
            chrono::Utc::now(),
        )
    }
}

impl Shim for HealthChecker {
    type Response = HealthCheckEvent;
    const FUNCTION: LambdaFunction = LambdaFunction::HealthChecker;

    async fn cold_start(config: Config, metrics: Arc<Metrics>) -> Result<Self, ColdStartError> {
        let mut regions = Vec::new();
        for (_, region) in config.regions.all() {
            regions.push(RegionClients::new(region, &config.aws).await);
        }
        let home = crate::cold_start::home_region(&config);
        let clients = RegionClients::new(home, &config.aws).await.timed(&metrics);
        let publisher = RegionPublisher::spawn(&config, home, &clients, metrics).await?;
        Ok(Self::new(&config, regions, publisher))
    }

    async fn handle(&self, event: LambdaEvent<Value>) -> Result<Self::Response, crate::Error> {
        self.check(&event.context.request_id).await
    }
}
