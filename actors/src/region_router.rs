//! [`RegionRouter`]: one per region, each owning that region's circuit breaker. It wraps events as
//! `CrossRegionEvent`s (zstd, see [`crate::core::envelope`]) and publishes them to its region's
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

use crate::ack::Ack;
use crate::core::breaker::{
    BreakerCounters, BreakerObserver, CircuitBreaker, Permit, State, SystemClock, Transition,
};
use crate::core::dead_letter::{DeadLetterEvent, DeadLetterSource, ErrorClass as DlqClass};
use crate::core::envelope::{Dictionary, EntryTarget, EnvelopeMeta, EnvelopePacker};
use crate::core::eventbridge::{EventBridgeEntry, MAX_ENTRIES_PER_CALL};
use crate::core::failover::{goes_home, FailoverBuffer};
use crate::core::health::BreakerSignal;
use crate::dlq_writer::{send_letters, DlqWriterMsg};
use crate::ports::{EventPublisher, SinkError};
use crate::telemetry::{
    BreakerCallFailed, BreakerCallsRejected, BreakerInitialized, BreakerState, BreakerTransitioned,
    CrossRegionDelivered, ErrorClass, InternalEvent, Metrics,
};
use chrono::{DateTime, Utc};
use eda_config::{BreakerConfig, RoutingConfig};
use ractor::{Actor, ActorProcessingErr, ActorRef, MessagingErr, RpcReplyPort};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// EventBridge `Source` of cross-region events.
pub const CROSS_REGION_SOURCE: &str = "eda.cross-region";

/// How often a router retries its buffer, expires old events and polls its breaker.
const TICK: Duration = Duration::from_millis(250);

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

impl RegionRouterState {
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Splits home traffic between home (what the ramp and the breaker admit) and the peer.
    fn dispatch_home(&mut self, myself: &ActorRef<RegionRouterMsg>, items: Vec<InFlight>) {
        let fraction = self.breaker.admit_fraction();
        let (home, mut away): (Vec<InFlight>, Vec<InFlight>) = if fraction >= 1.0 {
            (items, Vec::new())
        } else {
            let rng = &mut self.rng;
            items
                .into_iter()
                .partition(|_| goes_home(fraction, rng.f64()))
        };
        let ramped = !away.is_empty();
        let (calls, refused) = self.acquire(home);
        let state = self.breaker.state();
        if !refused.is_empty() {
            self.switch(Mode::Failover, &format!("home breaker is {state}"));
        } else if ramped {
            self.switch(
                Mode::Ramp,
                &format!("fail-back ramp admits {:.0} % home", fraction * 100.0),
            );
        }
        away.extend(refused);
        if !calls.is_empty() {
            self.call(myself, calls, Origin::Home, Vec::new());
        }
        if !away.is_empty() {
            self.send_to_peer(myself, away);
        }
    }

    /// Asks the breaker for one permit per call-sized chunk; returns the permitted chunks and the
    /// events the breaker refused.
    fn acquire(&mut self, events: Vec<InFlight>) -> (Vec<(Permit, Vec<InFlight>)>, Vec<InFlight>) {
        let mut calls = Vec::new();
        let mut refused = Vec::new();
        let mut rejected_calls = 0u64;
        let mut events = events.into_iter().peekable();
        while events.peek().is_some() {
            let chunk: Vec<InFlight> = events.by_ref().take(MAX_ENTRIES_PER_CALL).collect();
            match self.breaker.try_acquire() {
                Ok(permit) => calls.push((permit, chunk)),
                Err(_) => {
                    rejected_calls += 1;
                    refused.extend(chunk);
                }
            }
        }
        if rejected_calls > 0 {
            BreakerCallsRejected {
                region: &self.region,
                count: rejected_calls,
            }
            .emit(&self.metrics);
        }
        (calls, refused)
    }

    /// Packs and publishes each permitted chunk in a task; the outcomes come back as
    /// `Attempted`. `refused` rides along, undelivered, so a failover reply stays one message.
    fn call(
        &mut self,
        myself: &ActorRef<RegionRouterMsg>,
        calls: Vec<(Permit, Vec<InFlight>)>,
        origin: Origin,
        refused: Vec<InFlight>,
    ) {
        let mut packed_calls = Vec::with_capacity(calls.len());
        let mut too_large = Vec::new();
        for (permit, events) in calls {
            let mut entries = Vec::with_capacity(events.len());
            let mut keep = Vec::with_capacity(events.len());
            for item in events {
                match self.pack(&item.event) {
                    Ok(entry) => {
                        entries.push(entry);
                        keep.push(item);
                    }
                    Err(reason) => too_large.push((item, reason)),
                }
            }
            packed_calls.push((permit, keep, entries));
        }
        for (item, reason) in too_large {
            self.dead_letter(vec![item], &reason);
        }
        let publisher = self.publisher.clone();
        let timeout = self.call_timeout;
        let myself = myself.clone();
        tokio::spawn(async move {
            let mut outcomes = Vec::with_capacity(packed_calls.len());
            for (permit, events, entries) in packed_calls {
                let started = Instant::now();
                let result = if entries.is_empty() {
                    Ok(Vec::new())
                } else {
                    match tokio::time::timeout(timeout, publisher.put_events(&entries)).await {
                        Ok(result) => result,
                        Err(_) => Err(SinkError {
                            service: "eventbridge",
                            operation: "PutEvents",
                            class: ErrorClass::Timeout,
                            message: format!("no answer within {} ms", timeout.as_millis()),
                        }),
                    }
                };
                outcomes.push(CallOutcome {
                    permit: MaybePermit::Permit(permit),
                    events,
                    duration: started.elapsed(),
                    result,
                });
            }
            if !refused.is_empty() {
                outcomes.push(CallOutcome {
                    permit: MaybePermit::Refused,
                    events: refused,
                    duration: Duration::ZERO,
                    result: Ok(Vec::new()),
                });
            }
            if let Err(MessagingErr::SendErr(RegionRouterMsg::Attempted { calls, origin })) = myself
                .cast(RegionRouterMsg::Attempted {
                    calls: outcomes,
                    origin,
                })
            {
                // The router stopped meanwhile: hand the events back rather than lose them.
                let events: Vec<InFlight> = calls.into_iter().flat_map(|c| c.events).collect();
                if let Origin::Peer(reply) = origin {
                    let _ = reply.send(events);
                }
            }
        });
    }

    /// The EventBridge entry carrying one event's envelope to this region's bus.
    fn pack(&mut self, event: &RoutedEvent) -> Result<EventBridgeEntry, String> {
        let meta = EnvelopeMeta {
            event_id: &event.event_id,
            source_region: &self.source_region,
            target_region: &self.region,
            event_type: &event.event_type,
            correlation_id: event.correlation_id.as_deref(),
            created_at: Utc::now(),
        };
        let target = EntryTarget {
            source: CROSS_REGION_SOURCE,
            event_bus_name: Some(self.publisher.bus()),
        };
        self.packer
            .pack_entry(&meta, &event.payload, &target, None)
            .map(|packed| packed.entry)
            .map_err(|e| e.to_string())
    }

    /// Feeds each call's outcome to the breaker, settles what was delivered, dead-letters what
    /// the region refused on its merits, and returns what is worth another region's try.
    fn settle_calls(&mut self, calls: Vec<CallOutcome>) -> Vec<InFlight> {
        let mut undelivered = Vec::new();
        let mut delivered = 0u64;
        let mut oldest: Option<DateTime<Utc>> = None;
        for call in calls {
            let CallOutcome {
                permit,
                events,
                duration,
                result,
            } = call;
            match result {
                Ok(results) if results.len() == events.len() => {
                    if let Some(permit) = permit.into_permit() {
                        self.breaker.record_success(permit, duration);
                    }
                    for (item, result) in events.into_iter().zip(results) {
                        match result {
                            Ok(_) => {
                                delivered += 1;
                                oldest = Some(oldest.map_or(item.event.created_at, |o| {
                                    o.min(item.event.created_at)
                                }));
                                item.settlement.one_done();
                            }
                            Err(err) if err.is_retryable() => undelivered.push(item),
                            Err(err) => self.dead_letter(vec![item], &err.to_string()),
                        }
                    }
                }
                Ok(_) => {
                    // Refused by the breaker (no call was made), or an answer that does not
                    // match the request: another region's try.
                    if let Some(permit) = permit.into_permit() {
                        self.breaker.record_failure(permit, duration);
                        BreakerCallFailed {
                            region: &self.region,
                        }
                        .emit(&self.metrics);
                    }
                    undelivered.extend(events);
                }
                Err(err) => {
                    if let Some(permit) = permit.into_permit() {
                        if err.is_retryable() {
                            self.breaker.record_failure(permit, duration);
                            BreakerCallFailed {
                                region: &self.region,
                            }
                            .emit(&self.metrics);
                        } else {
                            // The region answered; the request itself was wrong.
                            self.breaker.record_success(permit, duration);
                        }
                    }
                    if err.is_retryable() {
                        undelivered.extend(events);
                    } else {
                        self.dead_letter(events, &err.to_string());
                    }
                }
            }
        }
        if delivered > 0 {
            self.delivered += delivered;
            let latency = oldest
                .and_then(|o| (Utc::now() - o).to_std().ok())
                .unwrap_or_default();
            CrossRegionDelivered {
                source_region: &self.source_region,
                target_region: &self.region,
                count: delivered,
                latency,
            }
            .emit(&self.metrics);
        }
        undelivered
    }

    /// Sends home traffic to the peer; what it cannot take comes back as `Returned`.
    fn send_to_peer(&mut self, myself: &ActorRef<RegionRouterMsg>, events: Vec<InFlight>) {
        let Some(peer) = self.peer.clone() else {
            self.switch(Mode::Buffering, "no peer region router");
            self.buffer_all(events);
            return;
        };
        self.failed_over += events.len() as u64;
        let (tx, rx) = oneshot::channel();
        match peer.cast(RegionRouterMsg::Failover { events, reply: tx }) {
            Ok(()) => {
                let myself = myself.clone();
                tokio::spawn(async move {
                    // A peer that dies with them loses no ack: the events' acks never settle, so
                    // their source replays them.
                    if let Ok(back) = rx.await {
                        let _ = myself.cast(RegionRouterMsg::Returned(back));
                    }
                });
            }
            Err(MessagingErr::SendErr(RegionRouterMsg::Failover { events, .. })) => {
                self.switch(Mode::Buffering, "the peer region router is not running");
                self.buffer_all(events);
            }
            Err(_) => {}
        }
    }

    /// Buffers events; what does not fit goes to the DLQ.
    fn buffer_all(&mut self, events: Vec<InFlight>) {
        let now = self.now();
        let mut overflow = Vec::new();
        for mut item in events {
            let since = *item.since.get_or_insert(now);
            if let Err(item) = self.buffer.push(since, item) {
                overflow.push(item);
            }
        }
        if !overflow.is_empty() {
            self.dead_letter(overflow, "failover buffer full: no region took the event");
        }
    }

    /// Expires old buffered events to the DLQ and gives the rest another try.
    fn tick(&mut self, myself: &ActorRef<RegionRouterMsg>) {
        self.breaker.poll();
        let expired = self.buffer.expired(self.now());
        if !expired.is_empty() {
            self.dead_letter(
                expired,
                "no region took the event within routing.failover_max_wait_ms",
            );
        }
        if !self.buffer.is_empty() {
            let retry: Vec<InFlight> = self
                .buffer
                .take_all()
                .into_iter()
                .map(|(_, item)| item)
                .collect();
            self.dispatch_home(myself, retry);
        } else if self.mode == Mode::Ramp
            && self.breaker.state() == State::Closed
            && self.breaker.admit_fraction() >= 1.0
        {
            self.switch(Mode::Home, "the fail-back ramp is over");
        }
    }

    /// Logs a change of where home traffic goes, once per change.
    fn switch(&mut self, to: Mode, reason: &str) {
        if self.mode == to {
            return;
        }
        let from = self.mode;
        self.mode = to;
        match to {
            Mode::Home | Mode::Ramp => tracing::info!(
                region = %self.region,
                from = from.as_str(),
                to = to.as_str(),
                reason,
                "Routing switched."
            ),
            Mode::Failover | Mode::Buffering => tracing::warn!(
                region = %self.region,
                from = from.as_str(),
                to = to.as_str(),
                reason,
                "Routing switched."
            ),
        }
    }

    /// Sends events to the DLQ; each settles once the DLQ writer has them.
    fn dead_letter(&mut self, events: Vec<InFlight>, reason: &str) {
        if events.is_empty() {
            return;
        }
        self.dead_lettered += events.len() as u64;
        tracing::warn!(region = %self.region, count = events.len(), reason, "Cross-region events dead-lettered.");
        let now = Utc::now();
        let letters = events
            .iter()
            .map(|item| {
                let mut letter = DeadLetterEvent::new(
                    uuid::Uuid::new_v4().to_string(),
                    &item.event.payload,
                    DlqClass::Route,
                    reason,
                    "route",
                    item.event.source.clone(),
                    now,
                );
                if let Some(id) = &item.event.correlation_id {
                    letter = letter.with_correlation_id(id.clone());
                }
                letter
            })
            .collect();
        // A DLQ writer that is down leaves the acks unsettled, so the source replays.
        let Some(written) = send_letters(&self.dlq, letters) else {
            return;
        };
        tokio::spawn(async move {
            if written.await.is_ok() {
                for item in events {
                    item.settlement.one_done();
                }
            }
        });
    }
}

/// A permit, or none for events the breaker refused before any call.
#[derive(Debug)]
pub enum MaybePermit {
    /// The call's permit.
    Permit(Permit),
    /// No call was made.
    Refused,
}

impl MaybePermit {
    fn into_permit(self) -> Option<Permit> {
        match self {
            MaybePermit::Permit(p) => Some(p),
            MaybePermit::Refused => None,
        }
    }
}
