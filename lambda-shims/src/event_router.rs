//! `event-router`: an EventBridge event (a change event) wrapped as a `CrossRegionEvent` (zstd,
//! the core envelope) and published to the other region's bus, through that region's circuit
//! breaker (the core state machine), which lives in the warm state and so survives across warm
//! invocations of one execution environment.
//!
//! While the breaker rejects calls, the envelope fails over to the home region's bus through the
//! daemon's publisher actor (which dead-letters what EventBridge refuses): nothing is dropped
//! silently. A failed cross-region call is recorded on the breaker and fails the invocation, so
//! EventBridge retries it and finally sends it to the rule target's dead-letter queue.
//!
//! What this is not yet: the daemon's region router actor (issue 5), with its failover buffer,
//! batching across events and health-driven forced opening. A breaker here is per execution
//! environment, and opens on this environment's own failures only.

use crate::publishing::RegionPublisher;
use crate::Shim;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use eda_actors::aws::{EventBridgeClient, RegionClients};
use eda_actors::core::breaker::{CircuitBreaker, State, SystemClock};
use eda_actors::core::dead_letter::DeadLetterSource;
use eda_actors::core::envelope::{Dictionary, EntryTarget, EnvelopeMeta, EnvelopePacker};
use eda_actors::eventbridge_publisher::PublishItem;
use eda_actors::ports::EventPublisher;
use eda_actors::telemetry::{LambdaFunction, Metrics};
use eda_config::{Config, RoutingConfig};
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Mutex;

/// EventBridge `Source` of cross-region envelopes.
pub const CROSS_REGION_SOURCE: &str = "eda.cross-region";

/// The router's warm state.
pub struct EventRouter {
    /// This function's region.
    home: String,
    /// The other region, and its bus (`PutEvents` called directly, so each call is one breaker
    /// outcome).
    target: Arc<dyn EventPublisher>,
    /// The other region's breaker.
    breaker: Mutex<CircuitBreaker<SystemClock>>,
    /// The envelope packer (its zstd context is reused across events).
    packer: Mutex<EnvelopePacker>,
    /// The home region's publisher: failover while the breaker is open.
    failover: RegionPublisher,
    /// Which events cross.
    routing: RoutingConfig,
}

/// What became of the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum RouteResponse {
    /// Published on the target region's bus.
    Routed {
        /// The region it went to.
        region: String,
        /// EventBridge's id for the entry.
        entry_id: String,
    },
    /// The breaker was open: published on the home region's bus (or dead-lettered).
    FailedOver {
        /// The home region.
        region: String,
        /// The breaker state that refused it.
        breaker: &'static str,
    },
    /// Not replicated (`routing.replicate_event_types`).
    Skipped,
}

impl EventRouter {
    /// Builds the state: `target` is the other region's bus, `failover` the home publisher.
    pub fn new(
        config: &Config,
        home: &str,
        target: Arc<dyn EventPublisher>,
        failover: RegionPublisher,
    ) -> anyhow::Result<Self> {
        let dictionary = match &config.routing.dictionary_path {
            Some(path) => Some(Dictionary::from_bytes(std::fs::read(path)?)?),
            None => None,
        };
        Ok(Self {
            home: home.to_string(),
            breaker: Mutex::new(CircuitBreaker::new(
                target.region().to_string(),
                &config.breaker,
                SystemClock::new(),
                fastrand::Rng::new(),
            )),
            target,
            packer: Mutex::new(EnvelopePacker::new(&config.routing, dictionary)?),
            failover,
            routing: config.routing.clone(),
        })
    }

    /// The target breaker's state (tests, logs).
    pub async fn breaker_state(&self) -> State {
        self.breaker.lock().await.poll()
    }

    /// Routes one EventBridge event.
    pub async fn route(&self, payload: Value) -> Result<RouteResponse, crate::Error> {
        let event: EventBridgeEvent<Value> = serde_json::from_value(payload)?;
        if !self.routing.replicates_event_type(&event.detail_type) {
            return Ok(RouteResponse::Skipped);
        }
        let id = event.id.clone().unwrap_or_default();
        let text = |key: &str| event.detail.get(key).and_then(Value::as_str);
        let payload = serde_json::to_vec(&event.detail)?;
        let target_region = self.target.region().to_string();
        let packed = self.packer.lock().await.pack_entry(
            &EnvelopeMeta {
                event_id: text("event_id").unwrap_or(&id),
                source_region: event.region.as_deref().unwrap_or(&self.home),
                target_region: &target_region,
                event_type: &event.detail_type,
                correlation_id: text("correlation_id"),
                created_at: chrono::Utc::now(),
            },
            &payload,
            &EntryTarget {
                source: CROSS_REGION_SOURCE,
                event_bus_name: Some(self.target.bus()),
            },
            None,
        )?;
        let permit = self.breaker.lock().await.try_acquire();
        let permit = match permit {
            Ok(permit) => permit,
            Err(rejected) => {
                let mut entry = packed.entry;
                entry.event_bus_name = Some(self.failover.bus.clone());
                self.failover
                    .publish(vec![PublishItem {
                        entry,
                        source: DeadLetterSource::EventBridge { event_id: id },
                        correlation_id: packed.envelope.correlation_id.clone(),
                    }])
                    .await?;
                return Ok(RouteResponse::FailedOver {
                    region: self.home.clone(),
                    breaker: rejected.state.as_str(),
                });
            }
        };
        let started = Instant::now();
        let result = self
            .target
            .put_events(std::slice::from_ref(&packed.entry))
            .await;
        let mut breaker = self.breaker.lock().await;
        match result.map(|mut per_entry| per_entry.pop()) {
            Ok(Some(Ok(entry_id))) => {
                breaker.record_success(permit, started.elapsed());
                Ok(RouteResponse::Routed {
                    region: target_region,
                    entry_id,
                })
            }
            Ok(Some(Err(err))) | Err(err) => {
                breaker.record_failure(permit, started.elapsed());
                Err(err.into())
            }
            Ok(None) => {
                breaker.record_failure(permit, started.elapsed());
                Err("PutEvents answered no result for the entry".into())
            }
        }
    }
}

impl Shim for EventRouter {
    type Response = RouteResponse;
    const FUNCTION: LambdaFunction = LambdaFunction::EventRouter;

    async fn cold_start(config: Config, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let home = crate::cold_start::home_region(&config);
        let other = if home.name == config.regions.primary.name {
            &config.regions.secondary
        } else {
            &config.regions.primary
        };
        let home_clients = RegionClients::new(home, &config.aws).await;
        let other_clients = RegionClients::new(other, &config.aws).await;
        let failover = RegionPublisher::spawn(&config, home, &home_clients, metrics).await?;
        let target = Arc::new(EventBridgeClient::new(
            other_clients.eventbridge,
            other.event_bus.clone(),
            other.name.clone(),
        ));
        Self::new(&config, &home.name, target, failover)
    }

    async fn handle(&self, event: LambdaEvent<Value>) -> Result<Self::Response, crate::Error> {
        self.route(event.payload).await
    }
}
