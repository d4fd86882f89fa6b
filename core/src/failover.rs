//! Failover decisions for the region routers: which region an event goes to, and what happens to
//! events its region cannot take right now.
//!
//! A router sends its home region's traffic home while the home breaker lets calls through. What
//! the breaker refuses, or a failed call could not deliver, is *owed* to the home region: kept
//! durably (see [`crate::owed`]) until the home region takes events again, with a copy sent to
//! the other region's bus as a detour — a detour, not a destination. After a half-open breaker
//! closes, the breaker's [`admit_fraction`](crate::breaker::CircuitBreaker::admit_fraction) ramps
//! from 0 to 1 and [`goes_home`] sends only that share home at once (the rest is owed, and
//! delivered shortly after), so fail-back is gradual. Events that neither the home region nor the
//! owed queue accepted wait in a [`FailoverBuffer`]: bounded in count and in time, and whatever
//! leaves it without being delivered or recorded goes to the dead-letter queue — nothing is
//! dropped.

use std::collections::VecDeque;
use std::time::Duration;

/// Whether one event goes to its home region, given the home breaker's admit fraction (1.0 when
/// no ramp runs) and a uniform roll in `[0, 1)`.
pub fn goes_home(admit_fraction: f64, roll: f64) -> bool {
    admit_fraction >= 1.0 || roll < admit_fraction
}

/// Events that no region could take, oldest first, each with when it first entered the buffer
/// (a clock reading passed in, so the core never reads the clock).
#[derive(Debug)]
pub struct FailoverBuffer<T> {
    /// The events and their first-buffered times, oldest first.
    items: VecDeque<(Duration, T)>,
    /// `routing.failover_buffer`: beyond it, events go to the DLQ at once.
    capacity: usize,
    /// `routing.failover_max_wait_ms`: an event older than this goes to the DLQ.
    max_wait: Duration,
}

impl<T> FailoverBuffer<T> {
    /// An empty buffer holding at most `capacity` events for at most `max_wait` each.
    pub fn new(capacity: usize, max_wait: Duration) -> Self {
        Self {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            max_wait,
        }
    }

    /// Buffers `item`, first buffered at `since` (kept across retries, so an event cannot wait
    /// forever by bouncing). A full buffer hands the item back: it goes to the DLQ.
    pub fn push(&mut self, since: Duration, item: T) -> Result<(), T> {
        if self.items.len() >= self.capacity {
            return Err(item);
        }
        self.items.push_back((since, item));
        Ok(())
    }

    /// Removes and returns the events that have waited longer than `max_wait` at `now`.
    pub fn expired(&mut self, now: Duration) -> Vec<T> {
        let mut out = Vec::new();
        let mut keep = VecDeque::with_capacity(self.items.len());
        for (since, item) in self.items.drain(..) {
            if now.saturating_sub(since) > self.max_wait {
                out.push(item);
            } else {
                keep.push_back((since, item));
            }
        }
        self.items = keep;
        out
    }

    /// Takes every event out for another attempt, with its first-buffered time.
    pub fn take_all(&mut self) -> Vec<(Duration, T)> {
        self.items.drain(..).collect()
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_full_buffer_hands_the_event_back_for_the_dlq() {
        let mut buffer = FailoverBuffer::new(2, 10 * S);
        assert_eq!(buffer.push(S, 1), Ok(()));
        assert_eq!(buffer.push(S, 2), Ok(()));
        assert_eq!(buffer.push(S, 3), Err(3));
        assert_eq!(buffer.len(), 2);
    }

    #[test]
    fn events_older_than_the_wait_leave_and_the_rest_stay_in_order() {
        let mut buffer = FailoverBuffer::new(10, 5 * S);
        buffer.push(Duration::ZERO, "old").unwrap();
        buffer.push(3 * S, "young").unwrap();
        buffer.push(4 * S, "younger").unwrap();
        assert_eq!(buffer.expired(6 * S), vec!["old"]);
        assert_eq!(
            buffer.take_all(),
            vec![(3 * S, "young"), (4 * S, "younger")]
        );
        assert!(buffer.is_empty());
    }

    #[test]
    fn the_ramp_sends_its_share_home_and_everything_once_it_is_over() {
        let home = (0..1000)
            .filter(|i| goes_home(0.3, f64::from(*i) / 1000.0))
            .count();
        assert_eq!(home, 300);
        assert!(goes_home(1.0, 0.999));
        assert!(!goes_home(0.0, 0.0));
    }
}
