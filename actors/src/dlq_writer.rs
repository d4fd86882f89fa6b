//! [`DlqWriter`]: writes [`DeadLetterEvent`]s to the SQS dead-letter queue in batches within
//! SQS's limits, and acknowledges each request once all of its letters are in the queue.
//!
//! A batch holds at most `dlq.max_batch` letters and `dlq.max_batch_bytes` bytes (bodies and
//! attributes, as SQS counts them); a letter is encoded within `dlq.max_message_bytes`, its
//! payload cut (and flagged) when it is larger.
//!
//! A dead letter is the last place an event can go, so the writer never gives up on one, and no
//! one letter can wedge it:
//! - a failure that passes (throttling, timeouts, lost connections, 5xx) is retried with backoff
//!   for as long as it lasts, and the partitions whose offsets wait on it stall — backpressure —
//!   rather than lose the event;
//! - a batch SQS refuses as too long is split in halves, down to single letters;
//! - a letter SQS refuses on its merits (too large, invalid contents) is shrunk and sent again:
//!   first with its payload cut to [`SHRUNK_BYTES`], then with only its context (source,
//!   coordinates, error, attempts) in [`BARE_BYTES`]. Only a letter refused even bare is logged
//!   in full instead and counted in `eda_dlq_unsendable_total` — the one case the writer
//!   settles without SQS;
//! - a call SQS refuses whole on its merits (access denied, no such queue) concerns every
//!   letter, not one: it is retried with backoff, logged at error, until it is fixed.

use crate::ack::Ack;
use crate::ports::{DeadLetterSink, SinkError};
use crate::retry::backoff;
use crate::telemetry::{DeadLettered, DlqSource, DlqUnsendable, InternalEvent, Metrics};
use eda_config::DlqConfig;
use eda_core::dead_letter::{DeadLetterEvent, SqsMessage};
use eda_core::failure::ErrorClass;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// The DLQ writer actor.
#[derive(Debug, Clone, Copy, Default)]
pub struct DlqWriter;

/// Messages the [`DlqWriter`] handles.
#[derive(Debug)]
pub enum DlqWriterMsg {
    /// Dead-letter these events, then settle `ack`.
    Write {
        /// The records.
        letters: Vec<DeadLetterEvent>,
        /// Settled once every record is in the queue.
        ack: Ack,
    },
    /// The linger timer fired: send what is buffered.
    Flush,
}

/// How to build a [`DlqWriter`].
pub struct DlqWriterArgs {
    /// The queue.
    pub sink: Arc<dyn DeadLetterSink>,
    /// Batch size, linger, size limit and retry settings.
    pub config: DlqConfig,
    /// Where dead letters are counted.
    pub metrics: Arc<Metrics>,
}

/// The [`DlqWriter`]'s mutable state.
pub struct DlqWriterState {
    /// The queue.
    sink: Arc<dyn DeadLetterSink>,
    /// Settings.
    config: DlqConfig,
    /// Counters.
    metrics: Arc<Metrics>,
    /// Letters waiting for a batch, encoded, with the request they belong to.
    buffer: Vec<Outgoing>,
    /// Requests not yet fully written: records left, and who to tell.
    pending: HashMap<u64, (usize, Ack)>,
    /// Next request id.
    next_request: u64,
    /// Whether a flush timer is running.
    flush_scheduled: bool,
    /// Backoff jitter.
    rng: fastrand::Rng,
}

impl Actor for DlqWriter {
    type Msg = DlqWriterMsg;
    type State = DlqWriterState;
    type Arguments = DlqWriterArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: DlqWriterArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(DlqWriterState {
            sink: args.sink,
            config: args.config,
            metrics: args.metrics,
            buffer: Vec::new(),
            pending: HashMap::new(),
            next_request: 0,
            flush_scheduled: false,
            rng: fastrand::Rng::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: DlqWriterMsg,
        state: &mut DlqWriterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DlqWriterMsg::Write { letters, ack } => {
                if letters.is_empty() {
                    ack.settle();
                    return Ok(());
                }
                let id = state.next_request;
                state.next_request += 1;
                state.pending.insert(id, (letters.len(), ack));
                for letter in letters {
                    if let Some(out) = state.encode(letter, id, 0) {
                        state.buffer.push(out);
                    }
                }
                if state.buffer.len() >= state.config.max_batch
                    || state.over_bytes()
                    || state.config.linger_ms == 0
                {
                    state.flush_full_batches(false).await;
                }
                if !state.buffer.is_empty() && !state.flush_scheduled {
                    state.flush_scheduled = true;
                    myself.send_after(state.config.linger(), || DlqWriterMsg::Flush);
                }
            }
            DlqWriterMsg::Flush => {
                state.flush_scheduled = false;
                state.flush_full_batches(true).await;
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut DlqWriterState,
    ) -> Result<(), ActorProcessingErr> {
        // Stopping with letters buffered would lose them: write them first.
        state.flush_full_batches(true).await;
        Ok(())
    }
}

/// A letter's body limit after SQS refused it once on its merits: the payload is cut to fit.
pub const SHRUNK_BYTES: usize = 16 * 1024;

/// A letter's body limit after SQS refused it shrunk: its context, with (almost) no payload.
pub const BARE_BYTES: usize = 2 * 1024;

/// A letter on its way to SQS: encoded, with its size and how far it has been shrunk.
struct Outgoing {
    letter: DeadLetterEvent,
    /// The request it belongs to.
    request: u64,
    /// The message as sent.
    message: SqsMessage,
    /// Body and attribute bytes, as SQS counts them against a batch.
    size: usize,
    /// 0: within `dlq.max_message_bytes`; 1: within [`SHRUNK_BYTES`]; 2: within [`BARE_BYTES`].
    level: u8,
}

impl DlqWriterState {
    /// Encodes `letter` at `level`, or logs it in full when it cannot be (settling it: the log
    /// is then its only record).
    fn encode(&mut self, letter: DeadLetterEvent, request: u64, level: u8) -> Option<Outgoing> {
        let limit = match level {
            0 => self.config.max_message_bytes,
            1 => SHRUNK_BYTES.min(self.config.max_message_bytes),
            _ => BARE_BYTES.min(self.config.max_message_bytes),
        };
        match letter.to_sqs_message(limit) {
            Ok(message) => {
                let size = message.body.len()
                    + message
                        .attributes
                        .iter()
                        .map(|(name, value)| name.len() + "String".len() + value.len())
                        .sum::<usize>();
                Some(Outgoing {
                    letter,
                    request,
                    message,
                    size,
                    level,
                })
            }
            Err(err) => {
                self.unsendable(&letter, &err.to_string());
                self.settle_one(request);
                None
            }
        }
    }

    /// Sends full batches (and, with `all`, the last partial one).
    async fn flush_full_batches(&mut self, all: bool) {
        let max = self.config.max_batch.max(1);
        while !self.buffer.is_empty() {
            let take = self.batch_len(max);
            if take == self.buffer.len() && take < max && !all && !self.over_bytes() {
                // A partial batch waits for more letters or the linger timer.
                break;
            }
            let batch: Vec<Outgoing> = self.buffer.drain(..take).collect();
            self.send_until_accepted(batch).await;
        }
    }

    /// How many letters from the front of the buffer make one batch: at most `max`, and within
    /// `dlq.max_batch_bytes` (a single letter always goes, alone if need be).
    fn batch_len(&self, max: usize) -> usize {
        let mut bytes = 0;
        let mut count = 0;
        for out in self.buffer.iter().take(max) {
            if count > 0 && bytes + out.size > self.config.max_batch_bytes {
                break;
            }
            bytes += out.size;
            count += 1;
        }
        count
    }

    /// Whether the buffer holds more bytes than one batch takes (so it is sent without waiting
    /// for the count to fill).
    fn over_bytes(&self) -> bool {
        self.buffer.iter().map(|o| o.size).sum::<usize>() > self.config.max_batch_bytes
    }

    /// Sends one batch until every letter of it is in the queue (or, refused even bare, logged):
    /// what passes is retried, a batch too long is split, a letter refused is shrunk.
    async fn send_until_accepted(&mut self, batch: Vec<Outgoing>) {
        let mut attempt = 0u32;
        let mut work: VecDeque<Vec<Outgoing>> = VecDeque::from([batch]);
        while let Some(batch) = work.pop_front() {
            let messages: Vec<SqsMessage> = batch.iter().map(|o| o.message.clone()).collect();
            let failure = match self.sink.send_batch(&messages).await {
                Ok(per_message) => {
                    let mut again = Vec::new();
                    let mut last_error = None;
                    for (out, result) in batch.into_iter().zip(per_message) {
                        match result {
                            Ok(()) => self.written(&out),
                            Err(err) if err.is_retryable() => {
                                last_error = Some(err);
                                again.push(out);
                            }
                            Err(err) => {
                                if let Some(smaller) = self.shrink(out, &err) {
                                    work.push_back(vec![smaller]);
                                }
                            }
                        }
                    }
                    match last_error {
                        Some(err) => {
                            work.push_front(again);
                            err
                        }
                        None => {
                            attempt = 0;
                            continue;
                        }
                    }
                }
                Err(err) if err.is_retryable() => {
                    work.push_front(batch);
                    err
                }
                Err(err) if err.class == ErrorClass::TooLarge && batch.len() > 1 => {
                    // Over SQS's batch limit (which a queue may set lower than ours): halves.
                    let mut first = batch;
                    let second = first.split_off(first.len() / 2);
                    tracing::warn!(
                        letters = first.len() + second.len(),
                        error = %err,
                        "Dead-letter batch refused as too long; sending it in halves."
                    );
                    work.push_front(second);
                    work.push_front(first);
                    continue;
                }
                Err(err) if err.class == ErrorClass::TooLarge => {
                    for out in batch {
                        if let Some(smaller) = self.shrink(out, &err) {
                            work.push_front(vec![smaller]);
                        }
                    }
                    continue;
                }
                Err(err) => {
                    // Refused whole on its merits (access denied, no such queue): that is the
                    // queue's trouble, not a letter's; dropping letters would lose events.
                    work.push_front(batch);
                    err
                }
            };
            attempt += 1;
            tracing::error!(
                error = %failure,
                error_class = %failure.class,
                attempt,
                waiting = work.iter().map(Vec::len).sum::<usize>(),
                "Dead-letter queue did not accept messages; retrying."
            );
            let delay = backoff(&self.config.retry, attempt, &mut self.rng);
            tokio::time::sleep(delay).await;
        }
    }

    /// A letter SQS took.
    fn written(&mut self, out: &Outgoing) {
        tracing::trace!(
            dead_letter_id = %out.letter.id,
            correlation_id = out.letter.correlation_id.as_deref().unwrap_or(""),
            stage = %out.letter.stage,
            level = out.level,
            "Dead letter written."
        );
        emit_dead_lettered(&self.metrics, &out.letter);
        self.settle_one(out.request);
    }

    /// The letter SQS refused on its merits, encoded smaller; `None` when it was bare already
    /// (then it is logged in full and settled).
    fn shrink(&mut self, out: Outgoing, err: &SinkError) -> Option<Outgoing> {
        if out.level >= 2 {
            self.unsendable(&out.letter, &err.to_string());
            self.settle_one(out.request);
            return None;
        }
        tracing::warn!(
            dead_letter_id = %out.letter.id,
            bytes = out.size,
            error = %err,
            "SQS refused a dead letter; sending it again with less of its payload."
        );
        self.encode(out.letter, out.request, out.level + 1)
    }

    /// The last resort for a letter SQS will not take in any form: the log gets all of it.
    fn unsendable(&self, letter: &DeadLetterEvent, why: &str) {
        tracing::error!(
            dead_letter_id = %letter.id,
            error = %why,
            record = ?letter,
            "Dead letter cannot be written to SQS in any form; this log line is its only record."
        );
        DlqUnsendable.emit(&self.metrics);
    }

    fn settle_one(&mut self, request: u64) {
        if let Some((left, _)) = self.pending.get_mut(&request) {
            *left -= 1;
            if *left == 0 {
                if let Some((_, ack)) = self.pending.remove(&request) {
                    ack.settle();
                }
            }
        }
    }
}

fn emit_dead_lettered(metrics: &Metrics, letter: &DeadLetterEvent) {
    use eda_core::dead_letter::DeadLetterSource;
    let source = match letter.source {
        DeadLetterSource::Kafka { .. } => DlqSource::Kafka,
        DeadLetterSource::Lambda { .. } => DlqSource::Lambda,
        DeadLetterSource::DynamoDbStream { .. } => DlqSource::Stream,
        DeadLetterSource::EventBridge { .. } => DlqSource::EventBridge,
    };
    let class = letter.error_class;
    DeadLettered {
        source,
        class,
        count: 1,
    }
    .emit(metrics);
}

/// Hands `letters` to the DLQ writer; the receiver resolves once every one is in the queue.
/// `None` when the writer is not running: the pipeline is restarting, so the caller leaves its
/// work unacknowledged and it is read again.
pub fn send_letters(
    dlq: &ActorRef<DlqWriterMsg>,
    letters: Vec<DeadLetterEvent>,
) -> Option<tokio::sync::oneshot::Receiver<()>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    dlq.cast(DlqWriterMsg::Write {
        letters,
        ack: Ack::Notify(tx),
    })
    .ok()?;
    Some(rx)
}

/// Starts a DLQ writer outside any supervision tree: for callers that run for one job or one
/// Lambda execution environment (`dlq redrive`, the Lambda shims) rather than under the daemon's
/// root supervisor.
pub async fn spawn_unsupervised(
    config: &DlqConfig,
    sink: Arc<dyn DeadLetterSink>,
    metrics: Arc<Metrics>,
) -> Result<ActorRef<DlqWriterMsg>, ractor::SpawnErr> {
    let args = DlqWriterArgs {
        sink,
        config: config.clone(),
        metrics,
    };
    Actor::spawn(None, DlqWriter, args)
        .await
        .map(|(dlq, _)| dlq)
}
