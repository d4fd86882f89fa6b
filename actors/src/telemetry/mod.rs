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
//! - `rate_limit`: one warn line per ten seconds for events that can repeat per batch.
//!
//! # Metrics
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `eda_kafka_messages_consumed_total` | counter | `topic` |
//! | `eda_kafka_consumer_lag_messages` | gauge | `topic`, `partition` |
//! | `eda_kafka_processing_duration_seconds` | histogram | `topic` |
//! | `eda_cdc_events_total` | counter | `operation` |
//! | `eda_dynamodb_operations_total` | counter | `operation`, `outcome` |
//! | `eda_dynamodb_errors_total` | counter | `operation`, `error_class` |
//! | `eda_eventbridge_events_published_total` | counter | `bus`, `region` |
//! | `eda_eventbridge_errors_total` | counter | `bus`, `region` |
//! | `eda_circuit_breaker_state` | gauge | `region` |
//! | `eda_circuit_breaker_transitions_total` | counter | `region`, `state` |
//! | `eda_circuit_breaker_failures_total` | counter | `region` |
//! | `eda_circuit_breaker_rejected_total` | counter | `region` |
//! | `eda_cross_region_events_total` | counter | `source_region`, `target_region` |
//! | `eda_cross_region_latency_seconds` | histogram | `source_region`, `target_region` |
//! | `eda_dlq_messages_total` | counter | `source`, `error_class` |
//! | `eda_actor_restarts_total` | counter | `actor` |
//! | `eda_health_probe_duration_seconds` | histogram | `region`, `service` |
//! | `eda_health_status` | gauge | `region`, `service` |
//! | `eda_lambda_invocations_total` | counter | `function` |
//! | `eda_lambda_errors_total` | counter | `function` |
//! | `eda_lambda_duration_seconds` | histogram | `function` |

pub mod events;
pub mod labels;
pub mod metrics;
pub mod names;
mod rate_limit;
pub mod readiness;

pub use events::*;
pub use labels::{
    ActorKind, BreakerState, CdcOperation, DlqSource, DynamoDbOperation, DynamoDbOutcome,
    ErrorClass, HealthStatus, LambdaFunction, Service,
};
pub use metrics::Metrics;
pub use readiness::{Liveness, NotReady, Readiness, Sink};

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Emits one of every event and checks every documented series is exposed.
    #[test]
    fn every_event_reaches_its_series() {
        let m = Metrics::new();
        MessagesConsumed {
            topic: "orders",
            count: 5,
        }
        .emit(&m);
        ConsumerLag {
            topic: "orders",
            partition: 3,
            lag: 42,
        }
        .emit(&m);
        MessageProcessed {
            topic: "orders",
            elapsed: Duration::from_micros(300),
        }
        .emit(&m);
        CdcEventsApplied {
            operation: CdcOperation::Refresh,
            count: 2,
        }
        .emit(&m);
        DynamoDbCall {
            operation: DynamoDbOperation::PutItem,
            outcome: DynamoDbOutcome::ConditionFailed,
        }
        .emit(&m);
        DynamoDbCall {
            operation: DynamoDbOperation::PutItem,
            outcome: DynamoDbOutcome::Failed(ErrorClass::Throttled),
        }
        .emit(&m);
        EventBridgePublished {
            bus: "eda",
            region: "us-west-2",
            count: 10,
        }
        .emit(&m);
        EventBridgeFailed {
            bus: "eda",
            region: "us-west-2",
            count: 1,
            class: ErrorClass::Server,
        }
        .emit(&m);
        BreakerTransitioned {
            region: "us-east-1",
            from: BreakerState::Closed,
            to: BreakerState::HalfOpen,
        }
        .emit(&m);
        BreakerCallFailed {
            region: "us-east-1",
        }
        .emit(&m);
        BreakerCallsRejected {
            region: "us-east-1",
            count: 4,
        }
        .emit(&m);
        CrossRegionDelivered {
            source_region: "us-west-2",
            target_region: "us-east-1",
            count: 1,
            latency: Duration::from_millis(40),
        }
        .emit(&m);
        DeadLettered {
            source: DlqSource::Kafka,
            class: ErrorClass::Decode,
            count: 1,
        }
        .emit(&m);
        ActorRestarted {
            kind: ActorKind::CdcApplier,
            name: "applier-0",
            reason: "panicked",
            attempt: 1,
            backoff: Duration::from_millis(100),
        }
        .emit(&m);
        HealthProbed {
            region: "us-west-2",
            service: Service::Sqs,
            status: HealthStatus::Degraded,
            latency: Duration::from_millis(600),
        }
        .emit(&m);
        LambdaInvoked {
            function: LambdaFunction::Authorizer,
            elapsed: Duration::from_micros(700),
            failed: true,
        }
        .emit(&m);

        let text = m.encode().unwrap();
        for line in [
            r#"eda_kafka_messages_consumed_total{topic="orders"} 5"#,
            r#"eda_kafka_consumer_lag_messages{topic="orders",partition="3"} 42"#,
            r#"eda_kafka_processing_duration_seconds_bucket{le="0.0005",topic="orders"} 1"#,
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
