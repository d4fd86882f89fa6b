//! `[apply]`, `[publish]` and `[dlq]`: the three sinks a CDC change can end in.

use crate::error::Validator;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// How CDC changes are written to DynamoDB.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApplyConfig {
    /// Source tables (`"SCHEMA.TABLE"`) written to a DynamoDB table other than the region's
    /// `cdc_table`.
    pub table_map: BTreeMap<String, String>,
    /// How long a DELETE's tombstone lives (DynamoDB TTL) so a late older INSERT cannot
    /// resurrect the row; longer than any redelivery you expect. `dlq redrive` refuses dead
    /// letters that would write to the table once they are this old (unless
    /// `--force-older-than-tombstones`): their key's tombstone may be gone.
    pub tombstone_ttl_secs: u64,
    /// CDC applier actors; partitions are spread over them.
    pub appliers: usize,
    /// Conditional writes one applier keeps in flight at once. They go out gathered, up to
    /// `batch_statements` per call, so 128 writes are about six calls in flight, not 128: the
    /// default is set for gathered writes (with 32, an applier waited a round trip for every 32
    /// writes: `docs/perf/profile.md`, "The fixed-rate run").
    pub max_concurrency: usize,
    /// Writes gathered into one `BatchExecuteStatement` call (PartiQL, at most 25; the role needs
    /// `dynamodb:PartiQLInsert` and `dynamodb:PartiQLUpdate`, and goes on with `PutItem`s, saying
    /// so once, where it lacks them). Each write is still guarded and answered on its own, and
    /// the table ends as with one `PutItem` per write, at the same write units; a write the
    /// statement cannot make exactly (a delete, a key's first `UPDATE`, a changed set of
    /// columns, a replay) goes as its own `PutItem`. 1: every write is a `PutItem`.
    pub batch_statements: usize,
    /// Retry policy for throttling, timeouts, lost connections and 5xx answers. By default a
    /// change is retried until DynamoDB takes it, however long that is (the delivery contract:
    /// retryable failures hold the partition, only permanent ones go to the DLQ): a DynamoDB
    /// outage must not send good changes to the DLQ. Meanwhile the applier holds its batch, and
    /// the partition stops reading once its `kafka.max_in_flight_per_partition` messages are in
    /// flight. A limit (`max_attempts`, `max_elapsed_ms`) turns a longer outage into dead
    /// letters, to redrive afterwards.
    pub retry: RetryConfig,
}

impl Default for ApplyConfig {
    fn default() -> Self {
        Self {
            table_map: BTreeMap::new(),
            tombstone_ttl_secs: 7 * 24 * 3600,
            appliers: 4,
            max_concurrency: 128,
            batch_statements: 25,
            retry: RetryConfig::until_it_passes(),
        }
    }
}

impl ApplyConfig {
    pub(crate) fn validate(&self, v: &mut Validator) {
        v.range(
            "apply.tombstone_ttl_secs",
            self.tombstone_ttl_secs,
            60,
            366 * 24 * 3600,
        );
        v.range("apply.appliers", self.appliers, 1, 256);
        v.range("apply.max_concurrency", self.max_concurrency, 1, 1_024);
        v.range("apply.batch_statements", self.batch_statements, 1, 25);
        for (source, table) in &self.table_map {
            v.non_empty(&format!("apply.table_map.\"{source}\""), table);
        }
        self.retry.validate("apply.retry", v);
    }
}

/// Exponential backoff with full jitter for retryable AWS errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts in all (the first call included) before the failure goes to the DLQ; 0: no
    /// limit on the count (`max_elapsed_ms` decides).
    pub max_attempts: u32,
    /// Backoff before the second attempt; it doubles per attempt.
    pub base_delay_ms: u64,
    /// Ceiling on one backoff.
    pub max_delay_ms: u64,
    /// No attempt starts this long after the first one; 0: no limit on the time. With both
    /// limits 0 a retryable failure is retried until it succeeds.
    pub max_elapsed_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay_ms: 25,
            max_delay_ms: 5_000,
            max_elapsed_ms: 0,
        }
    }
}

impl RetryConfig {
    /// The default backoff with no limit on attempts or time: a retryable failure is retried
    /// until it passes.
    pub fn until_it_passes() -> Self {
        Self {
            max_attempts: 0,
            max_elapsed_ms: 0,
            ..Self::default()
        }
    }

    /// Whether a retryable failure may be tried again after `attempts` attempts, the first of
    /// them `elapsed` ago, and a backoff of `delay`.
    pub fn allows_another(&self, attempts: u32, elapsed: Duration, delay: Duration) -> bool {
        let count_left = self.max_attempts == 0 || attempts < self.max_attempts;
        let time_left = self.max_elapsed_ms == 0
            || elapsed.saturating_add(delay) < Duration::from_millis(self.max_elapsed_ms);
        count_left && time_left
    }

    /// `base_delay_ms` as a duration.
    pub fn base_delay(&self) -> Duration {
        Duration::from_millis(self.base_delay_ms)
    }

    /// `max_delay_ms` as a duration.
    pub fn max_delay(&self) -> Duration {
        Duration::from_millis(self.max_delay_ms)
    }

    pub(crate) fn validate(&self, prefix: &str, v: &mut Validator) {
        v.range(
            &format!("{prefix}.max_attempts"),
            self.max_attempts,
            0,
            1_000,
        );
        v.range(
            &format!("{prefix}.max_elapsed_ms"),
            self.max_elapsed_ms,
            0,
            24 * 3_600_000,
        );
        v.range(
            &format!("{prefix}.base_delay_ms"),
            self.base_delay_ms,
            1,
            60_000,
        );
        v.range(
            &format!("{prefix}.max_delay_ms"),
            self.max_delay_ms,
            1,
            600_000,
        );
        if self.base_delay_ms > self.max_delay_ms {
            v.less(
                &format!("{prefix}.base_delay_ms"),
                self.base_delay_ms,
                &format!("{prefix}.max_delay_ms"),
                self.max_delay_ms + 1,
            );
        }
    }
}

/// How applied changes are published to EventBridge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublishConfig {
    /// `source` of every event eda publishes (`eda.cdc`); rules match on it.
    pub source: String,
    /// Entries per PutEvents call; EventBridge accepts at most 10.
    pub max_entries: usize,
    /// Batches of events being published at once (each applier batch is one), and the PutEvents
    /// calls of one batch in flight at once (a batch of N events is N/10 calls). Bounds the
    /// publisher's memory and connections.
    pub max_concurrency: usize,
    /// Retry policy for throttling, timeouts, lost connections, 5xx and entries EventBridge
    /// failed. By default an event is retried until EventBridge takes it (retryable failures
    /// hold the partition; only permanent ones go to the DLQ); a limit turns a longer outage
    /// into dead letters.
    pub retry: RetryConfig,
}

impl Default for PublishConfig {
    fn default() -> Self {
        Self {
            source: "eda.cdc".into(),
            max_entries: 10,
            max_concurrency: 16,
            retry: RetryConfig::until_it_passes(),
        }
    }
}

impl PublishConfig {
    pub(crate) fn validate(&self, v: &mut Validator) {
        v.non_empty("publish.source", &self.source);
        v.range("publish.max_entries", self.max_entries, 1, 10);
        v.range("publish.max_concurrency", self.max_concurrency, 1, 1_024);
        self.retry.validate("publish.retry", v);
    }
}

/// How failures are written to the SQS dead-letter queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DlqConfig {
    /// Messages per SendMessageBatch call; SQS accepts at most 10.
    pub max_batch: usize,
    /// How long the writer waits to fill a batch.
    pub linger_ms: u64,
    /// Largest message, body and attributes, as SQS counts them (256 KiB, the limit every queue
    /// accepts). A letter that does not fit has an error message over 1 KiB cut to 1 KiB, then
    /// its payload stored zstd-compressed (`payload_encoding = "zstd_base64"`), whole; only a
    /// payload too large even so is cut, and says so (`payload_truncated`). Change events whose
    /// cross-region envelope, wrapped in a `route` letter, might not fit here go by claim check.
    pub max_message_bytes: usize,
    /// Largest SendMessageBatch, bodies and attributes summed, as SQS counts them: 256 KiB is
    /// the limit of queues created before SQS allowed 1 MiB, and what every queue accepts.
    /// A letter larger than this goes alone; a batch SQS still refuses as too long is halved.
    pub max_batch_bytes: usize,
    /// Retry policy for SQS itself; a DLQ write that keeps failing stops the partition.
    pub retry: RetryConfig,
}

impl Default for DlqConfig {
    fn default() -> Self {
        Self {
            max_batch: 10,
            linger_ms: 50,
            max_message_bytes: 256 * 1024,
            max_batch_bytes: 256 * 1024,
            retry: RetryConfig::default(),
        }
    }
}

impl DlqConfig {
    /// `linger_ms` as a duration.
    pub fn linger(&self) -> Duration {
        Duration::from_millis(self.linger_ms)
    }

    pub(crate) fn validate(&self, v: &mut Validator) {
        v.range("dlq.max_batch", self.max_batch, 1, 10);
        v.range("dlq.linger_ms", self.linger_ms, 0, 60_000);
        v.range(
            "dlq.max_message_bytes",
            self.max_message_bytes,
            1_024,
            256 * 1024,
        );
        v.range(
            "dlq.max_batch_bytes",
            self.max_batch_bytes,
            1_024,
            1024 * 1024,
        );
        self.retry.validate("dlq.retry", v);
    }
}
