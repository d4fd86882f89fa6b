//! The chaos suite's verdict: after a scenario broke something (killed the daemon, took a
//! dependency away) and let it recover, [`judge`] checks the whole delivery contract — the table
//! against the source's last images, every change's event id on the bus, the dead letters
//! against what was poison, the group's commits against the end of every partition — and
//! returns one [`Outcome`], the row `make chaos` prints.
//!
//! Rows are printed to stdout and, when `CHAOS_REPORT` names a file, appended to it as a
//! Markdown table row; `deploy/local/chaos.sh` collects that file into the table it prints.

use crate::scenario::Scenario;
use eda_loadtest::history::History;
use std::collections::HashSet;
use std::fmt;
use std::io::Write;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The header of the table [`Outcome::report`] appends rows to.
pub const HEADER: &str = "| scenario | changes | events seen | duplicates | dead letters | lost | recovery s |\n|---|---:|---:|---:|---:|---:|---:|";

/// How one chaos scenario ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What was done to the system.
    pub scenario: String,
    /// Source changes in the history (each owes one event).
    pub changes: usize,
    /// Distinct change-event ids seen on the bus.
    pub events_seen: usize,
    /// Change events seen more than once (same id; the contract allows them, counted).
    pub duplicates: usize,
    /// Letters in the DLQ.
    pub dead_letters: usize,
    /// Letters the scenario's poison owed (0 when it had none).
    pub poison: usize,
    /// From the end of the fault (or the last restart) to a settled table with every event.
    pub recovery: Duration,
    /// Whether the table equals the source's last images.
    pub table_exact: bool,
    /// Whether the group committed to the end of every partition.
    pub offsets_at_end: bool,
    /// What differed, for the failing test's message.
    pub why: String,
}

impl Outcome {
    /// Changes whose event never came, plus letters missing or unexpected, plus a table that is
    /// not exact and commits short of the end: 0 is the contract.
    pub fn lost(&self) -> usize {
        self.changes.saturating_sub(self.events_seen)
            + self.dead_letters.abs_diff(self.poison)
            + usize::from(!self.table_exact)
            + usize::from(!self.offsets_at_end)
    }

    /// Prints the row and appends it to `CHAOS_REPORT`, if set.
    pub fn report(&self) {
        let row = self.to_string();
        println!("CHAOS {row}");
        if let Ok(path) = std::env::var("CHAOS_REPORT") {
            if let Ok(mut file) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = writeln!(file, "{row}");
            }
        }
    }

    /// Reports the row, then fails the test with what differed if anything was lost.
    pub fn assert_nothing_lost(&self) {
        self.report();
        assert_eq!(self.lost(), 0, "{}: {}\n{}", self.scenario, self, self.why);
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "| {} | {} | {} | {} | {} | {} | {:.1} |",
            self.scenario,
            self.changes,
            self.events_seen,
            self.duplicates,
            self.dead_letters,
            self.lost(),
            self.recovery.as_secs_f64()
        )
    }
}

/// Starts reading the scenario's inspection queue for one event per change of `history`, for
/// up to `within`; start it before the pipeline, and hand it to [`judge`].
pub fn watch_events(
    scenario: &Scenario,
    history: &History,
    within: Duration,
) -> JoinHandle<Vec<String>> {
    let queue = scenario
        .sinks
        .inspect
        .clone()
        .expect("a chaos scenario's sinks are inspected");
    let want = history.changes;
    tokio::spawn(async move { queue.drain_until_distinct(want, within).await })
}

/// Waits (up to `within`) for the table to settle as `history`'s last images and the events to
/// arrive, then reads the DLQ (expecting `poison` letters) and the group's commits; `since` is
/// when the fault ended. The scenario's pipeline or daemon must still run.
pub async fn judge(
    name: &str,
    scenario: &Scenario,
    history: &History,
    events: JoinHandle<Vec<String>>,
    poison: usize,
    since: Instant,
    within: Duration,
) -> Outcome {
    let settled = scenario.settle(history, within, &[]).await;
    let bodies = events.await.expect("the event reader");
    let recovery = since.elapsed();
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    for id in crate::events::change_event_ids(&bodies) {
        if !seen.insert(id) {
            duplicates += 1;
        }
    }
    let letters = scenario
        .sinks
        .dlq
        .drain(poison, Duration::from_secs(if poison > 0 { 60 } else { 2 }))
        .await;
    // Anything more that came late.
    let late = scenario
        .sinks
        .dlq
        .drain(usize::MAX, Duration::from_secs(1))
        .await;
    let dead_letters = letters.len() + late.len();
    let offsets = scenario.committed_to_the_end(Duration::from_secs(30)).await;
    let owed = crate::events::owed_event_ids(history, &scenario.config);
    let missing = crate::events::missing(&owed, &seen, 20);
    let mut why = String::new();
    if !settled.mismatches.is_empty() {
        why.push_str(&format!("table: {settled}\n"));
    }
    if !missing.is_empty() {
        why.push_str(&format!("events missing: {missing:#?}\n"));
    }
    if dead_letters != poison {
        why.push_str(&format!(
            "dead letters: {dead_letters}, expected {poison}; first: {:?}\n",
            letters.iter().chain(&late).next()
        ));
    }
    if let Err(short) = &offsets {
        why.push_str(&format!("offsets short of the end: {short}\n"));
    }
    Outcome {
        scenario: name.to_string(),
        changes: history.changes,
        events_seen: seen.len(),
        duplicates,
        dead_letters,
        poison,
        recovery,
        table_exact: settled.mismatches.is_empty(),
        offsets_at_end: offsets.is_ok(),
        why,
    }
}
