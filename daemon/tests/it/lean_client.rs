//! The lean client of the per-message calls (`PutItem`, `PutEvents`) against the real local
//! servers: what eda writes is what DynamoDB Local stores, the guard's refusal brings back the
//! stored sequence, ministack's bus gets the fields of an entry, and a black-holed EventBridge
//! ends in a retryable timeout. (Throttles and 5xx answers: `holds.rs`; a black-holed
//! DynamoDB: `timeouts.rs`.)

use super::fault_proxy::{Fault, FaultProxy};
use eda_actors::aws::{from_sdk, DynamoDbItemWriter, EventBridgeClient, RegionClients};
use eda_actors::ports::{EventPublisher, ItemWriter};
use eda_core::apply_plan::{AttrValue, PlannedWrite, WriteOutcome, PK_ATTR, SEQ_ATTR};
use eda_core::eventbridge::EventBridgeEntry;
use eda_core::failure::ErrorClass;
use eda_testkit::bus::Inspector;
use eda_testkit::{local_config, Sinks};
use std::collections::BTreeMap;
use std::time::Duration;

/// An item with every attribute type the apply plan produces, and strings that need escaping.
fn write(table: &str, pk: &str, n: u64) -> PlannedWrite {
    let sequence = eda_loadtest::history::sequence(n);
    let item = BTreeMap::from([
        (PK_ATTR.to_string(), AttrValue::S(pk.into())),
        (SEQ_ATTR.to_string(), AttrValue::S(sequence.clone())),
        (
            "NAME".to_string(),
            AttrValue::S(format!("O'Brien \"Bob\" \\ é ✓\n\t\u{1} #{n}")),
        ),
        ("AMOUNT".to_string(), AttrValue::N("-12345.6789".into())),
        ("ACTIVE".to_string(), AttrValue::Bool(n % 2 == 0)),
        ("NOTE".to_string(), AttrValue::Null),
        (
            "BLOB".to_string(),
            AttrValue::B(vec![0, 1, 2, 253, 254, 255]),
        ),
        (
            "TAGS".to_string(),
            AttrValue::L(vec![AttrValue::S("a".into()), AttrValue::N("2".into())]),
        ),
        (
            "ADDRESS".to_string(),
            AttrValue::M(BTreeMap::from([
                ("city".to_string(), AttrValue::S("Zürich".into())),
                ("zip".to_string(), AttrValue::N("8001".into())),
            ])),
        ),
    ]);
    PlannedWrite {
        table_name: table.to_string(),
        item,
        sequence,
        tombstone: false,
        winner: 0,
        covers: vec![0],
    }
}

#[tokio::test]
async fn the_guard_refuses_older_and_replayed_writes_and_returns_the_stored_sequence() {
    let sinks = Sinks::create_uninspected().await;
    let writer = DynamoDbItemWriter::new(&sinks.clients);
    let table = &sinks.table.name;

    let second = write(table, "SALES.CUSTOMERS#L1", 2);
    assert_eq!(
        writer.write(&second).await.expect("first write"),
        WriteOutcome::Applied { previous: None }
    );
    let stored = sinks.table.items().await;
    let item: BTreeMap<String, AttrValue> = stored["SALES.CUSTOMERS#L1"]
        .iter()
        .map(|(name, value)| (name.clone(), from_sdk(value)))
        .collect();
    assert_eq!(
        item, second.item,
        "DynamoDB stored exactly the planned item"
    );

    for older in [write(table, "SALES.CUSTOMERS#L1", 1), second.clone()] {
        let outcome = writer.write(&older).await.expect("a refusal is an answer");
        assert_eq!(
            outcome,
            WriteOutcome::Superseded {
                current: Some(second.sequence.clone())
            },
            "sequence {} against the stored {}",
            older.sequence,
            second.sequence
        );
    }
    let newer = write(table, "SALES.CUSTOMERS#L1", 3);
    assert_eq!(
        writer.write(&newer).await.expect("newer write"),
        WriteOutcome::Applied { previous: None }
    );
}

#[tokio::test]
async fn a_write_to_a_missing_table_is_a_permanent_error() {
    let config = local_config();
    let clients = RegionClients::new(&config.regions.primary, &config.aws).await;
    let err = DynamoDbItemWriter::new(&clients)
        .write(&write("eda-no-such-table", "K", 1))
        .await
        .expect_err("no table");
    assert_eq!(err.class, ErrorClass::Client, "{err:?}");
    assert!(err.message.contains("ResourceNotFoundException"), "{err}");
}

#[tokio::test]
async fn put_events_delivers_every_field_of_each_entry_to_the_bus() {
    let config = local_config();
    let region = &config.regions.primary;
    let clients = RegionClients::new(region, &config.aws).await;
    let bus = eda_testkit::bus::create_bus(&clients).await;
    let inspector = Inspector::attach(&clients, &bus).await;
    let publisher = EventBridgeClient::new(clients.lean_eventbridge.clone(), &bus, &region.name);
    let marker = eda_testkit::unique("lean-marker");
    let detail = serde_json::json!({
        "marker": marker,
        "text": "quote \" backslash \\ newline \n unicode é ✓ control \u{1}",
    })
    .to_string();
    let entries = [
        EventBridgeEntry {
            source: "eda.test".into(),
            detail_type: "lean.first".into(),
            detail: detail.clone(),
            resources: vec!["arn:aws:dynamodb:us-west-2:000000000000:table/t".into()],
            time: Some("2026-01-02T03:04:05Z".into()),
            event_bus_name: None,
            // Taken, though the stand-in keeps no trace of it.
            trace_header: Some(
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".into(),
            ),
        },
        EventBridgeEntry {
            source: "eda.test".into(),
            detail_type: "lean.second".into(),
            detail: serde_json::json!({ "marker": format!("{marker}-2") }).to_string(),
            resources: Vec::new(),
            time: None,
            event_bus_name: Some(bus.clone()),
            trace_header: None,
        },
    ];
    let results = publisher.put_events(&entries).await.expect("answered");
    assert_eq!(results.len(), 2);
    for result in &results {
        assert!(
            result.as_ref().is_ok_and(|id| !id.is_empty()),
            "{results:?}"
        );
    }

    let events = inspector
        .wait_for(&[format!("\"{marker}\""), format!("{marker}-2")])
        .await;
    let first = &events[0];
    assert_eq!(first["source"], "eda.test");
    assert_eq!(first["detail-type"], "lean.first");
    assert_eq!(
        first["detail"],
        serde_json::from_str::<serde_json::Value>(&detail).expect("detail")
    );
    assert_eq!(
        first["resources"],
        serde_json::json!(["arn:aws:dynamodb:us-west-2:000000000000:table/t"])
    );
    // ministack stamps the arrival time whatever `Time` says (its own convention), so the
    // field's form is checked by the serializer's unit test instead.
    assert_eq!(events[1]["detail-type"], "lean.second");
}

#[tokio::test]
async fn a_black_holed_eventbridge_times_out_as_a_retryable_failure() {
    let proxy = FaultProxy::start("127.0.0.1:5000".parse().expect("address")).await;
    let mut config = local_config();
    config.regions.primary.endpoints.eventbridge = Some(proxy.url());
    config.aws.attempt_timeout_ms = 300;
    let region = &config.regions.primary;
    let clients = RegionClients::new(region, &config.aws).await;
    let publisher = EventBridgeClient::new(
        clients.lean_eventbridge.clone(),
        &region.event_bus,
        &region.name,
    );
    let entry = EventBridgeEntry {
        source: "eda.test".into(),
        detail_type: "lean.timeout".into(),
        detail: "{}".into(),
        ..EventBridgeEntry::default()
    };
    proxy.set(Fault::BlackHole);
    // The bound only keeps a broken build from hanging the suite.
    let err = tokio::time::timeout(
        Duration::from_secs(60),
        publisher.put_events(std::slice::from_ref(&entry)),
    )
    .await
    .expect("the call ends on its own")
    .expect_err("nothing answered");
    assert_eq!(err.class, ErrorClass::Timeout, "{err:?}");
    assert!(err.is_retryable());

    proxy.set(Fault::None);
    let results = tokio::time::timeout(Duration::from_secs(60), publisher.put_events(&[entry]))
        .await
        .expect("the call ends on its own")
        .expect("answered once the path is back");
    assert!(results[0].is_ok(), "{results:?}");
}
