//! An applier applies the batches that wait in its mailbox together: against DynamoDB Local and
//! the AWS stand-in, batches cast while the applier is busy go out as one batch, in fewer
//! `PutEvents` calls, and every batch's acknowledgement is still settled.

use eda_actors::ack::Ack;
use eda_actors::aws::{DynamoDbItemWriter, EventBridgeClient, SqsDeadLetterQueue};
use eda_actors::cdc_applier::{CdcApplier, CdcApplierArgs, CdcApplierMsg};
use eda_actors::eventbridge_publisher::{EventBridgePublisher, EventBridgePublisherArgs};
use eda_actors::ports::{EventPublisher, SinkError};
use eda_actors::settings::applier_settings;
use eda_actors::telemetry::Metrics;
use eda_core::cdc::{decode_qlik_json, DecodeContext, FallbackKeys, KafkaCoordinates};
use eda_core::cdc::{CdcEvent, MetadataCache, QlikMessage, TableRef};
use eda_core::eventbridge::EventBridgeEntry;
use eda_testkit::{init_logs, Sinks};
use ractor::Actor;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

const QLIK_UPDATE: &str =
    include_str!("../../../core/tests/fixtures/qlik/update_with_table_name.json");

/// What a `PutEvents` call answers.
type PutEventsAnswer = Result<Vec<Result<String, SinkError>>, SinkError>;

/// The real EventBridge client, counting the calls and entries that pass through it (a
/// decorator: every call goes to the stand-in's bus and comes back with its answer).
struct Counted {
    inner: EventBridgeClient,
    calls: AtomicUsize,
    entries: AtomicUsize,
}

impl EventPublisher for Counted {
    fn put_events<'a>(
        &'a self,
        entries: &'a [EventBridgeEntry],
    ) -> Pin<Box<dyn Future<Output = PutEventsAnswer> + Send + 'a>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.entries.fetch_add(entries.len(), Ordering::SeqCst);
        self.inner.put_events(entries)
    }

    fn bus(&self) -> &str {
        self.inner.bus()
    }

    fn region(&self) -> &str {
        self.inner.region()
    }
}

/// The fixture's UPDATE, for the row of `id`.
fn change(id: usize) -> CdcEvent {
    let table = TableRef::new("SALES", "ORDERS");
    let message = QLIK_UPDATE.replace(r#""ID":"2""#, &format!(r#""ID":"{id}""#));
    let keys = FallbackKeys::none().with_table(&table, vec!["ID".into()]);
    let ctx = DecodeContext {
        default_table: Some(&table),
        fallback_keys: &keys,
    };
    let origin = KafkaCoordinates {
        topic: "qlik.cdc".into(),
        partition: 0,
        offset: id as i64,
    };
    match decode_qlik_json(
        message.as_bytes(),
        &ctx,
        &MetadataCache::new(),
        Some(origin),
    ) {
        Ok(QlikMessage::Change(change)) => change,
        other => panic!("a data message: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_waiting_for_an_applier_are_applied_and_published_together() {
    init_logs();
    let sinks = Sinks::create_uninspected().await;
    let config = sinks.config("unused");
    let region = &config.regions.primary;
    let metrics = Arc::new(Metrics::new());
    let dlq = eda_actors::dlq_writer::spawn_unsupervised(
        &config.dlq,
        Arc::new(SqsDeadLetterQueue::new(
            sinks.clients.sqs.clone(),
            region.dlq_queue_url.clone(),
        )),
        metrics.clone(),
    )
    .await
    .expect("DLQ writer starts");
    let counted = Arc::new(Counted {
        inner: EventBridgeClient::new(
            sinks.clients.lean_eventbridge.clone(),
            region.event_bus.clone(),
            region.name.clone(),
        ),
        calls: AtomicUsize::new(0),
        entries: AtomicUsize::new(0),
    });
    let (publisher, _) = Actor::spawn(
        None,
        EventBridgePublisher,
        EventBridgePublisherArgs {
            publisher: counted.clone(),
            dlq: dlq.clone(),
            retry: config.publish.retry.clone(),
            max_entries: config.publish.max_entries,
            max_concurrency: config.publish.max_concurrency,
            metrics: metrics.clone(),
        },
    )
    .await
    .expect("publisher starts");
    let (applier, _) = Actor::spawn(
        None,
        CdcApplier,
        CdcApplierArgs {
            writer: Arc::new(DynamoDbItemWriter::new(&sinks.clients)),
            publisher: publisher.clone(),
            dlq: dlq.clone(),
            router: None,
            settings: Arc::new(applier_settings(&config)),
            metrics,
        },
    )
    .await
    .expect("applier starts");

    // Six batches of three changes (18 keys), cast at once, as six partition fetches would be:
    // the first may be applied alone while the other five wait in the mailbox (a few
    // microseconds of casting against milliseconds of writes).
    let (batches, per_batch) = (6, 3);
    let mut settled = Vec::new();
    for batch in 0..batches {
        let (tx, rx) = oneshot::channel();
        applier
            .cast(CdcApplierMsg::Apply {
                events: (0..per_batch)
                    .map(|i| change(100 + batch * per_batch + i))
                    .collect(),
                ack: Ack::Notify(tx),
            })
            .expect("the applier takes the batch");
        settled.push(rx);
    }
    for (batch, rx) in settled.into_iter().enumerate() {
        tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .unwrap_or_else(|_| panic!("batch {batch} is settled in time"))
            .unwrap_or_else(|_| panic!("batch {batch} is settled, not dropped"));
    }
    let calls = counted.calls.load(Ordering::SeqCst);
    let entries = counted.entries.load(Ordering::SeqCst);
    assert_eq!(
        entries,
        batches * per_batch,
        "each change's event is published once"
    );
    // One batch per partition fetch would be six calls of three entries; the waiting batches
    // applied together are at most the first alone and the other fifteen in two calls.
    assert!(
        calls <= 3,
        "{calls} PutEvents calls for {batches} batches of {per_batch} changes cast at once: the \
         batches that waited were applied one by one"
    );
    applier.stop(None);
    publisher.stop(None);
    dlq.stop(None);
}
