//! Retryable failures hold the partition; only permanent ones go to the DLQ. A dependency that
//! is down (here the Schema Registry, behind a fault proxy) stops the partitions that need it,
//! visibly (`/readyz`, `eda_kafka_partition_held`), and they go on unaided when it returns: the
//! table ends as the source, every change's event is on the bus, and nothing was dead-lettered.

use crate::fault_proxy::{Fault, FaultProxy};
use eda_loadtest::history::{History, HistorySpec};
use eda_testkit::{init_logs, Scenario, Sinks};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The local stack's Schema Registry.
const REGISTRY: &str = "127.0.0.1:8081";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schema_registry_outage_holds_the_partitions_and_dead_letters_nothing() {
    init_logs();
    let mut scenario = Scenario::new(Sinks::create().await, 4).await;
    scenario.config.kafka.format = eda_config::MessageFormat::QlikAvro;
    // The schema is registered directly; the pipeline reaches the registry through the proxy.
    let registry = eda_actors::kafka::schema_registry::SchemaRegistryClient::new(
        &scenario.config.schema_registry,
    )
    .expect("registry client");
    let id = registry
        .register(
            &eda_loadtest::avro::subject(&scenario.topic),
            eda_loadtest::avro::CUSTOMERS_SCHEMA,
        )
        .await
        .expect("schema registered");
    let proxy = FaultProxy::start(REGISTRY.parse::<SocketAddr>().expect("address")).await;
    proxy.set(Fault::Refuse);
    scenario.config.schema_registry.url = Some(proxy.url());
    scenario.config.schema_registry.timeout_ms = 1_000;

    let history = History::generate(&HistorySpec {
        seed: 8,
        keys: 300,
        changes_per_key: 3,
        encoding: eda_loadtest::history::Encoding::Avro(id),
        ..HistorySpec::default()
    });
    scenario.produce(&history.records).await;
    let events = {
        let queue = scenario.sinks.inspect.clone().expect("inspected sinks");
        let want = history.changes;
        tokio::spawn(async move {
            queue
                .drain_until_distinct(want, Duration::from_secs(180))
                .await
        })
    };
    let (pipeline, obs) = scenario.start().await;

    // The registry stays down for 20 s: every partition waits, says so, and loses nothing.
    let outage = Instant::now();
    let mut held_seen = false;
    while outage.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Err(not_ready) = obs.readiness.check() {
            held_seen |= not_ready.to_string().contains("held");
        }
    }
    let text = obs.metrics.encode().expect("metrics encode");
    assert!(
        held_seen,
        "/readyz never named a held partition during the outage"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("eda_kafka_partition_held{") && l.ends_with(" 1")),
        "a held partition shows in eda_kafka_partition_held: {text}"
    );
    assert_eq!(
        scenario.sinks.dlq.depth().await.expect("DLQ attributes"),
        Some(0),
        "an unreachable registry dead-letters nothing"
    );
    assert!(
        scenario.sinks.table.items().await.is_empty(),
        "nothing can be applied without the schema"
    );

    proxy.set(Fault::None);
    let settled = scenario
        .settle(&history, Duration::from_secs(120), &[])
        .await;
    assert!(
        settled.mismatches.is_empty(),
        "after the registry returned the table differs: {settled}"
    );
    let ids = eda_testkit::events::event_ids(&events.await.expect("event reader"));
    assert_eq!(ids.len(), history.changes, "every change's event");
    assert_eq!(
        scenario.sinks.dlq.depth().await.expect("DLQ attributes"),
        Some(0),
        "nothing dead-lettered"
    );
    let after = obs.readiness.check();
    assert!(
        after
            .as_ref()
            .err()
            .is_none_or(|e| !e.to_string().contains("held")),
        "no partition is held once the registry is back: {after:?}"
    );
    let text = obs.metrics.encode().expect("metrics encode");
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("eda_kafka_partition_held{") && l.ends_with(" 1")),
        "every hold is released: {text}"
    );
    pipeline.shutdown().await;
}

/// Which dependency of the primary region an outage takes down.
#[derive(Debug, Clone, Copy)]
enum Down {
    /// EventBridge: change events cannot be published.
    EventBridge,
    /// DynamoDB: changes cannot be applied.
    DynamoDb,
}

/// A history through a pipeline whose `down` endpoint refuses every connection for `outage`
/// from the start, then comes back: the table ends as the source, every change's event is on
/// the bus, and nothing is dead-lettered (a retryable failure holds; it never dead-letters).
async fn an_outage_loses_nothing(down: Down, outage: Duration) {
    init_logs();
    let mut scenario = Scenario::new(Sinks::create().await, 4).await;
    let upstream: SocketAddr = match down {
        Down::EventBridge => "127.0.0.1:5000",
        Down::DynamoDb => "127.0.0.1:8000",
    }
    .parse()
    .expect("address");
    let proxy = FaultProxy::start(upstream).await;
    proxy.set(Fault::Refuse);
    let endpoints = &mut scenario.config.regions.primary.endpoints;
    match down {
        Down::EventBridge => endpoints.eventbridge = Some(proxy.url()),
        Down::DynamoDb => endpoints.dynamodb = Some(proxy.url()),
    }
    let history = History::generate(&HistorySpec {
        seed: 13,
        keys: 300,
        changes_per_key: 3,
        duplicate_rate: 0.05,
        redelivery_rate: 0.05,
        ..HistorySpec::default()
    });
    scenario.produce(&history.records).await;
    let events = {
        let queue = scenario.sinks.inspect.clone().expect("inspected sinks");
        let want = history.changes;
        tokio::spawn(async move {
            queue
                .drain_until_distinct(want, Duration::from_secs(240))
                .await
        })
    };
    let (pipeline, _obs) = scenario.start().await;
    tokio::time::sleep(outage).await;
    assert_eq!(
        scenario.sinks.dlq.depth().await.expect("DLQ attributes"),
        Some(0),
        "{down:?} refusing for {outage:?} dead-letters nothing"
    );
    proxy.set(Fault::None);
    let settled = scenario
        .settle(&history, Duration::from_secs(120), &[])
        .await;
    assert!(
        settled.mismatches.is_empty(),
        "after {down:?} returned the table differs: {settled}"
    );
    let bodies = events.await.expect("event reader");
    let ids = eda_testkit::events::event_ids(&bodies);
    let owed = eda_testkit::events::owed_event_ids(&history, &scenario.config);
    assert_eq!(
        ids.len(),
        history.changes,
        "every change's event after {down:?} returned; missing: {:#?}",
        eda_testkit::events::missing(&owed, &ids, 20)
    );
    assert_eq!(
        scenario.sinks.dlq.depth().await.expect("DLQ attributes"),
        Some(0),
        "nothing dead-lettered"
    );
    pipeline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_eventbridge_outage_holds_the_events_and_dead_letters_nothing() {
    an_outage_loses_nothing(Down::EventBridge, Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dynamodb_outage_holds_the_changes_and_dead_letters_nothing() {
    an_outage_loses_nothing(Down::DynamoDb, Duration::from_secs(20)).await;
}
