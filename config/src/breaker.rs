//! `[breaker]`: the circuit breaker each region router owns.

use crate::error::Validator;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How calls are counted for the failure rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// The last `window_size` calls.
    Count,
    /// The calls of the last `window_size` seconds.
    Time,
}

/// A resilience4j-style breaker: closed, open, half-open (plus forced-open and disabled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Count-based or time-based sliding window.
    pub window_kind: WindowKind,
    /// Calls (count window) or seconds (time window) the failure rate is computed over.
    pub window_size: u32,
    /// Calls the window must hold before the rates are trusted; fewer never trips.
    pub minimum_calls: u32,
    /// Failure percentage (0-100) at or above which the breaker opens.
    pub failure_rate_threshold: f64,
    /// A call slower than this counts as slow even when it succeeds.
    pub slow_call_duration_ms: u64,
    /// Slow-call percentage (0-100) at or above which the breaker opens.
    pub slow_call_rate_threshold: f64,
    /// How long the breaker stays open after its first trip before allowing trial calls.
    pub open_wait_ms: u64,
    /// Each further trip without closing in between multiplies the wait by this factor.
    pub open_wait_multiplier: f64,
    /// Ceiling on the open wait.
    pub open_wait_max_ms: u64,
    /// Random spread applied to each open wait (0.2 = ±20 %), so replicas do not probe in step.
    pub open_wait_jitter: f64,
    /// Trial calls let through in half-open; all must succeed (by the thresholds) to close.
    pub half_open_max_calls: u32,
    /// A half-open state whose trials have not all finished by then reopens, so a stuck trial
    /// cannot hold the breaker half-open.
    pub half_open_timeout_ms: u64,
    /// After closing, the fraction of traffic sent back to a recovered region grows linearly
    /// from zero to all over this period, so fail-back is never all at once.
    pub ramp_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            window_kind: WindowKind::Count,
            window_size: 50,
            minimum_calls: 10,
            failure_rate_threshold: 50.0,
            slow_call_duration_ms: 2_000,
            slow_call_rate_threshold: 100.0,
            open_wait_ms: 3_000,
            open_wait_multiplier: 2.0,
            open_wait_max_ms: 60_000,
            open_wait_jitter: 0.2,
            half_open_max_calls: 5,
            half_open_timeout_ms: 10_000,
            ramp_ms: 10_000,
        }
    }
}

impl BreakerConfig {
    /// `slow_call_duration_ms` as a duration.
    pub fn slow_call_duration(&self) -> Duration {
        Duration::from_millis(self.slow_call_duration_ms)
    }

    /// `open_wait_ms` as a duration.
    pub fn open_wait(&self) -> Duration {
        Duration::from_millis(self.open_wait_ms)
    }

    /// `open_wait_max_ms` as a duration.
    pub fn open_wait_max(&self) -> Duration {
        Duration::from_millis(self.open_wait_max_ms)
    }

    /// `half_open_timeout_ms` as a duration.
    pub fn half_open_timeout(&self) -> Duration {
        Duration::from_millis(self.half_open_timeout_ms)
    }

    /// `ramp_ms` as a duration.
    pub fn ramp(&self) -> Duration {
        Duration::from_millis(self.ramp_ms)
    }

    pub(crate) fn validate(&self, v: &mut Validator) {
        v.range("breaker.window_size", self.window_size, 1, 100_000);
        v.range("breaker.minimum_calls", self.minimum_calls, 1, 100_000);
        if self.window_kind == WindowKind::Count && self.minimum_calls > self.window_size {
            v.less(
                "breaker.minimum_calls",
                self.minimum_calls,
                "breaker.window_size + 1",
                self.window_size + 1,
            );
        }
        v.range(
            "breaker.failure_rate_threshold",
            self.failure_rate_threshold,
            0.0,
            100.0,
        );
        v.range(
            "breaker.slow_call_rate_threshold",
            self.slow_call_rate_threshold,
            0.0,
            100.0,
        );
        v.range(
            "breaker.slow_call_duration_ms",
            self.slow_call_duration_ms,
            1,
            600_000,
        );
        v.range("breaker.open_wait_ms", self.open_wait_ms, 1, 3_600_000);
        v.range(
            "breaker.open_wait_multiplier",
            self.open_wait_multiplier,
            1.0,
            100.0,
        );
        if self.open_wait_ms > self.open_wait_max_ms {
            v.less(
                "breaker.open_wait_ms",
                self.open_wait_ms,
                "breaker.open_wait_max_ms + 1",
                self.open_wait_max_ms + 1,
            );
        }
        v.range("breaker.open_wait_jitter", self.open_wait_jitter, 0.0, 1.0);
        v.range(
            "breaker.half_open_max_calls",
            self.half_open_max_calls,
            1,
            10_000,
        );
        v.range(
            "breaker.half_open_timeout_ms",
            self.half_open_timeout_ms,
            1,
            3_600_000,
        );
        v.range("breaker.ramp_ms", self.ramp_ms, 0, 3_600_000);
    }
}
