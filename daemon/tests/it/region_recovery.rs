//! Cross-region events are recovered: an event meant for a region that could not take it (its
//! EventBridge endpoint down, its breaker open) reaches that region once it is back, without an
//! operator; a route dead letter is redriven to its target region; a health prober restarted on
//! its own does not leave its router's breaker forced open.
//!
//! The pipeline tests put a fault proxy in front of each region's EventBridge endpoint only
//! (SQS and DynamoDB stay reachable), read both regions' buses through inspection queues, and
//! check what a user relies on: the table is the source's last images, every change's event
//! reached the primary's bus, every replicated change's event reached the secondary's bus after
//! it returned, no dead letters, and the group committed the end of every partition.

use super::fault_proxy::{Fault, FaultProxy};
use eda_actors::ack::Ack;
use eda_actors::aws::{RegionClients, SqsDeadLetterQueue};
use eda_actors::dlq_writer::{DlqWriter, DlqWriterArgs};
use eda_actors::health_prober::HealthProberMsg;
use eda_actors::pipeline::{Pipeline, PROBER_SECONDARY, ROUTER_SECONDARY};
use eda_actors::region_router::{
    RegionRouterMsg, RegionRouters, RoutedEvent, RouterStatus, CROSS_REGION_SOURCE,
};
use eda_actors::telemetry::Metrics;
use eda_config::Config;
use eda_core::breaker::State;
use eda_core::dead_letter::DeadLetterSource;
use eda_loadtest::history::{History, HistorySpec};
use eda_testkit::chaos::Outcome;
use eda_testkit::events::{event_ids, missing, owed_event_ids};
use eda_testkit::{envelope_of, init_logs, inspected_bus, local_config, Queue, Scenario, Sinks};
use ractor::{Actor, ActorRef};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The AWS stand-in (EventBridge, SQS), as `deploy/local/stack.sh` starts it.
const AWS: &str = "127.0.0.1:5000";

/// How long a region's EventBridge endpoint stays down.
const OUTAGE: Duration = Duration::from_secs(30);

/// How long the tests wait, after the last region returned, for every event to arrive.
const RECOVERY_WITHIN: Duration = Duration::from_secs(90);

/// Everything a queue reader saw, with when it saw it.
type Seen = Arc<Mutex<Vec<(Instant, Value)>>>;

/// Reads `queue` into `seen` until `reading` clears. Each message is received once and left
/// hidden for the rest of the test rather than deleted, so the reader keeps up with a busy
/// stand-in.
fn read_into(queue: Queue, seen: Seen, reading: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while reading.load(Ordering::SeqCst) {
            let Ok(bodies) = queue.receive_hidden(1, 43_200).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let at = Instant::now();
            let mut seen = seen.lock().expect("lock");
            for body in bodies {
                if let Ok(event) = serde_json::from_str::<Value>(&body) {
                    seen.push((at, event));
                }
            }
        }
    })
}

/// A pipeline run with each region's EventBridge endpoint behind a fault proxy and both regions'
/// buses read.
struct TwoBuses {
    scenario: Scenario,
    history: History,
    /// In front of the primary's EventBridge.
    primary: FaultProxy,
    /// In front of the secondary's EventBridge.
    secondary: FaultProxy,
    /// What the primary's bus carried.
    home: Seen,
    /// What the secondary's bus carried.
    away: Seen,
    reading: Arc<AtomicBool>,
    /// Every change's event id, with the change it belongs to.
    owed: BTreeMap<String, String>,
}

impl TwoBuses {
    /// A fresh topic with `history` on it, sinks in both regions, the proxies passing traffic.
    async fn prepare(history: History) -> Self {
        let mut scenario = Scenario::new(Sinks::create().await, 4).await;
        let config = &mut scenario.config;
        let secondary_clients = RegionClients::new(&config.regions.secondary, &config.aws).await;
        let (bus, away_queue) = inspected_bus(&secondary_clients).await;
        config.regions.secondary.event_bus = bus;
        // Every table's changes cross to the secondary.
        config.routing.replicate_tables = vec!["*".into()];
        // These outages refuse connections, which a probe and a breaker see at once. A stand-in
        // that stalls for a second or two on a saturated machine (CI runs these beside the
        // other suites) is no outage: with the defaults (1.5 s probe timeout, one bad round
        // forces the breaker, 2 s is a slow call) such a stall re-forced a recovering breaker,
        // each trip doubled its open wait, and the secondary stayed shut past the test's minute.
        config.health.call_timeout_ms = 5_000;
        config.breaker.slow_call_duration_ms = 10_000;
        let primary = FaultProxy::start(AWS.parse().expect("address")).await;
        let secondary = FaultProxy::start(AWS.parse().expect("address")).await;
        config.regions.primary.endpoints.eventbridge = Some(primary.url());
        config.regions.secondary.endpoints.eventbridge = Some(secondary.url());
        let owed = owed_event_ids(&history, config);
        scenario.produce(&history.records).await;
        let reading = Arc::new(AtomicBool::new(true));
        let (home, away) = (Seen::default(), Seen::default());
        let home_queue = scenario.sinks.inspect.clone().expect("inspected sinks");
        read_into(home_queue, home.clone(), reading.clone());
        read_into(away_queue, away.clone(), reading.clone());
        Self {
            scenario,
            history,
            primary,
            secondary,
            home,
            away,
            reading,
            owed,
        }
    }

    /// Change-event ids on the primary's bus.
    fn home_ids(&self) -> HashSet<String> {
        let seen = self.home.lock().expect("lock");
        let bodies: Vec<String> = seen.iter().map(|(_, e)| e.to_string()).collect();
        event_ids(&bodies)
    }

    /// Ids of the envelopes on the secondary's bus addressed to it, with how many copies each
    /// and when the last new one arrived.
    fn away_ids(&self) -> (HashMap<String, usize>, Option<Instant>) {
        let target = &self.scenario.config.regions.secondary.name;
        let seen = self.away.lock().expect("lock");
        let mut copies = HashMap::new();
        let mut last_new = None;
        for (at, event) in seen.iter() {
            if event["source"] != CROSS_REGION_SOURCE {
                continue;
            }
            let envelope = envelope_of(event);
            assert_eq!(&envelope.target_region, target, "{event}");
            let n = copies.entry(envelope.event_id).or_insert(0usize);
            if *n == 0 {
                last_new = Some(*at);
            }
            *n += 1;
        }
        (copies, last_new)
    }

    /// Waits until every change's event is on both buses, or `within` passes.
    async fn wait_for_events(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let home = self.home_ids();
            let (away, _) = self.away_ids();
            if self
                .owed
                .keys()
                .all(|id| home.contains(id) && away.contains_key(id))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The checks every outage ends with: the chaos suite's row (an event counts as seen when
    /// it is on the primary's bus and on the secondary's), then what the router counted.
    async fn check(self, name: &str, pipeline: Pipeline, metrics: Arc<Metrics>, returned: Instant) {
        let target = self.scenario.config.regions.secondary.name.clone();
        // When the router had delivered every owed event: what the system did, before the
        // test's own reading of the inspection queue (which lags it).
        let drained = {
            let (metrics, target) = (metrics.clone(), target.clone());
            tokio::spawn(async move {
                let deadline = Instant::now() + RECOVERY_WITHIN;
                while Instant::now() < deadline {
                    let recorded =
                        series(&metrics, "eda_region_events_owed_recorded_total", &target);
                    let recovered = series(&metrics, "eda_region_events_recovered_total", &target);
                    if let (Some(recorded), Some(recovered)) = (recorded, recovered) {
                        if recorded > 0.0 && recovered >= recorded {
                            return Some(Instant::now());
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                None
            })
        };
        let settled = self
            .scenario
            .settle(&self.history, Duration::from_secs(60), &[])
            .await;
        self.wait_for_events(RECOVERY_WITHIN).await;
        let recovery = returned.elapsed();
        let home = self.home_ids();
        let (away, _) = self.away_ids();
        let away_ids: HashSet<String> = away.keys().cloned().collect();
        let on_both: HashSet<String> = home.intersection(&away_ids).cloned().collect();
        let missing_home = missing(&self.owed, &home, 5);
        let missing_away = missing(&self.owed, &away_ids, 5);
        let offsets = self
            .scenario
            .committed_to_the_end(Duration::from_secs(30))
            .await;
        let letters = self.scenario.sinks.dlq.peek().await;
        let dead = self
            .scenario
            .sinks
            .dlq
            .depth()
            .await
            .expect("DLQ depth")
            .unwrap_or(0);
        let mut why = String::new();
        if !settled.mismatches.is_empty() {
            why.push_str(&format!("table: {settled}\n"));
        }
        if !missing_home.is_empty() {
            why.push_str(&format!(
                "{} change events never reached the primary's bus, e.g. {missing_home:#?}\n",
                self.owed.len() - self.owed.keys().filter(|id| home.contains(*id)).count()
            ));
        }
        if !missing_away.is_empty() {
            why.push_str(&format!(
                "{} replicated events never reached the secondary after it returned, e.g. {missing_away:#?}\n",
                self.owed.len() - self.owed.keys().filter(|id| away.contains_key(*id)).count()
            ));
        }
        if dead > 0 {
            why.push_str(&format!(
                "{dead} dead letters, e.g. {:?}\n",
                letters.first()
            ));
        }
        if let Err(short) = &offsets {
            why.push_str(&format!("offsets short of the end: {short}\n"));
        }
        let outcome = Outcome {
            scenario: name.to_string(),
            changes: self.history.changes,
            events_seen: self.owed.keys().filter(|id| on_both.contains(*id)).count(),
            duplicates: away.values().map(|n| n - 1).sum(),
            dead_letters: usize::try_from(dead).unwrap_or(usize::MAX),
            poison: 0,
            recovery,
            table_exact: settled.mismatches.is_empty(),
            offsets_at_end: offsets.is_ok(),
            why,
        };

        // The owed queue's gauge is sampled every few seconds: wait for a sample after the drain.
        let read = |name: &str| series(&metrics, name, &target);
        let mut waiting = read("eda_region_events_owed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while waiting != Some(0.0) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(250)).await;
            waiting = read("eda_region_events_owed");
        }
        let recorded = read("eda_region_events_owed_recorded_total").unwrap_or(0.0);
        let recovered = read("eda_region_events_recovered_total").unwrap_or(0.0);
        let drained = drained
            .await
            .expect("poller")
            .map_or("never".to_string(), |t| {
                format!(
                    "{:.1} s",
                    t.saturating_duration_since(returned).as_secs_f64()
                )
            });
        println!(
            "OWED ({name}): on the primary's bus {} , on the secondary's {} ; owed {recorded} , recovered {recovered} , still owed {waiting:?} ; the router drained the owed queue {drained} after the secondary returned",
            home.len(),
            away_ids.len(),
        );
        self.reading.store(false, Ordering::SeqCst);
        outcome.assert_nothing_lost();
        // Every owed record was delivered (the DLQ is empty and so is the owed queue).
        assert!(
            recorded >= 1.0 && recovered >= recorded,
            "the recovery is not counted: owed {recorded}, recovered {recovered}"
        );
        assert_eq!(
            waiting,
            Some(0.0),
            "the owed-events gauge does not show the queue empty"
        );
        pipeline.shutdown().await;
    }
}

/// A history of `keys` keys, three changes each, with the default replays and deletes.
fn outage_history(seed: u64, keys: usize) -> History {
    History::generate(&HistorySpec {
        seed,
        keys,
        changes_per_key: 3,
        poison: 0,
        ..HistorySpec::default()
    })
}

/// The secondary's EventBridge refuses for `outage` while the pipeline runs: every replicated
/// event must reach it afterwards.
pub(crate) async fn secondary_eventbridge_down(seed: u64, keys: usize, outage: Duration) {
    init_logs();
    let run = TwoBuses::prepare(outage_history(seed, keys)).await;
    run.secondary.set(Fault::Refuse);
    let (pipeline, obs) = run.scenario.start().await;
    tokio::time::sleep(outage).await;
    run.secondary.set(Fault::None);
    let returned = Instant::now();
    let name = format!(
        "EventBridge refusing in the secondary for {} s (events seen on both buses)",
        outage.as_secs()
    );
    run.check(&name, pipeline, obs.metrics.clone(), returned)
        .await;
}

/// Both regions' EventBridge refuse for `outage`; the primary's returns, the secondary's
/// `then` later.
pub(crate) async fn both_eventbridges_down_then_one(
    seed: u64,
    keys: usize,
    outage: Duration,
    then: Duration,
) {
    init_logs();
    let run = TwoBuses::prepare(outage_history(seed, keys)).await;
    run.primary.set(Fault::Refuse);
    run.secondary.set(Fault::Refuse);
    let (pipeline, obs) = run.scenario.start().await;
    tokio::time::sleep(outage).await;
    run.primary.set(Fault::None);
    tokio::time::sleep(then).await;
    run.secondary.set(Fault::None);
    let returned = Instant::now();
    let name = format!(
        "EventBridge refusing in both regions for {} s, the secondary {} s longer (events seen on both buses)",
        outage.as_secs(),
        then.as_secs()
    );
    run.check(&name, pipeline, obs.metrics.clone(), returned)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_secondary_gets_every_replicated_event_after_its_eventbridge_was_down_for_30_s() {
    secondary_eventbridge_down(41, 300, OUTAGE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_regions_eventbridge_down_then_the_primary_back_then_the_secondary_loses_nothing() {
    both_eventbridges_down_then_one(43, 300, OUTAGE, Duration::from_secs(15)).await;
}

/// The router of `name` in `pipeline`.
async fn router(pipeline: &Pipeline, name: &str) -> ActorRef<RegionRouterMsg> {
    pipeline.child(name).await.expect("router runs").into()
}

async fn status(router: &ActorRef<RegionRouterMsg>) -> RouterStatus {
    ractor::call!(router, RegionRouterMsg::Status).expect("router answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_health_prober_restarted_on_its_own_lifts_its_routers_forced_open_breaker() {
    init_logs();
    let run = TwoBuses::prepare(outage_history(47, 300)).await;
    run.secondary.set(Fault::Refuse);
    let (pipeline, obs) = run.scenario.start().await;
    let forced = wait_until(Duration::from_secs(30), || async {
        status(&router(&pipeline, ROUTER_SECONDARY).await)
            .await
            .state
            == State::ForcedOpen
    })
    .await;
    assert!(
        forced,
        "the secondary's prober never forced its breaker open"
    );

    // The prober dies while it holds the breaker open; the supervisor starts a fresh one.
    let prober: ActorRef<HealthProberMsg> = pipeline
        .child(PROBER_SECONDARY)
        .await
        .expect("prober runs")
        .into();
    prober
        .cast(HealthProberMsg::InjectPanic)
        .expect("prober takes the message");
    let restarted = wait_until(Duration::from_secs(30), || async {
        pipeline
            .child(PROBER_SECONDARY)
            .await
            .is_some_and(|cell| cell.get_id() != prober.get_id())
    })
    .await;
    assert!(restarted, "the supervisor did not restart the prober");

    // The region comes back: the fresh prober must let the breaker recover.
    run.secondary.set(Fault::None);
    let returned = Instant::now();
    let closed = wait_until(Duration::from_secs(60), || async {
        status(&router(&pipeline, ROUTER_SECONDARY).await)
            .await
            .state
            == State::Closed
    })
    .await;
    let state = status(&router(&pipeline, ROUTER_SECONDARY).await).await;
    let last_round = match pipeline.child(PROBER_SECONDARY).await {
        Some(cell) => {
            let prober: ActorRef<HealthProberMsg> = cell.into();
            ractor::call!(prober, HealthProberMsg::Last).ok().flatten()
        }
        None => None,
    };
    assert!(
        closed,
        "the secondary's breaker stayed {:?} after the region returned and the prober restarted: {state:?}; the prober's last round: {last_round:?}",
        state.state
    );
    println!(
        "PROBER RESTART: breaker closed {:.1} s after the region returned; {}",
        returned.elapsed().as_secs_f64(),
        obs.metrics
            .encode()
            .expect("metrics")
            .lines()
            .filter(|l| l.starts_with("eda_actor_restarts_total{actor=\"health_prober\""))
            .collect::<Vec<_>>()
            .join(" ")
    );
    run.check(
        "the secondary's prober killed while it held the breaker open (events seen on both buses)",
        pipeline,
        obs.metrics.clone(),
        returned,
    )
    .await;
}

/// The value of `name{region="<region>"}` in `metrics`' exposition.
fn series(metrics: &Metrics, name: &str, region: &str) -> Option<f64> {
    let prefix = format!("{name}{{region=\"{region}\"}} ");
    let text = metrics.encode().expect("metrics encode");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse::<f64>().ok())
}

/// Polls `check` every 100 ms until it holds or `within` passes.
async fn wait_until<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Routes through the Lambda shape's router pair (no health prober) with both regions'
/// EventBridge endpoints and the primary's SQS endpoint (where events owed to the secondary are
/// kept) down, so nothing can take the events and they end as route dead letters; once
/// everything is back, `dlq redrive` must deliver each to its target region.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn route_dead_letters_are_redriven_to_their_target_region() {
    init_logs();
    let mut config: Config = local_config();
    let direct = RegionClients::new(&config.regions.primary, &config.aws).await;
    let secondary_direct = RegionClients::new(&config.regions.secondary, &config.aws).await;
    let dlq = Queue::create(&direct, "eda-dlq").await;
    config.regions.primary.dlq_queue_url = dlq.url.clone();
    // Events owed to the secondary wait in the primary region, behind the cut SQS endpoint.
    let owed = Queue::create(&direct, "eda-owed").await;
    config.regions.primary.owed_queue_url = owed.url.clone();
    config.regions.secondary.owed_queue_url =
        Queue::create(&secondary_direct, "eda-owed").await.url;
    let (primary_bus, _) = inspected_bus(&direct).await;
    let (secondary_bus, away) = inspected_bus(&secondary_direct).await;
    config.regions.primary.event_bus = primary_bus;
    config.regions.secondary.event_bus = secondary_bus;
    let eventbridge = [
        FaultProxy::start(AWS.parse().expect("address")).await,
        FaultProxy::start(AWS.parse().expect("address")).await,
    ];
    let sqs = FaultProxy::start(AWS.parse().expect("address")).await;
    config.regions.primary.endpoints.eventbridge = Some(eventbridge[0].url());
    config.regions.secondary.endpoints.eventbridge = Some(eventbridge[1].url());
    config.regions.primary.endpoints.sqs = Some(sqs.url());
    config.routing.failover_max_wait_ms = 2_000;
    for proxy in eventbridge.iter().chain([&sqs]) {
        proxy.set(Fault::Refuse);
    }

    let metrics = Arc::new(Metrics::new());
    // The DLQ writer reaches the queue directly: the dead letters must land.
    let (writer, _) = Actor::spawn(
        None,
        DlqWriter,
        DlqWriterArgs {
            sink: Arc::new(SqsDeadLetterQueue::new(direct.sqs.clone(), dlq.url.clone())),
            config: config.dlq.clone(),
            metrics: metrics.clone(),
        },
    )
    .await
    .expect("dlq writer");
    let routers = RegionRouters::spawn(&config, &config.regions.primary, writer.clone(), metrics)
        .await
        .expect("routers");
    let payloads: Vec<(String, Vec<u8>)> = (0..25)
        .map(|i| {
            let id = format!("{}-{i:03}", eda_testkit::unique("redrive"));
            let detail = serde_json::json!({ "event_id": id, "n": i }).to_string();
            (id, detail.into_bytes())
        })
        .collect();
    let mut acks = Vec::new();
    for (id, payload) in &payloads {
        let (tx, rx) = oneshot::channel();
        routers
            .away
            .cast(RegionRouterMsg::Route {
                events: vec![RoutedEvent {
                    event_id: id.clone(),
                    event_type: "cdc.SALES.CUSTOMERS".into(),
                    correlation_id: None,
                    traceparent: None,
                    payload: payload.as_slice().into(),
                    created_at: chrono::Utc::now(),
                    source: DeadLetterSource::Lambda {
                        request_id: id.clone(),
                        function: "region-recovery-test".into(),
                    },
                }],
                ack: Ack::Notify(tx),
            })
            .expect("router takes traffic");
        acks.push(rx);
    }
    for rx in acks {
        tokio::time::timeout(Duration::from_secs(60), rx)
            .await
            .expect("every event settles (dead-lettered) while nothing takes it")
            .expect("settled, not dropped");
    }
    routers.stop();
    writer.stop(None);
    let letters = wait_until(Duration::from_secs(30), || async {
        dlq.depth().await.ok().flatten().unwrap_or(0) >= payloads.len() as u64
    })
    .await;
    assert!(letters, "the route dead letters never reached the DLQ");

    // Everything is back: the redrive delivers each letter to the region it was meant for.
    for proxy in eventbridge.iter().chain([&sqs]) {
        proxy.set(Fault::None);
    }
    let report = eda_actors::redrive::redrive(&config, 1_000)
        .await
        .expect("redrive runs");
    println!("REDRIVE: {report:?}");
    let markers: Vec<String> = payloads.iter().map(|(id, _)| id.clone()).collect();
    let found = away.find(&markers, Duration::from_secs(30)).await;
    let never: Vec<&String> = markers
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(m, _)| m)
        .collect();
    assert!(
        never.is_empty(),
        "redrive did not deliver {} route letters to the secondary (report {report:?}), e.g. {:?}",
        never.len(),
        &never[..never.len().min(3)]
    );
    for event in found.into_iter().flatten() {
        let envelope = envelope_of(&event);
        assert_eq!(envelope.target_region, config.regions.secondary.name);
    }
    assert_eq!(
        dlq.depth().await.expect("depth").unwrap_or(0),
        0,
        "redrive left letters in the DLQ: {report:?}"
    );
}

/// A prober that stops for good (no supervisor restarts it) while it holds its router's breaker
/// open: without its beats the forcing lapses into half-open trials once the region is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forcing_lapses_when_the_health_prober_that_made_it_stops() {
    init_logs();
    let mut config: Config = local_config();
    config.health.interval_ms = 500;
    let direct = RegionClients::new(&config.regions.primary, &config.aws).await;
    let secondary_direct = RegionClients::new(&config.regions.secondary, &config.aws).await;
    let dlq = Queue::create(&direct, "eda-dlq").await;
    config.regions.primary.dlq_queue_url = dlq.url.clone();
    config.regions.primary.owed_queue_url = Queue::create(&direct, "eda-owed").await.url;
    config.regions.secondary.owed_queue_url =
        Queue::create(&secondary_direct, "eda-owed").await.url;
    let proxy = FaultProxy::start(AWS.parse().expect("address")).await;
    config.regions.secondary.endpoints.eventbridge = Some(proxy.url());
    let metrics = Arc::new(Metrics::new());
    let (writer, _) = Actor::spawn(
        None,
        DlqWriter,
        DlqWriterArgs {
            sink: Arc::new(SqsDeadLetterQueue::new(direct.sqs.clone(), dlq.url.clone())),
            config: config.dlq.clone(),
            metrics: metrics.clone(),
        },
    )
    .await
    .expect("dlq writer");
    let routers = RegionRouters::spawn(
        &config,
        &config.regions.primary,
        writer.clone(),
        metrics.clone(),
    )
    .await
    .expect("routers");
    let (prober, _) = Actor::spawn(
        None,
        eda_actors::health_prober::HealthProber,
        eda_actors::health_prober::HealthProberArgs {
            region: config.regions.secondary.name.clone(),
            clients: RegionClients::new(&config.regions.secondary, &config.aws).await,
            config: config.health.clone(),
            events: None,
            source: config.publish.source.clone(),
            readiness: None,
            router: Some(routers.away.clone()),
            metrics,
        },
    )
    .await
    .expect("prober");

    proxy.set(Fault::Refuse);
    let forced = wait_until(Duration::from_secs(30), || async {
        status(&routers.away).await.state == State::ForcedOpen
    })
    .await;
    assert!(forced, "the prober never forced the breaker open");
    prober.stop(None);
    proxy.set(Fault::None);
    let stopped = Instant::now();
    let lease = eda_actors::region_router::health_lease(&config.health);
    let lifted = wait_until(lease + Duration::from_secs(10), || async {
        status(&routers.away).await.state != State::ForcedOpen
    })
    .await;
    let state = status(&routers.away).await;
    println!(
        "LEASE: {:.1} s after its prober stopped (lease {} ms) the breaker is {:?}",
        stopped.elapsed().as_secs_f64(),
        lease.as_millis(),
        state.state
    );
    assert!(
        lifted,
        "the breaker stayed forced open with no prober to lift it: {state:?}"
    );
    routers.stop();
    writer.stop(None);
}
