//! [`HealthProber`]: one per region. On the health interval it probes the region's DynamoDB
//! (`ListTables`), EventBridge (`ListEventBuses`) and SQS (`ListQueues`) at once, each under the
//! per-call timeout, classifies the round with [`eda_core::health`], and then
//!
//! - records each service's verdict in the metrics and in `/readyz`,
//! - publishes the round as a `HealthCheckEvent` on the region's own bus (`health.publish_events`),
//! - tells the region's router when its breaker must be forced open or may recover: on every
//!   change, on its first round (a prober restarted on its own cannot know what its earlier
//!   incarnation told the router, so a healthy first round lifts a forcing left behind), and,
//!   while the region stays unhealthy, on every round again (the beat the router's forced-open
//!   lease waits for: a forcing nobody repeats lapses into half-open trials).
//!
//! A round takes up to the call timeout, so it runs in a task of its own and comes back as a
//! message; a tick that finds the previous round still running is skipped.
//!
//! Crash points: the prober keeps nothing that outlives it. A prober that dies leaves its
//! router's breaker as it last said; its successor's first round says it again (and a forcing
//! nobody repeats lapses after the router's lease).

use crate::aws::RegionClients;
use crate::ports::{EventPublisher, SinkError};
use crate::region_router::RegionRouterMsg;
use crate::telemetry::{
    HealthProbed, HealthStatus, InternalEvent, Metrics, Readiness, Service as ServiceLabel,
};
use eda_config::HealthConfig;
use eda_core::eventbridge::EventBridgeEntry;
use eda_core::health::{
    HealthCheckEvent, HealthTracker, ProbeOutcome, ProbeResult, RegionHealth, Service, Status,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The health prober actor of one region.
#[derive(Debug, Clone, Copy, Default)]
pub struct HealthProber;

/// Messages the [`HealthProber`] handles.
#[derive(Debug)]
pub enum HealthProberMsg {
    /// Time for a round (from the interval timer).
    Tick,
    /// A round finished.
    RoundDone(Vec<ProbeResult>),
    /// The last round's verdict, for tests and tools.
    Last(RpcReplyPort<Option<RegionHealth>>),
    /// Test hook: panic in the handler, so a test can watch the supervisor restart the prober.
    InjectPanic,
}

/// How to build a [`HealthProber`].
pub struct HealthProberArgs {
    /// The region probed (its configured name).
    pub region: String,
    /// The region's SDK clients; their endpoints are what is probed.
    pub clients: RegionClients,
    /// Interval, per-call timeout, degraded threshold, rounds before forcing open.
    pub config: HealthConfig,
    /// The region's bus, where each round's `HealthCheckEvent` goes; `None` publishes nothing.
    pub events: Option<Arc<dyn EventPublisher>>,
    /// EventBridge `Source` of the health events (`publish.source`).
    pub source: String,
    /// `/readyz`, when this region's sinks are required for readiness.
    pub readiness: Option<Arc<Readiness>>,
    /// The region's router, told when its breaker must open or may recover.
    pub router: Option<ActorRef<RegionRouterMsg>>,
    /// Counters and gauges.
    pub metrics: Arc<Metrics>,
}

/// The [`HealthProber`]'s state.
pub struct HealthProberState {
    /// The arguments, kept whole.
    args: HealthProberArgs,
    /// Turns rounds into breaker signals only when the region's health changes.
    tracker: HealthTracker,
    /// Whether a round is running (a tick meanwhile is skipped).
    probing: bool,
    /// The last round's verdict.
    last: Option<RegionHealth>,
    /// The interval timer; stopped with the actor.
    timer: tokio::task::JoinHandle<()>,
}

impl Actor for HealthProber {
    type Msg = HealthProberMsg;
    type State = HealthProberState;
    type Arguments = HealthProberArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: HealthProberArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let interval = args.config.interval();
        let timer = {
            let myself = myself.clone();
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(interval);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    if myself.cast(HealthProberMsg::Tick).is_err() {
                        return;
                    }
                }
            })
        };
        Ok(HealthProberState {
            tracker: HealthTracker::new(&args.config),
            args,
            probing: false,
            last: None,
            timer,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: HealthProberMsg,
        state: &mut HealthProberState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            HealthProberMsg::Tick if !state.probing => {
                state.probing = true;
                let clients = state.args.clients.clone();
                let timeout = state.args.config.call_timeout();
                tokio::spawn(async move {
                    let probes = probe_region(&clients, timeout).await;
                    let _ = myself.cast(HealthProberMsg::RoundDone(probes));
                });
            }
            HealthProberMsg::Tick => {}
            HealthProberMsg::RoundDone(probes) => {
                state.probing = false;
                round_done(state, &probes);
            }
            HealthProberMsg::Last(reply) => {
                let _ = reply.send(state.last.clone());
            }
            HealthProberMsg::InjectPanic => panic!("HealthProber: panic injected by a test"),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut HealthProberState,
    ) -> Result<(), ActorProcessingErr> {
        state.timer.abort();
        Ok(())
    }
}

/// Classifies a round and tells everyone who listens.
fn round_done(state: &mut HealthProberState, probes: &[ProbeResult]) {
    let args = &state.args;
    let round = RegionHealth::from_probes(
        args.region.clone(),
        probes,
        &args.config,
        chrono::Utc::now(),
    );
    for service in &round.services {
        let label = service_label(service.service);
        HealthProbed {
            region: &args.region,
            service: label,
            status: status_label(service.status),
            latency: Duration::from_millis(service.latency_ms),
        }
        .emit(&args.metrics);
        if let Some(readiness) = &args.readiness {
            readiness.record_probe(label, &args.region, service.status != Status::Unhealthy);
        }
    }
    // A change (or this prober's first verdict: an earlier prober may have forced the breaker
    // open) is logged; while the region stays unhealthy the forcing is repeated every round, the
    // beat that keeps the router's forced-open lease.
    let changed = state.tracker.observe(&round);
    if let Some(signal) = &changed {
        tracing::info!(region = %args.region, signal = ?signal, "Region health verdict; telling its router.");
    }
    if let Some(signal) = changed.or_else(|| state.tracker.reassert(&round)) {
        if let Some(router) = &args.router {
            let _ = router.cast(RegionRouterMsg::Health(signal));
        }
    }
    if args.config.publish_events {
        if let Some(events) = args.events.clone() {
            publish(events, args.source.clone(), round.clone());
        }
    }
    state.last = Some(round);
}

/// Publishes one round as a `HealthCheckEvent`, off the actor. A failure is logged only: the
/// next round publishes again, and the router learned of the round already.
fn publish(events: Arc<dyn EventPublisher>, source: String, round: RegionHealth) {
    tokio::spawn(async move {
        let event = HealthCheckEvent::new(uuid::Uuid::new_v4(), vec![round]);
        let detail = match serde_json::to_string(&event) {
            Ok(detail) => detail,
            Err(err) => {
                tracing::error!(error = %err, "Health check event does not serialize.");
                return;
            }
        };
        let entry = EventBridgeEntry {
            source,
            detail_type: event.detail_type().to_string(),
            detail: detail.into(),
            resources: Vec::new(),
            time: None,
            event_bus_name: None,
            trace_header: None,
        };
        let result = events.put_events(std::slice::from_ref(&entry)).await;
        let error = match result {
            Ok(results) => results
                .into_iter()
                .find_map(Result::err)
                .map(|e| e.to_string()),
            Err(err) => Some(err.to_string()),
        };
        if let Some(error) = error {
            tracing::debug!(region = events.region(), %error, "Health check event not published.");
        }
    });
}

/// Probes the three services of one region at once, each under `timeout`. Shared with the
/// health-checker Lambda, which probes every region the same way.
pub async fn probe_region(clients: &RegionClients, timeout: Duration) -> Vec<ProbeResult> {
    let (dynamodb, eventbridge, sqs) = tokio::join!(
        probe(Service::DynamoDb, timeout, clients.probe_dynamodb()),
        probe(Service::EventBridge, timeout, clients.probe_eventbridge()),
        probe(Service::Sqs, timeout, clients.probe_sqs()),
    );
    vec![dynamodb, eventbridge, sqs]
}

async fn probe(
    service: Service,
    timeout: Duration,
    call: impl Future<Output = Result<(), SinkError>>,
) -> ProbeResult {
    let started = Instant::now();
    let outcome = match tokio::time::timeout(timeout, call).await {
        Ok(Ok(())) => ProbeOutcome::Ok,
        Ok(Err(error)) => ProbeOutcome::Error(error_text(&error)),
        Err(_) => ProbeOutcome::TimedOut,
    };
    let latency = match outcome {
        ProbeOutcome::TimedOut => timeout,
        _ => started.elapsed(),
    };
    ProbeResult {
        service,
        latency,
        outcome,
    }
}

/// The failure with its sources, short enough for an event field.
fn error_text(err: &SinkError) -> String {
    err.to_string().chars().take(300).collect()
}

fn service_label(service: Service) -> ServiceLabel {
    match service {
        Service::DynamoDb => ServiceLabel::DynamoDb,
        Service::EventBridge => ServiceLabel::EventBridge,
        Service::Sqs => ServiceLabel::Sqs,
    }
}

fn status_label(status: Status) -> HealthStatus {
    match status {
        Status::Healthy => HealthStatus::Healthy,
        Status::Degraded => HealthStatus::Degraded,
        Status::Unhealthy => HealthStatus::Unhealthy,
    }
}
