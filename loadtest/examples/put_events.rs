//! Drives `PutEvents` calls at an EventBridge endpoint, for measuring what answering them costs
//! (`make bench-ir`'s `sink` path runs `eda-loadtest sink` under callgrind and drives it with this
//! and with `actors/examples/exchange.rs`).
//!
//! `put_events URL N` sends N `PutEvents` calls of 10 entries each through eda's lean
//! EventBridge client (`EventBridgeClient`, as the publisher does), one call at a time, on a
//! two-worker runtime like the daemon's. Each entry is shaped like one of the daemon's change
//! events: source `eda.cdc`, a ~1.4 KB detail (a JSON object with its own `event_id` first, a
//! before and an after image whose values hold quotes and apostrophes, so the detail travels with
//! escapes), a time and a trace header. Prints `N of N calls` once every entry of every call was
//! accepted.
//!
//! The configuration is `config/local.toml` with the primary region's EventBridge endpoint set to
//! `URL`; the sink checks no signatures.

use eda_actors::aws::{EventBridgeClient, RegionClients};
use eda_actors::ports::EventPublisher;
use eda_core::eventbridge::EventBridgeEntry;
use std::path::Path;

/// Entries per call, as the publisher sends them under load.
const ENTRIES: usize = 10;

/// A row image of 12 text columns with quotes in them, like the benchmark's rows.
fn image(n: usize, version: &str) -> String {
    let mut row = format!("{{\"ID\":\"{n}\",\"AMOUNT\":\"-12345.6789\"");
    for column in 0..12 {
        row.push_str(&format!(
            ",\"COLUMN_{column}\":\"{column:02} {version} O'Brien \\\"Bob\\\" {}\"",
            "x".repeat(4)
        ));
    }
    row.push('}');
    row
}

/// The `n`th entry: a change event of its own key, its `event_id` derived from `n`.
fn entry(n: usize) -> EventBridgeEntry {
    let detail = format!(
        "{{\"event_id\":\"00000000-0000-4000-8000-{n:012x}\",\"event_type\":\"cdc.change\",\
         \"source_region\":\"us-west-2\",\"timestamp\":\"2026-01-01T00:00:00.000Z\",\
         \"payload\":{{\"after\":{},\"before\":{},\"change_sequence\":\"{n:035}\",\
         \"key\":{{\"ID\":\"{n}\"}},\"operation\":\"UPDATE\",\"table\":\"SALES.CUSTOMERS\"}},\
         \"metadata\":{{\"traceparent\":\"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\"}}}}",
        image(n, "after"),
        image(n, "before"),
    );
    EventBridgeEntry {
        source: "eda.cdc".into(),
        detail_type: "cdc.change".into(),
        detail: detail.into(),
        resources: Vec::new(),
        time: Some("2026-01-01T00:00:00Z".into()),
        event_bus_name: None,
        trace_header: Some(
            "Root=1-0af76519-16cd43dd8448eb211c80319c;Parent=b7ad6b7169203331;Sampled=1".into(),
        ),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(n)) = (
        args.get(1),
        args.get(2).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: put_events URL N");
        std::process::exit(2);
    };
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/local.toml");
    std::env::set_var("EDA_REGIONS__PRIMARY__ENDPOINTS__EVENTBRIDGE", url);
    let config = eda_config::Config::load(Some(&file)).expect("config/local.toml loads");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let accepted = runtime.block_on(async {
        let clients = RegionClients::new(&config.regions.primary, &config.aws).await;
        let publisher = EventBridgeClient::new(
            clients.lean_eventbridge.clone(),
            "eda-events",
            config.regions.primary.name.clone(),
        );
        let mut accepted = 0;
        for call in 0..n {
            let entries: Vec<EventBridgeEntry> =
                (call * ENTRIES..(call + 1) * ENTRIES).map(entry).collect();
            match publisher.put_events(&entries).await {
                Ok(results) if results.iter().all(Result::is_ok) => accepted += 1,
                other => eprintln!("call {call}: {other:?}"),
            }
        }
        accepted
    });
    println!("{accepted} of {n} calls");
}
