//! The same change through both shapes of eda: the daemon path (Qlik JSON decoded, planned and
//! described as the daemon's publisher describes it) and the Lambda path (the item the applier
//! writes, as the DynamoDB stream record a `stream-processor` receives). The EventBridge output
//! is the same entry: source, detail-type, and the detail's id, type, region, time, table,
//! operation, sequence, key and row.
//!
//! What the stream cannot carry and so differs, by design: `payload.before` (the stream's old
//! image is the previous item, not Qlik's before image), `correlation_id` (Qlik's transaction id
//! is not stored on the item) and `metadata` (Kafka coordinates on one side, the stream position
//! on the other). The cross-region envelope is not compared: the daemon has no region router yet.

use crate::support::{local_config, stream_processor, unique, Inspector};
use eda_actors::core::apply_plan::{plan, AttrValue, PlanOptions, TableRouting};
use eda_actors::core::cdc::{decode_qlik_json, DecodeContext, FallbackKeys, KafkaCoordinates};
use eda_actors::core::cdc::{MetadataCache, QlikMessage, TableRef};
use eda_actors::core::change_event::{change_entry, into_base_event};
use serde_json::{json, Map, Value};
use std::time::Duration;

const QLIK_UPDATE: &str =
    include_str!("../../../actors/tests/fixtures/qlik/update_with_table_name.json");

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

#[tokio::test]
async fn the_daemon_and_the_stream_processor_publish_the_same_change_event() {
    let mut config = local_config();
    let table = TableRef::new("SALES", "CUSTOMERS");
    config
        .kafka
        .key_columns
        .insert(table.qualified(), vec!["ID".into()]);
    let region = &config.regions.primary;
    let id = unique("conf");
    let message = QLIK_UPDATE.replace(r#""ID":"2""#, &format!(r#""ID":"{id}""#));

    // The daemon path: decode, then describe the change as the publisher does.
    let keys = FallbackKeys::none().with_table(&table, vec!["ID".into()]);
    let ctx = DecodeContext {
        default_table: Some(&table),
        fallback_keys: &keys,
    };
    let origin = KafkaCoordinates {
        topic: "qlik.cdc".into(),
        partition: 0,
        offset: 42,
    };
    let QlikMessage::Change(change) = decode_qlik_json(
        message.as_bytes(),
        &ctx,
        &mut MetadataCache::new(),
        Some(origin),
    )
    .expect("the sample decodes") else {
        panic!("a data message");
    };
    let daemon = change_entry(
        &into_base_event(change.clone(), &region.name),
        &config.publish.source,
        &region.event_bus,
    );

    // The Lambda path: the item the applier writes, as its stream record.
    let options = PlanOptions {
        now_epoch_secs: chrono::Utc::now().timestamp(),
        tombstone_ttl_secs: 86_400,
        refresh_started_at: None,
    };
    let planned = plan(
        std::slice::from_ref(&change),
        &TableRouting::new(&region.cdc_table),
        &options,
    );
    let item: Map<String, Value> = planned.writes[0]
        .item
        .iter()
        .map(|(k, v)| (k.clone(), typed(v)))
        .collect();
    let record = json!({
        "eventID": "conformance-1",
        "eventName": "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region.name,
        "eventSourceARN": format!("arn:aws:dynamodb:{}:123456789012:table/{}/stream/2024", region.name, region.cdc_table),
        "dynamodb": {
            "ApproximateCreationDateTime": 1714564800,
            "Keys": {"pk": item["pk"]},
            "NewImage": item,
            "SequenceNumber": "5000",
            "SizeBytes": 200,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        }
    });
    let inspector = Inspector::start(&config, region).await;
    let processor = stream_processor(&config).await;
    let response = processor
        .process(json!({"Records": [record]}), Duration::from_secs(20))
        .await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    let lambda = inspector.wait_for(std::slice::from_ref(&id)).await;
    let lambda = &lambda[0];
    assert_eq!(lambda["source"], daemon.source.as_str());
    assert_eq!(lambda["detail-type"], daemon.detail_type.as_str());
    let daemon_detail: Value = serde_json::from_str(&daemon.detail).unwrap();
    let lambda_detail = &lambda["detail"];
    for field in ["event_id", "event_type", "source_region", "timestamp"] {
        assert_eq!(lambda_detail[field], daemon_detail[field], "{field}");
    }
    for field in ["table", "operation", "change_sequence", "key", "after"] {
        assert_eq!(
            lambda_detail["payload"][field], daemon_detail["payload"][field],
            "payload.{field}"
        );
    }
}
