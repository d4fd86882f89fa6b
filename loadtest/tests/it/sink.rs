//! The sink as eda's own SDK adapters see it: every call eda makes gets an answer the AWS SDK
//! parses, the sequence guard refuses an older change, and injected faults reach eda as the
//! failures they imitate.

use crate::{config_on, start_sink};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use eda_actors::aws::{
    DynamoDbItemWriter, DynamoDbTableStructures, EventBridgeClient, RegionClients,
    SqsDeadLetterQueue, SqsOwedQueue,
};
use eda_actors::ports::{
    DeadLetterSink, EventPublisher, ItemWriter, OwedQueue, TableStructureStore,
};
use eda_core::apply_plan::{AttrValue, PlannedWrite, WriteOutcome, GUARD_EXPRESSION};
use eda_core::cdc::{ColumnMetadata, TableMetadata, TableRef};
use eda_core::dead_letter::SqsMessage;
use eda_core::eventbridge::EventBridgeEntry;
use eda_core::failure::ErrorClass;
use eda_loadtest::sink::dynamodb::KeySchema;
use eda_loadtest::sink::SinkOptions;
use serde_json::Value;
use std::collections::HashMap;

fn write(pk: &str, seq: &str, name: &str) -> PlannedWrite {
    PlannedWrite {
        table_name: "eda-cdc".into(),
        item: [
            ("pk".to_string(), AttrValue::S(pk.into())),
            ("_seq".to_string(), AttrValue::S(seq.into())),
            ("NAME".to_string(), AttrValue::S(name.into())),
        ]
        .into(),
        sequence: seq.into(),
        tombstone: false,
        winner: 0,
        covers: vec![0],
    }
}

async fn clients(url: &str) -> (eda_config::Config, RegionClients) {
    let config = config_on(url);
    let clients = RegionClients::new(&config.regions.primary, &config.aws).await;
    (config, clients)
}

#[tokio::test]
async fn the_guard_refuses_an_older_sequence_through_edas_writer() {
    let (sink, url, _stop) = start_sink(SinkOptions::default()).await;
    let (_, clients) = clients(&url).await;
    let writer = DynamoDbItemWriter::new(&clients);
    let seq = |n: u64| eda_loadtest::history::sequence(n);

    let first = writer
        .write(&write("k", &seq(2), "second"))
        .await
        .expect("first write");
    assert_eq!(first, WriteOutcome::Applied { previous: None });
    let older = writer
        .write(&write("k", &seq(1), "first"))
        .await
        .expect("older write");
    assert_eq!(
        older,
        WriteOutcome::Superseded {
            current: Some(seq(2))
        },
        "an older change loses to the stored one, which the sink returns"
    );
    let same = writer
        .write(&write("k", &seq(2), "again"))
        .await
        .expect("replay");
    assert_eq!(
        same,
        WriteOutcome::Superseded {
            current: Some(seq(2))
        }
    );
    let newer = writer
        .write(&write("k", &seq(3), "third"))
        .await
        .expect("newer write");
    // The writer asks for no old item on success (ReturnValues=NONE): what it replaced is not
    // reported, only that the newer change won. The table below shows which one is stored.
    assert_eq!(newer, WriteOutcome::Applied { previous: None });

    let item = clients
        .dynamodb
        .get_item()
        .table_name("eda-cdc")
        .key("pk", AttributeValue::S("k".into()))
        .send()
        .await
        .expect("GetItem")
        .item
        .expect("the item");
    assert_eq!(item["NAME"], AttributeValue::S("third".into()));
    let stats = sink.stats();
    assert_eq!(stats["tables"]["us-west-2/eda-cdc"]["items"], 1);
    assert_eq!(stats["calls"]["dynamodb.PutItem"]["calls"], 4);
    assert_eq!(
        stats["calls"]["dynamodb.PutItem"]["errors"], 2,
        "two refused guards"
    );
}

#[tokio::test]
async fn a_refused_transaction_item_is_named_in_the_sdks_cancellation_reasons() {
    let (sink, url, _stop) = start_sink(SinkOptions::default()).await;
    let (_, clients) = clients(&url).await;
    let seq = |n: u64| eda_loadtest::history::sequence(n);
    DynamoDbItemWriter::new(&clients)
        .write(&write("stored", &seq(5), "stored"))
        .await
        .expect("write");
    let put = |pk: &str, n: u64| {
        TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name("eda-cdc")
                    .item("pk", AttributeValue::S(pk.into()))
                    .item("_seq", AttributeValue::S(seq(n)))
                    .condition_expression(GUARD_EXPRESSION)
                    .expression_attribute_names("#seq", "_seq")
                    .expression_attribute_values(":seq", AttributeValue::S(seq(n)))
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    )
                    .build()
                    .expect("put"),
            )
            .build()
    };
    let err = clients
        .dynamodb
        .transact_write_items()
        .transact_items(put("new", 1))
        .transact_items(put("stored", 4))
        .send()
        .await
        .expect_err("the second item's guard fails");
    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
        err.as_service_error()
    else {
        panic!("not a cancelled transaction: {err:?}");
    };
    let reasons = cancelled.cancellation_reasons();
    assert_eq!(reasons.len(), 2);
    assert_eq!(reasons[0].code(), Some("None"));
    assert_eq!(reasons[1].code(), Some("ConditionalCheckFailed"));
    assert_eq!(
        reasons[1].item().and_then(|i| i.get("_seq")),
        Some(&AttributeValue::S(seq(5)))
    );
    assert_eq!(
        sink.stats()["tables"]["us-west-2/eda-cdc"]["items"],
        1,
        "nothing of the cancelled transaction was written"
    );
    clients
        .dynamodb
        .transact_write_items()
        .transact_items(put("new", 1))
        .transact_items(put("stored", 6))
        .send()
        .await
        .expect("a transaction whose guards hold");
    assert_eq!(sink.stats()["tables"]["us-west-2/eda-cdc"]["items"], 2);
}

#[tokio::test]
async fn every_call_of_edas_adapters_and_probes_is_answered() {
    let tables = HashMap::from([(
        "eda-qlik-metadata".to_string(),
        KeySchema::parse("pk,version").expect("schema"),
    )]);
    let (sink, url, _stop) = start_sink(SinkOptions {
        tables,
        ..SinkOptions::default()
    })
    .await;
    let (config, clients) = clients(&url).await;
    clients.probe_dynamodb().await.expect("ListTables");
    clients.probe_eventbridge().await.expect("ListEventBuses");
    clients.probe_sqs().await.expect("ListQueues");

    // EventBridge: every entry gets an id, and the sink counts them by event_id.
    let publisher =
        EventBridgeClient::new(clients.lean_eventbridge.clone(), "eda-events", "us-west-2");
    let entries: Vec<EventBridgeEntry> = ["a", "b", "a"]
        .iter()
        .map(|id| EventBridgeEntry {
            source: "eda.cdc".into(),
            detail_type: "cdc.change".into(),
            detail: format!("{{\"event_id\":\"{id}\",\"n\":1}}").into(),
            resources: Vec::new(),
            time: Some("2026-01-01T00:00:00Z".into()),
            event_bus_name: None,
            trace_header: None,
        })
        .collect();
    let results = publisher.put_events(&entries).await.expect("PutEvents");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(sink.event_ids("us-west-2", "eda.cdc"), ["a", "b"]);

    // The dead-letter queue: a batch in, received, deleted.
    let dlq = SqsDeadLetterQueue::new(clients.sqs.clone(), &config.regions.primary.dlq_queue_url);
    let letters = [
        SqsMessage {
            body: "{\"letter\":1}".into(),
            attributes: vec![("stage", "decode".into())],
        },
        SqsMessage {
            body: "{\"letter\":2}".into(),
            attributes: Vec::new(),
        },
    ];
    let sent = dlq.send_batch(&letters).await.expect("SendMessageBatch");
    assert!(sent.iter().all(Result::is_ok), "{sent:?}");
    let received = dlq.receive(10, 1).await.expect("ReceiveMessage");
    assert_eq!(received.len(), 2);
    for letter in &received {
        dlq.delete(&letter.receipt_handle)
            .await
            .expect("DeleteMessage");
    }
    assert!(dlq.receive(10, 0).await.expect("ReceiveMessage").is_empty());

    // The owed queue: sent, counted, received, deleted in a batch.
    let owed = SqsOwedQueue::new(clients.sqs.clone(), &config.regions.primary.owed_queue_url);
    let bodies = vec!["owed-1".to_string(), "owed-2".to_string()];
    owed.send_batch(&bodies).await.expect("SendMessageBatch");
    assert_eq!(owed.depth().await.expect("GetQueueAttributes"), 2);
    let records = owed.receive(10, 30).await.expect("ReceiveMessage");
    let handles: Vec<String> = records.iter().map(|r| r.receipt_handle.clone()).collect();
    owed.delete_batch(&handles)
        .await
        .expect("DeleteMessageBatch");
    assert_eq!(owed.depth().await.expect("GetQueueAttributes"), 0);

    // Qlik table structures: written once per version, read by table and whole.
    let store = DynamoDbTableStructures::new(clients.dynamodb.clone(), "eda-qlik-metadata");
    let structure = |version| {
        TableMetadata::new(
            TableRef::new("SALES", "ORDERS"),
            version,
            vec![ColumnMetadata {
                name: "ORDER_ID".into(),
                ordinal: 1,
                data_type: "INT4".into(),
                primary_key_position: 1,
            }],
        )
    };
    assert!(store.record(&structure(1)).await.expect("PutItem"));
    assert!(store.record(&structure(2)).await.expect("PutItem"));
    assert!(
        !store.record(&structure(1)).await.expect("PutItem"),
        "a version is written once"
    );
    let versions = store.versions("SALES.ORDERS").await.expect("Query");
    assert_eq!(
        versions.iter().map(|s| s.table_version).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(store.all().await.expect("Scan").len(), 2);

    let stats: Value = reqwest::get(format!("{url}/_sink/stats"))
        .await
        .expect("stats")
        .json()
        .await
        .expect("JSON");
    for operation in [
        "dynamodb.ListTables",
        "eventbridge.ListEventBuses",
        "sqs.ListQueues",
        "eventbridge.PutEvents",
        "sqs.SendMessageBatch",
        "sqs.ReceiveMessage",
        "sqs.DeleteMessage",
        "sqs.DeleteMessageBatch",
        "sqs.GetQueueAttributes",
        "dynamodb.Query",
        "dynamodb.Scan",
    ] {
        assert!(
            stats["calls"][operation]["calls"].as_u64() > Some(0),
            "{operation}: {stats}"
        );
    }
    assert_eq!(stats["events"]["us-west-2/eda.cdc"]["total"], 3);
    assert_eq!(stats["events"]["us-west-2/eda.cdc"]["distinct"], 2);
}

#[tokio::test]
async fn injected_faults_reach_eda_as_throttling_and_server_errors() {
    for (options, class) in [
        (
            SinkOptions {
                throttle_rate: 1.0,
                ..SinkOptions::default()
            },
            ErrorClass::Throttled,
        ),
        (
            SinkOptions {
                error_rate: 1.0,
                ..SinkOptions::default()
            },
            ErrorClass::Server,
        ),
    ] {
        let (sink, url, _stop) = start_sink(options).await;
        let (_, clients) = clients(&url).await;
        let err = DynamoDbItemWriter::new(&clients)
            .write(&write("k", &eda_loadtest::history::sequence(1), "x"))
            .await
            .expect_err("every call refused");
        assert_eq!(err.class, class, "{err:?}");
        let publisher =
            EventBridgeClient::new(clients.lean_eventbridge.clone(), "eda-events", "us-west-2");
        let entry = EventBridgeEntry {
            source: "eda.cdc".into(),
            detail_type: "t".into(),
            detail: "{}".into(),
            resources: Vec::new(),
            time: None,
            event_bus_name: None,
            trace_header: None,
        };
        let err = publisher.put_events(&[entry]).await.expect_err("refused");
        assert_eq!(err.class, class, "{err:?}");
        let err = clients.probe_sqs().await.expect_err("refused");
        assert_eq!(err.class, class, "{err:?}");
        assert_eq!(
            sink.stats()["tables"].as_object().map(|t| t.len()),
            Some(0),
            "a refused call does no work"
        );
    }
}

#[tokio::test]
async fn writes_in_flight_together_go_in_batch_statements_and_a_replay_is_refused_in_its_batch() {
    use eda_core::apply_plan::{plan, PlanOptions, TableRouting};
    use eda_core::cdc::Operation;
    use eda_loadtest::history::{change_of, row_with_notes, sequence};

    let (sink, url, _stop) = start_sink(SinkOptions::default()).await;
    let (_, clients) = clients(&url).await;
    let metrics = std::sync::Arc::new(eda_actors::telemetry::Metrics::new());
    let writer = DynamoDbItemWriter::new(&clients).with_metrics(metrics.clone());
    let counted = |operation: &str, outcome: &str| {
        let line = format!(
            "eda_dynamodb_operations_total{{operation=\"{operation}\",outcome=\"{outcome}\"}} "
        );
        let text = metrics.encode().expect("metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .map_or(0, |n| n.parse::<u64>().expect("a count"))
    };
    let opts = PlanOptions {
        now_epoch_secs: 1_800_000_000,
        tombstone_ttl_secs: 3_600,
        refresh_started_at: None,
    };
    let round = |operation: Operation, base: u64, keys: std::ops::Range<u32>| {
        let events: Vec<_> = keys
            .map(|k| {
                let mut event =
                    change_of(&k.to_string(), operation, &sequence(base + u64::from(k)));
                let row = row_with_notes(&k.to_string(), "notes").into();
                if operation == Operation::Delete {
                    event.before = Some(row);
                } else {
                    event.after = Some(row);
                }
                event
            })
            .collect();
        plan(&events, &TableRouting::new("eda-cdc"), &opts).writes
    };
    let write_all = |writes: Vec<PlannedWrite>| {
        let writer = &writer;
        async move {
            let outcomes =
                futures_util::future::join_all(writes.iter().map(|w| writer.write(w))).await;
            outcomes
                .into_iter()
                .map(|o| o.expect("answered"))
                .collect::<Vec<_>>()
        }
    };
    let calls = |operation: &str| {
        sink.stats()["calls"][operation]["calls"]
            .as_u64()
            .unwrap_or(0)
    };

    let inserted = write_all(round(Operation::Insert, 1_000, 0..100)).await;
    assert!(inserted
        .iter()
        .all(|o| *o == WriteOutcome::Applied { previous: None }));
    let updated = write_all(round(Operation::Update, 2_000, 0..100)).await;
    assert!(updated
        .iter()
        .all(|o| *o == WriteOutcome::Applied { previous: None }));
    let batches = calls("dynamodb.BatchExecuteStatement");
    assert!(
        (8..=16).contains(&batches),
        "200 writes in flight 100 at a time went in {batches} calls of at most 25"
    );
    assert_eq!(
        calls("dynamodb.PutItem"),
        0,
        "every one went as a statement"
    );

    // A replay of the updates: the refusal brings the stored item back (ALL_OLD), so the
    // writer learns the newer sequence without a PutItem.
    let replayed = write_all(round(Operation::Update, 2_000, 0..25)).await;
    for (k, outcome) in replayed.iter().enumerate() {
        assert_eq!(
            *outcome,
            WriteOutcome::Superseded {
                current: Some(sequence(2_000 + k as u64))
            }
        );
    }
    assert_eq!(calls("dynamodb.PutItem"), 0);
    // A delete drops columns: its tombstone goes as a PutItem.
    let deleted = write_all(round(Operation::Delete, 3_000, 0..1)).await;
    assert_eq!(deleted, vec![WriteOutcome::Applied { previous: None }]);
    assert_eq!(calls("dynamodb.PutItem"), 1);
    // Counted as made: each statement, and the PutItem.
    assert_eq!(counted("batch_execute_statement", "success"), 200);
    assert_eq!(counted("batch_execute_statement", "condition_failed"), 25);
    assert_eq!(counted("put_item", "success"), 1);
    assert_eq!(counted("put_item", "condition_failed"), 0);
    let stats = sink.stats();
    assert_eq!(stats["tables"]["us-west-2/eda-cdc"]["items"], 100);
    assert_eq!(stats["tables"]["us-west-2/eda-cdc"]["tombstones"], 1);
}
