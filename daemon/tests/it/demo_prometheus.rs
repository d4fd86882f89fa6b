//! The demo's Prometheus (`deploy/local/prometheus.sh`, which `make demo` starts): on a daemon
//! process with traffic, it holds the daemon's series, has every alert rule of
//! `deploy/prometheus/alerts.yml` loaded and evaluating, serves the graph whose URL it prints
//! (each of its queries valid), and `stop` ends the server by its PID.

use super::crash::{log_path, Daemon};
use eda_loadtest::history::{History, HistorySpec};
use eda_testkit::{free_port, Scenario, Sinks};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/local/prometheus.sh");
const ALERTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/prometheus/alerts.yml"
);

/// The script's Prometheus; stopped by its script (by PID) on drop if the test did not.
struct DemoPrometheus {
    dir: PathBuf,
}

impl DemoPrometheus {
    fn stop(&self) -> std::process::Output {
        Command::new("bash")
            .arg(SCRIPT)
            .arg("stop")
            .arg(&self.dir)
            .output()
            .expect("prometheus.sh runs")
    }

    fn pid(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join("pid"))
            .ok()
            .map(|s| s.trim().to_string())
    }
}

impl Drop for DemoPrometheus {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn alive(pid: &str) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

async fn api(client: &reqwest::Client, base: &str, path: &str, query: Option<&str>) -> Value {
    let mut url = reqwest::Url::parse(&format!("{base}/api/v1/{path}")).expect("URL");
    if let Some(query) = query {
        url.query_pairs_mut().append_pair("query", query);
    }
    let response = client
        .get(url)
        .send()
        .await
        .expect("the Prometheus API answers");
    response.json().await.expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_prometheus_holds_the_daemons_series_loads_the_rules_and_serves_the_graph() {
    let scenario = Scenario::new(Sinks::create_uninspected().await, 4).await;
    let port = free_port();
    let mut env = scenario.env();
    env.retain(|(k, _)| k != "EDA_HTTP__LISTEN");
    env.push(("EDA_HTTP__LISTEN".into(), format!("127.0.0.1:{port}")));
    let mut daemon = Daemon::start(&env, &log_path("demo-prometheus-daemon"));
    let history = History::generate(&HistorySpec {
        seed: 19,
        keys: 100,
        changes_per_key: 3,
        ..HistorySpec::default()
    });
    scenario.produce(&history.records).await;

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(eda_testkit::unique("demo-prom"));
    let prom_port = free_port();
    let prometheus = DemoPrometheus { dir: dir.clone() };
    let out = Command::new("bash")
        .arg(SCRIPT)
        .arg("start")
        .arg(format!("127.0.0.1:{port}"))
        .arg(&dir)
        .arg(prom_port.to_string())
        .output()
        .expect("prometheus.sh runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the demo's Prometheus starts");
    let base = format!("http://127.0.0.1:{prom_port}");
    let graph = stdout
        .lines()
        .find_map(|l| l.strip_prefix("[prometheus] graph: "))
        .expect("a graph URL is printed")
        .to_string();
    assert!(
        graph.starts_with(&format!("{base}/graph?g0.expr=")),
        "{graph}"
    );

    // The daemon's series, scraped.
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    let consumed = loop {
        let answer = api(
            &client,
            &base,
            "query",
            Some("sum(eda_kafka_messages_consumed_total)"),
        )
        .await;
        let value = answer["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if value >= history.records.len() as f64 {
            break value;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus holds no consumed count of the history within 90 s: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!("eda_kafka_messages_consumed_total in Prometheus: {consumed}");
    for series in [
        "eda_cdc_events_total",
        "eda_eventbridge_events_published_total",
        "eda_kafka_consumer_lag_messages",
        "eda_circuit_breaker_state",
    ] {
        let answer = api(&client, &base, "query", Some(series)).await;
        assert!(
            answer["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty()),
            "{series} is in Prometheus: {answer}"
        );
    }

    // Every alert rule of alerts.yml loaded, and evaluated without error.
    let want = std::fs::read_to_string(ALERTS)
        .expect("alerts.yml")
        .lines()
        .filter(|l| l.trim_start().starts_with("- alert:"))
        .count();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = api(&client, &base, "rules", None).await;
        let rules: Vec<&Value> = answer["data"]["groups"]
            .as_array()
            .expect("rule groups")
            .iter()
            .flat_map(|g| g["rules"].as_array().expect("rules"))
            .collect();
        assert_eq!(rules.len(), want, "every rule of alerts.yml is loaded");
        let unhealthy: Vec<String> = rules
            .iter()
            .filter(|r| r["health"] != "ok")
            .map(|r| format!("{}: {} {}", r["name"], r["health"], r["lastError"]))
            .collect();
        if unhealthy.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rules not evaluating: {unhealthy:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The graph page is served, and each of its queries is valid; the rates show traffic.
    let page = client.get(&graph).send().await.expect("graph page");
    assert!(page.status().is_success(), "{}", page.status());
    let url = reqwest::Url::parse(&graph).expect("URL");
    let exprs: Vec<String> = url
        .query_pairs()
        .filter(|(k, _)| k.ends_with(".expr"))
        .map(|(_, v)| v.to_string())
        .collect();
    assert_eq!(exprs.len(), 3, "rates, lag, breakers: {exprs:?}");
    for expr in &exprs {
        let answer = api(&client, &base, "query", Some(expr)).await;
        assert_eq!(answer["status"], "success", "{expr}: {answer}");
    }
    // A rate needs two scrapes of its window: wait for them.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rates = api(&client, &base, "query", Some(&exprs[0])).await;
        let mut names: Vec<&str> = rates["data"]["result"]
            .as_array()
            .expect("result")
            .iter()
            .filter_map(|r| r["metric"]["what"].as_str())
            .collect();
        names.sort_unstable();
        if names == ["applied", "consumed", "published"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the graph's rates, within 30 s: {rates}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Stopped by its PID.
    let pid = prometheus.pid().expect("the PID file");
    assert!(alive(&pid));
    let out = prometheus.stop();
    assert!(out.status.success());
    assert!(!alive(&pid), "Prometheus {pid} stopped");

    daemon.signal("-TERM");
    let status = daemon
        .wait(Duration::from_secs(30))
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status}");
}
