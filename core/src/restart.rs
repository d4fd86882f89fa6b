//! The restart policy of every supervisor: when a child fails, restart it after a growing,
//! jittered backoff, unless it already failed too often inside a sliding window, in which case
//! escalate to the parent.
//!
//! Pure: the time of each failure is passed in and randomness comes from an injected
//! [`fastrand::Rng`], so the property tests below can replay any failure history exactly.
//!
//! The rules, per child:
//!
//! - restarts older than `window` are forgotten (the window slides with each failure);
//! - with `n` restarts still inside the window, the `n+1`-th failure is restarted after
//!   `min(backoff_initial · 2ⁿ, backoff_max)`, jittered (see [`Jitter`]) and never above
//!   `backoff_max`;
//! - with `max_restarts` restarts already inside the window, the failure escalates instead, so no
//!   window of that length ever holds more than `max_restarts` restarts.

use eda_config::SupervisionConfig;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How a backoff is randomized so that children failing together do not restart together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Exactly the computed backoff (tests, and a single child with nothing to stampede).
    None,
    /// Uniform in `[0, backoff]`: the widest spread, but a restart may be immediate.
    Full,
    /// Uniform in `[backoff/2, backoff·3/2]`, capped at `backoff_max`: spread, with a floor.
    Half,
}

/// What a supervisor does about one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartDecision {
    /// Spawn the child again after `after`.
    Restart {
        /// The jittered backoff.
        after: Duration,
        /// Restarts inside the window, this one included (1 for the first).
        attempt: u32,
    },
    /// Give up: the supervisor fails itself so its parent decides.
    Escalate {
        /// Restarts already inside the window.
        restarts: u32,
        /// The window they were counted in.
        window: Duration,
    },
}

/// Per-child restart bookkeeping for one supervisor, built from `[supervision]`.
///
/// `K` identifies a child (its name within the supervisor).
#[derive(Debug, Clone)]
pub struct RestartPolicy<K = String> {
    /// Restarts allowed inside `window` before escalating.
    max_restarts: u32,
    /// The sliding window restarts are counted in.
    window: Duration,
    /// Backoff before the first restart inside a window.
    backoff_initial: Duration,
    /// Ceiling of every backoff, jitter included.
    backoff_max: Duration,
    /// How backoffs are randomized.
    jitter: Jitter,
    /// Times of the restarts still inside the window, oldest first, per child.
    history: HashMap<K, VecDeque<Instant>>,
}

impl<K: Eq + Hash + Clone> RestartPolicy<K> {
    /// A policy from the configuration, with [`Jitter::Half`].
    pub fn new(config: &SupervisionConfig) -> Self {
        Self {
            max_restarts: config.max_restarts,
            window: config.window(),
            backoff_initial: config.backoff_initial(),
            backoff_max: config.backoff_max(),
            jitter: Jitter::Half,
            history: HashMap::new(),
        }
    }

    /// The same policy with another jitter.
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The window restarts are counted in.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Decides what to do about `child` failing at `now`, and records the restart if there is
    /// one.
    pub fn on_failure(
        &mut self,
        child: &K,
        now: Instant,
        rng: &mut fastrand::Rng,
    ) -> RestartDecision {
        let window = self.window;
        let history = self.history.entry(child.clone()).or_default();
        while history
            .front()
            .is_some_and(|&at| now.saturating_duration_since(at) >= window)
        {
            history.pop_front();
        }
        let restarts = u32::try_from(history.len()).unwrap_or(u32::MAX);
        if restarts >= self.max_restarts {
            return RestartDecision::Escalate { restarts, window };
        }
        history.push_back(now);
        let ceiling = self.ceiling(restarts);
        let after = match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full => uniform(rng, Duration::ZERO, ceiling),
            Jitter::Half => {
                let high = ceiling.saturating_add(ceiling / 2).min(self.backoff_max);
                uniform(rng, (ceiling / 2).min(high), high)
            }
        };
        RestartDecision::Restart {
            after,
            attempt: restarts + 1,
        }
    }

    /// Restarts of `child` inside the window ending at `now`.
    pub fn restarts_in_window(&self, child: &K, now: Instant) -> u32 {
        self.history.get(child).map_or(0, |history| {
            let inside = history
                .iter()
                .filter(|&&at| now.saturating_duration_since(at) < self.window)
                .count();
            u32::try_from(inside).unwrap_or(u32::MAX)
        })
    }

    /// Drops a child's history (it was removed on purpose, e.g. its partition was revoked).
    pub fn forget(&mut self, child: &K) {
        self.history.remove(child);
    }

    /// The un-jittered backoff after `restarts` restarts inside the window:
    /// `min(backoff_initial · 2^restarts, backoff_max)`.
    pub fn ceiling(&self, restarts: u32) -> Duration {
        let factor = 1u32.checked_shl(restarts).unwrap_or(u32::MAX);
        self.backoff_initial
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

/// A duration drawn uniformly from `[low, high]` (nanosecond resolution).
fn uniform(rng: &mut fastrand::Rng, low: Duration, high: Duration) -> Duration {
    let low_ns = u64::try_from(low.as_nanos()).unwrap_or(u64::MAX);
    let high_ns = u64::try_from(high.as_nanos()).unwrap_or(u64::MAX);
    if high_ns <= low_ns {
        return low;
    }
    Duration::from_nanos(rng.u64(low_ns..=high_ns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(
        max_restarts: u32,
        window_secs: u64,
        initial_ms: u64,
        max_ms: u64,
    ) -> SupervisionConfig {
        SupervisionConfig {
            max_restarts,
            window_secs,
            backoff_initial_ms: initial_ms,
            backoff_max_ms: max_ms,
        }
    }

    fn after(decision: RestartDecision) -> Duration {
        match decision {
            RestartDecision::Restart { after, .. } => after,
            RestartDecision::Escalate { .. } => panic!("escalated: {decision:?}"),
        }
    }

    #[test]
    fn backoff_doubles_inside_the_window_then_escalates() {
        let mut policy =
            RestartPolicy::<&str>::new(&config(5, 60, 100, 10_000)).with_jitter(Jitter::None);
        let mut rng = fastrand::Rng::with_seed(1);
        let t0 = Instant::now();
        let delays: Vec<u64> = (0..5)
            .map(|i| {
                let now = t0 + Duration::from_secs(i);
                after(policy.on_failure(&"applier", now, &mut rng)).as_millis() as u64
            })
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1_600]);
        assert_eq!(
            policy.on_failure(&"applier", t0 + Duration::from_secs(5), &mut rng),
            RestartDecision::Escalate {
                restarts: 5,
                window: Duration::from_secs(60)
            }
        );
    }

    #[test]
    fn the_window_slides_and_backoff_resets() {
        let mut policy =
            RestartPolicy::<&str>::new(&config(2, 10, 100, 10_000)).with_jitter(Jitter::None);
        let mut rng = fastrand::Rng::with_seed(1);
        let t0 = Instant::now();
        after(policy.on_failure(&"a", t0, &mut rng));
        after(policy.on_failure(&"a", t0 + Duration::from_secs(5), &mut rng));
        // The first restart left the window at t0 + 10 s: one slot is free again.
        let d = after(policy.on_failure(&"a", t0 + Duration::from_secs(10), &mut rng));
        assert_eq!(d, Duration::from_millis(200));
        assert_eq!(
            policy.restarts_in_window(&"a", t0 + Duration::from_secs(10)),
            2
        );
        // Long after, everything is forgotten and backoff starts over.
        let d = after(policy.on_failure(&"a", t0 + Duration::from_secs(100), &mut rng));
        assert_eq!(d, Duration::from_millis(100));
    }

    #[test]
    fn children_are_counted_separately() {
        let mut policy =
            RestartPolicy::<&str>::new(&config(1, 60, 100, 10_000)).with_jitter(Jitter::None);
        let mut rng = fastrand::Rng::with_seed(1);
        let now = Instant::now();
        after(policy.on_failure(&"a", now, &mut rng));
        after(policy.on_failure(&"b", now, &mut rng));
        assert!(matches!(
            policy.on_failure(&"a", now, &mut rng),
            RestartDecision::Escalate { restarts: 1, .. }
        ));
        policy.forget(&"a");
        after(policy.on_failure(&"a", now, &mut rng));
    }

    #[test]
    fn zero_restarts_allowed_escalates_at_once() {
        let mut policy = RestartPolicy::<&str>::new(&config(0, 60, 100, 10_000));
        let mut rng = fastrand::Rng::with_seed(1);
        assert!(matches!(
            policy.on_failure(&"a", Instant::now(), &mut rng),
            RestartDecision::Escalate { restarts: 0, .. }
        ));
    }

    #[test]
    fn backoff_is_capped_and_never_overflows() {
        let policy = RestartPolicy::<&str>::new(&config(1_000, 60, 600_000, 600_000));
        assert_eq!(policy.ceiling(999), Duration::from_secs(600));
        let policy = RestartPolicy::<&str>::new(&config(10, 60, 100, 1_000));
        assert_eq!(policy.ceiling(3), Duration::from_millis(800));
        assert_eq!(policy.ceiling(4), Duration::from_millis(1_000));
    }

    fn jitter() -> impl Strategy<Value = Jitter> {
        prop_oneof![Just(Jitter::None), Just(Jitter::Full), Just(Jitter::Half)]
    }

    proptest! {
        /// No window of `window` length ever holds more than `max_restarts` restarts, whatever
        /// the failure times.
        #[test]
        fn never_more_than_max_restarts_inside_any_window(
            max_restarts in 0u32..6,
            window_secs in 1u64..30,
            gaps_ms in proptest::collection::vec(0u64..20_000, 1..60),
            seed in any::<u64>(),
        ) {
            let cfg = config(max_restarts, window_secs, 10, 1_000);
            let mut policy = RestartPolicy::<u8>::new(&cfg);
            let mut rng = fastrand::Rng::with_seed(seed);
            let t0 = Instant::now();
            let mut now = t0;
            let mut restarts: Vec<Instant> = Vec::new();
            for gap in gaps_ms {
                now += Duration::from_millis(gap);
                if let RestartDecision::Restart { .. } = policy.on_failure(&0, now, &mut rng) {
                    restarts.push(now);
                }
            }
            let window = Duration::from_secs(window_secs);
            for &end in &restarts {
                let inside = restarts
                    .iter()
                    .filter(|&&at| at <= end && end.saturating_duration_since(at) < window)
                    .count();
                prop_assert!(inside as u32 <= max_restarts, "{inside} restarts in one window");
            }
        }

        /// Every backoff lies within its jitter's bounds and never exceeds `backoff_max`.
        #[test]
        fn backoff_within_bounds(
            initial_ms in 1u64..5_000,
            max_ms in 1u64..60_000,
            failures in 1usize..12,
            jitter in jitter(),
            seed in any::<u64>(),
        ) {
            let cfg = config(20, 3_600, initial_ms, max_ms);
            let mut policy = RestartPolicy::<u8>::new(&cfg).with_jitter(jitter);
            let mut rng = fastrand::Rng::with_seed(seed);
            let now = Instant::now();
            let max = Duration::from_millis(max_ms);
            for _ in 0..failures {
                match policy.on_failure(&0, now, &mut rng) {
                    RestartDecision::Restart { after, attempt } => {
                        let ceiling = policy.ceiling(attempt - 1);
                        prop_assert!(ceiling <= max);
                        prop_assert!(after <= max, "{after:?} over the cap {max:?}");
                        match jitter {
                            Jitter::None => prop_assert_eq!(after, ceiling),
                            Jitter::Full => prop_assert!(after <= ceiling),
                            Jitter::Half => {
                                prop_assert!(after >= ceiling / 2);
                                prop_assert!(after <= ceiling + ceiling / 2);
                            }
                        }
                    }
                    RestartDecision::Escalate { .. } => prop_assert!(false, "escalated early"),
                }
            }
        }
    }
}
