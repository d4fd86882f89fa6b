//! [`ConsumerGroup`]: the Kafka consumer-group member. It owns the rdkafka consumer, splits each
//! assigned partition into its own queue and starts one [`PartitionConsumer`] per partition;
//! on revoke it drains those partitions and commits before the rebalance completes.
//!
//! Offsets: `enable.auto.offset.store=false` — partition consumers store an offset only when
//! everything before it is acknowledged — and librdkafka commits the stored offsets every
//! `kafka.commit_interval_ms`, on revoke and on close.
//!
//! The main consumer queue is polled on a thread of its own (rebalance callbacks run there and
//! block while partitions drain, which must not stall the runtime's workers).
//!
//! Failure: a partition consumer that fails takes the group down with it (the group returns the
//! error), and the root supervisor restarts the group, which rejoins and resumes from the last
//! committed offsets — so a failure never skips a message.
//!
//! [`PartitionConsumer`]: crate::kafka::partition_consumer::PartitionConsumer

use crate::cdc_applier::CdcApplierMsg;
use crate::dlq_writer::DlqWriterMsg;
use crate::kafka::client::{
    commit, consumer_config, AssignedPartition, GroupConsumer, GroupContext, Rebalanced,
};
use crate::kafka::message_decoder::MessageDecoder;
use crate::kafka::partition_consumer::{
    PartitionConsumer, PartitionConsumerArgs, PartitionConsumerMsg,
};
use crate::kafka::progress::{self, PartitionProgress};
use crate::kafka::schema_registry::SchemaRegistryClient;
use crate::telemetry::{Metrics, Readiness};
use eda_config::KafkaConfig;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use rdkafka::consumer::Consumer;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Notify;

/// The consumer-group actor.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsumerGroup;

/// Messages the [`ConsumerGroup`] handles.
pub enum ConsumerGroupMsg {
    /// A rebalance assigned or is revoking partitions (from the consumer's callbacks).
    Rebalanced(Rebalanced),
    /// Shutdown: stop reading, drain every partition, commit, leave the group, then answer.
    Drain(RpcReplyPort<()>),
    /// A message arrived on the main queue (a partition not split off): restart from the
    /// committed offsets rather than lose it.
    Stray(String),
    /// Time to measure the lag of each partition.
    MeasureLag,
}

impl From<Rebalanced> for ConsumerGroupMsg {
    fn from(event: Rebalanced) -> Self {
        ConsumerGroupMsg::Rebalanced(event)
    }
}

/// The way back for [`Rebalanced`] when the mailbox refuses it (ractor's derived references need
/// it to return an unsent message).
impl TryFrom<ConsumerGroupMsg> for Rebalanced {
    type Error = ConsumerGroupMsg;

    fn try_from(msg: ConsumerGroupMsg) -> Result<Self, Self::Error> {
        match msg {
            ConsumerGroupMsg::Rebalanced(event) => Ok(event),
            other => Err(other),
        }
    }
}

/// How to build a [`ConsumerGroup`].
pub struct ConsumerGroupArgs {
    /// Brokers, group, topics, batching and flow control.
    pub kafka: KafkaConfig,
    /// The appliers changes are spread over.
    pub appliers: Vec<ActorRef<CdcApplierMsg>>,
    /// Where undecodable messages go.
    pub dlq: ActorRef<DlqWriterMsg>,
    /// For Avro topics.
    pub registry: Option<Arc<SchemaRegistryClient>>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// `/readyz` learns the assigned partitions here.
    pub readiness: Arc<Readiness>,
}

/// The [`ConsumerGroup`]'s state.
pub struct ConsumerGroupState {
    args: ConsumerGroupArgs,
    consumer: Arc<GroupConsumer>,
    closing: Arc<AtomicBool>,
    /// Running partition consumers.
    partitions: HashMap<(String, i32), ActorRef<PartitionConsumerMsg>>,
    /// Where each partition started here stands, for the lag and age gauges; an entry outlives
    /// its partition until the next measurement, which removes its series.
    progress: HashMap<(String, i32), Arc<PartitionProgress>>,
    /// Stops the polling thread.
    stop_polling: Arc<Notify>,
    /// The polling thread.
    poller: Option<std::thread::JoinHandle<()>>,
}

impl Actor for ConsumerGroup {
    type Msg = ConsumerGroupMsg;
    type State = ConsumerGroupState;
    type Arguments = ConsumerGroupArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ConsumerGroupArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let closing = Arc::new(AtomicBool::new(false));
        let context = GroupContext {
            consumer: OnceLock::new(),
            group: myself.get_derived(),
            closing: closing.clone(),
            drain_timeout: args.kafka.drain_timeout(),
        };
        let consumer: Arc<GroupConsumer> =
            Arc::new(consumer_config(&args.kafka).create_with_context(context)?);
        let _ = consumer.context().consumer.set(Arc::downgrade(&consumer));
        let topics: Vec<&str> = args.kafka.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;

        let stop_polling = Arc::new(Notify::new());
        let poller = {
            let consumer = consumer.clone();
            let stop = stop_polling.clone();
            let group = myself.clone();
            let runtime = tokio::runtime::Handle::current();
            std::thread::Builder::new()
                .name("kafka-group".into())
                .spawn(move || runtime.block_on(poll_main_queue(consumer, stop, group)))?
        };
        myself.send_interval(args.kafka.commit_interval(), || {
            ConsumerGroupMsg::MeasureLag
        });
        tracing::info!(
            group = %args.kafka.group_id,
            topics = ?args.kafka.topics,
            "Consumer group joined."
        );
        Ok(ConsumerGroupState {
            args,
            consumer,
            closing,
            partitions: HashMap::new(),
            progress: HashMap::new(),
            stop_polling,
            poller: Some(poller),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: ConsumerGroupMsg,
        state: &mut ConsumerGroupState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ConsumerGroupMsg::Rebalanced(Rebalanced::Assigned(assigned)) => {
                for partition in assigned {
                    state.start_partition(&myself, partition).await?;
                }
                state.report_assignment();
            }
            ConsumerGroupMsg::Rebalanced(Rebalanced::Revoked(partitions, done)) => {
                let revoked: Vec<_> = partitions
                    .iter()
                    .filter_map(|key| state.partitions.remove(key))
                    .collect();
                // Drained together: the rebalance waits at most one drain timeout.
                let timeout = state.args.kafka.drain_timeout();
                futures_util::future::join_all(revoked.iter().map(|a| drain(a, timeout))).await;
                for actor in revoked {
                    actor.stop(Some("revoked".into()));
                }
                state.report_assignment();
                let _ = done.send(());
            }
            ConsumerGroupMsg::Drain(reply) => {
                state.close(true).await;
                let _ = reply.send(());
            }
            ConsumerGroupMsg::Stray(what) => {
                return Err(format!("message outside any partition consumer: {what}").into());
            }
            ConsumerGroupMsg::MeasureLag => state.measure_lag(),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut ConsumerGroupState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                let failed = state
                    .partitions
                    .iter()
                    .find(|(_, a)| a.get_id() == cell.get_id())
                    .map(|(k, _)| k.clone());
                if let Some((topic, partition)) = failed {
                    return Err(
                        format!("partition consumer {topic}/{partition} failed: {err}").into(),
                    );
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                // A partition consumer stops on its own only if something is wrong; the ones
                // this actor stopped (revoke) were removed from the map first.
                let stopped = state
                    .partitions
                    .iter()
                    .find(|(_, a)| a.get_id() == cell.get_id())
                    .map(|(k, _)| k.clone());
                if let Some((topic, partition)) = stopped {
                    return Err(format!(
                        "partition consumer {topic}/{partition} stopped: {reason:?}"
                    )
                    .into());
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut ConsumerGroupState,
    ) -> Result<(), ActorProcessingErr> {
        // Stopped by the supervisor (a dependency failed, or the tree is stopping without a
        // drain): work handed to a failed actor will never be acknowledged, so do not wait for
        // it. Commit what is acknowledged and leave; the rest is read again.
        state.close(false).await;
        Ok(())
    }
}

impl ConsumerGroupState {
    async fn start_partition(
        &mut self,
        myself: &ActorRef<ConsumerGroupMsg>,
        assigned: AssignedPartition,
    ) -> Result<(), ActorProcessingErr> {
        let key = (assigned.topic.clone(), assigned.partition);
        let kafka = &self.args.kafka;
        let progress = Arc::new(PartitionProgress::new());
        let args = PartitionConsumerArgs {
            topic: assigned.topic,
            partition: assigned.partition,
            queue: assigned.queue,
            consumer: self.consumer.clone(),
            decoder: MessageDecoder::new(kafka, self.args.registry.clone()),
            appliers: self.args.appliers.clone(),
            dlq: self.args.dlq.clone(),
            batch_max: kafka.batch_max,
            batch_linger: kafka.batch_linger(),
            max_in_flight: kafka.max_in_flight_per_partition,
            // Validated to at most 1 GiB.
            max_in_flight_bytes: u32::try_from(kafka.max_in_flight_bytes_per_partition)
                .unwrap_or(u32::MAX),
            progress: progress.clone(),
            metrics: self.args.metrics.clone(),
            readiness: self.args.readiness.clone(),
        };
        let (actor, _) =
            Actor::spawn_linked(None, PartitionConsumer, args, myself.get_cell()).await?;
        self.progress.insert(key.clone(), progress);
        self.partitions.insert(key, actor);
        Ok(())
    }

    fn report_assignment(&self) {
        self.args
            .readiness
            .set_partitions_assigned(self.partitions.len());
        tracing::info!(
            partitions = ?self.partitions.keys().collect::<Vec<_>>(),
            "Partition assignment changed."
        );
    }

    /// Drains every partition (when `drain`), commits, and leaves the group. Idempotent.
    async fn close(&mut self, drain_first: bool) {
        if self.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        let timeout = self.args.kafka.partition_drain_timeout();
        let partitions: Vec<_> = self.partitions.drain().collect();
        if drain_first {
            let drains = partitions.iter().map(|(_, actor)| drain(actor, timeout));
            futures_util::future::join_all(drains).await;
        }
        for (_, actor) in &partitions {
            actor.stop(Some("shutdown".into()));
        }
        self.args.readiness.set_partitions_assigned(0);
        self.stop_polling.notify_one();
        let consumer = self.consumer.clone();
        let poller = self.poller.take();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(poller) = poller {
                let _ = poller.join();
            }
            commit(&*consumer, "shutdown");
            consumer.unsubscribe();
        })
        .await;
        tracing::info!("Consumer group left.");
    }

    /// Reports, for every partition started here, the lag against its committed offset and the
    /// age of its oldest unsettled message (see [`progress`](crate::kafka::progress)). Partitions
    /// no longer assigned here lose their series, so a sum over members counts each partition
    /// once and no alert stays up on a member that gave the partition away.
    fn measure_lag(&mut self) {
        let gone: Vec<_> = self
            .progress
            .keys()
            .filter(|key| !self.partitions.contains_key(*key))
            .cloned()
            .collect();
        for key in gone {
            if let Some(progress) = self.progress.remove(&key) {
                progress.retire(&key.0, key.1, &self.args.metrics);
            }
        }
        if !self.progress.is_empty() {
            progress::report(&self.consumer, &self.progress, &self.args.metrics);
        }
    }
}

impl Drop for ConsumerGroupState {
    fn drop(&mut self) {
        // A failed actor gets no `post_stop`: make sure the polling thread and the partition
        // consumers end, so the old consumer closes (committing what was acknowledged) and leaves
        // the group before the restarted one joins.
        self.closing.store(true, Ordering::Release);
        self.stop_polling.notify_one();
        for (_, actor) in self.partitions.drain() {
            actor.stop(Some("consumer group stopped".into()));
        }
    }
}

async fn drain(actor: &ActorRef<PartitionConsumerMsg>, timeout: Duration) {
    match actor.call(PartitionConsumerMsg::Drain, Some(timeout)).await {
        Ok(ractor::rpc::CallResult::Success(())) => {}
        Ok(_) => tracing::warn!(
            timeout_ms = timeout.as_millis() as u64,
            "Partition did not drain in time; its unacknowledged messages will be read again."
        ),
        Err(err) => tracing::debug!(error = %err, "Partition consumer already stopped."),
    }
}

/// Polls the main queue, which services rebalances; a message on it belongs to no partition
/// consumer.
async fn poll_main_queue(
    consumer: Arc<GroupConsumer>,
    stop: Arc<Notify>,
    group: ActorRef<ConsumerGroupMsg>,
) {
    loop {
        tokio::select! {
            _ = stop.notified() => return,
            received = consumer.recv() => match received {
                Ok(message) => {
                    use rdkafka::Message;
                    let what = format!("{}/{}@{}", message.topic(), message.partition(), message.offset());
                    let _ = group.cast(ConsumerGroupMsg::Stray(what));
                    return;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "Kafka consumer error.");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}
