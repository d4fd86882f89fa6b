//! Every metric name, label name and enumerable label value eda exposes, in one place.
//!
//! Dashboards, alerts and the HPA's lag metric depend on these strings; keeping them here means a
//! rename is one diff that a reviewer cannot miss. Metric names are registered under the
//! [`PREFIX`] registry, counters gain `_total` at encoding and histograms registered with a unit
//! gain `_seconds`, so the exposed names are the ones documented on each constant.

/// Prefix of every metric, so eda's series never collide with a sidecar's on the same scrape.
pub const PREFIX: &str = "eda";

/// Metric base names as registered (before the prefix, unit and `_total` suffixes).
pub mod metric {
    /// `eda_kafka_messages_consumed_total{topic}`: messages read from Kafka.
    pub const KAFKA_MESSAGES_CONSUMED: &str = "kafka_messages_consumed";
    /// `eda_kafka_consumer_lag_messages{topic,partition}`: the partition's end (the broker's high
    /// watermark, or one past the last offset read if that is higher) minus the offset committed
    /// for it: unread messages plus messages read and not settled.
    pub const KAFKA_CONSUMER_LAG: &str = "kafka_consumer_lag_messages";
    /// `eda_kafka_oldest_unsettled_seconds{topic,partition}`: how long the oldest message read and
    /// not yet settled has waited; 0 when none waits. It grows while a partition is stuck.
    pub const KAFKA_OLDEST_UNSETTLED: &str = "kafka_oldest_unsettled";
    /// `eda_kafka_partition_held{topic,partition}`: 1 while the partition waits for a failing
    /// dependency (a message its decoding needs the Schema Registry or the metadata store for).
    pub const KAFKA_PARTITION_HELD: &str = "kafka_partition_held";
    /// `eda_kafka_held_retries_total{topic,error_class}`: attempts on held messages that failed
    /// again, by the class of the failure.
    pub const KAFKA_HELD_RETRIES: &str = "kafka_held_retries";
    /// `eda_kafka_partitions_assigned`: partitions assigned to this member of the consumer group
    /// now (0 while it is out of its group).
    pub const KAFKA_PARTITIONS_ASSIGNED: &str = "kafka_partitions_assigned";
    /// `eda_kafka_rejoin_restarts_total`: consumer-group members restarted because they stayed
    /// out of their group past `kafka.rejoin_timeout_ms` while the brokers answered.
    pub const KAFKA_REJOIN_RESTARTS: &str = "kafka_rejoin_restarts";
    /// `eda_trace_headers_malformed_total{topic}`: trace headers (`traceparent`, `tracestate`,
    /// the correlation id) present on a message but malformed, left out; the message was applied
    /// and published all the same, without them.
    pub const TRACE_HEADERS_MALFORMED: &str = "trace_headers_malformed";
    /// `eda_kafka_processing_duration_seconds{topic}`: from fetch to every effect acknowledged.
    pub const KAFKA_PROCESSING_DURATION: &str = "kafka_processing_duration";
    /// `eda_kafka_end_to_end_duration_seconds{topic}`: from a message's Kafka timestamp (its
    /// producer's create time, or the broker's append time) to every effect acknowledged.
    pub const KAFKA_END_TO_END_DURATION: &str = "kafka_end_to_end_duration";
    /// `eda_apply_stage_duration_seconds{stage}`: the read-to-settled time of messages read from
    /// Kafka, split into the stages of their batch: `wait` (read to the applier starting the
    /// batch: decoding, and the applier busy with the batch before), `write` (the batch's
    /// DynamoDB writes, retries included), `deliver` (written to every event published, routed
    /// and dead-lettered). One observation per message and stage (a key-changing UPDATE, applied
    /// as two changes, counts twice: its parts may go to different appliers).
    pub const APPLY_STAGE_DURATION: &str = "apply_stage_duration";
    /// `eda_aws_call_duration_seconds{region,operation}`: one HTTP exchange of a per-message AWS
    /// call (`PutItem`, `BatchExecuteStatement`, `PutEvents`), from taking a connection to the
    /// answer read, whatever the answer; a timed-out attempt counts its full timeout.
    pub const AWS_CALL_DURATION: &str = "aws_call_duration";
    /// `eda_cdc_events_total{operation}`: CDC changes applied, by Qlik operation.
    pub const CDC_EVENTS: &str = "cdc_events";
    /// `eda_events_republished_total`: change events published again because the table already
    /// held their change (a replay after a crash or rebalance, a redelivery, a retried write):
    /// the duplicates consumers de-duplicate on the event id. Counted where the guard refused a
    /// write; a write that went through counts every change it covers as applied (the `PutItem`
    /// asks for no old item), so older changes coalesced into it are not counted here.
    pub const EVENTS_REPUBLISHED: &str = "events_republished";
    /// `eda_oversize_changes_total{kind}`: changes too large for a limit: events published by
    /// claim check (over EventBridge's 256 KB), rows written with columns compressed (over
    /// DynamoDB's 400 KB).
    pub const OVERSIZE_CHANGES: &str = "oversize_changes";
    /// `eda_dynamodb_operations_total{operation,outcome}`: DynamoDB calls by result.
    pub const DYNAMODB_OPERATIONS: &str = "dynamodb_operations";
    /// `eda_dynamodb_errors_total{operation,error_class}`: failed DynamoDB calls.
    pub const DYNAMODB_ERRORS: &str = "dynamodb_errors";
    /// `eda_eventbridge_events_published_total{bus,region}`: entries EventBridge accepted.
    pub const EVENTBRIDGE_PUBLISHED: &str = "eventbridge_events_published";
    /// `eda_eventbridge_errors_total{bus,region}`: entries EventBridge rejected or calls failed.
    pub const EVENTBRIDGE_ERRORS: &str = "eventbridge_errors";
    /// `eda_circuit_breaker_state{region}`: 0 closed, 1 open, 2 half-open, 3 forced open,
    /// 4 disabled.
    pub const BREAKER_STATE: &str = "circuit_breaker_state";
    /// `eda_circuit_breaker_transitions_total{region,state}`: transitions into `state`.
    pub const BREAKER_TRANSITIONS: &str = "circuit_breaker_transitions";
    /// `eda_circuit_breaker_failures_total{region}`: calls the breaker recorded as failed.
    pub const BREAKER_FAILURES: &str = "circuit_breaker_failures";
    /// `eda_circuit_breaker_rejected_total{region}`: calls refused while not closed.
    pub const BREAKER_REJECTED: &str = "circuit_breaker_rejected";
    /// `eda_cross_region_events_total{source_region,target_region}`: events routed across.
    pub const CROSS_REGION_EVENTS: &str = "cross_region_events";
    /// `eda_cross_region_latency_seconds{source_region,target_region}`: event age on delivery.
    pub const CROSS_REGION_LATENCY: &str = "cross_region_latency";
    /// `eda_region_events_owed{region}`: cross-region events owed to the region (its bus could
    /// not take them when they were sent), waiting in its owed queue, as last sampled.
    pub const REGION_EVENTS_OWED: &str = "region_events_owed";
    /// `eda_region_events_owed_recorded_total{region}`: events recorded as owed to the region.
    pub const REGION_EVENTS_OWED_RECORDED: &str = "region_events_owed_recorded";
    /// `eda_region_events_recovered_total{region}`: owed events delivered to the region after
    /// it came back.
    pub const REGION_EVENTS_RECOVERED: &str = "region_events_recovered";
    /// `eda_dlq_messages_total{source,error_class}`: dead-letter records written.
    pub const DLQ_MESSAGES: &str = "dlq_messages";
    /// `eda_dlq_unsendable_total`: dead letters SQS refused in every form (even with no
    /// payload); each is logged in full instead. Anything above 0 needs a look.
    pub const DLQ_UNSENDABLE: &str = "dlq_unsendable";
    /// `eda_dlq_redrive_refused_total`: dead letters a redrive left in the queue because they
    /// are older than `apply.tombstone_ttl_secs` (replaying one could bring back a row deleted
    /// since); `--force-older-than-tombstones` replays them.
    pub const DLQ_REDRIVE_REFUSED: &str = "dlq_redrive_refused";
    /// `eda_actor_restarts_total{actor}`: restarts performed by supervisors.
    pub const ACTOR_RESTARTS: &str = "actor_restarts";
    /// `eda_health_probe_duration_seconds{region,service}`: probe round trip.
    pub const HEALTH_PROBE_DURATION: &str = "health_probe_duration";
    /// `eda_health_status{region,service}`: 0 healthy, 1 degraded, 2 unhealthy.
    pub const HEALTH_STATUS: &str = "health_status";
    /// `eda_lambda_invocations_total{function}`: Lambda shim invocations.
    pub const LAMBDA_INVOCATIONS: &str = "lambda_invocations";
    /// `eda_lambda_errors_total{function}`: invocations that returned an error.
    pub const LAMBDA_ERRORS: &str = "lambda_errors";
    /// `eda_lambda_duration_seconds{function}`: handler time per invocation.
    pub const LAMBDA_DURATION: &str = "lambda_duration";
}

/// Label names.
pub mod label {
    /// A Kafka topic (from configuration, so bounded).
    pub const TOPIC: &str = "topic";
    /// A Kafka partition number (bounded by the topic's partition count).
    pub const PARTITION: &str = "partition";
    /// An operation: a Qlik CDC operation, a DynamoDB API call, or a per-message AWS call.
    pub const OPERATION: &str = "operation";
    /// How a call ended.
    pub const OUTCOME: &str = "outcome";
    /// A coarse error class, never an error message.
    pub const ERROR_CLASS: &str = "error_class";
    /// An EventBridge bus name (from configuration).
    pub const BUS: &str = "bus";
    /// An AWS region (from configuration).
    pub const REGION: &str = "region";
    /// The region an event came from.
    pub const SOURCE_REGION: &str = "source_region";
    /// The region an event was routed to.
    pub const TARGET_REGION: &str = "target_region";
    /// A circuit breaker state.
    pub const STATE: &str = "state";
    /// Where a dead-lettered message came from.
    pub const SOURCE: &str = "source";
    /// An actor kind (never an actor id or a partition-specific name).
    pub const ACTOR: &str = "actor";
    /// A probed AWS service.
    pub const SERVICE: &str = "service";
    /// A Lambda shim.
    pub const FUNCTION: &str = "function";
    /// What kind of oversize change.
    pub const KIND: &str = "kind";
    /// A stage of a batch's way from read to settled.
    pub const STAGE: &str = "stage";
}

/// Values of the `stage` label of `eda_apply_stage_duration_seconds`.
pub mod apply_stage {
    /// Read to the applier starting the message's batch.
    pub const WAIT: &str = "wait";
    /// The batch's DynamoDB writes.
    pub const WRITE: &str = "write";
    /// Written to every event published, routed and dead-lettered.
    pub const DELIVER: &str = "deliver";
}

/// Values of the `operation` label of `eda_aws_call_duration_seconds`: the AWS calls eda makes
/// per message.
pub mod aws_call {
    /// DynamoDB `PutItem`.
    pub const PUT_ITEM: &str = "put_item";
    /// DynamoDB `BatchExecuteStatement` (one call, however many statements).
    pub const BATCH_EXECUTE_STATEMENT: &str = "batch_execute_statement";
    /// EventBridge `PutEvents`.
    pub const PUT_EVENTS: &str = "put_events";
}

/// Values of the `kind` label of `eda_oversize_changes_total`.
pub mod oversize {
    /// An event published by claim check: its row left out, the item named.
    pub const EVENT_BY_REFERENCE: &str = "event_by_reference";
    /// A row written with its largest columns zstd-compressed in `_zcols`.
    pub const ROW_COMPRESSED: &str = "row_compressed";
}

/// Values of the `operation` label for CDC events.
pub mod cdc_operation {
    /// A Qlik `INSERT`.
    pub const INSERT: &str = "insert";
    /// A Qlik `UPDATE`.
    pub const UPDATE: &str = "update";
    /// A Qlik `DELETE`.
    pub const DELETE: &str = "delete";
    /// A Qlik `REFRESH` (full-load row).
    pub const REFRESH: &str = "refresh";
}

/// Values of the `operation` label for DynamoDB calls.
pub mod dynamodb_operation {
    /// `PutItem`.
    pub const PUT_ITEM: &str = "put_item";
    /// `UpdateItem`.
    pub const UPDATE_ITEM: &str = "update_item";
    /// `DeleteItem`.
    pub const DELETE_ITEM: &str = "delete_item";
    /// `GetItem`.
    pub const GET_ITEM: &str = "get_item";
    /// `BatchWriteItem`.
    pub const BATCH_WRITE_ITEM: &str = "batch_write_item";
    /// `BatchExecuteStatement`, counted per statement.
    pub const BATCH_EXECUTE_STATEMENT: &str = "batch_execute_statement";
    /// `TransactWriteItems`.
    pub const TRANSACT_WRITE_ITEMS: &str = "transact_write_items";
    /// `ListTables` (the health probe).
    pub const LIST_TABLES: &str = "list_tables";
}

/// Values of the `outcome` label.
pub mod outcome {
    /// The call succeeded.
    pub const SUCCESS: &str = "success";
    /// A sequence guard refused an older change: success, the newer state is already there.
    pub const CONDITION_FAILED: &str = "condition_failed";
    /// The service throttled the call (it will be retried).
    pub const THROTTLED: &str = "throttled";
    /// The call failed.
    pub const ERROR: &str = "error";
}

/// Values of the `state` label and the numeric codes of the breaker state gauge.
pub mod breaker_state {
    /// Calls flow; failures are counted. Gauge value 0.
    pub const CLOSED: &str = "closed";
    /// Calls are refused. Gauge value 1.
    pub const OPEN: &str = "open";
    /// A limited number of trial calls flow. Gauge value 2.
    pub const HALF_OPEN: &str = "half_open";
    /// Opened by an operator or the health prober. Gauge value 3.
    pub const FORCED_OPEN: &str = "forced_open";
    /// The breaker lets everything through and records nothing. Gauge value 4.
    pub const DISABLED: &str = "disabled";
}

/// Values of the `source` label of DLQ messages.
pub mod dlq_source {
    /// A Kafka partition consumer.
    pub const KAFKA: &str = "kafka";
    /// A Lambda shim invocation.
    pub const LAMBDA: &str = "lambda";
    /// A DynamoDB Streams record.
    pub const STREAM: &str = "stream";
    /// An EventBridge event.
    pub const EVENTBRIDGE: &str = "eventbridge";
}

/// Values of the `service` label.
pub mod service {
    /// Amazon DynamoDB.
    pub const DYNAMODB: &str = "dynamodb";
    /// Amazon EventBridge.
    pub const EVENTBRIDGE: &str = "eventbridge";
    /// Amazon SQS.
    pub const SQS: &str = "sqs";
}

/// Values of the `function` label (the five Lambda shims).
pub mod function {
    /// DynamoDB Streams to EventBridge and cross-region routing.
    pub const STREAM_PROCESSOR: &str = "stream-processor";
    /// EventBridge to the region routers.
    pub const EVENT_ROUTER: &str = "event-router";
    /// EventBridge to the transformer.
    pub const EVENT_TRANSFORMER: &str = "event-transformer";
    /// Scheduled health checks.
    pub const HEALTH_CHECKER: &str = "health-checker";
    /// API Gateway JWT authorizer.
    pub const AUTHORIZER: &str = "authorizer";
}

/// Values of the `actor` label: actor kinds, one per actor type.
pub mod actor {
    /// The root of the supervision tree.
    pub const ROOT_SUPERVISOR: &str = "root_supervisor";
    /// The Kafka consumer-group actor.
    pub const CONSUMER_GROUP: &str = "consumer_group";
    /// One per assigned partition.
    pub const PARTITION_CONSUMER: &str = "partition_consumer";
    /// A CDC applier of the pool.
    pub const CDC_APPLIER: &str = "cdc_applier";
    /// The EventBridge publisher.
    pub const EVENTBRIDGE_PUBLISHER: &str = "eventbridge_publisher";
    /// The SQS dead-letter writer.
    pub const DLQ_WRITER: &str = "dlq_writer";
    /// A per-region router owning a circuit breaker.
    pub const REGION_ROUTER: &str = "region_router";
    /// A per-region health prober.
    pub const HEALTH_PROBER: &str = "health_prober";
    /// The Schema Registry cache.
    pub const SCHEMA_REGISTRY: &str = "schema_registry";
}

/// Names of health states (logged, and documented as codes of `eda_health_status`).
pub mod health_status {
    /// Gauge value 0.
    pub const HEALTHY: &str = "healthy";
    /// Gauge value 1.
    pub const DEGRADED: &str = "degraded";
    /// Gauge value 2.
    pub const UNHEALTHY: &str = "unhealthy";
}
