//! The stream processor with AWS's sample DynamoDB Streams batches: its change events reach the
//! inspection queue, and their cross-region copies the other region's, and a record it cannot
//! read is reported as the first batch item failure.

use crate::support::{fixture, stream_processor};
use eda_testkit::{envelope_of, local_config, unique, Inspector};
use serde_json::{json, Value};
use std::time::Duration;

const LAMBDA_SAMPLE: &str = include_str!("../../../core/tests/fixtures/stream_lambda_sample.json");

/// Renames the table in every record's stream ARN, so this run's events are told apart.
fn on_table(mut batch: Value, table: &str) -> Value {
    for record in batch["Records"].as_array_mut().unwrap() {
        record["eventSourceARN"] = json!(format!(
            "arn:aws:dynamodb:us-west-2:123456789012:table/{table}/stream/2024-05-01T00:00:00.000"
        ));
    }
    batch
}

/// A record of an item the CDC applier wrote (`_table`, `_op`, `_seq` metadata).
fn applied_record(sequence: &str, op: &str, customer: &str) -> Value {
    json!({
        "eventID": format!("ev-{sequence}"),
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-west-2",
        "eventSourceARN": "arn:aws:dynamodb:us-west-2:123456789012:table/eda-cdc/stream/2024-05-01T00:00:00.000",
        "dynamodb": {
            "ApproximateCreationDateTime": 1714564800,
            "Keys": {"pk": {"S": format!("SALES.CUSTOMERS#{customer}")}},
            "NewImage": {
                "pk": {"S": format!("SALES.CUSTOMERS#{customer}")},
                "CUSTOMER_ID": {"S": customer},
                "EMAIL": {"S": "someone@example.com"},
                "_table": {"S": "SALES.CUSTOMERS"},
                "_op": {"S": op},
                "_seq": {"S": "20240501120000000000000000000000001"},
                "_ts": {"S": "2024-05-01T12:00:00.000"},
                "_deleted": {"BOOL": false}
            },
            "SequenceNumber": sequence,
            "SizeBytes": 120,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        }
    })
}

#[tokio::test]
async fn insert_modify_and_remove_reach_the_inspection_queue_as_change_events() {
    let config = local_config();
    let region = &config.regions.primary;
    let processor = stream_processor(&config).await;
    let table = unique("stream-sample");
    let batch = on_table(serde_json::from_str(LAMBDA_SAMPLE).unwrap(), &table);

    let inspector = Inspector::start(&config, region).await;
    let other = Inspector::start(&config, &config.regions.secondary).await;
    let response = processor.process(batch, Duration::from_secs(20)).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    let markers: Vec<String> = ["INSERT", "UPDATE", "DELETE"]
        .iter()
        .map(|op| format!("dynamodb.{table}.{op}"))
        .collect();
    let (events, crossed) = tokio::join!(inspector.wait_for(&markers), other.wait_for(&markers));
    // Every table is replicated by default: each change also crossed, in the envelope.
    for (event, marker) in crossed.iter().zip(&markers) {
        let envelope = envelope_of(event);
        assert_eq!(&envelope.event_type, marker);
        assert_eq!(envelope.source_region, "us-west-2");
        assert_eq!(envelope.target_region, "us-east-1");
    }
    for (event, marker) in events.iter().zip(&markers) {
        assert_eq!(event["source"], "eda.cdc");
        assert_eq!(event["detail-type"], marker.as_str());
        assert_eq!(event["detail"]["source_region"], "us-west-2");
    }
    assert_eq!(events[1]["detail"]["payload"]["key"], json!({"Id": 101}));
    assert_eq!(
        events[1]["detail"]["payload"]["after"]["Message"],
        "This item has changed"
    );
    assert_eq!(events[2]["detail"]["payload"]["after"], Value::Null);
}

#[tokio::test]
async fn the_aws_lambda_events_sample_batch_is_published_whole() {
    let config = local_config();
    let region = &config.regions.primary;
    let processor = stream_processor(&config).await;
    let table = unique("stream-go-sample");
    let batch = on_table(fixture("example-dynamodb-event.json"), &table);
    let inspector = Inspector::start(&config, region).await;
    let response = processor.process(batch, Duration::from_secs(20)).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let events = inspector
        .wait_for(&[format!("dynamodb.{table}.INSERT")])
        .await;
    // Binary attributes travel as base64 text.
    assert_eq!(events[0]["detail"]["payload"]["after"]["asdf1"], "AAEqQQ==");
}

#[tokio::test]
async fn a_record_that_cannot_be_read_is_the_first_batch_item_failure() {
    let config = local_config();
    let region = &config.regions.primary;
    let processor = stream_processor(&config).await;
    let (good, bad, after) = (unique("c"), unique("c"), unique("c"));
    let batch = json!({"Records": [
        applied_record("1000", "UPDATE", &good),
        applied_record("1001", "TRUNCATE", &bad),
        applied_record("1002", "INSERT", &after),
    ]});

    let inspector = Inspector::start(&config, region).await;
    let response = processor.process(batch, Duration::from_secs(20)).await;
    let failures: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failures, [Some("1001".to_string())]);

    // The record before the failure was published, as the daemon publishes an applied change.
    let events = inspector.wait_for(std::slice::from_ref(&good)).await;
    assert_eq!(events[0]["detail-type"], "SALES.CUSTOMERS.UPDATE");
    assert_eq!(
        events[0]["detail"]["payload"]["key"],
        json!({"CUSTOMER_ID": good})
    );
}
