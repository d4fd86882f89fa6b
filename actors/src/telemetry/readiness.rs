//! What `/readyz` and `/healthz` answer: [`Readiness`] (should this pod get traffic?) and
//! [`Liveness`] (is the supervision tree still running, and can its consumer get into its
//! group?).
//!
//! Both are written by actors (the consumer group on assignment and when it cannot rejoin, the
//! health probers after each probe, the root supervisor on its heartbeat) and read by the HTTP
//! surface; they are plain
//! shared state behind atomics and one small lock, never a message round trip, so a slow actor
//! cannot make a probe time out.

use super::labels::Service;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A sink that must answer before the pod is ready: one service in one region.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sink {
    /// The service.
    pub service: Service,
    /// The region (from configuration).
    pub region: String,
}

impl Sink {
    /// A sink of `service` in `region`.
    pub fn new(service: Service, region: impl Into<String>) -> Self {
        Self {
            service,
            region: region.into(),
        }
    }
}

impl fmt::Display for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in {}", self.service, self.region)
    }
}

/// The last probe of one sink.
#[derive(Debug, Clone, Copy)]
struct Probe {
    /// Whether it answered (healthy or degraded both count: the sink is reachable).
    reachable: bool,
    /// When the probe finished.
    at: Instant,
}

/// Whether this pod can do useful work: Kubernetes routes no traffic and the HPA counts no
/// capacity until partitions are assigned and every required sink answered recently.
#[derive(Debug)]
pub struct Readiness {
    /// Partitions currently assigned to this consumer (set by the consumer group).
    partitions: AtomicUsize,
    /// Sinks that must be reachable; fixed at start-up from the configured regions.
    required: Vec<Sink>,
    /// How old a probe may be and still count: a prober that stopped probing is not evidence.
    max_probe_age: Duration,
    /// Last probe per sink. A lock, not atomics: written once per probe interval per sink.
    probes: Mutex<HashMap<Sink, Probe>>,
    /// Partitions waiting for a failing dependency, with why: written when a hold starts and
    /// ends, not per message.
    held: Mutex<BTreeMap<(String, i32), String>>,
}

/// Why the pod is not ready: every missing condition, for the `/readyz` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    /// One short phrase per unmet condition.
    pub missing: Vec<String>,
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not ready: ")?;
        f.write_str(&self.missing.join("; "))
    }
}

impl Readiness {
    /// Readiness that requires `required` sinks to have answered within `max_probe_age`.
    pub fn new(required: impl IntoIterator<Item = Sink>, max_probe_age: Duration) -> Self {
        Self {
            partitions: AtomicUsize::new(0),
            required: required.into_iter().collect(),
            max_probe_age,
            probes: Mutex::new(HashMap::new()),
            held: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records that `topic`'s `partition` is held (`Some(why)`: it waits for a failing
    /// dependency) or moves again (`None`).
    pub fn set_held(&self, topic: &str, partition: i32, why: Option<String>) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        match why {
            Some(why) => {
                held.insert((topic.to_owned(), partition), why);
            }
            None => {
                held.remove(&(topic.to_owned(), partition));
            }
        }
    }

    /// Records the consumer's current assignment size (after every rebalance).
    pub fn set_partitions_assigned(&self, count: usize) {
        self.partitions.store(count, Ordering::Relaxed);
    }

    /// Partitions currently assigned.
    pub fn partitions_assigned(&self) -> usize {
        self.partitions.load(Ordering::Relaxed)
    }

    /// Records a probe that finished now.
    pub fn record_probe(&self, service: Service, region: &str, reachable: bool) {
        self.record_probe_at(service, region, reachable, Instant::now());
    }

    /// Records a probe that finished at `at`.
    pub fn record_probe_at(&self, service: Service, region: &str, reachable: bool, at: Instant) {
        let mut probes = self.probes.lock().unwrap_or_else(PoisonError::into_inner);
        probes.insert(Sink::new(service, region), Probe { reachable, at });
    }

    /// `Ok` when ready now, else every reason it is not.
    pub fn check(&self) -> Result<(), NotReady> {
        self.check_at(Instant::now())
    }

    /// [`check`](Self::check) as of `now`.
    pub fn check_at(&self, now: Instant) -> Result<(), NotReady> {
        let mut missing = Vec::new();
        if self.partitions_assigned() == 0 {
            missing.push("no partitions assigned".to_owned());
        }
        {
            let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            for ((topic, partition), why) in held.iter() {
                missing.push(format!("{topic}[{partition}] held: {why}"));
            }
        }
        let probes = self.probes.lock().unwrap_or_else(PoisonError::into_inner);
        for sink in &self.required {
            match probes.get(sink) {
                None => missing.push(format!("{sink} not probed yet")),
                Some(probe) if !probe.reachable => missing.push(format!("{sink} unreachable")),
                Some(probe) if now.saturating_duration_since(probe.at) > self.max_probe_age => {
                    missing.push(format!("{sink} not probed recently"));
                }
                Some(_) => {}
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(NotReady { missing })
        }
    }

    /// Whether the pod should receive traffic now.
    pub fn is_ready(&self) -> bool {
        self.check().is_ok()
    }
}

/// Whether the pod still does its job or must be replaced: the root supervisor beats on an
/// interval from its own mailbox, so a dead or wedged root stops the beats and `/healthz` fails;
/// and the consumer group marks its member stuck when it stayed out of its group past
/// `kafka.out_of_group_liveness_ms` while the brokers answered (restarting it did not help), so
/// `/healthz` fails too. Either way Kubernetes replaces the pod.
#[derive(Debug)]
pub struct Liveness {
    /// The clock origin the timestamps below count from.
    origin: Instant,
    /// Milliseconds from `origin` to the last beat, plus one (0 = never beaten).
    last_beat_ms: AtomicU64,
    /// Cleared when the root supervisor stops, so shutdown is not mistaken for a hang.
    running: AtomicBool,
    /// Longest silence still counted as alive (a few heartbeat intervals).
    max_silence: Duration,
    /// Milliseconds from `origin` to when the consumer-group member fell out of its group, plus
    /// one (0 = in its group). Kept across restarts of the group actor: a fresh member that
    /// cannot join either has been out since the first one left.
    out_of_group_since_ms: AtomicU64,
    /// Milliseconds from `origin` to the last time the brokers did not answer the group's
    /// membership check, plus one (0 = not since the member fell out of its group).
    brokers_quiet_ms: AtomicU64,
    /// Milliseconds the member had been out of its group when the group actor found it stuck
    /// (out past its bound while the brokers answer), plus one (0 = not stuck).
    stuck_after_ms: AtomicU64,
}

/// Why `/healthz` fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAlive {
    /// The root supervisor stopped or stopped beating.
    TreeDown,
    /// The consumer-group member stayed out of its group this long while the brokers answered.
    OutOfGroup(Duration),
}

impl fmt::Display for NotAlive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotAlive::TreeDown => f.write_str("the supervision tree is not running"),
            NotAlive::OutOfGroup(out) => write!(
                f,
                "the consumer has been out of its group for {} s while the brokers answer",
                out.as_secs()
            ),
        }
    }
}

impl Liveness {
    /// Liveness that fails once no beat arrived for `max_silence`.
    pub fn new(max_silence: Duration) -> Self {
        Self {
            origin: Instant::now(),
            last_beat_ms: AtomicU64::new(0),
            running: AtomicBool::new(false),
            max_silence,
            out_of_group_since_ms: AtomicU64::new(0),
            brokers_quiet_ms: AtomicU64::new(0),
            stuck_after_ms: AtomicU64::new(0),
        }
    }

    /// Records a heartbeat now.
    pub fn beat(&self) {
        self.beat_at(Instant::now());
    }

    /// Records a heartbeat at `at`.
    pub fn beat_at(&self, at: Instant) {
        let ms = self.stamp(at);
        self.last_beat_ms.fetch_max(ms, Ordering::Relaxed);
        self.running.store(true, Ordering::Relaxed);
    }

    /// Marks the tree as stopped (the root supervisor's `post_stop`).
    pub fn mark_stopped(&self) {
        self.running.store(false, Ordering::Relaxed);
    }

    /// Records that the consumer-group member is in its group (it got an assignment, possibly
    /// empty): it is no longer out, nor stuck.
    pub fn group_joined(&self) {
        self.out_of_group_since_ms.store(0, Ordering::Relaxed);
        self.brokers_quiet_ms.store(0, Ordering::Relaxed);
        self.stuck_after_ms.store(0, Ordering::Relaxed);
    }

    /// Records that the brokers did not answer at `at`: time out of the group counts against
    /// the pod only from then on ([`out_while_brokers_answer`](Self::out_while_brokers_answer)).
    pub fn brokers_quiet_at(&self, at: Instant) {
        self.brokers_quiet_ms
            .fetch_max(self.stamp(at), Ordering::Relaxed);
    }

    /// How long the member has been out of its group while the brokers answered, as of `now`:
    /// since it fell out, or since the brokers last did not answer, whichever is later (`None`:
    /// in its group).
    pub fn out_while_brokers_answer(&self, now: Instant) -> Option<Duration> {
        match self.out_of_group_since_ms.load(Ordering::Relaxed) {
            0 => None,
            since => {
                let from = since.max(self.brokers_quiet_ms.load(Ordering::Relaxed));
                Some(Duration::from_millis(self.stamp(now).saturating_sub(from)))
            }
        }
    }

    /// Records that the member is out of its group from `at` on (started, or its partitions were
    /// revoked), unless it was out already: the earlier time stands.
    pub fn group_left_at(&self, at: Instant) {
        let ms = self.stamp(at);
        let _ = self.out_of_group_since_ms.compare_exchange(
            0,
            ms,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// How long the member has been out of its group as of `now`, restarts included (`None`:
    /// it is in its group).
    pub fn out_of_group_for(&self, now: Instant) -> Option<Duration> {
        match self.out_of_group_since_ms.load(Ordering::Relaxed) {
            0 => None,
            since => Some(Duration::from_millis(self.stamp(now).saturating_sub(since))),
        }
    }

    /// Marks the member stuck after `out` out of its group (`/healthz` fails until it joins), or
    /// not stuck (`None`: the brokers do not answer, so replacing the pod would not help).
    pub fn set_group_stuck(&self, out: Option<Duration>) {
        let value = out.map_or(0, |out| millis(out).saturating_add(1));
        self.stuck_after_ms.store(value, Ordering::Relaxed);
    }

    /// Whether the tree is alive now.
    pub fn is_alive(&self) -> bool {
        self.check().is_ok()
    }

    /// [`is_alive`](Self::is_alive) as of `now`.
    pub fn is_alive_at(&self, now: Instant) -> bool {
        self.check_at(now).is_ok()
    }

    /// `Ok` when alive now, else why not (the `/healthz` body).
    pub fn check(&self) -> Result<(), NotAlive> {
        self.check_at(Instant::now())
    }

    /// [`check`](Self::check) as of `now`.
    pub fn check_at(&self, now: Instant) -> Result<(), NotAlive> {
        let last = self.last_beat_ms.load(Ordering::Relaxed);
        if last == 0 || !self.running.load(Ordering::Relaxed) {
            return Err(NotAlive::TreeDown);
        }
        if self.stamp(now).saturating_sub(last) > millis(self.max_silence) {
            return Err(NotAlive::TreeDown);
        }
        match self.stuck_after_ms.load(Ordering::Relaxed) {
            0 => Ok(()),
            stuck => Err(NotAlive::OutOfGroup(Duration::from_millis(stuck - 1))),
        }
    }

    /// `at` as milliseconds from `origin`, plus one (so 0 can mean "never").
    fn stamp(&self, at: Instant) -> u64 {
        millis(at.saturating_duration_since(self.origin)).saturating_add(1)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readiness() -> Readiness {
        Readiness::new(
            [
                Sink::new(Service::DynamoDb, "us-west-2"),
                Sink::new(Service::Sqs, "us-west-2"),
            ],
            Duration::from_secs(30),
        )
    }

    #[test]
    fn not_ready_lists_every_missing_condition() {
        let r = readiness();
        let err = r.check().unwrap_err();
        assert_eq!(
            err.missing,
            [
                "no partitions assigned",
                "dynamodb in us-west-2 not probed yet",
                "sqs in us-west-2 not probed yet"
            ]
        );
    }

    #[test]
    fn ready_once_assigned_and_every_sink_answered() {
        let r = readiness();
        let now = Instant::now();
        r.set_partitions_assigned(3);
        r.record_probe_at(Service::DynamoDb, "us-west-2", true, now);
        r.record_probe_at(Service::Sqs, "us-west-2", false, now);
        assert_eq!(
            r.check_at(now).unwrap_err().missing,
            ["sqs in us-west-2 unreachable"]
        );
        r.record_probe_at(Service::Sqs, "us-west-2", true, now);
        assert_eq!(r.check_at(now), Ok(()));
        // A prober that went quiet is not evidence of a reachable sink.
        let later = now + Duration::from_secs(31);
        assert_eq!(r.check_at(later).unwrap_err().missing.len(), 2);
    }

    #[test]
    fn liveness_needs_a_recent_beat_and_a_running_tree() {
        let l = Liveness::new(Duration::from_secs(5));
        let now = Instant::now();
        assert!(!l.is_alive_at(now));
        l.beat_at(now);
        assert!(l.is_alive_at(now + Duration::from_secs(5)));
        assert!(!l.is_alive_at(now + Duration::from_secs(6)));
        l.mark_stopped();
        assert!(!l.is_alive_at(now));
    }

    #[test]
    fn a_member_stuck_out_of_its_group_fails_liveness_until_it_joins() {
        let l = Liveness::new(Duration::from_secs(5));
        let start = Instant::now();
        l.beat_at(start);
        assert_eq!(l.out_of_group_for(start), None);
        l.group_left_at(start);
        // A restarted member leaving again does not reset the clock.
        l.group_left_at(start + Duration::from_secs(2));
        let later = start + Duration::from_secs(4);
        assert_eq!(l.out_of_group_for(later), Some(Duration::from_secs(4)));
        assert!(l.is_alive_at(later), "out of the group is not enough");
        l.set_group_stuck(l.out_of_group_for(later));
        assert_eq!(
            l.check_at(later),
            Err(NotAlive::OutOfGroup(Duration::from_secs(4)))
        );
        assert_eq!(
            l.check_at(later).unwrap_err().to_string(),
            "the consumer has been out of its group for 4 s while the brokers answer"
        );
        l.set_group_stuck(None);
        assert!(
            l.is_alive_at(later),
            "the brokers went quiet: not the pod's fault"
        );
        l.set_group_stuck(Some(Duration::from_secs(9)));
        l.group_joined();
        assert!(l.is_alive_at(later));
        assert_eq!(l.out_of_group_for(later), None);
    }

    #[test]
    fn time_out_of_the_group_counts_against_the_pod_only_while_the_brokers_answer() {
        let l = Liveness::new(Duration::from_secs(5));
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        assert_eq!(l.out_while_brokers_answer(at(0)), None);
        l.group_left_at(at(0));
        l.brokers_quiet_at(at(40));
        l.brokers_quiet_at(at(30));
        assert_eq!(l.out_of_group_for(at(50)), Some(Duration::from_secs(50)));
        assert_eq!(
            l.out_while_brokers_answer(at(50)),
            Some(Duration::from_secs(10))
        );
        l.group_joined();
        l.group_left_at(at(60));
        assert_eq!(
            l.out_while_brokers_answer(at(70)),
            Some(Duration::from_secs(10)),
            "a silence before the member fell out again does not count"
        );
    }
}
