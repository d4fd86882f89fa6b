//! One region's publishing actors, as the daemon runs them: an [`EventBridgePublisher`] that
//! sends entries in `PutEvents` calls and dead-letters what EventBridge refuses, and the
//! [`DlqWriter`] behind it. A shim sends a batch and waits on its `Ack`: once it fires, every
//! entry is on the bus or in the dead-letter queue.

use eda_actors::ack::Ack;
use eda_actors::aws::{RegionClients, SqsDeadLetterQueue};
use eda_actors::dlq_writer::DlqWriterMsg;
use eda_actors::eventbridge_publisher::{spawn_unsupervised, EventBridgePublisherMsg, PublishItem};
use eda_actors::telemetry::Metrics;
use eda_config::{Config, RegionConfig};
use ractor::ActorRef;
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
    /// Its dead-letter writer, for what the shim itself must dead-letter.
    dlq: ActorRef<DlqWriterMsg>,
}

impl RegionPublisher {
    /// Spawns the two actors for `region` with the configured batch and retry settings.
    pub async fn spawn(
        config: &Config,
        region: &RegionConfig,
        clients: &RegionClients,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let (publisher, dlq) = spawn_unsupervised(
            config,
            region,
            clients.eventbridge.clone(),
            Arc::new(SqsDeadLetterQueue::new(
                clients.sqs.clone(),
                region.dlq_queue_url.clone(),
            )),
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

    /// Publishes `items` and waits until each is on the bus or in the DLQ.
    pub async fn publish(&self, items: Vec<PublishItem>) -> Result<(), Unsettled> {
        if items.is_empty() {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.publisher
            .cast(EventBridgePublisherMsg::Publish {
                items,
                ack: Ack::Notify(tx),
            })
            .map_err(|e| Unsettled(format!("the EventBridge publisher is down: {e}")))?;
        rx.await.map_err(|_| {
            Unsettled(format!(
                "events for bus {} in {} were neither published nor dead-lettered",
                self.bus, self.region
            ))
        })
    }

    /// Dead-letters events the shim could not turn into entries, and waits until they are in the
    /// queue.
    pub async fn dead_letter(
        &self,
        letters: Vec<eda_actors::core::dead_letter::DeadLetterEvent>,
    ) -> Result<(), Unsettled> {
        if letters.is_empty() {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.dlq
            .cast(DlqWriterMsg::Write {
                letters,
                ack: Ack::Notify(tx),
            })
            .map_err(|e| Unsettled(format!("the DLQ writer is down: {e}")))?;
        rx.await.map_err(|_| {
            Unsettled(format!(
                "the dead letters for {} were not written",
                self.region
            ))
        })
    }
}
