//! [`PartitionProgress`]: where a partition stands, written by its partition consumer and read
//! by the consumer group, which reports it every commit interval as the lag against the
//! committed offset (`eda_kafka_consumer_lag_messages`) and the age of the oldest message read
//! and not settled (`eda_kafka_oldest_unsettled_seconds`).
//!
//! Both are measured from what this member knows, not from its fetch position, so a partition
//! whose head message never settles shows it: its commit stays put while the lag and the age
//! grow, whether messages arrive or not. The partition's end is the highest of three answers,
//! none trusted alone: the broker's ListOffsets answer (the local broker's was seen at 1 on a
//! partition of 669 messages), the high watermark its fetch responses carried, and one past the
//! last offset read.

use crate::kafka::client::GroupConsumer;
use crate::telemetry::{ConsumerLag, InternalEvent, Metrics, OldestUnsettled, PartitionUnassigned};
use eda_core::offsets::committed_lag;
use rdkafka::consumer::Consumer;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a partition stands, written by its
/// [`PartitionConsumer`](crate::kafka::partition_consumer::PartitionConsumer) after every batch
/// and acknowledgement, and read by the consumer group's [`report`].
#[derive(Debug)]
pub struct PartitionProgress {
    /// The origin of `oldest_unsettled_at`.
    base: Instant,
    /// [`OffsetTracker::commit_point`](eda_core::offsets::OffsetTracker::commit_point): the
    /// offset the commit stands at (-1: not known yet).
    committed: AtomicI64,
    /// The highest offset read (-1: none yet).
    last_read: AtomicI64,
    /// When the oldest message read and not settled was read, in milliseconds after `base`,
    /// plus one (0: nothing unsettled).
    oldest_unsettled_at: AtomicU64,
    /// Set once the partition is no longer assigned here: its series are removed, not set.
    retired: AtomicBool,
}

impl PartitionProgress {
    /// A partition that has read nothing yet.
    pub fn new() -> Self {
        Self {
            base: Instant::now(),
            committed: AtomicI64::new(-1),
            last_read: AtomicI64::new(-1),
            oldest_unsettled_at: AtomicU64::new(0),
            retired: AtomicBool::new(false),
        }
    }

    /// Records where the partition stands: its commit point, the highest offset read, and when
    /// its oldest unsettled message was read (`None`: nothing is unsettled).
    pub fn record(&self, committed: Option<i64>, last_read: Option<i64>, oldest: Option<Instant>) {
        self.committed
            .store(committed.unwrap_or(-1), Ordering::Release);
        self.last_read
            .store(last_read.unwrap_or(-1), Ordering::Release);
        let oldest = oldest.map_or(0, |at| {
            at.saturating_duration_since(self.base).as_millis() as u64 + 1
        });
        self.oldest_unsettled_at.store(oldest, Ordering::Release);
    }

    /// The offset the partition's commit stands at: what it stored last or, before anything
    /// settled, where it started reading. `None` before the first message.
    pub fn committed(&self) -> Option<i64> {
        Some(self.committed.load(Ordering::Acquire)).filter(|o| *o >= 0)
    }

    /// The highest offset read, if any.
    pub fn last_read(&self) -> Option<i64> {
        Some(self.last_read.load(Ordering::Acquire)).filter(|o| *o >= 0)
    }

    /// How long the oldest message read and not yet settled has waited (zero when none does).
    pub fn oldest_unsettled_age(&self) -> Duration {
        match self.oldest_unsettled_at.load(Ordering::Acquire) {
            0 => Duration::ZERO,
            at => self
                .base
                .elapsed()
                .saturating_sub(Duration::from_millis(at - 1)),
        }
    }

    /// The partition is no longer assigned here: removes its series, now and from any report
    /// still under way.
    pub fn retire(&self, topic: &str, partition: i32, metrics: &Metrics) {
        self.retired.store(true, Ordering::SeqCst);
        PartitionUnassigned { topic, partition }.emit(metrics);
    }

    /// Whether [`retire`](Self::retire) was called.
    pub fn retired(&self) -> bool {
        self.retired.load(Ordering::SeqCst)
    }
}

impl Default for PartitionProgress {
    fn default() -> Self {
        Self::new()
    }
}

/// Emits the lag and the oldest unsettled message's age of each partition in `partitions`, on
/// a blocking thread: the broker is asked for each high watermark.
pub fn report(
    consumer: &Arc<GroupConsumer>,
    partitions: &HashMap<(String, i32), Arc<PartitionProgress>>,
    metrics: &Arc<Metrics>,
) {
    let consumer = consumer.clone();
    let metrics = metrics.clone();
    let measured: Vec<_> = partitions
        .iter()
        .map(|(key, progress)| (key.clone(), progress.clone()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let positions = consumer.position().ok();
        for ((topic, partition), progress) in measured {
            let reported_end = consumer
                .fetch_watermarks(&topic, partition, Duration::from_secs(1))
                .ok()
                .map(|(_, high)| high)
                .max(fetched_high_watermark(&consumer, &topic, partition));
            // Before its first message the partition knows no commit point: the consumer's
            // position is where it will start.
            let committed = progress.committed().or_else(|| {
                positions
                    .as_ref()?
                    .find_partition(&topic, partition)?
                    .offset()
                    .to_raw()
                    .filter(|p| *p >= 0)
            });
            let lag = committed
                .and_then(|committed| committed_lag(reported_end, progress.last_read(), committed));
            if let Some(lag) = lag {
                ConsumerLag {
                    topic: &topic,
                    partition,
                    lag,
                }
                .emit(&metrics);
            }
            OldestUnsettled {
                topic: &topic,
                partition,
                age: progress.oldest_unsettled_age(),
            }
            .emit(&metrics);
            if progress.retired() {
                // Given away while this was measured: the series written above go too.
                PartitionUnassigned {
                    topic: &topic,
                    partition,
                }
                .emit(&metrics);
            }
        }
    });
}

/// The high watermark of `partition` as the broker's last fetch response gave it, from
/// librdkafka's cache (no request; `None` before the first fetch). rust-rdkafka exposes only
/// the ListOffsets query (`fetch_watermarks`), hence the direct call.
fn fetched_high_watermark(consumer: &GroupConsumer, topic: &str, partition: i32) -> Option<i64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1_i64, -1_i64);
    // SAFETY: the client pointer is valid while `consumer` is borrowed, `topic` is a
    // NUL-terminated string that outlives the call, and the out-pointers are to live locals;
    // librdkafka reads its cached watermarks under its own lock.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some(high)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_says_where_the_partition_stands_and_since_when_it_waits() {
        let progress = PartitionProgress::new();
        assert_eq!(progress.committed(), None);
        assert_eq!(progress.last_read(), None);
        assert_eq!(progress.oldest_unsettled_age(), Duration::ZERO);
        progress.record(Some(416), Some(455), Some(Instant::now()));
        assert_eq!(progress.committed(), Some(416));
        assert_eq!(progress.last_read(), Some(455));
        let before = progress.oldest_unsettled_age();
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            progress.oldest_unsettled_age() > before,
            "the age grows while the message waits, without any new record"
        );
        progress.record(Some(456), Some(455), None);
        assert_eq!(progress.oldest_unsettled_age(), Duration::ZERO);
    }

    #[test]
    fn a_retired_partition_loses_its_series() {
        let metrics = Metrics::new();
        ConsumerLag {
            topic: "orders",
            partition: 1,
            lag: 9,
        }
        .emit(&metrics);
        let progress = PartitionProgress::new();
        progress.retire("orders", 1, &metrics);
        assert!(progress.retired());
        let text = metrics.encode().unwrap();
        assert!(!text.contains("eda_kafka_consumer_lag_messages{"), "{text}");
    }
}
