//! From a batch of [`CdcEvent`]s to the sequence-guarded DynamoDB writes that apply them.
//!
//! Pure data in, pure data out: [`plan`] decides *what* to write; an adapter at the AWS boundary
//! turns each [`PlannedWrite`] into a conditional `PutItem` (or a `TransactWriteItems` entry), and
//! [`simulate`] applies a plan to an in-memory table with the same semantics for tests and the
//! loadtest.
//!
//! # Item layout
//!
//! - `pk` (S): `<schema>.<table>#<key values>` — key values in key order, joined with `|`; a `\` or
//!   `|` inside a value is escaped with `\`, and a null key value is written `\N`. Numbers and
//!   strings render the same (`1` and `"1"` give `1`), so Qlik JSON (which sends strings) and Avro
//!   (which sends ints) address the same item.
//! - every after-image column as an attribute of the same name; a column named `pk` or starting
//!   with `_` is stored as `_col_<name>`, so it can never collide with ours;
//! - `_seq` (S) change sequence, `_op` (S) operation, `_table` (S) `schema.table`, `_ts` (S) source
//!   timestamp when known, `_deleted` (BOOL), `_key` (L of S) the key column names in key order
//!   (whatever told the daemon the key: Qlik's metadata or `kafka.key_columns`), so a reader of
//!   the item (the stream processor) names the key as the daemon did; `_trace` (S) the W3C
//!   `traceparent` the change's event was published under, when it was traced (55 bytes, counted
//!   in the item's size like every attribute); `_shape` (S) 16 hex digits that fingerprint the
//!   names of the item's other attributes ([`shape_of`]): a batched write replaces an item by
//!   setting every attribute by name only where the stored item has the same names (see
//!   [`SHAPE_ATTR`]);
//! - tombstones (deletes) keep only `pk`, the key columns and the metadata, with `_deleted = true`
//!   and `_ttl` (N, epoch seconds) = `now + tombstone TTL`, so DynamoDB's TTL reaps them later.
//!
//! - an item over DynamoDB's 400 KB limit ([`item_size`], counted as DynamoDB counts it) has its
//!   largest columns moved, zstd-compressed, into the binary attribute `_zcols`
//!   ([`PACKED_ATTR`]) until it fits (see `packed.rs`); [`unpacked`] gives the whole item back.
//!   A row that does not fit even so is refused ([`PlanError::RowTooLarge`]), and the plan is
//!   made again without it, as if it had been applied alone: the changes coalesced with it are
//!   still written.
//!
//! Every write carries the guard [`GUARD_EXPRESSION`] (`attribute_not_exists(pk) OR #seq < :seq`,
//! `#seq` = `_seq`): a replayed or older change fails the condition and is simply acknowledged.
//! An adapter must treat `ConditionalCheckFailed` as success-without-effect.
//!
//! # Coalescing
//!
//! Changes to one item (same target table and `pk`) inside a batch become one write: the change
//! with the highest sequence, ties going to the later position. Highest, not last, because Kafka
//! redeliveries can put an older change after a newer one. Each write lists every input index it
//! covers so the caller can acknowledge all of them, and names the one actually written.
//!
//! An UPDATE whose key changed (the before image renders a different `pk`) is not planned as
//! one change: callers split it first ([`split_key_change`], [`split_key_changes`]) into the
//! DELETE of the old key and the INSERT of the new key, so each key's changes stay in order on
//! the applier that owns the key (see `key_change.rs`). The CDC applier splits every batch it is
//! given; the partition consumer splits before it routes.
//!
//! # REFRESH rule
//!
//! Full-load rows carry no real change sequence. A REFRESH row keeps its sequence when it has a
//! valid one (Debezium snapshot reads always do: their source position). Otherwise it gets a
//! synthetic sequence in Qlik's layout: the 14 digits `YYYYMMDDhhmmss` of the row's source
//! timestamp (else of [`PlanOptions::refresh_started_at`], the load's start), followed by 21 zeros.
//! Every change Qlik captures in or after that second has a non-zero counter and so sorts above
//! the synthetic sequence: a newer CDC change is never overwritten by a load row, while a reload
//! (a later second) replaces an older load. The blind spot is a change committed in the same
//! second but *before* the row was read: it wins over the (newer) load row. A REFRESH row with
//! neither a sequence nor any time is rejected rather than guessed.
//!
//! Events that cannot be planned (bad sequence, REFRESH without time, no key) are returned in
//! [`ApplyPlan::rejected`] for the dead-letter queue; the rest of the batch is still planned.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use super::cdc::{is_valid_sequence, CdcEvent, Cell, Operation, TableRef, SEQUENCE_LEN};
use super::failure::ErrorClass;

mod item_size;
mod key_change;
mod packed;
#[cfg(test)]
mod props;
mod simulate;
#[cfg(test)]
mod tests;
pub mod verdict;

pub use item_size::{attribute_size, item_size, number_size, value_size, MAX_ITEM_BYTES};
pub use key_change::{changes_key, split_key_change, split_key_changes};
pub use packed::{pack, typed, unpack, unpacked, untyped, PackedError, PACKED_ATTR, PACK_LEVEL};
pub use simulate::{simulate, SimOutcome, SimTable};
pub use verdict::{settle, Verdict, WriteFailure, WriteOutcome, WriteResult};

/// Partition key attribute of every item.
pub const PK_ATTR: &str = "pk";
/// Change sequence attribute; compared by the guard.
pub const SEQ_ATTR: &str = "_seq";
/// Operation attribute (`INSERT`, `UPDATE`, `DELETE`, `REFRESH`).
pub const OP_ATTR: &str = "_op";
/// Source `schema.table` attribute.
pub const TABLE_ATTR: &str = "_table";
/// Source timestamp attribute.
pub const TS_ATTR: &str = "_ts";
/// Tombstone flag attribute.
pub const DELETED_ATTR: &str = "_deleted";
/// Expiry attribute of tombstones (epoch seconds); the table's TTL attribute.
pub const TTL_ATTR: &str = "_ttl";
/// Key column names attribute: the change's key columns, in key order (L of S).
pub const KEY_ATTR: &str = "_key";
/// Trace attribute: the W3C `traceparent` the change's event was published under (see
/// [`crate::trace`]), so the `stream-processor` publishes it under the same trace; absent when
/// nothing traced the change.
pub const TRACE_ATTR: &str = "_trace";
/// Shape attribute: a fingerprint of the names of the item's other attributes ([`shape_of`]),
/// so a write that sets every attribute by name (a batched PartiQL `UPDATE`) can require the
/// stored item to have the same names and so replace it whole, as a `PutItem` does.
pub const SHAPE_ATTR: &str = "_shape";
/// Prefix given to source columns that would collide with the attributes above.
pub const ESCAPED_COLUMN_PREFIX: &str = "_col_";

/// The condition every write carries.
pub const GUARD_EXPRESSION: &str = "attribute_not_exists(pk) OR #seq < :seq";
/// Expression attribute name used by [`GUARD_EXPRESSION`].
pub const GUARD_SEQ_NAME: &str = "#seq";
/// Expression attribute value used by [`GUARD_EXPRESSION`]; bind it to the write's sequence.
pub const GUARD_SEQ_VALUE: &str = ":seq";

/// A DynamoDB attribute value, without the SDK: the adapter maps it one to one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AttrValue {
    /// String.
    S(String),
    /// Number, kept as its decimal text so no precision is lost.
    N(String),
    /// Boolean.
    Bool(bool),
    /// Null.
    Null,
    /// Map.
    M(BTreeMap<String, AttrValue>),
    /// List.
    L(Vec<AttrValue>),
    /// Binary.
    B(Vec<u8>),
}

impl AttrValue {
    /// Converts a decoded column value: strings to S, numbers to N, objects to M, arrays to L.
    pub fn from_json(v: &Value) -> AttrValue {
        match v {
            Value::Null => AttrValue::Null,
            Value::Bool(b) => AttrValue::Bool(*b),
            Value::Number(n) => AttrValue::N(n.to_string()),
            Value::String(s) => AttrValue::S(s.clone()),
            Value::Array(a) => AttrValue::L(a.iter().map(AttrValue::from_json).collect()),
            Value::Object(m) => AttrValue::M(
                m.iter()
                    .map(|(k, v)| (k.clone(), AttrValue::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// Converts a row's column as [`AttrValue::from_json`] converts that column's `serde_json`
    /// value, without building the value first: a string column costs one allocation (its
    /// attribute's text) instead of two, which is most of what planning a write allocated
    /// (`docs/perf/hops.md`).
    pub fn from_cell(cell: Cell<'_>) -> AttrValue {
        match cell {
            Cell::Str(s) => AttrValue::S(s.to_owned()),
            // As `Cell::to_value` then `from_json`: the number as serde_json writes it back
            // (`1.50` is `1.5`), and the text as a string in the case that never happens (the
            // row index holds valid JSON numbers only).
            Cell::Number(text) => match text.parse::<serde_json::Number>() {
                Ok(n) => AttrValue::N(n.to_string()),
                Err(_) => AttrValue::S(text.to_owned()),
            },
            Cell::Bool(b) => AttrValue::Bool(b),
            Cell::Null => AttrValue::Null,
            Cell::Nested(v) => AttrValue::from_json(v),
        }
    }
}

/// An item: attribute name to value.
pub type Item = BTreeMap<String, AttrValue>;

/// Which DynamoDB table a source table's items go to.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TableRouting {
    /// Table for every source table not listed in `overrides`.
    pub default: String,
    /// schema -> table -> DynamoDB table.
    #[serde(default)]
    pub overrides: HashMap<String, HashMap<String, String>>,
}

impl TableRouting {
    /// Everything goes to `default`.
    pub fn new(default: impl Into<String>) -> Self {
        Self {
            default: default.into(),
            overrides: HashMap::new(),
        }
    }

    /// Routes one source table elsewhere.
    pub fn with_override(mut self, table: &TableRef, target: impl Into<String>) -> Self {
        self.overrides
            .entry(table.schema.to_string())
            .or_default()
            .insert(table.table.to_string(), target.into());
        self
    }

    /// The DynamoDB table for `table`.
    pub fn target(&self, table: &TableRef) -> &str {
        self.overrides
            .get(&*table.schema)
            .and_then(|t| t.get(&*table.table))
            .unwrap_or(&self.default)
    }
}

/// Inputs of a plan besides the events; passed in so planning stays deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanOptions {
    /// Current time, epoch seconds; tombstones expire at `now + tombstone_ttl_secs`.
    pub now_epoch_secs: i64,
    /// How long a tombstone must outlive its delete: longer than any replay can be late.
    pub tombstone_ttl_secs: i64,
    /// Start of the current full load, epoch seconds; used for REFRESH rows without a time.
    pub refresh_started_at: Option<i64>,
}

/// Why one event could not be planned; it belongs in the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlanError {
    /// The change sequence is not 35 decimal digits, so it cannot be ordered.
    #[error("change sequence {sequence:?} is not {SEQUENCE_LEN} decimal digits")]
    BadSequence {
        /// The sequence found.
        sequence: String,
    },
    /// A REFRESH row without a sequence, source time, or configured load start.
    #[error("REFRESH row has no sequence, no source timestamp and no load start time")]
    RefreshWithoutTime,
    /// The event has no key columns.
    #[error("the change has no key columns")]
    NoKey,
    /// The row's item is over DynamoDB's item limit even with its columns compressed into
    /// `_zcols`.
    #[error(
        "the row's item is {item_bytes} bytes, and {packed_bytes} with its columns \
         zstd-compressed into _zcols: over DynamoDB's {MAX_ITEM_BYTES}-byte item limit either way"
    )]
    RowTooLarge {
        /// The item's size as DynamoDB counts it.
        item_bytes: usize,
        /// Its size with every column but the key compressed.
        packed_bytes: usize,
    },
}

impl PlanError {
    /// The failure vocabulary's class: a row too large is [`ErrorClass::TooLarge`], the rest
    /// are changes that are not valid.
    pub fn class(&self) -> ErrorClass {
        match self {
            PlanError::RowTooLarge { .. } => ErrorClass::TooLarge,
            _ => ErrorClass::Validation,
        }
    }
}

/// One conditional put.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedWrite {
    /// Target DynamoDB table.
    pub table_name: String,
    /// The full item (PutItem replaces the whole item).
    pub item: Item,
    /// Bound to [`GUARD_SEQ_VALUE`] in [`GUARD_EXPRESSION`].
    pub sequence: String,
    /// Whether this is a tombstone.
    pub tombstone: bool,
    /// Input index of the change written.
    pub winner: usize,
    /// Every input index this write settles, ascending, the winner included.
    pub covers: Vec<usize>,
}

impl PlannedWrite {
    /// The item's `pk`.
    pub fn pk(&self) -> &str {
        match self.item.get(PK_ATTR) {
            Some(AttrValue::S(s)) => s,
            _ => "",
        }
    }
}

/// An event left out of the plan and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// Input index.
    pub index: usize,
    /// Why.
    pub error: PlanError,
}

/// The writes for one batch, plus the events that could not be planned.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ApplyPlan {
    /// One write per distinct item, in order of first appearance.
    pub writes: Vec<PlannedWrite>,
    /// Events to dead-letter.
    pub rejected: Vec<Rejected>,
}

/// A write to be, before coalescing.
struct Candidate<'e> {
    index: usize,
    event: &'e CdcEvent,
    /// Borrowed from the event unless made for a REFRESH row: only the winner's is copied.
    sequence: Cow<'e, str>,
}

/// Plans the writes for `events` (see the module doc for every rule).
pub fn plan(events: &[CdcEvent], routing: &TableRouting, opts: &PlanOptions) -> ApplyPlan {
    let mut refused: Vec<Rejected> = Vec::new();
    loop {
        let (mut plan, unfit) = plan_once(events, &refused, routing, opts);
        if unfit.is_empty() {
            plan.rejected.extend(refused);
            plan.rejected.sort_by_key(|r| r.index);
            return plan;
        }
        // Planned again without the rows too large to write, as if each had been applied on its
        // own: the changes coalesced with one are still written.
        refused.extend(unfit);
    }
}

/// One planning pass, leaving out the changes of `refused`; returns the plan and the winners
/// whose item cannot fit DynamoDB's limit.
fn plan_once(
    events: &[CdcEvent],
    refused: &[Rejected],
    routing: &TableRouting,
    opts: &PlanOptions,
) -> (ApplyPlan, Vec<Rejected>) {
    let mut rejected = Vec::new();
    // (target table, pk) -> slot; slots keep first-appearance order. The pk lives in the map
    // only, and moves into its write at the end.
    let mut slots: HashMap<(&str, String), usize> = HashMap::with_capacity(events.len());
    let mut chosen: Vec<(Candidate<'_>, Vec<usize>)> = Vec::new();
    for (index, event) in events.iter().enumerate() {
        if refused.iter().any(|r| r.index == index) {
            continue;
        }
        let sequence = match sequence_of(event, opts) {
            Ok(s) => s,
            Err(error) => {
                rejected.push(Rejected { index, error });
                continue;
            }
        };
        if event.key.is_empty() {
            rejected.push(Rejected {
                index,
                error: PlanError::NoKey,
            });
            continue;
        }
        let target = routing.target(&event.table);
        let pk = render_pk(&event.table, event.key.iter().map(|k| &k.value));
        let cand = Candidate {
            index,
            event,
            sequence,
        };
        match slots.entry((target, pk)) {
            Entry::Occupied(slot) => {
                let (best, covers) = &mut chosen[*slot.get()];
                covers.push(index);
                // Inputs come in position order, so `>=` gives ties to the later position.
                if cand.sequence >= best.sequence {
                    *best = cand;
                }
            }
            Entry::Vacant(slot) => {
                slot.insert(chosen.len());
                chosen.push((cand, vec![index]));
            }
        }
    }
    let mut pks: Vec<String> = vec![String::new(); chosen.len()];
    for ((_, pk), slot) in slots {
        pks[slot] = pk;
    }
    let mut writes = Vec::with_capacity(chosen.len());
    let mut unfit = Vec::new();
    for ((cand, mut covers), pk) in chosen.into_iter().zip(pks) {
        covers.dedup();
        let target = routing.target(&cand.event.table);
        let index = cand.index;
        match build_write(cand, covers, target, pk, opts) {
            Ok(write) => writes.push(write),
            Err(error) => unfit.push(Rejected { index, error }),
        }
    }
    (ApplyPlan { writes, rejected }, unfit)
}

/// The sequence the guard compares, per the REFRESH rule in the module doc.
pub fn effective_sequence(event: &CdcEvent, opts: &PlanOptions) -> Result<String, PlanError> {
    sequence_of(event, opts).map(Cow::into_owned)
}

/// [`effective_sequence`], borrowed from the event when it is the event's own.
fn sequence_of<'e>(event: &'e CdcEvent, opts: &PlanOptions) -> Result<Cow<'e, str>, PlanError> {
    if is_valid_sequence(&event.change_sequence) {
        return Ok(Cow::Borrowed(&event.change_sequence));
    }
    if event.operation != Operation::Refresh || !event.change_sequence.is_empty() {
        return Err(PlanError::BadSequence {
            sequence: event.change_sequence.clone(),
        });
    }
    let from_row = event.source_timestamp.as_deref().and_then(timestamp_digits);
    let from_load = || {
        opts.refresh_started_at
            .and_then(|s| DateTime::from_timestamp(s, 0))
            .map(|d| d.format("%Y%m%d%H%M%S").to_string())
    };
    let digits = from_row
        .or_else(from_load)
        .ok_or(PlanError::RefreshWithoutTime)?;
    Ok(Cow::Owned(format!("{digits}{:021}", 0)))
}

/// `YYYYMMDDhhmmss` from a timestamp spelled `YYYY-MM-DD[T ]hh:mm:ss...` (Qlik's and RFC 3339).
fn timestamp_digits(ts: &str) -> Option<String> {
    let b = ts.as_bytes();
    let shape = b"dddd-dd-dd?dd:dd:dd";
    if b.len() < shape.len() {
        return None;
    }
    let mut out = String::with_capacity(14);
    for (c, s) in b.iter().zip(shape.iter()) {
        match s {
            b'd' if c.is_ascii_digit() => out.push(char::from(*c)),
            b'd' => return None,
            b'?' if *c == b'T' || *c == b' ' => {}
            b'?' => return None,
            sep if c == sep => {}
            _ => return None,
        }
    }
    Some(out)
}

/// Which of `appliers` appliers owns a change: chosen by its item key, so every change of one key
/// lands on the same applier and one key's writes are never reordered. Deterministic (SipHash with
/// fixed keys), so a replay after a restart takes the same route.
pub fn applier_for(event: &CdcEvent, appliers: usize) -> usize {
    use std::hash::Hasher;
    // The pk's text fed to the hasher piece by piece, as `pk.hash(&mut hasher)` would feed it
    // whole (SipHash reads a stream of bytes; a `str` ends with 0xff): the same applier without
    // rendering the pk for every change.
    let mut hasher = PkHasher(std::collections::hash_map::DefaultHasher::new());
    write_pk(
        &mut hasher,
        &event.table,
        event.key.iter().map(|k| &k.value),
    );
    hasher.0.write_u8(0xff);
    usize::try_from(hasher.0.finish() % appliers.max(1) as u64).unwrap_or(0)
}

/// Where a pk's text goes: a `String`, or a hasher that needs only its bytes.
pub(crate) trait PkText {
    /// Appends `s`.
    fn push_str(&mut self, s: &str);
}

impl PkText for String {
    fn push_str(&mut self, s: &str) {
        String::push_str(self, s);
    }
}

/// A pk's text hashed as it is written.
struct PkHasher(std::collections::hash_map::DefaultHasher);

impl PkText for PkHasher {
    fn push_str(&mut self, s: &str) {
        std::hash::Hasher::write(&mut self.0, s.as_bytes());
    }
}

/// `schema.table#v1|v2`, escaping as the module doc says.
pub fn render_pk<'v>(table: &TableRef, values: impl Iterator<Item = &'v Value>) -> String {
    let mut pk = String::with_capacity(table.schema.len() + table.table.len() + 24);
    write_pk(&mut pk, table, values);
    pk
}

/// [`render_pk`] appended to `pk` (for callers that reuse a buffer).
pub(crate) fn write_pk<'v>(
    pk: &mut impl PkText,
    table: &TableRef,
    values: impl Iterator<Item = &'v Value>,
) {
    pk.push_str(&table.schema);
    pk.push_str(".");
    pk.push_str(&table.table);
    pk.push_str("#");
    write_key_values(pk, values);
}

/// The key part of a `pk` (after `#`): the values joined with `|`, escaped as the module doc
/// says.
pub(crate) fn write_key_values<'v>(pk: &mut impl PkText, values: impl Iterator<Item = &'v Value>) {
    for (i, v) in values.enumerate() {
        if i > 0 {
            pk.push_str("|");
        }
        match v {
            Value::Null => pk.push_str("\\N"),
            Value::String(s) => push_escaped(pk, s),
            Value::Number(n) => pk.push_str(&n.to_string()),
            Value::Bool(b) => pk.push_str(if *b { "true" } else { "false" }),
            other => push_escaped(pk, &other.to_string()),
        }
    }
}

fn push_escaped(out: &mut impl PkText, s: &str) {
    // Key values are short and seldom hold either byte: one plain pass answers that, where
    // memchr's set-up alone cost more than the whole value.
    if !s.bytes().any(|b| b == b'\\' || b == b'|') {
        out.push_str(s);
        return;
    }
    let mut plain_from = 0;
    for at in memchr::memchr2_iter(b'\\', b'|', s.as_bytes()) {
        // Both bytes are ASCII, so the cuts fall on character boundaries.
        out.push_str(s.get(plain_from..at).unwrap_or(""));
        out.push_str("\\");
        plain_from = at;
    }
    out.push_str(s.get(plain_from..).unwrap_or(""));
}

/// The attribute name of a source column, moved aside if it would collide with ours.
fn column_attr(name: &str) -> String {
    if is_escaped(name) {
        format!("{ESCAPED_COLUMN_PREFIX}{name}")
    } else {
        name.to_owned()
    }
}

/// Whether a source column's attribute is moved aside ([`column_attr`]).
fn is_escaped(name: &str) -> bool {
    name == PK_ATTR || name.starts_with('_')
}

/// Whether `attr` is the attribute [`column_attr`] names `column`, without building it.
fn is_column_attr(attr: &str, column: &str) -> bool {
    if is_escaped(column) {
        attr.strip_prefix(ESCAPED_COLUMN_PREFIX) == Some(column)
    } else {
        attr == column
    }
}

/// The value of [`SHAPE_ATTR`] for `item`: 16 hex digits of FNV-1a (64 bits) over the names of
/// its attributes other than [`SHAPE_ATTR`], in order, each followed by a zero byte. Two items
/// have the same shape exactly when (but for a 2^-64 chance) they have the same attribute
/// names. Stable across versions: it is stored in the table and compared by later writes.
pub fn shape_of(item: &Item) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for name in item.keys().filter(|name| *name != SHAPE_ATTR) {
        for &byte in name.as_bytes().iter().chain(&[0u8]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    format!("{hash:016x}")
}

fn build_write(
    cand: Candidate<'_>,
    covers: Vec<usize>,
    target: &str,
    pk: String,
    opts: &PlanOptions,
) -> Result<PlannedWrite, PlanError> {
    let event = cand.event;
    let tombstone = event.operation == Operation::Delete;
    let mut item = Item::new();
    if tombstone {
        for k in &event.key {
            item.insert(column_attr(&k.name), AttrValue::from_json(&k.value));
        }
        let expires = opts.now_epoch_secs.saturating_add(opts.tombstone_ttl_secs);
        item.insert(TTL_ATTR.into(), AttrValue::N(expires.to_string()));
    } else if let Some(image) = event.row_image() {
        // A column named twice keeps its last value, as the row's JSON map did.
        for (name, cell) in image.iter() {
            item.insert(column_attr(name), AttrValue::from_cell(cell));
        }
    }
    item.insert(PK_ATTR.into(), AttrValue::S(pk));
    let sequence = cand.sequence.into_owned();
    item.insert(SEQ_ATTR.into(), AttrValue::S(sequence.clone()));
    item.insert(
        OP_ATTR.into(),
        AttrValue::S(event.operation.as_str().into()),
    );
    item.insert(TABLE_ATTR.into(), AttrValue::S(event.table.qualified()));
    if let Some(ts) = &event.source_timestamp {
        item.insert(TS_ATTR.into(), AttrValue::S(ts.clone()));
    }
    item.insert(DELETED_ATTR.into(), AttrValue::Bool(tombstone));
    item.insert(
        KEY_ATTR.into(),
        AttrValue::L(
            event
                .key
                .iter()
                .map(|k| AttrValue::S(k.name.to_string()))
                .collect(),
        ),
    );
    if let Some(context) = event.trace.as_ref().and_then(|t| t.context) {
        item.insert(TRACE_ATTR.into(), AttrValue::S(context.traceparent()));
    }
    // Its size counts while the item is fitted; its value is known once the names are final.
    item.insert(SHAPE_ATTR.into(), AttrValue::S("0".repeat(16)));
    if !tombstone {
        // Key columns and eda's own attributes stay; any other column may move into `_zcols`.
        let keep = |name: &str| {
            event.key.iter().any(|k| is_column_attr(name, &k.name))
                || [
                    PK_ATTR,
                    SEQ_ATTR,
                    OP_ATTR,
                    TABLE_ATTR,
                    TS_ATTR,
                    DELETED_ATTR,
                    TTL_ATTR,
                    KEY_ATTR,
                    TRACE_ATTR,
                    SHAPE_ATTR,
                ]
                .contains(&name)
        };
        packed::fit_item(&mut item, keep).map_err(|unfit| PlanError::RowTooLarge {
            item_bytes: unfit.item_bytes,
            packed_bytes: unfit.packed_bytes,
        })?;
    }
    let shape = shape_of(&item);
    item.insert(SHAPE_ATTR.into(), AttrValue::S(shape));
    Ok(PlannedWrite {
        table_name: target.to_owned(),
        item,
        sequence,
        tombstone,
        winner: cand.index,
        covers,
    })
}
