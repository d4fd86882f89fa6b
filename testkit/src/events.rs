//! The change events a history owes: each source change's event id, as the daemon derives it,
//! so a test that finds events missing can say which changes they belong to.

use eda_actors::kafka::message_decoder::fallback_keys;
use eda_config::Config;
use eda_core::cdc::{decode_qlik_json, DecodeContext, MetadataCache, QlikMessage};
use eda_core::change_event::event_id;
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
    let fallback = fallback_keys(&config.kafka);
    let ctx = DecodeContext {
        default_table: None,
        fallback_keys: &fallback,
    };
    let mut metadata = MetadataCache::new();
    let mut owed = BTreeMap::new();
    for record in &history.records {
        let change = match decode_qlik_json(&record.value, &ctx, &metadata, None) {
            Ok(QlikMessage::Change(change)) => change,
            Ok(QlikMessage::Metadata(structure)) => {
                metadata.insert(structure);
                continue;
            }
            Err(_) => continue,
        };
        let key: Vec<String> = change.key.iter().map(|k| k.value.to_string()).collect();
        owed.insert(
            event_id(&change).to_string(),
            format!(
                "{} {} {} {}",
                change.table.qualified(),
                key.join(","),
                change.change_sequence,
                change.operation.as_str()
            ),
        );
    }
    owed
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
