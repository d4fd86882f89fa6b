//! The pure core of eda: every decision eda makes, as synchronous functions over plain data.
//!
//! Nothing here performs I/O, spawns tasks or reads the clock directly (time is passed in or
//! injected through a clock trait), so the actors (`eda-actors`) and the Lambda shims share it and
//! tests are fast and deterministic. The rule is the crate boundary: this crate's `Cargo.toml` has
//! no tokio, AWS SDK, rdkafka, ractor or tracing, so the compiler refuses a core that does I/O.
//!
//! # Layout
//!
//! - [`cdc`]: the `CdcEvent` model and its decoders (Qlik Replicate JSON, Confluent-framed Avro,
//!   Debezium).
//! - [`change_event`]: an applied change as a business event (`BaseEvent`), with a stable id.
//! - [`claim_check`]: a change event too large to travel whole goes by reference to its item, the
//!   same on every path and in both regions.
//! - [`apply_plan`]: from a batch of changes to the sequence-guarded DynamoDB writes, which
//!   applier owns a key, and (`apply_plan::verdict`) from the writes' outcomes to each change's
//!   fate: publish, skip or dead-letter.
//! - [`transform`]: validation, enrichment and normalization of `BaseEvent`s.
//! - [`breaker`]: the circuit breaker state machine.
//! - [`failover`]: where a region router sends traffic, and the bounded buffer for events no
//!   region can take.
//! - [`health`]: per-service probe results to per-region status and `HealthCheckEvent`.
//! - [`envelope`]: `CrossRegionEvent`, zstd compression and the EventBridge size check.
//! - [`owed`]: `OwedEvent`, the record of a cross-region event its target region has not
//!   received yet (kept in the owed queue, or as a `route` dead letter).
//! - [`eventbridge`]: EventBridge entry sizing and the `PutEvents` batch planner.
//! - [`json_string`]: a JSON string written into a byte buffer, as serde_json escapes it.
//! - [`jwt`]: token verification and API Gateway authorizer responses.
//! - [`failure`]: the one vocabulary of failure: [`ErrorClass`](failure::ErrorClass) (retries,
//!   metric labels, dead letters) and the dead letter's [`Stage`](failure::Stage).
//! - [`dead_letter`]: the `DeadLetterEvent` written to SQS.
//! - [`stream_record`]: `EventRecord`, a DynamoDB Streams record.
//! - [`stream_change`]: a DynamoDB Streams record back to the `CdcEvent` it records.
//! - [`offsets`]: the per-partition watermark of acknowledged offsets.
//! - [`restart`]: the supervisors' restart policy (backoff, at most N restarts in T, escalate).
//! - [`rejoin`]: what a consumer-group member does about being out of its group (restart it,
//!   fail liveness) while the brokers answer.
//! - [`trace`]: W3C trace context from Kafka headers, strictly read, and the forms it travels
//!   in (event metadata, X-Ray `TraceHeader`, the envelope, the item's `_trace`).
//! - [`alloc`]: the global allocator of every eda binary and bench (mimalloc).

pub mod alloc;
pub mod apply_plan;
pub mod breaker;
pub mod cdc;
pub mod change_event;
pub mod claim_check;
pub mod dead_letter;
pub mod envelope;
pub mod eventbridge;
pub mod failover;
pub mod failure;
pub mod health;
pub mod json_string;
pub mod jwt;
pub mod offsets;
pub mod owed;
pub mod rejoin;
pub mod restart;
pub mod stream_change;
pub mod stream_record;
#[cfg(test)]
mod test_json;
pub mod trace;
pub mod transform;
