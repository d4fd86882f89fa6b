//! The sliding windows the closed breaker computes its failure and slow-call rates over.
//!
//! Both keep running totals, so recording a call and reading the rates cost O(1) whatever the
//! window size (the time window clears at most one bucket per elapsed second).

use eda_config::WindowKind;
use std::time::Duration;

/// Calls, failures and slow calls in the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) calls: u32,
    pub(crate) failures: u32,
    pub(crate) slow: u32,
}

impl Totals {
    fn add(&mut self, other: Totals) {
        self.calls += other.calls;
        self.failures += other.failures;
        self.slow += other.slow;
    }

    fn sub(&mut self, other: Totals) {
        self.calls -= other.calls;
        self.failures -= other.failures;
        self.slow -= other.slow;
    }

    fn one(failed: bool, slow: bool) -> Totals {
        Totals {
            calls: 1,
            failures: u32::from(failed),
            slow: u32::from(slow),
        }
    }
}

/// A count-based (last N calls) or time-based (last N seconds) window.
#[derive(Debug, Clone)]
pub(crate) enum Window {
    Count {
        /// One entry per call, overwritten round-robin.
        ring: Vec<Totals>,
        next: usize,
        filled: usize,
        totals: Totals,
    },
    Time {
        /// One bucket per second, indexed by `second % len`.
        buckets: Vec<Totals>,
        /// The latest second the buckets account for.
        head: u64,
        totals: Totals,
    },
}

impl Window {
    /// An empty window of `size` calls or seconds (at least one).
    pub(crate) fn new(kind: WindowKind, size: u32) -> Window {
        let size = size.max(1) as usize;
        match kind {
            WindowKind::Count => Window::Count {
                ring: vec![Totals::default(); size],
                next: 0,
                filled: 0,
                totals: Totals::default(),
            },
            WindowKind::Time => Window::Time {
                buckets: vec![Totals::default(); size],
                head: 0,
                totals: Totals::default(),
            },
        }
    }

    /// Forgets every call: a closing breaker starts from a clean window.
    pub(crate) fn reset(&mut self) {
        match self {
            Window::Count {
                ring,
                next,
                filled,
                totals,
            } => {
                ring.fill(Totals::default());
                *next = 0;
                *filled = 0;
                *totals = Totals::default();
            }
            Window::Time {
                buckets, totals, ..
            } => {
                buckets.fill(Totals::default());
                *totals = Totals::default();
            }
        }
    }

    /// Adds one call made at `now`.
    pub(crate) fn record(&mut self, now: Duration, failed: bool, slow: bool) {
        let call = Totals::one(failed, slow);
        match self {
            Window::Count {
                ring,
                next,
                filled,
                totals,
            } => {
                if *filled == ring.len() {
                    totals.sub(ring[*next]);
                } else {
                    *filled += 1;
                }
                ring[*next] = call;
                totals.add(call);
                *next = (*next + 1) % ring.len();
            }
            Window::Time { .. } => {
                let second = self.slide(now);
                if let Window::Time {
                    buckets, totals, ..
                } = self
                {
                    let len = buckets.len() as u64;
                    buckets[(second % len) as usize].add(call);
                    totals.add(call);
                }
            }
        }
    }

    /// The calls currently in the window.
    pub(crate) fn totals(&mut self, now: Duration) -> Totals {
        self.slide(now);
        match self {
            Window::Count { totals, .. } | Window::Time { totals, .. } => *totals,
        }
    }

    /// Drops the seconds that fell out of a time window; returns the second calls land in.
    fn slide(&mut self, now: Duration) -> u64 {
        let Window::Time {
            buckets,
            head,
            totals,
        } = self
        else {
            return 0;
        };
        let second = now.as_secs();
        if second <= *head {
            // A monotonic clock does not go back; a call within the head second lands there.
            return *head;
        }
        let len = buckets.len() as u64;
        let expired = (second - *head).min(len);
        for s in (second - expired + 1)..=second {
            let bucket = &mut buckets[(s % len) as usize];
            totals.sub(*bucket);
            *bucket = Totals::default();
        }
        *head = second;
        second
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn count_window_keeps_the_last_n_calls() {
        let mut w = Window::new(WindowKind::Count, 3);
        for failed in [true, true, false, false, false] {
            w.record(secs(0), failed, false);
        }
        assert_eq!(
            w.totals(secs(0)),
            Totals {
                calls: 3,
                failures: 0,
                slow: 0
            }
        );
    }

    #[test]
    fn time_window_forgets_calls_older_than_n_seconds() {
        let mut w = Window::new(WindowKind::Time, 3);
        w.record(secs(10), true, true);
        w.record(secs(11), false, false);
        w.record(secs(12), true, false);
        assert_eq!(w.totals(secs(12)).calls, 3);
        assert_eq!(w.totals(secs(13)).calls, 2, "second 10 has left");
        assert_eq!(w.totals(secs(13)).slow, 0);
        assert_eq!(w.totals(secs(100)), Totals::default());
        w.record(secs(100), true, false);
        assert_eq!(w.totals(secs(100)).failures, 1);
    }
}
