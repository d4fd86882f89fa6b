//! [`PartitionConsumer`]: reads one assigned partition, decodes its messages, spreads the
//! changes over the CDC appliers by key, and stores the partition's offset only up to the
//! contiguous prefix of messages whose effects are all acknowledged.
//!
//! A reader task owns the rdkafka partition queue and sends batches (up to `kafka.batch_max`
//! messages, or what arrived within `kafka.batch_linger_ms`) to the actor. Each message read takes
//! a permit from a semaphore of `kafka.max_in_flight_per_partition` permits, and its
//! acknowledgement gives the permit back. With no permit left the reader waits for one instead of
//! reading; librdkafka keeps prefetching until its bounded queue for the partition is full, then
//! fetches nothing more. So memory stays bounded whatever the input rate, without pausing the
//! partition at the broker (`read_partition` says why librdkafka's `pause` is not used).
//!
//! One key always goes to the same applier, and an applier handles its batches in order, so the
//! changes of a key are applied in partition order while different keys run in parallel.
//!
//! A crash here leaves nothing to repair: only offsets whose effects are all acknowledged were
//! stored, so the group, restarted by the root supervisor, reads again from the last commit and
//! the sequence guard absorbs what is applied twice. `Drain` (revoke, shutdown) stops the reader
//! and answers once everything read is acknowledged, so the commit that follows covers it.

use crate::ack::{Ack, Settled};
use crate::cdc_applier::CdcApplierMsg;
use crate::dlq_writer::DlqWriterMsg;
use crate::kafka::client::{GroupConsumer, GroupContext};
use crate::kafka::message_decoder::{Decoded, MessageDecoder};
use crate::telemetry::{InternalEvent, MessageProcessed, MessagesConsumed, Metrics};
use eda_core::apply_plan::applier_for;
use eda_core::cdc::{CdcEvent, KafkaCoordinates};
use eda_core::dead_letter::{DeadLetterEvent, DeadLetterSource};
use eda_core::failure::Stage;
use eda_core::offsets::{OffsetError, OffsetTracker};
use ractor::{Actor, ActorProcessingErr, ActorRef, DerivedActorRef, RpcReplyPort};
use rdkafka::consumer::stream_consumer::StreamPartitionQueue;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Message, OwnedMessage};
use std::collections::HashMap;
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
    Fetched(Vec<OwnedMessage>),
    /// The effects of these offsets are settled.
    Acked(Vec<i64>),
    /// Stop reading and answer once everything read is acknowledged (revoke, shutdown).
    Drain(RpcReplyPort<()>),
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
    /// Messages read and not yet acknowledged, at most.
    pub max_in_flight: usize,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// A [`PartitionConsumer`]'s state.
pub struct PartitionConsumerState {
    topic: String,
    partition: i32,
    /// The group consumer, for the offset store; let go in `post_stop`, because ractor hands a
    /// stopped actor's state to its supervisor (the group), which closes the consumer only once
    /// nothing holds it.
    consumer: Option<Arc<GroupConsumer>>,
    decoder: MessageDecoder,
    appliers: Vec<ActorRef<CdcApplierMsg>>,
    dlq: ActorRef<DlqWriterMsg>,
    metrics: Arc<Metrics>,
    /// Read offsets and their acknowledgements: the commit watermark.
    tracker: OffsetTracker,
    /// Room for messages in flight; the reader takes, acknowledgements give back.
    permits: Arc<Semaphore>,
    /// When each in-flight offset was read (processing-duration histogram).
    read_at: HashMap<i64, Instant>,
    /// The reader task.
    reader: Option<JoinHandle<()>>,
    /// Callers waiting for the partition to drain.
    drain_waiters: Vec<RpcReplyPort<()>>,
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
        let reader = tokio::spawn(read_partition(Reader {
            queue: args.queue,
            actor: myself,
            permits: permits.clone(),
            topic: args.topic.clone(),
            partition: args.partition,
            batch_max: args.batch_max.max(1),
            linger: args.batch_linger,
        }));
        tracing::info!(topic = %args.topic, partition = args.partition, "Partition consumer started.");
        Ok(PartitionConsumerState {
            topic: args.topic,
            partition: args.partition,
            consumer: Some(args.consumer),
            decoder: args.decoder,
            appliers: args.appliers,
            dlq: args.dlq,
            metrics: args.metrics,
            tracker: OffsetTracker::new(),
            permits,
            read_at: HashMap::new(),
            reader: Some(reader),
            drain_waiters: Vec::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: PartitionConsumerMsg,
        state: &mut PartitionConsumerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PartitionConsumerMsg::Fetched(batch) => state.dispatch(&myself, batch).await?,
            PartitionConsumerMsg::Acked(offsets) => state.acknowledge(&offsets),
            PartitionConsumerMsg::Drain(reply) => {
                // Kept, so that `post_stop` waits for the aborted reader to let go of the queue.
                if let Some(reader) = &state.reader {
                    reader.abort();
                }
                if state.tracker.in_flight() == 0 {
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
    /// Decodes a fetched batch and sends its parts on.
    async fn dispatch(
        &mut self,
        myself: &ActorRef<PartitionConsumerMsg>,
        batch: Vec<OwnedMessage>,
    ) -> Result<(), ActorProcessingErr> {
        let now = Instant::now();
        let n = self.appliers.len();
        let mut changes: Vec<Vec<CdcEvent>> = (0..n).map(|_| Vec::new()).collect();
        let mut offsets: Vec<Vec<i64>> = (0..n).map(|_| Vec::new()).collect();
        let mut nothing_to_do = Vec::new();
        let mut letters = Vec::new();
        let mut letter_offsets = Vec::new();
        MessagesConsumed {
            topic: &self.topic,
            count: batch.len() as u64,
        }
        .emit(&self.metrics);
        for message in &batch {
            let offset = message.offset();
            if let Err(OffsetError::NotIncreasing { offset, last }) = self.tracker.track(offset) {
                // The broker delivered a message this consumer already read (a re-fetch after a
                // fetch error): it is tracked already and its effects are on their way.
                tracing::debug!(
                    topic = %self.topic,
                    partition = self.partition,
                    offset,
                    last,
                    "Message delivered again by the broker; already in hand."
                );
                // The reader took a permit for it; no acknowledgement will return that one.
                self.permits.add_permits(1);
                continue;
            }
            self.read_at.insert(offset, now);
            let origin = KafkaCoordinates {
                topic: self.topic.clone(),
                partition: self.partition,
                offset,
            };
            match self
                .decoder
                .decode(message.payload(), message.key(), origin)
                .await
            {
                Ok(Decoded::Change(event)) => {
                    let slot = applier_for(&event, n);
                    changes[slot].push(*event);
                    offsets[slot].push(offset);
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
                            topic: self.topic.clone(),
                            partition: self.partition,
                            offset,
                        },
                        chrono::Utc::now(),
                    );
                    letter.attempts = 1;
                    letters.push(letter);
                    letter_offsets.push(offset);
                }
            }
        }
        let settled: DerivedActorRef<Settled> = myself.get_derived();
        for ((applier, events), offsets) in self.appliers.iter().zip(changes).zip(offsets) {
            if events.is_empty() {
                continue;
            }
            applier.cast(CdcApplierMsg::Apply {
                events,
                ack: Ack::Offsets {
                    partition: settled.clone(),
                    offsets,
                },
            })?;
        }
        if !letters.is_empty() {
            self.dlq.cast(DlqWriterMsg::Write {
                letters,
                ack: Ack::Offsets {
                    partition: settled,
                    offsets: letter_offsets,
                },
            })?;
        }
        self.acknowledge(&nothing_to_do);
        Ok(())
    }

    /// Records acknowledgements, frees room for the reader, and stores the new watermark.
    fn acknowledge(&mut self, offsets: &[i64]) {
        let mut freed = 0;
        for &offset in offsets {
            if self.tracker.ack(offset).is_ok() {
                freed += 1;
                if let Some(read_at) = self.read_at.remove(&offset) {
                    MessageProcessed {
                        topic: &self.topic,
                        elapsed: read_at.elapsed(),
                    }
                    .emit(&self.metrics);
                }
            }
        }
        self.permits.add_permits(freed);
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
        if self.tracker.in_flight() == 0 {
            for waiter in self.drain_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

struct Reader {
    queue: StreamPartitionQueue<GroupContext>,
    actor: ActorRef<PartitionConsumerMsg>,
    permits: Arc<Semaphore>,
    topic: String,
    partition: i32,
    batch_max: usize,
    linger: Duration,
}

/// The reader task: batches from the partition queue to the actor, within the permits.
///
/// With no permit left the reader stops reading; librdkafka then stops fetching for the
/// partition once its own prefetch queue is full (`queued.max.messages.kbytes`, set in
/// [`crate::kafka::client::consumer_config`]), so nothing more is requested from the broker.
/// An explicit `pause`/`resume` is not used: with split partition queues, librdkafka resumed
/// *after* the messages it had prefetched before the pause (seen here: offsets 300..580 never
/// delivered, and a seek after the resume did not bring them back), which would commit past
/// unprocessed messages.
async fn read_partition(r: Reader) {
    loop {
        let permit = match r.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                tracing::debug!(
                    topic = %r.topic,
                    partition = r.partition,
                    "Partition at its in-flight limit; reading stops until acknowledgements."
                );
                let Ok(permit) = r.permits.clone().acquire_owned().await else {
                    return;
                };
                permit
            }
        };
        let first = match r.queue.recv().await {
            Ok(message) => message.detach(),
            Err(err) => {
                tracing::warn!(topic = %r.topic, partition = r.partition, error = %err, "Partition read failed.");
                drop(permit);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        permit.forget();
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + r.linger;
        while batch.len() < r.batch_max {
            let Ok(permit) = r.permits.clone().try_acquire_owned() else {
                break;
            };
            match tokio::time::timeout_at(deadline, r.queue.recv()).await {
                Ok(Ok(message)) => {
                    permit.forget();
                    batch.push(message.detach());
                }
                _ => break,
            }
        }
        if r.actor.cast(PartitionConsumerMsg::Fetched(batch)).is_err() {
            return;
        }
    }
}
