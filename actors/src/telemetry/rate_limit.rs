//! A lock-free limiter for warn-level logs of events that can repeat per batch.
//!
//! A poison topic or a sink outage can produce thousands of identical warnings a second; the
//! counters already carry the rate, so the log needs one line per interval saying how many were
//! folded into it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How often one kind of throttled warning may be logged.
pub(crate) const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Admits one log line per [`LOG_INTERVAL`] and counts the ones it suppressed.
#[derive(Debug, Default)]
pub(crate) struct LogLimiter {
    /// Milliseconds since the process origin of the last admitted line, plus one (0 = never).
    last_ms: AtomicU64,
    /// Lines refused since the last admitted one.
    suppressed: AtomicU64,
}

impl LogLimiter {
    /// `Some(suppressed)` if a line may be logged now (with how many were folded since the
    /// last one), `None` if it must be dropped.
    pub(crate) fn admit(&self) -> Option<u64> {
        self.admit_at(now_ms(), LOG_INTERVAL)
    }

    /// [`admit`](Self::admit) with the time passed in, for tests.
    pub(crate) fn admit_at(&self, now_ms: u64, interval: Duration) -> Option<u64> {
        let stamp = now_ms.saturating_add(1);
        let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        let last = self.last_ms.load(Ordering::Relaxed);
        let due = last == 0 || stamp.saturating_sub(last) >= interval_ms;
        if due
            && self
                .last_ms
                .compare_exchange(last, stamp, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// Milliseconds since the first call in this process (a monotonic clock).
fn now_ms() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = ORIGIN.get_or_init(Instant::now);
    u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_one_line_per_interval_and_counts_the_rest() {
        let limiter = LogLimiter::default();
        let interval = Duration::from_secs(10);
        assert_eq!(limiter.admit_at(0, interval), Some(0));
        assert_eq!(limiter.admit_at(1, interval), None);
        assert_eq!(limiter.admit_at(9_000, interval), None);
        assert_eq!(limiter.admit_at(10_000, interval), Some(2));
        assert_eq!(limiter.admit_at(10_001, interval), None);
    }
}
