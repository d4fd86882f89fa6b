//! The daemon process killed with SIGKILL mid-run, three times, started again: the table still
//! ends exactly as the source, every change's event reaches the bus, nothing is dead-lettered
//! and the commits reach the end (what is replayed the sequence guard absorbs, and its events go
//! out again under the same ids). Then SIGTERM: a graceful exit 0. Also the redrive command on a
//! dead letter. The chaos suite (`chaos.rs`) runs the same with 20 kills at random points.

use eda_loadtest::history::{History, HistorySpec};
use eda_testkit::chaos::{judge, watch_events};
use eda_testkit::{local_config_path, Scenario, Sinks};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A daemon process; killed on drop if the test did not stop it.
pub struct Daemon(Child);

impl Daemon {
    pub fn start(env: &[(String, String)], log: &std::path::Path) -> Self {
        Self::start_on(&local_config_path(), env, log)
    }

    /// A daemon on the configuration file `config` instead of `config/local.toml`.
    pub fn start_on(
        config: &std::path::Path,
        env: &[(String, String)],
        log: &std::path::Path,
    ) -> Self {
        let log = std::fs::File::create(log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_eda-daemon"))
            .args(["run", "--config"])
            .arg(config)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            // The applier's trace names each event id it hands to the publisher: with it, a test
            // that misses events can tell "never published" from "published, never delivered".
            .env("RUST_LOG", "info,eda_actors::cdc_applier=trace")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("eda-daemon starts");
        Self(child)
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.0.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    pub fn wait(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn log_path(name: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    dir.join(format!("{name}.log"))
}

/// The delivery contract across crashes: the daemon is killed with SIGKILL three times while it
/// works through a history with replays, and restarted each time as a rescheduled pod would be.
/// At the end the table equals the source, every source change's event id was seen on the bus
/// (a change whose write landed before a kill but whose event was not yet out is published on
/// the replay, under the same id), nothing is dead-lettered, and SIGTERM exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_three_times_then_restart_ends_as_the_source_with_every_event() {
    let scenario = Scenario::new(Sinks::create().await, 4).await;
    let history = History::generate(&HistorySpec {
        seed: 99,
        keys: 1500,
        changes_per_key: 4,
        duplicate_rate: 0.05,
        redelivery_rate: 0.05,
        ..HistorySpec::default()
    });
    scenario.produce(&history.records).await;
    let env = scenario.env();
    let table = &scenario.sinks.table;
    // The reader stops as soon as every event came; the window only bounds a failing run (on a
    // loaded machine the whole test has taken over five minutes).
    let events = watch_events(&scenario, &history, Duration::from_secs(900));

    for (round, applied) in [200, 600, 1000].into_iter().enumerate() {
        let daemon = Daemon::start(&env, &log_path(&format!("crash-{round}")));
        table
            .wait_until_applied(applied, Duration::from_secs(60))
            .await;
        daemon.signal("-KILL");
        drop(daemon);
        // The killed member never said goodbye; the broker drops it after the session timeout
        // (6 s here). Restart after that, as a rescheduled pod would: tansu does not reassign
        // partitions when a dead member expires in the middle of a join (a real Kafka does).
        tokio::time::sleep(Duration::from_secs(7)).await;
    }
    let after_kills = table.items().await.len();
    assert!(
        after_kills < history.expected.len(),
        "the last kill came after the run finished ({after_kills} items); the test proves less"
    );

    let mut last = Daemon::start(&env, &log_path("crash-last"));
    let restarted = Instant::now();
    let outcome = judge(
        "3 x SIGKILL at 200, 600, 1000 items",
        &scenario,
        &history,
        events,
        0,
        restarted,
        Duration::from_secs(180),
    )
    .await;
    last.signal("-TERM");
    let status = last
        .wait(Duration::from_secs(30))
        .expect("the daemon exits after SIGTERM");
    outcome.assert_nothing_lost();
    assert!(status.success(), "graceful exit code 0, got {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_replays_a_dead_letter_once_its_cause_is_fixed() {
    let scenario = Scenario::new(Sinks::create_uninspected().await, 1).await;
    // A change with no key columns configured for its table cannot be decoded: dead-lettered.
    let mut row = serde_json::Map::new();
    row.insert("SKU".into(), "A-1".into());
    row.insert("QTY".into(), "3".into());
    let mut message: serde_json::Value =
        serde_json::from_slice(&eda_loadtest::history::qlik_message(
            "INSERT",
            &eda_loadtest::history::sequence(1),
            &row,
            None,
        ))
        .expect("JSON");
    message["message"]["table"] = "STOCK".into();
    scenario
        .produce(&[eda_loadtest::history::Record {
            key: None,
            partition: None,
            value: serde_json::to_vec(&message).expect("JSON"),
            original: true,
        }])
        .await;
    let env = scenario.env();
    let mut daemon = Daemon::start(&env, &log_path("redrive-daemon"));
    // Wait for the dead letter to land, without consuming it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if scenario.sinks.dlq.depth().await.expect("attributes") == Some(1) {
            break;
        }
        assert!(Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    daemon.signal("-TERM");
    assert!(daemon
        .wait(Duration::from_secs(30))
        .is_some_and(|s| s.success()));

    // The operator adds the key column for the table; redrive applies the change.
    let text = std::fs::read_to_string(local_config_path()).expect("local config");
    let fixed = text.replace(
        r#""SALES.ORDERS" = ["ORDER_ID"]"#,
        r#""SALES.ORDERS" = ["ORDER_ID"], "SALES.STOCK" = ["SKU"]"#,
    );
    assert_ne!(
        fixed, text,
        "config/local.toml still names the key columns this test extends"
    );
    let fixed_path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{}.toml", scenario.group()));
    std::fs::write(&fixed_path, fixed).expect("config written");
    let out = Command::new(env!("CARGO_BIN_EXE_eda-daemon"))
        .args(["dlq", "redrive", "--max", "10", "--config"])
        .arg(&fixed_path)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("redrive runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(report["received"], 1, "{stdout}");
    assert_eq!(report["replayed"], 1, "{stdout}");
    let items = scenario.sinks.table.items().await;
    assert!(items.contains_key("SALES.STOCK#A-1"), "{items:?}");
}
