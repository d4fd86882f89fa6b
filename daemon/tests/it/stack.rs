//! Smoke tests of the local stack: each server answers its real protocol over TCP, and the
//! resources `stack.sh up` creates are there.

use aws_sdk_dynamodb::types::AttributeValue;
use eda_testkit::local::{primary_clients, BROKERS};
use eda_testkit::unique;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use std::time::Duration;

#[tokio::test]
async fn kafka_broker_creates_a_topic_and_round_trips_a_message() {
    let topic = unique("smoke");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", BROKERS)
        .create()
        .expect("admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(&topic, 4, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create_topics answered");
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", BROKERS)
        .create()
        .expect("producer");
    let delivery = producer
        .send(
            FutureRecord::to(&topic)
                .key("k1")
                .payload("hello eda")
                .partition(2),
            Duration::from_secs(10),
        )
        .await
        .expect("delivered");
    assert_eq!(delivery.partition, 2);

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", BROKERS)
        .set("group.id", unique("smoke-group"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .expect("a message within 30 s")
        .expect("no consumer error");
    assert_eq!(message.payload(), Some(&b"hello eda"[..]));
    assert_eq!(
        (message.partition(), message.offset()),
        (delivery.partition, delivery.offset)
    );
}

#[tokio::test]
async fn dynamodb_local_holds_the_cdc_table_with_streams() {
    let clients = primary_clients().await;
    let table = clients
        .dynamodb
        .describe_table()
        .table_name("eda-cdc")
        .send()
        .await
        .expect("eda-cdc exists in us-west-2");
    let stream = table
        .table()
        .and_then(|t| t.stream_specification())
        .expect("stream specification");
    assert!(stream.stream_enabled());

    let pk = unique("smoke");
    clients
        .dynamodb
        .put_item()
        .table_name("eda-cdc")
        .item("pk", AttributeValue::S(pk.clone()))
        .item("_seq", AttributeValue::S("1".into()))
        .send()
        .await
        .expect("put_item");
    let item = clients
        .dynamodb
        .get_item()
        .table_name("eda-cdc")
        .key("pk", AttributeValue::S(pk.clone()))
        .consistent_read(true)
        .send()
        .await
        .expect("get_item");
    assert_eq!(
        item.item().and_then(|i| i.get("_seq")),
        Some(&AttributeValue::S("1".into()))
    );
}

#[tokio::test]
async fn dynamodb_local_holds_the_table_of_qlik_table_structures() {
    let clients = primary_clients().await;
    let table = clients
        .dynamodb
        .describe_table()
        .table_name("eda-qlik-metadata")
        .send()
        .await
        .expect("eda-qlik-metadata exists in us-west-2 (stack.sh up runs resources.py)");
    let keys: Vec<(&str, &str)> = table
        .table()
        .map(|t| t.key_schema())
        .unwrap_or_default()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type().as_str()))
        .collect();
    assert_eq!(keys, [("pk", "HASH"), ("version", "RANGE")]);
}

#[tokio::test]
async fn the_aws_stand_in_copies_every_bus_event_to_the_inspection_queue() {
    let clients = primary_clients().await;
    let marker = unique("smoke");
    let queue_url = clients
        .sqs
        .get_queue_url()
        .queue_name("eda-inspect")
        .send()
        .await
        .expect("eda-inspect exists")
        .queue_url()
        .expect("url")
        .to_string();
    // The queue is the stack's copy of the bus, for looking at, and may hold what earlier runs
    // left (`make demo`'s events): emptied first, as the demo's own readers do when they start.
    let _ = clients.sqs.purge_queue().queue_url(&queue_url).send().await;
    let put = clients
        .eventbridge
        .put_events()
        .entries(
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .event_bus_name("eda-events")
                .source("eda.smoke")
                .detail_type("smoke")
                .detail(format!("{{\"marker\":\"{marker}\"}}"))
                .build(),
        )
        .send()
        .await
        .expect("put_events");
    assert_eq!(put.failed_entry_count(), 0);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        // Events may have arrived since the purge: each message read is hidden for a while so
        // the next receive reaches further (with a visibility timeout of 0, a server may answer
        // the same first ten every time).
        let received = clients
            .sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(30)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive_message");
        if received
            .messages()
            .iter()
            .any(|m| m.body().is_some_and(|b| b.contains(&marker)))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "event {marker} never reached eda-inspect"
        );
    }

    let secret = clients
        .secretsmanager
        .get_secret_value()
        .secret_id("eda/jwt-hs256")
        .send()
        .await
        .expect("the JWT secret exists");
    assert!(secret.secret_string().is_some_and(|s| !s.is_empty()));
}

/// `eda-loadtest peek`, the way to look at a topic that works with the local broker (Debian's
/// kcat does not): every message of every partition, with its key, however the broker reports
/// the partitions' ends.
#[tokio::test]
async fn peek_shows_every_message_of_a_topic_with_its_key() {
    use eda_loadtest::history::{History, HistorySpec};
    use eda_loadtest::peek::{peek, PeekSpec};
    let topic = eda_testkit::topic::fresh_topic(4).await;
    let history = History::generate(&HistorySpec {
        seed: 5,
        keys: 12,
        changes_per_key: 3,
        poison: 1,
        ..HistorySpec::default()
    });
    let producer = eda_loadtest::kafka::producer(BROKERS).expect("producer");
    eda_loadtest::kafka::produce(&producer, &topic, &history.records)
        .await
        .expect("produced");

    let spec = PeekSpec {
        brokers: BROKERS.into(),
        topic: topic.clone(),
        partition: None,
        offset: None,
        count: 10_000,
        max_value_chars: 40,
        idle: Duration::from_secs(3),
    };
    let (shown, out) = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let shown = peek(&spec, &mut out).expect("peek");
        (shown, String::from_utf8(out).expect("UTF-8"))
    })
    .await
    .expect("peek task");
    assert_eq!(shown, history.records.len(), "{out}");
    let messages: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(messages.len(), history.records.len());
    for record in &history.records {
        if let Some(key) = &record.key {
            assert!(
                out.contains(&format!(" key={key} ")),
                "no message keyed {key}:\n{out}"
            );
        }
    }
    assert_eq!(
        out.lines().filter(|l| l.starts_with('#')).count(),
        4,
        "one line per partition"
    );

    // One partition (the fullest), from an offset, then its last two messages. The local broker
    // has reported partition ends below the real ones: neither may depend on that answer.
    let mut per_partition = std::collections::HashMap::<i32, i64>::new();
    for line in &messages {
        let partition = line.split(':').next().and_then(|p| p.parse().ok());
        *per_partition
            .entry(partition.expect("partition:offset"))
            .or_default() += 1;
    }
    let (partition, size) = per_partition
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .expect("a partition");
    let read = |offset: i64, count: usize| {
        let spec = PeekSpec {
            brokers: BROKERS.into(),
            topic: topic.clone(),
            partition: Some(partition),
            offset: Some(offset),
            count,
            max_value_chars: 40,
            idle: Duration::from_secs(3),
        };
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            peek(&spec, &mut out).expect("peek");
            String::from_utf8(out).expect("UTF-8")
        })
    };
    let out = read(1, 1).await.expect("peek task");
    let shown: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(shown.len(), 1, "{out}");
    assert!(shown[0].starts_with(&format!("{partition}:1 ")), "{out}");
    let out = read(-2, 100).await.expect("peek task");
    let shown: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(shown.len(), 2, "{out}");
    assert!(
        shown[0].starts_with(&format!("{partition}:{} ", size - 2)),
        "{out}"
    );
    assert!(
        shown[1].starts_with(&format!("{partition}:{} ", size - 1)),
        "{out}"
    );
}

/// A fetch from an offset inside a record batch delivers that offset first, then every later
/// one, as Kafka does: the broker returns the batch containing the offset and the client drops
/// the records before it. A consumer that resumes from a committed offset depends on it (eda
/// commits per message, so committed offsets land mid-batch, and a restart resumes there).
///
/// Fails on the unpatched tansu 0.6.0, which starts such a fetch at the next batch: from inside
/// a batch the records came from the next batch on, and from inside the last batch none came
/// (with all 2,000 records in one batch, `from 1: 0 records` and so on for every start but 0).
/// `deploy/local/install.sh` builds tansu with `deploy/local/tansu-storage-fetch.patch`,
/// which fixes it; this test passes once the shared broker runs that build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_from_inside_a_record_batch_starts_at_that_offset() {
    fetch_from_inside_a_batch_starts_there(BROKERS).await;
}

/// Produces a batched run of records to a fresh one-partition topic of the broker at `brokers`,
/// then reads from several offsets: each must deliver exactly that offset and every later one.
async fn fetch_from_inside_a_batch_starts_there(brokers: &str) {
    use eda_loadtest::history::Record;
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::{Offset, TopicPartitionList};

    const RECORDS: i64 = 2_000;
    let topic = unique("batched");
    eda_loadtest::kafka::create_topic(brokers, &topic, 1)
        .await
        .expect("topic");
    // The throughput producer (linger, large batches), all records in flight at once: the
    // broker gets a few large batches, so most of the offsets below are inside one.
    let producer = eda_loadtest::kafka::producer(brokers).expect("producer");
    let records: Vec<Record> = (0..RECORDS)
        .map(|i| Record {
            key: Some(format!("k{i}")),
            partition: None,
            value: format!("v{i}").into_bytes(),
            original: true,
        })
        .collect();
    let ends = eda_loadtest::kafka::produce(&producer, &topic, &records)
        .await
        .expect("produced");
    assert_eq!(ends.get(&0), Some(&RECORDS), "{ends:?}");

    let brokers = brokers.to_string();
    let read = tokio::task::spawn_blocking(move || {
        let mut read = Vec::new();
        for start in [0, 1, 7, 123, 500, 999, 1_500, RECORDS - 2, RECORDS - 1] {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("group.id", unique("batched-reader"))
                .set("enable.auto.commit", "false")
                .create()
                .expect("consumer");
            let mut assignment = TopicPartitionList::new();
            assignment
                .add_partition_offset(&topic, 0, Offset::Offset(start))
                .expect("assignment");
            consumer.assign(&assignment).expect("assign");
            // Until the last record, or a deadline that only bounds a failing run.
            let mut offsets = Vec::new();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while offsets.last() != Some(&(RECORDS - 1)) && std::time::Instant::now() < deadline {
                if let Some(message) = consumer.poll(Duration::from_millis(200)) {
                    offsets.push(message.expect("no consumer error").offset());
                }
            }
            read.push((start, offsets));
        }
        read
    })
    .await
    .expect("reader task");

    let wrong: Vec<String> = read
        .iter()
        .filter(|(start, offsets)| *offsets != (*start..RECORDS).collect::<Vec<_>>())
        .map(|(start, offsets)| {
            format!(
                "from {start}: {} records, first {:?}, last {:?}",
                offsets.len(),
                offsets.first(),
                offsets.last()
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "reads that did not deliver exactly the start offset and every later one:\n{}",
        wrong.join("\n")
    );
}

/// The broker answers a fetch as soon as it has records for it, as Kafka does (`fetch.min.bytes`
/// is 1), and waits up to the fetch's `max_wait` only when it has none. A consumer whose
/// prefetch is small (the daemon keeps 1,000 messages / 2 MiB per partition) fetches often, so
/// a broker that holds each answer reads the partition at one fetch per wait, whatever the
/// consumer's speed.
///
/// Fails on tansu 0.6.0 unpatched, whose fetch loop sleeps after every pass, records or not:
/// each fetch takes half its `max_wait`, here 10 s, so 30 s read a few fetches' worth of the
/// 300 records. `deploy/local/tansu-storage-fetch.patch` fixes it; this test passes once the
/// shared broker runs that build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_is_answered_once_records_are_there_not_after_its_wait() {
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::{Offset, TopicPartitionList};

    const RECORDS: i64 = 300;
    let topic = unique("fetch-wait");
    eda_loadtest::kafka::create_topic(BROKERS, &topic, 1)
        .await
        .expect("topic");
    // One record per batch (no linger, each send awaited), so that a small fetch returns a few
    // records and reading them all takes many fetches.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", BROKERS)
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    let value = vec![b'v'; 1_000];
    for i in 0..RECORDS {
        let key = format!("k{i}");
        producer
            .send(
                FutureRecord::to(&topic).key(&key).payload(&value),
                Duration::from_secs(10),
            )
            .await
            .expect("produced");
    }

    let (read, waited) = tokio::task::spawn_blocking(move || {
        // A long wait and a small fetch: about four records per fetch.
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", BROKERS)
            .set("group.id", unique("fetch-wait-reader"))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "20000")
            .set("max.partition.fetch.bytes", "4096")
            // tansu bounds a fetch by its total, not the partition's; librdkafka wants the
            // largest message under it.
            .set("fetch.max.bytes", "4096")
            .set("message.max.bytes", "4096")
            .create()
            .expect("consumer");
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&topic, 0, Offset::Beginning)
            .expect("assignment");
        consumer.assign(&assignment).expect("assign");
        // Until the last record, or a deadline that only bounds a failing run.
        let started = std::time::Instant::now();
        let mut read = 0;
        while read < RECORDS && started.elapsed() < Duration::from_secs(30) {
            if let Some(message) = consumer.poll(Duration::from_millis(200)) {
                message.expect("no consumer error");
                read += 1;
            }
        }
        (read, started.elapsed())
    })
    .await
    .expect("reader task");
    assert_eq!(
        read, RECORDS,
        "{read} of {RECORDS} records read in {waited:?} with fetch.wait.max.ms 20000: the broker \
         held fetches that had records until their wait ran out"
    );
}
