//! Retryable failures hold the partition; only permanent ones go to the DLQ. A dependency that
//! is down (the Schema Registry, EventBridge or DynamoDB, behind a fault proxy) stops the work
//! that needs it, and it goes on unaided when the dependency returns: the table ends as the
//! source, every change's event is on the bus, nothing was dead-lettered, and the commits reach
//! the end. A held partition says so (`/readyz`, `eda_kafka_partition_held`).
//!
//! [`outage`] is also the chaos suite's outage scenario (`chaos.rs`, with 30 s outages).

use crate::fault_proxy::{Fault, FaultProxy};
use eda_loadtest::history::{Encoding, History, HistorySpec};
use eda_testkit::chaos::{judge, watch_events, Outcome};
use eda_testkit::{init_logs, Scenario, Sinks};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A dependency of the primary region an outage takes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Down {
    /// EventBridge: change events cannot be published.
    EventBridge,
    /// DynamoDB: changes cannot be applied.
    DynamoDb,
    /// The Schema Registry (an Avro topic): messages cannot be decoded.
    SchemaRegistry,
}

impl Down {
    /// The local stack's server behind the dependency.
    fn upstream(self) -> SocketAddr {
        match self {
            Down::EventBridge => "127.0.0.1:5000",
            Down::DynamoDb => "127.0.0.1:8000",
            Down::SchemaRegistry => "127.0.0.1:8081",
        }
        .parse()
        .expect("address")
    }
}

/// A history with replays and deletes through an in-process pipeline whose `down` dependency
/// suffers `fault` for `length` from the start, then returns. While it lasts nothing may be
/// dead-lettered (and a held partition must say so); afterwards the whole contract is judged.
pub async fn outage(down: Down, fault: Fault, length: Duration, keys: usize) -> Outcome {
    init_logs();
    let mut scenario = Scenario::new(Sinks::create().await, 4).await;
    let proxy = FaultProxy::start(down.upstream()).await;
    proxy.set(fault);
    let mut encoding = Encoding::Json;
    match down {
        Down::EventBridge => {
            scenario.config.regions.primary.endpoints.eventbridge = Some(proxy.url());
        }
        Down::DynamoDb => scenario.config.regions.primary.endpoints.dynamodb = Some(proxy.url()),
        Down::SchemaRegistry => {
            // The schema is registered directly; the pipeline reaches the registry through the
            // proxy.
            let id = scenario.use_avro().await;
            encoding = Encoding::Avro(id);
            scenario.config.schema_registry.url = Some(proxy.url());
            scenario.config.schema_registry.timeout_ms = 1_000;
        }
    }
    let history = History::generate(&HistorySpec {
        seed: 13,
        keys,
        changes_per_key: 3,
        encoding,
        ..HistorySpec::default()
    });
    scenario.produce(&history.records).await;
    let events = watch_events(&scenario, &history, length + Duration::from_secs(240));
    let (pipeline, obs) = scenario.start().await;

    let started = Instant::now();
    let mut held_seen = false;
    while started.elapsed() < length {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Err(not_ready) = obs.readiness.check() {
            held_seen |= not_ready.to_string().contains("held");
        }
    }
    assert_eq!(
        scenario.sinks.dlq.depth().await.expect("DLQ attributes"),
        Some(0),
        "{down:?} {fault:?} for {length:?} dead-letters nothing"
    );
    if down == Down::SchemaRegistry {
        assert!(
            held_seen,
            "/readyz never named a held partition during the outage"
        );
        let text = obs.metrics.encode().expect("metrics encode");
        assert!(
            held_series(&text).any(|held| held),
            "a held partition shows in eda_kafka_partition_held: {text}"
        );
        assert!(
            scenario.sinks.table.items().await.is_empty(),
            "nothing can be applied without the schema"
        );
    }

    proxy.set(Fault::None);
    let lifted = Instant::now();
    let name = format!("{down:?} {} for {} s", fault_name(fault), length.as_secs());
    let outcome = judge(
        &name,
        &scenario,
        &history,
        events,
        0,
        lifted,
        Duration::from_secs(180),
    )
    .await;
    let after = obs.readiness.check();
    assert!(
        after
            .as_ref()
            .err()
            .is_none_or(|e| !e.to_string().contains("held")),
        "no partition is held once {down:?} is back: {after:?}"
    );
    let text = obs.metrics.encode().expect("metrics encode");
    assert!(
        !held_series(&text).any(|held| held),
        "every hold is released: {text}"
    );
    pipeline.shutdown().await;
    outcome
}

/// Whether each `eda_kafka_partition_held` series says held.
fn held_series(text: &str) -> impl Iterator<Item = bool> + '_ {
    text.lines()
        .filter(|l| l.starts_with("eda_kafka_partition_held{"))
        .map(|l| l.ends_with(" 1"))
}

/// How a fault reads in a chaos row.
pub fn fault_name(fault: Fault) -> &'static str {
    match fault {
        Fault::None => "passing",
        Fault::Refuse => "refusing",
        Fault::BlackHole => "black-holed",
        Fault::Delay(_) => "slow",
        Fault::Stall(_) => "stalling some calls",
        Fault::Answer(_) => "answering with an error",
    }
}

/// DynamoDB's answer to a write over the table's throughput: a throttle, worth another attempt.
const DYNAMODB_THROTTLE: &str = "HTTP/1.1 400 Bad Request\r\n\
    Content-Type: application/x-amz-json-1.0\r\n\
    Content-Length: 171\r\n\r\n\
    {\"__type\":\"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException\",\
    \"message\":\"The level of configured provisioned throughput for the table was exceeded.\"}";

/// A load balancer's 503 in front of EventBridge: no AWS error code, not even JSON. A server's
/// failure, worth another attempt, whatever its body says.
const PLAIN_503: &str = "HTTP/1.1 503 Service Unavailable\r\n\
    Content-Type: text/html\r\n\
    Content-Length: 19\r\n\r\n\
    Service Unavailable";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dynamodb_throttling_every_write_holds_the_changes_and_dead_letters_nothing() {
    outage(
        Down::DynamoDb,
        Fault::Answer(DYNAMODB_THROTTLE),
        Duration::from_secs(20),
        300,
    )
    .await
    .assert_nothing_lost();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_eventbridge_answering_a_bare_503_holds_the_events_and_dead_letters_nothing() {
    outage(
        Down::EventBridge,
        Fault::Answer(PLAIN_503),
        Duration::from_secs(20),
        300,
    )
    .await
    .assert_nothing_lost();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schema_registry_outage_holds_the_partitions_and_dead_letters_nothing() {
    outage(
        Down::SchemaRegistry,
        Fault::Refuse,
        Duration::from_secs(20),
        300,
    )
    .await
    .assert_nothing_lost();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_eventbridge_outage_holds_the_events_and_dead_letters_nothing() {
    outage(
        Down::EventBridge,
        Fault::Refuse,
        Duration::from_secs(20),
        300,
    )
    .await
    .assert_nothing_lost();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dynamodb_outage_holds_the_changes_and_dead_letters_nothing() {
    outage(Down::DynamoDb, Fault::Refuse, Duration::from_secs(20), 300)
        .await
        .assert_nothing_lost();
}
