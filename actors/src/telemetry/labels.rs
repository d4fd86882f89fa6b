//! Typed label values: an event takes one of these enums, never a free string, so a label can
//! only ever carry one of the constants of [`names`](super::names) and cardinality stays bounded.

use super::names::{
    actor, apply_stage, aws_call, breaker_state, cdc_operation, dlq_source, dynamodb_operation,
    function, health_status, outcome, oversize, service,
};

/// Declares a fieldless enum whose variants map one-to-one onto label-value constants.
macro_rules! label_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $value:expr),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, for tests and for pre-registering series.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The label value exposed on `/metrics` and written to logs.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $value),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

label_enum! {
    /// A Qlik Replicate operation, as counted by `eda_cdc_events_total`.
    CdcOperation {
        /// A new row.
        Insert => cdc_operation::INSERT,
        /// A changed row.
        Update => cdc_operation::UPDATE,
        /// A removed row.
        Delete => cdc_operation::DELETE,
        /// A full-load row.
        Refresh => cdc_operation::REFRESH,
    }
}

label_enum! {
    /// How a change was too large, as counted by `eda_oversize_changes_total`.
    OversizeKind {
        /// Its event went by claim check.
        EventByReference => oversize::EVENT_BY_REFERENCE,
        /// Its row was written with columns compressed.
        RowCompressed => oversize::ROW_COMPRESSED,
    }
}

label_enum! {
    /// The DynamoDB API a call used.
    DynamoDbOperation {
        /// `PutItem`.
        PutItem => dynamodb_operation::PUT_ITEM,
        /// `UpdateItem`.
        UpdateItem => dynamodb_operation::UPDATE_ITEM,
        /// `DeleteItem`.
        DeleteItem => dynamodb_operation::DELETE_ITEM,
        /// `GetItem`.
        GetItem => dynamodb_operation::GET_ITEM,
        /// `BatchWriteItem`.
        BatchWriteItem => dynamodb_operation::BATCH_WRITE_ITEM,
        /// `BatchExecuteStatement` (one per statement).
        BatchExecuteStatement => dynamodb_operation::BATCH_EXECUTE_STATEMENT,
        /// `TransactWriteItems`.
        TransactWriteItems => dynamodb_operation::TRANSACT_WRITE_ITEMS,
        /// `ListTables`.
        ListTables => dynamodb_operation::LIST_TABLES,
    }
}

label_enum! {
    /// A stage of a batch's way from read to settled (`eda_apply_stage_duration_seconds`).
    ApplyStage {
        /// Read to the applier starting the batch.
        Wait => apply_stage::WAIT,
        /// The batch's DynamoDB writes.
        Write => apply_stage::WRITE,
        /// Written to every event published, routed and dead-lettered.
        Deliver => apply_stage::DELIVER,
    }
}

label_enum! {
    /// A per-message AWS call, as timed by `eda_aws_call_duration_seconds`.
    AwsCall {
        /// DynamoDB `PutItem`.
        PutItem => aws_call::PUT_ITEM,
        /// DynamoDB `BatchExecuteStatement`.
        BatchExecuteStatement => aws_call::BATCH_EXECUTE_STATEMENT,
        /// EventBridge `PutEvents`.
        PutEvents => aws_call::PUT_EVENTS,
    }
}

pub use eda_core::failure::ErrorClass;

/// How a DynamoDB call ended. `ConditionFailed` is its own outcome because, for a
/// sequence-guarded write, it means "a newer change is already applied": success, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DynamoDbOutcome {
    /// The write or read succeeded.
    Success,
    /// A condition expression refused the write (an older or replayed change).
    ConditionFailed,
    /// The call failed with this class of error.
    Failed(ErrorClass),
}

impl DynamoDbOutcome {
    /// The `outcome` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DynamoDbOutcome::Success => outcome::SUCCESS,
            DynamoDbOutcome::ConditionFailed => outcome::CONDITION_FAILED,
            DynamoDbOutcome::Failed(ErrorClass::Throttled) => outcome::THROTTLED,
            DynamoDbOutcome::Failed(_) => outcome::ERROR,
        }
    }

    /// Whether the call counts as an error (`condition_failed` does not).
    pub fn is_error(self) -> bool {
        matches!(self, DynamoDbOutcome::Failed(_))
    }
}

label_enum! {
    /// A circuit breaker state; the discriminant order matches the gauge's documented codes.
    BreakerState {
        /// Calls flow.
        Closed => breaker_state::CLOSED,
        /// Calls are refused.
        Open => breaker_state::OPEN,
        /// Trial calls flow.
        HalfOpen => breaker_state::HALF_OPEN,
        /// Held open by an operator or the health prober.
        ForcedOpen => breaker_state::FORCED_OPEN,
        /// The breaker is bypassed.
        Disabled => breaker_state::DISABLED,
    }
}

impl BreakerState {
    /// The value of `eda_circuit_breaker_state`: 0 closed, 1 open, 2 half-open, 3 forced open,
    /// 4 disabled.
    pub fn code(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
            BreakerState::ForcedOpen => 3,
            BreakerState::Disabled => 4,
        }
    }
}

label_enum! {
    /// Where a dead-lettered message entered eda.
    DlqSource {
        /// A Kafka partition.
        Kafka => dlq_source::KAFKA,
        /// A Lambda invocation.
        Lambda => dlq_source::LAMBDA,
        /// A DynamoDB Streams record.
        Stream => dlq_source::STREAM,
        /// An EventBridge event.
        EventBridge => dlq_source::EVENTBRIDGE,
    }
}

label_enum! {
    /// An AWS service that is probed and must be reachable for `/readyz`.
    Service {
        /// DynamoDB.
        DynamoDb => service::DYNAMODB,
        /// EventBridge.
        EventBridge => service::EVENTBRIDGE,
        /// SQS.
        Sqs => service::SQS,
    }
}

label_enum! {
    /// The health of one service in one region, as the prober judged it.
    HealthStatus {
        /// Answered under the latency threshold.
        Healthy => health_status::HEALTHY,
        /// Answered, but slower than the threshold.
        Degraded => health_status::DEGRADED,
        /// Timed out or failed.
        Unhealthy => health_status::UNHEALTHY,
    }
}

impl HealthStatus {
    /// The value of `eda_health_status`: 0 healthy, 1 degraded, 2 unhealthy.
    pub fn code(self) -> i64 {
        match self {
            HealthStatus::Healthy => 0,
            HealthStatus::Degraded => 1,
            HealthStatus::Unhealthy => 2,
        }
    }
}

label_enum! {
    /// One of the five Lambda shims.
    LambdaFunction {
        /// DynamoDB Streams processor.
        StreamProcessor => function::STREAM_PROCESSOR,
        /// EventBridge router.
        EventRouter => function::EVENT_ROUTER,
        /// EventBridge transformer.
        EventTransformer => function::EVENT_TRANSFORMER,
        /// Scheduled health checker.
        HealthChecker => function::HEALTH_CHECKER,
        /// API Gateway authorizer.
        Authorizer => function::AUTHORIZER,
    }
}

label_enum! {
    /// An actor kind: the `actor` label of restart counts (never a per-instance name).
    ActorKind {
        /// The root supervisor.
        RootSupervisor => actor::ROOT_SUPERVISOR,
        /// The consumer-group actor.
        ConsumerGroup => actor::CONSUMER_GROUP,
        /// A partition consumer.
        PartitionConsumer => actor::PARTITION_CONSUMER,
        /// A CDC applier.
        CdcApplier => actor::CDC_APPLIER,
        /// The EventBridge publisher.
        EventBridgePublisher => actor::EVENTBRIDGE_PUBLISHER,
        /// The DLQ writer.
        DlqWriter => actor::DLQ_WRITER,
        /// A region router.
        RegionRouter => actor::REGION_ROUTER,
        /// A health prober.
        HealthProber => actor::HEALTH_PROBER,
        /// The Schema Registry cache.
        SchemaRegistry => actor::SCHEMA_REGISTRY,
    }
}
