//! Change events too large to travel whole go by reference: a *claim check* on the item that
//! holds the row.
//!
//! An EventBridge entry is at most 256 KB (`Source`, `DetailType`, `Detail` and `Resources`, as
//! EventBridge counts them: [`crate::eventbridge::entry_size`]), and a change event carries its row. A
//! row of a few hundred kilobytes used to be dead-lettered at the home bus (with a payload cut to
//! fit SQS, which no redrive can replay) while its zstd envelope still reached the other region.
//! Now one decision, made here, holds for every path an event takes:
//!
//! - **Whole** when it fits everywhere it may go: the home entry within 256 KB, and its
//!   cross-region envelope within `routing.max_entry_bytes` *even if zstd cannot shrink it*
//!   (the worst case, [`zstd::zstd_safe::compress_bound`], then base64), with room for the owed
//!   record and the `route` dead letter that may wrap that envelope within SQS's limits
//!   ([`WRAPPER_BYTES`]). That bound depends on the configuration and the event type only, so
//!   every path and region computes the same one ([`EventLimits::max_detail`]).
//! - **By reference** otherwise: the row images are left out (`payload.omitted` lists them) and
//!   `payload.claim_check` says where the row is: the DynamoDB table and region, the item's key
//!   and the change's sequence. The event keeps its id, type, time, table, operation, key and
//!   sequence. Both regions carry this same event (the router wraps the detail it is given), and
//!   it always fits.
//!
//! The daemon and the `stream-processor` must decide alike, yet their details differ by design
//! in `before` (Qlik's before image against the item's previous version), `correlation_id` and
//! `metadata`, and a DELETE's `after` (Qlik sends the deleted row; a tombstone keeps only the
//! key). So the decision is taken on the **agreed** detail, the event without those parts, which
//! serializes to the same bytes on both paths (rows are written canonically), with
//! [`RESERVED_BYTES`] kept for the parts that differ. A whole event whose differing parts do not
//! fit beside it leaves out its `before` (and a DELETE's `after`), listed in `omitted`. Only an
//! event whose correlation id and metadata alone exceed [`RESERVED_BYTES`] can be decided apart
//! (it then goes by reference on one path).
//!
//! A consumer holding a claim check reads the item (`GetItem`, consistent read): while its
//! `_seq` equals `claim_check.sequence` the item is the change's row (its `_zcols`, if any,
//! unpacked: see [`apply_plan`](crate::apply_plan)); a greater `_seq` means a newer change of the
//! key has replaced it, and that change's event follows. The before image of a change that went
//! by reference is not kept anywhere.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::apply_plan::{write_key_values, DELETED_ATTR, SEQ_ATTR};
use crate::change_event::change_entry;
use crate::envelope::{Compression, CrossRegionEvent, CROSS_REGION_SOURCE};
use crate::eventbridge::{EventBridgeEntry, MAX_CALL_BYTES};
use crate::owed::MAX_OWED_MESSAGE_BYTES;
use crate::stream_change::{expanded, row_of, StreamChangeError};
use crate::stream_record::{AttributeValue, Image};
use crate::transform::{BaseEvent, Payload};
use eda_config::RoutingConfig;

/// Room kept beside the agreed detail for what the two paths write differently: the correlation
/// id (in the detail and in the envelope) and the metadata (Kafka coordinates or the stream's
/// position; the trace: `trace_id` and `traceparent`, 120 bytes with their keys, which both
/// paths write alike but which the agreed detail leaves out with the rest of the metadata; a
/// header's correlation id, at most [`MAX_HEADER_VALUE_BYTES`](crate::trace::MAX_HEADER_VALUE_BYTES)).
pub const RESERVED_BYTES: usize = 2 * 1024;

/// Room kept between a cross-region envelope and SQS's message limit for what wraps it in the
/// owed queue (target region, reason, time, source) and in a `route` dead letter (the letter's
/// fields, its error message, the escaping of the owed record's quotes, the message attributes).
pub const WRAPPER_BYTES: usize = 8 * 1024;

/// Where the row of an event that went by reference is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimCheck {
    /// The DynamoDB table holding the item.
    pub dynamodb_table: String,
    /// The item's key attributes: `{"pk": "SCHEMA.TABLE#key"}` for eda's tables.
    pub item_key: Map<String, Value>,
    /// The region of that table (the region the change was applied in).
    pub region: String,
    /// The change's sequence: the item's `_seq` while it holds this change's row.
    pub sequence: String,
}

/// Where a change's item is, for its claim check.
#[derive(Debug, Clone)]
pub struct ItemAddress<'a> {
    /// The region the change was applied in.
    pub region: &'a str,
    /// The DynamoDB table it was written to.
    pub table: &'a str,
    /// The item's key attributes; `None`: eda's `pk`, made from the change's table and key.
    pub key: Option<Map<String, Value>>,
}

/// The sizes every change event is held to, from the configuration: the same on every path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLimits {
    /// `publish.source`'s bytes, part of every home entry.
    source_bytes: usize,
    /// Most bytes of a cross-region entry (`routing.max_entry_bytes`, and SQS's limits less
    /// [`WRAPPER_BYTES`] for the owed record and the route letter).
    envelope_entry_bytes: usize,
    /// Bytes of an envelope's JSON besides its payload, event type and correlation id, at its
    /// longest.
    envelope_fixed_bytes: usize,
    /// The largest payload of an envelope with an empty event type: the start of
    /// [`quick_max_detail`](Self::quick_max_detail), computed once.
    payload_without_type: usize,
}

impl EventLimits {
    /// The limits of events published under `source`, routed with `routing` between `regions`,
    /// dead-lettered within `dlq_max_message_bytes`.
    pub fn new(
        source: &str,
        routing: &RoutingConfig,
        dlq_max_message_bytes: usize,
        regions: [&str; 2],
    ) -> Self {
        let longest = regions
            .iter()
            .copied()
            .max_by_key(|r| r.len())
            .unwrap_or("");
        // The envelope at its longest, with an empty payload and event type: the longest
        // region both ways, a time with nanoseconds, 8-digit sizes (unpacking refuses more than
        // 16 MiB) and a dictionary id of 10 digits.
        let skeleton = CrossRegionEvent {
            event_id: "00000000-0000-0000-0000-000000000000".into(),
            source_region: longest.into(),
            target_region: longest.into(),
            event_type: String::new(),
            correlation_id: None,
            // A `traceparent` is always 55 bytes; every path carries the same one, or none.
            traceparent: Some(format!("00-{}-{}-00", "0".repeat(32), "0".repeat(16))),
            created_at: chrono::DateTime::from_timestamp(4_102_444_800, 999_999_999)
                .unwrap_or_default(),
            content_hash: "0".repeat(64),
            compression: Compression::Zstd,
            dictionary_id: Some(u32::MAX),
            original_size: 99_999_999,
            compressed_size: 99_999_999,
            payload: String::new(),
            payload_ref: None,
        };
        let envelope_fixed_bytes = serde_json::to_string(&skeleton).map_or(1024, |s| s.len());
        let sqs = MAX_OWED_MESSAGE_BYTES.min(dlq_max_message_bytes);
        let envelope_entry_bytes = routing
            .max_entry_bytes
            .min(MAX_CALL_BYTES)
            .min(sqs.saturating_sub(WRAPPER_BYTES));
        let around = CROSS_REGION_SOURCE.len() + envelope_fixed_bytes;
        Self {
            source_bytes: source.len(),
            envelope_entry_bytes,
            envelope_fixed_bytes,
            payload_without_type: largest_payload(envelope_entry_bytes.saturating_sub(around)),
        }
    }

    /// A lower bound of [`max_detail`](Self::max_detail), without its search: each byte the
    /// event type takes from the envelope's room takes at most one byte from the payload (base64
    /// spends four bytes per three), and 4 bytes cover the rounding. For the hot path, where
    /// nearly every event is far below it.
    pub fn quick_max_detail(&self, detail_type: &str) -> usize {
        let home = MAX_CALL_BYTES.saturating_sub(self.source_bytes + detail_type.len());
        let type_cost = detail_type.len() + json_string_len(detail_type) + 4;
        home.min(self.payload_without_type.saturating_sub(type_cost))
    }

    /// The longest `Detail` a change event of type `detail_type` may have and still fit every
    /// path: its home entry, and its cross-region envelope however little zstd shrinks it.
    pub fn max_detail(&self, detail_type: &str) -> usize {
        let home = MAX_CALL_BYTES.saturating_sub(self.source_bytes + detail_type.len());
        // The envelope entry: its source, its detail type, the envelope's JSON (which holds the
        // event type again, escaped) and the base64 of the compressed payload.
        let around = CROSS_REGION_SOURCE.len()
            + detail_type.len()
            + self.envelope_fixed_bytes
            + json_string_len(detail_type);
        let base64_room = self.envelope_entry_bytes.saturating_sub(around);
        home.min(largest_payload(base64_room))
    }
}

/// The largest payload whose zstd frame, at its worst, takes at most `base64_room` bytes in
/// base64.
fn largest_payload(base64_room: usize) -> usize {
    let fits = |n: usize| base64_len(zstd::zstd_safe::compress_bound(n)) <= base64_room;
    let (mut low, mut high) = (0usize, base64_room);
    if !fits(0) {
        return 0;
    }
    while low < high {
        let mid = low + (high - low).div_ceil(2);
        if fits(mid) {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    low
}

fn base64_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

/// Bytes of `s` as the contents of a JSON string, as serde_json escapes it.
fn json_string_len(s: &str) -> usize {
    s.bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum()
}

/// The EventBridge entry of a change event, whole or by reference as the module doc says.
/// `event` is changed to what the entry carries (row images left out, a claim check added), so
/// the caller's copy stays what was published. An event that is no CDC change is sent as it is.
pub fn change_entry_within(
    event: &mut BaseEvent,
    source: &str,
    bus: &str,
    limits: &EventLimits,
    item: &ItemAddress<'_>,
) -> EventBridgeEntry {
    let entry = change_entry(event, source, bus);
    // Leaving out the differing parts turns at most two images into two `null`s (4 bytes more
    // than two `{}`), so an event this small is whole on every path: no second look.
    if entry.detail.len() + 4 + RESERVED_BYTES <= limits.quick_max_detail(&event.event_type) {
        return entry;
    }
    let max = limits.max_detail(&event.event_type);
    if !matches!(event.payload, Payload::Change(_)) {
        return entry;
    }
    if agreed_len(event) + RESERVED_BYTES <= max {
        if entry.detail.len() <= max {
            return entry;
        }
        leave_out_differing_images(event);
        let entry = change_entry(event, source, bus);
        if entry.detail.len() <= max {
            return entry;
        }
    }
    by_reference(event, item);
    change_entry(event, source, bus)
}

/// The length of `event`'s detail without what the paths write differently (its `before`, a
/// DELETE's `after`, the correlation id and the metadata): what the decision compares with
/// [`EventLimits::max_detail`] less [`RESERVED_BYTES`]. `event` is left as it was.
pub fn agreed_len(event: &mut BaseEvent) -> usize {
    let Payload::Change(change) = &mut event.payload else {
        return 0;
    };
    let delete = change.operation == "DELETE";
    let before = change.before.take();
    let after = if delete { change.after.take() } else { None };
    let correlation_id = event.correlation_id.take();
    let metadata = std::mem::take(&mut event.metadata);
    let mut counter = Counter(0);
    // A BaseEvent is plain strings and JSON values: writing it cannot fail.
    let _ = serde_json::to_writer(&mut counter, &*event);
    event.correlation_id = correlation_id;
    event.metadata = metadata;
    if let Payload::Change(change) = &mut event.payload {
        change.before = before;
        if delete {
            change.after = after;
        }
    }
    counter.0
}

/// Leaves out the images the paths do not agree on: `before`, and a DELETE's `after`.
fn leave_out_differing_images(event: &mut BaseEvent) {
    if let Payload::Change(change) = &mut event.payload {
        if change.before.take().is_some() {
            change.omitted.push("before");
        }
        if change.operation == "DELETE" && change.after.take().is_some() {
            change.omitted.insert(0, "after");
        }
    }
}

/// Leaves out both row images and adds the claim check.
fn by_reference(event: &mut BaseEvent, item: &ItemAddress<'_>) {
    let Payload::Change(change) = &mut event.payload else {
        return;
    };
    let had = |image: bool, name: &'static str| image || change.omitted.contains(&name);
    let (had_after, had_before) = (
        had(change.after.is_some(), "after"),
        had(change.before.is_some(), "before"),
    );
    change.after = None;
    change.before = None;
    change.omitted = [(had_after, "after"), (had_before, "before")]
        .into_iter()
        .filter_map(|(had, name)| had.then_some(name))
        .collect();
    let item_key = item.key.clone().unwrap_or_else(|| {
        let mut pk = String::with_capacity(change.table.len() + 24);
        pk.push_str(&change.table);
        pk.push('#');
        write_key_values(&mut pk, change.key.iter().map(|k| &k.value));
        let mut key = Map::new();
        key.insert("pk".into(), Value::String(pk));
        key
    });
    change.claim_check = Some(Box::new(ClaimCheck {
        dynamodb_table: item.table.to_owned(),
        item_key,
        region: item.region.to_owned(),
        sequence: change.change_sequence.clone(),
    }));
}

/// What the item a claim check names holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Claimed {
    /// The change's row: the item's columns (its `_zcols` unpacked, escaped names restored),
    /// without eda's metadata.
    Row(Map<String, Value>),
    /// The item holds another change of the key: a newer one replaced the row (its own event
    /// carries it), or a replica has not caught up yet. `sequence` is the item's.
    Other {
        /// The item's `_seq`.
        sequence: String,
        /// Whether the item is a tombstone.
        deleted: bool,
    },
    /// There is no such item (it was never written there, or DynamoDB's TTL reaped it).
    Missing,
}

/// What `item` (the claim check's item, read consistently; `None`: not found) holds for
/// `claim`.
pub fn claimed_row(item: Option<&Image>, claim: &ClaimCheck) -> Result<Claimed, StreamChangeError> {
    let Some(item) = item else {
        return Ok(Claimed::Missing);
    };
    let item = expanded(item)?;
    let sequence = match item.get(SEQ_ATTR) {
        Some(AttributeValue::S(s)) => s.clone(),
        Some(_) => return Err(StreamChangeError::NotAString(SEQ_ATTR)),
        None => String::new(),
    };
    let deleted = matches!(item.get(DELETED_ATTR), Some(AttributeValue::Bool(true)));
    if sequence != claim.sequence || deleted {
        return Ok(Claimed::Other { sequence, deleted });
    }
    Ok(Claimed::Row(row_of(&item)))
}

/// An `io::Write` that only counts.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
