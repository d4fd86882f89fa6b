//! [`Metrics`]: the one prometheus-client registry of a process and the metric families in it.
//!
//! The families are crate-private: code outside telemetry records through the event structs of
//! [`events`](super::events), so every series is written in exactly one place.

use super::names::{label, metric, PREFIX};
use super::rate_limit::LogLimiter;
use prometheus_client::encoding::text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::AtomicU64;

/// One label: a constant name and a value that is either a constant or a configured name.
pub(crate) type Label = (&'static str, Cow<'static, str>);

/// A family of histograms built with a fixed bucket layout.
pub(crate) type HistogramFamily<const N: usize> = Family<[Label; N], Histogram, fn() -> Histogram>;

/// Kafka processing time (read to settled): a healthy message settles in milliseconds, a stalled
/// sink takes seconds. Fine buckets, ten per decade (1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8) from
/// 100 µs to 10 s, then 15, 20, 30 and 60 s: neighbouring bounds are at most a third apart, so a
/// quantile read from them (the latency goals are p99s of a few milliseconds) is off by less than
/// its bucket's width, where the 1-2.5-5 steps this replaced could not tell 5 ms from 10 ms.
const PROCESSING_BUCKETS: [f64; 55] = [
    0.000_1, 0.000_125, 0.000_15, 0.000_2, 0.000_25, 0.000_3, 0.000_4, 0.000_5, 0.000_6, 0.000_8,
    0.001, 0.001_25, 0.001_5, 0.002, 0.002_5, 0.003, 0.004, 0.005, 0.006, 0.008, 0.01, 0.012_5,
    0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5,
    0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 60.0,
];

/// A message's age when it settles: the processing buckets, and on past an hour, as a backlog
/// read after an outage is as old as the outage.
const END_TO_END_BUCKETS: [f64; 60] = [
    0.000_1, 0.000_125, 0.000_15, 0.000_2, 0.000_25, 0.000_3, 0.000_4, 0.000_5, 0.000_6, 0.000_8,
    0.001, 0.001_25, 0.001_5, 0.002, 0.002_5, 0.003, 0.004, 0.005, 0.006, 0.008, 0.01, 0.012_5,
    0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5,
    0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 60.0,
    120.0, 300.0, 600.0, 1_800.0, 3_600.0,
];

/// Cross-region delivery: tens of milliseconds normally, up to tens of seconds when retried.
const CROSS_REGION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Health probes: 500 ms is the degraded threshold, so it is a bucket boundary.
const PROBE_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Lambda handler time: the authorizer aims far under 10 ms, the stream processor can take
/// seconds on a large batch.
const LAMBDA_BUCKETS: [f64; 14] = [
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

fn processing_histogram() -> Histogram {
    Histogram::new(PROCESSING_BUCKETS)
}

fn end_to_end_histogram() -> Histogram {
    Histogram::new(END_TO_END_BUCKETS)
}

fn cross_region_histogram() -> Histogram {
    Histogram::new(CROSS_REGION_BUCKETS)
}

fn probe_histogram() -> Histogram {
    Histogram::new(PROBE_BUCKETS)
}

fn lambda_histogram() -> Histogram {
    Histogram::new(LAMBDA_BUCKETS)
}

/// Every metric eda exposes, registered once at start-up and shared behind an `Arc` by all
/// actors, the HTTP surface and the Lambda shims.
///
/// Build it once in `main` (or at a Lambda's cold start) with [`Metrics::new`], hand clones of
/// the `Arc` to whoever emits events, and serve [`Metrics::encode`] on `/metrics`.
pub struct Metrics {
    /// The registry the families below are registered in; only encoding reads it.
    registry: Registry,
    /// Throttles warn-level logs of events that can repeat per batch (DLQ, sink errors).
    pub(crate) limiters: Limiters,
    /// `eda_kafka_messages_consumed_total{topic}`.
    pub(crate) kafka_messages_consumed: Family<[Label; 1], Counter>,
    /// `eda_kafka_consumer_lag_messages{topic,partition}`.
    pub(crate) kafka_consumer_lag: Family<[Label; 2], Gauge>,
    /// `eda_kafka_oldest_unsettled_seconds{topic,partition}`.
    pub(crate) kafka_oldest_unsettled: Family<[Label; 2], Gauge<f64, AtomicU64>>,
    /// `eda_kafka_partition_held{topic,partition}`.
    pub(crate) kafka_partition_held: Family<[Label; 2], Gauge>,
    /// `eda_trace_headers_malformed_total{topic}`.
    pub(crate) trace_headers_malformed: Family<[Label; 1], Counter>,
    /// `eda_kafka_held_retries_total{topic,error_class}`.
    pub(crate) kafka_held_retries: Family<[Label; 2], Counter>,
    /// `eda_kafka_partitions_assigned`.
    pub(crate) kafka_partitions_assigned: Gauge,
    /// `eda_kafka_rejoin_restarts_total`.
    pub(crate) kafka_rejoin_restarts: Counter,
    /// `eda_kafka_processing_duration_seconds{topic}`.
    pub(crate) kafka_processing_duration: HistogramFamily<1>,
    /// `eda_kafka_end_to_end_duration_seconds{topic}`.
    pub(crate) kafka_end_to_end_duration: HistogramFamily<1>,
    /// `eda_apply_stage_duration_seconds{stage}`.
    pub(crate) apply_stage_duration: HistogramFamily<1>,
    /// `eda_aws_call_duration_seconds{region,operation}`.
    pub(crate) aws_call_duration: HistogramFamily<2>,
    /// `eda_cdc_events_total{operation}`.
    pub(crate) cdc_events: Family<[Label; 1], Counter>,
    /// `eda_events_republished_total`.
    pub(crate) events_republished: Counter,
    /// `eda_oversize_changes_total{kind}`.
    pub(crate) oversize_changes: Family<[Label; 1], Counter>,
    /// `eda_dynamodb_operations_total{operation,outcome}`.
    pub(crate) dynamodb_operations: Family<[Label; 2], Counter>,
    /// `eda_dynamodb_errors_total{operation,error_class}`.
    pub(crate) dynamodb_errors: Family<[Label; 2], Counter>,
    /// `eda_eventbridge_events_published_total{bus,region}`.
    pub(crate) eventbridge_published: Family<[Label; 2], Counter>,
    /// `eda_eventbridge_errors_total{bus,region}`.
    pub(crate) eventbridge_errors: Family<[Label; 2], Counter>,
    /// `eda_circuit_breaker_state{region}`.
    pub(crate) breaker_state: Family<[Label; 1], Gauge>,
    /// `eda_circuit_breaker_transitions_total{region,state}`.
    pub(crate) breaker_transitions: Family<[Label; 2], Counter>,
    /// `eda_circuit_breaker_failures_total{region}`.
    pub(crate) breaker_failures: Family<[Label; 1], Counter>,
    /// `eda_circuit_breaker_rejected_total{region}`.
    pub(crate) breaker_rejected: Family<[Label; 1], Counter>,
    /// `eda_cross_region_events_total{source_region,target_region}`.
    pub(crate) cross_region_events: Family<[Label; 2], Counter>,
    /// `eda_cross_region_latency_seconds{source_region,target_region}`.
    pub(crate) cross_region_latency: HistogramFamily<2>,
    /// `eda_region_events_owed{region}`.
    pub(crate) region_events_owed: Family<[Label; 1], Gauge>,
    /// `eda_region_events_owed_recorded_total{region}`.
    pub(crate) region_events_owed_recorded: Family<[Label; 1], Counter>,
    /// `eda_region_events_recovered_total{region}`.
    pub(crate) region_events_recovered: Family<[Label; 1], Counter>,
    /// `eda_dlq_messages_total{source,error_class}`.
    pub(crate) dlq_messages: Family<[Label; 2], Counter>,
    /// `eda_dlq_unsendable_total`.
    pub(crate) dlq_unsendable: Counter,
    /// `eda_dlq_redrive_refused_total`.
    pub(crate) dlq_redrive_refused: Counter,
    /// `eda_actor_restarts_total{actor}`.
    pub(crate) actor_restarts: Family<[Label; 1], Counter>,
    /// `eda_health_probe_duration_seconds{region,service}`.
    pub(crate) health_probe_duration: HistogramFamily<2>,
    /// `eda_health_status{region,service}`.
    pub(crate) health_status: Family<[Label; 2], Gauge>,
    /// `eda_lambda_invocations_total{function}`.
    pub(crate) lambda_invocations: Family<[Label; 1], Counter>,
    /// `eda_lambda_errors_total{function}`.
    pub(crate) lambda_errors: Family<[Label; 1], Counter>,
    /// `eda_lambda_duration_seconds{function}`.
    pub(crate) lambda_duration: HistogramFamily<1>,
}

/// One log limiter per warn-level event kind, so a storm of one kind cannot hide another.
#[derive(Default)]
pub(crate) struct Limiters {
    /// Dead-lettered messages.
    pub(crate) dlq: LogLimiter,
    /// Failed DynamoDB calls.
    pub(crate) dynamodb: LogLimiter,
    /// Rejected EventBridge entries.
    pub(crate) eventbridge: LogLimiter,
}

impl Metrics {
    /// Registers every family under the `eda_` prefix. Call once per process: two registries
    /// would split the series between two scrapes. Help texts carry no final period:
    /// prometheus-client appends one.
    pub fn new() -> Self {
        let mut metrics = Self {
            registry: Registry::with_prefix(PREFIX),
            limiters: Limiters::default(),
            kafka_messages_consumed: Family::default(),
            kafka_consumer_lag: Family::default(),
            kafka_oldest_unsettled: Family::default(),
            kafka_partition_held: Family::default(),
            kafka_held_retries: Family::default(),
            trace_headers_malformed: Family::default(),
            kafka_partitions_assigned: Gauge::default(),
            kafka_rejoin_restarts: Counter::default(),
            kafka_processing_duration: Family::new_with_constructor(processing_histogram),
            kafka_end_to_end_duration: Family::new_with_constructor(end_to_end_histogram),
            apply_stage_duration: Family::new_with_constructor(processing_histogram),
            aws_call_duration: Family::new_with_constructor(processing_histogram),
            cdc_events: Family::default(),
            events_republished: Counter::default(),
            oversize_changes: Family::default(),
            dynamodb_operations: Family::default(),
            dynamodb_errors: Family::default(),
            eventbridge_published: Family::default(),
            eventbridge_errors: Family::default(),
            breaker_state: Family::default(),
            breaker_transitions: Family::default(),
            breaker_failures: Family::default(),
            breaker_rejected: Family::default(),
            cross_region_events: Family::default(),
            cross_region_latency: Family::new_with_constructor(cross_region_histogram),
            region_events_owed: Family::default(),
            region_events_owed_recorded: Family::default(),
            region_events_recovered: Family::default(),
            dlq_messages: Family::default(),
            dlq_unsendable: Counter::default(),
            dlq_redrive_refused: Counter::default(),
            actor_restarts: Family::default(),
            health_probe_duration: Family::new_with_constructor(probe_histogram),
            health_status: Family::default(),
            lambda_invocations: Family::default(),
            lambda_errors: Family::default(),
            lambda_duration: Family::new_with_constructor(lambda_histogram),
        };
        let r = &mut metrics.registry;
        r.register(
            metric::KAFKA_MESSAGES_CONSUMED,
            "Messages read from Kafka",
            metrics.kafka_messages_consumed.clone(),
        );
        r.register(
            metric::KAFKA_CONSUMER_LAG,
            "Messages past the offset committed for the partition, read and unsettled or not read yet; its end is the broker's high watermark or one past the last offset read, whichever is higher",
            metrics.kafka_consumer_lag.clone(),
        );
        r.register(
            metric::KAFKA_PARTITIONS_ASSIGNED,
            "Partitions assigned to this member of the consumer group (0 while it is out of its group)",
            metrics.kafka_partitions_assigned.clone(),
        );
        r.register(
            metric::KAFKA_REJOIN_RESTARTS,
            "Consumer-group members restarted because they stayed out of their group past kafka.rejoin_timeout_ms while the brokers answered",
            metrics.kafka_rejoin_restarts.clone(),
        );
        r.register_with_unit(
            metric::KAFKA_OLDEST_UNSETTLED,
            "How long the partition's oldest message read and not yet settled has waited (0 when none waits); it grows while the partition is stuck",
            Unit::Seconds,
            metrics.kafka_oldest_unsettled.clone(),
        );
        r.register(
            metric::KAFKA_PARTITION_HELD,
            "1 while the partition waits for a failing dependency its next message needs (Schema Registry, metadata store); nothing is dead-lettered meanwhile",
            metrics.kafka_partition_held.clone(),
        );
        r.register(
            metric::KAFKA_HELD_RETRIES,
            "Attempts on a held message that failed again, by error class",
            metrics.kafka_held_retries.clone(),
        );
        r.register(
            metric::TRACE_HEADERS_MALFORMED,
            "Trace headers (traceparent, tracestate, correlation id) present on a message but malformed and left out; the message was applied and published without them",
            metrics.trace_headers_malformed.clone(),
        );
        r.register_with_unit(
            metric::KAFKA_PROCESSING_DURATION,
            "Time from the partition reader taking a message from librdkafka (before its batch linger) to every effect of it being acknowledged",
            Unit::Seconds,
            metrics.kafka_processing_duration.clone(),
        );
        r.register_with_unit(
            metric::KAFKA_END_TO_END_DURATION,
            "Time from a message's Kafka timestamp (its producer's create time, or the broker's append time on a topic set to LogAppendTime) to every effect of it being acknowledged: the read-to-settled time plus its time in the producer and the broker. A producer's clock skews it; a timestamp ahead of this host's clock counts as 0",
            Unit::Seconds,
            metrics.kafka_end_to_end_duration.clone(),
        );
        r.register_with_unit(
            metric::APPLY_STAGE_DURATION,
            "The read-to-settled time of messages read from Kafka by stage of their batch: wait (the oldest of its messages read to the applier starting the batch), write (its DynamoDB writes, retries included), deliver (written to every event published, routed and dead-lettered); one observation per message",
            Unit::Seconds,
            metrics.apply_stage_duration.clone(),
        );
        r.register_with_unit(
            metric::AWS_CALL_DURATION,
            "One HTTP exchange of a per-message AWS call (PutItem, BatchExecuteStatement, PutEvents), from taking a connection to the answer read, whatever the answer; a timed-out attempt counts its full timeout",
            Unit::Seconds,
            metrics.aws_call_duration.clone(),
        );
        r.register(
            metric::CDC_EVENTS,
            "CDC changes applied, by Qlik operation",
            metrics.cdc_events.clone(),
        );
        r.register(
            metric::EVENTS_REPUBLISHED,
            "Change events published again because the table already held their change (replays, redeliveries, retried writes); same event ids",
            metrics.events_republished.clone(),
        );
        r.register(
            metric::OVERSIZE_CHANGES,
            "Changes too large for a limit: events published by claim check (over EventBridge's 256 KB), rows written with columns zstd-compressed in _zcols (over DynamoDB's 400 KB)",
            metrics.oversize_changes.clone(),
        );
        r.register(
            metric::DYNAMODB_OPERATIONS,
            "DynamoDB calls, by API and outcome (condition_failed is a replay absorbed, not an error; a BatchExecuteStatement counts each statement, and a statement refused and written again as a PutItem counts under both)",
            metrics.dynamodb_operations.clone(),
        );
        r.register(
            metric::DYNAMODB_ERRORS,
            "Failed DynamoDB calls, by API and error class",
            metrics.dynamodb_errors.clone(),
        );
        r.register(
            metric::EVENTBRIDGE_PUBLISHED,
            "Entries EventBridge accepted",
            metrics.eventbridge_published.clone(),
        );
        r.register(
            metric::EVENTBRIDGE_ERRORS,
            "Entries EventBridge rejected, or that a failed call did not deliver",
            metrics.eventbridge_errors.clone(),
        );
        r.register(
            metric::BREAKER_STATE,
            "Circuit breaker state: 0 closed, 1 open, 2 half-open, 3 forced open, 4 disabled",
            metrics.breaker_state.clone(),
        );
        r.register(
            metric::BREAKER_TRANSITIONS,
            "Circuit breaker transitions, by the state entered",
            metrics.breaker_transitions.clone(),
        );
        r.register(
            metric::BREAKER_FAILURES,
            "Calls a circuit breaker recorded as failed",
            metrics.breaker_failures.clone(),
        );
        r.register(
            metric::BREAKER_REJECTED,
            "Calls a circuit breaker refused",
            metrics.breaker_rejected.clone(),
        );
        r.register(
            metric::CROSS_REGION_EVENTS,
            "Events routed from one region to another",
            metrics.cross_region_events.clone(),
        );
        r.register_with_unit(
            metric::CROSS_REGION_LATENCY,
            "Age of a cross-region event when the target region accepted it",
            Unit::Seconds,
            metrics.cross_region_latency.clone(),
        );
        r.register(
            metric::REGION_EVENTS_OWED,
            "Cross-region events owed to the region (its bus could not take them when they were sent), waiting in its owed queue, as last sampled",
            metrics.region_events_owed.clone(),
        );
        r.register(
            metric::REGION_EVENTS_OWED_RECORDED,
            "Cross-region events recorded as owed to the region while its bus could not take them",
            metrics.region_events_owed_recorded.clone(),
        );
        r.register(
            metric::REGION_EVENTS_RECOVERED,
            "Owed events delivered to the region after it came back",
            metrics.region_events_recovered.clone(),
        );
        r.register(
            metric::DLQ_MESSAGES,
            "Dead-letter records written, by where the message came from and why it failed",
            metrics.dlq_messages.clone(),
        );
        r.register(
            metric::DLQ_UNSENDABLE,
            "Dead letters SQS refused in every form, even without payload; each is logged in full instead",
            metrics.dlq_unsendable.clone(),
        );
        r.register(
            metric::DLQ_REDRIVE_REFUSED,
            "Dead letters a redrive left in the queue as older than the tombstones (apply.tombstone_ttl_secs)",
            metrics.dlq_redrive_refused.clone(),
        );
        r.register(
            metric::ACTOR_RESTARTS,
            "Actors restarted by their supervisor, by actor kind",
            metrics.actor_restarts.clone(),
        );
        r.register_with_unit(
            metric::HEALTH_PROBE_DURATION,
            "Round trip of a health probe",
            Unit::Seconds,
            metrics.health_probe_duration.clone(),
        );
        r.register(
            metric::HEALTH_STATUS,
            "Last probe result: 0 healthy, 1 degraded, 2 unhealthy",
            metrics.health_status.clone(),
        );
        r.register(
            metric::LAMBDA_INVOCATIONS,
            "Lambda shim invocations",
            metrics.lambda_invocations.clone(),
        );
        r.register(
            metric::LAMBDA_ERRORS,
            "Lambda shim invocations that returned an error",
            metrics.lambda_errors.clone(),
        );
        r.register_with_unit(
            metric::LAMBDA_DURATION,
            "Lambda handler time per invocation",
            Unit::Seconds,
            metrics.lambda_duration.clone(),
        );
        metrics
    }

    /// The OpenMetrics text exposition of every series, for `/metrics`.
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut out = String::with_capacity(8 * 1024);
        text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// A label whose value is one of the constants of `names`.
pub(crate) fn fixed(name: &'static str, value: &'static str) -> Label {
    (name, Cow::Borrowed(value))
}

/// A label whose value comes from configuration (a topic, a bus, a region).
pub(crate) fn configured(name: &'static str, value: &str) -> Label {
    (name, Cow::Owned(value.to_owned()))
}

/// The `region` label.
pub(crate) fn region(value: &str) -> Label {
    configured(label::REGION, value)
}
