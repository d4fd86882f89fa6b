//! The claim-check decision at its boundaries, and the proof that a whole event fits every
//! wrapper it may travel in.

use super::*;
use crate::cdc::{CdcEvent, KeyColumn, Operation, TableRef};
use crate::change_event::{into_base_event, published_detail};
use crate::dead_letter::{DeadLetterEvent, DeadLetterSource};
use crate::envelope::{EntryTarget, EnvelopeMeta, EnvelopePacker};
use crate::failure::{ErrorClass, Stage};
use crate::owed::OwedEvent;
use serde_json::json;

const SOURCE: &str = "eda.cdc";
const REGIONS: [&str; 2] = ["us-west-2", "us-east-1"];

fn limits() -> EventLimits {
    EventLimits::new(SOURCE, &RoutingConfig::default(), 256 * 1024, REGIONS)
}

fn address() -> ItemAddress<'static> {
    ItemAddress {
        region: "us-west-2",
        table: "eda-cdc",
        key: None,
    }
}

/// A change of `SALES.DOCS` key 7 whose `BODY` column is `body`, with `before` as its before
/// image and the daemon's correlation id and Kafka coordinates.
fn change(operation: Operation, body: &str, before: Option<&str>) -> CdcEvent {
    let row = |body: &str| {
        json!({"ID": "7", "BODY": body})
            .as_object()
            .cloned()
            .unwrap_or_default()
            .into()
    };
    CdcEvent {
        table: TableRef::new("SALES", "DOCS"),
        operation,
        key: vec![KeyColumn {
            name: "ID".into(),
            value: json!("7"),
        }],
        after: Some(row(body)),
        before: before.map(row),
        change_sequence: "20240501120000000000000000000000001".into(),
        source_timestamp: Some("2024-05-01T12:00:00.000".into()),
        transaction_id: Some("00000000000000000000000000060008".into()),
        stream_position: Some("00000000.00bb2531.00000001.0000.02.0000:154.6963.16".into()),
        kafka: Some(crate::cdc::KafkaCoordinates {
            topic: "qlik.cdc".into(),
            partition: 3,
            offset: 123_456,
        }),
        trace: None,
    }
}

/// The same change as the stream processor reads it from the item: no before image, no
/// correlation id, the stream's position instead of Kafka's.
fn as_the_stream_reads_it(mut event: CdcEvent) -> CdcEvent {
    event.before = None;
    event.transaction_id = None;
    event.kafka = None;
    event.stream_position = Some("4000000000000000001234567".into());
    event
}

/// The body length that makes the agreed detail of `change(operation, .., before)` exactly
/// `target` bytes.
fn body_for_agreed(operation: Operation, target: usize) -> usize {
    let probe = |len: usize| {
        let mut base = into_base_event(change(operation, &"x".repeat(len), None), "us-west-2");
        agreed_len(&mut base)
    };
    let at_zero = probe(0);
    assert_eq!(probe(1000), at_zero + 1000, "the body counts byte for byte");
    target - at_zero
}

fn entry_of(event: CdcEvent) -> (BaseEvent, EventBridgeEntry) {
    let mut base = into_base_event(event, "us-west-2");
    let entry = change_entry_within(&mut base, SOURCE, "eda-events", &limits(), &address());
    (base, entry)
}

fn detail(entry: &EventBridgeEntry) -> Value {
    serde_json::from_str(&entry.detail).expect("JSON detail")
}

#[test]
fn the_quick_bound_is_never_above_the_exact_one() {
    for routing_max in [4 * 1024, 100 * 1024, 200 * 1024, 256 * 1024] {
        let routing = RoutingConfig {
            max_entry_bytes: routing_max,
            ..RoutingConfig::default()
        };
        let limits = EventLimits::new(SOURCE, &routing, 256 * 1024, REGIONS);
        for len in [0, 1, 17, 40, 128, 500] {
            for ty in ["x".repeat(len), "é\"".repeat(len / 3)] {
                let (quick, exact) = (limits.quick_max_detail(&ty), limits.max_detail(&ty));
                assert!(quick <= exact, "{routing_max} {len}: {quick} > {exact}");
                // Below by at most what the type costs the envelope.
                assert!(
                    exact - quick <= 7 * ty.len() + 8,
                    "{routing_max} {len}: {quick} far below {exact}"
                );
            }
        }
    }
}

#[test]
fn the_bound_leaves_room_for_the_worst_envelope() {
    let max = limits().max_detail("SALES.DOCS.UPDATE");
    // zstd's bound on 256 KB less the wrappers, in base64: about 190 KB of detail.
    assert!((185_000..200_000).contains(&max), "{max}");
    assert!(limits().max_detail(&format!("SALES.{}.UPDATE", "D".repeat(200))) < max);
    // A smaller routing.max_entry_bytes or DLQ message lowers it.
    let routing = RoutingConfig {
        max_entry_bytes: 100 * 1024,
        ..RoutingConfig::default()
    };
    let tight = EventLimits::new(SOURCE, &routing, 256 * 1024, REGIONS);
    assert!(tight.max_detail("SALES.DOCS.UPDATE") < 80 * 1024);
    let small_dlq = EventLimits::new(SOURCE, &RoutingConfig::default(), 128 * 1024, REGIONS);
    assert!(small_dlq.max_detail("SALES.DOCS.UPDATE") < 100 * 1024);
}

/// A payload of `len` bytes zstd cannot shrink.
fn incompressible(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x853c_49e6_748f_ea9b;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn a_whole_event_at_the_bound_fits_its_envelope_its_owed_record_and_its_route_letter() {
    let event_type = "SALES.DOCS.UPDATE";
    let max = limits().max_detail(event_type);
    let payload = incompressible(max);
    let mut packer = EnvelopePacker::new(&RoutingConfig::default(), None).expect("packer");
    let created_at = chrono::DateTime::from_timestamp(1_714_564_800, 123_456_789).expect("time");
    let correlation = "c".repeat(RESERVED_BYTES / 4);
    let meta = EnvelopeMeta {
        event_id: "6dd02324-8a79-80d0-8f55-fa6f4daec3e8",
        source_region: "us-west-2",
        target_region: "us-east-1",
        event_type,
        correlation_id: Some(&correlation),
        // A traced event's envelope carries its traceparent: the bound keeps room for it.
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        created_at,
    };
    let target = EntryTarget {
        source: CROSS_REGION_SOURCE,
        event_bus_name: Some("eda-events"),
    };
    let packed = packer
        .pack_entry(&meta, &payload, &target, None)
        .expect("the worst envelope fits the entry limit");
    assert!(
        packed.envelope.compressed_size >= payload.len(),
        "incompressible"
    );
    // Owed, with a long reason, it fits one SQS message...
    let reason = format!("PutEvents to us-east-1 failed: {}", "e".repeat(1_000));
    let owed = OwedEvent {
        target_region: "us-east-1".into(),
        reason: reason.clone(),
        owed_at: created_at,
        source: DeadLetterSource::Kafka {
            topic: "t".repeat(249).into(),
            partition: 11,
            offset: 9_999_999_999,
        },
        envelope: packed.envelope,
    };
    let body = owed
        .to_body(MAX_OWED_MESSAGE_BYTES)
        .expect("the owed record fits SQS");
    // ...and as a route dead letter it is kept whole.
    let letter = DeadLetterEvent::new(
        "1c3a7d6e-0000-4000-8000-000000000000",
        body.as_bytes(),
        ErrorClass::Timeout,
        &reason,
        Stage::Route,
        owed.source.clone(),
        created_at,
    )
    .with_breaker("forced_open", "us-east-1")
    .with_correlation_id(correlation.clone());
    let message = letter.to_sqs_message(256 * 1024).expect("fits");
    let back = DeadLetterEvent::from_sqs_body(&message.body).expect("parses");
    assert!(!back.payload_truncated);
    assert_eq!(
        back.original_payload_bytes().expect("replayable").as_ref(),
        body.as_bytes()
    );
}

#[test]
fn small_events_are_published_whole_as_before() {
    let event = change(Operation::Update, "short", Some("shorter"));
    let plain = change_entry(
        &into_base_event(event.clone(), "us-west-2"),
        SOURCE,
        "eda-events",
    );
    let (_, entry) = entry_of(event);
    assert_eq!(entry, plain);
}

#[test]
fn at_the_bound_an_event_is_whole_and_one_byte_over_it_goes_by_reference() {
    let max = limits().max_detail("SALES.DOCS.UPDATE");
    let len = body_for_agreed(Operation::Update, max - RESERVED_BYTES);
    let (_, whole) = entry_of(change(Operation::Update, &"x".repeat(len), None));
    let d = detail(&whole);
    assert_eq!(
        d["payload"]["after"]["BODY"].as_str().map(str::len),
        Some(len)
    );
    assert!(d["payload"].get("claim_check").is_none());
    assert!(whole.size() <= MAX_CALL_BYTES);

    let (base, by_ref) = entry_of(change(Operation::Update, &"x".repeat(len + 1), None));
    let d = detail(&by_ref);
    assert_eq!(d["payload"]["after"], Value::Null);
    assert_eq!(d["payload"]["omitted"], json!(["after"]));
    assert_eq!(
        d["payload"]["claim_check"],
        json!({
            "dynamodb_table": "eda-cdc",
            "item_key": {"pk": "SALES.DOCS#7"},
            "region": "us-west-2",
            "sequence": "20240501120000000000000000000000001"
        })
    );
    // Everything but the row is still there, under the same id.
    assert_eq!(d["event_id"], base.event_id.as_str());
    assert_eq!(d["event_type"], "SALES.DOCS.UPDATE");
    assert_eq!(d["payload"]["key"], json!({"ID": "7"}));
    assert_eq!(d["payload"]["operation"], "UPDATE");
    assert!(by_ref.size() < 2048, "{}", by_ref.size());
    // The event-router writes it back with the same bytes (same envelope content hash).
    assert_eq!(published_detail(&d), by_ref.detail.as_bytes());
}

#[test]
fn the_daemon_and_the_stream_processor_decide_alike_whatever_their_before_images() {
    let max = limits().max_detail("SALES.DOCS.UPDATE");
    let len = body_for_agreed(Operation::Update, max - RESERVED_BYTES);
    for body_len in [len - 1, len, len + 1] {
        let body = "y".repeat(body_len);
        // The daemon's before image is as large as the row: the whole event would not fit.
        let daemon = change(Operation::Update, &body, Some(&"z".repeat(body_len)));
        let stream = as_the_stream_reads_it(daemon.clone());
        let (_, from_daemon) = entry_of(daemon);
        let (_, from_stream) = entry_of(stream);
        let (d, s) = (detail(&from_daemon), detail(&from_stream));
        for field in [
            "after",
            "claim_check",
            "key",
            "operation",
            "change_sequence",
        ] {
            assert_eq!(
                d["payload"][field], s["payload"][field],
                "{body_len}: {field}"
            );
        }
        assert_eq!(d["event_id"], s["event_id"]);
        if body_len <= len {
            assert_eq!(d["payload"]["omitted"], json!(["before"]), "{body_len}");
            assert!(s["payload"].get("omitted").is_none(), "{body_len}");
        } else {
            assert_eq!(d["payload"]["omitted"], json!(["after", "before"]));
            assert_eq!(s["payload"]["omitted"], json!(["after"]));
        }
        assert!(from_daemon.size() <= MAX_CALL_BYTES);
    }
}

#[test]
fn a_delete_never_goes_by_reference_for_its_row() {
    // Qlik sends the deleted row with a DELETE; the tombstone keeps only the key, so a large
    // deleted row is left out of the event rather than referenced.
    let (_, entry) = entry_of(change(Operation::Delete, &"d".repeat(300 * 1024), None));
    let d = detail(&entry);
    assert_eq!(d["payload"]["after"], Value::Null);
    assert_eq!(d["payload"]["omitted"], json!(["after"]));
    assert!(d["payload"].get("claim_check").is_none());
    assert_eq!(d["payload"]["operation"], "DELETE");
}

#[test]
fn an_item_key_given_by_the_caller_is_the_claim_checks() {
    let mut base = into_base_event(
        change(Operation::Insert, &"w".repeat(300 * 1024), None),
        "us-west-2",
    );
    let mut key = Map::new();
    key.insert("Id".into(), json!(101));
    let address = ItemAddress {
        region: "us-east-1",
        table: "orders",
        key: Some(key),
    };
    let entry = change_entry_within(&mut base, SOURCE, "b", &limits(), &address);
    assert_eq!(
        detail(&entry)["payload"]["claim_check"]["item_key"],
        json!({"Id": 101})
    );
}

#[test]
fn an_event_that_is_no_change_is_sent_as_it_is() {
    let mut event = BaseEvent {
        event_id: "e".into(),
        event_type: "order.created".into(),
        payload: Payload::Json(json!({"blob": "b".repeat(300 * 1024)})),
        ..BaseEvent::default()
    };
    let plain = change_entry(&event, SOURCE, "b");
    let entry = change_entry_within(&mut event, SOURCE, "b", &limits(), &address());
    assert_eq!(entry, plain);
}

#[test]
fn a_claim_check_resolves_to_the_row_while_the_item_holds_its_change() {
    use crate::apply_plan::{plan, typed, PlanOptions, TableRouting};
    let body = "q".repeat(600 * 1024);
    let event = change(Operation::Update, &body, None);
    let (_, entry) = entry_of(event.clone());
    let claim: ClaimCheck =
        serde_json::from_value(detail(&entry)["payload"]["claim_check"].clone()).expect("claim");
    let options = PlanOptions {
        now_epoch_secs: 0,
        tombstone_ttl_secs: 60,
        refresh_started_at: None,
    };
    let written = &plan(&[event], &TableRouting::new("eda-cdc"), &options).writes[0];
    assert_eq!(Value::String(written.pk().into()), claim.item_key["pk"]);
    let item: Image = written
        .item
        .iter()
        .map(|(k, v)| (k.clone(), typed(v)))
        .collect();
    assert!(
        item.contains_key("_zcols"),
        "a 600 KB row is stored compressed"
    );
    match claimed_row(Some(&item), &claim).expect("reads") {
        Claimed::Row(row) => {
            assert_eq!(row["BODY"], json!(body));
            assert_eq!(row["ID"], json!("7"));
            assert!(row.keys().all(|k| !k.starts_with('_') && k != "pk"));
        }
        other => panic!("{other:?}"),
    }
    let mut newer = item.clone();
    newer.insert("_seq".into(), AttributeValue::S("2".repeat(35)));
    assert_eq!(
        claimed_row(Some(&newer), &claim).expect("reads"),
        Claimed::Other {
            sequence: "2".repeat(35),
            deleted: false
        }
    );
    assert_eq!(claimed_row(None, &claim).expect("reads"), Claimed::Missing);
}
