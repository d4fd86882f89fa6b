//! Two regions against the local stack, with the primary behind the fault proxy: the region
//! routers fail over when the primary is cut and fail back through half-open when it returns,
//! and the health probers tell a slow region from a dead one.

use super::fault_proxy::{Fault, FaultProxy};
use eda_actors::ack::Ack;
use eda_actors::aws::{EventBridgeClient, RegionClients, SqsDeadLetterQueue};
use eda_actors::dlq_writer::{DlqWriter, DlqWriterArgs, DlqWriterMsg};
use eda_actors::health_prober::{HealthProber, HealthProberArgs, HealthProberMsg};
use eda_actors::region_router::{
    owed_queue, region_publisher, spawn_router, RegionRouterMsg, RoutedEvent, RouterStatus,
    RouterWiring, CROSS_REGION_SOURCE,
};
use eda_actors::telemetry::Metrics;
use eda_config::{Config, RegionConfig};
use eda_core::breaker::State;
use eda_core::dead_letter::DeadLetterSource;
use eda_core::envelope::{Dictionary, EntryTarget, EnvelopeMeta, EnvelopePacker};
use eda_core::health::{RegionHealth, Status};
use eda_loadtest::history::{History, HistorySpec};
use eda_testkit::{envelope_of, init_logs, inspected_bus, local_config, Queue, Scenario, Sinks};
use ractor::{Actor, ActorRef};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The AWS stand-in (EventBridge, SQS) and DynamoDB Local, as `deploy/local/stack.sh` starts them.
const AWS: &str = "127.0.0.1:5000";
const DYNAMODB: &str = "127.0.0.1:8000";

/// One region's bus with its inspection queue.
struct RegionBus {
    /// The region's configuration, pointed at the bus.
    config: RegionConfig,
    /// Clients for that configuration (through the proxy, for the primary).
    clients: RegionClients,
    /// The queue every event on the bus is copied to, reached directly, never through the
    /// proxy.
    inspect: Queue,
}

/// A message seen on an inspection queue.
#[derive(Debug, Clone)]
struct Seen {
    /// Which region's queue.
    region: &'static str,
    /// When the test read it.
    at: Instant,
    /// The EventBridge event.
    event: Value,
}

/// Both regions' routers and probers, the primary's endpoints behind two fault proxies.
struct TwoRegions {
    config: Config,
    /// In front of the AWS stand-in (EventBridge, SQS).
    aws: FaultProxy,
    dynamodb: FaultProxy,
    routers: [ActorRef<RegionRouterMsg>; 2],
    probers: [ActorRef<HealthProberMsg>; 2],
    dlq: ActorRef<DlqWriterMsg>,
    seen: Arc<Mutex<Vec<Seen>>>,
    reading: Arc<AtomicBool>,
}

impl TwoRegions {
    /// Creates the buses and starts the actors with the default breaker and health settings.
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// The same, with `tune` applied to the local configuration first.
    async fn start_with(tune: impl FnOnce(&mut Config)) -> Self {
        let mut config = local_config();
        tune(&mut config);
        let aws = FaultProxy::start(AWS.parse().expect("address")).await;
        let dynamodb = FaultProxy::start(DYNAMODB.parse().expect("address")).await;
        let primary = region_bus(&config, &config.regions.primary, Some((&aws, &dynamodb))).await;
        let secondary = region_bus(&config, &config.regions.secondary, None).await;
        config.regions.primary = primary.config.clone();
        config.regions.secondary = secondary.config.clone();
        // Each region's owed queue (events owed to the other), reached directly.
        let direct = RegionClients::new(&local_config().regions.primary, &config.aws).await;
        config.regions.primary.owed_queue_url = Queue::create(&direct, "eda-owed").await.url;
        config.regions.secondary.owed_queue_url =
            Queue::create(&secondary.clients, "eda-owed").await.url;
        let metrics = Arc::new(Metrics::new());
        // Dead letters go to the secondary region, which the test never cuts.
        let dlq_url = Queue::create(&secondary.clients, "eda-dlq").await.url;
        let (dlq, _) = Actor::spawn(
            None,
            DlqWriter,
            DlqWriterArgs {
                sink: Arc::new(SqsDeadLetterQueue::new(
                    secondary.clients.sqs.clone(),
                    dlq_url,
                )),
                config: config.dlq.clone(),
                metrics: metrics.clone(),
            },
        )
        .await
        .expect("dlq writer");
        let router = |region: &RegionBus,
                      other: &RegionBus,
                      peer: Option<ActorRef<RegionRouterMsg>>| {
            let wiring = RouterWiring {
                dlq: dlq.clone(),
                peer,
                dictionary: None,
                metrics: metrics.clone(),
            };
            let publisher = region_publisher(&region.config, &region.clients);
            let owed = owed_queue(&config, &region.config, &other.clients);
            let home = config.regions.primary.name.clone();
            let (config, region) = (config.clone(), region.config.clone());
            async move { spawn_router(&config, &home, &region, publisher, owed, wiring, None).await }
        };
        let secondary_router = router(&secondary, &primary, None)
            .await
            .expect("secondary router");
        // Started with the secondary as its peer, it introduces itself back.
        let primary_router = router(&primary, &secondary, Some(secondary_router.clone()))
            .await
            .expect("primary router");
        let prober = |region: &RegionBus, router: &ActorRef<RegionRouterMsg>| HealthProberArgs {
            region: region.config.name.clone(),
            clients: region.clients.clone(),
            config: config.health.clone(),
            events: Some(Arc::new(EventBridgeClient::new(
                region.clients.lean_eventbridge.clone(),
                region.config.event_bus.clone(),
                region.config.name.clone(),
            ))),
            source: config.publish.source.clone(),
            readiness: None,
            router: Some(router.clone()),
            metrics: metrics.clone(),
        };
        let (primary_prober, _) =
            Actor::spawn(None, HealthProber, prober(&primary, &primary_router))
                .await
                .expect("primary prober");
        let (secondary_prober, _) =
            Actor::spawn(None, HealthProber, prober(&secondary, &secondary_router))
                .await
                .expect("secondary prober");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let reading = Arc::new(AtomicBool::new(true));
        for (name, bus) in [("primary", &primary), ("secondary", &secondary)] {
            tokio::spawn(read_queue(
                name,
                bus.inspect.clone(),
                seen.clone(),
                reading.clone(),
            ));
        }
        Self {
            config,
            aws,
            dynamodb,
            routers: [primary_router, secondary_router],
            probers: [primary_prober, secondary_prober],
            dlq,
            seen,
            reading,
        }
    }

    /// Applies `fault` to every endpoint of the primary region.
    fn cut(&self, fault: Fault) {
        self.aws.set(fault);
        self.dynamodb.set(fault);
    }

    async fn status(&self, i: usize) -> RouterStatus {
        ractor::call!(self.routers[i], RegionRouterMsg::Status).expect("router answers")
    }

    async fn last_round(&self, i: usize) -> Option<RegionHealth> {
        ractor::call!(self.probers[i], HealthProberMsg::Last).expect("prober answers")
    }

    /// Messages seen so far from `source`.
    fn seen_from(&self, source: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| s.event["source"] == source)
            .cloned()
            .collect()
    }

    fn stop(self) {
        self.reading.store(false, Ordering::SeqCst);
        for prober in &self.probers {
            prober.stop(None);
        }
        for router in &self.routers {
            router.stop(None);
        }
        self.dlq.stop(None);
    }
}

/// A bus and inspection queue in `region` (created directly); with proxies, the returned
/// configuration and clients point that region's endpoints at them.
async fn region_bus(
    config: &Config,
    region: &RegionConfig,
    proxies: Option<(&FaultProxy, &FaultProxy)>,
) -> RegionBus {
    let direct = RegionClients::new(region, &config.aws).await;
    let (bus, inspect) = inspected_bus(&direct).await;
    let mut region = region.clone();
    region.event_bus = bus;
    if let Some((aws, dynamodb)) = proxies {
        region.endpoints.eventbridge = Some(aws.url());
        region.endpoints.sqs = Some(aws.url());
        region.endpoints.dynamodb = Some(dynamodb.url());
    }
    let clients = RegionClients::new(&region, &config.aws).await;
    RegionBus {
        config: region,
        clients,
        inspect,
    }
}

/// Reads a queue into `seen` while `reading` holds.
async fn read_queue(
    region: &'static str,
    queue: Queue,
    seen: Arc<Mutex<Vec<Seen>>>,
    reading: Arc<AtomicBool>,
) {
    while reading.load(Ordering::SeqCst) {
        let bodies = queue.drain(10, Duration::from_millis(100)).await;
        if bodies.is_empty() {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        let at = Instant::now();
        let mut seen = seen.lock().expect("lock");
        for body in bodies {
            if let Ok(event) = serde_json::from_str::<Value>(&body) {
                seen.push(Seen { region, at, event });
            }
        }
    }
}

/// Demo-like payloads: the Qlik CDC messages of the loadtest's history generator.
fn demo_payloads(keys: usize) -> Vec<Vec<u8>> {
    History::generate(&HistorySpec {
        seed: 7,
        keys,
        changes_per_key: 4,
        duplicate_rate: 0.0,
        redelivery_rate: 0.0,
        poison: 0,
        ..HistorySpec::default()
    })
    .records
    .into_iter()
    .filter(|r| r.original)
    .map(|r| r.value)
    .collect()
}

/// Sends one event every `every` to the primary router until `running` clears; returns each
/// event's id with the receiver its acknowledgement settles.
async fn traffic(
    router: ActorRef<RegionRouterMsg>,
    running: Arc<AtomicBool>,
    every: Duration,
) -> Vec<(String, oneshot::Receiver<()>)> {
    let payloads = demo_payloads(200);
    let mut sent = Vec::new();
    let mut n = 0usize;
    while running.load(Ordering::SeqCst) {
        let event_id = format!("ev-{n:06}");
        let (tx, rx) = oneshot::channel();
        router
            .cast(RegionRouterMsg::Route {
                events: vec![RoutedEvent {
                    event_id: event_id.clone(),
                    event_type: "cdc.SALES.CUSTOMERS".into(),
                    correlation_id: None,
                    traceparent: None,
                    payload: payloads[n % payloads.len()].as_slice().into(),
                    created_at: chrono::Utc::now(),
                    source: DeadLetterSource::Lambda {
                        request_id: event_id.clone(),
                        function: "regions-test".into(),
                    },
                }],
                ack: Ack::Notify(tx),
            })
            .expect("router takes traffic");
        sent.push((event_id, rx));
        n += 1;
        tokio::time::sleep(every).await;
    }
    sent
}

/// Polls `check` every 50 ms until it holds or `within` passes; returns when it held.
async fn wait_until<F, Fut>(within: Duration, mut check: F) -> Option<Instant>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cutting_the_primary_fails_over_fast_and_fail_back_goes_through_half_open_losing_nothing() {
    outage_round_trip(Fault::Refuse).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_black_holed_primary_fails_over_fast_and_fails_back_losing_nothing() {
    outage_round_trip(Fault::BlackHole).await;
}

/// Traffic to the primary; `fault` on the primary, then off again: measures and checks
/// failover, fail-back through half-open, and that every event arrived.
async fn outage_round_trip(fault: Fault) {
    init_logs();
    let regions = TwoRegions::start().await;
    let running = Arc::new(AtomicBool::new(true));
    let sender = tokio::spawn(traffic(
        regions.routers[0].clone(),
        running.clone(),
        Duration::from_millis(100),
    ));

    // Steady state: cross-region events land on the primary's bus.
    let first_home = wait_until(Duration::from_secs(20), || async {
        regions
            .seen_from(CROSS_REGION_SOURCE)
            .iter()
            .any(|s| s.region == "primary")
    })
    .await;
    assert!(first_home.is_some(), "nothing reached the primary's bus");
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Cut the primary.
    let cut = Instant::now();
    regions.cut(fault);
    let failed_over = wait_until(Duration::from_secs(30), || async {
        regions
            .seen_from(CROSS_REGION_SOURCE)
            .iter()
            .any(|s| s.region == "secondary" && s.at > cut)
    })
    .await
    .expect("no event reached the secondary after the cut");
    let opened = wait_until(Duration::from_secs(30), || async {
        matches!(
            regions.status(0).await.state,
            State::Open | State::ForcedOpen
        )
    })
    .await
    .expect("the primary's breaker never opened");
    println!(
        "FAILOVER ({fault:?}): cut to first event delivered to the secondary: {} ms; cut to breaker open: {} ms",
        (failed_over - cut).as_millis(),
        (opened - cut).as_millis()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Restore it, and watch the breaker come back through half-open, then ramp.
    let restored = Instant::now();
    regions.cut(Fault::None);
    let mut states = vec![regions.status(0).await.state];
    let mut half_open_at = None;
    let mut closed_at = None;
    let mut during_ramp = (0usize, 0usize);
    let deadline = restored + Duration::from_secs(90);
    let ramp_over = loop {
        let status = regions.status(0).await;
        if states.last() != Some(&status.state) {
            states.push(status.state);
            match status.state {
                State::HalfOpen if half_open_at.is_none() => half_open_at = Some(Instant::now()),
                State::Closed => closed_at = Some(Instant::now()),
                _ => {}
            }
        }
        if status.state == State::Closed && status.admit_fraction >= 1.0 {
            break Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "the primary's breaker never closed and finished its ramp: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if let Some(closed) = closed_at {
        for s in regions.seen_from(CROSS_REGION_SOURCE) {
            if s.at > closed && s.at < ramp_over {
                match s.region {
                    "primary" => during_ramp.0 += 1,
                    _ => during_ramp.1 += 1,
                }
            }
        }
    }
    let first_home_again = regions
        .seen_from(CROSS_REGION_SOURCE)
        .iter()
        .filter(|s| s.region == "primary" && s.at > restored)
        .map(|s| s.at)
        .min();
    let ms = |t: Option<Instant>| {
        t.map_or("never".to_string(), |t| {
            format!("{} ms", (t - restored).as_millis())
        })
    };
    println!(
        "FAIL-BACK ({fault:?}): states {states:?}; restore to half-open {}, to first event home {}, to closed {}, to ramp over {}; during the ramp {} events home, {} to the secondary",
        ms(half_open_at),
        ms(first_home_again),
        ms(closed_at),
        ms(Some(ramp_over)),
        during_ramp.0,
        during_ramp.1
    );
    let half_open = states.iter().position(|s| *s == State::HalfOpen);
    let closed = states.iter().rposition(|s| *s == State::Closed);
    assert!(
        matches!((half_open, closed), (Some(h), Some(c)) if h < c),
        "fail-back did not go through half-open: {states:?}"
    );

    // Stop the traffic; every event must be delivered (acknowledged) and seen on a bus.
    running.store(false, Ordering::SeqCst);
    let sent = sender.await.expect("traffic task");
    let ids: HashSet<String> = sent.iter().map(|(id, _)| id.clone()).collect();
    let mut unsettled = 0;
    for (_, rx) in sent {
        if tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .is_err()
        {
            unsettled += 1;
        }
    }
    assert_eq!(unsettled, 0, "events whose delivery never settled");
    wait_until(Duration::from_secs(60), || async {
        let seen: HashSet<String> = regions
            .seen_from(CROSS_REGION_SOURCE)
            .iter()
            .filter_map(|s| s.event["detail"]["event_id"].as_str().map(str::to_string))
            .collect();
        ids.is_subset(&seen)
    })
    .await;
    let events = regions.seen_from(CROSS_REGION_SOURCE);
    let mut copies: HashMap<String, usize> = HashMap::new();
    let mut landed: HashMap<String, Vec<&str>> = HashMap::new();
    let (mut original, mut compressed) = (0u64, 0u64);
    for s in &events {
        if let Some(id) = s.event["detail"]["event_id"].as_str() {
            *copies.entry(id.to_string()).or_default() += 1;
            landed.entry(id.to_string()).or_default().push(s.region);
        }
        original += s.event["detail"]["original_size"].as_u64().unwrap_or(0);
        compressed += s.event["detail"]["compressed_size"].as_u64().unwrap_or(0);
    }
    let missing: Vec<&String> = ids.iter().filter(|id| !copies.contains_key(*id)).collect();
    let duplicated = copies.values().filter(|n| **n > 1).count();
    let mut where_duplicated: HashMap<String, usize> = HashMap::new();
    for regions in landed.values().filter(|r| r.len() > 1) {
        *where_duplicated.entry(regions.join("+")).or_default() += 1;
    }
    let (home, away) = events.iter().fold((0, 0), |(h, a), s| {
        if s.region == "primary" {
            (h + 1, a)
        } else {
            (h, a + 1)
        }
    });
    let primary = regions.status(0).await;
    let secondary = regions.status(1).await;
    println!(
        "EVENTS ({fault:?}): sent {}, delivered {} distinct ({home} on the primary, {away} on the secondary), missing {}, duplicated {duplicated} {where_duplicated:?}, dead-lettered {}; envelope compression {:.2}x ({original} -> {compressed} bytes, no dictionary)",
        ids.len(),
        copies.len(),
        missing.len(),
        primary.dead_lettered + secondary.dead_lettered,
        original as f64 / compressed.max(1) as f64
    );
    assert!(missing.is_empty(), "events lost: {missing:?}");
    assert_eq!(primary.dead_lettered + secondary.dead_lettered, 0);
    assert!(
        (failed_over - cut) <= Duration::from_secs(10),
        "failover took {} ms",
        (failed_over - cut).as_millis()
    );
    regions.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_region_is_degraded_not_unhealthy_and_its_health_events_carry_each_service() {
    init_logs();
    // A probe times out after 5 s here, not 1.5: the region is made slow by 0.8 s, and a
    // stand-in that stalls past 1.5 s on a saturated machine would read as down, which is not
    // what this test is about.
    let regions = TwoRegions::start_with(|config| config.health.call_timeout_ms = 5_000).await;
    let threshold = regions.config.health.degraded_threshold();
    // A round that was under way when the delay began is mixed (a probe answered before it,
    // another after); judge the first round that began after it. A round ends at most one call
    // timeout after it begins (one more second for a busy machine).
    let after_cut =
        chrono::Utc::now() + regions.config.health.call_timeout() + Duration::from_secs(1);
    regions.cut(Fault::Delay(threshold + Duration::from_millis(300)));
    // The round judged is the one that was found degraded (a later one may already be under
    // way when the loop ends).
    let found = Mutex::new(None);
    let degraded = wait_until(Duration::from_secs(20), || async {
        let round = regions.last_round(0).await;
        let hit = round
            .as_ref()
            .is_some_and(|r| r.checked_at > after_cut && r.status == Status::Degraded);
        *found.lock().expect("lock") = round;
        hit
    })
    .await;
    let round = found.into_inner().expect("lock").expect("a round");
    assert!(degraded.is_some(), "the slow region was judged {round:?}");
    for service in &round.services {
        assert_eq!(service.status, Status::Degraded, "{round:?}");
        assert!(
            service.latency_ms >= threshold.as_millis() as u64,
            "{round:?}"
        );
    }
    assert_eq!(
        regions.status(0).await.state,
        State::Closed,
        "slow is not down"
    );

    // Its HealthCheckEvents reach the inspection queue with every service's latency and status.
    let published = wait_until(Duration::from_secs(30), || async {
        regions
            .seen_from(&regions.config.publish.source)
            .iter()
            .any(|s| {
                s.region == "primary"
                    && s.event["detail-type"] == "health_check"
                    && s.event["detail"]["status"] == "degraded"
            })
    })
    .await;
    assert!(
        published.is_some(),
        "no degraded HealthCheckEvent reached the queue"
    );
    let event = regions
        .seen_from(&regions.config.publish.source)
        .into_iter()
        .find(|s| s.region == "primary" && s.event["detail"]["status"] == "degraded")
        .expect("event")
        .event;
    let services = event["detail"]["regions"][0]["services"]
        .as_array()
        .expect("services listed")
        .clone();
    let named: HashSet<&str> = services
        .iter()
        .filter_map(|s| s["service"].as_str())
        .collect();
    assert_eq!(named, HashSet::from(["dynamodb", "eventbridge", "sqs"]));
    for service in &services {
        assert_eq!(service["status"], "degraded", "{event}");
        assert!(service["latency_ms"].as_u64().is_some(), "{event}");
    }
    println!(
        "HEALTH: slow primary ({} ms added) judged {:?}; published {}",
        threshold.as_millis() + 300,
        round.status,
        event["detail"]
    );
    regions.stop();
}

#[test]
fn cross_region_compression_ratio_on_demo_traffic() {
    let payloads = demo_payloads(500);
    let routing = local_config().routing;
    let plain = eda_config::RoutingConfig {
        shipped_dictionary: false,
        ..routing.clone()
    };
    let ratio = |routing: &eda_config::RoutingConfig, dictionary: Option<Dictionary>| {
        let mut packer = EnvelopePacker::new(routing, dictionary).expect("packer");
        let (mut original, mut packed, mut entry) = (0usize, 0usize, 0usize);
        for (i, payload) in payloads.iter().enumerate() {
            let id = format!("ev-{i}");
            let meta = EnvelopeMeta {
                event_id: &id,
                source_region: "us-west-2",
                target_region: "us-east-1",
                event_type: "cdc.SALES.CUSTOMERS",
                correlation_id: None,
                traceparent: None,
                created_at: chrono::Utc::now(),
            };
            let target = EntryTarget {
                source: CROSS_REGION_SOURCE,
                event_bus_name: Some("eda-events"),
            };
            let p = packer
                .pack_entry(&meta, payload, &target, None)
                .expect("packs");
            original += p.envelope.original_size;
            packed += p.envelope.compressed_size;
            entry += p.entry.size();
        }
        (original, packed, entry)
    };
    for (name, routing, dictionary) in [
        ("no dictionary", &plain, None),
        (
            "shipped dictionary, from a file",
            &routing,
            Some(Dictionary::shipped().expect("shipped")),
        ),
        ("the default: the shipped dictionary", &routing, None),
    ] {
        let (original, packed, entry) = ratio(routing, dictionary);
        println!(
            "COMPRESSION ({name}): {} Qlik CDC messages, {original} -> {packed} bytes zstd = {:.2}x; whole EventBridge entries {entry} bytes ({:.2}x of the raw payloads)",
            payloads.len(),
            original as f64 / packed as f64,
            original as f64 / entry as f64
        );
        assert!(packed < original);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pipeline_replicates_change_events_to_the_secondary_region_as_envelopes() {
    init_logs();
    let mut scenario = Scenario::new(Sinks::create().await, 2).await;
    let history = History::generate(&HistorySpec {
        seed: 11,
        keys: 500,
        changes_per_key: 2,
        duplicate_rate: 0.0,
        redelivery_rate: 0.0,
        poison: 0,
        ..HistorySpec::default()
    });
    scenario.produce(&history.records).await;
    let config = &mut scenario.config;
    config.routing.replicate_tables = vec!["SALES.CUSTOMERS".into()];
    let secondary = region_bus(config, &config.regions.secondary, None).await;
    config.regions.secondary.event_bus = secondary.config.event_bus.clone();
    let reader = secondary.inspect.clone();
    let inspect = tokio::spawn(async move {
        reader
            .drain_until_distinct(history.changes, Duration::from_secs(90))
            .await
    });
    let (pipeline, _) = scenario.start().await;
    let config = &scenario.config;
    let bodies = inspect.await.expect("reader");
    let mut packer = EnvelopePacker::new(&config.routing, None).expect("packer");
    let mut ids = HashSet::new();
    for body in &bodies {
        let event: Value = serde_json::from_str(body).expect("JSON");
        let envelope = envelope_of(&event);
        assert_eq!(envelope.source_region, config.regions.primary.name);
        assert_eq!(envelope.target_region, config.regions.secondary.name);
        let change: Value =
            serde_json::from_slice(&packer.unpack(&envelope).expect("unpacks")).expect("JSON");
        assert_eq!(change["event_id"], envelope.event_id.as_str());
        ids.insert(envelope.event_id);
    }
    assert_eq!(
        ids.len(),
        history.changes,
        "one replicated event per change"
    );
    pipeline.shutdown().await;
}
