//! `event-router`: an EventBridge event handed to the daemon's region routers
//! ([`RegionRouter`], one per region, each owning its region's circuit breaker, started by the
//! same function the daemon's tree uses). The router of the other region wraps the event as a
//! `CrossRegionEvent` (zstd, the core envelope) and publishes it to that region's bus through
//! its breaker; while the breaker refuses, or when a call fails, the event is recorded as owed to
//! that region (its owed queue, which the router drains once the region is back) and a copy goes
//! to the home region's bus as a detour; what neither the region nor the owed queue takes waits
//! in the router's bounded failover buffer and then goes to the dead-letter queue, as a `route`
//! letter `dlq redrive` delivers to its target. Nothing is dropped silently.
//!
//! Both routers start at cold start and live in the warm state, so the breakers' state survives
//! across warm invocations of one execution environment. A breaker here opens on the failures
//! this environment sees; no health prober runs in a Lambda function to force it open.
//!
//! Each invocation waits for the route's acknowledgement until shortly before its deadline. An
//! event that is not settled by then (neither region takes it yet, or a router stopped) fails
//! the invocation, so EventBridge retries it and finally sends it to the rule target's
//! dead-letter queue. The router still delivers or dead-letters the copy it holds, so a retried
//! event may cross twice, under the same event id and content hash, which receivers
//! de-duplicate on.
//!
//! [`RegionRouter`]: eda_actors::region_router::RegionRouter

use crate::cold_start::remaining;
use crate::cold_start::ColdStartError;
use crate::publishing::CrossRegion;
use crate::Shim;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use eda_actors::dlq_writer;
use eda_actors::region_router::RoutedEvent;
use eda_actors::telemetry::{LambdaFunction, Metrics};
use eda_config::{Config, RoutingConfig};
use eda_core::change_event::published_detail;
use eda_core::dead_letter::DeadLetterSource;
use eda_core::trace::TRACEPARENT_KEY;
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The router's warm state.
pub struct EventRouter {
    /// The two region routers.
    cross_region: CrossRegion,
    /// Which events cross (`routing.replicate_event_types`).
    routing: RoutingConfig,
}

/// What became of the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum RouteResponse {
    /// Settled by the routers: delivered to `region`'s bus, or recorded as owed to it (with a
    /// detour copy on the home bus), or dead-lettered (the routers' metrics and logs say which).
    Routed {
        /// The region it was sent to.
        region: String,
        /// That region's breaker once the event was settled.
        breaker: &'static str,
    },
    /// Not replicated (`routing.replicate_event_types`).
    Skipped,
}

impl EventRouter {
    /// Builds the state around already started routers (tests point them at other resources).
    pub fn new(config: &Config, cross_region: CrossRegion) -> Self {
        Self {
            cross_region,
            routing: config.routing.clone(),
        }
    }

    /// The routers (tests read the target router's status).
    pub fn cross_region(&self) -> &CrossRegion {
        &self.cross_region
    }

    /// Routes one EventBridge event, waiting at most `deadline` for it to settle; `request_id`
    /// names the invocation when the event has no id.
    pub async fn route(
        &self,
        payload: Value,
        request_id: &str,
        deadline: Duration,
    ) -> Result<RouteResponse, crate::Error> {
        let event: EventBridgeEvent<Value> = serde_json::from_value(payload)?;
        if !self.routing.replicates_event_type(&event.detail_type) {
            return Ok(RouteResponse::Skipped);
        }
        let routed = routed_event(event, request_id);
        let event_id = routed.event_id.clone();
        match tokio::time::timeout(deadline, self.cross_region.route(vec![routed])).await {
            Ok(Ok(())) => {}
            Ok(Err(unsettled)) => return Err(unsettled.into()),
            Err(_) => {
                tracing::warn!(
                    event_id,
                    target_region = %self.cross_region.target,
                    "Event not settled before the deadline; failing the invocation so it is retried."
                );
                return Err(format!(
                    "event {event_id} was not delivered or dead-lettered within {} ms",
                    deadline.as_millis()
                )
                .into());
            }
        }
        let status = self.cross_region.status().await?;
        Ok(RouteResponse::Routed {
            region: self.cross_region.target.clone(),
            breaker: status.state.as_str(),
        })
    }
}

/// The event as the routers carry it: its detail, written as its producer wrote it, so a change
/// event crosses with the same bytes as when the daemon or the stream processor routes it.
fn routed_event(event: EventBridgeEvent<Value>, request_id: &str) -> RoutedEvent {
    let id = event.id.unwrap_or_else(|| request_id.to_string());
    let text = |key: &str| event.detail.get(key).and_then(Value::as_str);
    RoutedEvent {
        event_id: text("event_id").unwrap_or(&id).to_string(),
        event_type: event.detail_type.clone(),
        correlation_id: text("correlation_id").map(str::to_owned),
        // The trace the event was published under (its `metadata.traceparent`), carried on.
        traceparent: event
            .detail
            .get("metadata")
            .and_then(|m| m.get(TRACEPARENT_KEY))
            .and_then(Value::as_str)
            .map(str::to_owned),
        payload: published_detail(&event.detail).into(),
        created_at: event.time.unwrap_or_else(chrono::Utc::now),
        source: DeadLetterSource::EventBridge { event_id: id },
    }
}

impl Shim for EventRouter {
    type Response = RouteResponse;
    const FUNCTION: LambdaFunction = LambdaFunction::EventRouter;

    async fn cold_start(config: Config, metrics: Arc<Metrics>) -> Result<Self, ColdStartError> {
        let home = crate::cold_start::home_region(&config);
        let clients = eda_actors::aws::RegionClients::new(home, &config.aws).await;
        let dlq = dlq_writer::spawn_unsupervised(
            &config.dlq,
            crate::publishing::dlq_sink(home, &clients),
            metrics.clone(),
        )
        .await?;
        let cross_region = CrossRegion::spawn(&config, home, dlq, metrics).await?;
        Ok(Self::new(&config, cross_region))
    }

    async fn handle(&self, event: LambdaEvent<Value>) -> Result<Self::Response, crate::Error> {
        let deadline = remaining(&event.context);
        self.route(event.payload, &event.context.request_id, deadline)
            .await
    }
}
