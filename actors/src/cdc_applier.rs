//! [`CdcApplier`]: applies a batch of changes to DynamoDB with sequence-guarded writes, then
//! hands the events of the changes that took effect to the EventBridge publisher and the
//! changes that could not be applied to the DLQ writer.
//!
//! A partition consumer sends every change of one key to the same applier, and an applier
//! handles its batches one at a time, so one key's writes are never reordered; within a batch,
//! writes to different items run concurrently (`apply.max_concurrency`).
//!
//! The batches that wait in the mailbox while a batch is being written are applied together
//! next, as one batch: an `Apply` only gathers its changes, and a `Run` the applier sends itself
//! applies what has gathered once the mailbox reaches it (at once past [`MAX_GATHERED`] changes).
//! When the partitions' fetches are small (a few changes per applier each), one batch per hop
//! instead of one per fetch means fuller `PutItem` concurrency, fuller `PutEvents` calls, the
//! same key's changes coalesced into one guarded write more often, and one settlement task per
//! batch. Nothing waits for more to arrive: a lone batch is applied as soon as the mailbox
//! reaches its `Run`. Each gathered batch keeps its own acknowledgement, settled when the whole
//! is (`docs/perf/hops.md` has the figures).
//!
//! Publishing happens after the writes and is not awaited by the handler: the batch is
//! acknowledged once its events are published and its failures dead-lettered, and — for the
//! changes `routing.replicate_tables` or `routing.replicate_event_types` name — once the region
//! router has delivered their events to the other region (or, on failover, anywhere) or
//! dead-lettered them.
//!
//! Which events are published is decided from what each write did (see
//! [`eda_core::apply_plan::verdict`]): every change a successful write covers gets its event —
//! the ones newer than what the table held as applied changes, the ones the table already held
//! (a replay after a crash, a redelivery, a retried write) again under the same id, counted in
//! `eda_events_republished_total` when the guard refused the write, because a crash between a
//! write and its publish leaves their events owed. (A write that went through reports no
//! replaced sequence — it asks for no old item, which saved a 1-2 KB response per write — so
//! every change it covers counts as applied.) Downstream de-duplicates on the event id.
//!
//! An event too large to travel whole goes by claim check (the row left out, the item named:
//! [`eda_core::claim_check`]), decided once here so the home bus and the other region get the same
//! event; a row over DynamoDB's item limit is planned with its largest columns compressed.
//!
//! When spans are exported (`tracing.otlp_endpoint`), each batch has a span from its apply to its
//! acknowledgement, linked to (or the child of) the traces its messages came with; see
//! [`crate::telemetry::spans`] for which trace each change is then published under.
//!
//! Crash points: a batch's offsets are acknowledged only once its events are published (and
//! routed) and its failures dead-lettered. A crash anywhere before that leaves the offsets
//! uncommitted; the replay writes again (the sequence guard absorbs it) and publishes again.

use crate::ack::{Ack, Gathering, Next};
use crate::dlq_writer::DlqWriterMsg;
use crate::eventbridge_publisher::{EventBridgePublisherMsg, PublishItem};
use crate::ports::ItemWriter;
use crate::region_router::{RegionRouterMsg, RoutedEvent};
use crate::retry::with_retry;
use crate::telemetry::spans::batch_span;
use crate::telemetry::{
    ApplyStage, ApplyStagePassed, CdcEventsApplied, CdcOperation, EventsRepublished, InternalEvent,
    Metrics, OversizeChanges, OversizeKind,
};
use eda_config::{RetryConfig, RoutingConfig};
use eda_core::apply_plan::{self, effective_sequence, PlanOptions, TableRouting, PACKED_ATTR};
use eda_core::apply_plan::{settle, Verdict, WriteFailure, WriteResult};
use eda_core::cdc::{CdcEvent, Operation};
use eda_core::change_event::into_base_event;
use eda_core::claim_check::{change_entry_within, EventLimits, ItemAddress};
use eda_core::dead_letter::{DeadLetterEvent, DeadLetterSource};
use eda_core::trace::TRACE_ID_KEY;
use eda_core::transform::{BaseEvent, Payload};
use futures_util::stream::{self, StreamExt};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;
use tracing::{Instrument, Span};

/// The CDC applier actor.
#[derive(Debug, Clone, Copy, Default)]
pub struct CdcApplier;

/// Messages a [`CdcApplier`] handles.
#[derive(Debug)]
pub enum CdcApplierMsg {
    /// Apply these changes (in order), then settle `ack` once every one is published, skipped
    /// as superseded, or dead-lettered.
    Apply {
        /// The changes, in the order they were read.
        events: Vec<CdcEvent>,
        /// Settled when the whole batch is settled.
        ack: Ack,
    },
    /// Applies the changes gathered since the last run (the applier sends this to itself after
    /// the first `Apply` that finds nothing gathered; it does nothing when nothing is).
    Run,
    /// Test hook: panics inside the handler, as a bug would, so tests can watch the supervisor
    /// restart the applier without a message being skipped.
    InjectPanic,
}

/// Changes an applier gathers from waiting batches before it applies them without waiting for
/// its `Run`: about one partition fetch's worth (`kafka.batch_max` is 500 by default).
pub const MAX_GATHERED: usize = 512;

/// Settings an applier needs besides its ports.
#[derive(Debug, Clone)]
pub struct ApplierSettings {
    /// Which DynamoDB table each source table goes to.
    pub routing: TableRouting,
    /// How long tombstones live.
    pub tombstone_ttl_secs: i64,
    /// Writes in flight per batch.
    pub max_concurrency: usize,
    /// Retries of throttled and failed writes.
    pub retry: RetryConfig,
    /// The region the changes are applied in (`source_region` of the events).
    pub region: Arc<str>,
    /// EventBridge `Source` of change events.
    pub event_source: String,
    /// The bus change events go to.
    pub event_bus: String,
    /// Which changes are also carried to the other region (`routing.replicate_tables`,
    /// `routing.replicate_event_types`), when the applier has a router.
    pub replication: RoutingConfig,
    /// The sizes an event is held to: over them it goes by claim check.
    pub event_limits: EventLimits,
    /// Whether spans are exported (`tracing.otlp_endpoint`): then each batch gets a span, and
    /// changes that came without a trace are published under its trace
    /// ([`crate::telemetry::spans`]). Off, nothing of this runs.
    pub trace_export: bool,
}

/// How to build a [`CdcApplier`].
pub struct CdcApplierArgs {
    /// The table writer.
    pub writer: Arc<dyn ItemWriter>,
    /// Where applied changes' events go.
    pub publisher: ActorRef<EventBridgePublisherMsg>,
    /// Where changes that cannot be applied go.
    pub dlq: ActorRef<DlqWriterMsg>,
    /// The region router replicated changes' events go to; `None` replicates nothing.
    pub router: Option<ActorRef<RegionRouterMsg>>,
    /// Settings.
    pub settings: Arc<ApplierSettings>,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// A [`CdcApplier`]'s state: its arguments, and the changes gathered for the next batch.
pub struct CdcApplierState {
    args: CdcApplierArgs,
    /// Changes gathered from `Apply` messages, not applied yet, with their acknowledgements.
    gathered: Gathering<CdcEvent>,
}

impl Actor for CdcApplier {
    type Msg = CdcApplierMsg;
    type State = CdcApplierState;
    type Arguments = CdcApplierArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: CdcApplierArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(CdcApplierState {
            args,
            gathered: Gathering::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: CdcApplierMsg,
        state: &mut CdcApplierState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CdcApplierMsg::Apply { events, ack } => {
                match state.gathered.add(events, ack, MAX_GATHERED) {
                    Next::RunNow => state.run().await,
                    Next::QueueRun => myself.cast(CdcApplierMsg::Run)?,
                    Next::Wait => {}
                }
            }
            CdcApplierMsg::Run => {
                state.gathered.run_arrived();
                state.run().await;
            }
            CdcApplierMsg::InjectPanic => panic!("CdcApplier: panic injected by a test"),
        }
        Ok(())
    }
}

impl CdcApplierState {
    /// Applies what has gathered, as one batch.
    async fn run(&mut self) {
        if self.gathered.is_empty() {
            return;
        }
        let (events, acks) = self.gathered.take();
        self.apply(events, acks).await;
    }

    async fn apply(&mut self, events: Vec<CdcEvent>, acks: Vec<Ack>) {
        let started = Instant::now();
        // The messages read from Kafka among the batch's acknowledgements: what each stage
        // time counts.
        let mut messages = 0;
        for (read_at, read) in acks.iter().filter_map(Ack::read) {
            ApplyStagePassed {
                stage: ApplyStage::Wait,
                elapsed: started.saturating_duration_since(read_at),
                messages: read,
            }
            .emit(&self.args.metrics);
            messages += read;
        }
        // Key-changing UPDATEs become the old key's DELETE and the new key's INSERT (the
        // partition consumer splits them before routing; others, like the redrive, may not).
        let mut events = apply_plan::split_key_changes(events);
        let settings = &self.args.settings;
        // Before the plan: the trace each change is published under goes on its item too.
        let span = if settings.trace_export {
            batch_span(&mut events)
        } else {
            tracing::Span::none()
        };
        let opts = PlanOptions {
            now_epoch_secs: chrono::Utc::now().timestamp(),
            tombstone_ttl_secs: settings.tombstone_ttl_secs,
            refresh_started_at: None,
        };
        let plan = apply_plan::plan(&events, &settings.routing, &opts);
        let writer = &self.args.writer;
        let metrics = &self.args.metrics;
        let outcomes: Vec<(usize, WriteResult)> = stream::iter(0..plan.writes.len())
            .map(|i| {
                let write = &plan.writes[i];
                async move {
                    let result = with_retry(&settings.retry, || writer.write(write))
                        .await
                        .map_err(|(err, attempts)| WriteFailure {
                            class: err.class,
                            message: err.to_string(),
                            attempts,
                        });
                    (i, result)
                }
            })
            .buffer_unordered(settings.max_concurrency.max(1))
            .collect()
            .instrument(span.clone())
            .await;
        let written = Instant::now();
        ApplyStagePassed {
            stage: ApplyStage::Write,
            elapsed: written - started,
            messages,
        }
        .emit(metrics);
        let mut by_write: Vec<Option<WriteResult>> = (0..plan.writes.len()).map(|_| None).collect();
        // The writer counts the DynamoDB calls it makes (`eda_dynamodb_operations_total`).
        for (i, outcome) in outcomes {
            by_write[i] = Some(outcome);
        }
        let sequences: Vec<Option<String>> = events
            .iter()
            .map(|e| effective_sequence(e, &opts).ok())
            .collect();
        let verdicts = settle(&plan, &by_write, &sequences);
        let compressed = plan
            .writes
            .iter()
            .zip(&by_write)
            .filter(|(w, o)| w.item.contains_key(PACKED_ATTR) && matches!(o, Some(Ok(_))))
            .count() as u64;
        if compressed > 0 {
            OversizeChanges {
                kind: OversizeKind::RowCompressed,
                count: compressed,
            }
            .emit(metrics);
        }
        // An event's id is derived from the sequence the guard compared, which for a REFRESH
        // row without one is made from its timestamp: each (re)load gets its own id, the one the
        // stream processor derives from the item's `_seq`.
        let events = events
            .into_iter()
            .zip(sequences)
            .map(|(mut event, sequence)| {
                if let Some(sequence) = sequence {
                    if sequence != event.change_sequence {
                        event.change_sequence = sequence;
                    }
                }
                event
            })
            .collect();
        self.hand_off(events, verdicts, acks, span, (written, messages));
    }

    /// Sends published events and dead letters on, and settles `acks` when both are done; the
    /// batch's `span` ends then. `written` is when its writes were answered, and `messages` the
    /// messages read from Kafka it settles (for the `deliver` stage time).
    fn hand_off(
        &self,
        events: Vec<CdcEvent>,
        verdicts: Vec<Verdict>,
        acks: Vec<Ack>,
        span: Span,
        (written, messages): (Instant, usize),
    ) {
        let settings = &self.args.settings;
        let mut items = Vec::new();
        let mut routed = Vec::new();
        let mut letters = Vec::new();
        let mut applied = [0u64; 4];
        let mut republished = 0u64;
        let mut by_reference = 0u64;
        for (event, verdict) in events.into_iter().zip(verdicts) {
            match verdict {
                Verdict::Publish | Verdict::Republish => {
                    if verdict == Verdict::Publish {
                        applied[op_index(event.operation)] += 1;
                    } else {
                        republished += 1;
                    }
                    let source = source_of(&event);
                    let item = ItemAddress {
                        region: &settings.region,
                        table: settings.routing.target(&event.table),
                        key: None,
                    };
                    let mut base = into_base_event(event, Arc::clone(&settings.region));
                    let correlation_id = base.correlation_id.clone();
                    tracing::trace!(
                        event_id = %base.event_id,
                        correlation_id = correlation_id.as_deref().unwrap_or(""),
                        trace_id = base.metadata.get(TRACE_ID_KEY).map_or("", String::as_str),
                        event_type = %base.event_type,
                        "Change applied; publishing its event."
                    );
                    // Whole, or by claim check when too large: the same entry crosses regions.
                    let entry = change_entry_within(
                        &mut base,
                        &settings.event_source,
                        &settings.event_bus,
                        &settings.event_limits,
                        &item,
                    );
                    by_reference += u64::from(base.is_by_reference());
                    if self.args.router.is_some() {
                        routed.extend(RoutedEvent::for_change(
                            &settings.replication,
                            table_of(&base),
                            &base,
                            &entry,
                            &source,
                        ));
                    }
                    items.push(PublishItem {
                        entry,
                        source,
                        correlation_id,
                    });
                }
                Verdict::Skip => {}
                Verdict::DeadLetter {
                    class,
                    message,
                    stage,
                    attempts,
                } => {
                    let payload = serde_json::to_vec(&event).unwrap_or_default();
                    let mut letter = DeadLetterEvent::new(
                        uuid::Uuid::new_v4().to_string(),
                        &payload,
                        class,
                        &message,
                        stage,
                        source_of(&event),
                        chrono::Utc::now(),
                    )
                    .with_attempts(attempts);
                    if let Some(tx) = &event.transaction_id {
                        letter = letter.with_correlation_id(tx.clone());
                    }
                    letters.push(letter);
                }
            }
        }
        for (op, count) in [
            (CdcOperation::Insert, applied[0]),
            (CdcOperation::Update, applied[1]),
            (CdcOperation::Delete, applied[2]),
            (CdcOperation::Refresh, applied[3]),
        ] {
            if count > 0 {
                CdcEventsApplied {
                    operation: op,
                    count,
                }
                .emit(&self.args.metrics);
            }
        }
        if republished > 0 {
            EventsRepublished { count: republished }.emit(&self.args.metrics);
        }
        if by_reference > 0 {
            OversizeChanges {
                kind: OversizeKind::EventByReference,
                count: by_reference,
            }
            .emit(&self.args.metrics);
        }
        let published = self.forward(items.is_empty(), |tx| {
            self.args.publisher.cast(EventBridgePublisherMsg::Publish {
                items,
                ack: Ack::Notify(tx),
            })
        });
        let dead = self.forward(letters.is_empty(), |tx| {
            self.args.dlq.cast(DlqWriterMsg::Write {
                letters,
                ack: Ack::Notify(tx),
            })
        });
        let replicated = match &self.args.router {
            Some(router) => self.forward(routed.is_empty(), |tx| {
                router.cast(RegionRouterMsg::Route {
                    events: routed,
                    ack: Ack::Notify(tx),
                })
            }),
            None => self.forward(true, |_| Ok::<(), ()>(())),
        };
        let metrics = Arc::clone(&self.args.metrics);
        tokio::spawn(
            async move {
                // A sink that stopped before settling means the pipeline is restarting: leave
                // the batch unacknowledged so it is read again.
                if published.await.is_ok() && dead.await.is_ok() && replicated.await.is_ok() {
                    ApplyStagePassed {
                        stage: ApplyStage::Deliver,
                        elapsed: written.elapsed(),
                        messages,
                    }
                    .emit(&metrics);
                    for ack in acks {
                        ack.settle();
                    }
                }
            }
            .instrument(span),
        );
    }

    fn forward<E>(
        &self,
        nothing: bool,
        send: impl FnOnce(oneshot::Sender<()>) -> Result<(), E>,
    ) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        if nothing {
            let _ = tx.send(());
        } else {
            // If the sink is gone, `tx` is dropped with the message and `rx` reports the loss.
            let _ = send(tx);
        }
        rx
    }
}

fn op_index(op: Operation) -> usize {
    match op {
        Operation::Insert => 0,
        Operation::Update => 1,
        Operation::Delete => 2,
        Operation::Refresh => 3,
    }
}

/// The change's `SCHEMA.TABLE`, for the routing decision: the one its event carries, borrowed
/// rather than built again for every change.
fn table_of(event: &BaseEvent) -> &str {
    match &event.payload {
        Payload::Change(change) => &change.table,
        Payload::Json(_) => "",
    }
}

fn source_of(event: &CdcEvent) -> DeadLetterSource {
    match &event.kafka {
        Some(k) => DeadLetterSource::Kafka {
            topic: k.topic.clone(),
            partition: k.partition,
            offset: k.offset,
        },
        None => DeadLetterSource::Lambda {
            request_id: String::new(),
            function: "cdc-applier".into(),
        },
    }
}
