//! `[health]`: the per-region health probers.

use crate::error::Validator;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Each region is probed (DynamoDB ListTables, EventBridge ListEventBuses, SQS ListQueues) on an
/// interval; a slow answer is degraded, an error or timeout is unhealthy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Time between probe rounds. It bounds how fast an outage is noticed.
    pub interval_ms: u64,
    /// Per-call timeout; a probe that takes longer is unhealthy.
    pub call_timeout_ms: u64,
    /// A probe slower than this is degraded (the seeds' 500 ms).
    pub degraded_threshold_ms: u64,
    /// Consecutive unhealthy rounds before the region's breaker is forced open.
    pub unhealthy_rounds: u32,
    /// Whether each round's `HealthCheckEvent` is published to EventBridge.
    pub publish_events: bool,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            interval_ms: 2_000,
            call_timeout_ms: 1_500,
            degraded_threshold_ms: 500,
            unhealthy_rounds: 1,
            publish_events: true,
        }
    }
}

impl HealthConfig {
    /// `interval_ms` as a duration.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    /// `call_timeout_ms` as a duration.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }

    /// `degraded_threshold_ms` as a duration.
    pub fn degraded_threshold(&self) -> Duration {
        Duration::from_millis(self.degraded_threshold_ms)
    }

    pub(crate) fn validate(&self, v: &mut Validator) {
        v.range("health.interval_ms", self.interval_ms, 100, 3_600_000);
        v.range("health.call_timeout_ms", self.call_timeout_ms, 10, 600_000);
        v.less(
            "health.degraded_threshold_ms",
            self.degraded_threshold_ms,
            "health.call_timeout_ms",
            self.call_timeout_ms,
        );
        v.less(
            "health.call_timeout_ms",
            self.call_timeout_ms,
            "health.interval_ms",
            self.interval_ms + 1,
        );
        v.range("health.unhealthy_rounds", self.unhealthy_rounds, 1, 1_000);
    }
}
