//! Qlik table structure outlives the process that read it: with no `kafka.key_columns`
//! configured, the key of a table comes only from Qlik's metadata (`MD`) message, which sits at
//! the head of each partition. A restart resumes after it (its offset is committed), and another
//! pod may read the table's data without ever reading it; neither may turn good data into dead
//! letters. Also the store itself against DynamoDB Local (each version recorded once, an older
//! one replayed never wins), and a store that does not answer (a port nobody listens on).

use crate::crash::{log_path, Daemon};
use crate::fault_proxy::{Fault, FaultProxy};
use eda_actors::aws::{DynamoDbTableStructures, RegionClients};
use eda_actors::kafka::message_decoder::MessageDecoder;
use eda_actors::kafka::table_structures::TableStructures;
use eda_actors::pipeline::{table_structures, Observability, Pipeline};
use eda_actors::ports::TableStructureStore;
use eda_core::cdc::{ColumnMetadata, KafkaCoordinates, TableMetadata, TableRef};
use eda_core::failure::ErrorClass;
use eda_loadtest::history::{qlik_metadata_message, History, HistorySpec};
use eda_testkit::local::BROKERS;
use eda_testkit::scenario::PARTITIONS;
use eda_testkit::topic::fresh_topic;
use eda_testkit::{
    free_port, init_logs, local_config, local_config_path, unique, Scenario, Sinks, Table,
};
use std::sync::Arc;
use std::time::Duration;

/// A history whose table is described only by its metadata messages, one at the head of each of
/// `partitions` partitions.
fn described_history(seed: u64, partitions: i32) -> History {
    History::generate(&HistorySpec {
        seed,
        keys: 400,
        changes_per_key: 4,
        duplicate_rate: 0.05,
        redelivery_rate: 0.05,
        metadata_partitions: partitions,
        ..HistorySpec::default()
    })
}

/// The pipeline is stopped once part of the history is applied (the metadata messages, first in
/// every partition, are committed by then) and started again on the rest: the table ends as the
/// source, every change's event is seen, nothing is dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_after_the_metadata_messages_dead_letters_nothing() {
    init_logs();
    let mut scenario = Scenario::new(Sinks::create().await, PARTITIONS).await;
    scenario.config.kafka.key_columns.clear();
    let history = described_history(16, PARTITIONS);
    let events = {
        let queue = scenario.sinks.inspect.clone().expect("inspected sinks");
        let want = history.changes;
        tokio::spawn(async move {
            queue
                .drain_until_distinct(want, Duration::from_secs(240))
                .await
        })
    };

    let half = history.records.len() / 2;
    scenario.produce(&history.records[..half]).await;
    let (first, _) = scenario.start().await;
    scenario
        .sinks
        .table
        .wait_until_applied(100, Duration::from_secs(60))
        .await;
    first.shutdown().await;
    scenario.produce(&history.records[half..]).await;

    let (second, _) = scenario.start().await;
    let settled = scenario
        .settle(&history, Duration::from_secs(120), &[])
        .await;
    assert!(
        settled.mismatches.is_empty(),
        "after the restart the table differs: {settled}"
    );
    let bodies = events.await.expect("event reader");
    let ids = eda_testkit::events::event_ids(&bodies);
    let owed = eda_testkit::events::owed_event_ids(&history, &scenario.config);
    assert_eq!(owed.len(), history.changes, "the history's changes decode");
    assert_eq!(
        ids.len(),
        history.changes,
        "every source change's event ({} events read); missing: {:#?}",
        bodies.len(),
        eda_testkit::events::missing(&owed, &ids, 30)
    );
    assert_eq!(
        scenario.sinks.dlq.depth().await.expect("DLQ attributes"),
        Some(0),
        "nothing dead-lettered"
    );
    second.shutdown().await;
}

/// The same with the daemon process, killed with SIGKILL once part of the history is applied
/// (whatever it was doing), then started again as a rescheduled pod would be, on a configuration
/// without `kafka.key_columns`: the table ends as the source and nothing is dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_after_the_metadata_messages_dead_letters_nothing_after_its_restart() {
    let scenario = Scenario::new(Sinks::create_uninspected().await, PARTITIONS).await;
    let history = described_history(19, PARTITIONS);
    scenario.produce(&history.records).await;
    let config = without_key_columns("metadata-kill");
    let env = scenario.env();
    let table = &scenario.sinks.table;

    let (first_log, second_log) = (
        log_path("metadata-kill-first"),
        log_path("metadata-kill-second"),
    );
    let first = Daemon::start_on(&config, &env, &first_log);
    table.wait_until_applied(100, Duration::from_secs(60)).await;
    first.signal("-KILL");
    drop(first);
    let after_kill = table.items().await.len();
    assert!(
        after_kill < history.expected.len(),
        "the kill came after the run finished ({after_kill} items); the test proves nothing"
    );
    // The killed member is dropped after the session timeout (6 s here); restart after it.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let mut second = Daemon::start_on(&config, &env, &second_log);
    let settled = scenario
        .settle(
            &history,
            Duration::from_secs(120),
            &[&first_log, &second_log],
        )
        .await;
    assert!(
        settled.mismatches.is_empty(),
        "after kill -9 and restart the table differs: {settled}"
    );
    assert_eq!(
        scenario.sinks.dlq.depth().await.expect("DLQ attributes"),
        Some(0),
        "nothing dead-lettered"
    );
    second.signal("-TERM");
    let status = second
        .wait(Duration::from_secs(30))
        .expect("the daemon exits after SIGTERM");
    assert!(status.success(), "graceful exit code 0, got {status}");
}

/// `config/local.toml` without its `kafka.key_columns` (an environment variable can add keys to
/// a table but not remove one), written for a daemon process; returns its path.
pub fn without_key_columns(name: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(local_config_path()).expect("config/local.toml");
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| !line.starts_with("key_columns"))
        .collect();
    assert!(
        kept.len() < text.lines().count(),
        "local.toml had key_columns"
    );
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.toml"));
    std::fs::write(&path, kept.join("\n")).expect("config written");
    path
}

/// DynamoDB refuses connections while the metadata messages arrive (through a fault proxy, for
/// the table-structure store and the applier alike): the partitions are held, nothing is
/// dead-lettered for an unknown key; once DynamoDB is back, the structures are recorded and the
/// table ends as the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metadata_messages_wait_for_an_unreachable_store_instead_of_dead_lettering() {
    init_logs();
    let mut scenario = Scenario::new(Sinks::create_uninspected().await, PARTITIONS).await;
    scenario.config.kafka.key_columns.clear();
    let proxy = FaultProxy::start("127.0.0.1:8000".parse().expect("address")).await;
    proxy.set(Fault::Refuse);
    scenario.config.regions.primary.endpoints.dynamodb = Some(proxy.url());
    let history = described_history(20, PARTITIONS);
    scenario.produce(&history.records).await;
    let (pipeline, obs) = scenario.start().await;

    let started = std::time::Instant::now();
    let mut held_seen = false;
    while started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Err(not_ready) = obs.readiness.check() {
            held_seen |= not_ready.to_string().contains("held");
        }
    }
    assert!(held_seen, "/readyz never named a held partition");
    assert_eq!(
        scenario.sinks.dlq.depth().await.expect("DLQ attributes"),
        Some(0),
        "nothing dead-lettered while the store is unreachable"
    );
    proxy.set(Fault::None);
    let settled = scenario
        .settle(&history, Duration::from_secs(120), &[])
        .await;
    assert!(
        settled.mismatches.is_empty(),
        "after DynamoDB returned the table differs: {settled}"
    );
    assert_eq!(
        scenario.sinks.dlq.depth().await.expect("DLQ attributes"),
        Some(0),
        "nothing dead-lettered"
    );
    pipeline.shutdown().await;
}

/// Another pod (a pipeline of its own group, on a topic of its own) is already running when a
/// first pod reads the table's metadata message; then the table's data reaches the second pod,
/// which never sees a metadata message: it decodes every change (the table ends as the source)
/// and dead-letters nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pod_that_never_read_the_metadata_message_decodes_the_table() {
    init_logs();
    let mut described = Scenario::new(Sinks::create_uninspected().await, 1).await;
    described.config.kafka.key_columns.clear();
    let history = described_history(17, 1);
    let (metadata, data) = history.records.split_at(1);

    let mut other = described.config.clone();
    let data_topic = fresh_topic(PARTITIONS).await;
    other.kafka.topics = vec![data_topic.clone()];
    other.kafka.group_id = unique("eda-test-group");
    let other = Arc::new(other);
    let second_pod = Pipeline::start(other.clone(), Observability::new(&other))
        .await
        .expect("the second pod starts");

    // The first pod reads the metadata message and a few changes after it (one partition: the
    // metadata message is handled before the first item is written).
    described.produce(metadata).await;
    described.produce(&data[..20]).await;
    let (first_pod, _) = described.start().await;
    described
        .sinks
        .table
        .wait_until_applied(1, Duration::from_secs(60))
        .await;

    let producer = eda_loadtest::kafka::producer(BROKERS).expect("producer");
    eda_loadtest::kafka::produce(&producer, &data_topic, data)
        .await
        .expect("produced");
    let mismatches = described
        .sinks
        .table
        .wait_for(&history, Duration::from_secs(120))
        .await;
    assert!(
        mismatches.is_empty(),
        "the second pod's table differs: {}",
        described
            .sinks
            .explain(
                &mismatches,
                Some((BROKERS, &data_topic, &other.kafka.group_id)),
                &[],
            )
            .await
    );
    assert_eq!(
        described.sinks.dlq.depth().await.expect("DLQ attributes"),
        Some(0),
        "nothing dead-lettered"
    );
    first_pod.shutdown().await;
    second_pod.shutdown().await;
}

fn at(offset: i64) -> Option<KafkaCoordinates> {
    Some(KafkaCoordinates {
        topic: "qlik.cdc".into(),
        partition: 0,
        offset,
    })
}

/// `ORDERS` at `version`, keyed by `key` (in key order).
fn orders(version: i64, key: &[&str], offset: i64) -> TableMetadata {
    let columns = key
        .iter()
        .enumerate()
        .map(|(i, name)| ColumnMetadata {
            name: name.to_string(),
            ordinal: i as i64 + 1,
            data_type: "STRING".into(),
            primary_key_position: i as i64 + 1,
        })
        .collect();
    TableMetadata::new(TableRef::new("SALES", "ORDERS"), version, columns).read_at(at(offset))
}

/// Each version is recorded once: an older structure replayed after a newer one is kept beside
/// it, never over it; the same version read again elsewhere (a resent metadata message) leaves
/// the first recording in place, and that process takes the recorded one; a fresh process loads
/// them all and keys with the newest.
#[tokio::test]
async fn the_store_keeps_each_version_once_and_an_older_replay_never_wins() {
    let config = local_config();
    let clients = RegionClients::new(&config.regions.primary, &config.aws).await;
    let name = Table::create_metadata(&clients.dynamodb).await;
    let store = Arc::new(DynamoDbTableStructures::new(clients.dynamodb.clone(), name));
    let (v1, v2) = (
        orders(1, &["ORDER_ID"], 0),
        orders(2, &["ORDER_ID", "REGION"], 10),
    );

    let first = TableStructures::new(store.clone());
    first.record(v2.clone()).await.expect("v2 recorded");
    first.record(v1.clone()).await.expect("v1 replayed");
    assert_eq!(first.snapshot().1.get("SALES", "ORDERS"), Some(&v2));

    let second = TableStructures::new(store.clone());
    second
        .record(orders(2, &["OTHER"], 5_000))
        .await
        .expect("v2 again");
    assert_eq!(
        second.snapshot().1.get("SALES", "ORDERS"),
        Some(&v2),
        "the recorded version 2 stands"
    );

    let third = TableStructures::new(store.clone());
    assert_eq!(third.load().await.expect("loads"), 2);
    assert_eq!(
        third.snapshot().1.versions("SALES", "ORDERS"),
        [v1.clone(), v2.clone()]
    );
    assert_eq!(
        store.versions("SALES.ORDERS").await.expect("query"),
        [v1, v2]
    );
}

/// A store nobody answers for (a free port): the metadata message and the data messages fail to
/// decode with a retryable class (connection refused), so they are held, not dead-lettered.
#[tokio::test]
async fn a_store_that_does_not_answer_fails_decoding_as_retryable() {
    let mut config = local_config();
    config.regions.primary.endpoints.dynamodb = Some(format!("http://127.0.0.1:{}", free_port()));
    config.kafka.key_columns.clear();
    let clients = RegionClients::new(&config.regions.primary, &config.aws).await;
    let mut decoder = MessageDecoder::new(&config.kafka, None, table_structures(&config, &clients));
    let history = described_history(18, 1);
    for (offset, record) in history.records[..2].iter().enumerate() {
        let origin = at(offset as i64).expect("coordinates");
        let failure = decoder
            .decode(Some(&record.value), None, origin, None)
            .await
            .expect_err("the store is needed and does not answer");
        assert_eq!(failure.class, ErrorClass::Connect, "{failure:?}");
        assert!(failure.class.is_retryable());
        assert!(
            failure.message.contains("table structure store"),
            "{failure:?}"
        );
    }
    assert_eq!(
        history.records[0].value,
        qlik_metadata_message(1),
        "the first is the metadata message"
    );
}

/// A metadata table that does not exist is a configuration error: the pipeline does not start,
/// and the error names the table and the key to fix (no message is read, none dead-lettered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_metadata_table_stops_the_start_and_names_it() {
    let mut scenario = Scenario::new(Sinks::create_uninspected().await, 1).await;
    scenario.config.regions.primary.metadata_table = unique("eda-no-such-table");
    let config = Arc::new(scenario.config.clone());
    let err = Pipeline::start(config.clone(), Observability::new(&config))
        .await
        .err()
        .expect("the pipeline does not start")
        .to_string();
    assert!(
        err.contains(&config.regions.primary.metadata_table)
            && err.contains("regions.primary.metadata_table"),
        "{err}"
    );
}
