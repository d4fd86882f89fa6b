//! A stuck partition is visible and bounded. The first message of a partition names an item whose
//! DynamoDB writes hang (the fault proxy stalls every request that names it, while every other
//! item is written): the messages behind it settle, but the commit cannot pass it. Reading stops
//! at the partition's in-flight bound (messages, or bytes), the lag against the committed offset
//! shows what waits, the age of the oldest unsettled message grows, and once the item can be
//! written again everything completes: the table ends as the source, every change's event is on
//! the bus, nothing is dead-lettered and the group commits to the end.

use crate::fault_proxy::{Fault, FaultProxy};
use eda_loadtest::history::{History, HistorySpec};
use eda_testkit::{init_logs, Scenario, Sinks};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// DynamoDB Local.
const DYNAMODB: &str = "127.0.0.1:8000";

/// How long the head stays stuck while the test watches.
const STUCK_FOR: Duration = Duration::from_secs(10);

/// What bounds the partition's reading in a run.
#[derive(Debug, Clone, Copy)]
enum Bound {
    /// `kafka.max_in_flight_per_partition`.
    Messages(usize),
    /// `kafka.max_in_flight_bytes_per_partition`, with messages of about `padding` bytes.
    Bytes { budget: u64, padding: usize },
}

/// The value of the series `name{topic="..",partition="0"}` (or `name{topic=".."}` when the
/// family has no partition label) in an OpenMetrics text.
fn series(text: &str, name: &str, topic: &str) -> Option<f64> {
    let topic = format!("topic=\"{topic}\"");
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(&topic))
        .find(|l| !l.contains("partition=") || l.contains("partition=\"0\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Payload and key bytes of a record: what the byte bound counts.
fn size(record: &eda_loadtest::history::Record) -> u64 {
    (record.value.len() + record.key.as_ref().map_or(0, String::len)) as u64
}

async fn a_stuck_head_is_bounded_and_visible(bound: Bound) {
    init_logs();
    let mut scenario = Scenario::new(Sinks::create().await, 1).await;
    let spec = match bound {
        Bound::Messages(_) => HistorySpec {
            seed: 21,
            keys: 200,
            changes_per_key: 3,
            ..HistorySpec::default()
        },
        Bound::Bytes { padding, .. } => HistorySpec {
            seed: 22,
            keys: 60,
            changes_per_key: 2,
            padding,
            ..HistorySpec::default()
        },
    };
    let history = History::generate(&spec);
    match bound {
        Bound::Messages(limit) => {
            scenario.config.kafka.max_in_flight_per_partition = limit;
            scenario.config.kafka.batch_max = 10;
        }
        Bound::Bytes { budget, .. } => {
            scenario.config.kafka.max_in_flight_bytes_per_partition = budget;
            scenario.config.kafka.batch_max = 10;
        }
    }
    // The item of the partition's first message hangs in DynamoDB; every other one is written.
    let head = history.records[0]
        .key
        .clone()
        .expect("a keyed first record");
    let item = head.rsplit('#').next().expect("pk ends with the key");
    let pattern: &'static [u8] = format!("#{item}\"").into_bytes().leak();
    let proxy = FaultProxy::start(DYNAMODB.parse::<SocketAddr>().expect("address")).await;
    proxy.set(Fault::Stall(pattern));
    scenario.config.regions.primary.endpoints.dynamodb = Some(proxy.url());
    // The stall hangs every request naming the item: only with one request per write does it
    // hang that item's write alone. Gathered, the statements sharing its call would hang with it
    // (for `aws.attempt_timeout_ms`, then be retried apart) — this test is about the partition.
    scenario.config.apply.batch_statements = 1;

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
    let (pipeline, obs) = scenario.start().await;
    let topic = scenario.topic.clone();

    // Stuck: watch the partition for a while.
    scenario
        .sinks
        .table
        .wait_until_applied(1, Duration::from_secs(60))
        .await;
    let watching = Instant::now();
    let mut ages = Vec::new();
    while watching.elapsed() < STUCK_FOR {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let text = obs.metrics.encode().expect("metrics encode");
        ages.push(series(&text, "eda_kafka_oldest_unsettled_seconds", &topic));
    }
    // Consumed first, committed after: the commit only moves forward, so what was read then is
    // at most the bound past what is committed now.
    let text = obs.metrics.encode().expect("metrics encode");
    let consumed =
        series(&text, "eda_kafka_messages_consumed_total", &topic).unwrap_or(0.0) as usize;
    let lag = series(&text, "eda_kafka_consumer_lag_messages", &topic);
    let committed =
        eda_testkit::topic::committed_offsets(&scenario.brokers, &topic, scenario.group(), vec![0])
            .await
            .expect("committed offsets")
            .get(&0)
            .copied()
            .flatten();
    let applied = scenario.sinks.table.items().await.len();
    let report = format!(
        "{bound:?}: {consumed} of {} messages consumed, committed {committed:?}, {applied} items \
         written, lag {lag:?}, oldest unsettled (s) {ages:?}",
        history.records.len()
    );
    eprintln!("[stuck] {report}");
    assert!(
        committed.unwrap_or(0) == 0,
        "the stuck head holds the commit: {report}"
    );
    assert!(
        applied > 0,
        "the items behind the head are written meanwhile: {report}"
    );
    match bound {
        Bound::Messages(limit) => assert!(
            consumed <= limit,
            "reading stops at {limit} messages in flight: {report}"
        ),
        Bound::Bytes { budget, .. } => {
            let in_flight: u64 = history.records[..consumed.min(history.records.len())]
                .iter()
                .map(size)
                .sum();
            assert!(
                in_flight <= budget,
                "reading stops at {budget} bytes in flight, read {in_flight}: {report}"
            );
        }
    }
    // Everything was produced before the pipeline started and nothing is committed: the lag is
    // the whole partition (the local broker's ListOffsets answer is far below that; its fetch
    // responses are not).
    assert_eq!(
        lag,
        Some(history.records.len() as f64),
        "the lag against the committed offset counts every message not committed: {report}"
    );
    let seen: Vec<f64> = ages.iter().flatten().copied().collect();
    assert!(
        seen.len() >= 2 && seen.last() > seen.first() && seen[0] > 0.0,
        "the age of the oldest unsettled message grows while stuck: {report}"
    );

    // Unstuck: everything completes.
    proxy.set(Fault::None);
    let settled = scenario
        .settle(&history, Duration::from_secs(120), &[])
        .await;
    assert!(
        settled.mismatches.is_empty(),
        "after the head was unstuck the table differs: {settled}"
    );
    scenario
        .committed_to_the_end(Duration::from_secs(60))
        .await
        .expect("the group commits to the end once the head settles");
    let ids = eda_testkit::events::event_ids(&events.await.expect("event reader"));
    assert_eq!(ids.len(), history.changes, "every change's event");
    assert_eq!(
        scenario.sinks.dlq.depth().await.expect("DLQ attributes"),
        Some(0),
        "nothing dead-lettered"
    );
    // The gauges come back to 0 at the next measurement.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = obs.metrics.encode().expect("metrics encode");
        let lag = series(&text, "eda_kafka_consumer_lag_messages", &topic);
        let age = series(&text, "eda_kafka_oldest_unsettled_seconds", &topic);
        if lag == Some(0.0) && age == Some(0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lag {lag:?} and oldest unsettled {age:?} come back to 0 once everything settled"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    pipeline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stuck_head_stops_reading_at_the_in_flight_limit_and_shows_in_lag_and_age() {
    a_stuck_head_is_bounded_and_visible(Bound::Messages(40)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stuck_head_stops_reading_at_the_in_flight_bytes() {
    a_stuck_head_is_bounded_and_visible(Bound::Bytes {
        budget: 200_000,
        padding: 20_000,
    })
    .await;
}
