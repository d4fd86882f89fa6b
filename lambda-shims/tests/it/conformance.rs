//! The same change through both shapes of eda, against the local stack:
//!
//! - the daemon path: the Qlik JSON message decoded as a partition consumer decodes it, then
//!   the daemon's own `CdcApplier` writing it to DynamoDB Local and handing its event to the
//!   daemon's publisher and, replicated, to the daemon's region routers;
//! - the Lambda path: the item that applier wrote, read back from DynamoDB Local as the stream
//!   record a `stream-processor` receives, published and routed by the stream processor; then
//!   both published events, as EventBridge delivers them, through the `event-router`.
//!
//! The EventBridge output is the same entry: source, detail-type, and the detail's id, type,
//! region, time, table, operation, sequence, key and row. The cross-region envelope is the same
//! too: every path's envelope has the same event id, event type, source and target region and
//! compression, and carries exactly the detail that path published (unpacking checks the content
//! hash and sizes); the payloads agree on the same fields as the details. The `event-router`
//! given the daemon's (or the stream processor's) published event makes the envelope the daemon
//! (or the stream processor) made, field for field, content hash and compressed bytes included;
//! only `created_at`, a wall-clock stamp, differs.
//!
//! These changes go through both paths: an UPDATE of a table whose key column is configured; a
//! REFRESH row (a full load's, without a change sequence), whose id both paths derive from the
//! sequence the apply guard compared; with no `kafka.key_columns` at all, an UPDATE and a
//! DELETE of a table whose composite key the daemon learned from Qlik's metadata message only
//! (the stream processor reads the key's names from the item's `_key`); and an UPDATE that
//! changes the row's key, which is the old key's DELETE and the new key's INSERT on both paths.
//!
//! The first change came in a traced message: both paths publish it under the same trace (the
//! daemon stores its `traceparent` on the item as `_trace`), in the detail's `metadata.trace_id`
//! and `metadata.traceparent` and in both envelopes' `traceparent`.
//!
//! What the stream cannot carry and so differs, by design: `payload.before` (the stream's old
//! image is the previous item, not Qlik's before image), `correlation_id` (Qlik's transaction id
//! is not stored on the item) and the rest of `metadata` (Kafka coordinates on one side, the
//! stream position on the other); so the daemon's and the stream processor's envelopes differ in those parts of
//! the payload, and therefore in content hash and sizes.

use crate::support::{event_router, stream_processor};
use eda_actors::ack::Ack;
use eda_actors::aws::{from_sdk, DynamoDbItemWriter, RegionClients};
use eda_actors::cdc_applier::{CdcApplier, CdcApplierArgs, CdcApplierMsg};
use eda_actors::eventbridge_publisher::spawn_unsupervised;
use eda_actors::region_router::RegionRouters;
use eda_actors::settings::applier_settings;
use eda_actors::telemetry::Metrics;
use eda_config::Config;
use eda_core::apply_plan::{effective_sequence, plan, AttrValue, PlanOptions, TableRouting};
use eda_core::cdc::{decode_qlik_json, DecodeContext, FallbackKeys, KafkaCoordinates};
use eda_core::cdc::{CdcEvent, MetadataCache, QlikMessage, TableRef};
use eda_core::change_event::event_id;
use eda_core::envelope::{CrossRegionEvent, EnvelopePacker};
use eda_core::trace::{MessageTrace, TraceContext};
use eda_lambda_shims::publishing::dlq_sink;
use eda_testkit::{envelope_of, local_config, unique, Inspector};
use ractor::Actor;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// The trace of the message the change came in.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

const QLIK_UPDATE: &str =
    include_str!("../../../core/tests/fixtures/qlik/update_with_table_name.json");

/// The detail fields both paths must agree on, and the payload fields.
const DETAIL_FIELDS: [&str; 4] = ["event_id", "event_type", "source_region", "timestamp"];
const PAYLOAD_FIELDS: [&str; 5] = ["table", "operation", "change_sequence", "key", "after"];

/// An item attribute in DynamoDB's typed JSON, as a stream record carries it.
fn typed(value: &AttrValue) -> Value {
    match value {
        AttrValue::S(s) => json!({ "S": s }),
        AttrValue::N(n) => json!({ "N": n }),
        AttrValue::Bool(b) => json!({ "BOOL": b }),
        AttrValue::Null => json!({ "NULL": true }),
        AttrValue::M(m) => {
            json!({ "M": m.iter().map(|(k, v)| (k.clone(), typed(v))).collect::<Map<_, _>>() })
        }
        AttrValue::L(l) => json!({ "L": l.iter().map(typed).collect::<Vec<_>>() }),
        AttrValue::B(b) => {
            use base64::Engine as _;
            json!({ "B": base64::engine::general_purpose::STANDARD.encode(b) })
        }
    }
}

/// The Qlik sample, renamed to a key of its own, decoded as the daemon's consumer decodes it
/// (the key column `ID` configured).
fn decoded_change(table: &TableRef, id: &str) -> CdcEvent {
    decoded(QLIK_UPDATE, table, id, &MetadataCache::new(), true)
}

/// A Qlik data message for `table`, its `ID` renamed to `id` (when it has one), decoded as the
/// daemon's consumer decodes it: with the table structures of `metadata`, and the key column
/// `ID` configured when `configured_key`.
fn decoded(
    message: &str,
    table: &TableRef,
    id: &str,
    metadata: &MetadataCache,
    configured_key: bool,
) -> CdcEvent {
    let message = message.replace(r#""ID":"2""#, &format!(r#""ID":"{id}""#));
    let keys = if configured_key {
        FallbackKeys::none().with_table(table, vec!["ID".into()])
    } else {
        FallbackKeys::none()
    };
    let ctx = DecodeContext {
        default_table: Some(table),
        fallback_keys: &keys,
    };
    let origin = KafkaCoordinates {
        topic: "qlik.cdc".into(),
        partition: 0,
        offset: 42,
    };
    match decode_qlik_json(message.as_bytes(), &ctx, metadata, Some(origin)) {
        Ok(QlikMessage::Change(change)) => change,
        other => panic!("a data message: {other:?}"),
    }
}

/// The daemon path: its applier, publisher and routers (started as the daemon starts them) take
/// the change; returns once the applier has acknowledged it (written, published, routed).
async fn through_the_daemon(config: &Config, change: CdcEvent) {
    let region = &config.regions.primary;
    let metrics = Arc::new(Metrics::new());
    let clients = RegionClients::new(region, &config.aws).await;
    let (publisher, dlq) = spawn_unsupervised(
        config,
        region,
        clients.lean_eventbridge.clone(),
        dlq_sink(region, &clients),
        metrics.clone(),
    )
    .await
    .expect("publisher starts");
    let routers = RegionRouters::spawn(config, region, dlq.clone(), metrics.clone())
        .await
        .expect("routers start");
    let (applier, _) = Actor::spawn(
        None,
        CdcApplier,
        CdcApplierArgs {
            writer: Arc::new(DynamoDbItemWriter::new(&clients)),
            publisher,
            dlq,
            // The daemon's appliers route to the secondary region's router.
            router: Some(routers.away.clone()),
            settings: Arc::new(applier_settings(config)),
            metrics,
        },
    )
    .await
    .expect("applier starts");
    let (tx, rx) = oneshot::channel();
    applier
        .cast(CdcApplierMsg::Apply {
            events: vec![change],
            ack: Ack::Notify(tx),
        })
        .expect("applier takes the change");
    tokio::time::timeout(Duration::from_secs(20), rx)
        .await
        .expect("the applier settles the change in time")
        .expect("the change is written, published and routed");
    applier.stop(None);
    routers.stop();
}

/// The item the applier wrote for `change`, read back from DynamoDB Local, as the stream record
/// of that write.
async fn stream_record_of(config: &Config, change: &CdcEvent) -> Value {
    let region = &config.regions.primary;
    let options = PlanOptions {
        now_epoch_secs: chrono::Utc::now().timestamp(),
        tombstone_ttl_secs: 86_400,
        refresh_started_at: None,
    };
    let planned = plan(
        std::slice::from_ref(change),
        &TableRouting::new(&region.cdc_table),
        &options,
    );
    let AttrValue::S(pk) = &planned.writes[0].item["pk"] else {
        panic!("the planned item's pk is not a string");
    };
    stream_record_at(config, pk, "MODIFY", 5000).await
}

/// An envelope from an event seen on a bus, and the payload it carries.
fn opened(packer: &mut EnvelopePacker, event: &Value) -> (CrossRegionEvent, Value) {
    let envelope = envelope_of(event);
    // `unpack` checks the sizes and the content hash against the payload.
    let payload = packer.unpack(&envelope).expect("the envelope opens");
    let payload = serde_json::from_slice(&payload).expect("the payload is JSON");
    (envelope, payload)
}

/// The envelope with its wall-clock stamp removed, for comparing the rest whole.
fn timeless(envelope: &CrossRegionEvent) -> CrossRegionEvent {
    let mut envelope = envelope.clone();
    envelope.created_at = chrono::DateTime::UNIX_EPOCH;
    envelope
}

/// What both paths published for one change: each path's event on the home bus and its
/// cross-region copy on the other region's bus.
struct BothPaths {
    daemon: Value,
    daemon_crossed: Value,
    lambda: Value,
    lambda_crossed: Value,
}

/// Each path's event on the home bus, found by `marker`, and its cross-region copy, found by
/// the event id that event carries (the copy's payload is compressed).
async fn seen(home_bus: Inspector, other_bus: Inspector, marker: &[String]) -> (Value, Value) {
    let event = home_bus.wait_for(marker).await.remove(0);
    let id = event["detail"]["event_id"]
        .as_str()
        .expect("an event id")
        .to_string();
    let crossed = other_bus.wait_for(&[id]).await.remove(0);
    (event, crossed)
}

/// Runs `change` through the daemon's actors, then its written item through the stream
/// processor; `marker` is something unique in both events (the change's key value).
async fn through_both_paths(config: &Config, change: &CdcEvent, marker: &str) -> BothPaths {
    let (home, other) = (&config.regions.primary, &config.regions.secondary);
    let marker = [marker.to_string()];
    // The daemon path. Both paths publish the same event, so each is read on its own.
    let (home_bus, other_bus) = (
        Inspector::start(config, home).await,
        Inspector::start(config, other).await,
    );
    through_the_daemon(config, change.clone()).await;
    let (daemon, daemon_crossed) = seen(home_bus, other_bus, &marker).await;

    // The Lambda path: the stream processor on the written item's stream record.
    let record = stream_record_of(config, change).await;
    let (home_bus, other_bus) = (
        Inspector::start(config, home).await,
        Inspector::start(config, other).await,
    );
    let processor = stream_processor(config).await;
    let response = processor
        .process(json!({"Records": [record]}), Duration::from_secs(20))
        .await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let (lambda, lambda_crossed) = seen(home_bus, other_bus, &marker).await;
    BothPaths {
        daemon,
        daemon_crossed,
        lambda,
        lambda_crossed,
    }
}

/// The event id both paths must publish `change` under: derived from the sequence the apply
/// guard compares (a REFRESH row's is made from its timestamp), never from an empty one.
fn guarded_event_id(change: &CdcEvent) -> String {
    let options = PlanOptions {
        now_epoch_secs: 0,
        tombstone_ttl_secs: 60,
        refresh_started_at: None,
    };
    let mut guarded = change.clone();
    guarded.change_sequence = effective_sequence(change, &options).expect("the change plans");
    event_id(&guarded).to_string()
}

/// The two paths' EventBridge output agrees on the detail's fields and on `payload_fields`.
fn assert_same_output(config: &Config, both: &BothPaths, payload_fields: &[&str]) {
    let (daemon, lambda) = (&both.daemon, &both.lambda);
    assert_eq!(lambda["source"], daemon["source"]);
    assert_eq!(lambda["source"], config.publish.source.as_str());
    assert_eq!(lambda["detail-type"], daemon["detail-type"]);
    for field in DETAIL_FIELDS {
        assert_eq!(lambda["detail"][field], daemon["detail"][field], "{field}");
    }
    for field in payload_fields {
        assert_eq!(
            lambda["detail"]["payload"][field], daemon["detail"]["payload"][field],
            "payload.{field}"
        );
    }
}

#[tokio::test]
async fn the_daemon_and_the_lambda_shims_publish_and_route_the_same_change() {
    let mut config = local_config();
    let table = TableRef::new("SALES", "CUSTOMERS");
    config
        .kafka
        .key_columns
        .insert(table.qualified(), vec!["ID".into()]);
    // What the SAM template gives the event-router; every table is replicated by default.
    config.routing.replicate_event_types = vec!["*".into()];
    let (home, other) = (&config.regions.primary, &config.regions.secondary);
    let key = unique("conf");
    let mut change = decoded_change(&table, &key);
    // The message carried a trace: both paths publish under it.
    change.trace = Some(Arc::new(MessageTrace {
        context: Some(TraceContext::parse(TRACEPARENT).expect("a traceparent")),
        ..MessageTrace::default()
    }));
    // Both paths publish, and route, under the change's own event id.
    let id = event_id(&change).to_string();
    let both = through_both_paths(&config, &change, &key).await;
    let BothPaths {
        daemon,
        daemon_crossed,
        lambda,
        lambda_crossed,
    } = &both;

    // The same EventBridge output.
    assert_same_output(&config, &both, &PAYLOAD_FIELDS);

    // The same cross-region envelope.
    let mut packer = EnvelopePacker::new(&config.routing, None).expect("packer");
    let (daemon_envelope, daemon_payload) = opened(&mut packer, daemon_crossed);
    let (lambda_envelope, lambda_payload) = opened(&mut packer, lambda_crossed);
    assert_eq!(daemon_envelope.event_id, id);
    assert_eq!(daemon["detail"]["event_id"], id.as_str());
    assert_eq!(lambda_envelope.event_id, daemon_envelope.event_id);
    assert_eq!(lambda_envelope.event_type, daemon_envelope.event_type);
    assert_eq!(
        daemon_envelope.event_type,
        daemon["detail-type"].as_str().unwrap_or("")
    );
    assert_eq!(
        (
            &daemon_envelope.source_region,
            &daemon_envelope.target_region
        ),
        (&home.name, &other.name)
    );
    assert_eq!(
        (
            &lambda_envelope.source_region,
            &lambda_envelope.target_region
        ),
        (&home.name, &other.name)
    );
    assert_eq!(lambda_envelope.compression, daemon_envelope.compression);
    assert_eq!(lambda_envelope.dictionary_id, daemon_envelope.dictionary_id);
    // Each envelope carries exactly the detail its path published...
    assert_eq!(daemon_payload, daemon["detail"]);
    assert_eq!(lambda_payload, lambda["detail"]);
    // ...so the two payloads agree where the details agree.
    for field in DETAIL_FIELDS {
        assert_eq!(lambda_payload[field], daemon_payload[field], "{field}");
    }
    for field in PAYLOAD_FIELDS {
        assert_eq!(
            lambda_payload["payload"][field], daemon_payload["payload"][field],
            "payload.{field}"
        );
    }

    // The same trace on both paths, both regions: the detail's metadata and the envelope.
    for (event, envelope) in [(daemon, &daemon_envelope), (lambda, &lambda_envelope)] {
        assert_eq!(event["detail"]["metadata"]["trace_id"], TRACE_ID, "{event}");
        assert_eq!(event["detail"]["metadata"]["traceparent"], TRACEPARENT);
        assert_eq!(envelope.traceparent.as_deref(), Some(TRACEPARENT));
    }

    // The event-router, given each published event as EventBridge delivers it, makes the
    // envelope that path's own router made.
    let router = event_router(&config).await;
    let other_bus = Inspector::start(&config, other).await;
    for event in [daemon, lambda] {
        router
            .route(event.clone(), "req-conformance", Duration::from_secs(20))
            .await
            .expect("the event-router settles the event");
    }
    let hashes = [
        daemon_envelope.content_hash.clone(),
        lambda_envelope.content_hash.clone(),
    ];
    let routed = other_bus.wait_for(&hashes).await;
    let (from_daemon, _) = opened(&mut packer, &routed[0]);
    let (from_lambda, _) = opened(&mut packer, &routed[1]);
    assert_eq!(timeless(&from_daemon), timeless(&daemon_envelope));
    assert_eq!(timeless(&from_lambda), timeless(&lambda_envelope));
    router.cross_region().stop();
    println!(
        "CONFORMANCE: envelope {} ({}): daemon content hash {} ({} -> {} bytes), stream \
         processor {} ({} -> {} bytes); event-router equal to each but created_at",
        daemon_envelope.event_id,
        daemon_envelope.event_type,
        daemon_envelope.content_hash,
        daemon_envelope.original_size,
        daemon_envelope.compressed_size,
        lambda_envelope.content_hash,
        lambda_envelope.original_size,
        lambda_envelope.compressed_size,
    );
}

/// A REFRESH row (a full load's, no change sequence): both paths publish it under the id of the
/// sequence the guard compared, which is the `_seq` the stream record carries.
#[tokio::test]
async fn a_loaded_row_has_the_same_event_id_on_both_paths() {
    let mut config = local_config();
    let table = TableRef::new("SALES", "CUSTOMERS");
    config
        .kafka
        .key_columns
        .insert(table.qualified(), vec!["ID".into()]);
    let key = unique("conf-load");
    let loaded = QLIK_UPDATE
        .replace(r#""operation":"UPDATE""#, r#""operation":"REFRESH""#)
        .replace(
            r#""changeSequence":"20230911032325000000000000000000005""#,
            r#""changeSequence":"""#,
        )
        .replace(
            r#""beforeData":{"ID":"2","NAME":"ok","tableName":"kit"}"#,
            r#""beforeData":null"#,
        );
    let change = decoded(&loaded, &table, &key, &MetadataCache::new(), true);
    assert!(
        change.change_sequence.is_empty(),
        "a load row has no sequence"
    );
    let both = through_both_paths(&config, &change, &key).await;
    assert_same_output(&config, &both, &PAYLOAD_FIELDS);
    assert_eq!(
        both.daemon["detail"]["event_id"],
        guarded_event_id(&change).as_str()
    );
    assert_eq!(
        both.daemon["detail"]["payload"]["change_sequence"],
        "20230911032325000000000000000000000"
    );
    let mut packer = EnvelopePacker::new(&config.routing, None).expect("packer");
    let (daemon_envelope, _) = opened(&mut packer, &both.daemon_crossed);
    let (lambda_envelope, _) = opened(&mut packer, &both.lambda_crossed);
    assert_eq!(lambda_envelope.event_id, daemon_envelope.event_id);
    assert_eq!(daemon_envelope.event_id, guarded_event_id(&change));
}

/// A Qlik metadata (`MD`) message describing `SALES.<table>` with the composite key
/// (`ORDER_ID`, `LINE`): key order differs from name order.
fn order_lines_metadata(table: &str) -> String {
    json!({
        "magic": "atMSG", "type": "MD", "headers": null,
        "messageSchemaId": null, "messageSchema": null,
        "message": {
            "schemaId": format!("SALES.{table}.v1"),
            "lineage": {"server": "conformance", "task": "t", "schema": "SALES", "table": table,
                        "tableVersion": 1, "timestamp": "2023-09-11T03:00:00.000"},
            "tableStructure": {"tableColumns": {
                "ORDER_ID": {"ordinal": 1, "type": "STRING", "length": 20, "precision": 0,
                             "scale": 0, "primaryKeyPosition": 1},
                "LINE": {"ordinal": 2, "type": "INT4", "length": 0, "precision": 0,
                         "scale": 0, "primaryKeyPosition": 2},
                "QTY": {"ordinal": 3, "type": "INT4", "length": 0, "precision": 0,
                        "scale": 0, "primaryKeyPosition": 0}
            }},
            "dataSchema": null
        }
    })
    .to_string()
}

/// No `kafka.key_columns`: the daemon knows the key only from Qlik's metadata message, which
/// the stream processor never sees. Both paths still name the key alike, in key order, and
/// publish under the same event id; a tombstone (the row deleted) too.
#[tokio::test]
async fn without_configured_key_columns_both_paths_agree_on_the_key_and_the_id() {
    let mut config = local_config();
    config.kafka.key_columns.clear();
    let name = format!("ORDER_LINES_{}", unique("t").replace('-', "_"));
    let table = TableRef::new("SALES", name.as_str());
    let mut metadata = MetadataCache::new();
    match decode_qlik_json(
        order_lines_metadata(&name).as_bytes(),
        &DecodeContext {
            default_table: None,
            fallback_keys: &FallbackKeys::none(),
        },
        &metadata,
        None,
    ) {
        Ok(QlikMessage::Metadata(structure)) => {
            metadata.insert(structure);
        }
        other => panic!("a metadata message: {other:?}"),
    }
    let order = unique("conf-order");
    for (operation, sequence) in [("UPDATE", "5"), ("DELETE", "6")] {
        let message = json!({
            "data": {"QTY": 3, "LINE": 2, "ORDER_ID": order},
            "beforeData": null,
            "headers": {"operation": operation,
                        "changeSequence": format!("20230911032325{sequence:0>21}"),
                        "timestamp": "2023-09-11T03:23:25.000", "streamPosition": "p",
                        "transactionId": "t"}
        })
        .to_string();
        let change = decoded(&message, &table, &order, &metadata, false);
        assert_eq!(
            change.key.iter().map(|k| &*k.name).collect::<Vec<_>>(),
            ["ORDER_ID", "LINE"],
            "the daemon's key, in key order"
        );
        let both = through_both_paths(&config, &change, &order).await;
        // A tombstone keeps only the key: the stream cannot give a DELETE's row back.
        let fields: &[&str] = if operation == "DELETE" {
            &PAYLOAD_FIELDS[..4]
        } else {
            &PAYLOAD_FIELDS
        };
        assert_same_output(&config, &both, fields);
        assert_eq!(
            both.lambda["detail"]["payload"]["key"],
            json!({"ORDER_ID": order, "LINE": 2}),
            "{operation}"
        );
        assert_eq!(
            both.daemon["detail"]["event_id"],
            event_id(&change).to_string().as_str(),
            "{operation}"
        );
    }
}

/// The stream record of the item the applier wrote under `pk`, read back from DynamoDB Local, as
/// a stream delivers it (`event_name`: `INSERT` for a new item, `MODIFY` for a changed one).
async fn stream_record_at(config: &Config, pk: &str, event_name: &str, sequence: u64) -> Value {
    let region = &config.regions.primary;
    let clients = RegionClients::new(region, &config.aws).await;
    let written = clients
        .dynamodb
        .get_item()
        .table_name(&region.cdc_table)
        .key("pk", eda_actors::aws::to_sdk(&AttrValue::S(pk.to_string())))
        .consistent_read(true)
        .send()
        .await
        .expect("get_item")
        .item
        .unwrap_or_else(|| panic!("the applier wrote no item {pk}"));
    let item: Map<String, Value> = written
        .iter()
        .map(|(k, v)| (k.clone(), typed(&from_sdk(v))))
        .collect();
    json!({
        "eventID": format!("conformance-{sequence}"),
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region.name,
        "eventSourceARN": format!("arn:aws:dynamodb:{}:123456789012:table/{}/stream/2024", region.name, region.cdc_table),
        "dynamodb": {
            "ApproximateCreationDateTime": 1714564800,
            "Keys": {"pk": item["pk"]},
            "NewImage": item,
            "SequenceNumber": sequence.to_string(),
            "SizeBytes": 200,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        }
    })
}

/// An UPDATE that changes the row's key (`ID` from `old` to `new`) is the same two events on
/// both paths: the DELETE of the old key and the INSERT of the new key, each under the id of its
/// own key and the UPDATE's sequence. The daemon splits the UPDATE into those two changes; the
/// stream processor sees the two items they write (the old key's tombstone, the new key's row)
/// and publishes the same two. Both cross to the other region.
#[tokio::test]
async fn a_key_change_is_the_same_delete_and_insert_on_both_paths() {
    let mut config = local_config();
    let table = TableRef::new("SALES", "CUSTOMERS");
    config
        .kafka
        .key_columns
        .insert(table.qualified(), vec!["ID".into()]);
    let (home, other) = (&config.regions.primary, &config.regions.secondary);
    let (old, new) = (unique("conf-moved-from"), unique("conf-moved-to"));
    let moved = QLIK_UPDATE.replace(
        r#""beforeData":{"ID":"2","#,
        &format!(r#""beforeData":{{"ID":"{old}","#),
    );
    let change = decoded(&moved, &table, &new, &MetadataCache::new(), true);
    // The two changes, as ids: the old key's DELETE and the new key's INSERT, at the UPDATE's
    // sequence.
    let mut delete = change.clone();
    delete.operation = eda_core::cdc::Operation::Delete;
    delete.key[0].value = json!(old);
    let ids = [event_id(&delete).to_string(), event_id(&change).to_string()];

    // The daemon.
    let (home_bus, other_bus) = (
        Inspector::start(&config, home).await,
        Inspector::start(&config, other).await,
    );
    through_the_daemon(&config, change.clone()).await;
    let daemon = home_bus.wait_for(&ids).await;
    let daemon_crossed = other_bus.wait_for(&ids).await;

    // The stream processor, on the records of the two items the daemon wrote.
    let records = [
        stream_record_at(&config, &format!("SALES.CUSTOMERS#{old}"), "MODIFY", 6001).await,
        stream_record_at(&config, &format!("SALES.CUSTOMERS#{new}"), "INSERT", 6002).await,
    ];
    let (home_bus, other_bus) = (
        Inspector::start(&config, home).await,
        Inspector::start(&config, other).await,
    );
    let processor = stream_processor(&config).await;
    let response = processor
        .process(json!({ "Records": records }), Duration::from_secs(20))
        .await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let lambda = home_bus.wait_for(&ids).await;
    let lambda_crossed = other_bus.wait_for(&ids).await;

    let mut packer = EnvelopePacker::new(&config.routing, None).expect("packer");
    for (i, (operation, key)) in [("DELETE", &old), ("INSERT", &new)].into_iter().enumerate() {
        let both = BothPaths {
            daemon: daemon[i].clone(),
            daemon_crossed: daemon_crossed[i].clone(),
            lambda: lambda[i].clone(),
            lambda_crossed: lambda_crossed[i].clone(),
        };
        // A tombstone keeps only the key: the stream cannot give a DELETE's row back.
        let fields: &[&str] = if operation == "DELETE" {
            &PAYLOAD_FIELDS[..4]
        } else {
            &PAYLOAD_FIELDS
        };
        assert_same_output(&config, &both, fields);
        assert_eq!(
            both.daemon["detail-type"],
            format!("SALES.CUSTOMERS.{operation}"),
            "{operation}"
        );
        assert_eq!(both.daemon["detail"]["payload"]["key"], json!({"ID": key}));
        assert_eq!(
            both.daemon["detail"]["payload"]["change_sequence"],
            change.change_sequence.as_str()
        );
        let (daemon_envelope, daemon_payload) = opened(&mut packer, &both.daemon_crossed);
        let (lambda_envelope, lambda_payload) = opened(&mut packer, &both.lambda_crossed);
        assert_eq!(daemon_envelope.event_id, ids[i]);
        assert_eq!(lambda_envelope.event_id, ids[i]);
        assert_eq!(daemon_payload, both.daemon["detail"]);
        assert_eq!(lambda_payload, both.lambda["detail"]);
    }
}

/// Rows too large to travel whole: one too large for EventBridge (300 KB) and one too large for
/// DynamoDB's item too (600 KB, stored with its column compressed in `_zcols`, which the stream
/// processor unpacks). Both paths publish the same event by reference, with the same claim
/// check, and carry it to the other region as it is.
#[tokio::test]
async fn an_oversize_row_goes_by_the_same_claim_check_on_both_paths() {
    let mut config = local_config();
    let table = TableRef::new("SALES", "CUSTOMERS");
    config
        .kafka
        .key_columns
        .insert(table.qualified(), vec!["ID".into()]);
    for size in [300 * 1024, 600 * 1024] {
        let key = unique("conf-oversize");
        let name = "invoice paid in full; ".repeat(size / 22);
        let message = QLIK_UPDATE.replace(r#""NAME":"test Kafka""#, &format!(r#""NAME":"{name}""#));
        let change = decoded(&message, &table, &key, &MetadataCache::new(), true);
        let both = through_both_paths(&config, &change, &key).await;
        assert_same_output(&config, &both, &PAYLOAD_FIELDS);
        let (daemon, lambda) = (&both.daemon["detail"], &both.lambda["detail"]);
        assert_eq!(
            daemon["payload"]["after"],
            Value::Null,
            "{size}: by reference"
        );
        assert_eq!(
            lambda["payload"]["claim_check"], daemon["payload"]["claim_check"],
            "{size}"
        );
        assert_eq!(
            daemon["payload"]["claim_check"]["item_key"]["pk"],
            format!("SALES.CUSTOMERS#{key}")
        );
        assert_eq!(
            daemon["payload"]["claim_check"]["sequence"],
            change.change_sequence.as_str()
        );
        let mut packer = EnvelopePacker::new(&config.routing, None).expect("packer");
        let (_, daemon_payload) = opened(&mut packer, &both.daemon_crossed);
        let (_, lambda_payload) = opened(&mut packer, &both.lambda_crossed);
        assert_eq!(&daemon_payload, daemon);
        assert_eq!(&lambda_payload, lambda);
    }
}
