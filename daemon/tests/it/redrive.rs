//! `eda-daemon dlq redrive` at its edges: a dead letter older than the tombstones could bring a
//! deleted row back, so it is refused (and reported, one by one, and counted) unless forced; and
//! a dead letter is decoded again with the Kafka key it was read with.

use eda_core::dead_letter::{DeadLetterEvent, DeadLetterSource};
use eda_core::failure::{ErrorClass, Stage};
use eda_loadtest::history::{qlik_message, sequence, Record, KEY_COLUMN};
use eda_testkit::{init_logs, local_config_path, unique, Scenario, Sinks};
use serde_json::{Map, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `dlq redrive` on the local configuration pointed at `scenario`'s sinks, with `args`;
/// returns the exit code and the JSON report.
fn redrive(scenario: &Scenario, args: &[&str]) -> (Option<i32>, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_eda-daemon"))
        .args(["dlq", "redrive", "--max", "10", "--config"])
        .arg(local_config_path())
        .args(args)
        .envs(scenario.env())
        .output()
        .expect("redrive runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|_| {
        panic!(
            "not a JSON report: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}

/// Waits until the DLQ shows `count` messages (a letter a redrive left becomes visible again).
async fn dlq_shows(scenario: &Scenario, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while scenario.sinks.dlq.depth().await.expect("DLQ attributes") != Some(count) {
        assert!(Instant::now() < deadline, "the DLQ never showed {count}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An INSERT that failed to decode eight days ago (the tombstones live seven, the default
/// `apply.tombstone_ttl_secs`): the row may have been deleted since and its tombstone reaped, so
/// a replay could bring it back. The redrive refuses it, leaves it in the queue, says so per
/// letter and counts it; forced, it replays it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_letter_older_than_the_tombstones_is_refused_unless_forced() {
    init_logs();
    let scenario = Scenario::new(Sinks::create_uninspected().await, 1).await;
    // A short visibility timeout, so a letter a redrive leaves is back for the next one soon.
    scenario
        .sinks
        .clients
        .sqs
        .set_queue_attributes()
        .queue_url(&scenario.sinks.dlq.url)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "1",
        )
        .send()
        .await
        .expect("visibility timeout set");
    let key = unique("old");
    let mut row = Map::new();
    row.insert(KEY_COLUMN.into(), key.clone().into());
    row.insert("EMAIL".into(), "deleted-since@example.com".into());
    let failed_at = chrono::Utc::now() - chrono::Duration::days(8);
    let letter = DeadLetterEvent::new(
        unique("letter"),
        &qlik_message("INSERT", &sequence(1), &row, None),
        ErrorClass::Decode,
        "key of SALES.CUSTOMERS: no key columns known",
        Stage::Decode,
        DeadLetterSource::Kafka {
            topic: scenario.topic.as_str().into(),
            partition: 0,
            offset: 0,
        },
        failed_at,
    );
    scenario
        .sinks
        .clients
        .sqs
        .send_message()
        .queue_url(&scenario.sinks.dlq.url)
        .message_body(letter.to_sqs_body(256 * 1024).expect("a body"))
        .send()
        .await
        .expect("letter sent");
    let pk = format!("SALES.CUSTOMERS#{key}");

    let (code, report) = redrive(&scenario, &[]);
    println!("REDRIVE (not forced): exit {code:?}, {report}");
    assert!(
        !scenario.sinks.table.items().await.contains_key(&pk),
        "the old INSERT was replayed into the table: {report}"
    );
    assert_eq!(code, Some(2), "letters stayed in the queue: {report}");
    assert_eq!(report["replayed"], 0, "{report}");
    let refused = &report["refused_older_than_tombstones"];
    assert_eq!(refused[0]["id"], letter.id.as_str(), "{report}");
    assert_eq!(refused[0]["stage"], "decode", "{report}");
    assert!(
        refused[0]["age_secs"].as_i64() >= Some(8 * 24 * 3600),
        "{report}"
    );

    // Refused again, and counted where an operator's scrape sees it.
    dlq_shows(&scenario, 1).await;
    let metrics = std::env::temp_dir().join(format!("{}.prom", unique("redrive-metrics")));
    let (code, _) = redrive(
        &scenario,
        &["--metrics-file", metrics.to_str().expect("a UTF-8 path")],
    );
    assert_eq!(code, Some(2));
    let text = std::fs::read_to_string(&metrics).expect("metrics written");
    assert!(
        text.lines().any(|l| l == "eda_dlq_redrive_refused_total 1"),
        "{text}"
    );
    let _ = std::fs::remove_file(Path::new(&metrics));

    // Forced: replayed, and reported as forced.
    dlq_shows(&scenario, 1).await;
    let (code, report) = redrive(&scenario, &["--force-older-than-tombstones"]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["replayed"], 1, "{report}");
    assert_eq!(
        report["forced_older_than_tombstones"][0]["id"],
        letter.id.as_str(),
        "{report}"
    );
    assert!(scenario.sinks.table.items().await.contains_key(&pk));
}

/// A Debezium topic read, by mistake, as Qlik JSON: its message is dead-lettered at decode.
/// The operator fixes `kafka.format` and redrives: the message's key columns are only in its
/// Kafka key (no `kafka.key_columns` for the table), which the letter kept, so it applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redriven_letter_is_decoded_with_its_kafka_key() {
    init_logs();
    let mut scenario = Scenario::new(Sinks::create_uninspected().await, 1).await;
    let id = 1_000_000 + (uuid_number() % 1_000_000);
    let value = include_str!("../../../core/tests/fixtures/debezium/mysql_insert.json")
        .replace("1005", &id.to_string());
    scenario
        .produce(&[Record {
            key: Some(format!(r#"{{"id":{id}}}"#)),
            partition: None,
            value: value.into_bytes(),
            original: true,
        }])
        .await;
    let (pipeline, _) = scenario.start().await;
    dlq_shows(&scenario, 1).await;
    pipeline.shutdown().await;

    scenario.config.kafka.format = eda_config::MessageFormat::Debezium;
    let report = eda_actors::redrive::redrive(&scenario.config, 10)
        .await
        .expect("redrive runs");
    println!("REDRIVE (Debezium): {report:?}");
    let pk = format!("inventory.customers#{id}");
    let items = scenario.sinks.table.items().await;
    assert!(
        items.contains_key(&pk),
        "{pk} not applied; report {report:?}; DLQ now: {:?}",
        scenario.sinks.dlq.peek().await
    );
}

/// A number of this run's own, for a key no other run uses.
fn uuid_number() -> u64 {
    let text = unique("n");
    text.bytes().fold(0u64, |acc, b| {
        acc.wrapping_mul(31).wrapping_add(u64::from(b))
    })
}
