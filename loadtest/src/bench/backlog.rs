//! The benchmark's traffic: the history it produces, the cached backlog topic, and the paced
//! producer of the fixed-rate run.
//!
//! Producing a 200,000-message backlog to the local broker takes a while, and the backlog is
//! the same for the same spec (the history is generated from a seed), so it is kept: its topic is
//! named by a hash of the spec, and a marker file under the output directory records the end
//! offset of each partition once every message was delivered. A later run whose broker still
//! holds the topic up to those ends reads it again instead of producing it; otherwise (a
//! restarted, in-memory broker) it produces a fresh copy to a new topic.

use crate::history::{Encoding, History, HistorySpec, Record};
use crate::kafka;
use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// The shape of a benchmark's history.
#[derive(Debug, Clone, Copy)]
pub struct TrafficSpec {
    /// Random seed.
    pub seed: u64,
    /// At least this many messages (changes, plus duplicates and redeliveries).
    pub messages: usize,
    /// Changes per key (one INSERT, UPDATEs, maybe a DELETE).
    pub changes_per_key: usize,
    /// Bytes of padding per row image, sizing messages (about 1-2 KB with 600).
    pub padding: usize,
    /// Partitions of the topic.
    pub partitions: i32,
}

impl TrafficSpec {
    /// The history: `messages / changes_per_key` keys, with 2 % duplicates, 2 % redeliveries
    /// of older changes and 10 % of keys ending deleted. Sequences use a fixed base: every run
    /// writes to a fresh sink.
    pub fn history(&self) -> History {
        let per_key = self.changes_per_key.max(1);
        History::generate(&HistorySpec {
            seed: self.seed,
            keys: self.messages.div_ceil(per_key),
            changes_per_key: per_key,
            duplicate_rate: 0.02,
            redelivery_rate: 0.02,
            delete_rate: 0.1,
            poison: 0,
            padding: self.padding,
            sequence_base: HistorySpec::default().sequence_base,
            encoding: Encoding::Json,
            metadata_partitions: 0,
        })
    }

    /// A short, stable name for this spec (FNV-1a of its fields and the layout's version).
    pub fn key(&self) -> String {
        let text = format!(
            "v1 seed={} messages={} per_key={} padding={} partitions={}",
            self.seed, self.messages, self.changes_per_key, self.padding, self.partitions
        );
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("{hash:016x}")
    }
}

/// What the marker file of a cached backlog holds.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Marker {
    topic: String,
    ends: BTreeMap<i32, i64>,
}

/// A backlog on the broker: its topic and where each partition ends.
#[derive(Debug, Clone)]
pub struct Backlog {
    /// The topic.
    pub topic: String,
    /// One past the last offset of each partition.
    pub ends: BTreeMap<i32, i64>,
    /// Whether it was produced by this run (else reused).
    pub produced: bool,
    /// How long producing took, when it was produced.
    pub produce_secs: Option<f64>,
}

/// The backlog of `history` under `spec`: reused when the broker still holds the cached topic,
/// otherwise produced (with a progress bar) and recorded under `out`.
pub async fn backlog(
    brokers: &str,
    spec: &TrafficSpec,
    history: &History,
    out: &Path,
    fresh: bool,
) -> anyhow::Result<Backlog> {
    let marker_path = out.join(format!("backlog-{}.json", spec.key()));
    if !fresh {
        if let Some(marker) = std::fs::read(&marker_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Marker>(&bytes).ok())
        {
            if holds(brokers, &marker).await {
                return Ok(Backlog {
                    topic: marker.topic,
                    ends: marker.ends,
                    produced: false,
                    produce_secs: None,
                });
            }
        }
    }
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let topic = format!("eda-bench-e2e-{}-{}", &spec.key()[..8], &suffix[..6]);
    kafka::create_topic(brokers, &topic, spec.partitions).await?;
    let started = Instant::now();
    let ends = produce_all(brokers, &topic, &history.records).await?;
    let produce_secs = started.elapsed().as_secs_f64();
    let marker = Marker {
        topic: topic.clone(),
        ends: ends.clone(),
    };
    std::fs::write(&marker_path, serde_json::to_vec_pretty(&marker)?)?;
    Ok(Backlog {
        topic,
        ends,
        produced: true,
        produce_secs: Some(produce_secs),
    })
}

/// Whether the broker still holds `marker`'s topic: every partition starts at 0 and its end, as
/// the broker reports it, is within 1 % of the recorded end. (tansu's answer for a partition's
/// end has been seen a batch short of the real end; an in-memory broker that restarted has lost
/// the topic altogether, which is the case this tells apart. A topic that still missed messages
/// would fail the run, which waits for every message to settle.)
async fn holds(brokers: &str, marker: &Marker) -> bool {
    let brokers = brokers.to_string();
    let topic = marker.topic.clone();
    let ends = marker.ends.clone();
    tokio::task::spawn_blocking(move || {
        let Ok(consumer) = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create::<BaseConsumer>()
        else {
            return false;
        };
        !ends.is_empty()
            && ends.iter().all(|(partition, end)| {
                matches!(
                    consumer.fetch_watermarks(&topic, *partition, Duration::from_secs(5)),
                    Ok((0, high)) if high <= *end && high * 100 >= *end * 99
                )
            })
    })
    .await
    .unwrap_or(false)
}

/// Produces every record, as fast as the broker takes them, with a progress bar.
async fn produce_all(
    brokers: &str,
    topic: &str,
    records: &[Record],
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let producer = kafka::producer(brokers)?;
    let bar = bar(records.len() as u64, "producing");
    let mut ends = BTreeMap::new();
    for chunk in records.chunks(5_000) {
        for (partition, end) in kafka::produce(&producer, topic, chunk).await? {
            let known = ends.entry(partition).or_insert(0);
            *known = end.max(*known);
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish();
    Ok(ends)
}

/// A progress bar of `len` steps (hidden when stderr is no terminal).
pub fn bar(len: u64, what: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>10} [{elapsed_precise}] {bar:40.cyan/blue} {pos:>7}/{len:7} {per_sec:>12} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(what);
    bar
}

/// Produces `records` to `topic` at `rate` messages a second (in steps of a hundredth of a
/// second, each on its own schedule, so a slow step is caught up), then waits for every
/// delivery. Returns when the last delivery is confirmed, with the seconds the sending took.
pub async fn produce_at(
    producer: &FutureProducer,
    topic: &str,
    records: &[Record],
    rate: u64,
    bar: &ProgressBar,
) -> anyhow::Result<f64> {
    let step = usize::try_from((rate / 100).max(1)).unwrap_or(1);
    let started = tokio::time::Instant::now();
    let mut deliveries = Vec::with_capacity(records.len());
    for (i, part) in records.chunks(step).enumerate() {
        let due = started + Duration::from_secs_f64((i * step) as f64 / rate as f64);
        tokio::time::sleep_until(due).await;
        for record in part {
            let mut message = FutureRecord::to(topic).payload(&record.value);
            if let Some(key) = &record.key {
                message = message.key(key);
            }
            // Enqueued now, on the schedule. (`FutureProducer::send` only enqueues once its
            // future is polled: awaited 10,000 at a time, as this did, it offered bursts of
            // 10,000 messages a second instead of a rate.)
            let delivery = loop {
                match producer.send_result(message) {
                    Ok(delivery) => break delivery,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        message = back;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err((err, _)) => anyhow::bail!("enqueueing a message failed: {err}"),
                }
            };
            deliveries.push(delivery);
        }
        bar.inc(part.len() as u64);
        // Keep the pending deliveries few: confirm what is surely delivered by now.
        if deliveries.len() >= 20_000 {
            for result in futures_util::future::join_all(deliveries.drain(..10_000)).await {
                delivered(result)?;
            }
        }
    }
    let sent = started.elapsed().as_secs_f64();
    for result in futures_util::future::join_all(deliveries).await {
        delivered(result).context("the paced producer")?;
    }
    Ok(sent)
}

/// A delivery's report as an error, when it failed.
fn delivered<Canceled>(
    result: Result<rdkafka::producer::future_producer::OwnedDeliveryResult, Canceled>,
) -> anyhow::Result<()> {
    match result {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((err, _))) => Err(anyhow::anyhow!("delivery failed: {err}")),
        Err(_) => Err(anyhow::anyhow!("delivery failed: the producer went away")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_keys_its_backlog_and_sizes_its_messages() {
        let spec = TrafficSpec {
            seed: 11,
            messages: 2_000,
            changes_per_key: 4,
            padding: 600,
            partitions: 4,
        };
        assert_eq!(spec.key(), spec.key());
        assert_ne!(spec.key(), TrafficSpec { seed: 12, ..spec }.key());
        let history = spec.history();
        assert!(history.records.len() >= 2_000);
        let sizes: Vec<usize> = history.records.iter().map(|r| r.value.len()).collect();
        let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        assert!(*min >= 1_000 && *max <= 2_048, "{min}..{max} bytes");
        assert!(
            history.expected.values().any(Option::is_none),
            "some keys end deleted"
        );
        assert!(
            history.records.iter().any(|r| !r.original),
            "duplicates and redeliveries"
        );
    }
}
