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

/// One call of DynamoDB Local's Streams API (`DynamoDBStreams_20120810.<operation>`), spoken
/// directly: the workspace has no SDK for it. DynamoDB Local picks its database by the access
/// key and region of the `Authorization` header and checks no signature.
async fn streams_api(config: &eda_config::Config, operation: &str, body: Value) -> Value {
    let region = &config.regions.primary;
    let endpoint = region.endpoints.dynamodb.clone().expect("a local DynamoDB");
    let key = &config
        .aws
        .static_credentials
        .as_ref()
        .expect("static credentials")
        .access_key_id;
    let date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let response = reqwest::Client::new()
        .post(endpoint)
        .header("content-type", "application/x-amz-json-1.0")
        .header(
            "x-amz-target",
            format!("DynamoDBStreams_20120810.{operation}"),
        )
        .header("x-amz-date", &date)
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={key}/{}/{}/dynamodb/aws4_request, \
                 SignedHeaders=host;x-amz-date;x-amz-target, Signature=00",
                &date[..8],
                region.name
            ),
        )
        .body(body.to_string())
        .send()
        .await
        .expect("DynamoDB Local answers");
    let status = response.status();
    let text = response.text().await.expect("a body");
    assert!(status.is_success(), "{operation}: {status} {text}");
    serde_json::from_str(&text).expect("JSON")
}

/// The sum of the samples of `family` in `metrics`.
fn counted(metrics: &eda_actors::telemetry::Metrics, family: &str) -> f64 {
    metrics
        .encode()
        .expect("metrics encode")
        .lines()
        .filter(|l| l.starts_with(family))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A tombstone the applier writes expires at once (TTL 0) in a table of DynamoDB Local with
/// streams and TTL on: DynamoDB Local reaps it and its stream carries the REMOVE, marked as the
/// TTL's (`userIdentity` type `Service`, principal `dynamodb.amazonaws.com`). The stream
/// processor publishes the tombstone's write (the DELETE) and not the REMOVE: the row was
/// deleted once.
#[tokio::test]
async fn a_tombstone_reaped_by_ttl_is_not_published_as_another_delete() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        StreamSpecification, StreamViewType, TimeToLiveSpecification,
    };
    use eda_actors::aws::RegionClients;
    use eda_actors::ports::ItemWriter;
    use eda_core::apply_plan::{plan, PlanOptions, TableRouting};
    use eda_core::cdc::{CdcEvent, KeyColumn, Operation, TableRef};

    let config = local_config();
    let region = &config.regions.primary;
    let clients = RegionClients::new(region, &config.aws).await;
    let table = unique("eda-ttl");
    let created = clients
        .dynamodb
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .expect("key schema"),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute"),
        )
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .expect("stream"),
        )
        .send()
        .await
        .expect("create_table");
    let stream_arn = created
        .table_description()
        .and_then(|t| t.latest_stream_arn())
        .expect("a stream")
        .to_string();
    clients
        .dynamodb
        .update_time_to_live()
        .table_name(&table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("_ttl")
                .build()
                .expect("ttl"),
        )
        .send()
        .await
        .expect("update_time_to_live");

    // The applier's tombstone for a DELETE, expired when written.
    let customer = unique("reaped");
    let delete = CdcEvent {
        table: TableRef::new("SALES", "CUSTOMERS"),
        operation: Operation::Delete,
        key: vec![KeyColumn {
            name: "CUSTOMER_ID".into(),
            value: json!(customer),
        }],
        after: None,
        before: None,
        change_sequence: "20240501120000000000000000000000007".into(),
        source_timestamp: Some("2024-05-01T12:00:00.000".into()),
        transaction_id: None,
        stream_position: None,
        kafka: None,
        trace: None,
    };
    let options = PlanOptions {
        now_epoch_secs: chrono::Utc::now().timestamp() - 5,
        tombstone_ttl_secs: 0,
        refresh_started_at: None,
    };
    let planned = plan(&[delete], &TableRouting::new(&table), &options);
    eda_actors::aws::DynamoDbItemWriter::new(&clients)
        .write(&planned.writes[0])
        .await
        .expect("the tombstone is written");

    // The stream, until DynamoDB Local's TTL has reaped the tombstone.
    let shard = streams_api(&config, "DescribeStream", json!({"StreamArn": stream_arn})).await
        ["StreamDescription"]["Shards"][0]["ShardId"]
        .clone();
    let mut iterator = streams_api(
        &config,
        "GetShardIterator",
        json!({"StreamArn": stream_arn, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}),
    )
    .await["ShardIterator"]
        .clone();
    let mut records: Vec<Value> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while !records.iter().any(|r| r["eventName"] == "REMOVE") {
        assert!(
            std::time::Instant::now() < deadline,
            "DynamoDB Local never reaped the tombstone: {records:#?}"
        );
        let page = streams_api(&config, "GetRecords", json!({"ShardIterator": iterator})).await;
        iterator = page["NextShardIterator"].clone();
        for mut record in page["Records"].as_array().cloned().unwrap_or_default() {
            // As Lambda hands the record to a function: with the stream's ARN, and the
            // identity's members spelled `type` and `principalId`.
            record["eventSourceARN"] = json!(stream_arn);
            if let Some(identity) = record.get("userIdentity").cloned() {
                record["userIdentity"] =
                    json!({"type": identity["Type"], "principalId": identity["PrincipalId"]});
            }
            records.push(record);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let remove = records
        .iter()
        .find(|r| r["eventName"] == "REMOVE")
        .expect("a REMOVE")
        .clone();
    println!("TTL REMOVE: {remove}");
    assert_eq!(remove["userIdentity"]["type"], "Service", "{remove}");
    assert_eq!(
        remove["userIdentity"]["principalId"], "dynamodb.amazonaws.com",
        "{remove}"
    );
    let insert = records
        .iter()
        .find(|r| r["eventName"] == "INSERT")
        .expect("the tombstone's INSERT")
        .clone();

    let metrics = std::sync::Arc::new(eda_actors::telemetry::Metrics::new());
    let publisher = eda_lambda_shims::publishing::RegionPublisher::spawn(
        &config,
        region,
        &clients,
        metrics.clone(),
    )
    .await
    .expect("publisher starts");
    let routers = crate::support::cross_region(&config, region, &publisher).await;
    let processor =
        eda_lambda_shims::stream_processor::StreamProcessor::new(&config, publisher, routers);
    let published = "eda_eventbridge_events_published_total";

    let response = processor
        .process(json!({"Records": [insert]}), Duration::from_secs(20))
        .await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(counted(&metrics, published), 1.0, "the DELETE is published");

    let response = processor
        .process(json!({"Records": [remove]}), Duration::from_secs(20))
        .await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(
        counted(&metrics, published),
        1.0,
        "the TTL's REMOVE of the tombstone was published as another DELETE"
    );
    let _ = clients
        .dynamodb
        .delete_table()
        .table_name(&table)
        .send()
        .await;
}
