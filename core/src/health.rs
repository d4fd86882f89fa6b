//! Health aggregation: from per-service probe results to a region's status, the
//! `HealthCheckEvent` published to EventBridge, and the signals that force a region's circuit
//! breaker open or let it recover.
//!
//! Each region is probed on an interval: DynamoDB (ListTables), EventBridge (ListEventBuses) and
//! SQS (ListQueues). A probe slower than `degraded_threshold_ms` is degraded; an error or a
//! timeout is unhealthy; a region is as bad as its worst service. Degraded is reported but never
//! forces a breaker open: slow is not down. Unhealthy forces it open after `unhealthy_rounds`
//! consecutive rounds, so one lost probe does not move traffic.
//!
//! The daemon's prober builds one [`RegionHealth`] per round; the health-checker Lambda builds
//! one per region. Both publish a [`HealthCheckEvent`] over whatever regions they checked.

use chrono::{DateTime, SecondsFormat, Utc};
use eda_config::HealthConfig;
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// EventBridge detail-type of [`HealthCheckEvent`].
pub const DETAIL_TYPE_HEALTH_CHECK: &str = "health_check";

/// An AWS service a region depends on; each is probed with one cheap read-only call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Service {
    /// Probed with ListTables; CDC changes are applied here.
    #[serde(rename = "dynamodb")]
    DynamoDb,
    /// Probed with ListEventBuses; events are published here.
    #[serde(rename = "eventbridge")]
    EventBridge,
    /// Probed with ListQueues; the dead-letter queue lives here.
    #[serde(rename = "sqs")]
    Sqs,
}

impl Service {
    /// Every service, in probing order.
    pub const ALL: [Service; 3] = [Service::DynamoDb, Service::EventBridge, Service::Sqs];

    /// Stable lower-case name, for metric labels and the published event.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::DynamoDb => "dynamodb",
            Service::EventBridge => "eventbridge",
            Service::Sqs => "sqs",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one probe call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The service answered.
    Ok,
    /// The service (or the network) answered with an error.
    Error(String),
    /// No answer within `call_timeout_ms`.
    TimedOut,
}

/// One probe call's result, as the prober's I/O edge reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    /// The service probed.
    pub service: Service,
    /// How long the call took (the timeout, for a timed-out call).
    pub latency: Duration,
    /// How it ended.
    pub outcome: ProbeOutcome,
}

/// Healthy < degraded < unhealthy; ordered so the worst of several is their maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Answering within the threshold.
    Healthy,
    /// Answering, but slower than `degraded_threshold_ms`.
    Degraded,
    /// Failing or not answering.
    Unhealthy,
}

impl Status {
    /// Stable lower-case name, for metric labels and `/readyz`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Unhealthy => "unhealthy",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The status one probe result means under the configured threshold.
pub fn classify(probe: &ProbeResult, config: &HealthConfig) -> Status {
    match probe.outcome {
        ProbeOutcome::Error(_) | ProbeOutcome::TimedOut => Status::Unhealthy,
        ProbeOutcome::Ok if probe.latency > config.degraded_threshold() => Status::Degraded,
        ProbeOutcome::Ok => Status::Healthy,
    }
}

/// One service's state in a round, as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceHealth {
    /// The service probed.
    pub service: Service,
    /// What its probe means.
    pub status: Status,
    /// How long the probe took, in milliseconds.
    pub latency_ms: u64,
    /// The error, or `timed out`, when unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One region's state after one round of probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionHealth {
    /// AWS region name.
    pub region: String,
    /// The worst of its services; unhealthy when no probe result came back at all.
    pub status: Status,
    /// One entry per probe, in the order given.
    pub services: Vec<ServiceHealth>,
    /// When the round was taken.
    #[serde(serialize_with = "rfc3339_millis")]
    pub checked_at: DateTime<Utc>,
}

impl RegionHealth {
    /// Classifies a round of probe results for `region`. A round with no results is unhealthy:
    /// a prober that could not probe has learned nothing good.
    pub fn from_probes(
        region: impl Into<String>,
        probes: &[ProbeResult],
        config: &HealthConfig,
        checked_at: DateTime<Utc>,
    ) -> RegionHealth {
        let services: Vec<ServiceHealth> = probes
            .iter()
            .map(|probe| ServiceHealth {
                service: probe.service,
                status: classify(probe, config),
                latency_ms: u64::try_from(probe.latency.as_millis()).unwrap_or(u64::MAX),
                error: match &probe.outcome {
                    ProbeOutcome::Ok => None,
                    ProbeOutcome::Error(e) => Some(e.clone()),
                    ProbeOutcome::TimedOut => Some("timed out".into()),
                },
            })
            .collect();
        let status = services
            .iter()
            .map(|s| s.status)
            .max()
            .unwrap_or(Status::Unhealthy);
        RegionHealth {
            region: region.into(),
            status,
            services,
            checked_at,
        }
    }

    /// A one-line account of what is wrong (`dynamodb: timed out; sqs: AccessDenied`), for the
    /// forced-open reason and logs; empty when every service is healthy or degraded.
    pub fn problems(&self) -> String {
        if self.services.is_empty() {
            return "no probe results".into();
        }
        let mut text = String::new();
        for s in self
            .services
            .iter()
            .filter(|s| s.status == Status::Unhealthy)
        {
            if !text.is_empty() {
                text.push_str("; ");
            }
            text.push_str(s.service.as_str());
            text.push_str(": ");
            text.push_str(s.error.as_deref().unwrap_or("unhealthy"));
        }
        text
    }
}

fn rfc3339_millis<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// What is published to EventBridge after a round: the overall status and every region
/// checked, with each service's latency and status. One region for a daemon prober's round, all
/// of them for the health-checker Lambda.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheckEvent {
    /// Unique id, so consumers can de-duplicate redelivered events.
    pub event_id: String,
    /// When the check was made (the latest of the regions' rounds).
    #[serde(serialize_with = "rfc3339_millis")]
    pub checked_at: DateTime<Utc>,
    /// The worst region status; unhealthy when no region was checked.
    pub status: Status,
    /// Every region checked.
    pub regions: Vec<RegionHealth>,
}

impl HealthCheckEvent {
    /// Aggregates rounds into one event. The id is given (a fresh UUID in production) so this
    /// stays pure.
    pub fn new(event_id: uuid::Uuid, regions: Vec<RegionHealth>) -> HealthCheckEvent {
        let status = regions
            .iter()
            .map(|r| r.status)
            .max()
            .unwrap_or(Status::Unhealthy);
        let checked_at = regions
            .iter()
            .map(|r| r.checked_at)
            .max()
            .unwrap_or(DateTime::UNIX_EPOCH);
        HealthCheckEvent {
            event_id: event_id.hyphenated().to_string(),
            checked_at,
            status,
            regions,
        }
    }

    /// The EventBridge detail-type it is published under.
    pub fn detail_type(&self) -> &'static str {
        DETAIL_TYPE_HEALTH_CHECK
    }
}

/// What the region router should tell its circuit breaker after a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakerSignal {
    /// `CircuitBreaker::force_open` with this reason.
    ForceOpen(String),
    /// `CircuitBreaker::health_recovered`.
    Recovered,
}

/// Turns successive rounds for one region into breaker signals: `unhealthy_rounds` consecutive
/// unhealthy rounds force the breaker open, and the first healthy or degraded round after that
/// lets it recover.
///
/// A signal goes out when the breaker's health input changes, and once more for a fresh
/// tracker's first verdict: a prober restarted on its own cannot know what its earlier
/// incarnation told the router, so its first healthy round says `Recovered` whatever came
/// before (harmless to a breaker that was not forced open). While the region stays unhealthy,
/// [`HealthTracker::reassert`] repeats the forcing every round, a beat the router's forced-open
/// lease waits for.
#[derive(Debug, Clone)]
pub struct HealthTracker {
    unhealthy_rounds: u32,
    consecutive_unhealthy: u32,
    forced: bool,
    /// Whether this tracker has told the router anything yet.
    stated: bool,
}

impl HealthTracker {
    /// A tracker that has seen no round yet (the region is presumed healthy).
    pub fn new(config: &HealthConfig) -> HealthTracker {
        HealthTracker {
            unhealthy_rounds: config.unhealthy_rounds.max(1),
            consecutive_unhealthy: 0,
            forced: false,
            stated: false,
        }
    }

    /// Whether this tracker has forced the breaker open and not yet signalled recovery.
    pub fn is_forced(&self) -> bool {
        self.forced
    }

    /// Takes one round; returns a signal when the breaker's health input changes, or when it is
    /// this tracker's first verdict.
    pub fn observe(&mut self, round: &RegionHealth) -> Option<BreakerSignal> {
        if round.status == Status::Unhealthy {
            self.consecutive_unhealthy = self.consecutive_unhealthy.saturating_add(1);
            if !self.forced && self.consecutive_unhealthy >= self.unhealthy_rounds {
                self.forced = true;
                self.stated = true;
                return Some(force_open(round, self.consecutive_unhealthy));
            }
            return None;
        }
        self.consecutive_unhealthy = 0;
        if self.forced || !self.stated {
            self.forced = false;
            self.stated = true;
            return Some(BreakerSignal::Recovered);
        }
        None
    }

    /// While the breaker is forced open, the same forcing again for this round (with this
    /// round's problems): the beat that keeps the router's forced-open lease. `None` otherwise.
    pub fn reassert(&self, round: &RegionHealth) -> Option<BreakerSignal> {
        self.forced
            .then(|| force_open(round, self.consecutive_unhealthy))
    }
}

fn force_open(round: &RegionHealth, rounds: u32) -> BreakerSignal {
    BreakerSignal::ForceOpen(format!(
        "region {} unhealthy for {} round(s): {}",
        round.region,
        rounds,
        round.problems()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> HealthConfig {
        HealthConfig {
            unhealthy_rounds: 2,
            ..HealthConfig::default()
        }
    }

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00.25Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("literal")
    }

    fn probe(service: Service, ms: u64, outcome: ProbeOutcome) -> ProbeResult {
        ProbeResult {
            service,
            latency: Duration::from_millis(ms),
            outcome,
        }
    }

    fn round(statuses: [(u64, ProbeOutcome); 3]) -> RegionHealth {
        let probes: Vec<ProbeResult> = Service::ALL
            .into_iter()
            .zip(statuses)
            .map(|(s, (ms, o))| probe(s, ms, o))
            .collect();
        RegionHealth::from_probes("us-east-1", &probes, &config(), at())
    }

    fn healthy() -> RegionHealth {
        round([
            (20, ProbeOutcome::Ok),
            (30, ProbeOutcome::Ok),
            (40, ProbeOutcome::Ok),
        ])
    }

    fn degraded() -> RegionHealth {
        round([
            (20, ProbeOutcome::Ok),
            (501, ProbeOutcome::Ok),
            (40, ProbeOutcome::Ok),
        ])
    }

    fn unhealthy() -> RegionHealth {
        round([
            (1_500, ProbeOutcome::TimedOut),
            (501, ProbeOutcome::Ok),
            (40, ProbeOutcome::Error("AccessDenied".into())),
        ])
    }

    #[test]
    fn a_region_is_as_bad_as_its_worst_service() {
        assert_eq!(healthy().status, Status::Healthy);
        assert_eq!(degraded().status, Status::Degraded);
        let bad = unhealthy();
        assert_eq!(bad.status, Status::Unhealthy);
        assert_eq!(bad.problems(), "dynamodb: timed out; sqs: AccessDenied");
        let none = RegionHealth::from_probes("r", &[], &config(), at());
        assert_eq!(none.status, Status::Unhealthy);
    }

    #[test]
    fn exactly_the_threshold_is_still_healthy() {
        let p = probe(Service::Sqs, 500, ProbeOutcome::Ok);
        assert_eq!(classify(&p, &config()), Status::Healthy);
    }

    #[test]
    fn the_published_event_has_every_region_and_service() {
        let mut west = healthy();
        west.region = "us-west-2".into();
        let event = HealthCheckEvent::new(uuid::Uuid::nil(), vec![west, unhealthy()]);
        assert_eq!(event.detail_type(), "health_check");
        let json = serde_json::to_value(&event).expect("serializable");
        assert_eq!(json["status"], "unhealthy");
        assert_eq!(json["checked_at"], "2024-05-01T12:00:00.250Z");
        assert_eq!(json["regions"][0]["status"], "healthy");
        assert_eq!(
            json["regions"][1]["services"][0],
            json!({"service": "dynamodb", "status": "unhealthy", "latency_ms": 1500, "error": "timed out"})
        );
        assert_eq!(json["regions"][1]["services"][1]["status"], "degraded");
        let back: HealthCheckEvent = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, event);
    }

    #[test]
    fn tracker_signals_its_first_verdict_then_only_changes() {
        let mut t = HealthTracker::new(&config());
        assert_eq!(
            t.observe(&healthy()),
            Some(BreakerSignal::Recovered),
            "a fresh tracker states its first verdict"
        );
        assert_eq!(t.observe(&healthy()), None);
        assert_eq!(t.observe(&unhealthy()), None, "one round is not enough");
        assert_eq!(t.observe(&degraded()), None, "degraded resets the count");
        assert_eq!(t.observe(&unhealthy()), None);
        let Some(BreakerSignal::ForceOpen(reason)) = t.observe(&unhealthy()) else {
            panic!("two unhealthy rounds force it open");
        };
        assert_eq!(
            reason,
            "region us-east-1 unhealthy for 2 round(s): dynamodb: timed out; sqs: AccessDenied"
        );
        assert_eq!(t.observe(&unhealthy()), None, "already forced");
        assert_eq!(t.observe(&degraded()), Some(BreakerSignal::Recovered));
        assert_eq!(t.observe(&healthy()), None);
    }

    #[test]
    fn a_fresh_tracker_lifts_what_an_earlier_one_forced() {
        // The prober that forced the breaker open died; its successor sees a healthy region.
        let mut earlier = HealthTracker::new(&config());
        earlier.observe(&unhealthy());
        assert!(matches!(
            earlier.observe(&unhealthy()),
            Some(BreakerSignal::ForceOpen(_))
        ));
        let mut fresh = HealthTracker::new(&config());
        assert_eq!(fresh.observe(&degraded()), Some(BreakerSignal::Recovered));
        // One that starts on an unhealthy region waits for its threshold, then forces.
        let mut fresh = HealthTracker::new(&config());
        assert_eq!(fresh.observe(&unhealthy()), None);
        assert!(matches!(
            fresh.observe(&unhealthy()),
            Some(BreakerSignal::ForceOpen(_))
        ));
    }

    #[test]
    fn a_forced_tracker_reasserts_every_round_until_the_region_recovers() {
        let mut t = HealthTracker::new(&config());
        t.observe(&healthy());
        assert_eq!(t.reassert(&healthy()), None);
        t.observe(&unhealthy());
        assert_eq!(t.reassert(&unhealthy()), None, "not forced yet");
        t.observe(&unhealthy());
        t.observe(&unhealthy());
        let Some(BreakerSignal::ForceOpen(reason)) = t.reassert(&unhealthy()) else {
            panic!("forced: the beat repeats the forcing");
        };
        assert!(reason.contains("unhealthy for 3 round(s)"), "{reason}");
        t.observe(&healthy());
        assert_eq!(t.reassert(&healthy()), None);
    }

    #[test]
    fn degraded_never_forces_open() {
        let mut t = HealthTracker::new(&HealthConfig::default());
        assert_eq!(t.observe(&degraded()), Some(BreakerSignal::Recovered));
        for _ in 0..100 {
            assert_eq!(t.observe(&degraded()), None);
        }
        assert!(!t.is_forced());
    }
}
