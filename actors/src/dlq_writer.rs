//! [`DlqWriter`]: writes [`DeadLetterEvent`]s to the SQS dead-letter queue in batches of up to
//! ten, and acknowledges each request once all of its letters are in the queue.
//!
//! A dead letter is the last place an event can go, so the writer never gives up on one: a
//! failing queue is retried with backoff for as long as it fails (logged and counted), and the
//! partitions whose offsets wait on it stall — backpressure — rather than lose the event.

use crate::ack::Ack;
use crate::ports::DeadLetterSink;
use crate::retry::backoff;
use crate::telemetry::{DeadLettered, DlqSource, InternalEvent, Metrics};
use eda_config::DlqConfig;
use eda_core::dead_letter::DeadLetterEvent;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::collections::HashMap;
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
    /// Records waiting for a batch, with the request they belong to.
    buffer: Vec<(DeadLetterEvent, u64)>,
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
                state.buffer.extend(letters.into_iter().map(|l| (l, id)));
                if state.buffer.len() >= state.config.max_batch || state.config.linger_ms == 0 {
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

impl DlqWriterState {
    /// Sends full batches (and, with `all`, the last partial one).
    async fn flush_full_batches(&mut self, all: bool) {
        let max = self.config.max_batch.max(1);
        while self.buffer.len() >= max || (all && !self.buffer.is_empty()) {
            let take = self.buffer.len().min(max);
            let batch: Vec<(DeadLetterEvent, u64)> = self.buffer.drain(..take).collect();
            self.send_until_accepted(batch).await;
        }
    }

    /// Sends one batch, retrying what SQS did not accept until it does.
    async fn send_until_accepted(&mut self, mut batch: Vec<(DeadLetterEvent, u64)>) {
        let mut attempt = 0u32;
        while !batch.is_empty() {
            let mut messages = Vec::with_capacity(batch.len());
            let mut sendable = Vec::with_capacity(batch.len());
            for (letter, request) in batch.drain(..) {
                match letter.to_sqs_message(self.config.max_message_bytes) {
                    Ok(message) => {
                        messages.push(message);
                        sendable.push((letter, request));
                    }
                    Err(err) => {
                        // Cannot happen with the validated size limits; never lose the event
                        // silently either way.
                        tracing::error!(
                            dead_letter_id = %letter.id,
                            error = %err,
                            "Dead letter cannot be encoded for SQS; it is logged here instead."
                        );
                        tracing::error!(record = ?letter, "Unsendable dead letter.");
                        self.settle_one(request);
                    }
                }
            }
            let results = self.sink.send_batch(&messages).await;
            let mut failed = Vec::new();
            let mut last_error = None;
            match results {
                Ok(per_message) => {
                    for ((letter, request), result) in sendable.into_iter().zip(per_message) {
                        match result {
                            Ok(()) => {
                                tracing::trace!(
                                    dead_letter_id = %letter.id,
                                    correlation_id = letter.correlation_id.as_deref().unwrap_or(""),
                                    stage = %letter.stage,
                                    "Dead letter written."
                                );
                                emit_dead_lettered(&self.metrics, &letter);
                                self.settle_one(request);
                            }
                            Err(err) => {
                                last_error = Some(err);
                                failed.push((letter, request));
                            }
                        }
                    }
                }
                Err(err) => {
                    last_error = Some(err);
                    failed = sendable;
                }
            }
            if let Some(err) = last_error {
                attempt += 1;
                tracing::error!(
                    error = %err,
                    attempt,
                    waiting = failed.len(),
                    "Dead-letter queue did not accept messages; retrying."
                );
                let delay = backoff(&self.config.retry, attempt, &mut self.rng);
                tokio::time::sleep(delay).await;
            }
            batch = failed;
        }
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
