//! `eda-daemon replay` against the local stack: a window of the topic re-run after the table was
//! damaged by hand heals it (one-off pass and moved group), the group is not moved under an
//! active member, a dry run changes nothing, and times resolve to the right offsets.

use aws_sdk_dynamodb::types::AttributeValue;
use eda_loadtest::history::{History, HistorySpec};
use eda_testkit::table::Item;
use eda_testkit::topic::committed_offsets;
use eda_testkit::{init_logs, local_config_path, scenario, Run, Scenario, Sinks};
use std::collections::{BTreeMap, HashSet};
use std::process::{Command, Output};
use std::time::Duration;

/// Partitions of the scenario's topic (`eda_testkit::scenario::PARTITIONS`).
const PARTITIONS: i32 = 4;

/// Runs `eda-daemon replay` on the local configuration pointed at `scenario`'s topic, group and
/// sinks, with `args` after `--topic`.
fn replay(scenario: &Scenario, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_eda-daemon"))
        .arg("replay")
        .arg("--config")
        .arg(local_config_path())
        .args(["--topic", &scenario.topic])
        .args(args)
        .envs(scenario.env())
        .env("RUST_LOG", "warn")
        .output()
        .expect("eda-daemon runs");
    eprintln!(
        "replay {args:?}: {}\nstdout:\n{}\nstderr (tail):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        tail(&String::from_utf8_lossy(&out.stderr), 20)
    );
    out
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `--from-offset P:0` for every partition.
fn from_the_start() -> Vec<String> {
    (0..PARTITIONS)
        .flat_map(|p| ["--from-offset".to_string(), format!("{p}:0")])
        .collect()
}

/// The plan rows a replay printed: partition -> (from, to, messages).
fn plan_rows(stdout: &str) -> BTreeMap<i32, (i64, i64, i64)> {
    stdout
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [p, from, to, messages, _committed] = fields[..] else {
                return None;
            };
            Some((
                p.parse().ok()?,
                (from.parse().ok()?, to.parse().ok()?, messages.parse().ok()?),
            ))
        })
        .collect()
}

/// The live items of the table (not tombstones), by `pk`.
fn live(items: BTreeMap<String, Item>) -> Vec<(String, Item)> {
    items
        .into_iter()
        .filter(|(_, item)| !matches!(item.get("_deleted"), Some(AttributeValue::Bool(true))))
        .collect()
}

/// A column of the source's row (not the key, not one of the applier's `_` attributes).
fn data_column(item: &Item) -> String {
    item.iter()
        .filter(|(name, value)| {
            !name.starts_with('_') && name.as_str() != "pk" && matches!(value, AttributeValue::S(_))
        })
        .map(|(name, _)| name.clone())
        .min()
        .expect("the item has a data column")
}

/// The `_seq` of `item`, made lower (`higher == false`) or higher than any real one, same length.
fn other_seq(item: &Item, higher: bool) -> AttributeValue {
    let seq = match item.get("_seq") {
        Some(AttributeValue::S(s)) => s.clone(),
        other => panic!("the item's _seq is not a string: {other:?}"),
    };
    let digit = if higher { "9" } else { "0" };
    AttributeValue::S(digit.repeat(seq.len()))
}

/// What the test did to the table by hand.
struct Damage {
    /// Keys deleted.
    deleted: Vec<String>,
    /// Keys overwritten with a wrong value and a lower `_seq`.
    older: Vec<String>,
    /// The key overwritten with a wrong value and a `_seq` higher than any change's.
    newer: String,
}

/// Deletes three live items, overwrites three with a wrong value under a lower `_seq` and one
/// under a higher `_seq`, through DynamoDB Local.
async fn damage(sinks: &Sinks) -> Damage {
    let dynamodb = &sinks.clients.dynamodb;
    let items = live(sinks.table.items().await);
    assert!(items.len() >= 7, "only {} live items", items.len());
    let mut damage = Damage {
        deleted: Vec::new(),
        older: Vec::new(),
        newer: String::new(),
    };
    for (i, (pk, item)) in items.iter().take(7).enumerate() {
        if i < 3 {
            dynamodb
                .delete_item()
                .table_name(&sinks.table.name)
                .key("pk", AttributeValue::S(pk.clone()))
                .send()
                .await
                .expect("delete_item");
            damage.deleted.push(pk.clone());
            continue;
        }
        let mut wrong = item.clone();
        wrong.insert(data_column(item), AttributeValue::S("damaged".into()));
        wrong.insert("_seq".into(), other_seq(item, i == 6));
        dynamodb
            .put_item()
            .table_name(&sinks.table.name)
            .set_item(Some(wrong))
            .send()
            .await
            .expect("put_item");
        if i == 6 {
            damage.newer = pk.clone();
        } else {
            damage.older.push(pk.clone());
        }
    }
    let now = sinks.table.items().await;
    for pk in &damage.deleted {
        assert!(!now.contains_key(pk), "{pk} still there after the delete");
    }
    damage
}

impl Damage {
    /// Every deleted key and every key overwritten with an older `_seq` is back as the source
    /// has it: no mismatch names it.
    fn assert_healed(&self, mismatches: &[String]) {
        for pk in self.deleted.iter().chain(&self.older) {
            assert!(
                about(mismatches, pk).is_empty(),
                "{pk} healed: {mismatches:?}"
            );
        }
    }
}

/// The mismatches against the history that are about `pk`.
fn about<'a>(mismatches: &'a [String], pk: &str) -> Vec<&'a String> {
    // A mismatch line names the source key, the `pk` ends with it after `#`.
    let key = pk.rsplit('#').next().expect("pk has a key");
    mismatches
        .iter()
        .filter(|m| m.starts_with(&format!("{key}:")) || m.starts_with(&format!("{key}.")))
        .collect()
}

fn history(seed: u64) -> History {
    History::generate(&HistorySpec {
        seed,
        keys: 120,
        changes_per_key: 3,
        duplicate_rate: 0.0,
        redelivery_rate: 0.0,
        delete_rate: 0.1,
        ..HistorySpec::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_one_off_replay_heals_a_damaged_table_and_republishes_under_the_same_event_ids() {
    init_logs();
    let history = history(91);
    let mut run = scenario(&history, Sinks::create().await, |_| {}).await;
    assert!(run.settled.mismatches.is_empty(), "{}", run.settled);
    let first_ids = eda_testkit::events::event_ids(&run.events().await);
    assert_eq!(first_ids.len(), history.changes, "one event per change");
    run.scenario
        .committed_to_the_end(Duration::from_secs(60))
        .await
        .expect("the daemon's group committed everything");
    let daemon_group_before = committed_offsets(
        &run.scenario.brokers,
        &run.scenario.topic,
        run.scenario.group(),
        (0..PARTITIONS).collect(),
    )
    .await
    .expect("committed offsets");
    // The daemon's pipeline stops; the replay is what heals.
    let Run {
        scenario, pipeline, ..
    } = run;
    pipeline.shutdown().await;

    let damage = damage(&scenario.sinks).await;
    let broken = scenario
        .sinks
        .table
        .wait_for(&history, Duration::ZERO)
        .await;
    assert!(
        broken.len() >= 6,
        "the damage shows against the source: {broken:?}"
    );

    let mut args = from_the_start();
    args.extend(["--mode".to_string(), "one-off".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = replay(&scenario, &args);
    assert!(out.status.success(), "the one-off replay succeeds");
    let rows = plan_rows(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(rows.len(), PARTITIONS as usize, "a row per partition");
    let planned: i64 = rows.values().map(|(_, _, m)| m).sum();
    assert_eq!(planned as usize, history.records.len(), "the whole topic");

    // Everything is settled when the pass returns: the table is final.
    let mismatches = scenario
        .sinks
        .table
        .wait_for(&history, Duration::ZERO)
        .await;
    damage.assert_healed(&mismatches);
    // The guard keeps what is newer than any change, a hand-made value included.
    assert_eq!(
        about(&mismatches, &damage.newer).len(),
        1,
        "an item with a higher _seq is left as it is: {mismatches:?}"
    );
    assert_eq!(mismatches.len(), 1, "nothing else differs: {mismatches:?}");

    // Every change's event again, under the same ids.
    let inspect = scenario.sinks.inspect.as_ref().expect("inspected sinks");
    let again = eda_testkit::events::event_ids(
        &inspect
            .drain_until_distinct(history.changes, Duration::from_secs(60))
            .await,
    );
    assert_eq!(
        again, first_ids,
        "the replay republishes each change's event under its id"
    );
    // The daemon's group is where it was.
    let daemon_group_after = committed_offsets(
        &scenario.brokers,
        &scenario.topic,
        scenario.group(),
        (0..PARTITIONS).collect(),
    )
    .await
    .expect("committed offsets");
    assert_eq!(daemon_group_after, daemon_group_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_group_is_not_moved_under_an_active_member_a_dry_run_changes_nothing_and_a_moved_group_heals_the_table(
) {
    init_logs();
    let history = history(92);
    let scenario = Scenario::new(Sinks::create_uninspected().await, PARTITIONS).await;
    scenario.produce(&history.records).await;
    let (pipeline, _obs) = scenario.start().await;
    let settled = scenario
        .settle(&history, Duration::from_secs(120), &[])
        .await;
    assert!(settled.mismatches.is_empty(), "{settled}");
    scenario
        .committed_to_the_end(Duration::from_secs(60))
        .await
        .expect("committed to the end");
    let partitions: Vec<i32> = (0..PARTITIONS).collect();
    let at_end = committed_offsets(
        &scenario.brokers,
        &scenario.topic,
        scenario.group(),
        partitions.clone(),
    )
    .await
    .expect("committed offsets");

    let args = from_the_start();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // A member is active: refused, named, nothing moved.
    let out = replay(&scenario, &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "refused");
    assert!(
        stderr.contains(&format!(
            "consumer group {} has 1 active member",
            scenario.group()
        )),
        "the refusal names the group and its member: {stderr}"
    );
    let now = committed_offsets(
        &scenario.brokers,
        &scenario.topic,
        scenario.group(),
        partitions.clone(),
    )
    .await
    .expect("committed offsets");
    assert_eq!(now, at_end, "a refused replay moves nothing");

    pipeline.shutdown().await;

    // A dry run prints the plan and changes nothing.
    let mut dry = args.clone();
    dry.push("--dry-run");
    let out = replay(&scenario, &dry);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("dry run: nothing changed"), "{stdout}");
    let rows = plan_rows(&stdout);
    for (p, (from, to, messages)) in &rows {
        assert_eq!(*from, 0);
        assert_eq!(
            Some(*to),
            at_end[p],
            "partition {p} ends where the group is"
        );
        assert_eq!(*messages, to - from);
    }
    let now = committed_offsets(
        &scenario.brokers,
        &scenario.topic,
        scenario.group(),
        partitions.clone(),
    )
    .await
    .expect("committed offsets");
    assert_eq!(now, at_end, "a dry run moves nothing");

    // With no member left the group moves; the daemon started again reads the window again.
    let damage = damage(&scenario.sinks).await;
    let out = replay(&scenario, &args);
    assert!(out.status.success(), "moved once the group is empty");
    let now = committed_offsets(
        &scenario.brokers,
        &scenario.topic,
        scenario.group(),
        partitions.clone(),
    )
    .await
    .expect("committed offsets");
    assert!(
        now.values().all(|c| *c == Some(0)),
        "the group is at the window's start: {now:?}"
    );
    let (pipeline, _obs) = scenario.start().await;
    scenario
        .committed_to_the_end(Duration::from_secs(120))
        .await
        .expect("the daemon read the window again");
    let mismatches = scenario
        .sinks
        .table
        .wait_for(&history, Duration::ZERO)
        .await;
    damage.assert_healed(&mismatches);
    assert_eq!(
        mismatches.len(),
        1,
        "only the item with a higher _seq differs: {mismatches:?}"
    );
    pipeline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn times_resolve_to_the_first_offsets_at_or_after_them() {
    init_logs();
    let history = history(93);
    let scenario = Scenario::new(Sinks::create_uninspected().await, PARTITIONS).await;
    let producer = eda_loadtest::kafka::producer(&scenario.brokers).expect("producer");
    let half = history.records.len() / 2;
    let first = eda_loadtest::kafka::produce(&producer, &scenario.topic, &history.records[..half])
        .await
        .expect("produced");
    // Timestamps are milliseconds: leave a clear gap on each side of the mark.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mark = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let second = eda_loadtest::kafka::produce(&producer, &scenario.topic, &history.records[half..])
        .await
        .expect("produced");
    let partitions: HashSet<i32> = first.keys().chain(second.keys()).copied().collect();
    assert_eq!(
        partitions.len(),
        PARTITIONS as usize,
        "every partition used"
    );
    let first_end = |p: &i32| first.get(p).copied().unwrap_or(0);
    let end = |p: &i32| second.get(p).copied().unwrap_or_else(|| first_end(p));

    let mark = mark.to_rfc3339();
    let out = replay(&scenario, &["--from-time", &mark, "--dry-run"]);
    assert!(out.status.success());
    let rows = plan_rows(&String::from_utf8_lossy(&out.stdout));
    let want: BTreeMap<i32, (i64, i64, i64)> = partitions
        .iter()
        .map(|p| (*p, (first_end(p), end(p), end(p) - first_end(p))))
        .collect();
    assert_eq!(rows, want, "from the mark to the end");

    let start = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let out = replay(
        &scenario,
        &["--from-time", &start, "--to-time", &mark, "--dry-run"],
    );
    assert!(out.status.success());
    let rows = plan_rows(&String::from_utf8_lossy(&out.stdout));
    let want: BTreeMap<i32, (i64, i64, i64)> = partitions
        .iter()
        .map(|p| (*p, (0, first_end(p), first_end(p))))
        .collect();
    assert_eq!(rows, want, "from an hour ago up to the mark");

    // A time after the last message: an empty window at each partition's end.
    let later = (chrono::Utc::now() + chrono::Duration::minutes(5)).to_rfc3339();
    let out = replay(&scenario, &["--from-time", &later, "--dry-run"]);
    assert!(out.status.success());
    let rows = plan_rows(&String::from_utf8_lossy(&out.stdout));
    let want: BTreeMap<i32, (i64, i64, i64)> = partitions
        .iter()
        .map(|p| (*p, (end(p), end(p), 0)))
        .collect();
    assert_eq!(rows, want, "nothing to replay after the last message");

    // Bad input is refused with a clear message.
    let out = replay(&scenario, &["--from-offset", "9:0", "--dry-run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no partition 9"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_one_off_pass_stops_at_the_plans_end_offsets() {
    init_logs();
    let history = history(94);
    let scenario = Scenario::new(Sinks::create_uninspected().await, PARTITIONS).await;
    let producer = eda_loadtest::kafka::producer(&scenario.brokers).expect("producer");
    let half = history.records.len() / 2;
    let first = eda_loadtest::kafka::produce(&producer, &scenario.topic, &history.records[..half])
        .await
        .expect("produced");
    eda_loadtest::kafka::produce(&producer, &scenario.topic, &history.records[half..])
        .await
        .expect("produced");
    let group = eda_testkit::unique("replay-bounded");
    let mut args: Vec<String> = from_the_start();
    for (p, end) in &first {
        args.extend(["--to-offset".to_string(), format!("{p}:{end}")]);
    }
    args.extend(["--mode", "one-off", "--replay-group", &group].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = replay(&scenario, &args);
    assert!(out.status.success(), "the bounded pass succeeds");
    let committed = committed_offsets(
        &scenario.brokers,
        &scenario.topic,
        &group,
        first.keys().copied().collect(),
    )
    .await
    .expect("committed offsets");
    let want: BTreeMap<i32, Option<i64>> = first.iter().map(|(p, end)| (*p, Some(*end))).collect();
    assert_eq!(
        committed, want,
        "the pass read up to the plan's end offsets and not past them"
    );
}
