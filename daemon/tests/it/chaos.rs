//! The chaos suite (`make chaos`): each scenario breaks something while a history with replays
//! and deletes flows, lets the system recover unaided, and judges the whole delivery contract
//! (`eda_testkit::chaos::judge`): the table against the source's last images, every change's
//! event id on the bus, the DLQ, the commits against the end of every partition. Each prints one
//! row of the table in the README's reliability section.
//!
//! Ignored in `make test` (its short subset is the `holds`, `poison` and `crash` tests); run with
//! `make chaos`, one scenario at a time.

use crate::broker_outage::{outage_then_rejoin, Outage};
use crate::crash::{log_path, Daemon};
use crate::fault_proxy::Fault;
use crate::holds::{outage, Down};
use crate::region_recovery::{both_eventbridges_down_then_one, secondary_eventbridge_down};
use eda_loadtest::history::{History, HistorySpec};
use eda_testkit::chaos::{judge, watch_events};
use eda_testkit::{init_logs, Scenario, Sinks};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Every outage lasts this long.
const OUTAGE: Duration = Duration::from_secs(30);

/// Keys of the outage scenarios' histories (three changes each, plus replays).
const OUTAGE_KEYS: usize = 500;

/// A seed from the clock, printed, so a failing run can be repeated.
fn seed() -> u64 {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    println!("chaos seed {seed}");
    seed
}

/// xorshift64 over `state`: the next value in `0..bound`.
fn next_below(state: &mut u64, bound: u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state % bound
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "chaos: make chaos"]
async fn chaos_twenty_kill_9s_under_load() {
    init_logs();
    let mut random = seed();
    let scenario = Scenario::new(Sinks::create().await, 4).await;
    // Large enough that most of the twenty kills come while work remains: the daemon with the
    // lean AWS client drained 8,000 changes (2,000 keys) within fifteen rounds.
    let history = History::generate(&HistorySpec {
        seed: random,
        keys: 5_000,
        changes_per_key: 4,
        ..HistorySpec::default()
    });
    scenario.produce(&history.records).await;
    let env = scenario.env();
    let events = watch_events(&scenario, &history, Duration::from_secs(900));
    let kills = 20;
    let mut applied_at_kills = Vec::new();
    for round in 0..kills {
        let before = scenario.sinks.table.items().await;
        let daemon = Daemon::start(&env, &log_path(&format!("chaos-kill-{round}")));
        // Under load: once this run has changed the table (it joined and works), a random point
        // 0.2 to 4 s later.
        let deadline = Instant::now() + Duration::from_secs(60);
        while scenario.sinks.table.items().await == before {
            assert!(
                Instant::now() < deadline,
                "kill round {round}: the daemon changed nothing within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let run = Duration::from_millis(200 + next_below(&mut random, 3_800));
        tokio::time::sleep(run).await;
        daemon.signal("-KILL");
        drop(daemon);
        applied_at_kills.push(scenario.sinks.table.items().await.len());
        // The killed member never said goodbye; the broker drops it after the session timeout
        // (6 s here). Restart after that, as a rescheduled pod would.
        tokio::time::sleep(Duration::from_secs(7)).await;
    }
    println!("items applied at each kill: {applied_at_kills:?}");
    let mut last = Daemon::start(&env, &log_path("chaos-kill-last"));
    let restarted = Instant::now();
    let outcome = judge(
        &format!("{kills} x SIGKILL at random points under load"),
        &scenario,
        &history,
        events,
        0,
        restarted,
        Duration::from_secs(300),
    )
    .await;
    last.signal("-TERM");
    let status = last.wait(Duration::from_secs(30));
    outcome.assert_nothing_lost();
    assert!(
        status.is_some_and(|s| s.success()),
        "the last daemon exits 0 on SIGTERM: {status:?}"
    );
    assert!(
        applied_at_kills
            .iter()
            .filter(|&&n| n < history.expected.len())
            .count()
            >= kills / 2,
        "most kills came while work remained: {applied_at_kills:?} of {}",
        history.expected.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "chaos: make chaos"]
async fn chaos_sigterm_under_load() {
    init_logs();
    let scenario = Scenario::new(Sinks::create().await, 4).await;
    let history = History::generate(&HistorySpec {
        seed: seed(),
        keys: 1_000,
        changes_per_key: 3,
        ..HistorySpec::default()
    });
    scenario.produce(&history.records).await;
    let env = scenario.env();
    let events = watch_events(&scenario, &history, Duration::from_secs(600));
    let mut first = Daemon::start(&env, &log_path("chaos-term-first"));
    scenario
        .sinks
        .table
        .wait_until_applied(300, Duration::from_secs(120))
        .await;
    let asked = Instant::now();
    first.signal("-TERM");
    let status = first.wait(Duration::from_secs(60));
    let took = asked.elapsed();
    let drain = Duration::from_millis(scenario.config.kafka.drain_timeout_ms);
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM under load exits 0: {status:?}"
    );
    // The whole shutdown fits in the drain timeout; the margin is the signal's delivery and the
    // process's own exit on a loaded machine.
    assert!(
        took <= drain + Duration::from_secs(3),
        "SIGTERM exit took {took:?}, drain timeout {drain:?}"
    );
    let applied = scenario.sinks.table.items().await.len();
    assert!(
        applied < history.expected.len(),
        "the SIGTERM came after the run finished ({applied} items); the row proves nothing"
    );
    let mut second = Daemon::start(&env, &log_path("chaos-term-second"));
    let restarted = Instant::now();
    let outcome = judge(
        &format!("SIGTERM under load (exit 0 in {:.1} s)", took.as_secs_f64()),
        &scenario,
        &history,
        events,
        0,
        restarted,
        Duration::from_secs(300),
    )
    .await;
    second.signal("-TERM");
    let _ = second.wait(Duration::from_secs(30));
    outcome.assert_nothing_lost();
}

/// Qlik's metadata messages head every partition and no `kafka.key_columns` names the table's
/// key: the daemon is killed once it applies changes (the metadata messages are committed by
/// then) and started again past them. Nothing may be dead-lettered for an unknown key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "chaos: make chaos"]
async fn chaos_restart_after_qlik_metadata_messages() {
    init_logs();
    let scenario = Scenario::new(Sinks::create().await, 4).await;
    let history = History::generate(&HistorySpec {
        seed: seed(),
        keys: OUTAGE_KEYS,
        changes_per_key: 3,
        metadata_partitions: 4,
        ..HistorySpec::default()
    });
    scenario.produce(&history.records).await;
    let config = crate::metadata::without_key_columns("chaos-metadata");
    let env = scenario.env();
    let events = watch_events(&scenario, &history, Duration::from_secs(600));
    let first = Daemon::start_on(&config, &env, &log_path("chaos-metadata-first"));
    scenario
        .sinks
        .table
        .wait_until_applied(100, Duration::from_secs(120))
        .await;
    first.signal("-KILL");
    drop(first);
    let applied = scenario.sinks.table.items().await.len();
    assert!(
        applied < history.expected.len(),
        "the kill came after the run finished ({applied} items); the row proves nothing"
    );
    // The killed member is dropped after the session timeout (6 s here); restart after it.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let mut second = Daemon::start_on(&config, &env, &log_path("chaos-metadata-second"));
    let restarted = Instant::now();
    let outcome = judge(
        "restart after Qlik MD messages (no key_columns)",
        &scenario,
        &history,
        events,
        0,
        restarted,
        Duration::from_secs(300),
    )
    .await;
    second.signal("-TERM");
    let _ = second.wait(Duration::from_secs(30));
    outcome.assert_nothing_lost();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "chaos: make chaos"]
async fn chaos_dynamodb_refusing() {
    outage(Down::DynamoDb, Fault::Refuse, OUTAGE, OUTAGE_KEYS)
        .await
        .assert_nothing_lost();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "chaos: make chaos"]
async fn chaos_dynamodb_black_holed() {
    outage(Down::DynamoDb, Fault::BlackHole, OUTAGE, OUTAGE_KEYS)
        .await
        .assert_nothing_lost();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "chaos: make chaos"]
async fn chaos_eventbridge_refusing() {
    outage(Down::EventBridge, Fault::Refuse, OUTAGE, OUTAGE_KEYS)
        .await
        .assert_nothing_lost();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "chaos: make chaos"]
async fn chaos_schema_registry_refusing() {
    outage(Down::SchemaRegistry, Fault::Refuse, OUTAGE, OUTAGE_KEYS)
        .await
        .assert_nothing_lost();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "chaos: make chaos"]
async fn chaos_poison_storm() {
    crate::poison::poison_storm().await.assert_nothing_lost();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "chaos: make chaos"]
async fn chaos_eventbridge_refusing_in_the_secondary() {
    secondary_eventbridge_down(seed(), OUTAGE_KEYS, OUTAGE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "chaos: make chaos"]
async fn chaos_eventbridge_refusing_in_both_regions_then_one() {
    both_eventbridges_down_then_one(seed(), OUTAGE_KEYS, OUTAGE, Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "chaos: make chaos"]
async fn chaos_broker_refusing_connections() {
    outage_then_rejoin(Outage::Refused)
        .await
        .assert_nothing_lost();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "chaos: make chaos"]
async fn chaos_broker_black_holed() {
    outage_then_rejoin(Outage::BlackHoled)
        .await
        .assert_nothing_lost();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "chaos: make chaos"]
async fn chaos_broker_frozen() {
    outage_then_rejoin(Outage::Frozen)
        .await
        .assert_nothing_lost();
}
