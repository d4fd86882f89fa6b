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
//! Before joining, the group reads the recorded Qlik table structures
//! ([`TableStructures`], `kafka/table_structures.rs`), which every partition's decoder then shares.
//!
//! Failure: a partition consumer that fails takes the group down with it (the group returns the
//! error), and the root supervisor restarts the group, which rejoins and resumes from the last
//! committed offsets — so a failure never skips a message. Before any exit the group closes its
//! consumer, which leaves the group: the member that replaces it then joins a group without a
//! dead member in it (a broker waits for every known member during a rebalance, and one kept a
//! dead member as the group's leader for good).
//!
//! Membership: librdkafka rejoins on its own after a session timeout or a broker outage. A member
//! that stays out of its group past `kafka.rejoin_timeout_ms` although the brokers answer closes
//! its consumer and fails, so the supervisor starts a fresh one; one that is still out after
//! `kafka.out_of_group_liveness_ms`, restarts included, fails `/healthz` so the pod is replaced
//! (the decision is [`RejoinPolicy`]'s). Nothing of the kind happens while no broker answers.
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
use crate::kafka::table_structures::TableStructures;
use crate::telemetry::{
    GroupJoined, GroupMemberStuck, GroupMemberUnhealthy, InternalEvent, Liveness, Metrics,
    PartitionsAssigned, Readiness,
};
use eda_config::KafkaConfig;
use eda_core::rejoin::RejoinPolicy;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long the brokers get to answer the membership check's metadata request.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// librdkafka reported a fatal error: this consumer can do nothing more, a fresh one may.
    Fatal(String),
    /// Time to measure the lag of each partition.
    MeasureLag,
    /// Time to check whether the member has been out of its group too long.
    CheckMembership,
    /// Whether the brokers answered the membership check's metadata request.
    BrokersAnswered(bool),
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
    /// Qlik table structures, shared by every partition consumer's decoder (Qlik formats).
    pub structures: Option<Arc<TableStructures>>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// `/readyz` learns the assigned partitions here.
    pub readiness: Arc<Readiness>,
    /// `/healthz` learns here how long the pod's member has been out of its group, and whether
    /// it is stuck out.
    pub liveness: Arc<Liveness>,
    /// A bounded pass (`eda-daemon replay --mode one-off`): by topic and partition, the offset
    /// where reading stops. `None` (the daemon): no end.
    pub end_offsets: Option<Arc<EndOffsets>>,
}

/// Where a bounded pass stops reading, by topic and partition (exclusive end offsets).
pub type EndOffsets = HashMap<(String, i32), i64>;

/// The [`ConsumerGroup`]'s state.
pub struct ConsumerGroupState {
    args: ConsumerGroupArgs,
    /// The rdkafka consumer; taken by [`close`](Self::close), which closes it.
    consumer: Option<Arc<GroupConsumer>>,
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
    /// When this member last fell out of its group (started, or was revoked); `None` while in.
    out_since: Option<Instant>,
    /// When the brokers last did not answer a membership check while this member was out.
    quiet_at: Option<Instant>,
    /// When to restart the member, or fail liveness, for being out of its group.
    rejoin: RejoinPolicy,
    /// A membership check is asking the brokers; no second one starts meanwhile.
    asking: bool,
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
        if let Some(structures) = &args.structures {
            load_structures(structures).await?;
        }
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
        let rejoin = RejoinPolicy::new(&args.kafka);
        let check_every =
            (rejoin.rejoin_timeout / 10).clamp(Duration::from_millis(100), Duration::from_secs(5));
        myself.send_interval(check_every, || ConsumerGroupMsg::CheckMembership);
        let now = Instant::now();
        args.liveness.group_left_at(now);
        tracing::info!(
            group = %args.kafka.group_id,
            topics = ?args.kafka.topics,
            "Consumer group subscribed; joining."
        );
        Ok(ConsumerGroupState {
            args,
            consumer: Some(consumer),
            closing,
            partitions: HashMap::new(),
            progress: HashMap::new(),
            stop_polling,
            poller: Some(poller),
            out_since: Some(now),
            quiet_at: None,
            rejoin,
            asking: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: ConsumerGroupMsg,
        state: &mut ConsumerGroupState,
    ) -> Result<(), ActorProcessingErr> {
        let result = state.handle(&myself, msg).await;
        if result.is_err() {
            // Leave the group before the supervisor starts the member that replaces this one.
            state.close(false).await;
        }
        result
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut ConsumerGroupState,
    ) -> Result<(), ActorProcessingErr> {
        let result = state.on_partition_event(event);
        if result.is_err() {
            state.close(false).await;
        }
        result
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
    async fn handle(
        &mut self,
        myself: &ActorRef<ConsumerGroupMsg>,
        msg: ConsumerGroupMsg,
    ) -> Result<(), ActorProcessingErr> {
        let state = self;
        match msg {
            ConsumerGroupMsg::Rebalanced(Rebalanced::Assigned(assigned)) => {
                if state.closing.load(Ordering::Acquire) {
                    return Ok(());
                }
                for partition in assigned {
                    state.start_partition(myself, partition).await?;
                }
                state.joined();
                state.report_assignment();
            }
            ConsumerGroupMsg::Rebalanced(Rebalanced::Revoked(partitions, done)) => {
                state.left();
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
            ConsumerGroupMsg::Fatal(error) => {
                return Err(format!("fatal consumer error: {error}").into());
            }
            ConsumerGroupMsg::MeasureLag => state.measure_lag(),
            ConsumerGroupMsg::CheckMembership => state.check_membership(myself),
            ConsumerGroupMsg::BrokersAnswered(answered) => state.judge_membership(answered)?,
        }
        Ok(())
    }

    /// A partition consumer stopped or failed: the group fails with it.
    fn on_partition_event(&mut self, event: SupervisionEvent) -> Result<(), ActorProcessingErr> {
        let state = self;
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

    /// The member got an assignment (possibly empty): it is in its group.
    fn joined(&mut self) {
        let now = Instant::now();
        self.quiet_at = None;
        if self.out_since.take().is_some() {
            let out_for = self.args.liveness.out_of_group_for(now).unwrap_or_default();
            GroupJoined { out_for }.emit(&self.args.metrics);
        }
        self.args.liveness.group_joined();
    }

    /// The member's partitions are being revoked: it is out of its group until assigned again.
    fn left(&mut self) {
        let now = Instant::now();
        self.out_since.get_or_insert(now);
        self.args.liveness.group_left_at(now);
    }

    /// A tick: when the member has been out of its group past a bound, asks the brokers (off
    /// the actor) whether they answer; the answer comes back as
    /// [`ConsumerGroupMsg::BrokersAnswered`].
    fn check_membership(&mut self, myself: &ActorRef<ConsumerGroupMsg>) {
        if self.closing.load(Ordering::Acquire) {
            return;
        }
        let now = Instant::now();
        let member_out = self.out_since.map(|since| now - since);
        let total_out = self.args.liveness.out_of_group_for(now);
        if self.asking || !self.rejoin.worth_asking(member_out, total_out) {
            return;
        }
        self.asking = true;
        let kafka = self.args.kafka.clone();
        let myself = myself.clone();
        tokio::task::spawn_blocking(move || {
            let answered = brokers_answer(&kafka);
            let _ = myself.cast(ConsumerGroupMsg::BrokersAnswered(answered));
        });
    }

    /// The brokers answered (or not): restart the member, or mark it stuck for `/healthz`, as
    /// the [`RejoinPolicy`] decides from the time out of the group while the brokers answered.
    fn judge_membership(&mut self, answered: bool) -> Result<(), ActorProcessingErr> {
        self.asking = false;
        let now = Instant::now();
        let liveness = &self.args.liveness;
        if !answered {
            self.quiet_at = Some(now);
            liveness.brokers_quiet_at(now);
        }
        let member_out = self
            .out_since
            .map(|since| now - since.max(self.quiet_at.unwrap_or(since)));
        let total_out = liveness.out_while_brokers_answer(now);
        let verdict = self.rejoin.verdict(member_out, total_out, answered);
        match verdict.unhealthy {
            Some(out_for) => {
                if liveness.check().is_ok() {
                    GroupMemberUnhealthy { out_for }.emit(&self.args.metrics);
                }
                liveness.set_group_stuck(Some(out_for));
            }
            None => liveness.set_group_stuck(None),
        }
        if verdict.restart {
            let out_for = member_out.unwrap_or_default();
            GroupMemberStuck {
                out_for,
                rejoin_timeout: self.rejoin.rejoin_timeout,
            }
            .emit(&self.args.metrics);
            return Err(format!(
                "out of consumer group {} for {} s while the brokers answer",
                self.args.kafka.group_id,
                out_for.as_secs()
            )
            .into());
        }
        Ok(())
    }

    async fn start_partition(
        &mut self,
        myself: &ActorRef<ConsumerGroupMsg>,
        assigned: AssignedPartition,
    ) -> Result<(), ActorProcessingErr> {
        let key = (assigned.topic.clone(), assigned.partition);
        let kafka = &self.args.kafka;
        let progress = Arc::new(PartitionProgress::new());
        let consumer = self
            .consumer
            .clone()
            .ok_or("the consumer group is closed")?;
        let args = PartitionConsumerArgs {
            topic: assigned.topic,
            partition: assigned.partition,
            queue: assigned.queue,
            consumer,
            decoder: MessageDecoder::new(
                kafka,
                self.args.registry.clone(),
                self.args.structures.clone(),
            ),
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
            end_offset: self
                .args
                .end_offsets
                .as_ref()
                .and_then(|ends| ends.get(&key).copied()),
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
        let mut partitions: Vec<(&str, i32)> = self
            .partitions
            .keys()
            .map(|(topic, partition)| (topic.as_str(), *partition))
            .collect();
        partitions.sort_unstable();
        PartitionsAssigned {
            partitions: &partitions,
        }
        .emit(&self.args.metrics);
    }

    /// Drains every partition (when `drain`), commits, and closes the consumer, which leaves the
    /// group; waits up to the drain timeout for the close, so the member that replaces this one
    /// joins after it left. Idempotent.
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
        // Stopped, not only asked to stop: their partition queues hold the consumer open.
        let stops = partitions
            .iter()
            .map(|(_, actor)| actor.stop_and_wait(Some("shutdown".into()), Some(timeout)));
        futures_util::future::join_all(stops).await;
        self.args.readiness.set_partitions_assigned(0);
        PartitionsAssigned { partitions: &[] }.emit(&self.args.metrics);
        self.stop_polling.notify_one();
        let Some(consumer) = self.consumer.take() else {
            return;
        };
        let poller = self.poller.take();
        let closed = tokio::task::spawn_blocking(move || {
            if let Some(poller) = poller {
                let _ = poller.join();
            }
            commit(&*consumer, "shutdown");
            close_consumer(consumer, timeout)
        });
        // The poller may be finishing a revoke (up to one drain timeout), then the close itself.
        match tokio::time::timeout(timeout * 2, closed).await {
            Ok(Ok(true)) => tracing::info!("Consumer group left."),
            Ok(Ok(false)) => tracing::warn!(
                "Consumer still in use after the drain timeout; it leaves the group when the last \
                 use ends."
            ),
            Ok(Err(err)) => tracing::warn!(error = %err, "Closing the consumer failed."),
            Err(_) => tracing::warn!(
                timeout_ms = timeout.as_millis() as u64,
                "Consumer did not close within the drain timeout; it goes on leaving the group \
                 in the background."
            ),
        }
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
        if let Some(consumer) = &self.consumer {
            if !self.progress.is_empty() {
                progress::report(consumer, &self.progress, &self.args.metrics);
            }
        }
    }
}

impl Drop for ConsumerGroupState {
    fn drop(&mut self) {
        // A failed actor gets no `post_stop`, and the failures this actor reports close the
        // consumer first; a panic does not. Make sure the polling thread and the partition
        // consumers end then too, so the old consumer closes (committing what was acknowledged)
        // and leaves the group, if later than the restarted one joins.
        self.closing.store(true, Ordering::Release);
        self.stop_polling.notify_one();
        for (_, actor) in self.partitions.drain() {
            actor.stop(Some("consumer group stopped".into()));
        }
    }
}

/// Closes the consumer, which revokes its assignment (committing through the rebalance
/// callback) and leaves the group, once no partition queue or lag measurement holds it any more;
/// waits for that up to `within`. Returns whether it closed: if not, it closes when the last
/// holder lets go. Blocking: call it off the runtime.
fn close_consumer(consumer: Arc<GroupConsumer>, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut consumer = consumer;
    loop {
        match Arc::try_unwrap(consumer) {
            Ok(consumer) => {
                // rdkafka's drop closes the consumer and polls until the group is left.
                drop(consumer);
                return true;
            }
            Err(shared) if Instant::now() < deadline => {
                consumer = shared;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(shared) => {
                shared.unsubscribe();
                return false;
            }
        }
    }
}

/// Whether the brokers answer a metadata request for the first topic, asked by a client of its
/// own (the group's consumer may be the thing that is stuck). Blocking: call it off the runtime.
fn brokers_answer(kafka: &KafkaConfig) -> bool {
    let mut config = consumer_config(kafka);
    config.remove("group.id");
    let probe: BaseConsumer = match config.create() {
        Ok(probe) => probe,
        Err(err) => {
            tracing::debug!(error = %err, "Membership check: no probe client.");
            return false;
        }
    };
    let topic = kafka.topics.first().map(String::as_str);
    match probe.fetch_metadata(topic, PROBE_TIMEOUT) {
        Ok(_) => true,
        Err(err) => {
            tracing::debug!(error = %err, "Membership check: the brokers did not answer.");
            false
        }
    }
}

/// Reads the recorded table structures before the group joins, so the first messages of every
/// partition find them. A store that refuses (the table is missing, access is denied) stops the
/// start with its name; one that does not answer yet does not: the decoders load it before
/// their first message, holding their partitions until it answers.
async fn load_structures(structures: &TableStructures) -> Result<(), ActorProcessingErr> {
    match structures.load().await {
        Ok(count) => {
            tracing::info!(
                store = structures.store_name(),
                count,
                "Table structures loaded."
            );
            Ok(())
        }
        Err(err) if err.is_retryable() => {
            tracing::warn!(
                store = structures.store_name(),
                error = %err,
                "Table structures not loaded yet; partitions load them before their first message."
            );
            Ok(())
        }
        Err(err) => Err(format!(
            "the table structures in {} cannot be read (regions.primary.metadata_table): {err}",
            structures.store_name()
        )
        .into()),
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
                Err(err @ rdkafka::error::KafkaError::MessageConsumptionFatal(_)) => {
                    let _ = group.cast(ConsumerGroupMsg::Fatal(err.to_string()));
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
