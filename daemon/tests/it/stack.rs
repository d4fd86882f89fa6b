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
async fn moto_copies_every_bus_event_to_the_inspection_queue() {
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
    // The queue is the stack's copy of the bus, for looking at: `make demo` leaves thousands
    // of events in it when moto falls behind, and reading moto's queue up to the marker would
    // take minutes. Emptied first, as the demo's own readers do when they start.
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
        // the next receive reaches further (with a visibility timeout of 0, moto answered the
        // same first ten every time).
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
