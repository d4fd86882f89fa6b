//! [`EventBridgePublisher`]: sends change events to EventBridge in `PutEvents` calls of up to
//! ten entries and 256 KB, retries the entries EventBridge did not accept, dead-letters the ones
//! it never accepts, and settles each request once every entry is either published or in the
//! dead-letter queue.
//!
//! Requests are published concurrently (up to `publish.max_concurrency` at once) in tasks of
//! their own, so one slow call does not hold up the others; the bound is the backpressure.

use crate::ack::Ack;
use crate::dlq_writer::{send_letters, DlqWriterMsg};
use crate::ports::{EventPublisher, SinkError};
use crate::retry::backoff;
use crate::telemetry::{EventBridgeFailed, EventBridgePublished, InternalEvent, Metrics};
use eda_config::RetryConfig;
use eda_core::dead_letter::{DeadLetterEvent, DeadLetterSource};
use eda_core::eventbridge::{plan_batches, BatchLimits, EventBridgeEntry};
use eda_core::failure::{ErrorClass, Stage};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The EventBridge publisher actor.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventBridgePublisher;

/// One event to publish, with what the DLQ needs if it cannot be.
#[derive(Debug, Clone)]
pub struct PublishItem {
    /// The entry.
    pub entry: EventBridgeEntry,
    /// Where the event came from.
    pub source: DeadLetterSource,
    /// Its correlation id, for the dead letter.
    pub correlation_id: Option<String>,
}

/// Messages the [`EventBridgePublisher`] handles.
#[derive(Debug)]
pub enum EventBridgePublisherMsg {
    /// Publish these events, then settle `ack`.
    Publish {
        /// The events, in order.
        items: Vec<PublishItem>,
        /// Settled once every event is published or dead-lettered.
        ack: Ack,
    },
}

/// How to build an [`EventBridgePublisher`].
pub struct EventBridgePublisherArgs {
    /// The bus.
    pub publisher: Arc<dyn EventPublisher>,
    /// Where events EventBridge refuses go.
    pub dlq: ActorRef<DlqWriterMsg>,
    /// Retry settings for refused entries.
    pub retry: RetryConfig,
    /// Entries per call (at most 10).
    pub max_entries: usize,
    /// Requests published at once.
    pub max_concurrency: usize,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// The [`EventBridgePublisher`]'s state: everything its publishing tasks share.
pub struct EventBridgePublisherState {
    /// What each task needs.
    shared: Arc<Shared>,
    /// Bounds the requests in flight.
    permits: Arc<Semaphore>,
    /// The bound.
    max_concurrency: usize,
}

struct Shared {
    publisher: Arc<dyn EventPublisher>,
    dlq: ActorRef<DlqWriterMsg>,
    retry: RetryConfig,
    limits: BatchLimits,
    metrics: Arc<Metrics>,
}

impl Actor for EventBridgePublisher {
    type Msg = EventBridgePublisherMsg;
    type State = EventBridgePublisherState;
    type Arguments = EventBridgePublisherArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: EventBridgePublisherArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let limits = BatchLimits {
            max_entries: args.max_entries,
            ..BatchLimits::default()
        };
        Ok(EventBridgePublisherState {
            shared: Arc::new(Shared {
                publisher: args.publisher,
                dlq: args.dlq,
                retry: args.retry,
                limits,
                metrics: args.metrics,
            }),
            permits: Arc::new(Semaphore::new(args.max_concurrency.max(1))),
            max_concurrency: args.max_concurrency.max(1),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: EventBridgePublisherMsg,
        state: &mut EventBridgePublisherState,
    ) -> Result<(), ActorProcessingErr> {
        let EventBridgePublisherMsg::Publish { items, ack } = msg;
        if items.is_empty() {
            ack.settle();
            return Ok(());
        }
        // Waiting for a permit here is the backpressure: the mailbox grows only by what the
        // appliers have in flight, which their partitions bound.
        let permit = state.permits.clone().acquire_owned().await?;
        let shared = state.shared.clone();
        tokio::spawn(publish_request(shared, items, ack, permit));
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut EventBridgePublisherState,
    ) -> Result<(), ActorProcessingErr> {
        // Let the requests in flight finish: every permit back means every task is done.
        let all = u32::try_from(state.max_concurrency).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            state.permits.acquire_many(all),
        )
        .await;
        Ok(())
    }
}

/// Publishes one request's events and settles its ack.
async fn publish_request(
    shared: Arc<Shared>,
    items: Vec<PublishItem>,
    ack: Ack,
    _permit: OwnedSemaphorePermit,
) {
    let dead = publish_all(&shared, &items).await;
    if !dead.is_empty() {
        let letters = dead
            .into_iter()
            .map(|(index, err, attempts)| dead_letter(&items[index], &err, attempts))
            .collect();
        // A DLQ writer that is down means the pipeline is restarting and these offsets will be
        // read again: do not acknowledge.
        let Some(written) = send_letters(&shared.dlq, letters) else {
            return;
        };
        if written.await.is_err() {
            return;
        }
    }
    ack.settle();
}

/// Publishes every item, retrying refused entries; returns the ones that never went through,
/// with the attempts made (an entry over EventBridge's size limit on its own is never sent).
async fn publish_all(shared: &Shared, items: &[PublishItem]) -> Vec<(usize, SinkError, u32)> {
    let mut dead = Vec::new();
    let mut keep = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let size = item.entry.size();
        if size > shared.limits.max_bytes {
            dead.push((
                index,
                SinkError {
                    service: "eventbridge",
                    operation: "PutEvents",
                    class: ErrorClass::TooLarge,
                    message: format!(
                        "entry is {size} bytes, over the {}-byte limit",
                        shared.limits.max_bytes
                    ),
                },
                0,
            ));
        } else {
            keep.push(index);
        }
    }
    let entries: Vec<&EventBridgeEntry> = keep.iter().map(|&i| &items[i].entry).collect();
    for (position, err, attempts) in publish_indices(shared, &entries).await {
        dead.push((keep[position], err, attempts));
    }
    dead
}

/// Publishes `entries` (each within the limit); returns indices that never went through, with
/// the attempts made.
async fn publish_indices(
    shared: &Shared,
    entries: &[&EventBridgeEntry],
) -> Vec<(usize, SinkError, u32)> {
    let mut waiting: Vec<usize> = (0..entries.len()).collect();
    let mut dead = Vec::new();
    let mut rng = fastrand::Rng::new();
    let bus = shared.publisher.bus().to_string();
    let region = shared.publisher.region().to_string();
    let mut attempt = 0u32;
    let started = tokio::time::Instant::now();
    while !waiting.is_empty() {
        attempt += 1;
        // Whether an entry refused in this round for a retryable reason gets another one.
        let again = shared
            .retry
            .allows_another(attempt, started.elapsed(), Duration::ZERO);
        let round: Vec<EventBridgeEntry> = waiting.iter().map(|&i| entries[i].clone()).collect();
        // Every entry fits on its own (checked by the caller), so planning cannot fail.
        let batches = plan_batches(&round, shared.limits)
            .unwrap_or_else(|_| std::iter::once(0..round.len()).collect());
        let mut retry = Vec::new();
        let mut last_error = None;
        for range in batches {
            let slice = &round[range.clone()];
            match shared.publisher.put_events(slice).await {
                Ok(results) => {
                    let mut published = 0u64;
                    for (offset, result) in results.into_iter().enumerate() {
                        let original = waiting[range.start + offset];
                        match result {
                            Ok(_) => published += 1,
                            Err(err) if err.is_retryable() && again => {
                                retry.push(original);
                                last_error = Some(err);
                            }
                            Err(err) => {
                                EventBridgeFailed {
                                    bus: &bus,
                                    region: &region,
                                    count: 1,
                                    class: err.class,
                                }
                                .emit(&shared.metrics);
                                dead.push((original, err, attempt));
                            }
                        }
                    }
                    if published > 0 {
                        EventBridgePublished {
                            bus: &bus,
                            region: &region,
                            count: published,
                        }
                        .emit(&shared.metrics);
                    }
                }
                Err(err) => {
                    EventBridgeFailed {
                        bus: &bus,
                        region: &region,
                        count: slice.len() as u64,
                        class: err.class,
                    }
                    .emit(&shared.metrics);
                    let originals = range.clone().map(|o| waiting[o]);
                    if err.is_retryable() && again {
                        retry.extend(originals);
                        last_error = Some(err);
                    } else {
                        dead.extend(originals.map(|i| (i, err.clone(), attempt)));
                    }
                }
            }
        }
        if last_error.is_some() && !retry.is_empty() {
            tokio::time::sleep(backoff(&shared.retry, attempt, &mut rng)).await;
        }
        waiting = retry;
    }
    dead
}

fn dead_letter(item: &PublishItem, err: &SinkError, attempts: u32) -> DeadLetterEvent {
    let now = chrono::Utc::now();
    let mut letter = DeadLetterEvent::new(
        uuid::Uuid::new_v4().to_string(),
        item.entry.detail.as_bytes(),
        err.class,
        &err.to_string(),
        Stage::Publish,
        item.source.clone(),
        now,
    )
    .with_attempts(attempts);
    if let Some(id) = &item.correlation_id {
        letter = letter.with_correlation_id(id.clone());
    }
    letter
}

/// Starts a region's publisher and the [`DlqWriter`](crate::dlq_writer::DlqWriter) behind it,
/// outside any supervision tree: for callers that run for one job or one Lambda execution
/// environment (`dlq redrive`, the Lambda shims) rather than under the daemon's root supervisor.
pub async fn spawn_unsupervised(
    config: &eda_config::Config,
    region: &eda_config::RegionConfig,
    eventbridge: crate::aws::LeanClient,
    dlq_sink: Arc<dyn crate::ports::DeadLetterSink>,
    metrics: Arc<Metrics>,
) -> Result<(ActorRef<EventBridgePublisherMsg>, ActorRef<DlqWriterMsg>), ractor::SpawnErr> {
    let dlq = crate::dlq_writer::spawn_unsupervised(&config.dlq, dlq_sink, metrics.clone()).await?;
    let (publisher, _) = Actor::spawn(
        None,
        EventBridgePublisher,
        EventBridgePublisherArgs {
            publisher: Arc::new(crate::aws::EventBridgeClient::new(
                eventbridge,
                region.event_bus.clone(),
                region.name.clone(),
            )),
            dlq: dlq.clone(),
            retry: config.publish.retry.clone(),
            max_entries: config.publish.max_entries,
            max_concurrency: config.publish.max_concurrency,
            metrics,
        },
    )
    .await?;
    Ok((publisher, dlq))
}
