//! Internal events: one struct per thing worth knowing, whose `emit` logs it and counts it.
//!
//! Call sites build an event and emit it (`MessagesConsumed { topic, count }.emit(&metrics)`);
//! they never touch a metric family or pick a log level themselves. Log levels follow one rule:
//! anything that can happen per message or per batch logs at `trace` (or `debug` for retried
//! trouble), failures a person should look at log at `warn` through a limiter of one line per ten
//! seconds, and rare state changes (a breaker opening, an actor restarting) log at `info`/`warn`
//! every time.

use super::labels::{
    ActorKind, ApplyStage, AwsCall, BreakerState, CdcOperation, DlqSource, DynamoDbOperation,
    DynamoDbOutcome, ErrorClass, HealthStatus, LambdaFunction, OversizeKind, Service,
};
use super::metrics::{configured, fixed, region, Metrics};
use super::names::label;
use std::time::Duration;

/// Something that happened inside eda, recorded in the logs and the metrics in one call.
pub trait InternalEvent {
    /// Logs the event at its level and updates its metrics.
    fn emit(self, metrics: &Metrics);
}

/// A message carried trace headers that were malformed; they were left out and the message went
/// on without them.
#[derive(Debug, Clone, Copy)]
pub struct TraceHeadersMalformed<'a> {
    /// The message's topic.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Malformed headers on it.
    pub count: u64,
    /// The first reason, for the log line.
    pub reason: &'a str,
}

impl InternalEvent for TraceHeadersMalformed<'_> {
    fn emit(self, metrics: &Metrics) {
        tracing::debug!(
            topic = self.topic,
            partition = self.partition,
            offset = self.offset,
            count = self.count,
            reason = self.reason,
            "Malformed trace headers left out; the message goes on without them."
        );
        metrics
            .trace_headers_malformed
            .get_or_create(&[configured(label::TOPIC, self.topic)])
            .inc_by(self.count);
    }
}

/// A partition consumer read `count` messages from `topic`.
#[derive(Debug, Clone, Copy)]
pub struct MessagesConsumed<'a> {
    /// The topic read from.
    pub topic: &'a str,
    /// Messages in the fetched batch.
    pub count: u64,
}

impl InternalEvent for MessagesConsumed<'_> {
    fn emit(self, metrics: &Metrics) {
        tracing::trace!(topic = self.topic, count = self.count, "Messages consumed.");
        metrics
            .kafka_messages_consumed
            .get_or_create(&[configured(label::TOPIC, self.topic)])
            .inc_by(self.count);
    }
}

/// How far a partition's committed offset is behind its end, measured every commit interval.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerLag<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// The partition's end minus the offset committed for it: messages not read yet plus
    /// messages read and not settled.
    pub lag: i64,
}

impl InternalEvent for ConsumerLag<'_> {
    fn emit(self, metrics: &Metrics) {
        tracing::trace!(
            topic = self.topic,
            partition = self.partition,
            lag = self.lag,
            "Consumer lag measured."
        );
        metrics
            .kafka_consumer_lag
            .get_or_create(&[
                configured(label::TOPIC, self.topic),
                configured(label::PARTITION, &self.partition.to_string()),
            ])
            .set(self.lag);
    }
}

/// The age of a partition's oldest message read and not yet settled, measured every commit
/// interval whether messages arrive or not.
#[derive(Debug, Clone, Copy)]
pub struct OldestUnsettled<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// How long that message has waited (zero when none waits).
    pub age: Duration,
}

impl InternalEvent for OldestUnsettled<'_> {
    fn emit(self, metrics: &Metrics) {
        tracing::trace!(
            topic = self.topic,
            partition = self.partition,
            age_secs = self.age.as_secs_f64(),
            "Oldest unsettled message measured."
        );
        metrics
            .kafka_oldest_unsettled
            .get_or_create(&[
                configured(label::TOPIC, self.topic),
                configured(label::PARTITION, &self.partition.to_string()),
            ])
            .set(self.age.as_secs_f64());
    }
}

/// A partition is no longer assigned to this member: its lag and age series go, so that a sum
/// over the group's members counts the partition once and no alert stays up here for it.
#[derive(Debug, Clone, Copy)]
pub struct PartitionUnassigned<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
}

impl InternalEvent for PartitionUnassigned<'_> {
    fn emit(self, metrics: &Metrics) {
        tracing::trace!(
            topic = self.topic,
            partition = self.partition,
            "Partition series removed."
        );
        let labels = [
            configured(label::TOPIC, self.topic),
            configured(label::PARTITION, &self.partition.to_string()),
        ];
        metrics.kafka_consumer_lag.remove(&labels);
        metrics.kafka_oldest_unsettled.remove(&labels);
    }
}

/// A partition's next message could not be decoded because a dependency is failing (the
/// Schema Registry, the metadata store): the partition is held and the message tried again.
#[derive(Debug, Clone, Copy)]
pub struct PartitionHeld<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// The class of the failure (a retryable one).
    pub class: ErrorClass,
    /// Whether this is the attempt that started the hold.
    pub first: bool,
}

impl InternalEvent for PartitionHeld<'_> {
    fn emit(self, metrics: &Metrics) {
        if self.first {
            metrics
                .kafka_partition_held
                .get_or_create(&[
                    configured(label::TOPIC, self.topic),
                    configured(label::PARTITION, &self.partition.to_string()),
                ])
                .set(1);
        } else {
            metrics
                .kafka_held_retries
                .get_or_create(&[
                    configured(label::TOPIC, self.topic),
                    fixed(label::ERROR_CLASS, self.class.as_str()),
                ])
                .inc();
        }
    }
}

/// A held partition's message decoded: the partition moves again.
#[derive(Debug, Clone, Copy)]
pub struct PartitionReleased<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
}

impl InternalEvent for PartitionReleased<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics
            .kafka_partition_held
            .get_or_create(&[
                configured(label::TOPIC, self.topic),
                configured(label::PARTITION, &self.partition.to_string()),
            ])
            .set(0);
    }
}

/// The consumer group's assignment changed (a rebalance assigned or revoked partitions).
#[derive(Debug, Clone, Copy)]
pub struct PartitionsAssigned<'a> {
    /// Every partition the member holds now, as `(topic, partition)`.
    pub partitions: &'a [(&'a str, i32)],
}

impl InternalEvent for PartitionsAssigned<'_> {
    fn emit(self, metrics: &Metrics) {
        tracing::info!(
            count = self.partitions.len(),
            partitions = ?self.partitions,
            "Partition assignment changed."
        );
        metrics
            .kafka_partitions_assigned
            .set(i64::try_from(self.partitions.len()).unwrap_or(i64::MAX));
    }
}

/// The consumer-group member is in its group (it got an assignment, possibly empty) after
/// `out_for` out of it: since start-up, a rebalance, a broker outage or a restart.
#[derive(Debug, Clone, Copy)]
pub struct GroupJoined {
    /// How long it was out, restarts included.
    pub out_for: Duration,
}

impl InternalEvent for GroupJoined {
    fn emit(self, _metrics: &Metrics) {
        tracing::info!(
            out_ms = u64::try_from(self.out_for.as_millis()).unwrap_or(u64::MAX),
            "Consumer group joined."
        );
    }
}

/// The consumer-group member stayed out of its group past `kafka.rejoin_timeout_ms` while the
/// brokers answered: it closes its consumer and fails, so its supervisor starts a fresh one.
#[derive(Debug, Clone, Copy)]
pub struct GroupMemberStuck {
    /// How long this member has been out of its group.
    pub out_for: Duration,
    /// `kafka.rejoin_timeout_ms`.
    pub rejoin_timeout: Duration,
}

impl InternalEvent for GroupMemberStuck {
    fn emit(self, metrics: &Metrics) {
        tracing::warn!(
            out_ms = u64::try_from(self.out_for.as_millis()).unwrap_or(u64::MAX),
            rejoin_timeout_ms = u64::try_from(self.rejoin_timeout.as_millis()).unwrap_or(u64::MAX),
            "Consumer group member out of its group while the brokers answer; restarting it."
        );
        metrics.kafka_rejoin_restarts.inc();
    }
}

/// The consumer-group member stayed out of its group past `kafka.out_of_group_liveness_ms`
/// while the brokers answered, restarts included: `/healthz` fails so the pod is replaced.
#[derive(Debug, Clone, Copy)]
pub struct GroupMemberUnhealthy {
    /// How long the member has been out of its group, restarts included.
    pub out_for: Duration,
}

impl InternalEvent for GroupMemberUnhealthy {
    fn emit(self, _metrics: &Metrics) {
        tracing::error!(
            out_ms = u64::try_from(self.out_for.as_millis()).unwrap_or(u64::MAX),
            "Consumer group member cannot get back into its group while the brokers answer; \
             /healthz fails so the pod is replaced."
        );
    }
}

/// Messages of one topic had all their effects acknowledged, each `elapsed[i]` after it was
/// fetched. One event per acknowledgement rather than per message: the topic's histogram is
/// looked up (and its label built) once for all of them.
#[derive(Debug, Clone, Copy)]
pub struct MessagesProcessed<'a> {
    /// The topic the messages came from.
    pub topic: &'a str,
    /// Fetch to acknowledgement, one per message.
    pub elapsed: &'a [Duration],
    /// Kafka timestamp to acknowledgement, one per message that has a timestamp.
    pub since_produced: &'a [Duration],
}

impl InternalEvent for MessagesProcessed<'_> {
    fn emit(self, metrics: &Metrics) {
        let labels = [configured(label::TOPIC, self.topic)];
        let histogram = metrics.kafka_processing_duration.get_or_create(&labels);
        for elapsed in self.elapsed {
            histogram.observe(elapsed.as_secs_f64());
        }
        if !self.since_produced.is_empty() {
            let histogram = metrics.kafka_end_to_end_duration.get_or_create(&labels);
            for elapsed in self.since_produced {
                histogram.observe(elapsed.as_secs_f64());
            }
        }
    }
}

/// Messages read from Kafka passed one stage of their batch, `elapsed` each (see
/// `eda_apply_stage_duration_seconds`).
#[derive(Debug, Clone, Copy)]
pub struct ApplyStagePassed {
    /// The stage.
    pub stage: ApplyStage,
    /// How long it took them.
    pub elapsed: Duration,
    /// How many messages: each is one observation, so the stages add up to the read-to-settled
    /// histogram's messages.
    pub messages: usize,
}

impl InternalEvent for ApplyStagePassed {
    fn emit(self, metrics: &Metrics) {
        if self.messages == 0 {
            return;
        }
        let histogram = metrics
            .apply_stage_duration
            .get_or_create(&[fixed(label::STAGE, self.stage.as_str())]);
        let seconds = self.elapsed.as_secs_f64();
        for _ in 0..self.messages {
            histogram.observe(seconds);
        }
    }
}

/// One HTTP exchange of a per-message AWS call ended (answered, refused, failed or timed out).
#[derive(Debug, Clone, Copy)]
pub struct AwsCallTimed<'a> {
    /// The region called.
    pub region: &'a str,
    /// The call.
    pub operation: AwsCall,
    /// From taking a connection to the answer read (or the failure).
    pub elapsed: Duration,
}

impl InternalEvent for AwsCallTimed<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics
            .aws_call_duration
            .get_or_create(&[
                region(self.region),
                fixed(label::OPERATION, self.operation.as_str()),
            ])
            .observe(self.elapsed.as_secs_f64());
    }
}

/// `count` CDC changes of one operation were applied.
#[derive(Debug, Clone, Copy)]
pub struct CdcEventsApplied {
    /// The Qlik operation.
    pub operation: CdcOperation,
    /// Changes applied.
    pub count: u64,
}

impl InternalEvent for CdcEventsApplied {
    fn emit(self, metrics: &Metrics) {
        tracing::trace!(
            operation = self.operation.as_str(),
            count = self.count,
            "CDC events applied."
        );
        metrics
            .cdc_events
            .get_or_create(&[fixed(label::OPERATION, self.operation.as_str())])
            .inc_by(self.count);
    }
}

/// Change events were published again: the table already held their changes, and whether their
/// events went out before is unknown (the delivery contract's duplicates).
#[derive(Debug, Clone, Copy)]
pub struct EventsRepublished {
    /// Events published again.
    pub count: u64,
}

impl InternalEvent for EventsRepublished {
    fn emit(self, metrics: &Metrics) {
        tracing::trace!(count = self.count, "Change events published again.");
        metrics.events_republished.inc_by(self.count);
    }
}

/// Changes too large for a limit went another way: their events by claim check, or their rows
/// with columns compressed.
#[derive(Debug, Clone, Copy)]
pub struct OversizeChanges {
    /// Which limit, and what was done.
    pub kind: OversizeKind,
    /// How many.
    pub count: u64,
}

impl InternalEvent for OversizeChanges {
    fn emit(self, metrics: &Metrics) {
        tracing::debug!(
            kind = self.kind.as_str(),
            count = self.count,
            "Oversize changes: events by claim check, or rows with compressed columns."
        );
        metrics
            .oversize_changes
            .get_or_create(&[fixed(label::KIND, self.kind.as_str())])
            .inc_by(self.count);
    }
}

/// One DynamoDB call finished.
#[derive(Debug, Clone, Copy)]
pub struct DynamoDbCall {
    /// The API used.
    pub operation: DynamoDbOperation,
    /// How it ended.
    pub outcome: DynamoDbOutcome,
}

impl InternalEvent for DynamoDbCall {
    fn emit(self, metrics: &Metrics) {
        let operation = self.operation.as_str();
        metrics
            .dynamodb_operations
            .get_or_create(&[
                fixed(label::OPERATION, operation),
                fixed(label::OUTCOME, self.outcome.as_str()),
            ])
            .inc();
        match self.outcome {
            DynamoDbOutcome::Success => {
                tracing::trace!(operation, "DynamoDB call succeeded.");
            }
            DynamoDbOutcome::ConditionFailed => {
                tracing::trace!(
                    operation,
                    "DynamoDB write skipped: a newer change is applied."
                );
            }
            DynamoDbOutcome::Failed(class) => {
                metrics
                    .dynamodb_errors
                    .get_or_create(&[
                        fixed(label::OPERATION, operation),
                        fixed(label::ERROR_CLASS, class.as_str()),
                    ])
                    .inc();
                if class == ErrorClass::Throttled {
                    tracing::debug!(operation, "DynamoDB throttled a call.");
                } else if let Some(suppressed) = metrics.limiters.dynamodb.admit() {
                    tracing::warn!(
                        operation,
                        error_class = class.as_str(),
                        suppressed,
                        "DynamoDB call failed."
                    );
                }
            }
        }
    }
}

/// EventBridge accepted `count` entries on a bus.
#[derive(Debug, Clone, Copy)]
pub struct EventBridgePublished<'a> {
    /// The bus name.
    pub bus: &'a str,
    /// The bus's region.
    pub region: &'a str,
    /// Entries accepted.
    pub count: u64,
}

impl InternalEvent for EventBridgePublished<'_> {
    fn emit(self, metrics: &Metrics) {
        tracing::trace!(
            bus = self.bus,
            region = self.region,
            count = self.count,
            "EventBridge events published."
        );
        metrics
            .eventbridge_published
            .get_or_create(&[configured(label::BUS, self.bus), region(self.region)])
            .inc_by(self.count);
    }
}

/// EventBridge rejected `count` entries, or a call failed before delivering them.
#[derive(Debug, Clone, Copy)]
pub struct EventBridgeFailed<'a> {
    /// The bus name.
    pub bus: &'a str,
    /// The bus's region.
    pub region: &'a str,
    /// Entries not delivered.
    pub count: u64,
    /// Why.
    pub class: ErrorClass,
}

impl InternalEvent for EventBridgeFailed<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics
            .eventbridge_errors
            .get_or_create(&[configured(label::BUS, self.bus), region(self.region)])
            .inc_by(self.count);
        if let Some(suppressed) = metrics.limiters.eventbridge.admit() {
            tracing::warn!(
                bus = self.bus,
                region = self.region,
                count = self.count,
                error_class = self.class.as_str(),
                suppressed,
                "EventBridge did not accept events."
            );
        }
    }
}

/// A region's circuit breaker was created in `state`; sets the gauge so it exists from start.
#[derive(Debug, Clone, Copy)]
pub struct BreakerInitialized<'a> {
    /// The region the breaker guards.
    pub region: &'a str,
    /// Its initial state.
    pub state: BreakerState,
}

impl InternalEvent for BreakerInitialized<'_> {
    fn emit(self, metrics: &Metrics) {
        tracing::debug!(
            region = self.region,
            state = self.state.as_str(),
            "Circuit breaker initialized."
        );
        metrics
            .breaker_state
            .get_or_create(&[region(self.region)])
            .set(self.state.code());
    }
}

/// A region's circuit breaker moved from one state to another.
#[derive(Debug, Clone, Copy)]
pub struct BreakerTransitioned<'a> {
    /// The region the breaker guards.
    pub region: &'a str,
    /// The state left.
    pub from: BreakerState,
    /// The state entered.
    pub to: BreakerState,
}

impl InternalEvent for BreakerTransitioned<'_> {
    fn emit(self, metrics: &Metrics) {
        let (region_name, from, to) = (self.region, self.from.as_str(), self.to.as_str());
        match self.to {
            BreakerState::Open | BreakerState::ForcedOpen => tracing::warn!(
                region = region_name,
                from,
                to,
                "Circuit breaker opened; traffic fails over."
            ),
            _ => tracing::info!(
                region = region_name,
                from,
                to,
                "Circuit breaker changed state."
            ),
        }
        metrics
            .breaker_state
            .get_or_create(&[region(self.region)])
            .set(self.to.code());
        metrics
            .breaker_transitions
            .get_or_create(&[region(self.region), fixed(label::STATE, to)])
            .inc();
    }
}

/// A call through a region's breaker failed and was recorded against it.
#[derive(Debug, Clone, Copy)]
pub struct BreakerCallFailed<'a> {
    /// The region the breaker guards.
    pub region: &'a str,
}

impl InternalEvent for BreakerCallFailed<'_> {
    fn emit(self, metrics: &Metrics) {
        tracing::trace!(region = self.region, "Circuit breaker recorded a failure.");
        metrics
            .breaker_failures
            .get_or_create(&[region(self.region)])
            .inc();
    }
}

/// A region's breaker refused `count` calls.
#[derive(Debug, Clone, Copy)]
pub struct BreakerCallsRejected<'a> {
    /// The region the breaker guards.
    pub region: &'a str,
    /// Calls refused.
    pub count: u64,
}

impl InternalEvent for BreakerCallsRejected<'_> {
    fn emit(self, metrics: &Metrics) {
        tracing::trace!(
            region = self.region,
            count = self.count,
            "Circuit breaker rejected calls."
        );
        metrics
            .breaker_rejected
            .get_or_create(&[region(self.region)])
            .inc_by(self.count);
    }
}

/// `count` events were delivered from one region to another, the oldest `latency` old.
#[derive(Debug, Clone, Copy)]
pub struct CrossRegionDelivered<'a> {
    /// Where the events were produced.
    pub source_region: &'a str,
    /// Where they were delivered.
    pub target_region: &'a str,
    /// Events delivered.
    pub count: u64,
    /// Event timestamp to acceptance by the target region.
    pub latency: Duration,
}

impl InternalEvent for CrossRegionDelivered<'_> {
    fn emit(self, metrics: &Metrics) {
        tracing::trace!(
            source_region = self.source_region,
            target_region = self.target_region,
            count = self.count,
            "Cross-region events delivered."
        );
        let labels = [
            configured(label::SOURCE_REGION, self.source_region),
            configured(label::TARGET_REGION, self.target_region),
        ];
        metrics
            .cross_region_events
            .get_or_create(&labels)
            .inc_by(self.count);
        metrics
            .cross_region_latency
            .get_or_create(&labels)
            .observe(self.latency.as_secs_f64());
    }
}

/// `count` cross-region events were recorded in `region`'s owed queue: its bus could not take
/// them now, its router delivers them once it can.
#[derive(Debug, Clone, Copy)]
pub struct EventsOwed<'a> {
    /// The region the events are owed to.
    pub region: &'a str,
    /// Events recorded.
    pub count: u64,
}

impl InternalEvent for EventsOwed<'_> {
    fn emit(self, metrics: &Metrics) {
        tracing::debug!(
            region = self.region,
            count = self.count,
            "Cross-region events recorded as owed."
        );
        metrics
            .region_events_owed_recorded
            .get_or_create(&[region(self.region)])
            .inc_by(self.count);
    }
}

/// `count` owed events were delivered to `region` after it came back.
#[derive(Debug, Clone, Copy)]
pub struct OwedEventsRecovered<'a> {
    /// The region they were owed to.
    pub region: &'a str,
    /// Events delivered.
    pub count: u64,
}

impl InternalEvent for OwedEventsRecovered<'_> {
    fn emit(self, metrics: &Metrics) {
        tracing::debug!(
            region = self.region,
            count = self.count,
            "Owed cross-region events delivered."
        );
        metrics
            .region_events_recovered
            .get_or_create(&[region(self.region)])
            .inc_by(self.count);
    }
}

/// The owed queue of `region` held `count` events when it was last sampled.
#[derive(Debug, Clone, Copy)]
pub struct OwedEventsWaiting<'a> {
    /// The region the events are owed to.
    pub region: &'a str,
    /// Events waiting (visible or being delivered).
    pub count: u64,
}

impl InternalEvent for OwedEventsWaiting<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics
            .region_events_owed
            .get_or_create(&[region(self.region)])
            .set(i64::try_from(self.count).unwrap_or(i64::MAX));
    }
}

/// `count` messages were written to the dead-letter queue.
#[derive(Debug, Clone, Copy)]
pub struct DeadLettered {
    /// Where they entered eda.
    pub source: DlqSource,
    /// Why they failed.
    pub class: ErrorClass,
    /// Messages written.
    pub count: u64,
}

impl InternalEvent for DeadLettered {
    fn emit(self, metrics: &Metrics) {
        metrics
            .dlq_messages
            .get_or_create(&[
                fixed(label::SOURCE, self.source.as_str()),
                fixed(label::ERROR_CLASS, self.class.as_str()),
            ])
            .inc_by(self.count);
        if let Some(suppressed) = metrics.limiters.dlq.admit() {
            tracing::warn!(
                source = self.source.as_str(),
                error_class = self.class.as_str(),
                count = self.count,
                suppressed,
                "Messages sent to the dead-letter queue."
            );
        }
    }
}

/// A supervisor decided to restart a child.
#[derive(Debug, Clone, Copy)]
pub struct ActorRestarted<'a> {
    /// The child's kind (the metric label).
    pub kind: ActorKind,
    /// The child's name within its supervisor (logged only: names can be per partition).
    pub name: &'a str,
    /// Why: the failure, or the dependency whose restart forced this one.
    pub reason: &'a str,
    /// Restarts of this child inside the current window, this one included.
    pub attempt: u32,
    /// Delay before the new instance is spawned.
    pub backoff: Duration,
}

impl InternalEvent for ActorRestarted<'_> {
    fn emit(self, metrics: &Metrics) {
        tracing::warn!(
            actor = self.kind.as_str(),
            name = self.name,
            reason = self.reason,
            attempt = self.attempt,
            backoff_ms = u64::try_from(self.backoff.as_millis()).unwrap_or(u64::MAX),
            "Restarting a failed actor."
        );
        metrics
            .actor_restarts
            .get_or_create(&[fixed(label::ACTOR, self.kind.as_str())])
            .inc();
    }
}

/// A supervisor gave up on a child and is failing itself so its parent decides.
#[derive(Debug, Clone, Copy)]
pub struct SupervisorEscalated<'a> {
    /// The supervisor's kind.
    pub kind: ActorKind,
    /// The child that failed too often.
    pub child: &'a str,
    /// Its restarts inside the window.
    pub restarts: u32,
    /// The window.
    pub window: Duration,
}

impl InternalEvent for SupervisorEscalated<'_> {
    fn emit(self, _metrics: &Metrics) {
        tracing::error!(
            supervisor = self.kind.as_str(),
            child = self.child,
            restarts = self.restarts,
            window_secs = self.window.as_secs(),
            "Child failed too often; escalating to the parent supervisor."
        );
    }
}

/// A health probe of one service in one region finished.
#[derive(Debug, Clone, Copy)]
pub struct HealthProbed<'a> {
    /// The probed region.
    pub region: &'a str,
    /// The probed service.
    pub service: Service,
    /// The verdict.
    pub status: HealthStatus,
    /// Round trip (the timeout, when it timed out).
    pub latency: Duration,
}

impl InternalEvent for HealthProbed<'_> {
    fn emit(self, metrics: &Metrics) {
        let labels = [
            region(self.region),
            fixed(label::SERVICE, self.service.as_str()),
        ];
        metrics
            .health_probe_duration
            .get_or_create(&labels)
            .observe(self.latency.as_secs_f64());
        let gauge = metrics.health_status.get_or_create_owned(&labels);
        let previous = gauge.set(self.status.code());
        let (region_name, service, status) =
            (self.region, self.service.as_str(), self.status.as_str());
        let latency_ms = u64::try_from(self.latency.as_millis()).unwrap_or(u64::MAX);
        if previous == self.status.code() {
            tracing::trace!(
                region = region_name,
                service,
                status,
                latency_ms,
                "Health probe finished."
            );
        } else if self.status == HealthStatus::Healthy {
            tracing::info!(
                region = region_name,
                service,
                latency_ms,
                "Service is healthy."
            );
        } else if self.status == HealthStatus::Degraded {
            // Slow but answering: it changes no routing (only `unhealthy` forces a breaker open),
            // and a loaded host alone can push one probe over the threshold, so it is no warning.
            tracing::info!(
                region = region_name,
                service,
                latency_ms,
                "Service is slow (degraded)."
            );
        } else {
            tracing::warn!(
                region = region_name,
                service,
                status,
                latency_ms,
                "Service is unhealthy."
            );
        }
    }
}

/// A Lambda shim invocation finished.
#[derive(Debug, Clone, Copy)]
pub struct LambdaInvoked {
    /// Which shim.
    pub function: LambdaFunction,
    /// Handler time.
    pub elapsed: Duration,
    /// Whether the handler returned an error.
    pub failed: bool,
}

impl InternalEvent for LambdaInvoked {
    fn emit(self, metrics: &Metrics) {
        let labels = [fixed(label::FUNCTION, self.function.as_str())];
        tracing::debug!(
            function = self.function.as_str(),
            elapsed_ms = u64::try_from(self.elapsed.as_millis()).unwrap_or(u64::MAX),
            failed = self.failed,
            "Lambda invocation finished."
        );
        metrics.lambda_invocations.get_or_create(&labels).inc();
        if self.failed {
            metrics.lambda_errors.get_or_create(&labels).inc();
        }
        metrics
            .lambda_duration
            .get_or_create(&labels)
            .observe(self.elapsed.as_secs_f64());
    }
}

/// SQS refused a dead letter in every form, even bare: its only record is the log line.
#[derive(Debug, Clone, Copy)]
pub struct DlqUnsendable;

impl InternalEvent for DlqUnsendable {
    fn emit(self, metrics: &Metrics) {
        metrics.dlq_unsendable.inc();
    }
}

/// A redrive refused a dead letter older than the tombstones; it stays in the queue.
#[derive(Debug, Clone, Copy)]
pub struct RedriveRefused<'a> {
    /// The letter's id.
    pub letter_id: &'a str,
    /// Its age.
    pub age_secs: i64,
    /// `apply.tombstone_ttl_secs`.
    pub tombstone_ttl_secs: u64,
}

impl InternalEvent for RedriveRefused<'_> {
    fn emit(self, metrics: &Metrics) {
        tracing::warn!(
            letter_id = self.letter_id,
            age_secs = self.age_secs,
            tombstone_ttl_secs = self.tombstone_ttl_secs,
            "Dead letter not replayed: older than the tombstones, it could bring back a row \
             deleted since (--force-older-than-tombstones replays it)."
        );
        metrics.dlq_redrive_refused.inc();
    }
}
