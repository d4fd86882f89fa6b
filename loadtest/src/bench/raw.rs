//! The physical floor: a plain rdkafka consumer that reads the same topic and does nothing else
//! with the messages than count them. It joins a group of its own and fetches with the daemon's
//! prefetch settings, so the ratio compares eda's work, not a consumer tuning.

use super::backlog::bar;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use std::time::{Duration, Instant};

/// Reads `total` messages of `topic` from the beginning; messages per second from the first
/// message to the last (the group join excluded).
pub async fn consume(brokers: &str, topic: &str, total: u64) -> anyhow::Result<f64> {
    let brokers = brokers.to_string();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let group = format!("eda-bench-raw-{}", uuid::Uuid::new_v4().simple());
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("queued.max.messages.kbytes", "16384")
            .set("queued.min.messages", "10000")
            .create()?;
        consumer.subscribe(&[&topic])?;
        let bar = bar(total, "raw read");
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut first = None;
        let mut read = 0u64;
        let mut bytes = 0usize;
        while read < total {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the raw consumer read only {read} of {total} messages in 300 s"
            );
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    first.get_or_insert_with(Instant::now);
                    bytes += message.payload_len();
                    read += 1;
                    if read % 1_000 == 0 {
                        bar.set_position(read);
                    }
                }
                Some(Err(err)) => anyhow::bail!("the raw consumer: {err}"),
                None => {}
            }
        }
        bar.finish();
        std::hint::black_box(bytes);
        let elapsed = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
        Ok(total as f64 / elapsed.max(1e-6))
    })
    .await?
}
