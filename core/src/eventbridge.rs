//! EventBridge entry sizing and PutEvents batch planning.
//!
//! EventBridge refuses a `PutEvents` call with more than 10 entries or whose entries add up to
//! more than 256 KB, and it measures an entry its own way (the UTF-8 bytes of `Source`,
//! `DetailType`, `Detail` and each `Resources` string, plus 14 bytes when `Time` is set — not the
//! size of the JSON request). The EventBridge publisher actor and the region routers plan their
//! calls here, before any I/O, so a call is never rejected for its size and an entry that can
//! never fit is reported with both numbers instead of failing the whole batch at AWS.

use crate::json_string::Quoting;
use std::cell::RefCell;
use std::ops::Range;
use std::sync::Arc;

/// The room a thread's detail buffers start with: a ~1.4 KB change event fits without growing.
const SCRATCH_CAPACITY: usize = 2048;

/// The most a thread keeps of its detail buffers between details.
const MAX_KEPT_CAPACITY: usize = 1 << 20;

/// Most entries EventBridge accepts in one `PutEvents` call.
pub const MAX_ENTRIES_PER_CALL: usize = 10;

/// Most bytes (as EventBridge counts them, summed over the entries) in one `PutEvents` call; the
/// same number bounds a single entry.
pub const MAX_CALL_BYTES: usize = 256 * 1024;

/// What EventBridge charges for a `Time` field, whatever the timestamp.
pub const TIME_FIELD_BYTES: usize = 14;

/// One `PutEventsRequestEntry` as the core builds it; the adapter copies it into the SDK type.
///
/// Kept SDK-free so the packer, the planner and their tests share one definition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventBridgeEntry {
    /// `Source`: who emitted the event (`eda.cdc`, `eda.cross-region`, ...); rules match on it.
    pub source: String,
    /// `DetailType`: the event type rules route on.
    pub detail_type: String,
    /// `Detail`: the event body, a JSON object serialized to a string, kept with the form the
    /// `PutEvents` request carries it in.
    pub detail: Detail,
    /// `Resources`: ARNs the event concerns; counted in the size like the other strings.
    pub resources: Vec<String>,
    /// `Time` as RFC 3339, when the event carries its own time rather than the arrival time.
    pub time: Option<String>,
    /// `EventBusName`: the target bus (name or ARN); not counted in the entry size.
    pub event_bus_name: Option<String>,
    /// `TraceHeader`: the X-Ray trace header of the trace the event belongs to
    /// (`Root=1-...;Parent=...;Sampled=...`, see [`crate::trace`]); EventBridge passes it to
    /// X-Ray and to the targets. Not counted in the entry size (EventBridge counts `Time`,
    /// `Source`, `DetailType`, `Detail` and `Resources` only).
    pub trace_header: Option<String>,
}

impl EventBridgeEntry {
    /// The entry size as EventBridge computes it, to compare with [`MAX_CALL_BYTES`].
    pub fn size(&self) -> usize {
        entry_size(
            &self.source,
            &self.detail_type,
            &self.detail,
            self.resources.iter().map(String::as_str),
            self.time.is_some(),
        )
    }
}

/// An entry's `Detail`: the event as JSON text, and that text as the JSON string a `PutEvents`
/// request carries (quoted and escaped), made once when the detail is.
///
/// The request body copies the string form as it is, so a detail is never scanned a second
/// time to escape it; a change event's detail is written in both forms in one pass
/// ([`crate::change_event::change_entry`]). Everything else reads the text: its length is what
/// EventBridge counts ([`EventBridgeEntry::size`]), it is what a dead letter carries and what a
/// cross-region envelope compresses. Both forms are shared: a clone (a retried entry, the
/// routed copy of the event's text) copies no bytes.
#[derive(Clone)]
pub struct Detail {
    /// The JSON text.
    text: Arc<str>,
    /// `text` as a JSON string, quotes included: `json_string::write`'s output for it.
    quoted: Arc<[u8]>,
}

impl Detail {
    /// A detail from its JSON text, escaped here (one pass over the text).
    pub fn new(text: &str) -> Self {
        let mut quoted = Vec::with_capacity(text.len() + text.len() / 4 + 2);
        crate::json_string::write(&mut quoted, text);
        Self {
            text: Arc::from(text),
            quoted: Arc::from(quoted),
        }
    }

    /// A detail whose JSON `write` writes, in both forms at once ([`Quoting`] is what makes
    /// the one the string form of the other), into buffers the thread keeps for the next one;
    /// the detail gets copies at their size. `None` if what was written is not UTF-8 (the
    /// writers here write only `&str`s and serde_json's output, so never).
    pub(crate) fn written(write: impl FnOnce(&mut Quoting)) -> Option<Self> {
        thread_local! {
            static SCRATCH: RefCell<Quoting> = RefCell::new(Quoting::with_capacity(SCRATCH_CAPACITY));
        }
        let build = |out: &mut Quoting| {
            out.clear();
            write(out);
            let (text, quoted) = out.finish();
            let detail = std::str::from_utf8(text).ok().map(|text| Self {
                text: Arc::from(text),
                quoted: Arc::from(quoted),
            });
            if out.capacity() > MAX_KEPT_CAPACITY {
                // One huge detail should not pin its buffers for the thread's life.
                *out = Quoting::with_capacity(SCRATCH_CAPACITY);
            }
            detail
        };
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut out) => build(&mut out),
            // Only a writer that makes a detail while writing one gets here.
            Err(_) => build(&mut Quoting::default()),
        })
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The JSON text, shared rather than copied (a cross-region copy of the event holds it).
    pub fn shared_text(&self) -> Arc<str> {
        Arc::clone(&self.text)
    }

    /// The text as a JSON string, quotes included: the bytes a `PutEvents` body carries as the
    /// entry's `Detail`, exactly what escaping [`Self::as_str`] into a string would write.
    pub fn quoted(&self) -> &[u8] {
        &self.quoted
    }
}

impl std::ops::Deref for Detail {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

impl AsRef<str> for Detail {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl From<String> for Detail {
    fn from(text: String) -> Self {
        Self::new(&text)
    }
}

impl From<&str> for Detail {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl Default for Detail {
    fn default() -> Self {
        Self::new("")
    }
}

/// Two details are equal when their texts are (the string form follows from the text).
impl PartialEq for Detail {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Detail {}

impl PartialEq<str> for Detail {
    fn eq(&self, other: &str) -> bool {
        &*self.text == other
    }
}

impl PartialEq<&str> for Detail {
    fn eq(&self, other: &&str) -> bool {
        &*self.text == *other
    }
}

/// The text, as a `String`'s `Debug` shows it.
impl std::fmt::Debug for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.text, f)
    }
}

impl std::fmt::Display for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The EventBridge size of an entry given its parts, for callers that have not built an
/// [`EventBridgeEntry`] (e.g. to size a detail before serializing it into one).
pub fn entry_size<'a>(
    source: &str,
    detail_type: &str,
    detail: &str,
    resources: impl IntoIterator<Item = &'a str>,
    has_time: bool,
) -> usize {
    let time = if has_time { TIME_FIELD_BYTES } else { 0 };
    // `str::len` is the UTF-8 byte length, which is what EventBridge counts.
    time + source.len()
        + detail_type.len()
        + detail.len()
        + resources.into_iter().map(str::len).sum::<usize>()
}

/// The two limits a `PutEvents` call must respect; [`Default`] gives EventBridge's own.
///
/// Configurable so a deployment can keep headroom below AWS's figures (`routing.max_entry_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Entries per call, at most [`MAX_ENTRIES_PER_CALL`].
    pub max_entries: usize,
    /// Summed entry bytes per call; also the largest single entry.
    pub max_bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_entries: MAX_ENTRIES_PER_CALL,
            max_bytes: MAX_CALL_BYTES,
        }
    }
}

impl BatchLimits {
    /// Limits with a byte ceiling of `max_bytes` (clamped to EventBridge's), ten entries per call.
    pub fn with_max_bytes(max_bytes: usize) -> Self {
        Self {
            max_entries: MAX_ENTRIES_PER_CALL,
            max_bytes: max_bytes.min(MAX_CALL_BYTES),
        }
    }
}

/// An entry that no `PutEvents` call could carry: it alone is over the byte limit.
///
/// The caller sends it to the DLQ (or offloads its payload) and plans the rest again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("EventBridge entry {index} is {size} bytes, over the {limit}-byte entry limit")]
pub struct EntryTooLarge {
    /// Position of the entry in the planned slice.
    pub index: usize,
    /// Its size as EventBridge counts it.
    pub size: usize,
    /// The limit it broke.
    pub limit: usize,
}

/// Splits entries into `PutEvents` calls, in order, each within `limits`.
///
/// Returns index ranges into `entries`, so the caller sends slices without copying and maps a
/// partial failure back to the original entries. Greedy packing keeps the order and uses the
/// fewest calls possible for an order-preserving split.
pub fn plan_batches(
    entries: &[EventBridgeEntry],
    limits: BatchLimits,
) -> Result<Vec<Range<usize>>, EntryTooLarge> {
    plan_batches_by_size(entries.iter().map(EventBridgeEntry::size), limits)
}

/// [`plan_batches`] over precomputed sizes, for callers holding entries in another shape.
pub fn plan_batches_by_size(
    sizes: impl IntoIterator<Item = usize>,
    limits: BatchLimits,
) -> Result<Vec<Range<usize>>, EntryTooLarge> {
    let max_entries = limits.max_entries.clamp(1, MAX_ENTRIES_PER_CALL);
    let mut calls = Vec::new();
    let mut start = 0;
    let mut count = 0;
    let mut bytes = 0usize;
    for (index, size) in sizes.into_iter().enumerate() {
        if size > limits.max_bytes {
            return Err(EntryTooLarge {
                index,
                size,
                limit: limits.max_bytes,
            });
        }
        if count == max_entries || bytes + size > limits.max_bytes {
            calls.push(start..index);
            start = index;
            count = 0;
            bytes = 0;
        }
        count += 1;
        bytes += size;
    }
    if count > 0 {
        calls.push(start..start + count);
    }
    Ok(calls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(detail_len: usize) -> EventBridgeEntry {
        EventBridgeEntry {
            source: "eda".into(),
            detail_type: "t".into(),
            detail: "x".repeat(detail_len).into(),
            ..Default::default()
        }
    }

    #[test]
    fn size_counts_utf8_bytes_resources_and_time() {
        let mut e = EventBridgeEntry {
            source: "eda.cdc".into(),
            detail_type: "café".into(),
            detail: "{}".into(),
            resources: vec!["arn:a".into(), "arn:bc".into()],
            time: None,
            event_bus_name: Some("not-counted".into()),
            trace_header: None,
        };
        assert_eq!(e.size(), 7 + 5 + 2 + 5 + 6);
        e.time = Some("2024-01-01T00:00:00Z".into());
        assert_eq!(e.size(), 7 + 5 + 2 + 5 + 6 + 14);
    }

    #[test]
    fn splits_on_count_and_on_bytes() {
        let entries: Vec<_> = (0..25).map(|_| entry(10)).collect();
        let plan = plan_batches(&entries, BatchLimits::default()).unwrap();
        assert_eq!(plan, vec![0..10, 10..20, 20..25]);

        // Three entries of ~100 KB: two fit under 256 KB, the third starts a new call.
        let entries: Vec<_> = (0..3).map(|_| entry(100 * 1024)).collect();
        let plan = plan_batches(&entries, BatchLimits::default()).unwrap();
        assert_eq!(plan, vec![0..2, 2..3]);
    }

    #[test]
    fn an_entry_exactly_at_the_limit_is_sent_alone() {
        let limit = MAX_CALL_BYTES;
        let exact = entry(limit - 4);
        assert_eq!(exact.size(), limit);
        let plan = plan_batches(&[entry(1), exact, entry(1)], BatchLimits::default()).unwrap();
        assert_eq!(plan, vec![0..1, 1..2, 2..3]);
    }

    #[test]
    fn an_oversized_entry_is_named_with_its_size() {
        let err =
            plan_batches(&[entry(1), entry(MAX_CALL_BYTES)], BatchLimits::default()).unwrap_err();
        assert_eq!(
            err,
            EntryTooLarge {
                index: 1,
                size: MAX_CALL_BYTES + 4,
                limit: MAX_CALL_BYTES
            }
        );
        assert!(err.to_string().contains("262148 bytes"));
    }

    #[test]
    fn empty_input_plans_no_call() {
        assert!(plan_batches(&[], BatchLimits::default())
            .unwrap()
            .is_empty());
    }

    proptest! {
        #[test]
        fn plans_respect_limits_and_keep_order(
            sizes in proptest::collection::vec(0usize..=MAX_CALL_BYTES, 0..60),
        ) {
            let limits = BatchLimits::default();
            let plan = plan_batches_by_size(sizes.iter().copied(), limits).unwrap();
            let mut next = 0;
            for call in &plan {
                prop_assert_eq!(call.start, next, "calls are contiguous and in order");
                prop_assert!(!call.is_empty());
                prop_assert!(call.len() <= MAX_ENTRIES_PER_CALL);
                let bytes: usize = sizes[call.clone()].iter().sum();
                prop_assert!(bytes <= MAX_CALL_BYTES);
                next = call.end;
            }
            prop_assert_eq!(next, sizes.len(), "every entry is planned exactly once");
        }

        #[test]
        fn oversized_entries_are_always_rejected(
            before in proptest::collection::vec(0usize..1000, 0..20),
            over in (MAX_CALL_BYTES + 1)..(2 * MAX_CALL_BYTES),
        ) {
            let mut sizes = before.clone();
            sizes.push(over);
            let err = plan_batches_by_size(sizes, BatchLimits::default()).unwrap_err();
            prop_assert_eq!(err.index, before.len());
            prop_assert_eq!(err.size, over);
        }
    }
}
