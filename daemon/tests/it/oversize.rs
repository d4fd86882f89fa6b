//! Oversize rows and events, through the whole pipeline against the local stack.
//!
//! - A row whose change event is over EventBridge's entry limit (256 KB) but whose item fits
//!   DynamoDB's (400 KB): the item holds the row, and the event goes out *by reference* (a claim
//!   check: table, item key, sequence) on the home bus, and the same event, byte for byte, in the
//!   cross-region envelope on the other region's bus. Nothing is dead-lettered; the claim check
//!   resolves to the row.
//! - A row over DynamoDB's item limit: its largest columns are stored zstd-compressed in the
//!   item's `_zcols`, so the item is written (not left at the previous change) and reads back as
//!   the row; its event goes by reference too.
//! - The limits at their boundaries, against the real servers: DynamoDB Local takes an item of
//!   exactly 409,600 bytes as eda counts it (names and values of every kind) and refuses one
//!   more; ministack's EventBridge takes an entry of exactly 262,144 bytes as eda counts it
//!   (ministack enforces no limit, so the refusal of one more byte is eda's own check before
//!   sending, whose dead letter keeps the event whole); and a change event whose agreed detail is
//!   exactly at the claim-check bound goes whole through the pipeline to both regions, one byte
//!   more by reference.

use aws_sdk_dynamodb::types::AttributeValue;
use eda_actors::aws::{read_claimed_row, RegionClients};
use eda_actors::settings::event_limits;
use eda_core::cdc::{decode_qlik_json, DecodeContext, FallbackKeys, MetadataCache, QlikMessage};
use eda_core::cdc::{Operation, TableRef};
use eda_core::change_event::{event_id, into_base_event};
use eda_core::claim_check::{agreed_len, ClaimCheck, Claimed, RESERVED_BYTES};
use eda_core::envelope::EnvelopePacker;
use eda_loadtest::history::{
    change_of, pk, qlik_message, row_with_notes, sequence, Record, KEY_COLUMN, SCHEMA, TABLE,
};
use eda_testkit::table::whole;
use eda_testkit::{envelope_of, init_logs, local_config_path, unique, Inspector, Scenario, Sinks};
use serde_json::{json, Value};
use std::time::Duration;

/// Text of about `len` bytes that compresses like prose (zstd takes it to a third or so), so a
/// cross-region envelope of it fits where the event itself does not.
fn prose(len: usize, seed: u64) -> String {
    const WORDS: [&str; 16] = [
        "order",
        "shipped",
        "customer",
        "invoice",
        "pending",
        "warehouse",
        "Lisbon",
        "returned",
        "paid",
        "priority",
        "backorder",
        "carrier",
        "refund",
        "address",
        "note",
        "delayed",
    ];
    let mut rng = fastrand_like(seed);
    let mut out = String::with_capacity(len + 16);
    while out.len() < len {
        out.push_str(WORDS[(rng() % 16) as usize]);
        out.push(' ');
    }
    out.truncate(len);
    out
}

/// A tiny xorshift, so the test needs no RNG crate.
fn fastrand_like(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.max(1);
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// The id of the change of `key` at `seq`.
fn id_of(key: &str, operation: Operation, seq: &str) -> String {
    event_id(&change_of(key, operation, seq)).to_string()
}

/// What the DLQ holds, for a failing test's message.
async fn letters(scenario: &Scenario) -> Vec<String> {
    scenario
        .sinks
        .dlq
        .peek()
        .await
        .iter()
        .filter_map(|b| serde_json::from_str::<Value>(b).ok())
        .map(|l| {
            format!(
                "{} {}: {} (payload_truncated {}, original_size {})",
                l["stage"],
                l["error_class"],
                l["error_message"],
                l["payload_truncated"],
                l["original_size"]
            )
        })
        .collect()
}

/// An inspector on the secondary region's copy of the test's bus.
async fn secondary_inspector(scenario: &Scenario) -> Inspector {
    let config = &scenario.config;
    let clients = RegionClients::new(&config.regions.secondary, &config.aws).await;
    Inspector::attach(&clients, &config.regions.secondary.event_bus).await
}

/// Reads the inspection queue of the home bus for `ids`, and the other region's for their
/// envelopes; on a missing home event, says what the DLQ holds.
async fn both_buses(scenario: &Scenario, away: &Inspector, ids: &[String]) -> Vec<(Value, Value)> {
    let home = scenario
        .sinks
        .inspect
        .as_ref()
        .expect("inspected")
        .find(ids, Duration::from_secs(60))
        .await;
    let crossed = away.queue.find(ids, Duration::from_secs(30)).await;
    let mut out = Vec::new();
    for ((id, home), crossed) in ids.iter().zip(home).zip(crossed) {
        let Some(home) = home else {
            panic!(
                "no event {id} on the home bus; on the other region's bus: {}; the DLQ holds {:#?}",
                if crossed.is_some() {
                    "its envelope"
                } else {
                    "nothing"
                },
                letters(scenario).await
            );
        };
        let crossed = crossed.unwrap_or_else(|| panic!("no envelope of {id} on the other bus"));
        out.push((home, crossed));
    }
    out
}

/// The detail a cross-region envelope carries, as JSON.
fn carried(packer: &mut EnvelopePacker, crossed: &Value) -> Value {
    let envelope = envelope_of(crossed);
    serde_json::from_slice(&packer.unpack(&envelope).expect("the envelope opens"))
        .expect("the payload is JSON")
}

/// The claim check an event carries.
fn claim_of(event: &Value) -> ClaimCheck {
    serde_json::from_value(event["detail"]["payload"]["claim_check"].clone())
        .unwrap_or_else(|e| panic!("no claim check ({e}) in {}", event["detail"]["payload"]))
}

/// A 300 KB row: its event is over EventBridge's limit, its item is within DynamoDB's. The
/// event reaches both regions, the same, by reference; the claim check (through the library and
/// through `eda-daemon claim-check`) gives the row back; nothing is dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_over_eventbridges_limit_reaches_both_regions_by_reference() {
    init_logs();
    let scenario = Scenario::new(Sinks::create().await, 1).await;
    let away = secondary_inspector(&scenario).await;
    let key = unique("big-event");
    let notes = prose(300 * 1024, 7);
    let s1 = sequence(1);
    scenario
        .produce(&[Record::on_partition(
            0,
            qlik_message("INSERT", &s1, &row_with_notes(&key, &notes), None),
        )])
        .await;
    let (pipeline, _) = scenario.start().await;
    let id = id_of(&key, Operation::Insert, &s1);
    let (home, crossed) = both_buses(&scenario, &away, std::slice::from_ref(&id))
        .await
        .remove(0);
    let payload = &home["detail"]["payload"];
    assert_eq!(payload["after"], Value::Null, "the row is not in the event");
    assert_eq!(payload["omitted"], json!(["after"]));
    assert_eq!(payload["key"], json!({ KEY_COLUMN: key }));
    let claim = claim_of(&home);
    assert_eq!(
        claim,
        ClaimCheck {
            dynamodb_table: scenario.sinks.table.name.clone(),
            item_key: json!({"pk": pk(&key)})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            region: scenario.config.regions.primary.name.clone(),
            sequence: s1.clone(),
        }
    );
    // The other region carries the very same event.
    let mut packer = EnvelopePacker::new(&scenario.config.routing, None).expect("packer");
    assert_eq!(carried(&mut packer, &crossed), home["detail"]);

    // The claim check gives the row back.
    match read_claimed_row(&scenario.sinks.clients.dynamodb, &claim).await {
        Ok(Claimed::Row(row)) => {
            assert_eq!(row["NOTES"], json!(notes));
            assert_eq!(row[KEY_COLUMN], json!(key));
        }
        other => panic!("the claim check does not resolve: {other:?}"),
    }
    let file = std::env::temp_dir().join(format!("{}.json", unique("claim-check")));
    std::fs::write(&file, home.to_string()).expect("event file");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eda-daemon"))
        .args(["claim-check", "--config"])
        .arg(local_config_path())
        .arg(&file)
        .output()
        .expect("eda-daemon runs");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(printed["outcome"], "row");
    assert_eq!(printed["detail"]["payload"]["after"]["NOTES"], json!(notes));

    let items = scenario.sinks.table.items().await;
    assert!(
        matches!(items[&pk(&key)].get("NOTES"), Some(AttributeValue::S(n)) if *n == notes),
        "a 300 KB row fits DynamoDB as it is"
    );
    assert_eq!(
        scenario.sinks.dlq.depth().await.expect("DLQ attributes"),
        Some(0),
        "nothing dead-lettered: {:#?}",
        letters(&scenario).await
    );
    pipeline.shutdown().await;
}

/// A row over DynamoDB's 400 KB item limit, after a small INSERT of the same key: the item is
/// written at the UPDATE's sequence, with its largest column compressed in `_zcols`, and reads
/// back as the row; the INSERT's event is whole, the UPDATE's goes by reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_over_dynamodbs_item_limit_is_stored() {
    init_logs();
    let scenario = Scenario::new(Sinks::create().await, 1).await;
    let away = secondary_inspector(&scenario).await;
    let key = unique("big-row");
    let (s1, s2) = (sequence(1), sequence(2));
    let notes = prose(600 * 1024, 11);
    scenario
        .produce(&[
            Record::on_partition(
                0,
                qlik_message("INSERT", &s1, &row_with_notes(&key, "small"), None),
            ),
            Record::on_partition(
                0,
                qlik_message("UPDATE", &s2, &row_with_notes(&key, &notes), None),
            ),
        ])
        .await;
    let (pipeline, _) = scenario.start().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let item = loop {
        let items = scenario.sinks.table.items().await;
        let item = items.get(&pk(&key)).cloned();
        let seq = item.as_ref().and_then(|i| match i.get("_seq") {
            Some(AttributeValue::S(s)) => Some(s.clone()),
            _ => None,
        });
        if seq.as_deref() == Some(s2.as_str()) {
            break item.expect("the item");
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "the item of {key} stays at {seq:?}, not the UPDATE's {s2}; the DLQ holds {:#?}",
                letters(&scenario).await
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        matches!(item.get("_zcols"), Some(AttributeValue::B(_))),
        "stored with its columns compressed"
    );
    assert!(!item.contains_key("NOTES"), "the large column is in _zcols");
    assert_eq!(
        item.get("NAME"),
        Some(&AttributeValue::S("Ada".into())),
        "small ones stay"
    );
    assert_eq!(
        whole(&item).get("NOTES"),
        Some(&AttributeValue::S(notes.clone())),
        "the row is whole"
    );
    let ids = [
        id_of(&key, Operation::Insert, &s1),
        id_of(&key, Operation::Update, &s2),
    ];
    let events = both_buses(&scenario, &away, &ids).await;
    assert_eq!(events[0].0["detail"]["payload"]["after"]["NOTES"], "small");
    let claim = claim_of(&events[1].0);
    assert_eq!(claim.sequence, s2);
    let mut packer = EnvelopePacker::new(&scenario.config.routing, None).expect("packer");
    for (home, crossed) in &events {
        assert_eq!(&carried(&mut packer, crossed), &home["detail"]);
    }
    match read_claimed_row(&scenario.sinks.clients.dynamodb, &claim).await {
        Ok(Claimed::Row(row)) => assert_eq!(row["NOTES"], json!(notes)),
        other => panic!("the claim check does not resolve: {other:?}"),
    }
    assert_eq!(
        scenario.sinks.dlq.depth().await.expect("DLQ attributes"),
        Some(0),
        "nothing dead-lettered: {:#?}",
        letters(&scenario).await
    );
    pipeline.shutdown().await;
}

/// The agreed detail length of the change a Qlik message decodes to, as the claim-check
/// decision measures it.
fn agreed_len_of(message: &[u8]) -> usize {
    let keys =
        FallbackKeys::none().with_table(&TableRef::new(SCHEMA, TABLE), vec![KEY_COLUMN.into()]);
    let ctx = DecodeContext {
        default_table: None,
        fallback_keys: &keys,
    };
    let change = match decode_qlik_json(message, &ctx, &MetadataCache::new(), None) {
        Ok(QlikMessage::Change(change)) => change,
        other => panic!("a change: {other:?}"),
    };
    agreed_len(&mut into_base_event(change, "us-west-2"))
}

/// At the claim-check bound, through the pipeline: a change whose agreed detail is exactly the
/// bound is published whole on both buses (the home entry near 190 KB, its envelope on the
/// other), one byte more goes by reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_claim_check_bound_an_event_is_whole_and_one_byte_more_goes_by_reference() {
    init_logs();
    let scenario = Scenario::new(Sinks::create().await, 1).await;
    let away = secondary_inspector(&scenario).await;
    let limit =
        event_limits(&scenario.config).max_detail("SALES.CUSTOMERS.INSERT") - RESERVED_BYTES;
    let s1 = sequence(1);
    let (at, over) = (unique("bound-at"), unique("bound-up"));
    let message = |key: &str, len: usize| {
        qlik_message("INSERT", &s1, &row_with_notes(key, &prose(len, 3)), None)
    };
    let probe = agreed_len_of(&message(&at, 1000));
    let len = 1000 + limit - probe;
    assert_eq!(agreed_len_of(&message(&at, len)), limit);
    assert_eq!(agreed_len_of(&message(&over, len + 1)), limit + 1);
    scenario
        .produce(&[
            Record::on_partition(0, message(&at, len)),
            Record::on_partition(0, message(&over, len + 1)),
        ])
        .await;
    let (pipeline, _) = scenario.start().await;
    let ids = [
        id_of(&at, Operation::Insert, &s1),
        id_of(&over, Operation::Insert, &s1),
    ];
    let events = both_buses(&scenario, &away, &ids).await;
    let (whole_event, by_reference) = (&events[0].0, &events[1].0);
    assert_eq!(
        whole_event["detail"]["payload"]["after"]["NOTES"]
            .as_str()
            .map(str::len),
        Some(len),
        "at the bound the event carries its row"
    );
    assert!(whole_event["detail"]["payload"]
        .get("claim_check")
        .is_none());
    assert_eq!(by_reference["detail"]["payload"]["after"], Value::Null);
    assert_eq!(claim_of(by_reference).item_key["pk"], json!(pk(&over)));
    let mut packer = EnvelopePacker::new(&scenario.config.routing, None).expect("packer");
    for (home, crossed) in &events {
        assert_eq!(&carried(&mut packer, crossed), &home["detail"]);
    }
    assert_eq!(
        scenario.sinks.dlq.depth().await.expect("DLQ attributes"),
        Some(0)
    );
    pipeline.shutdown().await;
}

/// An item of `size` bytes as eda counts it, with values of every kind besides its filler.
fn item_of_size(pk: &str, size: usize) -> eda_core::apply_plan::Item {
    use eda_core::apply_plan::{item_size, AttrValue};
    let mut nested = std::collections::BTreeMap::new();
    nested.insert("amount".into(), AttrValue::N("-12.345".into()));
    nested.insert(
        "tags".into(),
        AttrValue::L(vec![AttrValue::S("é".into()), AttrValue::Null]),
    );
    let mut item = eda_core::apply_plan::Item::new();
    item.insert("pk".into(), AttrValue::S(pk.into()));
    item.insert("n".into(), AttrValue::N("100.01".into()));
    item.insert(
        "big".into(),
        AttrValue::N("9.9999999999999999999999999999999999999E+125".into()),
    );
    item.insert("flag".into(), AttrValue::Bool(true));
    item.insert("bin".into(), AttrValue::B(vec![0, 1, 2, 255]));
    item.insert("naïve".into(), AttrValue::M(nested));
    item.insert("filler".into(), AttrValue::S(String::new()));
    let without = item_size(&item);
    item.insert("filler".into(), AttrValue::S("f".repeat(size - without)));
    assert_eq!(item_size(&item), size);
    item
}

/// DynamoDB Local takes an item of exactly 409,600 bytes as eda counts them, and refuses one of
/// 409,601: eda's count is DynamoDB's.
#[tokio::test]
async fn dynamodb_takes_an_item_of_exactly_its_limit_as_eda_counts_it_and_refuses_one_byte_more() {
    use eda_core::apply_plan::MAX_ITEM_BYTES;
    let sinks = Sinks::create_uninspected().await;
    let put = |size: usize| {
        let key = unique("boundary");
        let item = item_of_size(&key, size);
        let dynamodb = sinks.clients.dynamodb.clone();
        let table = sinks.table.name.clone();
        async move {
            dynamodb
                .put_item()
                .table_name(table)
                .set_item(Some(
                    item.iter()
                        .map(|(k, v)| (k.clone(), eda_actors::aws::to_sdk(v)))
                        .collect(),
                ))
                .send()
                .await
        }
    };
    put(MAX_ITEM_BYTES)
        .await
        .unwrap_or_else(|e| panic!("an item of exactly {MAX_ITEM_BYTES} bytes is refused: {e:?}"));
    let refused = put(MAX_ITEM_BYTES + 1)
        .await
        .expect_err("one byte more is refused");
    assert!(
        format!("{refused:?}").contains("Item size has exceeded the maximum allowed size"),
        "{refused:?}"
    );
}

/// An EventBridge entry whose size as eda counts it (`Source`, `DetailType`, `Detail`) is
/// `size`, with `marker` in its detail.
fn entry_of_size(marker: &str, size: usize, bus: &str) -> eda_core::eventbridge::EventBridgeEntry {
    let mut entry = eda_core::eventbridge::EventBridgeEntry {
        source: "eda.test".into(),
        detail_type: "boundary".into(),
        detail: json!({"marker": marker, "fill": ""}).to_string().into(),
        resources: Vec::new(),
        time: None,
        event_bus_name: Some(bus.into()),
        trace_header: None,
    };
    let fill = "é".repeat((size - entry.size()) / 2) + &"f".repeat((size - entry.size()) % 2);
    entry.detail = json!({"marker": marker, "fill": fill}).to_string().into();
    assert_eq!(entry.size(), size);
    entry
}

/// EventBridge (ministack) takes an entry of exactly 262,144 bytes as eda counts them (UTF-8
/// bytes, two to an `é`) and delivers it intact. ministack enforces no limit, so one byte more
/// cannot be refused by it: eda's publisher never sends such an entry, and its dead letter keeps
/// the event whole (compressed), replayable.
#[tokio::test]
async fn eventbridge_takes_an_entry_of_exactly_its_limit_and_eda_never_sends_one_byte_more() {
    use eda_actors::ack::Ack;
    use eda_actors::aws::SqsDeadLetterQueue;
    use eda_actors::eventbridge_publisher::{
        spawn_unsupervised, EventBridgePublisherMsg, PublishItem,
    };
    use eda_core::dead_letter::{DeadLetterEvent, DeadLetterSource, PayloadEncoding};
    use eda_core::eventbridge::MAX_CALL_BYTES;
    use std::sync::Arc;
    let sinks = Sinks::create().await;
    let config = sinks.config("no-topic");
    let region = &config.regions.primary;
    let dlq = Arc::new(SqsDeadLetterQueue::new(
        sinks.clients.sqs.clone(),
        region.dlq_queue_url.clone(),
    ));
    let (publisher, _) = spawn_unsupervised(
        &config,
        region,
        sinks.clients.lean_eventbridge.clone(),
        dlq,
        Arc::new(eda_actors::telemetry::Metrics::new()),
    )
    .await
    .expect("publisher starts");
    let (at, over) = (unique("eb-at-limit"), unique("eb-over-limit"));
    let item = |marker: &str, size: usize| PublishItem {
        entry: entry_of_size(marker, size, &sinks.bus),
        source: DeadLetterSource::Lambda {
            request_id: marker.into(),
            function: "boundary".into(),
        },
        correlation_id: None,
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    publisher
        .cast(EventBridgePublisherMsg::Publish {
            items: vec![item(&at, MAX_CALL_BYTES), item(&over, MAX_CALL_BYTES + 1)],
            ack: Ack::Notify(tx),
        })
        .expect("publisher takes the items");
    tokio::time::timeout(Duration::from_secs(30), rx)
        .await
        .expect("settled in time")
        .expect("settled");
    let found = sinks
        .inspect
        .as_ref()
        .expect("inspected")
        .find(&[at.clone(), over.clone()], Duration::from_secs(15))
        .await;
    let delivered = found[0]
        .as_ref()
        .expect("the entry at the limit is on the bus");
    let sent: Value =
        serde_json::from_str(&entry_of_size(&at, MAX_CALL_BYTES, "b").detail).expect("JSON detail");
    assert_eq!(delivered["detail"], sent, "delivered intact");
    assert!(found[1].is_none(), "the entry one byte over was sent");
    let letters = sinks.dlq.drain(1, Duration::from_secs(10)).await;
    assert_eq!(
        letters.len(),
        1,
        "the entry over the limit is dead-lettered"
    );
    let letter = DeadLetterEvent::from_sqs_body(&letters[0]).expect("a dead letter");
    assert!(
        letter
            .error_message
            .contains("262145 bytes, over the 262144-byte limit"),
        "{}",
        letter.error_message
    );
    assert!(!letter.payload_truncated);
    assert_eq!(letter.payload_encoding, PayloadEncoding::ZstdBase64);
    assert_eq!(
        letter
            .original_payload_bytes()
            .expect("replayable")
            .as_ref(),
        entry_of_size(&over, MAX_CALL_BYTES + 1, "b")
            .detail
            .as_bytes()
    );
}
