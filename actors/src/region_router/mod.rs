//! [`RegionRouter`]: one per region, each owning that region's circuit breaker. It wraps events as
//! `CrossRegionEvent`s (zstd, see [`eda_core::envelope`]) and publishes them to its region's
//! bus, one breaker permit per `PutEvents` call; every call's outcome feeds the breaker, and the
//! breaker's transitions become metrics and log lines.
//!
//! Traffic addressed to a region is sent (`Route`) to that region's router, its *home*. An event
//! meant for a region reaches that region, now or after it comes back:
//!
//! - while the home breaker lets calls through, events go home;
//! - what the breaker refuses, and what a failed call could not deliver, is **owed** to the
//!   home region: the packed envelope is written, as an [`OwedEvent`], to the home region's
//!   *owed queue* (an SQS queue that lives in the other region, `regions.<other>.owed_queue_url`,
//!   reachable while the home region is down), and the event's acknowledgement settles once SQS
//!   has it. A copy also goes to the peer router (the other region's bus) as a **detour**, for
//!   consumers there; nothing waits on the copy and nothing retries it;
//! - the router **drains** its owed queue whenever its breaker lets calls through again
//!   (half-open trials included): it reads up to ten owed events, puts them on the home bus
//!   under one permit, and deletes them once EventBridge took them. A router of any process
//!   (another pod, a restarted daemon, a Lambda) drains what any other left; an event read by a
//!   router that dies reappears after the read's visibility timeout. Duplicates this can make
//!   carry the same event id;
//! - after the home breaker closes from half-open, only the breaker's ramping admit fraction
//!   goes home at once; the rest is owed, so fail-back is gradual;
//! - what the owed queue cannot take either waits in a bounded [`FailoverBuffer`] and is tried
//!   again on a timer (home first); past `routing.failover_buffer` events or
//!   `routing.failover_max_wait_ms` it goes to the DLQ as a `route` dead letter carrying the
//!   owed record, which `eda-daemon dlq redrive` delivers to its target region. Nothing is
//!   dropped.
//!
//! Why a queue and not the DLQ: an owed event is on its way, not failed; it must arrive without
//! an operator, and a region outage must not page anyone with dead letters. Why SQS and not
//! memory: the acknowledgement (and so the Kafka offset) settles when the event is owed, so the
//! record must survive the process.
//!
//! Counted: `eda_region_events_owed_recorded_total`, `eda_region_events_recovered_total` and the
//! owed queue's depth, sampled every few seconds, as `eda_region_events_owed`. Every change of
//! where the home traffic goes is logged once, with the reason, and so are the start and end of
//! a recovery.
//!
//! The health prober's signals force the breaker open or let it recover (`Health`). A forced-open
//! breaker is held by the prober's beats (it repeats the forcing every round); when no word comes
//! for `health_lease` (the prober died, or its rounds stopped), the forcing lapses into
//! half-open trials, and a restarted prober's first round states its verdict either way.
//!
//! Calls take up to `routing.call_timeout_ms`, so they run in tasks and their outcomes come back
//! as messages; `handle` never waits on the network.
//!
//! The daemon and the Lambda shims start routers the same way, through [`spawn_router`] (see
//! `start.rs`): the daemon one supervised child per region, the shims the pair
//! ([`RegionRouters`]) once per execution environment.
//!
//! Crash points: an event whose owed record or delivery was not confirmed when the router died
//! has an unsettled acknowledgement, so its source replays it (the same event id); an owed
//! record read but not yet deleted reappears in its queue.

use crate::ack::Ack;
use crate::dlq_writer::{send_letters, DlqWriterMsg};
use crate::ports::{EventPublisher, OwedQueue, ReceivedOwed, SinkError};
use crate::telemetry::{
    BreakerCallFailed, BreakerCallsRejected, BreakerInitialized, BreakerState, BreakerTransitioned,
    CrossRegionDelivered, ErrorClass, EventsOwed, InternalEvent, Metrics, OwedEventsRecovered,
    OwedEventsWaiting,
};
use chrono::{DateTime, Utc};
use eda_config::{BreakerConfig, RoutingConfig};
use eda_core::breaker::{
    BreakerCounters, BreakerObserver, CircuitBreaker, Permit, State, SystemClock, Transition,
};
use eda_core::dead_letter::{DeadLetterEvent, DeadLetterSource};
use eda_core::envelope::{Dictionary, EntryTarget, EnvelopeMeta, EnvelopePacker, PackedEntry};
use eda_core::eventbridge::{EventBridgeEntry, MAX_ENTRIES_PER_CALL};
use eda_core::failover::{goes_home, FailoverBuffer};
use eda_core::failure::Stage;
use eda_core::health::BreakerSignal;
use eda_core::owed::{OwedEvent, MAX_OWED_MESSAGE_BYTES};
use eda_core::trace::TRACEPARENT_KEY;
use eda_core::transform::BaseEvent;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// EventBridge `Source` of cross-region events (defined in the core, which sizes their entries).
pub use eda_core::envelope::CROSS_REGION_SOURCE;

/// How often a router retries its buffer, expires old events, polls its breaker and starts drain
/// rounds of its owed queue.
const TICK: Duration = Duration::from_millis(250);

mod calls;
mod failover;
mod owed;
pub use owed::{OwedRead, OwedWrite, Redelivery};
mod start;
pub use start::{
    health_lease, load_dictionary, owed_queue, region_publisher, spawn_router, RegionRouters,
    RouterStartError, RouterWiring,
};

/// The region router actor.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegionRouter;

/// One event to carry across regions.
#[derive(Debug, Clone)]
pub struct RoutedEvent {
    /// The event's id (also the envelope's).
    pub event_id: String,
    /// Its EventBridge detail-type.
    pub event_type: String,
    /// Its correlation id, if any.
    pub correlation_id: Option<String>,
    /// The W3C `traceparent` it was published under, if it was traced: the envelope carries it
    /// in clear, and the other region's `PutEvents` gets the same X-Ray `TraceHeader`.
    pub traceparent: Option<String>,
    /// The event itself (its `detail` JSON), compressed into the envelope. Shared: a change's
    /// cross-region copy holds the text of the entry published at home, not a copy of it.
    pub payload: Arc<[u8]>,
    /// When it was produced, for the cross-region latency.
    pub created_at: DateTime<Utc>,
    /// Where it entered eda, for a dead letter.
    pub source: DeadLetterSource,
}

impl RoutedEvent {
    /// The cross-region copy of a change event, when `routing` replicates the change (its table
    /// or its event type): the detail of the `entry` published on the home bus, byte for byte, so
    /// both regions carry the same event. The daemon's appliers and the `stream-processor` both
    /// decide and build it here.
    pub fn for_change(
        routing: &RoutingConfig,
        table: &str,
        event: &BaseEvent,
        entry: &EventBridgeEntry,
        source: &DeadLetterSource,
    ) -> Option<Self> {
        routing
            .replicates_change(table, &event.event_type)
            .then(|| RoutedEvent {
                event_id: event.event_id.clone(),
                event_type: event.event_type.clone(),
                correlation_id: event.correlation_id.clone(),
                traceparent: event.metadata.get(TRACEPARENT_KEY).cloned(),
                payload: entry.detail.shared_text().into(),
                created_at: Utc::now(),
                source: source.clone(),
            })
    }
}

/// An event on its way, with the acknowledgement it counts towards. Opaque outside the routers.
#[derive(Debug)]
pub struct InFlight {
    /// The event.
    event: RoutedEvent,
    /// Settled once every event of its `Route` is delivered, owed or dead-lettered; `None` for
    /// a detour copy, which nothing waits on.
    settlement: Option<Arc<Settlement>>,
    /// When it first entered a failover buffer (router clock), if it did.
    since: Option<Duration>,
    /// Whether its detour copy went to the peer already (once is enough).
    detoured: bool,
}

impl InFlight {
    /// Home traffic counting towards `settlement`.
    fn home(event: RoutedEvent, settlement: Arc<Settlement>) -> Self {
        Self {
            event,
            settlement: Some(settlement),
            since: None,
            detoured: false,
        }
    }

    /// A detour copy of the peer's traffic.
    fn detour(event: RoutedEvent) -> Self {
        Self {
            event,
            settlement: None,
            since: None,
            detoured: true,
        }
    }

    /// Whether it is a detour copy.
    fn is_detour(&self) -> bool {
        self.settlement.is_none()
    }

    /// Counts it done towards its `Route`'s acknowledgement.
    fn settle(self) {
        if let Some(settlement) = self.settlement {
            settlement.one_done();
        }
    }
}

/// Counts down a `Route`'s events and settles its ack when the last one is done.
#[derive(Debug)]
struct Settlement {
    remaining: AtomicUsize,
    ack: Mutex<Option<Ack>>,
}

impl Settlement {
    fn one_done(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let ack = self.ack.lock().ok().and_then(|mut a| a.take());
            if let Some(ack) = ack {
                ack.settle();
            }
        }
    }
}

/// Messages the [`RegionRouter`] handles.
#[derive(Debug)]
pub enum RegionRouterMsg {
    /// Deliver these events, whose home is this router's region; settle `ack` once every one is
    /// delivered there, recorded as owed to it, or dead-lettered.
    Route {
        /// The events, in order.
        events: Vec<RoutedEvent>,
        /// Settled when all are done.
        ack: Ack,
    },
    /// Copies of the peer's home traffic, which the peer owes its own region: put on this
    /// region's bus for consumers here. Nothing waits on them; what this region cannot take is
    /// dropped (the owed record remains).
    Detour(Vec<RoutedEvent>),
    /// The calls of one attempt finished.
    Attempted {
        /// One outcome per call.
        calls: Vec<CallOutcome>,
        /// Whose traffic it was.
        origin: Origin,
    },
    /// Writing owed records to the owed queue finished.
    Recorded(OwedWrite),
    /// A drain round read the owed queue.
    OwedRead(OwedRead),
    /// A drain round's `PutEvents` finished (and what it delivered was deleted from the queue).
    Redelivered(Redelivery),
    /// The owed queue's depth, sampled.
    OwedDepth(Result<u64, SinkError>),
    /// The region's health prober changed its verdict, or repeats a forcing (a beat).
    Health(BreakerSignal),
    /// The other region's router, for detours.
    SetPeer(ActorRef<RegionRouterMsg>),
    /// Retry the buffer, expire old events, poll the breaker, drain the owed queue.
    Tick,
    /// Where the router stands (tests, tools).
    Status(RpcReplyPort<RouterStatus>),
}

/// The result of one `PutEvents` call made under a breaker permit.
#[derive(Debug)]
pub struct CallOutcome {
    /// The permit, returned to the breaker with the outcome.
    permit: Permit,
    /// The events of the call.
    events: Vec<InFlight>,
    /// How long the call took.
    duration: Duration,
    /// The call's result: one result per entry, or the call's error.
    result: Result<Vec<Result<String, SinkError>>, SinkError>,
}

/// Whose traffic an attempt carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The router's own (home) traffic.
    Home,
    /// Detour copies of the peer's traffic.
    Detour,
}

/// A router's view of itself.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterStatus {
    /// Its region.
    pub region: String,
    /// Its breaker's state.
    pub state: State,
    /// Its breaker's counts.
    pub counters: BreakerCounters,
    /// The breaker's admit fraction (below 1 while fail-back ramps).
    pub admit_fraction: f64,
    /// Events waiting in the failover buffer.
    pub buffered: usize,
    /// Events delivered to this region (home traffic, detour copies, and owed events).
    pub delivered: u64,
    /// Home events the home region did not take at once (owed, with a detour copy to the peer).
    pub failed_over: u64,
    /// Home events recorded in the owed queue.
    pub owed: u64,
    /// Owed events this router delivered home after the region came back.
    pub recovered: u64,
    /// Events in the owed queue when it was last sampled (every router's, every process's).
    pub owed_waiting: Option<u64>,
    /// Events dead-lettered by this router.
    pub dead_lettered: u64,
    /// Where home traffic goes now.
    pub mode: Mode,
}

/// Where a router's home traffic goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// All of it home.
    Home,
    /// Some home, the rest owed, while the fail-back ramp runs.
    Ramp,
    /// Owed (with a detour copy to the peer): the home breaker refuses or home calls fail.
    Failover,
    /// Waiting: neither the home region nor the owed queue took it.
    Buffering,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Home => "home",
            Mode::Ramp => "ramp",
            Mode::Failover => "failover",
            Mode::Buffering => "buffering",
        }
    }
}

/// How to build a [`RegionRouter`].
pub struct RegionRouterArgs {
    /// The region this router delivers to (its configured name).
    pub region: String,
    /// The region events are produced in, written in each envelope.
    pub source_region: String,
    /// The region's bus.
    pub publisher: Arc<dyn EventPublisher>,
    /// The breaker's settings.
    pub breaker: BreakerConfig,
    /// Envelope, buffer and timeout settings.
    pub routing: RoutingConfig,
    /// The dictionary read from `routing.dictionary_path`, when set.
    pub dictionary: Option<Dictionary>,
    /// Where events this region owes wait until it takes them (in the other region).
    pub owed: Arc<dyn OwedQueue>,
    /// Where events go that neither the region nor its owed queue takes.
    pub dlq: ActorRef<DlqWriterMsg>,
    /// The other region's router, when it already runs (else `SetPeer` later).
    pub peer: Option<ActorRef<RegionRouterMsg>>,
    /// How long a forced-open breaker stays forced without word from the health prober.
    pub health_lease: Duration,
    /// Counters and gauges.
    pub metrics: Arc<Metrics>,
}

/// The [`RegionRouter`]'s state.
pub struct RegionRouterState {
    region: String,
    source_region: String,
    publisher: Arc<dyn EventPublisher>,
    breaker: CircuitBreaker<SystemClock>,
    packer: EnvelopePacker,
    buffer: FailoverBuffer<InFlight>,
    call_timeout: Duration,
    owed: Arc<dyn OwedQueue>,
    dlq: ActorRef<DlqWriterMsg>,
    peer: Option<ActorRef<RegionRouterMsg>>,
    metrics: Arc<Metrics>,
    rng: fastrand::Rng,
    /// Router clock origin, for buffer times.
    started: Instant,
    mode: Mode,
    delivered: u64,
    failed_over: u64,
    owed_recorded: u64,
    recovered: u64,
    dead_lettered: u64,
    /// The owed queue as the router knows it: drain rounds, samples, recovery in progress.
    drain: owed::Drain,
    /// When the health prober last said anything.
    last_health: Instant,
    /// How long a forcing holds without a word from the prober.
    health_lease: Duration,
    timer: tokio::task::JoinHandle<()>,
}

/// Turns breaker transitions into the state gauge, the transition counter and a log line.
struct MetricsObserver {
    metrics: Arc<Metrics>,
}

impl BreakerObserver for MetricsObserver {
    fn on_transition(&self, breaker: &str, transition: &Transition) {
        tracing::info!(
            region = breaker,
            from = transition.from.as_str(),
            to = transition.to.as_str(),
            reason = %transition.reason,
            open_wait_ms = transition.open_wait.map(|w| w.as_millis() as u64),
            "Circuit breaker transition."
        );
        BreakerTransitioned {
            region: breaker,
            from: state_label(transition.from),
            to: state_label(transition.to),
        }
        .emit(&self.metrics);
    }
}

fn state_label(state: State) -> BreakerState {
    match state {
        State::Closed => BreakerState::Closed,
        State::Open => BreakerState::Open,
        State::HalfOpen => BreakerState::HalfOpen,
        State::ForcedOpen => BreakerState::ForcedOpen,
        State::Disabled => BreakerState::Disabled,
    }
}

impl Actor for RegionRouter {
    type Msg = RegionRouterMsg;
    type State = RegionRouterState;
    type Arguments = RegionRouterArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: RegionRouterArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let breaker = CircuitBreaker::new(
            args.region.clone(),
            &args.breaker,
            SystemClock::new(),
            fastrand::Rng::new(),
        )
        .with_observer(Arc::new(MetricsObserver {
            metrics: args.metrics.clone(),
        }));
        BreakerInitialized {
            region: &args.region,
            state: state_label(breaker.state()),
        }
        .emit(&args.metrics);
        let packer = EnvelopePacker::new(&args.routing, args.dictionary)?;
        let timer = {
            let myself = myself.clone();
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(TICK);
                loop {
                    ticks.tick().await;
                    if myself.cast(RegionRouterMsg::Tick).is_err() {
                        return;
                    }
                }
            })
        };
        Ok(RegionRouterState {
            region: args.region,
            source_region: args.source_region,
            publisher: args.publisher,
            breaker,
            packer,
            buffer: FailoverBuffer::new(
                args.routing.failover_buffer,
                args.routing.failover_max_wait(),
            ),
            call_timeout: args.routing.call_timeout(),
            owed: args.owed,
            dlq: args.dlq,
            peer: args.peer,
            metrics: args.metrics,
            rng: fastrand::Rng::new(),
            started: Instant::now(),
            mode: Mode::Home,
            delivered: 0,
            failed_over: 0,
            owed_recorded: 0,
            recovered: 0,
            dead_lettered: 0,
            drain: owed::Drain::new(),
            last_health: Instant::now(),
            health_lease: args.health_lease,
            timer,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: RegionRouterMsg,
        state: &mut RegionRouterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RegionRouterMsg::Route { events, ack } => {
                if events.is_empty() {
                    ack.settle();
                    return Ok(());
                }
                let settlement = Arc::new(Settlement {
                    remaining: AtomicUsize::new(events.len()),
                    ack: Mutex::new(Some(ack)),
                });
                let items = events
                    .into_iter()
                    .map(|event| InFlight::home(event, settlement.clone()))
                    .collect();
                state.dispatch_home(&myself, items);
            }
            RegionRouterMsg::Detour(events) => state.take_detour(&myself, events),
            RegionRouterMsg::Attempted { calls, origin } => {
                let (undelivered, error) = state.settle_calls(calls);
                if undelivered.is_empty() {
                    state.drain.region_took();
                } else {
                    state.drain.region_failed();
                }
                match origin {
                    Origin::Home if !undelivered.is_empty() => {
                        if state.mode != Mode::Buffering {
                            state.switch(Mode::Failover, "calls to the home region failed");
                        }
                        let reason = format!(
                            "PutEvents to {} failed: {}",
                            state.region,
                            error.as_deref().unwrap_or("no answer")
                        );
                        state.owe(&myself, undelivered, &reason);
                    }
                    Origin::Home => {
                        if state.breaker.state() == State::Closed
                            && state.breaker.admit_fraction() >= 1.0
                        {
                            state
                                .switch(Mode::Home, "home calls succeed and the breaker is closed");
                        }
                    }
                    Origin::Detour if !undelivered.is_empty() => tracing::debug!(
                        region = %state.region,
                        count = undelivered.len(),
                        "Detour copies not delivered; their events stay owed to their own region."
                    ),
                    Origin::Detour => {}
                }
            }
            RegionRouterMsg::Recorded(write) => state.recorded(write),
            RegionRouterMsg::OwedRead(read) => state.owed_read(&myself, read),
            RegionRouterMsg::Redelivered(redelivery) => state.redelivered(&myself, redelivery),
            RegionRouterMsg::OwedDepth(depth) => state.owed_depth(depth),
            RegionRouterMsg::Health(signal) => {
                state.last_health = Instant::now();
                match signal {
                    BreakerSignal::ForceOpen(reason) => state.breaker.force_open(reason),
                    BreakerSignal::Recovered => state.breaker.health_recovered(),
                }
            }
            RegionRouterMsg::SetPeer(peer) => state.peer = Some(peer),
            RegionRouterMsg::Tick => state.tick(&myself),
            RegionRouterMsg::Status(reply) => {
                let status = RouterStatus {
                    region: state.region.clone(),
                    state: state.breaker.poll(),
                    counters: state.breaker.counters(),
                    admit_fraction: state.breaker.admit_fraction(),
                    buffered: state.buffer.len(),
                    delivered: state.delivered,
                    failed_over: state.failed_over,
                    owed: state.owed_recorded,
                    recovered: state.recovered,
                    owed_waiting: state.drain.waiting(),
                    dead_lettered: state.dead_lettered,
                    mode: state.mode,
                };
                let _ = reply.send(status);
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut RegionRouterState,
    ) -> Result<(), ActorProcessingErr> {
        state.timer.abort();
        // Whatever still waits gets one more try at the owed queue, settled if SQS takes it;
        // the rest stays unacknowledged and its source replays it.
        let waiting: Vec<InFlight> = state
            .buffer
            .take_all()
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        state.record_detached(waiting);
        Ok(())
    }
}
