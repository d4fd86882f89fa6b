//! Telemetry: the metrics registry, the events that feed it, and the probe state behind
//! `/readyz` and `/healthz`.
//!
//! Following vector's `internal_events`, nothing outside this module increments a counter or picks
//! a log level: a call site emits an event struct (`ActorRestarted { .. }.emit(&metrics)`) whose
//! `emit` does both, so the metric, its labels and the log line of one occurrence are written in
//! one place and cannot drift apart.
//!
//! # Layout
//!
//! - [`names`]: every metric name, label name and label value, as constants.
//! - [`labels`]: typed label values (enums over those constants), taken by the events.
//! - [`metrics`]: [`Metrics`], the one registry of the process, and its OpenMetrics encoding.
//! - [`events`]: the [`InternalEvent`] structs, one per thing worth counting or logging.
//! - [`readiness`]: [`Readiness`] and [`Liveness`], shared state the HTTP probes read.
//! - [`reference`](mod@reference): the metrics reference in `docs/metrics.md`, generated from the
//!   registry itself.
//! - [`spans`]: the span of an applied batch, exported over OTLP when configured, and the trace
//!   each change is published under.
//! - `rate_limit`: one warn line per ten seconds for events that can repeat per batch.
//!
//! # Metrics
//!
//! Every family, its type, labels and meaning are in `docs/metrics.md`, which
//! [`reference`](mod@reference) generates from this registry (a test keeps the two equal).

pub mod events;
pub mod labels;
pub mod metrics;
pub mod names;
mod rate_limit;
pub mod readiness;
pub mod reference;
pub mod spans;

pub use events::*;
pub use labels::{
    ActorKind, ApplyStage, AwsCall, BreakerState, CdcOperation, DlqSource, DynamoDbOperation,
    DynamoDbOutcome, ErrorClass, HealthStatus, LambdaFunction, OversizeKind, Service,
};
pub use metrics::Metrics;
pub use readiness::{Liveness, NotAlive, NotReady, Readiness, Sink};

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    /// Emits one of every event and checks every documented series is exposed.
    #[test]
    fn every_event_reaches_its_series() {
        let m = reference::populated();
        let text = m.encode().unwrap();
        for line in [
            r#"eda_kafka_messages_consumed_total{topic="orders"} 5"#,
            r#"eda_kafka_consumer_lag_messages{topic="orders",partition="3"} 42"#,
            r#"eda_kafka_oldest_unsettled_seconds{topic="orders",partition="3"} 1.5"#,
            "# UNIT eda_kafka_oldest_unsettled_seconds seconds",
            r#"eda_kafka_processing_duration_seconds_bucket{le="0.0005",topic="orders"} 1"#,
            "eda_kafka_partitions_assigned 2",
            "eda_kafka_rejoin_restarts_total 1",
            r#"eda_cdc_events_total{operation="refresh"} 2"#,
            r#"eda_dynamodb_operations_total{operation="put_item",outcome="condition_failed"} 1"#,
            r#"eda_dynamodb_operations_total{operation="put_item",outcome="throttled"} 1"#,
            r#"eda_dynamodb_errors_total{operation="put_item",error_class="throttled"} 1"#,
            r#"eda_eventbridge_events_published_total{bus="eda",region="us-west-2"} 10"#,
            r#"eda_eventbridge_errors_total{bus="eda",region="us-west-2"} 1"#,
            r#"eda_circuit_breaker_state{region="us-east-1"} 2"#,
            r#"eda_circuit_breaker_transitions_total{region="us-east-1",state="half_open"} 1"#,
            r#"eda_circuit_breaker_failures_total{region="us-east-1"} 1"#,
            r#"eda_circuit_breaker_rejected_total{region="us-east-1"} 4"#,
            r#"eda_cross_region_events_total{source_region="us-west-2",target_region="us-east-1"} 1"#,
            r#"eda_cross_region_latency_seconds_count{source_region="us-west-2",target_region="us-east-1"} 1"#,
            r#"eda_region_events_owed{region="us-east-1"} 2"#,
            r#"eda_region_events_owed_recorded_total{region="us-east-1"} 7"#,
            r#"eda_region_events_recovered_total{region="us-east-1"} 5"#,
            r#"eda_dlq_messages_total{source="kafka",error_class="decode"} 1"#,
            r#"eda_actor_restarts_total{actor="cdc_applier"} 1"#,
            r#"eda_health_probe_duration_seconds_bucket{le="1.0",region="us-west-2",service="sqs"} 1"#,
            r#"eda_health_status{region="us-west-2",service="sqs"} 1"#,
            r#"eda_lambda_invocations_total{function="authorizer"} 1"#,
            r#"eda_lambda_errors_total{function="authorizer"} 1"#,
            r#"eda_lambda_duration_seconds_count{function="authorizer"} 1"#,
            "# UNIT eda_kafka_processing_duration_seconds seconds",
            "# EOF",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
    }

    /// A partition given away takes its lag and age series with it; other partitions keep
    /// theirs.
    #[test]
    fn an_unassigned_partition_loses_its_series() {
        let m = reference::populated();
        ConsumerLag {
            topic: "orders",
            partition: 4,
            lag: 7,
        }
        .emit(&m);
        PartitionUnassigned {
            topic: "orders",
            partition: 3,
        }
        .emit(&m);
        let text = m.encode().unwrap();
        assert!(!text.contains(r#"partition="3"} 42"#), "{text}");
        assert!(
            !text.contains(r#"eda_kafka_oldest_unsettled_seconds{topic="orders",partition="3"}"#),
            "{text}"
        );
        assert!(
            text.contains(r#"eda_kafka_consumer_lag_messages{topic="orders",partition="4"} 7"#),
            "{text}"
        );
    }

    #[test]
    fn condition_failed_is_not_an_error() {
        let m = Metrics::new();
        DynamoDbCall {
            operation: DynamoDbOperation::UpdateItem,
            outcome: DynamoDbOutcome::ConditionFailed,
        }
        .emit(&m);
        let text = m.encode().unwrap();
        assert!(!text.contains("eda_dynamodb_errors_total{"), "{text}");
    }
}
