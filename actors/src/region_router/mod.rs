//! [`RegionRouter`]: one per region, each owning that region's circuit breaker. It wraps events as
//! `CrossRegionEvent`s (zstd, see [`eda_core::envelope`]) and publishes them to its region's
//! bus, one breaker permit per `PutEvents` call; every call's outcome feeds the breaker, and the
//! breaker's transitions become metrics and log lines.
//!
//! Traffic addressed to a region is sent (`Route`) to that region's router, its *home*:
//!
//! - while the home breaker lets calls through, events go home; what the breaker refuses, and
//!   what a failed call could not deliver, goes to the peer router (the other region): failover;
//! - after the home breaker closes from half-open, only the breaker's ramping admit fraction goes
//!   home and the rest still goes to the peer, so fail-back is gradual;
//! - what the peer cannot take either comes back and waits in a bounded
//!   [`FailoverBuffer`], retried on a timer; past `routing.failover_buffer` events or
//!   `routing.failover_max_wait_ms` it goes to the DLQ. Nothing is dropped.
//!
//! Every change of where the home traffic goes is logged once, with the reason. The health
//! prober's signals force the breaker open or let it recover (`Health`).
//!
//! Calls take up to `routing.call_timeout_ms`, so they run in tasks and their outcomes come back
//! as messages; `handle` never waits on the network.
//!
//! The daemon and the Lambda shims start routers the same way, through [`spawn_router`] (see
//! `start.rs`): the daemon one supervised child per region, the shims the pair
//! ([`RegionRouters`]) once per execution environment.

use crate::ack::Ack;
use crate::dlq_writer::{send_letters, DlqWriterMsg};
use crate::ports::{EventPublisher, SinkError};
use crate::telemetry::{
    BreakerCallFailed, BreakerCallsRejected, BreakerInitialized, BreakerState, BreakerTransitioned,
    CrossRegionDelivered, ErrorClass, InternalEvent, Metrics,
};
use chrono::{DateTime, Utc};
use eda_config::{BreakerConfig, RoutingConfig};
use eda_core::breaker::{
    BreakerCounters, BreakerObserver, CircuitBreaker, Permit, State, SystemClock, Transition,
};
use eda_core::dead_letter::{DeadLetterEvent, DeadLetterSource};
use eda_core::envelope::{Dictionary, EntryTarget, EnvelopeMeta, EnvelopePacker};
use eda_core::eventbridge::{EventBridgeEntry, MAX_ENTRIES_PER_CALL};
use eda_core::failover::{goes_home, FailoverBuffer};
use eda_core::failure::Stage;
use eda_core::health::BreakerSignal;
use eda_core::transform::BaseEvent;
use ractor::{Actor, ActorProcessingErr, ActorRef, MessagingErr, RpcReplyPort};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// EventBridge `Source` of cross-region events.
pub const CROSS_REGION_SOURCE: &str = "eda.cross-region";

/// How often a router retries its buffer, expires old events and polls its breaker.
const TICK: Duration = Duration::from_millis(250);

mod calls;
pub use calls::MaybePermit;
mod failover;
mod start;
pub use start::{
    load_dictionary, region_publisher, spawn_router, RegionRouters, RouterStartError, RouterWiring,
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
    /// The event itself (its `detail` JSON), compressed into the envelope.
    pub payload: Vec<u8>,
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
                payload: entry.detail.clone().into_bytes(),
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
    /// Settled once every event of its `Route` is delivered or dead-lettered.
    settlement: Arc<Settlement>,
    /// When it first entered a failover buffer (router clock), if it did.
    since: Option<Duration>,
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
    /// delivered (here or in the other region) or dead-lettered.
    Route {
        /// The events, in order.
        events: Vec<RoutedEvent>,
        /// Settled when all are done.
        ack: Ack,
    },
    /// The peer's home traffic, failed over here; what cannot be delivered goes back on `reply`.
    Failover {
        /// The events.
        events: Vec<InFlight>,
        /// Undelivered events, back to their home router.
        reply: oneshot::Sender<Vec<InFlight>>,
    },
    /// The calls of one attempt finished.
    Attempted {
        /// One outcome per call.
        calls: Vec<CallOutcome>,
        /// Whose traffic it was.
        origin: Origin,
    },
    /// The peer could not deliver these; buffer them.
    Returned(Vec<InFlight>),
    /// The region's health prober changed its verdict.
    Health(BreakerSignal),
    /// The other region's router, for failover.
    SetPeer(ActorRef<RegionRouterMsg>),
    /// Retry the buffer, expire old events, poll the breaker.
    Tick,
    /// Where the router stands (tests, tools).
    Status(RpcReplyPort<RouterStatus>),
}

/// The result of one `PutEvents` call made under a breaker permit.
#[derive(Debug)]
pub struct CallOutcome {
    /// The permit, returned to the breaker with the outcome.
    permit: MaybePermit,
    /// The events of the call.
    events: Vec<InFlight>,
    /// How long the call took.
    duration: Duration,
    /// The call's result: one result per entry, or the call's error.
    result: Result<Vec<Result<String, SinkError>>, SinkError>,
}

/// Whose traffic an attempt carried.
#[derive(Debug)]
pub enum Origin {
    /// The router's own (home) traffic.
    Home,
    /// The peer's, failed over here.
    Peer(oneshot::Sender<Vec<InFlight>>),
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
    /// Events delivered to this region (home and failed-over traffic).
    pub delivered: u64,
    /// Home events sent to the peer.
    pub failed_over: u64,
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
    /// Some home, the rest to the peer, while the fail-back ramp runs.
    Ramp,
    /// To the peer: the home breaker refuses or home calls fail.
    Failover,
    /// Waiting: neither region took it.
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
    /// Where events go that neither region takes.
    pub dlq: ActorRef<DlqWriterMsg>,
    /// The other region's router, when it already runs (else `SetPeer` later).
    pub peer: Option<ActorRef<RegionRouterMsg>>,
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
    dlq: ActorRef<DlqWriterMsg>,
    peer: Option<ActorRef<RegionRouterMsg>>,
    metrics: Arc<Metrics>,
    rng: fastrand::Rng,
    /// Router clock origin, for buffer times.
    started: Instant,
    mode: Mode,
    delivered: u64,
    failed_over: u64,
    dead_lettered: u64,
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
            dlq: args.dlq,
            peer: args.peer,
            metrics: args.metrics,
            rng: fastrand::Rng::new(),
            started: Instant::now(),
            mode: Mode::Home,
            delivered: 0,
            failed_over: 0,
            dead_lettered: 0,
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
                    .map(|event| InFlight {
                        event,
                        settlement: settlement.clone(),
                        since: None,
                    })
                    .collect();
                state.dispatch_home(&myself, items);
            }
            RegionRouterMsg::Failover { events, reply } => {
                let (calls, refused) = state.acquire(events);
                if calls.is_empty() {
                    let _ = reply.send(refused);
                } else {
                    state.call(&myself, calls, Origin::Peer(reply), refused);
                }
            }
            RegionRouterMsg::Attempted { calls, origin } => {
                let undelivered = state.settle_calls(calls);
                match origin {
                    Origin::Home if !undelivered.is_empty() => {
                        state.switch(Mode::Failover, "calls to the home region failed");
                        state.send_to_peer(&myself, undelivered);
                    }
                    Origin::Home => {
                        if state.breaker.state() == State::Closed
                            && state.breaker.admit_fraction() >= 1.0
                        {
                            state
                                .switch(Mode::Home, "home calls succeed and the breaker is closed");
                        }
                    }
                    Origin::Peer(reply) => {
                        if let Err(events) = reply.send(undelivered) {
                            // The home router is gone; keep them here rather than lose them.
                            state.buffer_all(events);
                        }
                    }
                }
            }
            RegionRouterMsg::Returned(events) => {
                if !events.is_empty() {
                    state.switch(Mode::Buffering, "neither region took the events");
                    state.buffer_all(events);
                }
            }
            RegionRouterMsg::Health(signal) => match signal {
                BreakerSignal::ForceOpen(reason) => state.breaker.force_open(reason),
                BreakerSignal::Recovered => state.breaker.health_recovered(),
            },
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
        // Whatever still waits is dead-lettered rather than lost with the actor.
        let waiting: Vec<InFlight> = state
            .buffer
            .take_all()
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        state.dead_letter(
            waiting,
            "the region router stopped with events still buffered",
        );
        Ok(())
    }
}
