//! Replay and backfill: re-run a window of a topic's changes through the pipeline
//! (`eda-daemon replay`).
//!
//! A replay starts with a [`ReplayPlan`]: for each partition of the topic it covers, the first
//! offset to read again (`from`) and the offset it stops before (`to`, exclusive). Times resolve
//! to offsets with the broker's `offsets_for_times` (the first message whose timestamp is at or
//! after the time); the end of a partition is not taken from one broker answer (the local
//! broker's `ListOffsets` has been seen a batch below the real end): the plan also reads from the
//! reported end until the partition is quiet, and takes the end past the last message found.
//!
//! Then one of two things happens:
//! - **move the group** ([`move_group`]): the daemon's consumer group's committed offsets are set
//!   to the plan's `from`. Only while the group has no active member: a member would keep its
//!   own position and commit over the move. The daemon started afterwards reads the window again
//!   and everything after it, as it normally would.
//! - **a one-off pass** ([`run_once`]): the same supervision tree as the daemon's
//!   ([`Pipeline::start_bounded`]), under its own consumer group id, its offsets set to the
//!   plan's `from`, and each partition consumer stopping at the plan's `to`. The daemon's group
//!   is not touched and may keep running.
//!
//! What a replay does to the table and to events: every change of the window is applied again
//! through the sequence guard, so the table never goes back: an item missing (deleted by hand,
//! lost) or holding an older `_seq` is written again; an item at the same or a newer `_seq` is
//! left as it is (a hand-made value with a higher `_seq` therefore stays). Either way the
//! change's event is published again under its stable event id (the applier republishes the
//! events of changes the guard refused, see `eda_core::apply_plan::verdict`): consumers see
//! duplicates of ids they already had, which they de-duplicate on. Heal to the end of the topic
//! (the default `to`): a replay that stops before a key's last change leaves a deleted key at the
//! image of the window's last change of it.

use crate::kafka::client::consumer_config;
use crate::kafka::consumer_group::EndOffsets;
use crate::pipeline::{Observability, Pipeline, PipelineError};
use chrono::{DateTime, Utc};
use eda_config::{Config, KafkaConfig};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one broker call of the planning may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a partition must stay quiet, read from its reported end, before its end is taken.
const QUIET: Duration = Duration::from_millis(1500);

/// Where a replay starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayFrom {
    /// Every partition of the topic, from its first message at or after this time.
    Time(DateTime<Utc>),
    /// The named partitions, from these offsets (others are not replayed).
    Offsets(BTreeMap<i32, i64>),
}

/// Where a replay stops (exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayTo {
    /// The end of each partition, as the plan finds it.
    End,
    /// Before the first message at or after this time.
    Time(DateTime<Utc>),
    /// Before these offsets, by partition (a partition not named runs to its end).
    Offsets(BTreeMap<i32, i64>),
}

/// One partition of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionPlan {
    /// The partition.
    pub partition: i32,
    /// The first offset read again.
    pub from: i64,
    /// The offset the replay stops before.
    pub to: i64,
    /// Offsets in the window (`to - from`; messages, unless the topic is compacted).
    pub messages: i64,
    /// The group's committed offset now, when it has one.
    pub committed: Option<i64>,
}

/// What a replay will read again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayPlan {
    /// The topic.
    pub topic: String,
    /// The consumer group whose committed offsets are shown (and moved, in move-group mode).
    pub group: String,
    /// The partitions replayed, in order.
    pub partitions: Vec<PartitionPlan>,
    /// The partitions of the topic the replay leaves alone, with their end offsets (a one-off
    /// pass starts and stops them there, reading nothing).
    #[serde(skip)]
    pub untouched_ends: BTreeMap<i32, i64>,
}

impl ReplayPlan {
    /// Offsets in the whole window.
    pub fn messages(&self) -> i64 {
        self.partitions.iter().map(|p| p.messages).sum()
    }

    /// Where a one-off pass stops, for [`Pipeline::start_bounded`].
    pub fn end_offsets(&self) -> EndOffsets {
        self.partitions
            .iter()
            .map(|p| (p.partition, p.to))
            .chain(self.untouched_ends.iter().map(|(p, end)| (*p, *end)))
            .map(|(p, end)| ((self.topic.clone(), p), end))
            .collect()
    }
}

impl fmt::Display for ReplayPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "replay plan for topic {} (group {}):",
            self.topic, self.group
        )?;
        writeln!(
            f,
            "{:>9} {:>12} {:>12} {:>10} {:>12}",
            "partition", "from", "to", "messages", "committed"
        )?;
        for p in &self.partitions {
            let committed = p.committed.map_or("-".to_string(), |c| c.to_string());
            writeln!(
                f,
                "{:>9} {:>12} {:>12} {:>10} {:>12}",
                p.partition, p.from, p.to, p.messages, committed
            )?;
        }
        write!(
            f,
            "{:>9} {:>12} {:>12} {:>10}",
            "total",
            "",
            "",
            self.messages()
        )
    }
}

/// A member of a consumer group, as the broker describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupMember {
    /// The member id.
    pub id: String,
    /// The member's `client.id`.
    pub client_id: String,
    /// The host it connected from.
    pub host: String,
}

impl fmt::Display for GroupMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.id)?;
        match (self.client_id.is_empty(), self.host.is_empty()) {
            (false, false) => write!(f, " (client {} on {})", self.client_id, self.host),
            (false, true) => write!(f, " (client {})", self.client_id),
            (true, false) => write!(f, " (on {})", self.host),
            (true, true) => Ok(()),
        }
    }
}

/// Why a replay could not be planned or carried out.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The broker did not answer, or refused.
    #[error("{what}: {source}")]
    Kafka {
        /// What was asked.
        what: String,
        /// The broker's error.
        source: KafkaError,
    },
    /// The topic is not on the broker.
    #[error("topic {0} is not on the broker")]
    UnknownTopic(String),
    /// The request does not fit the topic (a partition it lacks, an offset outside the log).
    #[error("{0}")]
    Invalid(String),
    /// The group has active members: its offsets are not moved under them.
    #[error(
        "consumer group {group} has {} active member(s): {}; stop every daemon of the group (or \
         use --mode one-off, which uses its own group) and run the replay again",
        members.len(),
        members.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    ActiveMembers {
        /// The group.
        group: String,
        /// Its members.
        members: Vec<GroupMember>,
    },
    /// The one-off pass's pipeline did not start.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// A blocking broker call's task failed.
    #[error("a broker call failed to run: {0}")]
    Join(#[from] tokio::task::JoinError),
}

fn kafka_err(what: impl Into<String>) -> impl FnOnce(KafkaError) -> ReplayError {
    let what = what.into();
    move |source| ReplayError::Kafka { what, source }
}

/// A consumer that never joins: it reads metadata, offsets and group state, and commits for
/// `group` without being a member.
fn admin_consumer(kafka: &KafkaConfig, group: &str) -> Result<BaseConsumer, ReplayError> {
    let mut config = consumer_config(kafka);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    config
        .create()
        .map_err(kafka_err("cannot create the Kafka client"))
}

/// Resolves `from` and `to` into a plan over `topic`, showing `group`'s committed offsets.
/// Blocking (broker calls); changes nothing.
pub fn plan(
    kafka: &KafkaConfig,
    group: &str,
    topic: &str,
    from: &ReplayFrom,
    to: &ReplayTo,
) -> Result<ReplayPlan, ReplayError> {
    let consumer = admin_consumer(kafka, group)?;
    let partitions = topic_partitions(&consumer, topic)?;
    let ends = real_ends(&consumer, topic, &partitions)?;
    let starts = match from {
        ReplayFrom::Time(time) => offsets_for_time(&consumer, topic, &partitions, *time, &ends)?,
        ReplayFrom::Offsets(offsets) => {
            for p in offsets.keys() {
                if !partitions.contains(p) {
                    return Err(ReplayError::Invalid(format!(
                        "topic {topic} has no partition {p} (it has {})",
                        partitions.len()
                    )));
                }
            }
            offsets.clone()
        }
    };
    let stops: BTreeMap<i32, i64> = match to {
        ReplayTo::End => ends.clone(),
        ReplayTo::Time(time) => offsets_for_time(&consumer, topic, &partitions, *time, &ends)?,
        ReplayTo::Offsets(offsets) => {
            for p in offsets.keys() {
                if !starts.contains_key(p) {
                    return Err(ReplayError::Invalid(format!(
                        "--to-offset names partition {p}, which the replay does not start on"
                    )));
                }
            }
            starts
                .keys()
                .map(|p| (*p, offsets.get(p).copied().unwrap_or(ends[p])))
                .collect()
        }
    };
    let committed = committed(&consumer, topic, &partitions)?;
    let mut plan = ReplayPlan {
        topic: topic.to_string(),
        group: group.to_string(),
        partitions: Vec::new(),
        untouched_ends: BTreeMap::new(),
    };
    for p in &partitions {
        let Some(&from) = starts.get(p) else {
            plan.untouched_ends.insert(*p, ends[p]);
            continue;
        };
        let (low, _) = consumer
            .fetch_watermarks(topic, *p, CALL_TIMEOUT)
            .map_err(kafka_err(format!("earliest offset of {topic}/{p}")))?;
        let end = ends[p];
        let to = stops[p];
        if from < low {
            return Err(ReplayError::Invalid(format!(
                "partition {p}: offset {from} is no longer on the broker (the log starts at {low})"
            )));
        }
        if from > end || to > end {
            return Err(ReplayError::Invalid(format!(
                "partition {p}: the window {from}..{to} goes past the end of the log ({end})"
            )));
        }
        if to < from {
            return Err(ReplayError::Invalid(format!(
                "partition {p}: the window ends ({to}) before it starts ({from})"
            )));
        }
        plan.partitions.push(PartitionPlan {
            partition: *p,
            from,
            to,
            messages: to - from,
            committed: committed.get(p).copied(),
        });
    }
    Ok(plan)
}

/// The partitions of `topic`.
fn topic_partitions(consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>, ReplayError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), CALL_TIMEOUT)
        .map_err(kafka_err(format!("metadata of topic {topic}")))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(ReplayError::UnknownTopic(topic.to_string()));
    }
    let mut partitions = partitions;
    partitions.sort_unstable();
    Ok(partitions)
}

/// The end of each partition: past the last message found reading on from the broker's
/// reported end until the partitions stay quiet for [`QUIET`] (the reported end can lag).
fn real_ends(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, i64>, ReplayError> {
    let mut ends = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, *p, CALL_TIMEOUT)
            .map_err(kafka_err(format!("end offset of {topic}/{p}")))?;
        ends.insert(*p, high);
        tpl.add_partition_offset(topic, *p, Offset::Offset(high))
            .map_err(kafka_err("partition list"))?;
    }
    consumer
        .assign(&tpl)
        .map_err(kafka_err(format!("reading the ends of {topic}")))?;
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < QUIET {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let end = ends.entry(message.partition()).or_insert(0);
                if message.offset() + 1 > *end {
                    tracing::debug!(
                        topic,
                        partition = message.partition(),
                        reported = *end,
                        found = message.offset() + 1,
                        "The partition goes on past the broker's reported end."
                    );
                    *end = message.offset() + 1;
                    quiet_since = Instant::now();
                }
            }
            Some(Err(err)) => {
                tracing::debug!(error = %err, "Reading the partitions' ends.");
            }
            None => {}
        }
    }
    consumer
        .unassign()
        .map_err(kafka_err(format!("reading the ends of {topic}")))?;
    Ok(ends)
}

/// The first offset at or after `time` in each partition (its end when no message is that late).
///
/// The broker's answer (`offsets_for_times`) is checked: the message there must be at or after
/// `time` and the one before it earlier (the local broker answers 0, not "none", for a time
/// after its last message). An answer that fails the check is replaced by a binary search over
/// the partition's messages, which assumes timestamps grow with offsets, as the broker's own
/// time index does.
fn offsets_for_time(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
    time: DateTime<Utc>,
    ends: &BTreeMap<i32, i64>,
) -> Result<BTreeMap<i32, i64>, ReplayError> {
    let millis = time.timestamp_millis();
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, *p, Offset::Offset(millis))
            .map_err(kafka_err("partition list"))?;
    }
    let answer = consumer
        .offsets_for_times(tpl, CALL_TIMEOUT)
        .map_err(kafka_err(format!("offsets of {topic} at {time}")))?;
    let mut offsets = BTreeMap::new();
    for element in answer.elements() {
        let p = element.partition();
        let end = ends[&p];
        let (low, _) = consumer
            .fetch_watermarks(topic, p, CALL_TIMEOUT)
            .map_err(kafka_err(format!("earliest offset of {topic}/{p}")))?;
        let said = match element.offset() {
            Offset::Offset(o) => o.clamp(low, end),
            // No message that late: the window starts (or stops) at the end.
            _ => end,
        };
        let at = |offset: i64| timestamp_at(consumer, topic, p, offset, end);
        let holds = (said == end || at(said)? >= millis) && (said == low || at(said - 1)? < millis);
        let offset = if holds {
            said
        } else {
            tracing::debug!(
                topic,
                partition = p,
                said,
                "The broker's offset for the time does not hold; searching the partition."
            );
            // The smallest offset in low..=end whose message is at or after the time.
            let (mut lo, mut hi) = (low, end);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if at(mid)? >= millis {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            lo
        };
        offsets.insert(p, offset);
    }
    Ok(offsets)
}

/// The timestamp (ms) of the message at `offset` of a partition, or of the first one after it
/// (a gap); `i64::MAX` when there is none before `end`.
fn timestamp_at(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    offset: i64,
    end: i64,
) -> Result<i64, ReplayError> {
    if offset >= end {
        return Ok(i64::MAX);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
        .map_err(kafka_err("partition list"))?;
    consumer
        .assign(&tpl)
        .map_err(kafka_err(format!("reading {topic}/{partition}")))?;
    let deadline = Instant::now() + CALL_TIMEOUT;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) if message.partition() == partition && message.offset() >= offset => {
                return Ok(message.timestamp().to_millis().unwrap_or(i64::MIN));
            }
            Some(Err(err)) => tracing::debug!(error = %err, "Reading a message's timestamp."),
            _ => {}
        }
    }
    Err(ReplayError::Invalid(format!(
        "{topic}/{partition}: no message at offset {offset} within {} s (the log ends at {end})",
        CALL_TIMEOUT.as_secs()
    )))
}

/// `group`'s committed offsets on `partitions` (a partition without one is absent).
fn committed(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, i64>, ReplayError> {
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition(topic, *p);
    }
    let answer = consumer
        .committed_offsets(tpl, CALL_TIMEOUT)
        .map_err(kafka_err(format!("committed offsets on {topic}")))?;
    Ok(answer
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect())
}

/// The active members of `group` (none: the group is empty, or unknown to the broker).
pub fn group_members(kafka: &KafkaConfig, group: &str) -> Result<Vec<GroupMember>, ReplayError> {
    let consumer = admin_consumer(kafka, group)?;
    members(&consumer, group)
}

fn members(consumer: &BaseConsumer, group: &str) -> Result<Vec<GroupMember>, ReplayError> {
    let list = consumer
        .fetch_group_list(Some(group), CALL_TIMEOUT)
        .map_err(kafka_err(format!("members of consumer group {group}")))?;
    Ok(list
        .groups()
        .iter()
        .filter(|g| g.name() == group)
        .flat_map(|g| g.members())
        .map(|m| GroupMember {
            id: m.id().to_string(),
            client_id: m.client_id().to_string(),
            host: m.client_host().to_string(),
        })
        .collect())
}

/// Commits `offsets` of `topic` for `group`, unless the group has an active member; reads them
/// back to check the broker kept them.
fn commit_offsets(
    kafka: &KafkaConfig,
    group: &str,
    topic: &str,
    offsets: &BTreeMap<i32, i64>,
) -> Result<(), ReplayError> {
    let consumer = admin_consumer(kafka, group)?;
    let active = members(&consumer, group)?;
    if !active.is_empty() {
        return Err(ReplayError::ActiveMembers {
            group: group.to_string(),
            members: active,
        });
    }
    let mut tpl = TopicPartitionList::new();
    for (p, offset) in offsets {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*offset))
            .map_err(kafka_err("partition list"))?;
    }
    consumer
        .commit(&tpl, CommitMode::Sync)
        .map_err(kafka_err(format!("committing offsets for group {group}")))?;
    let partitions: Vec<i32> = offsets.keys().copied().collect();
    let now = committed(&consumer, topic, &partitions)?;
    for (p, offset) in offsets {
        if now.get(p) != Some(offset) {
            return Err(ReplayError::Invalid(format!(
                "group {group}: partition {p} committed {:?} after the move to {offset}",
                now.get(p)
            )));
        }
    }
    Ok(())
}

/// Moves the plan's group to the plan's `from` offsets, refusing while the group has an active
/// member ([`ReplayError::ActiveMembers`]). Blocking.
pub fn move_group(kafka: &KafkaConfig, plan: &ReplayPlan) -> Result<(), ReplayError> {
    let offsets = plan
        .partitions
        .iter()
        .map(|p| (p.partition, p.from))
        .collect();
    commit_offsets(kafka, &plan.group, &plan.topic, &offsets)
}

/// What a one-off pass did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OneOffReport {
    /// The pass's own consumer group.
    pub group: String,
    /// Offsets the pass read through.
    pub messages: i64,
    /// By partition, the offset the pass's group committed at the end.
    pub committed: BTreeMap<i32, i64>,
}

/// Runs the plan once through the daemon's pipeline under consumer group `group` (its own, not
/// the daemon's): commits the plan's `from` offsets for it (the untouched partitions at their
/// end), starts the pipeline bounded at the plan's `to`, waits until the group has committed
/// every partition's `to`, and shuts the pipeline down. `obs` carries its metrics.
pub async fn run_once(
    config: &Config,
    plan: &ReplayPlan,
    group: &str,
    obs: Observability,
) -> Result<OneOffReport, ReplayError> {
    let mut config = config.clone();
    config.kafka.group_id = group.to_string();
    config.kafka.topics = vec![plan.topic.clone()];
    let starts: BTreeMap<i32, i64> = plan
        .partitions
        .iter()
        .map(|p| (p.partition, p.from))
        .chain(plan.untouched_ends.iter().map(|(p, end)| (*p, *end)))
        .collect();
    {
        let kafka = config.kafka.clone();
        let group = group.to_string();
        let topic = plan.topic.clone();
        let starts = starts.clone();
        tokio::task::spawn_blocking(move || commit_offsets(&kafka, &group, &topic, &starts))
            .await??;
    }
    let ends = Arc::new(plan.end_offsets());
    let pipeline = Pipeline::start_bounded(Arc::new(config.clone()), obs, Some(ends)).await?;
    let watcher = Arc::new(admin_consumer(&config.kafka, group)?);
    let wanted: BTreeMap<i32, i64> = plan
        .partitions
        .iter()
        .filter(|p| p.messages > 0)
        .map(|p| (p.partition, p.to))
        .collect();
    let mut last_report = Instant::now();
    let committed = loop {
        let now = {
            let watcher = watcher.clone();
            let topic = plan.topic.clone();
            let partitions: Vec<i32> = wanted.keys().copied().collect();
            tokio::task::spawn_blocking(move || committed(&watcher, &topic, &partitions)).await?
        };
        match now {
            Ok(now) => {
                let short: Vec<String> = wanted
                    .iter()
                    .filter(|(p, to)| now.get(p).is_none_or(|c| c < to))
                    .map(|(p, to)| format!("p{p} {:?}/{to}", now.get(p)))
                    .collect();
                if short.is_empty() {
                    break now;
                }
                if last_report.elapsed() >= Duration::from_secs(10) {
                    tracing::info!(group, behind = %short.join(", "), "One-off pass: still replaying.");
                    last_report = Instant::now();
                }
            }
            Err(err) => tracing::warn!(error = %err, "One-off pass: committed offsets unknown."),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    pipeline.shutdown().await;
    Ok(OneOffReport {
        group: group.to_string(),
        messages: plan.messages(),
        committed,
    })
}
