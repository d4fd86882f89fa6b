//! Guarded writes gathered into `BatchExecuteStatement` calls: up to 25 PartiQL statements per
//! exchange instead of one `PutItem` each.
//!
//! # Why and what a user pays
//!
//! The profile (`docs/perf/profile.md`) put one HTTP exchange per change at about a third of the
//! daemon's CPU. `BatchExecuteStatement` carries 25 writes in one exchange, bills the same write
//! units as 25 `PutItem`s (1 per KB of the larger of the old and new item; a refused condition
//! costs one, as a refused `PutItem` does) and answers each statement on its own. It needs the
//! IAM actions `dynamodb:PartiQLInsert` and `dynamodb:PartiQLUpdate` besides `dynamodb:PutItem`.
//!
//! # The statements, and why they write what a `PutItem` writes
//!
//! A `PutItem` replaces the whole item under the guard (`attribute_not_exists(pk) OR _seq <
//! :seq`). PartiQL has no such statement, so each write takes the form that is exact for the case
//! it expects, and every other case falls back to the guarded `PutItem`:
//!
//! - an `INSERT` or `REFRESH` change: `INSERT INTO "T" VALUE {'a': ?, …}` with the whole item.
//!   It only writes where no item exists (else `DuplicateItem`): exactly the guard's first
//!   branch.
//! - an `UPDATE` change: `UPDATE "T" SET "a"=?, … WHERE "pk"=? AND "_seq"<? AND "_shape"=?`,
//!   setting every attribute but the key. `_shape` fingerprints the item's attribute names
//!   ([`eda_core::apply_plan::shape_of`]), so the statement only applies where the stored item
//!   has the same names as the new one — and then setting every attribute leaves exactly the new
//!   item, as a `PutItem` would. A dropped column, a tombstone, an item written before `_shape`
//!   existed: the condition fails, and the `PutItem` decides.
//! - a `DELETE` (its tombstone drops every column): a `PutItem`, never a statement.
//!
//! A statement refused for any reason but throttling or a server error — its condition (when
//! the answer does not show a newer stored `_seq`), an existing item, a validation error, a
//! denied PartiQL action — is written again as the guarded `PutItem`, whose answer is the write's
//! outcome. So the table ends as it would with `PutItem`s alone; the price of a refusal is a
//! second exchange for that write (a replay after a crash, a key's first `UPDATE`, a delete of a
//! row). An `AccessDenied` also turns the batching off for this writer (logged once): a role
//! without the PartiQL actions keeps working on `PutItem`s.
//!
//! # Gathering
//!
//! The applier keeps many writes in flight (`apply.max_concurrency` per applier, all appliers
//! sharing one writer). Each write puts its statement on a queue; the first one of a round
//! spawns a task that yields once (so the writes started in the same poll join) and then sends
//! what has queued, in calls of at most `apply.batch_statements` statements with distinct keys.
//! Nothing waits for more to arrive. A write's future learns its outcome when its call is
//! answered, so the applier's settlement, retries and offsets are unchanged: a kill at any point
//! leaves a write applied or not, and the replay's guard sorts it out.

use super::super::lean::{self, json, CallError, LeanClient};
use crate::ports::SinkError;
use crate::telemetry::{
    DynamoDbCall, DynamoDbOperation, DynamoDbOutcome, InternalEvent as _, Metrics,
};
use eda_core::apply_plan::{AttrValue, PlannedWrite, OP_ATTR, PK_ATTR, SEQ_ATTR, SHAPE_ATTR};
use eda_core::failure::ErrorClass;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// The `X-Amz-Target` of `BatchExecuteStatement`.
const BATCH_EXECUTE: &str = "DynamoDB_20120810.BatchExecuteStatement";

/// The most statements one `BatchExecuteStatement` takes.
pub const MAX_STATEMENTS: usize = 25;

/// The longest PartiQL statement DynamoDB takes (characters of the statement's text).
const MAX_STATEMENT_TEXT: usize = 8192;

/// A write whose statement (its values included) is larger goes alone, as a `PutItem`: it
/// would make its batch's body, and the wait of the 24 others, large.
const MAX_STATEMENT_BYTES: usize = 64 * 1024;

/// What became of a write sent as a statement.
#[derive(Debug)]
pub(super) enum Answer {
    /// The statement wrote the item.
    Applied,
    /// The guard refused it: the stored item's `_seq` is this one or newer.
    Superseded(String),
    /// Write it as a guarded `PutItem`; its answer is the outcome.
    PutItem,
    /// The call or the statement failed (throttled, a server error, no answer).
    Failed(SinkError),
}

/// One write's statement, queued.
struct Job {
    /// `{"Statement":…,"Parameters":[…]…}`, ready to go into the call's body.
    statement: Vec<u8>,
    /// The target table and `pk`: one call may not name an item twice.
    table: String,
    pk: String,
    /// The write's sequence, to read a refusal's stored `_seq` against.
    sequence: String,
    reply: oneshot::Sender<Answer>,
}

/// The queue and the calls of one writer.
#[derive(Debug)]
pub(super) struct Batcher {
    lean: LeanClient,
    /// Statements per call (2..=25).
    per_call: usize,
    queue: Mutex<Queue>,
    /// Set once DynamoDB said the role may not use PartiQL: writes go as `PutItem`s since.
    denied: AtomicBool,
    /// Where each statement's outcome is counted, if anywhere.
    metrics: Option<Arc<Metrics>>,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    /// A task will send what is queued.
    scheduled: bool,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Queue({} jobs)", self.jobs.len())
    }
}

impl Batcher {
    /// A batcher sending `per_call` statements per call (at most [`MAX_STATEMENTS`]).
    pub(super) fn new(
        lean: LeanClient,
        per_call: usize,
        metrics: Option<Arc<Metrics>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            lean,
            per_call: per_call.clamp(1, MAX_STATEMENTS),
            queue: Mutex::new(Queue::default()),
            denied: AtomicBool::new(false),
            metrics,
        })
    }

    /// Statements per call.
    pub(super) fn per_call(&self) -> usize {
        self.per_call
    }

    /// Counts one statement's outcome.
    fn count(&self, outcome: DynamoDbOutcome) {
        if let Some(metrics) = &self.metrics {
            DynamoDbCall {
                operation: DynamoDbOperation::BatchExecuteStatement,
                outcome,
            }
            .emit(metrics);
        }
    }

    /// Sends `write` in the next call, or answers [`Answer::PutItem`] at once when it does not
    /// go as a statement (a tombstone, a statement too long, PartiQL denied).
    pub(super) async fn write(self: &Arc<Self>, write: &PlannedWrite) -> Answer {
        if self.denied.load(Ordering::Relaxed) {
            return Answer::PutItem;
        }
        let Some(statement) = statement_of(write) else {
            return Answer::PutItem;
        };
        let (reply, answer) = oneshot::channel();
        let job = Job {
            statement,
            table: write.table_name.clone(),
            pk: write.pk().to_owned(),
            sequence: write.sequence.clone(),
            reply,
        };
        let spawn = {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.jobs.push(job);
            !std::mem::replace(&mut queue.scheduled, true)
        };
        if spawn {
            let batcher = Arc::clone(self);
            tokio::spawn(async move { batcher.send_queued().await });
        }
        answer
            .await
            .unwrap_or_else(|_| Answer::Failed(unanswered()))
    }

    /// Sends every queued statement, in calls of distinct keys, concurrently.
    async fn send_queued(self: Arc<Self>) {
        // The writes started in the same poll as the first one queue before this runs on.
        tokio::task::yield_now().await;
        let jobs = {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.scheduled = false;
            std::mem::take(&mut queue.jobs)
        };
        let calls = split(jobs, self.per_call);
        futures_util::future::join_all(calls.into_iter().map(|jobs| self.call(jobs))).await;
    }

    /// One `BatchExecuteStatement` of `jobs`; each job gets its answer.
    async fn call(&self, jobs: Vec<Job>) {
        let body = lean::body_with(|out| {
            out.extend_from_slice(b"{\"Statements\":[");
            for (i, job) in jobs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&job.statement);
            }
            out.extend_from_slice(b"]}");
        });
        match self.lean.call(BATCH_EXECUTE, body).await {
            Ok(answer) => {
                let responses = serde_json::from_slice::<BatchAnswer>(&answer)
                    .ok()
                    .map(|a| a.responses)
                    .filter(|r| r.len() == jobs.len());
                let Some(responses) = responses else {
                    // Not the answer of these statements: each write goes again as a PutItem.
                    for job in jobs {
                        self.count(DynamoDbOutcome::Failed(ErrorClass::Server));
                        let _ = job.reply.send(Answer::PutItem);
                    }
                    return;
                };
                for (job, response) in jobs.into_iter().zip(responses) {
                    let (answer, outcome) = self.answer_of(response, &job.sequence);
                    self.count(outcome);
                    let _ = job.reply.send(answer);
                }
            }
            Err(CallError::Service(err)) if err.code.starts_with("AccessDenied") => {
                self.deny(err.message.as_deref().unwrap_or(""));
                for job in jobs {
                    self.count(DynamoDbOutcome::Failed(ErrorClass::Client));
                    let _ = job.reply.send(Answer::PutItem);
                }
            }
            Err(err) => {
                let err = err.into_sink_error("dynamodb", "BatchExecuteStatement");
                for job in jobs {
                    self.count(DynamoDbOutcome::Failed(err.class));
                    let _ = job.reply.send(Answer::Failed(err.clone()));
                }
            }
        }
    }

    /// What the answer to one statement means for its write, and how it counts.
    fn answer_of(&self, response: StatementAnswer, sequence: &str) -> (Answer, DynamoDbOutcome) {
        let Some(error) = response.error else {
            return (Answer::Applied, DynamoDbOutcome::Success);
        };
        let failed = |class| {
            (
                Answer::Failed(statement_error(class, &error.code, &error.message)),
                DynamoDbOutcome::Failed(class),
            )
        };
        match error.code.as_str() {
            "ConditionalCheckFailed" | "DuplicateItem" => {
                let stored = error.item.as_ref().and_then(|item| item.seq.as_ref());
                let answer = match stored.and_then(|seq| seq.s.as_ref()) {
                    // The stored change is this one or newer: the guard refused it.
                    Some(stored) if stored.as_str() >= sequence => {
                        Answer::Superseded(stored.clone())
                    }
                    // Absent, another shape, an existing item: the PutItem decides.
                    _ => Answer::PutItem,
                };
                (answer, DynamoDbOutcome::ConditionFailed)
            }
            "ThrottlingError"
            | "ProvisionedThroughputExceeded"
            | "RequestLimitExceeded"
            | "TransactionConflict" => failed(ErrorClass::Throttled),
            code if code.starts_with("Internal") => failed(ErrorClass::Server),
            code => {
                if code.starts_with("AccessDenied") {
                    self.deny(&error.message);
                }
                // ValidationError, and whatever else: the PutItem decides.
                (Answer::PutItem, DynamoDbOutcome::Failed(ErrorClass::Client))
            }
        }
    }

    fn deny(&self, message: &str) {
        if !self.denied.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                message,
                "DynamoDB denied PartiQL (dynamodb:PartiQLInsert / dynamodb:PartiQLUpdate); \
                 writing every change with its own PutItem from now on. Grant both actions to \
                 the role to batch the writes again."
            );
        }
    }
}

/// The failure of a write whose call ended without telling it anything (its task stopped: the
/// runtime shutting down, or a panic): like a lost answer, the statement may have been applied,
/// so it is retryable — the guard makes the retry harmless — and never a dead letter.
fn unanswered() -> SinkError {
    SinkError {
        service: "dynamodb",
        operation: "BatchExecuteStatement",
        class: ErrorClass::Timeout,
        message: "the batch call ended without an answer for this statement; it may have been \
                  applied"
            .into(),
    }
}

/// A failed statement as the ports report it.
fn statement_error(class: ErrorClass, code: &str, message: &str) -> SinkError {
    SinkError {
        service: "dynamodb",
        operation: "BatchExecuteStatement",
        class,
        message: format!("{code}: {message}"),
    }
}

/// `jobs` in calls of at most `per_call`, no call naming one item twice (a later write of a key
/// already in a call waits for the next one), in queue order.
fn split(jobs: Vec<Job>, per_call: usize) -> Vec<Vec<Job>> {
    let mut calls: Vec<Vec<Job>> = Vec::new();
    for job in jobs {
        let open = calls.iter_mut().find(|call| {
            call.len() < per_call
                && !call
                    .iter()
                    .any(|other| other.pk == job.pk && other.table == job.table)
        });
        match open {
            Some(call) => call.push(job),
            None => calls.push(vec![job]),
        }
    }
    calls
}

/// The statement of `write` as one member of `Statements`, or `None` when it goes as a
/// `PutItem` (see the module's doc).
pub(super) fn statement_of(write: &PlannedWrite) -> Option<Vec<u8>> {
    if write.tombstone {
        return None;
    }
    let insert = match write.item.get(OP_ATTR) {
        Some(AttrValue::S(op)) => op == "INSERT" || op == "REFRESH",
        _ => false,
    };
    let shape = write.item.get(SHAPE_ATTR)?;
    let table = &write.table_name;
    if table.contains('"') {
        return None;
    }
    let mut text = String::with_capacity(64 + write.item.len() * 16);
    let mut parameters: Vec<&AttrValue> = Vec::with_capacity(write.item.len() + 3);
    if insert {
        text.push_str("INSERT INTO \"");
        text.push_str(table);
        text.push_str("\" VALUE {");
        for (i, (name, value)) in write.item.iter().enumerate() {
            if i > 0 {
                text.push_str(", ");
            }
            quoted(&mut text, name, '\'');
            text.push_str(": ?");
            parameters.push(value);
        }
        text.push('}');
    } else {
        text.push_str("UPDATE \"");
        text.push_str(table);
        text.push_str("\" SET ");
        let mut first = true;
        for (name, value) in &write.item {
            if name == PK_ATTR || name == SHAPE_ATTR {
                continue;
            }
            if !first {
                text.push_str(", ");
            }
            first = false;
            quoted(&mut text, name, '"');
            text.push_str("=?");
            parameters.push(value);
        }
        text.push_str(" WHERE \"");
        text.push_str(PK_ATTR);
        text.push_str("\"=? AND \"");
        text.push_str(SEQ_ATTR);
        text.push_str("\"<? AND \"");
        text.push_str(SHAPE_ATTR);
        text.push_str("\"=?");
        parameters.push(write.item.get(PK_ATTR)?);
        parameters.push(write.item.get(SEQ_ATTR)?);
        parameters.push(shape);
    }
    if text.chars().count() > MAX_STATEMENT_TEXT {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() + 64 + write.item.len() * 48);
    out.push(b'{');
    json::key(&mut out, "Statement");
    json::string(&mut out, &text);
    out.push(b',');
    json::key(&mut out, "Parameters");
    out.push(b'[');
    for (i, value) in parameters.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::attribute(&mut out, value);
    }
    out.push(b']');
    if !insert {
        out.push(b',');
        json::key(&mut out, "ReturnValuesOnConditionCheckFailure");
        out.extend_from_slice(b"\"ALL_OLD\"");
    }
    out.push(b'}');
    (out.len() <= MAX_STATEMENT_BYTES).then_some(out)
}

/// Appends `name` between `quote`s, a `quote` inside it doubled (PartiQL's escape for both its
/// identifiers, `"…"`, and its strings, `'…'`).
fn quoted(text: &mut String, name: &str, quote: char) {
    text.push(quote);
    for c in name.chars() {
        if c == quote {
            text.push(quote);
        }
        text.push(c);
    }
    text.push(quote);
}

/// What eda reads of a `BatchExecuteStatement` answer.
#[derive(serde::Deserialize)]
struct BatchAnswer {
    #[serde(rename = "Responses")]
    responses: Vec<StatementAnswer>,
}

/// One statement's answer: nothing eda reads when it succeeded.
#[derive(serde::Deserialize)]
struct StatementAnswer {
    #[serde(rename = "Error")]
    error: Option<StatementError>,
}

#[derive(serde::Deserialize)]
struct StatementError {
    #[serde(rename = "Code", default)]
    code: String,
    #[serde(rename = "Message", default)]
    message: String,
    /// The stored item of a refused condition (`ReturnValuesOnConditionCheckFailure=ALL_OLD`;
    /// DynamoDB Local leaves it out).
    #[serde(rename = "Item")]
    item: Option<super::StoredSeq>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use eda_core::apply_plan::{plan, PlanOptions, TableRouting};
    use eda_core::cdc::{CdcEvent, KeyColumn, Operation, TableRef};
    use serde_json::{json, Map, Value};

    fn write_of(op: Operation, columns: Value) -> PlannedWrite {
        let Value::Object(after) = columns else {
            panic!("an object")
        };
        let event = CdcEvent {
            table: TableRef::new("dbo", "t"),
            operation: op,
            key: vec![KeyColumn {
                name: "ID".into(),
                value: json!(1),
            }],
            after: (op != Operation::Delete).then(|| Map::clone(&after).into()),
            before: (op == Operation::Delete).then(|| after.into()),
            change_sequence: "20230911032325000000000000000000001".into(),
            source_timestamp: None,
            transaction_id: None,
            stream_position: None,
            kafka: None,
            trace: None,
        };
        let opts = PlanOptions {
            now_epoch_secs: 0,
            tombstone_ttl_secs: 60,
            refresh_started_at: None,
        };
        plan(&[event], &TableRouting::new("cdc"), &opts)
            .writes
            .remove(0)
    }

    fn parsed(write: &PlannedWrite) -> Value {
        serde_json::from_slice(&statement_of(write).expect("a statement")).expect("JSON")
    }

    #[test]
    fn an_update_sets_every_attribute_but_the_key_where_the_sequence_is_older_and_the_shape_the_same(
    ) {
        let write = write_of(Operation::Update, json!({"ID": 1, "it's": "a", "q\"d": 2}));
        let statement = parsed(&write);
        assert_eq!(
            statement["Statement"],
            "UPDATE \"cdc\" SET \"ID\"=?, \"_deleted\"=?, \"_key\"=?, \"_op\"=?, \"_seq\"=?, \
             \"_table\"=?, \"it's\"=?, \"q\"\"d\"=? WHERE \"pk\"=? AND \"_seq\"<? AND \"_shape\"=?"
        );
        let parameters = statement["Parameters"].as_array().expect("a list");
        assert_eq!(parameters.len(), 11);
        assert_eq!(parameters[6], json!({"S": "a"}));
        assert_eq!(parameters[8], json!({"S": write.pk()}));
        assert_eq!(parameters[9], json!({"S": write.sequence}));
        assert_eq!(
            parameters[10],
            json!({"S": eda_core::apply_plan::shape_of(&write.item)})
        );
        assert_eq!(statement["ReturnValuesOnConditionCheckFailure"], "ALL_OLD");
    }

    #[test]
    fn an_insert_gives_the_whole_item_and_a_delete_goes_as_a_put_item() {
        let write = write_of(Operation::Insert, json!({"ID": 1, "it's": "a"}));
        let statement = parsed(&write);
        let text = statement["Statement"].as_str().expect("text");
        assert!(
            text.starts_with("INSERT INTO \"cdc\" VALUE {'ID': ?, "),
            "{text}"
        );
        assert!(text.contains("'it''s': ?"), "{text}");
        assert_eq!(
            statement["Parameters"].as_array().expect("a list").len(),
            write.item.len()
        );
        assert!(statement
            .get("ReturnValuesOnConditionCheckFailure")
            .is_none());
        let delete = write_of(Operation::Delete, json!({"ID": 1, "it's": "a"}));
        assert!(statement_of(&delete).is_none());
    }

    #[test]
    fn a_statement_over_the_length_limit_goes_as_a_put_item() {
        let columns: Map<String, Value> = (0..400)
            .map(|i| (format!("a_rather_long_column_name_{i:04}"), json!(i)))
            .collect();
        let write = write_of(Operation::Update, Value::Object(columns));
        assert!(statement_of(&write).is_none());
    }

    #[test]
    fn a_write_left_without_an_answer_is_retried_not_dead_lettered() {
        assert!(unanswered().is_retryable());
    }

    #[test]
    fn a_call_never_names_one_item_twice() {
        let job = |pk: &str| Job {
            statement: Vec::new(),
            table: "cdc".into(),
            pk: pk.into(),
            sequence: String::new(),
            reply: oneshot::channel().0,
        };
        let calls = split(vec![job("a"), job("b"), job("a"), job("c"), job("a")], 2);
        let keys: Vec<Vec<&str>> = calls
            .iter()
            .map(|call| call.iter().map(|j| j.pk.as_str()).collect())
            .collect();
        assert_eq!(keys, vec![vec!["a", "b"], vec!["a", "c"], vec!["a"]]);
    }
}
