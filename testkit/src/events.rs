//! The change events a history owes: each source change's event id, as the daemon derives it,
//! so a test that finds events missing can say which changes they belong to.

use eda_actors::kafka::message_decoder::fallback_keys;
use eda_config::Config;
use eda_loadtest::history::History;
use std::collections::{BTreeMap, HashSet};

/// Event ids of the change events (source `eda.cdc`) among `bodies`, inspection-queue messages.
pub fn event_ids(bodies: &[String]) -> HashSet<String> {
    change_event_ids(bodies).into_iter().collect()
}

/// The same, one per change event received, repeats included (an event published twice).
pub fn change_event_ids(bodies: &[String]) -> Vec<String> {
    bodies
        .iter()
        .filter_map(|b| serde_json::from_str::<serde_json::Value>(b).ok())
        .filter(|e| e["source"] == "eda.cdc")
        .filter_map(|e| e["detail"]["event_id"].as_str().map(str::to_string))
        .collect()
}

/// Every event id `history` owes (one per distinct change), with the change it belongs to
/// (`table key sequence operation`), decoded with the key columns of `config` and of the
/// history's own metadata messages.
pub fn owed_event_ids(history: &History, config: &Config) -> BTreeMap<String, String> {
    eda_loadtest::verify::owed_event_ids(history, &fallback_keys(&config.kafka))
}

/// The changes of `owed` whose event id is not in `seen`, described, the first `most` of them.
pub fn missing(
    owed: &BTreeMap<String, String>,
    seen: &HashSet<String>,
    most: usize,
) -> Vec<String> {
    owed.iter()
        .filter(|(id, _)| !seen.contains(*id))
        .take(most)
        .map(|(id, change)| format!("{change} ({id})"))
        .collect()
}
