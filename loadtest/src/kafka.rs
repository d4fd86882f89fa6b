//! Producing a history to the broker.

use crate::history::Record;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use std::collections::BTreeMap;
use std::time::Duration;

/// Creates `topic` with `partitions` partitions (an existing topic is fine).
pub async fn create_topic(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("creating topic {name}: {code}"),
        }
    }
    Ok(())
}

/// Deletes `topic` (a benchmark's run-once topic, so the in-memory local broker does not keep
/// every run's messages).
pub async fn delete_topic(brokers: &str, topic: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    for result in admin
        .delete_topics(
            &[topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await?
    {
        result.map_err(|(name, code)| anyhow::anyhow!("deleting topic {name}: {code}"))?;
    }
    Ok(())
}

/// A producer tuned for throughput (batches, lz4 off: the broker stores what it gets).
pub fn producer(brokers: &str) -> anyhow::Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", "60000")
        .create()?)
}

/// Produces `records` in order and waits for every delivery. A record that names its partition
/// goes there; others with a key go to the key's partition (the default partitioner), poison
/// without a key to any partition. Returns, per partition, one past the highest offset
/// delivered: where a group that consumed everything has committed (the producer's own
/// evidence, which a broker's watermark answer can lag).
pub async fn produce(
    producer: &FutureProducer,
    topic: &str,
    records: &[Record],
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let mut ends = BTreeMap::new();
    let mut pending = Vec::with_capacity(records.len());
    for record in records {
        let mut message = FutureRecord::to(topic).payload(&record.value);
        if let Some(key) = &record.key {
            message = message.key(key);
        }
        if let Some(partition) = record.partition {
            message = message.partition(partition);
        }
        pending.push(producer.send(message, Duration::from_secs(60)));
        if pending.len() >= 5_000 {
            note_deliveries(
                &mut ends,
                futures_util::future::join_all(pending.drain(..)).await,
            )?;
        }
    }
    note_deliveries(&mut ends, futures_util::future::join_all(pending).await)?;
    Ok(ends)
}

/// Records, per partition, one past the highest offset delivered; fails on a failed delivery.
fn note_deliveries(
    ends: &mut BTreeMap<i32, i64>,
    deliveries: Vec<rdkafka::producer::future_producer::OwnedDeliveryResult>,
) -> anyhow::Result<()> {
    for delivery in deliveries {
        let delivery = delivery.map_err(|(err, _)| anyhow::anyhow!("delivery failed: {err}"))?;
        let end = ends.entry(delivery.partition).or_insert(0);
        *end = (*end).max(delivery.offset + 1);
    }
    Ok(())
}
