//! The actors a shim sends its events to, as the daemon runs them, and waiting on the `Ack` that
//! says a batch is settled:
//!
//! - [`RegionPublisher`]: one region's [`EventBridgePublisher`] that sends entries in `PutEvents`
//!   calls and dead-letters what EventBridge refuses, and the [`DlqWriter`] behind it; once a
//!   batch's ack fires, every entry is on the bus or in the dead-letter queue.
//! - [`CrossRegion`]: the two region routers ([`RegionRouters`], each owning its region's
//!   circuit breaker); once a route's ack fires, every event is on the other region's bus,
//!   recorded in its owed queue (delivered once it is back; a detour copy goes to the home bus),
//!   or in the dead-letter queue.
//!
//! [`EventBridgePublisher`]: eda_actors::eventbridge_publisher::EventBridgePublisher
//! [`DlqWriter`]: eda_actors::dlq_writer::DlqWriter

use crate::cold_start::ColdStartError;
use eda_actors::ack::Ack;
use eda_actors::aws::{RegionClients, SqsDeadLetterQueue};
use eda_actors::dlq_writer::DlqWriterMsg;
use eda_actors::eventbridge_publisher::{spawn_unsupervised, EventBridgePublisherMsg, PublishItem};
use eda_actors::ports::DeadLetterSink;
use eda_actors::region_router::{RegionRouterMsg, RegionRouters, RoutedEvent, RouterStatus};
use eda_actors::telemetry::Metrics;
use eda_config::{Config, RegionConfig};
use ractor::ActorRef;
use std::fmt::Display;
use std::sync::Arc;
use tokio::sync::oneshot;

/// A batch whose outcome is unknown: an actor stopped, or the DLQ write failed too. The
/// events were neither published nor dead-lettered, so the caller must fail them.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unsettled(pub String);

/// The publisher and DLQ writer of one region, started once and kept warm.
#[derive(Debug, Clone)]
pub struct RegionPublisher {
    /// The region (logs, envelopes).
    pub region: String,
    /// The bus entries go to.
    pub bus: String,
    /// The publisher actor.
    publisher: ActorRef<EventBridgePublisherMsg>,
    /// Its dead-letter writer, for what the shim itself must dead-letter, and for the routers.
    dlq: ActorRef<DlqWriterMsg>,
}

impl RegionPublisher {
    /// Spawns the two actors for `region` with the configured batch and retry settings.
    pub async fn spawn(
        config: &Config,
        region: &RegionConfig,
        clients: &RegionClients,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ColdStartError> {
        let (publisher, dlq) = spawn_unsupervised(
            config,
            region,
            clients.lean_eventbridge.clone(),
            dlq_sink(region, clients),
            metrics,
        )
        .await?;
        Ok(Self {
            region: region.name.clone(),
            bus: region.event_bus.clone(),
            publisher,
            dlq,
        })
    }

    /// The region's DLQ writer (the routers dead-letter through it, as the daemon's do).
    pub fn dlq(&self) -> ActorRef<DlqWriterMsg> {
        self.dlq.clone()
    }

    /// Publishes `items` and waits until each is on the bus or in the DLQ.
    pub async fn publish(&self, items: Vec<PublishItem>) -> Result<(), Unsettled> {
        if items.is_empty() {
            return Ok(());
        }
        until_settled(
            |ack| {
                self.publisher
                    .cast(EventBridgePublisherMsg::Publish { items, ack })
            },
            "EventBridge publisher",
            || {
                format!(
                    "events for bus {} in {} were neither published nor dead-lettered",
                    self.bus, self.region
                )
            },
        )
        .await
    }

    /// Dead-letters events the shim could not turn into entries, and waits until they are in the
    /// queue.
    pub async fn dead_letter(
        &self,
        letters: Vec<eda_core::dead_letter::DeadLetterEvent>,
    ) -> Result<(), Unsettled> {
        if letters.is_empty() {
            return Ok(());
        }
        until_settled(
            |ack| self.dlq.cast(DlqWriterMsg::Write { letters, ack }),
            "DLQ writer",
            || format!("the dead letters for {} were not written", self.region),
        )
        .await
    }
}

/// Both region routers of this execution environment, started once at cold start and kept
/// across warm invocations, so each breaker's state (and the failover buffer) survives from one
/// invocation to the next.
#[derive(Debug, Clone)]
pub struct CrossRegion {
    /// The region events are produced in: this function's.
    pub home: String,
    /// The region they are replicated to.
    pub target: String,
    /// The two routers.
    routers: RegionRouters,
}

impl CrossRegion {
    /// Starts the routers of `home` and of the other region (the daemon's start function), which
    /// dead-letter through `dlq`.
    pub async fn spawn(
        config: &Config,
        home: &RegionConfig,
        dlq: ActorRef<DlqWriterMsg>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ColdStartError> {
        let routers = RegionRouters::spawn(config, home, dlq, metrics).await?;
        Ok(Self {
            home: home.name.clone(),
            target: config.regions.other(&home.name).name.clone(),
            routers,
        })
    }

    /// Routes `events` to the other region's router and waits until each is delivered there,
    /// recorded as owed to it (while its breaker refuses), or dead-lettered.
    pub async fn route(&self, events: Vec<RoutedEvent>) -> Result<(), Unsettled> {
        if events.is_empty() {
            return Ok(());
        }
        until_settled(
            |ack| {
                self.routers
                    .away
                    .cast(RegionRouterMsg::Route { events, ack })
            },
            "region router",
            || {
                format!(
                    "events routed to {} were neither delivered nor dead-lettered",
                    self.target
                )
            },
        )
        .await
    }

    /// Where the target region's router stands: its breaker, counts and buffer.
    pub async fn status(&self) -> Result<RouterStatus, Unsettled> {
        ractor::call!(self.routers.away, RegionRouterMsg::Status)
            .map_err(|e| Unsettled(format!("the region router is down: {e}")))
    }

    /// Stops both routers (tests); what waits in their buffers is dead-lettered.
    pub fn stop(&self) {
        self.routers.stop();
    }
}

/// The region's dead-letter queue, as its DLQ writer sends to it.
pub fn dlq_sink(region: &RegionConfig, clients: &RegionClients) -> Arc<dyn DeadLetterSink> {
    Arc::new(SqsDeadLetterQueue::new(
        clients.sqs.clone(),
        region.dlq_queue_url.clone(),
    ))
}

/// Sends one message carrying an `Ack` to `actor` and waits until the ack is settled; `lost`
/// describes the events when the actor dropped it unsettled.
async fn until_settled<E: Display>(
    send: impl FnOnce(Ack) -> Result<(), E>,
    actor: &str,
    lost: impl FnOnce() -> String,
) -> Result<(), Unsettled> {
    let (tx, rx) = oneshot::channel();
    send(Ack::Notify(tx)).map_err(|e| Unsettled(format!("the {actor} is down: {e}")))?;
    rx.await.map_err(|_| Unsettled(lost()))
}
