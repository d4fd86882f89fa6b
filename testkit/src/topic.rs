//! Topics on the local broker: a fresh one per test, so no other test's records or group
//! offsets are in the way, and how far a consumer group got on one when a test fails.

use crate::local::{unique, BROKERS};
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::BTreeMap;
use std::time::Duration;

/// Creates a uniquely named topic of `partitions` partitions; returns its name.
pub async fn fresh_topic(partitions: i32) -> String {
    fresh_topic_on(BROKERS, partitions).await
}

/// [`fresh_topic`] on the broker at `brokers` (a test's private broker).
pub async fn fresh_topic_on(brokers: &str, partitions: i32) -> String {
    let topic = unique("cdc");
    eda_loadtest::kafka::create_topic(brokers, &topic, partitions)
        .await
        .expect("topic");
    topic
}

/// Each partition of `topic` as `p<N> committed <offset> of <end>`: whether `group` consumed
/// everything, or where it stopped, for a failing test's message.
pub async fn group_progress(topic: &str, group: &str) -> String {
    group_progress_on(BROKERS, topic, group).await
}

/// [`group_progress`] on the broker at `brokers`.
pub async fn group_progress_on(brokers: &str, topic: &str, group: &str) -> String {
    match group_offsets_on(brokers, topic, group).await {
        Ok(partitions) => partitions
            .iter()
            .map(|p| {
                let at = p
                    .committed
                    .map_or_else(|| "Invalid".to_string(), |o| o.to_string());
                format!("p{} committed {at} of {}", p.partition, p.end)
            })
            .collect::<Vec<_>>()
            .join(", "),
        Err(err) => format!("not known ({err})"),
    }
}

/// Where a consumer group stands on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionProgress {
    /// The partition.
    pub partition: i32,
    /// The group's committed offset (the next to read), if it committed one.
    pub committed: Option<i64>,
    /// The partition's end (high watermark) as the broker reports it.
    pub end: i64,
}

impl PartitionProgress {
    /// Whether the group committed everything the partition holds.
    pub fn at_end(&self) -> bool {
        self.committed.is_some_and(|c| c >= self.end)
    }
}

/// The committed offset and the end of every partition of `topic` for `group`, on the broker
/// at `brokers`.
pub async fn group_offsets_on(
    brokers: &str,
    topic: &str,
    group: &str,
) -> Result<Vec<PartitionProgress>, String> {
    let (brokers, topic, group) = (brokers.to_string(), topic.to_string(), group.to_string());
    let report = tokio::task::spawn_blocking(
        move || -> Result<Vec<PartitionProgress>, rdkafka::error::KafkaError> {
            let timeout = Duration::from_secs(5);
            let consumer: BaseConsumer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("group.id", &group)
                .set("enable.auto.commit", "false")
                .create()?;
            let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
            let partitions: Vec<i32> = metadata
                .topics()
                .iter()
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            let mut wanted = rdkafka::TopicPartitionList::new();
            for &p in &partitions {
                wanted.add_partition(&topic, p);
            }
            let committed = consumer.committed_offsets(wanted, timeout)?;
            let mut out = Vec::new();
            for partition in partitions {
                let (_, end) = consumer.fetch_watermarks(&topic, partition, timeout)?;
                let committed = committed
                    .find_partition(&topic, partition)
                    .and_then(|e| e.offset().to_raw())
                    .filter(|o| *o >= 0);
                out.push(PartitionProgress {
                    partition,
                    committed,
                    end,
                });
            }
            Ok(out)
        },
    )
    .await;
    match report {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(err)) => Err(err.to_string()),
        Err(err) => Err(err.to_string()),
    }
}

/// The offsets `group` committed on the partitions of `topic` named in `partitions`, on the
/// broker at `brokers` (`None`: no valid commit yet).
pub async fn committed_offsets(
    brokers: &str,
    topic: &str,
    group: &str,
    partitions: Vec<i32>,
) -> Result<BTreeMap<i32, Option<i64>>, String> {
    let (brokers, topic, group) = (brokers.to_string(), topic.to_string(), group.to_string());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| e.to_string())?;
        let mut wanted = rdkafka::TopicPartitionList::new();
        for &p in &partitions {
            wanted.add_partition(&topic, p);
        }
        let committed = consumer
            .committed_offsets(wanted, Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        Ok(partitions
            .into_iter()
            .map(|p| {
                let offset = committed
                    .find_partition(&topic, p)
                    .and_then(|e| e.offset().to_raw());
                (p, offset.filter(|&o| o >= 0))
            })
            .collect())
    })
    .await
    .map_err(|e| e.to_string())?
}
