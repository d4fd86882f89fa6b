//! The `message` path of `make bench-ir`: what the daemon does with one Kafka message between
//! its raw bytes and the applier's hand-off, in the daemon's order, for the pure parts (the
//! reader's copy out of librdkafka and the actors' mailboxes are not in it):
//!
//! - the partition consumer: the message's coordinates, the Qlik JSON decode, the split of a
//!   key-changing UPDATE, the applier its key hashes to;
//! - the CDC applier: the plan of the batch (one guarded write per item), each change's
//!   sequence, the verdicts of the writes (all applied), and per change the hand-off's part
//!   before the entry: the dead-letter source, the table's name for the routing decision, the
//!   business event (`into_base_event`), whether it crosses regions and the routed copy's
//!   dead-letter source.
//!
//! What comes after (the `PutEvents` entry, the envelope, the HTTP exchange) is counted by the
//! `change`, `envelope` and `exchange` paths. Messages go through in batches of [`BATCH`]
//! distinct keys (one partition fetch's changes for one applier, small): the figure is per
//! message, the batch's own allocations shared.
//!
//! Included by `instructions.rs` (instructions per message) and `allocations.rs` (allocation
//! calls per message).

use std::hint::black_box;
use std::sync::Arc;

use eda_config::RoutingConfig;
use eda_core::apply_plan::{
    self, applier_for, effective_sequence, settle, split_key_change, PlanOptions, TableRouting,
    Verdict, WriteOutcome, WriteResult,
};
use eda_core::cdc::{decode_qlik_json, CdcEvent, KafkaCoordinates, MetadataCache, QlikMessage};
use eda_core::change_event::into_base_event;
use eda_core::dead_letter::DeadLetterSource;
use eda_core::transform::Payload;

use super::workloads::{Source, QLIK_UPDATE};

/// Messages per applier batch.
pub const BATCH: usize = 8;

/// Appliers the changes are spread over (the daemon's default).
const APPLIERS: usize = 4;

/// What stays the same from message to message: the payloads (the bench's Qlik update under
/// [`BATCH`] different order ids), the decoder's settings and the applier's.
pub struct Setup {
    payloads: Vec<Vec<u8>>,
    source: Source,
    metadata: MetadataCache,
    topic: Arc<str>,
    routing: TableRouting,
    replication: RoutingConfig,
    region: Arc<str>,
}

impl Setup {
    pub fn new() -> Setup {
        let text = std::str::from_utf8(QLIK_UPDATE).expect("the fixture is UTF-8");
        let payloads = (0..BATCH)
            .map(|i| {
                text.replace(
                    "\"ORDER_ID\":\"1001\"",
                    &format!("\"ORDER_ID\":\"{}\"", 2001 + i),
                )
                .into_bytes()
            })
            .collect();
        Setup {
            payloads,
            source: Source::new("SALES", "ORDERS"),
            metadata: MetadataCache::new(),
            topic: "qlik.SALES.ORDERS".into(),
            routing: TableRouting::new("eda-items"),
            replication: RoutingConfig {
                replicate_tables: vec!["SALES.ORDERS".into()],
                ..RoutingConfig::default()
            },
            region: "us-west-2".into(),
        }
    }
}

/// `n` messages (a multiple of [`BATCH`]) from raw bytes to the hand-off; how many came out as
/// a published change, ready for its entry (all of them, or the figure is wrong).
pub fn run(setup: &Setup, n: usize) -> usize {
    let ctx = setup.source.ctx();
    let opts = PlanOptions {
        now_epoch_secs: 1_714_564_800,
        tombstone_ttl_secs: 86_400,
        refresh_started_at: None,
    };
    let mut offset = 0i64;
    let mut done = 0;
    for _ in 0..n / BATCH {
        // The partition consumer: decode, split, route.
        let mut changes: Vec<CdcEvent> = Vec::new();
        for payload in &setup.payloads {
            offset += 1;
            let origin = KafkaCoordinates {
                topic: setup.topic.clone(),
                partition: 0,
                offset,
            };
            let Ok(QlikMessage::Change(event)) =
                decode_qlik_json(black_box(payload), &ctx, &setup.metadata, Some(origin))
            else {
                continue;
            };
            let (first, second) = split_key_change(event);
            for change in std::iter::once(first).chain(second) {
                black_box(applier_for(&change, APPLIERS));
                changes.push(change);
            }
        }
        // The applier: plan, sequences, verdicts.
        let events = apply_plan::split_key_changes(changes);
        let plan = apply_plan::plan(&events, &setup.routing, &opts);
        let outcomes: Vec<Option<WriteResult>> = plan
            .writes
            .iter()
            .map(|_| Some(Ok(WriteOutcome::Applied { previous: None })))
            .collect();
        black_box(&plan);
        let sequences: Vec<Option<String>> = events
            .iter()
            .map(|e| effective_sequence(e, &opts).ok())
            .collect();
        let verdicts = settle(&plan, &outcomes, &sequences);
        // The hand-off, up to the entry.
        for (event, verdict) in events.into_iter().zip(verdicts) {
            if verdict != Verdict::Publish {
                continue;
            }
            let source = match &event.kafka {
                Some(k) => DeadLetterSource::Kafka {
                    topic: k.topic.clone(),
                    partition: k.partition,
                    offset: k.offset,
                },
                None => continue,
            };
            let base = into_base_event(event, Arc::clone(&setup.region));
            let Payload::Change(change) = &base.payload else {
                continue;
            };
            let replicated = setup
                .replication
                .replicates_change(&change.table, &base.event_type);
            // The routed copy carries its own dead-letter source.
            let routed = replicated.then(|| source.clone());
            done += usize::from(replicated);
            black_box((source, base, routed));
        }
    }
    done
}
