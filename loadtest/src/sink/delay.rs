//! The sink's waits (`--latency-ms`), kept to the length asked for.
//!
//! tokio's timer counts in whole milliseconds: a deadline is rounded up to the next tick and
//! the runtime parks for whole milliseconds, so `tokio::time::sleep(1 ms)` answered a call after
//! 2.2 ms on average (measured here: 2,000 `PutEvents` one at a time took 0.41 s with no wait
//! and 4.81 s with `--latency-ms 1`). A benchmark that says "sink at 1 ms" would have run against
//! a sink at 2-3 ms. The waits are therefore kept by a thread of their own, which sleeps on a
//! condition variable until the earliest deadline (the kernel's high-resolution timers, tens of
//! microseconds late at most) and then wakes the calls whose time has come.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;
use tokio::sync::oneshot;

/// A call waiting for its deadline.
struct Waiter {
    at: Instant,
    /// Keeps waiters of one deadline in arrival order.
    seq: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Waiter {}

impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Waiter {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Default)]
struct Queue {
    waiters: BinaryHeap<Reverse<Waiter>>,
    next_seq: u64,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

/// Precise waits for the calls of one sink; its thread ends when this is dropped.
pub struct Delays {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Delays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delays").finish_non_exhaustive()
    }
}

impl Delays {
    /// Starts the waits' thread.
    pub fn new() -> Self {
        let shared = Arc::new(Shared::default());
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("sink-delays".into())
            .spawn(move || run(&thread_shared))
            .expect("the sink's delay thread starts");
        Self { shared }
    }

    /// Returns at `at` (at once if it has passed; tens of microseconds later at most, on an idle
    /// machine).
    pub async fn wait_until(&self, at: Instant) {
        if at <= Instant::now() {
            return;
        }
        let (wake, woken) = oneshot::channel();
        {
            let mut queue = self.shared.queue.lock().expect("delay queue");
            if queue.closed {
                return;
            }
            let seq = queue.next_seq;
            queue.next_seq += 1;
            let earliest = queue.waiters.peek().is_none_or(|first| at < first.0.at);
            queue.waiters.push(Reverse(Waiter { at, seq, wake }));
            if earliest {
                self.shared.changed.notify_one();
            }
        }
        // The sender goes only with the thread, which answers every waiter before it ends.
        let _ = woken.await;
    }
}

impl Default for Delays {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Delays {
    fn drop(&mut self) {
        self.shared.queue.lock().expect("delay queue").closed = true;
        self.shared.changed.notify_one();
    }
}

/// The thread: wakes each waiter at its deadline; on close, wakes the rest at once.
fn run(shared: &Shared) {
    let mut queue = shared.queue.lock().expect("delay queue");
    loop {
        let now = Instant::now();
        while let Some(first) = queue.waiters.peek() {
            if first.0.at > now && !queue.closed {
                break;
            }
            let Reverse(waiter) = queue.waiters.pop().expect("peeked");
            let _ = waiter.wake.send(());
        }
        if queue.closed {
            return;
        }
        queue = match queue.waiters.peek().map(|first| first.0.at - now) {
            Some(left) => {
                shared
                    .changed
                    .wait_timeout(queue, left)
                    .expect("delay queue")
                    .0
            }
            None => shared.changed.wait(queue).expect("delay queue"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn each_wait_lasts_at_least_its_length_and_later_ones_do_not_hold_earlier_ones() {
        let delays = Arc::new(Delays::new());
        let started = Instant::now();
        let long = tokio::spawn({
            let delays = delays.clone();
            async move {
                delays
                    .wait_until(started + Duration::from_millis(300))
                    .await;
                started.elapsed()
            }
        });
        delays.wait_until(started + Duration::from_millis(3)).await;
        let short = started.elapsed();
        assert!(short >= Duration::from_millis(3), "{short:?}");
        assert!(
            short < Duration::from_millis(300),
            "the short wait ended after the long one: {short:?}"
        );
        let long = long.await.expect("the long wait");
        assert!(long >= Duration::from_millis(300), "{long:?}");
    }

    #[test]
    fn dropping_the_delays_ends_their_thread() {
        let delays = Delays::new();
        let shared = Arc::downgrade(&delays.shared);
        drop(delays);
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared.upgrade().is_some() {
            assert!(
                Instant::now() < deadline,
                "the delay thread is still running"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
