//! The rdkafka side of the consumer group: the consumer type, its librdkafka settings, and the
//! rebalance callbacks that turn assignments and revokes into [`Rebalanced`] messages for the
//! group actor. The group actor and the partition consumers both use these types; keeping them
//! here means neither actor file imports the other's protocol back.

use eda_config::KafkaConfig;
use ractor::DerivedActorRef;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::stream_consumer::StreamPartitionQueue;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::ClientContext;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

/// The rdkafka consumer of the group.
pub type GroupConsumer = StreamConsumer<GroupContext>;

/// What a rebalance tells the group actor: the only messages the consumer's callbacks send it.
pub enum Rebalanced {
    /// Partitions were assigned, each with its split-off queue.
    Assigned(Vec<AssignedPartition>),
    /// Partitions are being revoked: drain them, then answer.
    Revoked(Vec<(String, i32)>, std::sync::mpsc::SyncSender<()>),
}

/// The consumer's callbacks: rebalances become [`Rebalanced`] messages to the group actor.
pub struct GroupContext {
    /// The consumer itself, to split partition queues on assignment.
    pub consumer: OnceLock<Weak<GroupConsumer>>,
    /// The group actor, seen as the receiver of [`Rebalanced`].
    pub group: DerivedActorRef<Rebalanced>,
    /// Set when the group is closing: revokes then only commit.
    pub closing: Arc<AtomicBool>,
    /// How long a revoke waits for its partitions to drain.
    pub drain_timeout: Duration,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, base: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        if !self.closing.load(Ordering::Acquire) {
            let partitions: Vec<(String, i32)> = tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            if self
                .group
                .send_message(Rebalanced::Revoked(partitions, tx))
                .is_ok()
            {
                // Blocks this (polling) thread, not a runtime worker.
                let _ = rx.recv_timeout(self.drain_timeout);
            }
        }
        commit(base, "revoke");
    }

    fn post_rebalance(&self, _base: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(tpl) = rebalance else {
            return;
        };
        if self.closing.load(Ordering::Acquire) {
            // Split queues would keep the closing consumer open.
            return;
        }
        let Some(consumer) = self.consumer.get().and_then(Weak::upgrade) else {
            return;
        };
        let mut queues = Vec::new();
        for element in tpl.elements() {
            match consumer.split_partition_queue(element.topic(), element.partition()) {
                Some(queue) => queues.push(AssignedPartition {
                    topic: element.topic().to_string(),
                    partition: element.partition(),
                    queue,
                }),
                None => tracing::error!(
                    topic = element.topic(),
                    partition = element.partition(),
                    "Could not split the partition queue."
                ),
            }
        }
        let _ = self.group.send_message(Rebalanced::Assigned(queues));
    }
}

/// Commits the stored offsets now (on revoke and on shutdown); logs a failure.
pub fn commit<C: ConsumerContext, X: Consumer<C>>(consumer: &X, when: &str) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => tracing::debug!(when, "Offsets committed."),
        Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
        Err(err) => tracing::warn!(when, error = %err, "Offset commit failed."),
    }
}

/// A partition handed to this member, with its split-off queue.
pub struct AssignedPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Its queue.
    pub queue: StreamPartitionQueue<GroupContext>,
}

/// The librdkafka settings of the group consumer.
pub fn consumer_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.brokers)
        .set("group.id", &kafka.group_id)
        .set("enable.auto.commit", "true")
        .set(
            "auto.commit.interval.ms",
            kafka.commit_interval_ms.to_string(),
        )
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", kafka.session_timeout_ms.to_string())
        // Bounded prefetch: once a partition's queue holds this much, librdkafka stops fetching
        // it, which is the broker-side half of the partition consumers' flow control. With a
        // queue per partition (`split_partition_queue`) both limits apply per partition: 2 MiB
        // is about a second of a partition at 1,000 1-2 KB messages a second, and the in-flight
        // window behind it (`kafka.max_in_flight_*`) holds more. At 16 MiB / 10,000 messages the
        // prefetch alone was up to 64 MiB of a 4-partition daemon's RSS for no throughput
        // (docs/perf/profile.md, "After the lean client"). `kafka.librdkafka` overrides both.
        .set("queued.max.messages.kbytes", "2048")
        .set("queued.min.messages", "1000")
        // A partition whose prefetch is full is not fetched again for this long. librdkafka's
        // default (1 s) is made for its default prefetch (64 MiB). With the small one above, a
        // partition's queue drained in a fraction of a second and the partition then sat idle
        // for the rest of that second (docs/perf/profile.md, "The reading side"). At 10 ms the
        // re-check is a few comparisons in librdkafka's broker thread.
        .set("fetch.queue.backoff.ms", "10")
        .set("security.protocol", kafka.security_protocol.as_librdkafka());
    if let Some(sasl) = &kafka.sasl {
        config
            .set("sasl.mechanism", &sasl.mechanism)
            .set("sasl.username", &sasl.username)
            .set("sasl.password", sasl.password.expose());
    }
    if let Some(ssl) = &kafka.ssl {
        for (key, value) in [
            ("ssl.ca.location", &ssl.ca_location),
            ("ssl.certificate.location", &ssl.certificate_location),
            ("ssl.key.location", &ssl.key_location),
        ] {
            if let Some(value) = value {
                config.set(key, value);
            }
        }
        if let Some(password) = &ssl.key_password {
            config.set("ssl.key.password", password.expose());
        }
    }
    for (key, value) in &kafka.librdkafka {
        config.set(key, value);
    }
    config
}
