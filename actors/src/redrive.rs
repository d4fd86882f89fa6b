//! Dead-letter redrive: reads the DLQ and replays each dead letter through the same actors the
//! pipeline uses, deleting it from the queue once its replay is settled.
//!
//! Replaying is safe because the apply is sequence-guarded: a change that was in fact applied
//! before is absorbed by the guard (and its event published again under the same id).
//!
//! What is replayed depends on the stage that gave up:
//! - `decode`: the payload is the original Kafka message; it is decoded again with the
//!   configured format (a fixed decoder or newly registered schema may now accept it);
//! - `plan`, `apply`: the payload is the decoded change (`CdcEvent` JSON); it is applied again;
//! - `publish`: the payload is the event detail (`BaseEvent` JSON); it is published again;
//! - `route`: the payload is an [`OwedEvent`], a cross-region envelope and the region it is
//!   owed to; the envelope is put on that region's bus as it is (the same event id). If that
//!   region does not take it yet, the letter stays in the queue, reported, for a later redrive.
//!
//! A `decode` letter is decoded with the Kafka key and the header-named table it was read with
//! (kept in the letter), so a Debezium message whose key columns are only in its key replays.
//!
//! A dead letter that fails again goes back to the DLQ as a new dead letter. One whose payload
//! was truncated, or that does not parse, is left in the queue and reported.
//!
//! Old letters: SQS keeps a message up to 14 days, a DELETE's tombstone lives
//! `apply.tombstone_ttl_secs` (7 days by default). A `decode`, `plan` or `apply` letter that
//! first failed that long ago or longer may carry an INSERT whose key was deleted since, and
//! whose tombstone, the guard that would refuse it, has expired: replaying it would bring a
//! deleted row back. Such letters are refused, left in the queue, reported one by one and counted
//! (`eda_dlq_redrive_refused_total`), unless the operator forces them
//! ([`RedriveOptions::force_older_than_tombstones`], `--force-older-than-tombstones`), having
//! checked the source.

use crate::ack::Ack;
use crate::aws::{DynamoDbItemWriter, RegionClients, SqsDeadLetterQueue};
use crate::cdc_applier::{CdcApplier, CdcApplierArgs, CdcApplierMsg};
use crate::dlq_writer::DlqWriterMsg;
use crate::eventbridge_publisher::{spawn_unsupervised, EventBridgePublisherMsg, PublishItem};
use crate::kafka::message_decoder::{Decoded, MessageDecoder};
use crate::kafka::schema_registry::SchemaRegistryClient;
use crate::ports::{DeadLetterSink, EventPublisher, SinkError};
use crate::region_router::{region_publisher, CROSS_REGION_SOURCE};
use crate::settings::applier_settings;
use crate::telemetry::{InternalEvent, Metrics, RedriveRefused};
use eda_config::Config;
use eda_core::cdc::{CdcEvent, KafkaCoordinates, TableRef};
use eda_core::change_event::change_entry;
use eda_core::dead_letter::{DeadLetterEvent, DeadLetterSource};
use eda_core::envelope::EntryTarget;
use eda_core::failure::Stage;
use eda_core::owed::OwedEvent;
use eda_core::transform::BaseEvent;
use ractor::{Actor, ActorRef};
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::oneshot;

/// What a redrive may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedriveOptions {
    /// Most dead letters to read.
    pub max: usize,
    /// Replay letters older than `apply.tombstone_ttl_secs` too, although a row deleted since
    /// may come back (see the module doc). Off by default; the operator turns it on after
    /// checking the source.
    pub force_older_than_tombstones: bool,
}

impl RedriveOptions {
    /// Up to `max` letters, refusing those older than the tombstones.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            force_older_than_tombstones: false,
        }
    }
}

/// What a redrive did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct RedriveReport {
    /// Dead letters read from the queue.
    pub received: usize,
    /// Replayed and deleted from the queue.
    pub replayed: usize,
    /// Replayed, decoded to nothing to apply (a metadata message), and deleted.
    pub nothing_to_apply: usize,
    /// Left in the queue: unreadable or truncated (with the reason).
    pub left_in_queue: Vec<String>,
    /// Left in the queue because they are older than the tombstones (`apply.tombstone_ttl_secs`)
    /// and the redrive was not forced: replaying one could bring back a row deleted since.
    pub refused_older_than_tombstones: Vec<RefusedLetter>,
    /// Letters older than the tombstones replayed anyway, because the redrive was forced.
    pub forced_older_than_tombstones: Vec<RefusedLetter>,
}

/// A dead letter older than the tombstones, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusedLetter {
    /// The letter's id.
    pub id: String,
    /// The stage that gave up (what a replay would redo).
    pub stage: &'static str,
    /// When it first failed.
    pub first_failure_at: String,
    /// Its age, in seconds.
    pub age_secs: i64,
    /// `apply.tombstone_ttl_secs`, which it reached.
    pub tombstone_ttl_secs: u64,
}

/// Why a redrive stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    /// SQS could not be read or written.
    #[error(transparent)]
    Queue(#[from] SinkError),
    /// The replay actors did not start.
    #[error("the replay actors did not start: {0}")]
    Spawn(#[from] ractor::SpawnErr),
    /// An actor stopped before settling a replay.
    #[error("a replay actor stopped before finishing")]
    Interrupted,
}

struct Replayers {
    dlq: ActorRef<DlqWriterMsg>,
    publisher: ActorRef<EventBridgePublisherMsg>,
    applier: ActorRef<CdcApplierMsg>,
    /// EventBridge `Source` of republished events.
    event_source: String,
    /// The bus they go to.
    event_bus: String,
    /// Each region's bus by region name, where `route` letters are delivered.
    regions: Vec<(String, Arc<dyn EventPublisher>)>,
    /// How long a delivery to a region may take.
    call_timeout: std::time::Duration,
}

/// Replays up to `max` dead letters from the primary region's DLQ, refusing those older than
/// the tombstones.
pub async fn redrive(config: &Config, max: usize) -> Result<RedriveReport, RedriveError> {
    redrive_with(config, RedriveOptions::new(max), Arc::new(Metrics::new())).await
}

/// Replays dead letters from the primary region's DLQ as `options` say, counting in `metrics`.
pub async fn redrive_with(
    config: &Config,
    options: RedriveOptions,
    metrics: Arc<Metrics>,
) -> Result<RedriveReport, RedriveError> {
    let clients = RegionClients::new(&config.regions.primary, &config.aws).await;
    let queue = Arc::new(SqsDeadLetterQueue::new(
        clients.sqs.clone(),
        config.regions.primary.dlq_queue_url.clone(),
    ));
    let (publisher, dlq) = spawn_unsupervised(
        config,
        &config.regions.primary,
        clients.lean_eventbridge.clone(),
        queue.clone(),
        metrics.clone(),
    )
    .await?;
    let (applier, _) = Actor::spawn(
        None,
        CdcApplier,
        CdcApplierArgs {
            writer: Arc::new(
                DynamoDbItemWriter::with_statements_per_call(
                    &clients,
                    config.apply.batch_statements,
                )
                .with_metrics(metrics.clone()),
            ),
            publisher: publisher.clone(),
            dlq: dlq.clone(),
            // Redrive replays into the home region only; replication is the daemon's job.
            router: None,
            settings: Arc::new(applier_settings(config)),
            metrics: metrics.clone(),
        },
    )
    .await?;
    let mut regions = Vec::new();
    for (_, region) in config.regions.all() {
        let clients = RegionClients::new(region, &config.aws).await;
        regions.push((region.name.clone(), region_publisher(region, &clients)));
    }
    let replayers = Replayers {
        dlq,
        publisher,
        applier,
        event_source: config.publish.source.clone(),
        event_bus: config.regions.primary.event_bus.clone(),
        regions,
        call_timeout: config.routing.call_timeout(),
    };
    let registry = config
        .schema_registry
        .url
        .as_ref()
        .and_then(|_| SchemaRegistryClient::new(&config.schema_registry).ok())
        .map(Arc::new);
    // A dead letter of an unknown key decodes now if its table's structure was recorded since.
    let structures = crate::pipeline::table_structures(config, &clients);
    let mut decoder = MessageDecoder::new(&config.kafka, registry, structures);
    let age = AgeRule {
        tombstone_ttl_secs: config.apply.tombstone_ttl_secs,
        force: options.force_older_than_tombstones,
        metrics,
    };
    let result = drain_queue(queue.as_ref(), &replayers, &mut decoder, options.max, &age).await;
    replayers.applier.stop(None);
    replayers.publisher.stop(None);
    // The DLQ writer flushes what it holds when it stops.
    let _ = replayers
        .dlq
        .stop_and_wait(None, Some(std::time::Duration::from_secs(30)))
        .await;
    result
}

/// What a redrive does with letters older than the tombstones.
struct AgeRule {
    /// `apply.tombstone_ttl_secs`.
    tombstone_ttl_secs: u64,
    /// Replay them anyway.
    force: bool,
    /// Where refusals are counted.
    metrics: Arc<Metrics>,
}

async fn drain_queue(
    queue: &dyn DeadLetterSink,
    replayers: &Replayers,
    decoder: &mut MessageDecoder,
    max: usize,
    age: &AgeRule,
) -> Result<RedriveReport, RedriveError> {
    let mut report = RedriveReport::default();
    let mut seen = std::collections::HashSet::new();
    let started = chrono::Utc::now();
    while report.received < max {
        let want = i32::try_from((max - report.received).min(10)).unwrap_or(10);
        let batch = queue.receive(want, 1).await?;
        if batch.is_empty() {
            break;
        }
        let mut anything_new = false;
        for message in batch {
            // A message left in the queue becomes visible again; count it once.
            if !seen.insert(message.body.clone()) {
                continue;
            }
            let letter = match DeadLetterEvent::from_sqs_body(&message.body) {
                Ok(letter) => letter,
                Err(err) => {
                    anything_new = true;
                    report.received += 1;
                    report
                        .left_in_queue
                        .push(format!("unreadable dead letter: {err}"));
                    continue;
                }
            };
            // A letter that failed since this run started is one of its own replays failing
            // again (or a fresh one of a running daemon): the next redrive takes it, this one
            // does not replay it over and over.
            if letter.last_failure_at >= started {
                continue;
            }
            anything_new = true;
            report.received += 1;
            let now = chrono::Utc::now();
            if letter.outlived_tombstones(now, age.tombstone_ttl_secs) {
                let old = RefusedLetter {
                    id: letter.id.clone(),
                    stage: letter.stage.as_str(),
                    first_failure_at: letter.first_failure_at.to_rfc3339(),
                    age_secs: now
                        .signed_duration_since(letter.first_failure_at)
                        .num_seconds(),
                    tombstone_ttl_secs: age.tombstone_ttl_secs,
                };
                if !age.force {
                    RedriveRefused {
                        letter_id: &old.id,
                        age_secs: old.age_secs,
                        tombstone_ttl_secs: old.tombstone_ttl_secs,
                    }
                    .emit(&age.metrics);
                    report.refused_older_than_tombstones.push(old);
                    continue;
                }
                tracing::warn!(
                    letter_id = %old.id,
                    age_secs = old.age_secs,
                    "Replaying a dead letter older than the tombstones, as forced: a row deleted \
                     since it failed may come back."
                );
                report.forced_older_than_tombstones.push(old);
            }
            match replay(&letter, replayers, decoder).await {
                Ok(applied) => {
                    if applied {
                        report.replayed += 1;
                    } else {
                        report.nothing_to_apply += 1;
                    }
                    queue.delete(&message.receipt_handle).await?;
                }
                Err(ReplayError::Unreplayable(reason)) => {
                    report
                        .left_in_queue
                        .push(format!("dead letter {}: {reason}", letter.id));
                }
                Err(ReplayError::Interrupted) => return Err(RedriveError::Interrupted),
            }
        }
        // Only letters this run left in the queue came back (a short visibility timeout):
        // everything else has been read.
        if !anything_new {
            break;
        }
    }
    Ok(report)
}

enum ReplayError {
    Unreplayable(String),
    Interrupted,
}

/// Replays one dead letter; `Ok(false)` when it decodes to nothing to apply.
async fn replay(
    letter: &DeadLetterEvent,
    replayers: &Replayers,
    decoder: &mut MessageDecoder,
) -> Result<bool, ReplayError> {
    let payload = letter
        .original_payload_bytes()
        .map_err(|e| ReplayError::Unreplayable(e.to_string()))?;
    let (tx, rx) = oneshot::channel();
    let ack = Ack::Notify(tx);
    let sent = match letter.stage {
        Stage::Decode => {
            let origin = match &letter.source {
                DeadLetterSource::Kafka {
                    topic,
                    partition,
                    offset,
                } => KafkaCoordinates {
                    topic: topic.clone(),
                    partition: *partition,
                    offset: *offset,
                },
                other => {
                    return Err(ReplayError::Unreplayable(format!(
                        "a decode failure from {} cannot be decoded again",
                        other.kind()
                    )))
                }
            };
            let key = letter
                .kafka_key
                .as_ref()
                .map(|key| key.bytes())
                .transpose()
                .map_err(|e| ReplayError::Unreplayable(e.to_string()))?;
            let named = letter
                .kafka_table
                .as_deref()
                .and_then(|t| t.split_once('.'))
                .map(|(schema, table)| TableRef::new(schema, table));
            match decoder
                .decode(Some(&payload), key.as_deref(), origin, named)
                .await
            {
                Ok(Decoded::Change(event)) => replayers
                    .applier
                    .cast(CdcApplierMsg::Apply {
                        events: vec![event],
                        ack,
                    })
                    .map_err(drop),
                Ok(Decoded::Nothing) => return Ok(false),
                Err(failure) => {
                    // Still undecodable: it goes back to the DLQ with the new error.
                    let mut again = letter.clone();
                    again.record_attempt(chrono::Utc::now(), &failure.message);
                    again.id = uuid::Uuid::new_v4().to_string();
                    replayers
                        .dlq
                        .cast(DlqWriterMsg::Write {
                            letters: vec![again],
                            ack,
                        })
                        .map_err(|_| ReplayError::Interrupted)?;
                    return wait(rx).await.map(|()| true);
                }
            }
        }
        Stage::Plan | Stage::Apply => {
            let event: CdcEvent = serde_json::from_slice(&payload)
                .map_err(|e| ReplayError::Unreplayable(format!("not a change: {e}")))?;
            replayers
                .applier
                .cast(CdcApplierMsg::Apply {
                    events: vec![event],
                    ack,
                })
                .map_err(drop)
        }
        Stage::Publish => {
            let event: BaseEvent = serde_json::from_slice(&payload)
                .map_err(|e| ReplayError::Unreplayable(format!("not an event: {e}")))?;
            replayers
                .publisher
                .cast(EventBridgePublisherMsg::Publish {
                    items: vec![PublishItem {
                        entry: change_entry(&event, &replayers.event_source, &replayers.event_bus),
                        source: letter.source.clone(),
                        correlation_id: letter.correlation_id.clone(),
                    }],
                    ack,
                })
                .map_err(drop)
        }
        Stage::Route => {
            let owed = OwedEvent::from_body(&payload)
                .map_err(|e| ReplayError::Unreplayable(format!("not an owed event: {e}")))?;
            return deliver_owed(&owed, replayers).await.map(|()| true);
        }
    };
    sent.map_err(|_| ReplayError::Interrupted)?;
    wait(rx).await.map(|()| true)
}

/// Puts an owed envelope on the bus of the region it is owed to.
async fn deliver_owed(owed: &OwedEvent, replayers: &Replayers) -> Result<(), ReplayError> {
    let Some((_, publisher)) = replayers
        .regions
        .iter()
        .find(|(name, _)| *name == owed.target_region)
    else {
        return Err(ReplayError::Unreplayable(format!(
            "owed to {}, which is neither configured region",
            owed.target_region
        )));
    };
    let entry = owed
        .entry(&EntryTarget {
            source: CROSS_REGION_SOURCE,
            event_bus_name: Some(publisher.bus()),
        })
        .map_err(|e| ReplayError::Unreplayable(e.to_string()))?;
    let outcome = tokio::time::timeout(
        replayers.call_timeout,
        publisher.put_events(std::slice::from_ref(&entry)),
    )
    .await;
    let refused = match outcome {
        Ok(Ok(results)) => match results.into_iter().next() {
            Some(Ok(_)) => return Ok(()),
            Some(Err(err)) => err.to_string(),
            None => "an empty answer".to_string(),
        },
        Ok(Err(err)) => err.to_string(),
        Err(_) => format!("no answer within {} ms", replayers.call_timeout.as_millis()),
    };
    Err(ReplayError::Unreplayable(format!(
        "{} did not take the owed event {} yet: {refused}",
        owed.target_region, owed.envelope.event_id
    )))
}

async fn wait(rx: oneshot::Receiver<()>) -> Result<(), ReplayError> {
    rx.await.map_err(|_| ReplayError::Interrupted)
}
