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
//! A dead letter that fails again goes back to the DLQ as a new dead letter. One whose payload
//! was truncated, or that does not parse, is left in the queue and reported.

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
use crate::telemetry::Metrics;
use eda_config::Config;
use eda_core::cdc::{CdcEvent, KafkaCoordinates};
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

/// Replays up to `max` dead letters from the primary region's DLQ.
pub async fn redrive(config: &Config, max: usize) -> Result<RedriveReport, RedriveError> {
    let clients = RegionClients::new(&config.regions.primary, &config.aws).await;
    let queue = Arc::new(SqsDeadLetterQueue::new(
        clients.sqs.clone(),
        config.regions.primary.dlq_queue_url.clone(),
    ));
    let metrics = Arc::new(Metrics::new());
    let (publisher, dlq) = spawn_unsupervised(
        config,
        &config.regions.primary,
        clients.eventbridge.clone(),
        queue.clone(),
        metrics.clone(),
    )
    .await?;
    let (applier, _) = Actor::spawn(
        None,
        CdcApplier,
        CdcApplierArgs {
            writer: Arc::new(DynamoDbItemWriter::new(clients.dynamodb.clone())),
            publisher: publisher.clone(),
            dlq: dlq.clone(),
            // Redrive replays into the home region only; replication is the daemon's job.
            router: None,
            settings: Arc::new(applier_settings(config)),
            metrics,
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
    let result = drain_queue(queue.as_ref(), &replayers, &mut decoder, max).await;
    replayers.applier.stop(None);
    replayers.publisher.stop(None);
    // The DLQ writer flushes what it holds when it stops.
    let _ = replayers
        .dlq
        .stop_and_wait(None, Some(std::time::Duration::from_secs(30)))
        .await;
    result
}

async fn drain_queue(
    queue: &dyn DeadLetterSink,
    replayers: &Replayers,
    decoder: &mut MessageDecoder,
    max: usize,
) -> Result<RedriveReport, RedriveError> {
    let mut report = RedriveReport::default();
    let mut seen = std::collections::HashSet::new();
    while report.received < max {
        let want = i32::try_from((max - report.received).min(10)).unwrap_or(10);
        let batch = queue.receive(want, 1).await?;
        if batch.is_empty() {
            break;
        }
        for message in batch {
            // A message left in the queue becomes visible again; count it once.
            if !seen.insert(message.body.clone()) {
                continue;
            }
            report.received += 1;
            let letter = match DeadLetterEvent::from_sqs_body(&message.body) {
                Ok(letter) => letter,
                Err(err) => {
                    report
                        .left_in_queue
                        .push(format!("unreadable dead letter: {err}"));
                    continue;
                }
            };
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
            match decoder.decode(Some(&payload), None, origin, None).await {
                Ok(Decoded::Change(event)) => replayers
                    .applier
                    .cast(CdcApplierMsg::Apply {
                        events: vec![*event],
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
