//! Topics on the local broker: a fresh one per test, so no other test's records or group
//! offsets are in the way, and how far a consumer group got on one when a test fails.

use crate::local::{unique, BROKERS};
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::BTreeMap;
use std::time::Duration;

/// Creates a uniquely named topic of `partitions` partitions; returns its name.
pub async fn fresh_topic(partitions: i32) -> String {
    let topic = unique("cdc");
    eda_loadtest::kafka::create_topic(BROKERS, &topic, partitions)
        .await
        .expect("topic");
    topic
}

/// Each partition of `topic` as `p<N> committed <offset> of <end>`: whether `group` consumed
/// everything, or where it stopped, for a failing test's message.
pub async fn group_progress(topic: &str, group: &str) -> String {
    let (topic, group) = (topic.to_string(), group.to_string());
    let report =
        tokio::task::spawn_blocking(move || -> Result<String, rdkafka::error::KafkaError> {
            let timeout = Duration::from_secs(5);
            let consumer: BaseConsumer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", BROKERS)
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
            let mut parts = Vec::new();
            for p in partitions {
                let (_, end) = consumer.fetch_watermarks(&topic, p, timeout)?;
                let at = committed
                    .find_partition(&topic, p)
                    .map(|e| format!("{:?}", e.offset()))
                    .unwrap_or_else(|| "none".into());
                parts.push(format!("p{p} committed {at} of {end}"));
            }
            Ok(parts.join(", "))
        })
        .await;
    match report {
        Ok(Ok(report)) => report,
        Ok(Err(err)) => format!("not known ({err})"),
        Err(err) => format!("not known ({err})"),
    }
}

/// The offsets `group` committed on the partitions of `topic` named in `partitions` (`None`: no
/// valid commit yet).
pub async fn committed_offsets(
    topic: &str,
    group: &str,
    partitions: Vec<i32>,
) -> Result<BTreeMap<i32, Option<i64>>, String> {
    let (topic, group) = (topic.to_string(), group.to_string());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", BROKERS)
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
