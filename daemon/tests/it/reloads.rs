//! Full loads and reloads: Qlik sends a table's rows as REFRESH messages with no change sequence,
//! once per (re)load. Each load is a change a consumer must see, so each load's event of a row
//! has its own id: derived, like every event id, from the sequence the apply guard compared (for
//! a REFRESH row, the one made from its timestamp), never from the empty sequence it arrived
//! with.

use eda_loadtest::history::{qlik_message, sequence, Record, KEY_COLUMN};
use eda_testkit::{init_logs, unique, Scenario, Sinks};
use serde_json::{Map, Value};
use std::time::{Duration, Instant};

/// A REFRESH row of `SALES.CUSTOMERS` for `key`, read at `timestamp`.
fn refresh_row(key: &str, email: &str, timestamp: &str) -> Record {
    let mut row = Map::new();
    row.insert(KEY_COLUMN.into(), key.into());
    row.insert("EMAIL".into(), email.into());
    let mut message: Value =
        serde_json::from_slice(&qlik_message("REFRESH", &sequence(1), &row, None)).expect("JSON");
    // What Qlik sends for a load: no sequence, no position, no transaction.
    message["message"]["headers"]["changeSequence"] = "".into();
    message["message"]["headers"]["timestamp"] = timestamp.into();
    message["message"]["headers"]["streamPosition"] = "".into();
    message["message"]["headers"]["transactionId"] = "".into();
    Record {
        key: Some(key.to_string()),
        partition: None,
        value: serde_json::to_vec(&message).expect("JSON"),
        original: true,
    }
}

/// Reads the inspection queue until `want` change events mentioning `marker` arrived (or
/// `within` passed); returns them.
async fn change_events(
    scenario: &Scenario,
    marker: &str,
    want: usize,
    within: Duration,
) -> Vec<Value> {
    let queue = scenario.sinks.inspect.as_ref().expect("inspected sinks");
    let deadline = Instant::now() + within;
    let mut events = Vec::new();
    while events.len() < want && Instant::now() < deadline {
        for body in queue.drain(10, Duration::from_millis(500)).await {
            let Ok(event) = serde_json::from_str::<Value>(&body) else {
                continue;
            };
            if event["source"] == "eda.cdc" && body.contains(marker) {
                events.push(event);
            }
        }
    }
    events
}

/// The same row loaded twice (a reload a day later, with a changed column): two changes, two
/// events, two ids; the table holds the second load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_reload_of_a_row_is_published_under_its_own_event_id() {
    init_logs();
    let scenario = Scenario::new(Sinks::create().await, 1).await;
    let key = unique("reload");
    scenario
        .produce(&[
            refresh_row(&key, "first@example.com", "2026-01-01T00:00:00.000"),
            refresh_row(&key, "second@example.com", "2026-01-02T00:00:00.000"),
        ])
        .await;
    let (pipeline, _) = scenario.start().await;
    let events = change_events(&scenario, &key, 2, Duration::from_secs(60)).await;
    pipeline.shutdown().await;

    let ids: Vec<&str> = events
        .iter()
        .filter_map(|e| e["detail"]["event_id"].as_str())
        .collect();
    println!("RELOADS: event ids {ids:?}");
    assert_eq!(ids.len(), 2, "one event per load: {events:#?}");
    assert_ne!(
        ids[0], ids[1],
        "the reload reused the first load's event id, so de-duplicating consumers drop it"
    );
    // Each event names the sequence its id was derived from: the one the guard compared.
    let mut sequences: Vec<&str> = events
        .iter()
        .filter_map(|e| e["detail"]["payload"]["change_sequence"].as_str())
        .collect();
    sequences.sort_unstable();
    assert_eq!(
        sequences,
        [
            "20260101000000000000000000000000000",
            "20260102000000000000000000000000000"
        ]
    );
    let items = scenario.sinks.table.items().await;
    let item = items
        .get(&format!("SALES.CUSTOMERS#{key}"))
        .expect("the row is in the table");
    assert_eq!(
        item.get("EMAIL")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str),
        Some("second@example.com"),
        "the reload replaced the first load"
    );
}
