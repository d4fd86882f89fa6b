//! The circuit breaker each region router owns: a pure, deterministic state machine.
//!
//! It decides whether a call to a region may go ahead, so a failing region is given up on fast
//! and probed gently while it recovers, and traffic fails over instead of piling up. Modelled on
//! resilience4j:
//!
//! - **Closed**: every call goes through and is recorded in a sliding window (the last N calls,
//!   or the calls of the last N seconds). Once the window holds `minimum_calls`, a failure rate
//!   or slow-call rate at or above its threshold opens the breaker.
//! - **Open**: calls are rejected, with how long until trials begin. The wait grows by
//!   `open_wait_multiplier` for each trip without a close in between, up to `open_wait_max_ms`,
//!   spread by ±`open_wait_jitter` so replicas do not probe in step.
//! - **HalfOpen**: at most `half_open_max_calls` trial permits are handed out. The breaker closes
//!   once they have all completed with rates under the thresholds, and reopens as soon as enough
//!   trials failed (or were slow) that the rates can no longer end under them, or when the
//!   trials have not finished within `half_open_timeout_ms` (a stuck trial cannot hold it).
//! - **ForcedOpen**: the region's health prober reported it unhealthy; everything is rejected
//!   until [`CircuitBreaker::health_recovered`], which starts half-open trials (recovery alone
//!   never closes the breaker).
//! - **Disabled**: an operator switch; everything goes through and nothing is recorded.
//!
//! After a half-open breaker closes, [`CircuitBreaker::admit_fraction`] ramps from 0 to 1 over
//! `ramp_ms`, so the router shifts traffic back gradually.
//!
//! Time comes from a [`Clock`] and jitter from a seeded [`fastrand::Rng`], both given at
//! construction, so tests drive every transition exactly. Every transition is reported to a
//! [`BreakerObserver`] with a [`TransitionReason`], for metrics and logs.
//!
//! Calls hold a [`Permit`] from [`CircuitBreaker::try_acquire`] and hand it back with the outcome.
//! Each state change starts a new generation; an outcome whose permit is from an earlier
//! generation still counts in [`BreakerCounters`] but never in the current state's decisions.

mod clock;
mod window;

#[cfg(test)]
mod tests;

pub use clock::{Clock, ManualClock, SystemClock};

use eda_config::BreakerConfig;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use window::{Totals, Window};

/// Where the breaker stands; the router asks it before each call to a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls flow; outcomes are measured.
    Closed,
    /// Calls are rejected until the open wait has passed.
    Open,
    /// A few trial calls test whether the region is back.
    HalfOpen,
    /// Held open because the region's health checks fail.
    ForcedOpen,
    /// Switched off: calls flow and nothing is measured.
    Disabled,
}

impl State {
    /// Stable lower-case name, for metric labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::ForcedOpen => "forced_open",
            State::Disabled => "disabled",
        }
    }

    /// The value of a state gauge (0 closed, 1 open, 2 half-open, 3 forced-open, 4 disabled),
    /// so a dashboard can plot the state as one series.
    pub fn gauge_value(self) -> i64 {
        match self {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
            State::ForcedOpen => 3,
            State::Disabled => 4,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a transition happened; `Display` gives the log text, [`TransitionReason::kind`] a label.
#[derive(Debug, Clone, PartialEq)]
pub enum TransitionReason {
    /// The failure rate (percent) reached the threshold (percent).
    FailureRate {
        /// Measured rate, percent.
        rate: f64,
        /// Configured threshold, percent.
        threshold: f64,
    },
    /// The slow-call rate (percent) reached the threshold (percent).
    SlowCallRate {
        /// Measured rate, percent.
        rate: f64,
        /// Configured threshold, percent.
        threshold: f64,
    },
    /// The open wait passed and a call arrived: trials begin.
    OpenWaitElapsed {
        /// How long the breaker was set to stay open.
        waited: Duration,
    },
    /// Every trial completed and the rates were under the thresholds.
    TrialsSucceeded,
    /// The trials did not all finish within `half_open_timeout_ms`.
    HalfOpenTimeout,
    /// The health prober (or an operator) forced the breaker open.
    Forced(String),
    /// The health prober reported the region recovered: trials begin.
    HealthRecovered,
    /// The breaker was switched off.
    Disabled,
    /// The breaker was switched back on.
    Enabled,
}

impl TransitionReason {
    /// Stable low-cardinality name, for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            TransitionReason::FailureRate { .. } => "failure_rate",
            TransitionReason::SlowCallRate { .. } => "slow_call_rate",
            TransitionReason::OpenWaitElapsed { .. } => "open_wait_elapsed",
            TransitionReason::TrialsSucceeded => "trials_succeeded",
            TransitionReason::HalfOpenTimeout => "half_open_timeout",
            TransitionReason::Forced(_) => "forced",
            TransitionReason::HealthRecovered => "health_recovered",
            TransitionReason::Disabled => "disabled",
            TransitionReason::Enabled => "enabled",
        }
    }
}

/// A percentage without a useless `.0`: `62.5%`, `50%`.
struct Percent(f64);

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rounded = (self.0 * 10.0).round() / 10.0;
        if rounded.fract() == 0.0 {
            write!(f, "{rounded:.0}%")
        } else {
            write!(f, "{rounded:.1}%")
        }
    }
}

impl fmt::Display for TransitionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransitionReason::FailureRate { rate, threshold } => {
                write!(
                    f,
                    "failure_rate {} >= {}",
                    Percent(*rate),
                    Percent(*threshold)
                )
            }
            TransitionReason::SlowCallRate { rate, threshold } => {
                write!(
                    f,
                    "slow_call_rate {} >= {}",
                    Percent(*rate),
                    Percent(*threshold)
                )
            }
            TransitionReason::OpenWaitElapsed { waited } => {
                write!(f, "open wait of {} ms elapsed", waited.as_millis())
            }
            TransitionReason::TrialsSucceeded => f.write_str("half-open trials succeeded"),
            TransitionReason::HalfOpenTimeout => f.write_str("half-open timeout"),
            TransitionReason::Forced(why) => write!(f, "forced: {why}"),
            TransitionReason::HealthRecovered => f.write_str("health recovered"),
            TransitionReason::Disabled => f.write_str("disabled"),
            TransitionReason::Enabled => f.write_str("enabled"),
        }
    }
}

/// One state change, as reported to the observer.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The state left.
    pub from: State,
    /// The state entered.
    pub to: State,
    /// Why.
    pub reason: TransitionReason,
    /// Clock reading at the change.
    pub at: Duration,
    /// How long the breaker will stay open, when `to` is [`State::Open`].
    pub open_wait: Option<Duration>,
}

/// Receives every transition. The region router's observer turns them into a state gauge, a
/// transition counter and one log line each; transitions are rare, so this is off the hot path.
pub trait BreakerObserver: Send + Sync {
    /// Called synchronously inside the breaker call that caused the transition.
    fn on_transition(&self, breaker: &str, transition: &Transition);
}

/// Cumulative counts since the breaker was built, for metrics (read and export as counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BreakerCounters {
    /// Outcomes recorded (successes and failures), including stale ones.
    pub calls: u64,
    /// Outcomes recorded as failures.
    pub failures: u64,
    /// Outcomes at or over `slow_call_duration_ms`, successful or not.
    pub slow_calls: u64,
    /// Calls refused by `try_acquire`.
    pub rejected: u64,
    /// Outcomes whose permit was from an earlier state; counted here, ignored for decisions.
    pub stale: u64,
}

/// Permission for one call, returned with its outcome. Not `Clone`: one permit, one outcome.
#[must_use = "a permit must be returned with record_success or record_failure"]
#[derive(Debug, PartialEq, Eq)]
pub struct Permit {
    generation: u64,
}

/// A call refused by the breaker; the router fails it over to the other region.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker is {state}; calls are rejected{}", retry_hint(.retry_after))]
pub struct Rejected {
    /// The state that refused the call.
    pub state: State,
    /// When the breaker may next let a call through; `None` when only a health signal or an
    /// operator can change that (forced open).
    pub retry_after: Option<Duration>,
}

fn retry_hint(retry_after: &Option<Duration>) -> String {
    retry_after.map_or_else(String::new, |d| format!(" for {} ms", d.as_millis()))
}

/// Settings read from [`BreakerConfig`] once, clamped to workable values.
#[derive(Debug, Clone)]
struct Settings {
    minimum_calls: u32,
    failure_rate_threshold: f64,
    slow_call_duration: Duration,
    slow_call_rate_threshold: f64,
    open_wait_ms: f64,
    open_wait_multiplier: f64,
    open_wait_max_ms: f64,
    open_wait_jitter: f64,
    half_open_max_calls: u32,
    half_open_timeout: Duration,
    ramp: Duration,
}

/// The state with what each one needs to remember.
#[derive(Debug, Clone)]
enum Inner {
    Closed,
    Open {
        until: Duration,
        wait: Duration,
    },
    HalfOpen {
        since: Duration,
        issued: u32,
        completed: u32,
        failures: u32,
        slow: u32,
    },
    ForcedOpen,
    Disabled,
}

impl Inner {
    fn state(&self) -> State {
        match self {
            Inner::Closed => State::Closed,
            Inner::Open { .. } => State::Open,
            Inner::HalfOpen { .. } => State::HalfOpen,
            Inner::ForcedOpen => State::ForcedOpen,
            Inner::Disabled => State::Disabled,
        }
    }
}

/// A circuit breaker guarding calls to one region. Owned by one actor (`&mut self` methods);
/// generic over its [`Clock`] so tests use a [`ManualClock`].
pub struct CircuitBreaker<C: Clock = SystemClock> {
    name: String,
    settings: Settings,
    clock: C,
    rng: fastrand::Rng,
    observer: Option<Arc<dyn BreakerObserver>>,
    inner: Inner,
    /// Bumped on every transition; permits from earlier generations are stale.
    generation: u64,
    window: Window,
    /// Trips since the breaker last closed; the open wait grows with it.
    trips: u32,
    /// The health prober's complaint while the region is unhealthy, even while disabled, so
    /// enabling an unhealthy region's breaker goes straight to forced-open.
    unhealthy: Option<String>,
    /// When the breaker last closed after half-open, while the fail-back ramp runs.
    ramp_start: Option<Duration>,
    counters: BreakerCounters,
}

impl<C: Clock> fmt::Debug for CircuitBreaker<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name)
            .field("state", &self.inner)
            .field("generation", &self.generation)
            .field("trips", &self.trips)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl<C: Clock> CircuitBreaker<C> {
    /// A closed breaker named for what it guards (the region, used in transitions). `rng` spreads
    /// open waits; seed it per replica (or fixed in tests). Settings outside their validated
    /// ranges are clamped to the nearest workable value rather than refused.
    pub fn new(
        name: impl Into<String>,
        config: &BreakerConfig,
        clock: C,
        rng: fastrand::Rng,
    ) -> Self {
        let percent = |p: f64| {
            if p.is_finite() {
                p.clamp(0.0, 100.0)
            } else {
                100.0
            }
        };
        let open_wait_ms = config.open_wait_ms.max(1) as f64;
        let settings = Settings {
            minimum_calls: config.minimum_calls.max(1),
            failure_rate_threshold: percent(config.failure_rate_threshold),
            slow_call_duration: config.slow_call_duration(),
            slow_call_rate_threshold: percent(config.slow_call_rate_threshold),
            open_wait_ms,
            open_wait_multiplier: if config.open_wait_multiplier.is_finite() {
                config.open_wait_multiplier.max(1.0)
            } else {
                1.0
            },
            open_wait_max_ms: (config.open_wait_max_ms as f64).max(open_wait_ms),
            open_wait_jitter: if config.open_wait_jitter.is_finite() {
                config.open_wait_jitter.clamp(0.0, 1.0)
            } else {
                0.0
            },
            half_open_max_calls: config.half_open_max_calls.max(1),
            half_open_timeout: config.half_open_timeout(),
            ramp: config.ramp(),
        };
        Self {
            name: name.into(),
            settings,
            clock,
            rng,
            observer: None,
            inner: Inner::Closed,
            generation: 0,
            window: Window::new(config.window_kind, config.window_size),
            trips: 0,
            unhealthy: None,
            ramp_start: None,
            counters: BreakerCounters::default(),
        }
    }

    /// Reports every transition to `observer` from now on.
    pub fn with_observer(mut self, observer: Arc<dyn BreakerObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The name given at construction.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The state as of the last call; time-driven changes (open wait over, half-open timeout)
    /// happen on the next `try_acquire`, `record_*` or [`CircuitBreaker::poll`].
    pub fn state(&self) -> State {
        self.inner.state()
    }

    /// Applies the changes due to time alone, so a timer can keep the state gauge current
    /// even when no calls arrive.
    pub fn poll(&mut self) -> State {
        let now = self.clock.now();
        self.advance(now);
        self.state()
    }

    /// The cumulative counts, for metrics.
    pub fn counters(&self) -> BreakerCounters {
        self.counters
    }

    /// Asks to make one call. `Ok` hands out a permit to return with the outcome; `Err` says
    /// the region is being avoided and for how long.
    pub fn try_acquire(&mut self) -> Result<Permit, Rejected> {
        let now = self.clock.now();
        self.advance(now);
        let max_trials = self.settings.half_open_max_calls;
        let timeout = self.settings.half_open_timeout;
        let rejected = match &mut self.inner {
            Inner::Closed | Inner::Disabled => None,
            Inner::Open { until, .. } => Some(Rejected {
                state: State::Open,
                retry_after: Some(until.saturating_sub(now)),
            }),
            Inner::HalfOpen { since, issued, .. } => {
                if *issued < max_trials {
                    *issued += 1;
                    None
                } else {
                    Some(Rejected {
                        state: State::HalfOpen,
                        retry_after: Some((*since + timeout).saturating_sub(now)),
                    })
                }
            }
            Inner::ForcedOpen => Some(Rejected {
                state: State::ForcedOpen,
                retry_after: None,
            }),
        };
        match rejected {
            None => Ok(Permit {
                generation: self.generation,
            }),
            Some(rejected) => {
                self.counters.rejected += 1;
                Err(rejected)
            }
        }
    }

    /// Returns a permit whose call succeeded after `duration` (slow if at or over the limit).
    pub fn record_success(&mut self, permit: Permit, duration: Duration) {
        self.record(permit, duration, false);
    }

    /// Returns a permit whose call failed after `duration`.
    pub fn record_failure(&mut self, permit: Permit, duration: Duration) {
        self.record(permit, duration, true);
    }

    /// The region's health checks fail: reject everything until [`Self::health_recovered`].
    /// Repeating it while forced open changes nothing.
    pub fn force_open(&mut self, reason: impl Into<String>) {
        let reason = reason.into();
        self.unhealthy = Some(reason.clone());
        if !matches!(self.inner, Inner::ForcedOpen | Inner::Disabled) {
            let now = self.clock.now();
            self.transition(Inner::ForcedOpen, TransitionReason::Forced(reason), now);
        }
    }

    /// The region's health checks pass again. A forced-open breaker goes half-open so trial
    /// calls decide whether it closes; in any other state only the health flag clears.
    pub fn health_recovered(&mut self) {
        self.unhealthy = None;
        if matches!(self.inner, Inner::ForcedOpen) {
            let now = self.clock.now();
            self.transition(half_open(now), TransitionReason::HealthRecovered, now);
        }
    }

    /// Switches the breaker off: every call goes through, nothing is measured.
    pub fn disable(&mut self) {
        if !matches!(self.inner, Inner::Disabled) {
            let now = self.clock.now();
            self.transition(Inner::Disabled, TransitionReason::Disabled, now);
        }
    }

    /// Switches the breaker back on: closed with a clean window, or forced open if the region
    /// was reported unhealthy meanwhile.
    pub fn enable(&mut self) {
        if matches!(self.inner, Inner::Disabled) {
            let now = self.clock.now();
            self.trips = 0;
            match self.unhealthy.clone() {
                Some(reason) => {
                    self.transition(Inner::ForcedOpen, TransitionReason::Forced(reason), now)
                }
                None => self.transition(Inner::Closed, TransitionReason::Enabled, now),
            }
        }
    }

    /// The share of traffic (0.0 to 1.0) the router should offer this region: it grows linearly
    /// from 0 to 1 over `ramp_ms` after a half-open breaker closes, and is 1.0 otherwise (in the
    /// other states the permits decide).
    pub fn admit_fraction(&self) -> f64 {
        match (&self.inner, self.ramp_start) {
            (Inner::Closed, Some(start)) if !self.settings.ramp.is_zero() => {
                let elapsed = self.clock.now().saturating_sub(start);
                (elapsed.as_secs_f64() / self.settings.ramp.as_secs_f64()).min(1.0)
            }
            _ => 1.0,
        }
    }

    fn record(&mut self, permit: Permit, duration: Duration, failed: bool) {
        let now = self.clock.now();
        let slow = duration >= self.settings.slow_call_duration;
        self.counters.calls += 1;
        self.counters.failures += u64::from(failed);
        self.counters.slow_calls += u64::from(slow);
        self.advance(now);
        if permit.generation != self.generation {
            self.counters.stale += 1;
            return;
        }
        match &mut self.inner {
            Inner::Closed => {
                self.window.record(now, failed, slow);
                let totals = self.window.totals(now);
                if totals.calls >= self.settings.minimum_calls {
                    if let Some(reason) = self.exceeded(totals, totals.calls) {
                        self.trip(reason, now);
                    }
                }
            }
            Inner::HalfOpen {
                completed,
                failures,
                slow: slow_trials,
                ..
            } => {
                *completed += 1;
                *failures += u32::from(failed);
                *slow_trials += u32::from(slow);
                let trials = Totals {
                    calls: *completed,
                    failures: *failures,
                    slow: *slow_trials,
                };
                // Judged against all the trials: once the failures alone reach the threshold
                // share of them, the remaining trials cannot save it.
                let max = self.settings.half_open_max_calls;
                if let Some(reason) = self.exceeded(trials, max) {
                    self.trip(reason, now);
                } else if trials.calls >= max {
                    self.transition(Inner::Closed, TransitionReason::TrialsSucceeded, now);
                }
            }
            // Disabled measures nothing; open states have no permits of this generation.
            Inner::Disabled | Inner::Open { .. } | Inner::ForcedOpen => {}
        }
    }

    /// The threshold `totals` reach when rates are taken over `out_of` calls, if any.
    fn exceeded(&self, totals: Totals, out_of: u32) -> Option<TransitionReason> {
        let rate = |n: u32| f64::from(n) * 100.0 / f64::from(out_of.max(1));
        let s = &self.settings;
        let failure_rate = rate(totals.failures);
        if totals.failures > 0 && failure_rate >= s.failure_rate_threshold {
            return Some(TransitionReason::FailureRate {
                rate: failure_rate,
                threshold: s.failure_rate_threshold,
            });
        }
        let slow_rate = rate(totals.slow);
        if totals.slow > 0 && slow_rate >= s.slow_call_rate_threshold {
            return Some(TransitionReason::SlowCallRate {
                rate: slow_rate,
                threshold: s.slow_call_rate_threshold,
            });
        }
        None
    }

    /// Applies the transitions due to time alone.
    fn advance(&mut self, now: Duration) {
        match self.inner {
            Inner::Open { until, wait } if now >= until => {
                self.transition(
                    half_open(now),
                    TransitionReason::OpenWaitElapsed { waited: wait },
                    now,
                );
            }
            Inner::HalfOpen { since, .. } if now >= since + self.settings.half_open_timeout => {
                self.trip(TransitionReason::HalfOpenTimeout, now);
            }
            _ => {}
        }
    }

    /// Opens the breaker with the next, longer wait.
    fn trip(&mut self, reason: TransitionReason, now: Duration) {
        self.trips = self.trips.saturating_add(1);
        let wait = self.next_open_wait();
        self.transition(
            Inner::Open {
                until: now + wait,
                wait,
            },
            reason,
            now,
        );
    }

    /// base × multiplier^(trips − 1), capped, then spread by the jitter.
    fn next_open_wait(&mut self) -> Duration {
        let s = &self.settings;
        let exponent = i32::try_from(self.trips.saturating_sub(1)).unwrap_or(i32::MAX);
        let grown = s.open_wait_ms * s.open_wait_multiplier.powi(exponent);
        let capped = grown.min(s.open_wait_max_ms);
        let spread = 1.0 + s.open_wait_jitter * (2.0 * self.rng.f64() - 1.0);
        let millis = (capped * spread).max(0.0);
        Duration::from_secs_f64(millis / 1000.0)
    }

    fn transition(&mut self, to: Inner, reason: TransitionReason, now: Duration) {
        let from = self.inner.state();
        let open_wait = match to {
            Inner::Open { wait, .. } => Some(wait),
            _ => None,
        };
        if matches!(to, Inner::Closed) {
            self.window.reset();
            if from == State::HalfOpen {
                self.trips = 0;
                self.ramp_start = Some(now);
            } else {
                self.ramp_start = None;
            }
        }
        self.inner = to;
        self.generation += 1;
        let transition = Transition {
            from,
            to: self.inner.state(),
            reason,
            at: now,
            open_wait,
        };
        if let Some(observer) = &self.observer {
            observer.on_transition(&self.name, &transition);
        }
    }
}

fn half_open(now: Duration) -> Inner {
    Inner::HalfOpen {
        since: now,
        issued: 0,
        completed: 0,
        failures: 0,
        slow: 0,
    }
}
