//! The daemon's `/metrics` while traffic flows: valid for promtool, every metric of the reference
//! (`docs/metrics.md`) declared, a real Prometheus server scraping it sees messages being
//! consumed, and every batch the appliers start passes all three stages of
//! `eda_apply_stage_duration_seconds`.

use super::crash::{log_path, Daemon};
use eda_actors::telemetry::reference::{families, populated, to_prometheus_text};
use eda_loadtest::history::{History, HistorySpec};
use eda_loadtest::kafka;
use eda_testkit::local::BROKERS;
use eda_testkit::{free_port, Scenario, Sinks};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Series every running pipeline exposes once traffic has flowed; the other families of the
/// reference appear with their events (a dead letter, a restart, a breaker transition, a probe
/// or a Lambda invocation), which a healthy run does not produce.
const PIPELINE_FAMILIES: &[&str] = &[
    "eda_kafka_messages_consumed_total{",
    "eda_kafka_consumer_lag_messages{",
    "eda_kafka_processing_duration_seconds_bucket{",
    "eda_kafka_end_to_end_duration_seconds_bucket{",
    "eda_cdc_events_total{",
    "eda_dynamodb_operations_total{",
    "eda_eventbridge_events_published_total{",
    "eda_apply_stage_duration_seconds_bucket{",
    "eda_aws_call_duration_seconds_bucket{",
];

/// The value of the series `series` (name and labels as encoded) in a `/metrics` text.
fn value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_cover_the_reference_and_prometheus_sees_traffic() {
    let scenario = Scenario::new(Sinks::create_uninspected().await, 4).await;
    let port = free_port();
    let mut env = scenario.env();
    env.retain(|(k, _)| k != "EDA_HTTP__LISTEN");
    env.push(("EDA_HTTP__LISTEN".into(), format!("127.0.0.1:{port}")));
    let mut daemon = Daemon::start(&env, &log_path("scrape-daemon"));

    // Traffic for the whole test: a batch of changes every 200 ms.
    let producer = kafka::producer(BROKERS).expect("producer");
    let traffic_topic = scenario.topic.clone();
    let traffic = tokio::spawn(async move {
        for round in 0..300u64 {
            let history = History::generate(&HistorySpec {
                seed: round,
                keys: 20,
                changes_per_key: 2,
                sequence_base: 20260201000000 + round,
                ..HistorySpec::default()
            });
            if kafka::produce(&producer, &traffic_topic, &history.records)
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });

    let url = format!("http://127.0.0.1:{port}/metrics");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        if let Ok(response) = client.get(&url).send().await {
            let body = response.text().await.unwrap_or_default();
            if PIPELINE_FAMILIES
                .iter()
                .all(|f| body.contains(&format!("\n{f}")))
            {
                break body;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no traffic in /metrics within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (deploy/local/install.sh installs it)");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(to_prometheus_text(&body).as_bytes())
        .expect("written");
    let out = promtool.wait_with_output().expect("promtool exits");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Nothing on /metrics that the reference (`docs/metrics.md`) does not document, with the same
    // type and labels.
    let reference = families(&populated().encode().expect("reference encodes"));
    for family in families(&body).into_iter().filter(|f| f.has_series) {
        let documented = reference.iter().find(|r| r.name == family.name);
        let documented =
            documented.unwrap_or_else(|| panic!("{} is not in docs/metrics.md", family.name));
        assert_eq!(
            (&family.kind, &family.labels),
            (&documented.kind, &documented.labels),
            "{}",
            family.name
        );
    }

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/prometheus/scrape-check.sh"
    );
    let out = Command::new("bash")
        .args([script, &format!("127.0.0.1:{port}"), "60"])
        .output()
        .expect("scrape-check runs");
    assert!(
        out.status.success(),
        "a real Prometheus did not see the counter increase: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));

    traffic.abort();
    // Once the traffic stops and what was read settles, every batch started has passed all
    // three stages: the three counts meet (a stage skipped or counted twice would keep them
    // apart), at or above the messages settled (every message of this history goes through an
    // applier: no poison, none without a change), and the per-message calls were timed.
    let stage = |body: &str, name: &str| {
        value(
            body,
            &format!("eda_apply_stage_duration_seconds_count{{stage=\"{name}\"}}"),
        )
        .unwrap_or(0.0)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let (body, counts) = loop {
        let body = client
            .get(&url)
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("body");
        let counts = ["wait", "write", "deliver"].map(|s| stage(&body, s));
        if counts[0] > 0.0 && counts.iter().all(|&c| c == counts[0]) {
            break (body, counts);
        }
        assert!(
            Instant::now() < deadline,
            "the stage counts never met after the traffic stopped: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let settled = value(
        &body,
        &format!(
            "eda_kafka_processing_duration_seconds_count{{topic=\"{}\"}}",
            scenario.topic
        ),
    )
    .expect("the topic's read-to-settled count");
    let since_produced = value(
        &body,
        &format!(
            "eda_kafka_end_to_end_duration_seconds_count{{topic=\"{}\"}}",
            scenario.topic
        ),
    )
    .expect("the topic's end-to-end count");
    assert_eq!(
        since_produced, settled,
        "every settled message (they all carry a create time) has its time since produced"
    );
    assert!(
        counts[0] >= settled,
        "{counts:?} stage passes for {settled} messages settled"
    );
    for operation in ["batch_execute_statement", "put_events"] {
        let calls = body
            .lines()
            .filter(|l| {
                l.starts_with("eda_aws_call_duration_seconds_count{")
                    && l.contains(&format!("operation=\"{operation}\""))
            })
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum::<f64>();
        assert!(calls > 0.0, "no {operation} call timed");
    }

    daemon.signal("-TERM");
    let status = daemon
        .wait(Duration::from_secs(30))
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status}");
}
