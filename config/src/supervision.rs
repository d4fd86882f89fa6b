//! `[supervision]`: how the root supervisor restarts failed actors.

use crate::error::Validator;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Restart policy: a failed child is restarted after a jittered, growing backoff; more than
/// `max_restarts` in `window_secs` escalates to the parent (and, at the root, stops the daemon
/// with a non-zero exit so Kubernetes restarts the pod).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisionConfig {
    /// Restarts of one child allowed inside the window before escalating.
    pub max_restarts: u32,
    /// The sliding window restarts are counted in.
    pub window_secs: u64,
    /// Backoff before the first restart; it doubles per restart inside the window.
    pub backoff_initial_ms: u64,
    /// Ceiling on one backoff.
    pub backoff_max_ms: u64,
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            window_secs: 60,
            backoff_initial_ms: 100,
            backoff_max_ms: 10_000,
        }
    }
}

impl SupervisionConfig {
    /// `window_secs` as a duration.
    pub fn window(&self) -> Duration {
        Duration::from_secs(self.window_secs)
    }

    /// `backoff_initial_ms` as a duration.
    pub fn backoff_initial(&self) -> Duration {
        Duration::from_millis(self.backoff_initial_ms)
    }

    /// `backoff_max_ms` as a duration.
    pub fn backoff_max(&self) -> Duration {
        Duration::from_millis(self.backoff_max_ms)
    }

    pub(crate) fn validate(&self, v: &mut Validator) {
        v.range("supervision.max_restarts", self.max_restarts, 0, 1_000);
        v.range("supervision.window_secs", self.window_secs, 1, 86_400);
        v.range(
            "supervision.backoff_initial_ms",
            self.backoff_initial_ms,
            1,
            600_000,
        );
        v.range(
            "supervision.backoff_max_ms",
            self.backoff_max_ms,
            1,
            600_000,
        );
    }
}
