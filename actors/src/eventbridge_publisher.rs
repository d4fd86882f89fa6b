//! [`EventBridgePublisher`]: sends change events to EventBridge in `PutEvents` calls of up to
//! ten entries and 256 KB, retries the entries EventBridge did not accept, dead-letters the ones
//! it never accepts, and settles each request once every entry is either published or in the
//! dead-letter queue.
//!
//! Requests are published concurrently (up to `publish.max_concurrency` at once) in tasks of
//! their own, so one slow call does not hold up the others; the bound is the backpressure.
//!
//! The `Publish` messages that wait in the mailbox go out together: a `Publish` gathers its
//! events, and a `Flush` the publisher sends itself starts one request with everything gathered
//! once the mailbox reaches it (at once when a call's worth, `publish.max_entries`, has
//! gathered). Each applier sends the events of its own batch, a few at a steady rate, so this is
//! what fills the calls up to ten entries; nothing waits for more to arrive. Each gathered
//! message keeps its own acknowledgement, settled once the request is.

use crate::ack::{Ack, Gathering, Next};
use crate::dlq_writer::{send_letters, DlqWriterMsg};
use crate::ports::{EventPublisher, SinkError};
use crate::retry::backoff;
use crate::telemetry::{EventBridgeFailed, EventBridgePublished, InternalEvent, Metrics};
use eda_config::RetryConfig;
use eda_core::dead_letter::{DeadLetterEvent, DeadLetterSource};
use eda_core::eventbridge::{plan_batches, BatchLimits, EventBridgeEntry};
use eda_core::failure::{ErrorClass, Stage};
use futures_util::StreamExt as _;
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
    /// Starts a request with the events gathered since the last one (the publisher sends this
    /// to itself after the first `Publish` that finds nothing gathered; it does nothing when
    /// nothing is).
    Flush,
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
    /// Bounds the requests in flight (`shared.max_concurrency` permits).
    permits: Arc<Semaphore>,
    /// Events gathered from `Publish` messages, not sent yet, with their acknowledgements.
    gathered: Gathering<PublishItem>,
}

struct Shared {
    publisher: Arc<dyn EventPublisher>,
    dlq: ActorRef<DlqWriterMsg>,
    retry: RetryConfig,
    limits: BatchLimits,
    metrics: Arc<Metrics>,
    /// `publish.max_concurrency`: requests in flight, and calls of one request in flight.
    max_concurrency: usize,
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
                max_concurrency: args.max_concurrency.max(1),
            }),
            permits: Arc::new(Semaphore::new(args.max_concurrency.max(1))),
            gathered: Gathering::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: EventBridgePublisherMsg,
        state: &mut EventBridgePublisherState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            EventBridgePublisherMsg::Publish { items, ack } => {
                if items.is_empty() {
                    ack.settle();
                    return Ok(());
                }
                let limit = state.shared.limits.max_entries;
                match state.gathered.add(items, ack, limit) {
                    Next::RunNow => state.flush().await?,
                    Next::QueueRun => myself.cast(EventBridgePublisherMsg::Flush)?,
                    Next::Wait => {}
                }
            }
            EventBridgePublisherMsg::Flush => {
                state.gathered.run_arrived();
                state.flush().await?;
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut EventBridgePublisherState,
    ) -> Result<(), ActorProcessingErr> {
        // Let the requests in flight finish: every permit back means every task is done.
        let all = u32::try_from(state.shared.max_concurrency).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            state.permits.acquire_many(all),
        )
        .await;
        Ok(())
    }
}

impl EventBridgePublisherState {
    /// Starts a request with what has gathered.
    async fn flush(&mut self) -> Result<(), ActorProcessingErr> {
        if self.gathered.is_empty() {
            return Ok(());
        }
        // Waiting for a permit here is the backpressure: the mailbox grows only by what the
        // appliers have in flight, which their partitions bound (and what arrives meanwhile
        // gathers into the next request).
        let permit = self.permits.clone().acquire_owned().await?;
        let (items, acks) = self.gathered.take();
        tokio::spawn(publish_request(self.shared.clone(), items, acks, permit));
        Ok(())
    }
}

/// Publishes one request's events and settles its acks.
async fn publish_request(
    shared: Arc<Shared>,
    items: Vec<PublishItem>,
    acks: Vec<Ack>,
    _permit: OwnedSemaphorePermit,
) {
    // The entries side by side, so a call can be lent a run of them as they are; what a dead
    // letter needs besides the entry stays beside them, by index.
    let (entries, origins): (Vec<EventBridgeEntry>, Vec<Origin>) = items
        .into_iter()
        .map(|item| {
            (
                item.entry,
                Origin {
                    source: item.source,
                    correlation_id: item.correlation_id,
                },
            )
        })
        .unzip();
    let dead = publish_all(&shared, &entries).await;
    if !dead.is_empty() {
        let letters = dead
            .into_iter()
            .map(|(index, err, attempts)| {
                dead_letter(&entries[index], &origins[index], &err, attempts)
            })
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
    for ack in acks {
        ack.settle();
    }
}

/// Where an entry's event came from, for its dead letter.
struct Origin {
    source: DeadLetterSource,
    correlation_id: Option<String>,
}

/// Publishes every entry, retrying refused ones; returns the ones that never went through,
/// with the attempts made (an entry over EventBridge's size limit on its own is never sent).
async fn publish_all(
    shared: &Shared,
    entries: &[EventBridgeEntry],
) -> Vec<(usize, SinkError, u32)> {
    let mut dead = Vec::new();
    let mut keep = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let size = entry.size();
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
    dead.extend(publish_indices(shared, entries, keep).await);
    dead
}

/// Publishes the entries at `waiting` (ascending indices into `entries`, each entry within the
/// limit); returns the indices that never went through, with the attempts made.
///
/// A round that sends every entry (the first, nearly always the only one) lends them to the
/// calls in place; only a round of some of them (a retry, or a request with an oversize entry
/// left out) clones those into a slice of their own, because a call takes a contiguous slice
/// (a clone shares its detail, in both its forms, rather than copying it).
async fn publish_indices(
    shared: &Shared,
    entries: &[EventBridgeEntry],
    mut waiting: Vec<usize>,
) -> Vec<(usize, SinkError, u32)> {
    let mut dead = Vec::new();
    let mut rng = fastrand::Rng::new();
    let bus = shared.publisher.bus();
    let region = shared.publisher.region();
    let mut attempt = 0u32;
    let started = tokio::time::Instant::now();
    while !waiting.is_empty() {
        attempt += 1;
        // Whether an entry refused in this round for a retryable reason gets another one.
        let again = shared
            .retry
            .allows_another(attempt, started.elapsed(), Duration::ZERO);
        // `waiting` ascends within `0..entries.len()`, so as long as it is it is every entry.
        let subset: Vec<EventBridgeEntry>;
        let round: &[EventBridgeEntry] = if waiting.len() == entries.len() {
            entries
        } else {
            subset = waiting.iter().map(|&i| entries[i].clone()).collect();
            &subset
        };
        // Every entry fits on its own (checked by the caller), so planning cannot fail.
        let batches = plan_batches(round, shared.limits)
            .unwrap_or_else(|_| std::iter::once(0..round.len()).collect());
        let mut retry = Vec::new();
        let mut last_error = None;
        // The calls of a round go at once (at most `publish.max_concurrency` of them), and their
        // answers are read in call order, as when they went one after the other: an applier's
        // batch of N events is one request, and waiting for N/10 round trips in a row was the
        // bound of `make bench-e2e`'s fixed-rate run.
        let answers: Vec<_> = futures_util::stream::iter(batches)
            .map(|range| {
                let slice = &round[range.clone()];
                async move { (range, shared.publisher.put_events(slice).await) }
            })
            .buffered(shared.max_concurrency)
            .collect()
            .await;
        for (range, answer) in answers {
            let slice = &round[range.clone()];
            match answer {
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
                                    bus,
                                    region,
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
                            bus,
                            region,
                            count: published,
                        }
                        .emit(&shared.metrics);
                    }
                }
                Err(err) => {
                    EventBridgeFailed {
                        bus,
                        region,
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
        // Refusals come back in call order, which is `waiting`'s: still ascending.
        waiting = retry;
    }
    dead
}

fn dead_letter(
    entry: &EventBridgeEntry,
    origin: &Origin,
    err: &SinkError,
    attempts: u32,
) -> DeadLetterEvent {
    let now = chrono::Utc::now();
    let mut letter = DeadLetterEvent::new(
        uuid::Uuid::new_v4().to_string(),
        entry.detail.as_bytes(),
        err.class,
        &err.to_string(),
        Stage::Publish,
        origin.source.clone(),
        now,
    )
    .with_attempts(attempts);
    if let Some(id) = &origin.correlation_id {
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
