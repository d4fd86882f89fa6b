//! The breaker as the region router experiences it, driven by a manual clock.

use super::*;
use eda_config::WindowKind;
use proptest::prelude::*;
use std::sync::Mutex;

#[derive(Default)]
struct Recorder(Mutex<Vec<Transition>>);

impl BreakerObserver for Recorder {
    fn on_transition(&self, _breaker: &str, transition: &Transition) {
        if let Ok(mut seen) = self.0.lock() {
            seen.push(transition.clone());
        }
    }
}

impl Recorder {
    fn taken(&self) -> Vec<Transition> {
        self.0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

fn config() -> BreakerConfig {
    BreakerConfig {
        window_kind: WindowKind::Count,
        window_size: 10,
        minimum_calls: 4,
        failure_rate_threshold: 50.0,
        slow_call_duration_ms: 1_000,
        slow_call_rate_threshold: 100.0,
        open_wait_ms: 1_000,
        open_wait_multiplier: 2.0,
        open_wait_max_ms: 5_000,
        open_wait_jitter: 0.0,
        half_open_max_calls: 2,
        half_open_timeout_ms: 3_000,
        ramp_ms: 10_000,
    }
}

struct Rig {
    clock: Arc<ManualClock>,
    seen: Arc<Recorder>,
    cb: CircuitBreaker<Arc<ManualClock>>,
}

fn rig(config: &BreakerConfig) -> Rig {
    let clock = Arc::new(ManualClock::new());
    let seen = Arc::new(Recorder::default());
    let cb = CircuitBreaker::new(
        "us-east-1",
        config,
        Arc::clone(&clock),
        fastrand::Rng::with_seed(7),
    )
    .with_observer(seen.clone());
    Rig { clock, seen, cb }
}

const FAST: Duration = Duration::from_millis(5);

impl Rig {
    fn ms(&self, ms: u64) {
        self.clock.advance(Duration::from_millis(ms));
    }

    fn call(&mut self, ok: bool) {
        let permit = self.cb.try_acquire().expect("permitted");
        if ok {
            self.cb.record_success(permit, FAST);
        } else {
            self.cb.record_failure(permit, FAST);
        }
    }

    fn reasons(&self) -> Vec<String> {
        self.seen
            .taken()
            .iter()
            .map(|t| format!("{}->{}: {}", t.from, t.to, t.reason))
            .collect()
    }
}

#[test]
fn opens_on_failure_rate_once_minimum_calls_are_in() {
    let mut r = rig(&config());
    r.call(false);
    r.call(false);
    r.call(false);
    assert_eq!(
        r.cb.state(),
        State::Closed,
        "three calls are under minimum_calls"
    );
    r.call(true);
    assert_eq!(r.cb.state(), State::Open);
    assert_eq!(r.reasons(), ["closed->open: failure_rate 75% >= 50%"]);
    let rejected = r.cb.try_acquire().expect_err("open");
    assert_eq!(rejected.state, State::Open);
    assert_eq!(rejected.retry_after, Some(Duration::from_millis(1_000)));
    assert_eq!(
        rejected.to_string(),
        "circuit breaker is open; calls are rejected for 1000 ms"
    );
    let c = r.cb.counters();
    assert_eq!((c.calls, c.failures, c.rejected), (4, 3, 1));
}

#[test]
fn rates_under_the_threshold_keep_it_closed() {
    let mut r = rig(&config());
    for i in 0..40 {
        r.call(i % 3 != 2); // 1 in 3 fails: never 50% in any window
    }
    assert_eq!(r.cb.state(), State::Closed);
}

#[test]
fn slow_calls_trip_it_even_when_they_succeed() {
    let mut r = rig(&config());
    for _ in 0..4 {
        let p = r.cb.try_acquire().expect("closed");
        r.cb.record_success(p, Duration::from_millis(1_000));
    }
    assert_eq!(r.reasons(), ["closed->open: slow_call_rate 100% >= 100%"]);
    assert_eq!(r.cb.counters().slow_calls, 4);
}

fn trip(r: &mut Rig) {
    for _ in 0..4 {
        r.call(false);
    }
    assert_eq!(r.cb.state(), State::Open);
}

#[test]
fn recovers_through_half_open_and_ramps_traffic_back() {
    let mut r = rig(&config());
    trip(&mut r);
    r.ms(999);
    assert!(r.cb.try_acquire().is_err());
    r.ms(1);
    let a = r.cb.try_acquire().expect("first trial");
    let b = r.cb.try_acquire().expect("second trial");
    let third = r.cb.try_acquire().expect_err("only two trials");
    assert_eq!(third.state, State::HalfOpen);
    r.cb.record_success(a, FAST);
    assert_eq!(r.cb.state(), State::HalfOpen, "waits for every trial");
    r.cb.record_success(b, FAST);
    assert_eq!(r.cb.state(), State::Closed);
    assert_eq!(
        r.reasons(),
        [
            "closed->open: failure_rate 100% >= 50%",
            "open->half_open: open wait of 1000 ms elapsed",
            "half_open->closed: half-open trials succeeded",
        ]
    );
    assert_eq!(r.cb.admit_fraction(), 0.0);
    r.ms(2_500);
    assert!((r.cb.admit_fraction() - 0.25).abs() < 1e-9);
    r.ms(10_000);
    assert_eq!(r.cb.admit_fraction(), 1.0);
}

#[test]
fn repeated_trips_wait_longer_up_to_the_cap_and_closing_resets_it() {
    let mut r = rig(&config());
    trip(&mut r);
    let mut waits = Vec::new();
    for _ in 0..4 {
        r.ms(10_000);
        r.call(false); // the first trial fails: 1 of 2 is 50%
        waits.push(r.seen.taken().last().and_then(|t| t.open_wait));
    }
    let ms = |m| Some(Duration::from_millis(m));
    assert_eq!(waits, [ms(2_000), ms(4_000), ms(5_000), ms(5_000)]);
    r.ms(10_000);
    r.call(true);
    r.call(true);
    assert_eq!(r.cb.state(), State::Closed);
    trip(&mut r);
    assert_eq!(r.seen.taken().last().and_then(|t| t.open_wait), ms(1_000));
}

#[test]
fn a_stuck_trial_cannot_hold_it_half_open_and_its_late_outcome_is_ignored() {
    let mut r = rig(&config());
    trip(&mut r);
    r.ms(1_000);
    let stuck = r.cb.try_acquire().expect("trial");
    r.call(true);
    r.ms(3_000);
    assert_eq!(r.cb.poll(), State::Open);
    assert_eq!(
        r.seen.taken().last().map(|t| t.reason.clone()),
        Some(TransitionReason::HalfOpenTimeout)
    );
    r.ms(10_000);
    let trial = r.cb.try_acquire().expect("new trials");
    r.cb.record_failure(stuck, FAST);
    assert_eq!(
        r.cb.state(),
        State::HalfOpen,
        "a stale failure does not reopen"
    );
    assert_eq!(r.cb.counters().stale, 1);
    r.cb.record_success(trial, FAST);
    r.call(true);
    assert_eq!(r.cb.state(), State::Closed);
}

#[test]
fn forced_open_rejects_everything_until_health_recovers_then_trials_decide() {
    let mut r = rig(&config());
    let before = r.cb.try_acquire().expect("closed");
    r.cb.force_open("region unhealthy");
    r.cb.force_open("region unhealthy");
    r.cb.record_failure(before, FAST);
    r.ms(1_000_000);
    let rejected = r.cb.try_acquire().expect_err("forced");
    assert_eq!(
        (rejected.state, rejected.retry_after),
        (State::ForcedOpen, None)
    );
    r.cb.health_recovered();
    assert_eq!(
        r.cb.state(),
        State::HalfOpen,
        "recovery does not close it directly"
    );
    r.call(true);
    r.call(true);
    assert_eq!(
        r.reasons(),
        [
            "closed->forced_open: forced: region unhealthy",
            "forced_open->half_open: health recovered",
            "half_open->closed: half-open trials succeeded",
        ]
    );
}

#[test]
fn disabled_lets_everything_through_and_enable_respects_health() {
    let mut r = rig(&config());
    r.cb.disable();
    for _ in 0..20 {
        r.call(false);
    }
    assert_eq!(r.cb.state(), State::Disabled);
    r.cb.force_open("region unhealthy");
    assert_eq!(r.cb.state(), State::Disabled, "the operator's switch wins");
    r.cb.enable();
    assert_eq!(r.cb.state(), State::ForcedOpen);
    r.cb.disable();
    r.cb.health_recovered();
    r.cb.enable();
    assert_eq!(r.cb.state(), State::Closed);
    r.call(false);
    assert_eq!(
        r.cb.state(),
        State::Closed,
        "enable starts from a clean window"
    );
}

#[test]
fn time_window_forgets_old_failures() {
    let mut r = rig(&BreakerConfig {
        window_kind: WindowKind::Time,
        window_size: 5,
        ..config()
    });
    r.call(false);
    r.call(false);
    r.call(false);
    r.ms(6_000);
    r.call(false);
    r.call(true);
    r.call(true);
    r.call(true);
    assert_eq!(
        r.cb.state(),
        State::Closed,
        "the first failures are out of the window"
    );
    r.call(false);
    assert_eq!(r.cb.state(), State::Closed, "2 of 5 is 40%");
    r.call(false);
    assert_eq!(r.cb.state(), State::Open, "3 of 6 is 50%");
}

#[test]
fn jitter_is_seeded_and_bounded() {
    let cfg = BreakerConfig {
        open_wait_jitter: 0.5,
        ..config()
    };
    let wait = |seed| {
        let clock = Arc::new(ManualClock::new());
        let mut cb = CircuitBreaker::new("r", &cfg, clock, fastrand::Rng::with_seed(seed));
        for _ in 0..4 {
            let p = cb.try_acquire().expect("closed");
            cb.record_failure(p, FAST);
        }
        cb.try_acquire().expect_err("open").retry_after
    };
    assert_eq!(wait(1), wait(1));
    assert_ne!(wait(1), wait(2));
    for seed in 0..50 {
        let w = wait(seed).expect("open has a wait");
        assert!(
            w >= Duration::from_millis(500) && w <= Duration::from_millis(1_500),
            "{w:?}"
        );
    }
}

/// One thing the router (or the health prober, or an operator) can do.
#[derive(Debug, Clone)]
enum Op {
    Acquire,
    Succeed { which: usize, ms: u64 },
    Fail { which: usize, ms: u64 },
    Advance(u64),
    Poll,
    ForceOpen,
    Recover,
    Disable,
    Enable,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Acquire),
        4 => (any::<usize>(), 0u64..1_500).prop_map(|(which, ms)| Op::Succeed { which, ms }),
        4 => (any::<usize>(), 0u64..1_500).prop_map(|(which, ms)| Op::Fail { which, ms }),
        3 => (0u64..4_000).prop_map(Op::Advance),
        1 => Just(Op::Poll),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::Recover),
        1 => Just(Op::Disable),
        1 => Just(Op::Enable),
    ]
}

fn breaker_config() -> impl Strategy<Value = BreakerConfig> {
    (
        any::<bool>(),
        1u32..6,
        1u32..5,
        0.0f64..0.9,
        1.0f64..3.0,
        any::<bool>(),
    )
        .prop_map(
            |(time, max_calls, min_calls, jitter, multiplier, fail_fast)| BreakerConfig {
                window_kind: if time {
                    WindowKind::Time
                } else {
                    WindowKind::Count
                },
                window_size: 5,
                minimum_calls: min_calls,
                failure_rate_threshold: if fail_fast { 20.0 } else { 60.0 },
                half_open_max_calls: max_calls,
                open_wait_jitter: jitter,
                open_wait_multiplier: multiplier,
                ..config()
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn breaker_invariants_hold_for_any_sequence(
        cfg in breaker_config(),
        ops in prop::collection::vec(op(), 1..120),
        seed in any::<u64>(),
    ) {
        let clock = Arc::new(ManualClock::new());
        let seen = Arc::new(Recorder::default());
        let mut cb = CircuitBreaker::new("r", &cfg, Arc::clone(&clock), fastrand::Rng::with_seed(seed))
            .with_observer(seen.clone());
        let mut held: Vec<Permit> = Vec::new();
        let mut trials_by_generation = std::collections::HashMap::<u64, u32>::new();
        let (mut unhealthy, mut disabled) = (false, false);
        let low = cfg.open_wait_ms as f64 * (1.0 - cfg.open_wait_jitter);
        let high = cfg.open_wait_max_ms as f64 * (1.0 + cfg.open_wait_jitter);
        for op in ops {
            match op {
                Op::Acquire => match cb.try_acquire() {
                    Ok(permit) => {
                        prop_assert!(!unhealthy || disabled, "forced open let a call through");
                        if cb.state() == State::HalfOpen {
                            let n = trials_by_generation.entry(permit.generation).or_default();
                            *n += 1;
                            prop_assert!(*n <= cfg.half_open_max_calls, "{} trials", n);
                        }
                        held.push(permit);
                    }
                    Err(rejected) => {
                        prop_assert_eq!(rejected.state, cb.state());
                        if unhealthy && !disabled {
                            prop_assert_eq!(rejected.state, State::ForcedOpen);
                        }
                    }
                },
                Op::Succeed { which, ms } | Op::Fail { which, ms } if !held.is_empty() => {
                    let permit = held.swap_remove(which % held.len());
                    let failed = matches!(op, Op::Fail { .. });
                    if failed {
                        cb.record_failure(permit, Duration::from_millis(ms));
                    } else {
                        cb.record_success(permit, Duration::from_millis(ms));
                    }
                }
                Op::Succeed { .. } | Op::Fail { .. } => {}
                Op::Advance(ms) => clock.advance(Duration::from_millis(ms)),
                Op::Poll => { cb.poll(); }
                Op::ForceOpen => { cb.force_open("region unhealthy"); unhealthy = true; }
                Op::Recover => { cb.health_recovered(); unhealthy = false; }
                Op::Disable => { cb.disable(); disabled = true; }
                Op::Enable => { cb.enable(); disabled = false; }
            }
            if unhealthy && !disabled {
                prop_assert_eq!(cb.state(), State::ForcedOpen);
            }
            for t in seen.taken() {
                prop_assert!(
                    !(t.from == State::Closed && t.to == State::HalfOpen),
                    "closed went straight to half-open"
                );
                prop_assert_eq!(t.open_wait.is_some(), t.to == State::Open);
                if let Some(wait) = t.open_wait {
                    let ms = wait.as_secs_f64() * 1000.0;
                    prop_assert!(ms >= low - 1e-6 && ms <= high + 1e-6, "wait {} ms outside [{}, {}]", ms, low, high);
                }
            }
        }
    }
}
