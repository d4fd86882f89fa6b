//! The outbound capabilities eda needs from AWS, one small trait each, so the actors and the
//! Lambda shims depend on what they do rather than on the SDK.
//!
//! The real adapters live in [`crate::aws`] (DynamoDB, EventBridge, SQS); tests run them
//! against DynamoDB Local and ministack. A hand-written implementation is only for an error path the
//! local servers cannot produce, and says so in its name.

use eda_core::apply_plan::PlannedWrite;
use eda_core::apply_plan::WriteOutcome;
use eda_core::cdc::TableMetadata;
use eda_core::dead_letter::SqsMessage;
use eda_core::eventbridge::EventBridgeEntry;
use eda_core::failure::ErrorClass;
use futures_util::future::BoxFuture;

/// A call to AWS that did not succeed, classified so retry loops and metrics agree.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{service} {operation} failed ({}): {message}", class.as_str())]
pub struct SinkError {
    /// The service called (`dynamodb`, `eventbridge`, `sqs`).
    pub service: &'static str,
    /// The operation (`PutItem`, `PutEvents`, `SendMessageBatch`...).
    pub operation: &'static str,
    /// What kind of failure; decides whether to retry.
    pub class: ErrorClass,
    /// The service's error code and message, or the transport error.
    pub message: String,
}

impl SinkError {
    /// Throttling, timeouts, connection failures and 5xx are worth another attempt; anything the
    /// service refused on its merits (validation, access, missing resource) is not.
    pub fn is_retryable(&self) -> bool {
        self.class.is_retryable()
    }
}

/// Executes the apply plan's conditional writes (DynamoDB: gathered `BatchExecuteStatement`s,
/// else the guarded `PutItem`).
pub trait ItemWriter: Send + Sync + 'static {
    /// Writes one planned item under its sequence guard.
    fn write<'a>(
        &'a self,
        write: &'a PlannedWrite,
    ) -> BoxFuture<'a, Result<WriteOutcome, SinkError>>;
}

/// Sends events to an EventBridge bus (`PutEvents`).
pub trait EventPublisher: Send + Sync + 'static {
    /// Sends one call's worth of entries (at most 10, within 256 KB: plan them with
    /// [`eda_core::eventbridge::plan_batches`]). On a call that EventBridge answered, returns
    /// one result per entry, in order: `Ok(event id)` or the entry's error.
    fn put_events<'a>(
        &'a self,
        entries: &'a [EventBridgeEntry],
    ) -> BoxFuture<'a, Result<Vec<Result<String, SinkError>>, SinkError>>;

    /// The bus the entries go to when they name none (labels and logs).
    fn bus(&self) -> &str;

    /// The region of the bus (labels and logs).
    fn region(&self) -> &str;
}

/// A dead letter read back from the queue, for redrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedDeadLetter {
    /// The message body (a `DeadLetterEvent` as JSON).
    pub body: String,
    /// The handle to delete it with once it is replayed.
    pub receipt_handle: String,
}

/// The dead-letter queue (SQS).
pub trait DeadLetterSink: Send + Sync + 'static {
    /// Sends up to 10 messages in one call. On a call that SQS answered, returns one result per
    /// message, in order.
    fn send_batch<'a>(
        &'a self,
        messages: &'a [SqsMessage],
    ) -> BoxFuture<'a, Result<Vec<Result<(), SinkError>>, SinkError>>;

    /// Receives up to `max` (at most 10) messages, waiting up to `wait_secs` for the first.
    fn receive<'a>(
        &'a self,
        max: i32,
        wait_secs: i32,
    ) -> BoxFuture<'a, Result<Vec<ReceivedDeadLetter>, SinkError>>;

    /// Deletes a message that was replayed.
    fn delete<'a>(&'a self, receipt_handle: &'a str) -> BoxFuture<'a, Result<(), SinkError>>;
}

/// The durable record of Qlik table structures (DynamoDB): what metadata messages said, kept
/// beyond the process and partition that read them.
pub trait TableStructureStore: Send + Sync + 'static {
    /// Records one version of a table's structure unless that version is recorded already (the
    /// recorded one stands). Returns whether this call recorded it.
    fn record<'a>(&'a self, structure: &'a TableMetadata)
        -> BoxFuture<'a, Result<bool, SinkError>>;

    /// Every recorded version of the table `qualified` (`SCHEMA.TABLE`).
    fn versions<'a>(
        &'a self,
        qualified: &'a str,
    ) -> BoxFuture<'a, Result<Vec<TableMetadata>, SinkError>>;

    /// Every recorded version of every table.
    fn all(&self) -> BoxFuture<'_, Result<Vec<TableMetadata>, SinkError>>;

    /// Where the structures are kept (logs and errors).
    fn name(&self) -> &str;
}

/// A message read from the owed queue, with what deletes it once its event is delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedOwed {
    /// The message body (an [`eda_core::owed::OwedEvent`] as JSON).
    pub body: String,
    /// The handle to delete it with.
    pub receipt_handle: String,
}

/// The owed queue (SQS) of one target region: cross-region events that region could not take
/// when they were sent, kept until its router delivers them. It lives in the other region, so it
/// is reachable while the target is down.
pub trait OwedQueue: Send + Sync + 'static {
    /// Sends up to 10 message bodies in one call. On a call that SQS answered, returns one
    /// result per body, in order.
    fn send_batch<'a>(
        &'a self,
        bodies: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Result<(), SinkError>>, SinkError>>;

    /// Receives up to `max` (at most 10) messages without waiting, hidden from other readers for
    /// `visibility_secs`: a reader that dies leaves them to the next after that.
    fn receive<'a>(
        &'a self,
        max: i32,
        visibility_secs: i32,
    ) -> BoxFuture<'a, Result<Vec<ReceivedOwed>, SinkError>>;

    /// Deletes up to 10 messages whose events were delivered (or dead-lettered).
    fn delete_batch<'a>(
        &'a self,
        receipt_handles: &'a [String],
    ) -> BoxFuture<'a, Result<(), SinkError>>;

    /// How many messages the queue holds, visible or being delivered (SQS's approximate count).
    fn depth(&self) -> BoxFuture<'_, Result<u64, SinkError>>;
}
