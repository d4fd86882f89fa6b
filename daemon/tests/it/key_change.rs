//! Key-changing UPDATEs keep the order of both keys. An UPDATE whose before image names another
//! key than its after image moves the row: the old key is deleted and the new key written. Each
//! key's changes must be applied in the order the partition holds them, whichever applier a key
//! hashes to, so the old key's DELETE waits behind the old key's earlier changes and the new
//! key's write behind the new key's. Both are published: a DELETE event of the old key and an
//! INSERT event of the new key, each under its own id (table, key, sequence), as the
//! `stream-processor` publishes them from the two items. The message's offset is committed once
//! both are settled.
//!
//! The fault proxy in front of DynamoDB Local holds the write of one item (the requests that
//! carry a marker) while every other write passes, so the test can look at the table while one
//! key's applier is held and the other's is not.

use crate::fault_proxy::{Fault, FaultProxy};
use aws_sdk_dynamodb::types::AttributeValue;
use eda_core::apply_plan::applier_for;
use eda_core::cdc::{CdcEvent, KeyColumn, Operation, TableRef};
use eda_core::change_event::event_id;
use eda_loadtest::history::{pk, qlik_message, sequence, Record, KEY_COLUMN, SCHEMA, TABLE};
use eda_testkit::table::Item;
use eda_testkit::{init_logs, unique, Scenario, Sinks};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// DynamoDB Local.
const DYNAMODB: &str = "127.0.0.1:8000";

/// Appliers of the pipeline under test (the default).
const APPLIERS: usize = 4;

/// A change of the generated table with key `key`, for [`event_id`] and [`applier_for`].
fn change(key: &str, operation: Operation, seq: &str) -> CdcEvent {
    CdcEvent {
        table: TableRef::new(SCHEMA, TABLE),
        operation,
        key: vec![KeyColumn {
            name: KEY_COLUMN.into(),
            value: json!(key),
        }],
        after: None,
        before: None,
        change_sequence: seq.into(),
        source_timestamp: None,
        transaction_id: None,
        stream_position: None,
        kafka: None,
        trace: None,
    }
}

/// Two fresh keys whose changes go to different appliers.
fn keys_on_two_appliers() -> (String, String) {
    let old = unique("kc-old");
    loop {
        let new = unique("kc-new");
        let (a, b) = (
            applier_for(&change(&old, Operation::Insert, &sequence(1)), APPLIERS),
            applier_for(&change(&new, Operation::Insert, &sequence(1)), APPLIERS),
        );
        if a != b {
            return (old, new);
        }
    }
}

/// A row of the generated table.
fn row(key: &str, notes: &str) -> Map<String, Value> {
    let mut row = Map::new();
    row.insert(KEY_COLUMN.into(), key.into());
    row.insert("NAME".into(), "Ada".into());
    row.insert("NOTES".into(), notes.into());
    row
}

/// A record of partition 0.
fn record(value: Vec<u8>) -> Record {
    Record {
        key: None,
        partition: Some(0),
        value,
        original: true,
    }
}

fn string(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    }
}

/// `_seq`, `_op` and `_deleted` of an item, for messages.
fn describe(item: Option<&Item>) -> String {
    match item {
        None => "absent".into(),
        Some(item) => format!(
            "_seq {:?}, _op {:?}, _deleted {:?}",
            string(item, "_seq"),
            string(item, "_op"),
            item.get("_deleted")
        ),
    }
}

/// Waits until the table holds `pk`, or fails.
async fn wait_for_item(scenario: &Scenario, pk: &str, within: Duration) -> Item {
    let deadline = Instant::now() + within;
    loop {
        if let Some(item) = scenario.sinks.table.items().await.remove(pk) {
            return item;
        }
        assert!(Instant::now() < deadline, "{pk} never written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads the inspection queue until every id of `ids` has arrived; returns the events by id.
async fn events_by_id(scenario: &Scenario, ids: &[String]) -> BTreeMap<String, Value> {
    let queue = scenario.sinks.inspect.as_ref().expect("inspected sinks");
    let found = queue.find(ids, Duration::from_secs(90)).await;
    ids.iter()
        .zip(found)
        .map(|(id, event)| {
            let event = event.unwrap_or_else(|| panic!("no event with id {id} on the bus"));
            (id.clone(), event)
        })
        .collect()
}

/// The value of the counter `name` (summed over its series) in an OpenMetrics text.
fn counter(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The old key's INSERT is held in DynamoDB while the UPDATE that moves the row to a new key
/// arrives. The new key is written meanwhile (its applier is free), but the old key's DELETE
/// waits for the old key's INSERT: the table never shows the old key deleted before it was
/// inserted. Once the INSERT passes, the old key ends as a tombstone of the UPDATE, the new key
/// as its row, and three events are out: the INSERT of the old key, the DELETE of the old key
/// and the INSERT of the new key, none of them counted as a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_changing_update_keeps_the_order_of_both_keys() {
    init_logs();
    let mut scenario = Scenario::new(Sinks::create().await, 1).await;
    scenario.config.apply.appliers = APPLIERS;
    let (old, new) = keys_on_two_appliers();
    // The old key's INSERT carries the marker; nothing else does.
    let marker = unique("held-insert");
    let proxy = FaultProxy::start(DYNAMODB.parse::<SocketAddr>().expect("address")).await;
    proxy.set(Fault::Stall(marker.clone().into_bytes().leak()));
    scenario.config.regions.primary.endpoints.dynamodb = Some(proxy.url());
    let (s1, s2) = (sequence(1), sequence(2));
    // The INSERT first, alone, so it is read (and held) before the UPDATE arrives: in one batch
    // the two changes of the old key would be coalesced into its tombstone, as they may be.
    scenario
        .produce(&[record(qlik_message(
            "INSERT",
            &s1,
            &row(&old, &marker),
            None,
        ))])
        .await;
    let (pipeline, obs) = scenario.start().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while counter(
        &obs.metrics.encode().expect("metrics encode"),
        "eda_kafka_messages_consumed_total",
    ) < 1.0
    {
        assert!(Instant::now() < deadline, "the INSERT is never read");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    scenario
        .produce(&[record(qlik_message(
            "UPDATE",
            &s2,
            &row(&new, "moved"),
            Some(&row(&old, "before the move")),
        ))])
        .await;

    // The new key is written while the old key's INSERT is held.
    wait_for_item(&scenario, &pk(&new), Duration::from_secs(60)).await;
    let watching = Instant::now();
    while watching.elapsed() < Duration::from_secs(3) {
        let items = scenario.sinks.table.items().await;
        assert!(
            !items.contains_key(&pk(&old)),
            "the old key {old} was written ({}) while its INSERT ({s1}), read before the \
             key-changing UPDATE ({s2}), was still held: the old key's changes are applied out \
             of order",
            describe(items.get(&pk(&old)))
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The INSERT passes; everything completes in order.
    proxy.set(Fault::None);
    let ids = [
        event_id(&change(&old, Operation::Insert, &s1)).to_string(),
        event_id(&change(&old, Operation::Delete, &s2)).to_string(),
        event_id(&change(&new, Operation::Insert, &s2)).to_string(),
    ];
    let events = events_by_id(&scenario, &ids).await;
    let types: Vec<(&str, &Value)> = ids
        .iter()
        .map(|id| {
            let detail = &events[id]["detail"];
            (
                detail["event_type"].as_str().unwrap_or(""),
                &detail["payload"]["key"][KEY_COLUMN],
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            ("SALES.CUSTOMERS.INSERT", &json!(old)),
            ("SALES.CUSTOMERS.DELETE", &json!(old)),
            ("SALES.CUSTOMERS.INSERT", &json!(new)),
        ],
        "the events of the old key's INSERT, and of the move: the old key's DELETE and the new \
         key's INSERT"
    );
    let items = scenario.sinks.table.items().await;
    let (old_item, new_item) = (items.get(&pk(&old)), items.get(&pk(&new)));
    assert_eq!(
        old_item.and_then(|i| string(i, "_seq")).as_deref(),
        Some(s2.as_str()),
        "the old key ends as the move's tombstone: {}",
        describe(old_item)
    );
    assert_eq!(
        old_item.and_then(|i| i.get("_deleted").cloned()),
        Some(AttributeValue::Bool(true))
    );
    assert_eq!(
        (
            new_item.and_then(|i| string(i, "_seq")),
            new_item.and_then(|i| string(i, "_op")),
            new_item.and_then(|i| string(i, "NOTES")),
        ),
        (
            Some(s2.clone()),
            Some("INSERT".into()),
            Some("moved".into())
        ),
        "the new key holds the moved row: {}",
        describe(new_item)
    );
    scenario
        .committed_to_the_end(Duration::from_secs(60))
        .await
        .expect("the group commits to the end");
    let text = obs.metrics.encode().expect("metrics encode");
    assert_eq!(
        counter(&text, "eda_events_republished_total"),
        0.0,
        "no change was applied twice, so none is published as a replay"
    );
    assert_eq!(
        scenario.sinks.dlq.depth().await.expect("DLQ attributes"),
        Some(0),
        "nothing dead-lettered"
    );
    pipeline.shutdown().await;
}

/// A key change is one message with two writes on two appliers: its offset is committed only
/// once both are settled. The new key's write is held; the old key's tombstone goes through,
/// and the commit stays before the message until the new key is written too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_change_is_committed_once_both_keys_are_written() {
    init_logs();
    let mut scenario = Scenario::new(Sinks::create_uninspected().await, 1).await;
    scenario.config.apply.appliers = APPLIERS;
    let (old, new) = keys_on_two_appliers();
    let marker = unique("held-move");
    let proxy = FaultProxy::start(DYNAMODB.parse::<SocketAddr>().expect("address")).await;
    proxy.set(Fault::Stall(marker.clone().into_bytes().leak()));
    scenario.config.regions.primary.endpoints.dynamodb = Some(proxy.url());
    let s1 = sequence(1);
    scenario
        .produce(&[record(qlik_message(
            "UPDATE",
            &s1,
            &row(&new, &marker),
            Some(&row(&old, "before the move")),
        ))])
        .await;
    let (pipeline, _) = scenario.start().await;

    let tombstone = wait_for_item(&scenario, &pk(&old), Duration::from_secs(60)).await;
    assert_eq!(string(&tombstone, "_op").as_deref(), Some("DELETE"));
    let watching = Instant::now();
    while watching.elapsed() < Duration::from_secs(3) {
        let committed = eda_testkit::topic::committed_offsets(
            &scenario.brokers,
            &scenario.topic,
            scenario.group(),
            vec![0],
        )
        .await
        .expect("committed offsets")
        .get(&0)
        .copied()
        .flatten();
        assert!(
            committed.unwrap_or(0) == 0,
            "offset committed to {committed:?} while the new key's write is held"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        !scenario.sinks.table.items().await.contains_key(&pk(&new)),
        "the new key's write is held"
    );
    proxy.set(Fault::None);
    wait_for_item(&scenario, &pk(&new), Duration::from_secs(60)).await;
    scenario
        .committed_to_the_end(Duration::from_secs(60))
        .await
        .expect("the group commits to the end once both keys are written");
    pipeline.shutdown().await;
}
