//! [`PartitionConsumer`]: reads one assigned partition, decodes its messages, spreads the
//! changes over the CDC appliers by key, and stores the partition's offset only up to the
//! contiguous prefix of messages whose effects are all acknowledged.
//!
//! A reader task owns the rdkafka partition queue and sends batches (up to `kafka.batch_max`
//! messages, or what arrived within `kafka.batch_linger_ms`) to the actor. Each message read takes
//! a permit from a semaphore of `kafka.max_in_flight_per_partition` permits and its payload and
//! key bytes from one of `kafka.max_in_flight_bytes_per_partition`. They are given back when the
//! message leaves the tracker, that is when it and every message before it are settled, not
//! when it alone is: a head message that never settles would otherwise let the reader go on
//! past it for ever while the messages behind it pile up in the tracker. With no permit left
//! the reader waits instead of reading; librdkafka keeps prefetching until its bounded queue for
//! the partition is full, then fetches nothing more. So memory stays bounded whatever the input
//! rate and whatever is stuck, without pausing the partition at the broker (`read_partition`
//! says why librdkafka's `pause` is not used).
//!
//! Where the partition stands (its commit point, the last offset read, since when the oldest
//! unsettled message waits) is kept in a [`PartitionProgress`] the consumer group reads on its
//! own schedule, so a partition that stopped moving still shows it: lag against the committed
//! offset, and the age of its oldest unsettled message.
//!
//! One key always goes to the same applier, and an applier handles its batches in order, so the
//! changes of a key are applied in partition order while different keys run in parallel. An
//! UPDATE that changes its row's key is sent as two changes, the DELETE of the old key to the old
//! key's applier and the INSERT of the new key to the new key's, so both keys keep their order;
//! its offset counts as settled once both are.
//!
//! A crash here leaves nothing to repair: only offsets whose effects are all acknowledged were
//! stored, so the group, restarted by the root supervisor, reads again from the last commit and
//! the sequence guard absorbs what is applied twice. `Drain` (revoke, shutdown) stops the reader
//! and answers once everything read is acknowledged, so the commit that follows covers it.

use crate::ack::{Ack, Settled};
use crate::cdc_applier::CdcApplierMsg;
use crate::dlq_writer::DlqWriterMsg;
use crate::kafka::client::{GroupConsumer, GroupContext};
use crate::kafka::message_decoder::{DecodeFailure, Decoded, MessageDecoder};
use crate::kafka::progress::PartitionProgress;
use crate::retry::backoff;
use crate::telemetry::{
    InternalEvent, MessagesConsumed, MessagesProcessed, Metrics, PartitionHeld, PartitionReleased,
    Readiness, TraceHeadersMalformed,
};
use eda_config::RetryConfig;
use eda_core::apply_plan::{applier_for, split_key_change};
use eda_core::cdc::{CdcEvent, KafkaCoordinates, TableRef};
use eda_core::dead_letter::{DeadLetterEvent, DeadLetterSource};
use eda_core::failure::Stage;
use eda_core::offsets::{OffsetError, OffsetTracker};
use eda_core::trace::MessageTrace;
use ractor::{Actor, ActorProcessingErr, ActorRef, DerivedActorRef, RpcReplyPort};
use rdkafka::consumer::stream_consumer::StreamPartitionQueue;
use rdkafka::consumer::Consumer;
use rdkafka::message::{BorrowedMessage, Headers, Message, OwnedHeaders};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// The partition consumer actor.
#[derive(Debug, Clone, Copy, Default)]
pub struct PartitionConsumer;

/// Messages a [`PartitionConsumer`] handles.
#[derive(Debug)]
pub enum PartitionConsumerMsg {
    /// The reader fetched these messages, in offset order.
    Fetched(Vec<ReadMessage>),
    /// The effects of these offsets are settled.
    Acked(Vec<i64>),
    /// Stop reading and answer once everything read is acknowledged (revoke, shutdown).
    Drain(RpcReplyPort<()>),
    /// Time to try the held messages again (a dependency decoding needs was failing).
    RetryHeld,
}

impl From<Settled> for PartitionConsumerMsg {
    fn from(settled: Settled) -> Self {
        PartitionConsumerMsg::Acked(settled.0)
    }
}

/// The way back for [`Settled`] when the mailbox refuses it (ractor's derived references need
/// it to return an unsent message).
impl TryFrom<PartitionConsumerMsg> for Settled {
    type Error = PartitionConsumerMsg;

    fn try_from(msg: PartitionConsumerMsg) -> Result<Self, Self::Error> {
        match msg {
            PartitionConsumerMsg::Acked(offsets) => Ok(Settled(offsets)),
            other => Err(other),
        }
    }
}

/// A message read from the partition, taken out of librdkafka's buffer with what the actor
/// uses of it: its offset, payload, key and headers. The topic is the partition's and is not
/// copied into every message, and a message without headers has nothing to copy for them
/// (rdkafka's `OwnedMessage` copies the topic name too).
#[derive(Debug)]
pub struct ReadMessage {
    /// Offset within the partition.
    offset: i64,
    /// The value; `None` for a tombstone.
    payload: Option<Vec<u8>>,
    /// The key.
    key: Option<Vec<u8>>,
    /// The headers, when it has any.
    headers: Option<OwnedHeaders>,
    /// When the reader took it from librdkafka: where its read-to-settled time starts (before
    /// the reader's batch linger and the actor's mailbox).
    received: Instant,
    /// Its Kafka timestamp (create or log-append time), milliseconds since the epoch: where its
    /// end-to-end time starts.
    timestamp_ms: Option<i64>,
}

impl ReadMessage {
    /// Copies what the actor needs out of a message that borrows librdkafka's buffer.
    fn detach(message: &BorrowedMessage<'_>) -> Self {
        Self {
            offset: message.offset(),
            payload: message.payload().map(<[u8]>::to_vec),
            key: message.key().map(<[u8]>::to_vec),
            headers: message.headers().map(|headers| headers.detach()),
            received: Instant::now(),
            // A timestamp at or before the epoch is a producer's default, not a time.
            timestamp_ms: message.timestamp().to_millis().filter(|ms| *ms > 0),
        }
    }

    fn payload(&self) -> Option<&[u8]> {
        self.payload.as_deref()
    }

    fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    /// The headers as `(name, value)` pairs (none when it has none).
    fn header_pairs(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        self.headers
            .iter()
            .flat_map(|headers| headers.iter().map(|h| (h.key, h.value)))
    }
}

/// How to build a [`PartitionConsumer`].
pub struct PartitionConsumerArgs {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The partition's queue, split off the group consumer.
    pub queue: StreamPartitionQueue<GroupContext>,
    /// The group consumer, for the offset store.
    pub consumer: Arc<GroupConsumer>,
    /// The partition's decoder.
    pub decoder: MessageDecoder,
    /// The appliers changes are spread over.
    pub appliers: Vec<ActorRef<CdcApplierMsg>>,
    /// Where undecodable messages go.
    pub dlq: ActorRef<DlqWriterMsg>,
    /// Messages per batch.
    pub batch_max: usize,
    /// How long a batch waits to fill.
    pub batch_linger: Duration,
    /// Messages read and not yet settled (with every message before them), at most.
    pub max_in_flight: usize,
    /// Payload and key bytes of those messages, at most (a larger message still passes alone).
    pub max_in_flight_bytes: u32,
    /// Where the partition stands, for the consumer group's lag and age gauges.
    pub progress: Arc<PartitionProgress>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// `/readyz` learns of a held partition here.
    pub readiness: Arc<Readiness>,
    /// Where a bounded pass (`eda-daemon replay --mode one-off`) stops: the reader hands on no
    /// message at or past this offset, and reads nothing more. `None`: read for ever.
    pub end_offset: Option<i64>,
}

/// A [`PartitionConsumer`]'s state.
pub struct PartitionConsumerState {
    /// The topic, shared by every message's coordinates and dead-letter source.
    topic: Arc<str>,
    partition: i32,
    /// The group consumer, for the offset store; let go in `post_stop`, because ractor hands a
    /// stopped actor's state to its supervisor (the group), which closes the consumer only once
    /// nothing holds it.
    consumer: Option<Arc<GroupConsumer>>,
    decoder: MessageDecoder,
    appliers: Vec<ActorRef<CdcApplierMsg>>,
    dlq: ActorRef<DlqWriterMsg>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    /// Read offsets and their acknowledgements: the commit watermark.
    tracker: OffsetTracker,
    /// Room for messages in flight; the reader takes, and a message gives its permit back when
    /// it leaves the tracker.
    permits: Arc<Semaphore>,
    /// Room for bytes in flight, taken and given back like `permits`.
    byte_permits: Arc<Semaphore>,
    /// `kafka.max_in_flight_bytes_per_partition`: what one message may take at most.
    max_in_flight_bytes: u32,
    /// The tracked offsets not yet committable, in order: when each was read (the
    /// processing-duration histogram, the oldest unsettled message's age) and the bytes it
    /// holds. An entry leaves, giving back its permits, once the commit passes it.
    reads: BTreeMap<i64, Read>,
    /// The highest offset read (`None`: nothing yet).
    last_read: Option<i64>,
    /// How long each message an acknowledgement completed took, kept between calls so timing
    /// a batch of them allocates nothing.
    processed: Vec<Duration>,
    /// The same messages' times since their Kafka timestamps (those that have one).
    since_produced: Vec<Duration>,
    /// Shared with the consumer group, which reports it.
    progress: Arc<PartitionProgress>,
    /// The reader task.
    reader: Option<JoinHandle<()>>,
    /// Callers waiting for the partition to drain.
    drain_waiters: Vec<RpcReplyPort<()>>,
    /// Messages read but not dispatched, in offset order, because decoding the first of them
    /// failed for a reason that passes (the Schema Registry or the metadata store down): the
    /// partition waits for it rather than dead-letter good data.
    held: VecDeque<ReadMessage>,
    /// Why the partition is held, since when, and the attempts so far (`None`: not held).
    hold: Option<Hold>,
    /// Set on `Drain`: held messages are no longer retried (they are read again after the
    /// rebalance or restart, from the committed offset).
    draining: bool,
    /// Jitter for the hold's backoff.
    rng: fastrand::Rng,
}

/// A message read and not yet committable.
struct Read {
    /// When it was tracked.
    at: Instant,
    /// Its Kafka timestamp, milliseconds since the epoch.
    produced_ms: Option<i64>,
    /// Byte permits it holds.
    bytes: u32,
}

/// Milliseconds since the epoch on this host's clock.
fn epoch_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

/// The time from a Kafka timestamp (`produced_ms`) to `now_ms`; nothing when the timestamp is
/// ahead of this host's clock (another host's clock, skewed).
fn since_produced(now_ms: i64, produced_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(now_ms.saturating_sub(produced_ms)).unwrap_or(0))
}

/// The byte permits a message takes: its payload and key, at most the whole budget, so a
/// message larger than the budget is still read (alone).
fn byte_cost(message: &ReadMessage, budget: u32) -> u32 {
    let len = message.payload().map_or(0, <[u8]>::len) + message.key().map_or(0, <[u8]>::len);
    len.min(budget as usize) as u32
}

/// A partition waiting for a failing dependency.
struct Hold {
    /// When the first attempt failed.
    since: Instant,
    /// Attempts made.
    attempts: u32,
}

/// The backoff between attempts on a held message: from 100 ms, doubling, at most 5 s, jittered;
/// no limit on the attempts (a retryable failure holds the partition until it passes).
fn hold_backoff() -> RetryConfig {
    RetryConfig {
        max_attempts: 0,
        base_delay_ms: 100,
        max_delay_ms: 5_000,
        max_elapsed_ms: 0,
    }
}

impl Actor for PartitionConsumer {
    type Msg = PartitionConsumerMsg;
    type State = PartitionConsumerState;
    type Arguments = PartitionConsumerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: PartitionConsumerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        if args.appliers.is_empty() {
            return Err("a partition consumer needs at least one applier".into());
        }
        let permits = Arc::new(Semaphore::new(args.max_in_flight.max(1)));
        let max_in_flight_bytes = args.max_in_flight_bytes.max(1);
        let byte_permits = Arc::new(Semaphore::new(max_in_flight_bytes as usize));
        let topic: Arc<str> = args.topic.into();
        let reader = tokio::spawn(read_partition(Reader {
            queue: args.queue,
            actor: myself,
            permits: permits.clone(),
            byte_permits: byte_permits.clone(),
            max_in_flight_bytes,
            topic: Arc::clone(&topic),
            partition: args.partition,
            batch_max: args.batch_max.max(1),
            linger: args.batch_linger,
            end: args.end_offset,
        }));
        tracing::info!(topic = %topic, partition = args.partition, "Partition consumer started.");
        Ok(PartitionConsumerState {
            topic,
            partition: args.partition,
            consumer: Some(args.consumer),
            decoder: args.decoder,
            appliers: args.appliers,
            dlq: args.dlq,
            metrics: args.metrics,
            readiness: args.readiness,
            tracker: OffsetTracker::new(),
            permits,
            byte_permits,
            max_in_flight_bytes,
            reads: BTreeMap::new(),
            last_read: None,
            processed: Vec::new(),
            since_produced: Vec::new(),
            progress: args.progress,
            reader: Some(reader),
            drain_waiters: Vec::new(),
            held: VecDeque::new(),
            hold: None,
            draining: false,
            rng: fastrand::Rng::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: PartitionConsumerMsg,
        state: &mut PartitionConsumerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PartitionConsumerMsg::Fetched(batch) => {
                MessagesConsumed {
                    topic: &state.topic,
                    count: batch.len() as u64,
                }
                .emit(&state.metrics);
                if let Some(last) = batch.last() {
                    state.last_read = state.last_read.max(Some(last.offset));
                }
                // Behind held messages, a batch waits its turn: the partition keeps its order.
                let resume = state.held.is_empty();
                state.held.extend(batch);
                if resume && !state.draining {
                    state.dispatch(&myself).await?;
                }
                state.report_progress();
            }
            PartitionConsumerMsg::RetryHeld => {
                if !state.draining {
                    state.dispatch(&myself).await?;
                }
            }
            PartitionConsumerMsg::Acked(offsets) => state.acknowledge(&offsets),
            PartitionConsumerMsg::Drain(reply) => {
                // Kept, so that `post_stop` waits for the aborted reader to let go of the queue.
                if let Some(reader) = &state.reader {
                    reader.abort();
                }
                state.draining = true;
                if state.settled() {
                    let _ = reply.send(());
                } else {
                    state.drain_waiters.push(reply);
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut PartitionConsumerState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(reader) = state.reader.take() {
            reader.abort();
            // Until the aborted task is gone it holds the partition queue, and with it the group
            // consumer, which can only close (and leave the group) once every queue is dropped.
            let _ = reader.await;
        }
        if state.hold.take().is_some() {
            // Whoever reads the partition next holds it again if the dependency is still down.
            PartitionReleased {
                topic: &state.topic,
                partition: state.partition,
            }
            .emit(&state.metrics);
            state
                .readiness
                .set_held(&state.topic, state.partition, None);
        }
        state.consumer = None;
        tracing::info!(
            topic = %state.topic,
            partition = state.partition,
            in_flight = state.tracker.in_flight(),
            "Partition consumer stopped."
        );
        Ok(())
    }
}

impl PartitionConsumerState {
    /// Decodes the held messages in order and sends their parts on, up to the first whose
    /// decoding fails for a reason that passes: that one and those after it stay held, and a
    /// retry is scheduled.
    async fn dispatch(
        &mut self,
        myself: &ActorRef<PartitionConsumerMsg>,
    ) -> Result<(), ActorProcessingErr> {
        let n = self.appliers.len();
        let mut changes: Vec<Vec<CdcEvent>> = (0..n).map(|_| Vec::new()).collect();
        let mut offsets: Vec<Vec<i64>> = (0..n).map(|_| Vec::new()).collect();
        // The oldest read among the messages each acknowledgement covers (messages go in read
        // order, so it is the first one's): where its batch's `wait` stage starts.
        let mut read_at: Vec<Option<Instant>> = vec![None; n];
        let mut letters_read_at = None;
        let mut nothing_to_do = Vec::new();
        let mut letters = Vec::new();
        let mut letter_offsets = Vec::new();
        while let Some(message) = self.held.pop_front() {
            let offset = message.offset;
            // A held message was tracked when it was first tried.
            let retried = self.hold.is_some();
            if !retried {
                if let Err(OffsetError::NotIncreasing { offset, last }) = self.tracker.track(offset)
                {
                    // The broker delivered a message this consumer already read (a re-fetch
                    // after a fetch error): it is tracked already and its effects are on their
                    // way.
                    tracing::debug!(
                        topic = %self.topic,
                        partition = self.partition,
                        offset,
                        last,
                        "Message delivered again by the broker; already in hand."
                    );
                    // The reader took permits for it; they come back now, as nothing tracks it.
                    self.permits.add_permits(1);
                    self.byte_permits
                        .add_permits(byte_cost(&message, self.max_in_flight_bytes) as usize);
                    continue;
                }
                let bytes = byte_cost(&message, self.max_in_flight_bytes);
                self.reads.insert(
                    offset,
                    Read {
                        at: message.received,
                        produced_ms: message.timestamp_ms,
                        bytes,
                    },
                );
            }
            let origin = KafkaCoordinates {
                topic: Arc::clone(&self.topic),
                partition: self.partition,
                offset,
            };
            let named = message
                .headers
                .is_some()
                .then(|| self.decoder.header_table(message.header_pairs()))
                .flatten();
            let header_table = named.as_ref().map(TableRef::qualified);
            let decoded = self
                .decoder
                .decode(message.payload(), message.key(), origin, named)
                .await;
            match decoded {
                Err(failure) if failure.class.is_retryable() => {
                    self.held.push_front(message);
                    self.hold_on(myself, offset, &failure);
                    break;
                }
                _ => self.release_hold(offset),
            }
            match decoded {
                Ok(Decoded::Change(mut event)) => {
                    if message.headers.is_some() {
                        event.trace = self.trace_of(message.header_pairs(), offset);
                    }
                    // A key-changing UPDATE is two changes, each routed by its own key; the
                    // message is settled once both are.
                    let (first, second) = split_key_change(event);
                    if second.is_some() {
                        let _ = self.tracker.add_part(offset);
                    }
                    for change in std::iter::once(first).chain(second) {
                        let slot = applier_for(&change, n);
                        read_at[slot].get_or_insert(message.received);
                        changes[slot].push(change);
                        offsets[slot].push(offset);
                    }
                }
                Ok(Decoded::Nothing) => nothing_to_do.push(offset),
                Err(failure) => {
                    let mut letter = DeadLetterEvent::new(
                        uuid::Uuid::new_v4().to_string(),
                        message.payload().unwrap_or_default(),
                        failure.class,
                        &failure.message,
                        Stage::Decode,
                        DeadLetterSource::Kafka {
                            topic: Arc::clone(&self.topic),
                            partition: self.partition,
                            offset,
                        },
                        chrono::Utc::now(),
                    )
                    .with_kafka_message(message.key(), header_table);
                    letter.attempts = 1;
                    letters_read_at.get_or_insert(message.received);
                    letters.push(letter);
                    letter_offsets.push(offset);
                }
            }
        }
        let settled: DerivedActorRef<Settled> = myself.get_derived();
        for (((applier, events), offsets), read_at) in
            self.appliers.iter().zip(changes).zip(offsets).zip(read_at)
        {
            if events.is_empty() {
                continue;
            }
            applier.cast(CdcApplierMsg::Apply {
                events,
                ack: Ack::Offsets {
                    partition: settled.clone(),
                    offsets,
                    read_at: read_at.unwrap_or_else(Instant::now),
                },
            })?;
        }
        if !letters.is_empty() {
            self.dlq.cast(DlqWriterMsg::Write {
                letters,
                ack: Ack::Offsets {
                    partition: settled,
                    offsets: letter_offsets,
                    read_at: letters_read_at.unwrap_or_else(Instant::now),
                },
            })?;
        }
        self.acknowledge(&nothing_to_do);
        Ok(())
    }

    /// The trace a message's headers give its changes; malformed trace headers are counted and
    /// left out.
    fn trace_of<'h>(
        &self,
        headers: impl IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
        offset: i64,
    ) -> Option<Arc<MessageTrace>> {
        let found = self.decoder.header_trace(headers);
        if let Some(first) = found.malformed.first() {
            TraceHeadersMalformed {
                topic: &self.topic,
                partition: self.partition,
                offset,
                count: found.malformed.len() as u64,
                reason: &first.to_string(),
            }
            .emit(&self.metrics);
        }
        found.trace.map(Arc::new)
    }

    /// Holds the partition at `offset`, whose decoding failed for a reason that passes, and
    /// schedules the next attempt.
    fn hold_on(
        &mut self,
        myself: &ActorRef<PartitionConsumerMsg>,
        offset: i64,
        failure: &DecodeFailure,
    ) {
        let hold = self.hold.get_or_insert_with(|| Hold {
            since: Instant::now(),
            attempts: 0,
        });
        hold.attempts += 1;
        let attempts = hold.attempts;
        let held_for = hold.since.elapsed();
        let delay = backoff(&hold_backoff(), attempts, &mut self.rng);
        PartitionHeld {
            topic: &self.topic,
            partition: self.partition,
            class: failure.class,
            first: attempts == 1,
        }
        .emit(&self.metrics);
        if attempts == 1 {
            self.readiness.set_held(
                &self.topic,
                self.partition,
                Some(format!(
                    "offset {offset} waits ({}): {}",
                    failure.class, failure.message
                )),
            );
        }
        // Loud on the first failure and then every tenth, so a long outage does not flood.
        if attempts == 1 || attempts % 10 == 0 {
            tracing::warn!(
                topic = %self.topic,
                partition = self.partition,
                offset,
                error_class = %failure.class,
                error = %failure.message,
                attempts,
                held_secs = held_for.as_secs(),
                "Partition held: a message cannot be decoded until a dependency recovers; retrying."
            );
        }
        myself.send_after(delay, || PartitionConsumerMsg::RetryHeld);
    }

    /// Lifts the hold, if there was one, once the message at `offset` got through.
    fn release_hold(&mut self, offset: i64) {
        if let Some(hold) = self.hold.take() {
            PartitionReleased {
                topic: &self.topic,
                partition: self.partition,
            }
            .emit(&self.metrics);
            self.readiness.set_held(&self.topic, self.partition, None);
            tracing::info!(
                topic = %self.topic,
                partition = self.partition,
                offset,
                attempts = hold.attempts,
                held_secs = hold.since.elapsed().as_secs_f64(),
                "Partition released: the held message decoded."
            );
        }
    }

    /// Whether everything dispatched is acknowledged: all that a drain waits for (a held
    /// message is not dispatched; it is read again from the committed offset).
    fn settled(&self) -> bool {
        self.tracker.in_flight() == usize::from(self.hold.is_some())
    }

    /// Records acknowledgements, stores the new watermark, and frees the room of the messages
    /// the commit passed for the reader.
    fn acknowledge(&mut self, offsets: &[i64]) {
        let now = Instant::now();
        let wall_ms = epoch_millis();
        self.processed.clear();
        self.since_produced.clear();
        for &offset in offsets {
            if self.tracker.ack(offset) == Ok(true) {
                if let Some(read) = self.reads.get(&offset) {
                    self.processed.push(now.saturating_duration_since(read.at));
                    if let Some(produced) = read.produced_ms {
                        self.since_produced.push(since_produced(wall_ms, produced));
                    }
                }
            }
        }
        if !self.processed.is_empty() {
            MessagesProcessed {
                topic: &self.topic,
                elapsed: &self.processed,
                since_produced: &self.since_produced,
            }
            .emit(&self.metrics);
        }
        self.release_committable();
        if let (Some(next), Some(consumer)) = (self.tracker.take_committable(), &self.consumer) {
            // librdkafka's offset store commits `offset + 1`: hand it the last settled offset.
            if let Err(err) = consumer.store_offset(&self.topic, self.partition, next - 1) {
                tracing::debug!(
                    topic = %self.topic,
                    partition = self.partition,
                    error = %err,
                    "Offset not stored (partition no longer assigned)."
                );
            }
        }
        self.report_progress();
        if self.settled() {
            for waiter in self.drain_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    /// Gives back the permits of the messages the watermark passed: only a message that is
    /// settled, with every message before it, stops counting against the in-flight bounds.
    fn release_committable(&mut self) {
        let Some(watermark) = self.tracker.committable() else {
            return;
        };
        let (mut messages, mut bytes) = (0, 0);
        while let Some(entry) = self.reads.first_entry() {
            if *entry.key() >= watermark {
                break;
            }
            messages += 1;
            bytes += entry.remove().bytes as usize;
        }
        self.permits.add_permits(messages);
        self.byte_permits.add_permits(bytes);
    }

    /// Publishes where the partition stands for the consumer group's gauges.
    fn report_progress(&self) {
        self.progress.record(
            self.tracker.commit_point(),
            self.last_read,
            self.reads.first_key_value().map(|(_, read)| read.at),
        );
    }
}

struct Reader {
    queue: StreamPartitionQueue<GroupContext>,
    actor: ActorRef<PartitionConsumerMsg>,
    permits: Arc<Semaphore>,
    byte_permits: Arc<Semaphore>,
    max_in_flight_bytes: u32,
    topic: Arc<str>,
    partition: i32,
    batch_max: usize,
    linger: Duration,
    /// No message at or past this offset is handed on (a bounded pass).
    end: Option<i64>,
}

impl Reader {
    /// Whether `message` lies past the end of a bounded pass.
    fn past_end(&self, message: &ReadMessage) -> bool {
        self.end.is_some_and(|end| message.offset >= end)
    }

    /// A bounded pass reached its end: what was read so far goes to the actor, and the reader
    /// then waits, holding the queue (dropping it would hand the partition's messages back to
    /// the consumer's main queue), until drain or stop aborts it.
    async fn stop_at_end(self, batch: Vec<ReadMessage>) {
        tracing::info!(topic = %self.topic, partition = self.partition, end = ?self.end, "Bounded pass: the partition reached its end offset.");
        if !batch.is_empty() {
            let _ = self.actor.cast(PartitionConsumerMsg::Fetched(batch));
        }
        std::future::pending::<()>().await;
    }
}

/// The reader task: batches from the partition queue to the actor, within the permits.
///
/// Each message takes a message permit before it is received and its bytes once it is (its size
/// is known only then). A message received without room for its bytes is not lost: the batch
/// so far goes to the actor, and the message starts the next batch once its bytes are free.
///
/// With no permit left the reader stops reading; librdkafka then stops fetching for the
/// partition once its own prefetch queue is full (`queued.max.messages.kbytes`, set in
/// [`crate::kafka::client::consumer_config`]), so nothing more is requested from the broker.
/// An explicit `pause`/`resume` is not used: with split partition queues, librdkafka resumed
/// *after* the messages it had prefetched before the pause (seen here: offsets 300..580 never
/// delivered, and a seek after the resume did not bring them back), which would commit past
/// unprocessed messages.
async fn read_partition(r: Reader) {
    // A message received (its message permit taken) that waits for room for its bytes.
    let mut waiting: Option<ReadMessage> = None;
    loop {
        let first = match waiting.take() {
            Some(message) => message,
            None => {
                let Some(permit) = acquire(&r.permits, 1, &r, "messages").await else {
                    return;
                };
                match r.queue.recv().await {
                    Ok(message) => {
                        permit.forget();
                        let message = ReadMessage::detach(&message);
                        if r.past_end(&message) {
                            return r.stop_at_end(Vec::new()).await;
                        }
                        message
                    }
                    Err(err) => {
                        tracing::warn!(topic = %r.topic, partition = r.partition, error = %err, "Partition read failed.");
                        drop(permit);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                }
            }
        };
        let cost = byte_cost(&first, r.max_in_flight_bytes);
        let Some(bytes) = acquire(&r.byte_permits, cost, &r, "bytes").await else {
            return;
        };
        bytes.forget();
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + r.linger;
        while batch.len() < r.batch_max {
            let Ok(permit) = r.permits.clone().try_acquire_owned() else {
                break;
            };
            let Ok(Ok(message)) = tokio::time::timeout_at(deadline, r.queue.recv()).await else {
                break;
            };
            permit.forget();
            let message = ReadMessage::detach(&message);
            if r.past_end(&message) {
                return r.stop_at_end(batch).await;
            }
            let cost = byte_cost(&message, r.max_in_flight_bytes);
            match r.byte_permits.clone().try_acquire_many_owned(cost) {
                Ok(bytes) => {
                    bytes.forget();
                    batch.push(message);
                }
                Err(_) => {
                    waiting = Some(message);
                    break;
                }
            }
        }
        if r.actor.cast(PartitionConsumerMsg::Fetched(batch)).is_err() {
            return;
        }
    }
}

/// Takes `n` permits of `semaphore`, waiting (and saying so) when there is no room; `None` once
/// the semaphore is closed.
async fn acquire(
    semaphore: &Arc<Semaphore>,
    n: u32,
    r: &Reader,
    what: &'static str,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    if let Ok(permit) = semaphore.clone().try_acquire_many_owned(n) {
        return Some(permit);
    }
    tracing::debug!(
        topic = %r.topic,
        partition = r.partition,
        limit = what,
        "Partition at its in-flight limit; reading stops until the commit moves."
    );
    semaphore.clone().acquire_many_owned(n).await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(payload: usize, key: usize) -> ReadMessage {
        ReadMessage {
            offset: 7,
            payload: Some(vec![b'x'; payload]),
            key: Some(vec![b'k'; key]),
            headers: None,
            received: Instant::now(),
            timestamp_ms: None,
        }
    }

    #[test]
    fn the_time_since_production_is_never_negative() {
        assert_eq!(since_produced(10_250, 10_000), Duration::from_millis(250));
        // A producer whose clock runs ahead of this host's.
        assert_eq!(since_produced(10_000, 10_250), Duration::ZERO);
        assert_eq!(
            since_produced(10_000, i64::MIN),
            Duration::from_millis(u64::MAX >> 1)
        );
    }

    #[test]
    fn a_message_costs_its_payload_and_key_and_never_more_than_the_budget() {
        assert_eq!(byte_cost(&message(1_000, 24), 64 * 1024), 1_024);
        // Larger than the whole budget: it takes all of it, so it is still read, alone.
        assert_eq!(byte_cost(&message(300_000, 24), 64 * 1024), 64 * 1024);
    }
}
