//! One applied CDC change as a business event: the [`BaseEvent`] the transformer validates and
//! the EventBridge publisher sends, so the daemon and the Lambda shims describe a change the same
//! way.
//!
//! The event id is derived from the change itself (table, key, sequence), so a change that is
//! replayed after a crash is published under the same id and consumers can de-duplicate it.

use super::apply_plan::write_pk;
use super::cdc::{packed_sequence, CdcEvent, Cell, KeyColumn, RowImage, PACKED_SEQUENCE_LEN};
use super::eventbridge::{Detail, EventBridgeEntry};
use super::json_string::Quoting;
use super::trace::{TraceContext, CORRELATION_ID_KEY, TRACEPARENT_KEY, TRACE_ID_KEY};
use super::transform::{BaseEvent, ChangePayload, Payload};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The id of the event published for `event`: a UUID (version 8, "custom") made of the SHA-256
/// of its change sequence and its key (the DynamoDB partition key: table and key values). The
/// same change always gets the same id.
///
/// The hash input is the sequence first, in a form whose length is known from its first byte,
/// then the key. Qlik's 35-digit sequence is packed two digits to a byte ([`packed_sequence`]),
/// so that with a key of up to 36 bytes the input fits one SHA-256 block (55 bytes); spelled out,
/// the sequence alone would have taken a second block, which doubled the hashing time.
pub fn event_id(event: &CdcEvent) -> uuid::Uuid {
    thread_local! {
        // The rendered key, reused: one allocation per thread instead of one per event.
        static PK: RefCell<String> = const { RefCell::new(String::new()) };
    }
    let digest = PK.with_borrow_mut(|pk| {
        pk.clear();
        write_pk(pk, &event.table, event.key.iter().map(|k| &k.value));
        let digest = hash_change(&event.change_sequence, pk.as_bytes());
        if pk.capacity() > 4096 {
            // One huge key should not pin its buffer for the thread's life.
            *pk = String::new();
        }
        digest
    });
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// SHA-256 of the sequence then the key. A 35-digit sequence is the byte 1 and its
/// [`packed_sequence`]; any other (a REFRESH row's empty one) is the byte 0, its length in eight
/// bytes and its text. The two forms cannot be confused, and neither runs into the key.
fn hash_change(seq: &str, pk: &[u8]) -> [u8; 32] {
    const PREFIX: usize = 1 + PACKED_SEQUENCE_LEN;
    // What one block holds: 64 bytes less the padding's 0x80 and 8-byte length.
    const ONE_BLOCK: usize = 55;
    match packed_sequence(seq) {
        Some(digits) => {
            // One contiguous input when it fits one block: the incremental API's buffering
            // cost more than the copy.
            let mut input = [0u8; ONE_BLOCK];
            input[0] = 1;
            input[1..PREFIX].copy_from_slice(&digits);
            match input.get_mut(PREFIX..PREFIX + pk.len()) {
                Some(key) => {
                    key.copy_from_slice(pk);
                    Sha256::digest(&input[..PREFIX + pk.len()]).into()
                }
                None => Sha256::new()
                    .chain_update(&input[..PREFIX])
                    .chain_update(pk)
                    .finalize()
                    .into(),
            }
        }
        None => Sha256::new()
            .chain_update([0u8])
            .chain_update((seq.len() as u64).to_be_bytes())
            .chain_update(seq)
            .chain_update(pk)
            .finalize()
            .into(),
    }
}

/// The event type (and EventBridge detail-type) of a change: `SCHEMA.TABLE.OPERATION`, so rules
/// can match one table, or one kind of change to it.
pub fn event_type(event: &CdcEvent) -> String {
    let (schema, table, op) = (
        &event.table.schema,
        &event.table.table,
        event.operation.as_str(),
    );
    let mut s = String::with_capacity(schema.len() + table.len() + op.len() + 2);
    s.push_str(schema);
    s.push('.');
    s.push_str(table);
    s.push('.');
    s.push_str(op);
    s
}

/// Turns a decoded change into the business event for it, moving the row images rather than
/// copying them (this is on the hot path).
///
/// A traced change (its [`CdcEvent::trace`]) gets `trace_id` and `traceparent` in its metadata,
/// and the correlation id of its Kafka message's header, if any, as `message_correlation_id`;
/// the top-level `correlation_id` stays the source transaction id.
///
/// `source_region` is shared by every event of a region: pass a clone of one `Arc<str>` (a
/// `&str` works too, at the cost of an allocation).
pub fn into_base_event(event: CdcEvent, source_region: impl Into<Arc<str>>) -> BaseEvent {
    let event_id = event_id(&event)
        .hyphenated()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .to_owned();
    let event_type = event_type(&event);
    // `SCHEMA.TABLE` is how the event type starts: copied, not built again.
    let table = event_type
        .get(..event.table.schema.len() + 1 + event.table.table.len())
        .map_or_else(|| event.table.qualified(), str::to_owned);
    let mut metadata = BTreeMap::new();
    metadata.insert("change_sequence".into(), event.change_sequence.clone());
    if let Some(position) = event.stream_position {
        metadata.insert("stream_position".into(), position);
    }
    if let Some(kafka) = &event.kafka {
        metadata.insert(
            "kafka".into(),
            format!("{}/{}/{}", kafka.topic, kafka.partition, kafka.offset),
        );
    }
    if let Some(trace) = &event.trace {
        if let Some(context) = trace.context {
            metadata.insert(TRACE_ID_KEY.into(), context.trace_id_hex());
            metadata.insert(TRACEPARENT_KEY.into(), context.traceparent());
        }
        if let Some(correlation) = &trace.correlation_id {
            metadata.insert(CORRELATION_ID_KEY.into(), correlation.clone());
        }
    }
    BaseEvent {
        event_id,
        event_type,
        source_region: source_region.into(),
        timestamp: event.source_timestamp.unwrap_or_default(),
        correlation_id: event.transaction_id,
        payload: ChangePayload {
            after: event.after,
            before: event.before,
            change_sequence: event.change_sequence,
            claim_check: None,
            key: event.key,
            omitted: Vec::new(),
            operation: event.operation.as_str(),
            table,
        }
        .into(),
        metadata,
    }
}

/// The EventBridge entry for a change event: `Source` is the configured source (`eda.cdc`),
/// `DetailType` the event type, `Detail` the whole [`BaseEvent`] as JSON, `TraceHeader` the X-Ray
/// form of its trace when it has one. The daemon's publisher
/// and the Lambda stream processor both build entries here, so their output is the same.
pub fn change_entry(event: &BaseEvent, source: &str, bus: &str) -> EventBridgeEntry {
    EventBridgeEntry {
        source: source.to_string(),
        detail_type: event.event_type.clone(),
        detail: detail(event),
        resources: Vec::new(),
        time: None,
        event_bus_name: Some(bus.to_string()),
        trace_header: trace_context(event).map(|c| c.xray_header()),
    }
}

/// An event's `Detail`: `serde_json::to_string(event)`, byte for byte (the tests hold the two
/// together), and in the same pass that text as the JSON string the `PutEvents` body carries
/// ([`Quoting`]), so the request copies it instead of escaping it again.
///
/// Written by hand: a change's strings (its ids, key, row columns and metadata) go through
/// [`crate::json_string`]'s escaper, which passes runs with nothing to escape eight bytes at a
/// time where serde_json's looks at each byte, and no serializer state sits between the fields;
/// what is rare on this path (an event from EventBridge, a claim check, a nested column) is
/// handed to serde_json.
pub fn detail(event: &BaseEvent) -> Detail {
    // Every piece is either `json_string`'s or serde_json's output, both UTF-8.
    Detail::written(|out| write_base_event(out, event))
        .unwrap_or_else(|| Detail::new(&serde_json::to_string(event).unwrap_or_default()))
}

/// `serde_json::to_writer(out, value)`: the parts of an event written the usual way. Writing a
/// JSON value or a claim check into a `Vec` cannot fail.
fn serde_into<T: serde::Serialize + ?Sized>(out: &mut Quoting, value: &T) {
    out.json(|text| {
        let _ = serde_json::to_writer(text, value);
    });
}

/// The fields of [`BaseEvent`] in its declaration order, as its `Serialize` derive writes them.
fn write_base_event(out: &mut Quoting, event: &BaseEvent) {
    out.string_member(b'{', "event_id", &event.event_id);
    out.string_member(b',', "event_type", &event.event_type);
    out.string_member(b',', "source_region", &event.source_region);
    out.string_member(b',', "timestamp", &event.timestamp);
    if let Some(id) = &event.correlation_id {
        out.string_member(b',', "correlation_id", id);
    }
    out.member(b',', "payload");
    match &event.payload {
        Payload::Change(change) => write_change(out, change),
        json @ Payload::Json(_) => serde_into(out, json),
    }
    if !event.metadata.is_empty() {
        out.member(b',', "metadata");
        let mut lead = b'{';
        for (name, value) in &event.metadata {
            out.string_member(lead, name, value);
            lead = b',';
        }
        out.plain(b"}");
    }
    out.plain(b"}");
}

/// [`ChangePayload`] as its `Serialize` derive writes it.
fn write_change(out: &mut Quoting, change: &ChangePayload) {
    write_rows(out, change.after.as_ref(), change.before.as_ref());
    out.string_member(b',', "change_sequence", &change.change_sequence);
    if let Some(claim) = &change.claim_check {
        out.member(b',', "claim_check");
        serde_into(out, claim);
    }
    out.member(b',', "key");
    write_key(out, &change.key);
    if !change.omitted.is_empty() {
        out.member(b',', "omitted");
        serde_into(out, &change.omitted);
    }
    out.string_member(b',', "operation", change.operation);
    out.string_member(b',', "table", &change.table);
    out.plain(b"}");
}

/// The key columns as `ChangePayload`'s `key_object` writes them: sorted by name (stable), a
/// repeated name once with its last value.
fn write_key(out: &mut Quoting, columns: &[KeyColumn]) {
    let mut order: Vec<&KeyColumn> = columns.iter().collect();
    order.sort_by(|a, b| a.name.cmp(&b.name));
    let mut lead = b'{';
    for (i, column) in order.iter().enumerate() {
        if order
            .get(i + 1)
            .is_some_and(|next| next.name == column.name)
        {
            continue;
        }
        out.member(lead, &column.name);
        match &column.value {
            Value::String(text) => out.string(text),
            other => serde_into(out, other),
        }
        lead = b',';
    }
    if lead == b'{' {
        out.plain(b"{");
    }
    out.plain(b"}");
}

/// One column of a row, with what it is sorted by: the first eight bytes of its name read as a
/// big-endian number (zero-padded), which orders two names as their bytes do whenever it
/// differs, so most comparisons are one integer compare instead of a `memcmp`.
type Sortable<'r> = (u64, &'r str, Cell<'r>);

/// The columns of `row`, in source order, each with its sort prefix.
fn sortable(row: &RowImage) -> Vec<Sortable<'_>> {
    row.iter()
        .map(|(name, cell)| {
            let mut prefix = [0u8; 8];
            let head = &name.as_bytes()[..name.len().min(8)];
            prefix[..head.len()].copy_from_slice(head);
            (u64::from_be_bytes(prefix), name, cell)
        })
        .collect()
}

/// The order a row's `Serialize` writes its columns in: positions into [`sortable`]'s vector,
/// sorted by name, equal names by position (so the last of a repeated name is last).
fn column_order(columns: &[Sortable<'_>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..columns.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        let (x, y) = (&columns[a], &columns[b]);
        x.0.cmp(&y.0).then_with(|| x.1.cmp(y.1)).then(a.cmp(&b))
    });
    order
}

/// The change's two row images, each as its `Serialize` writes it. A before image with the same
/// columns in the same order as the after image (an UPDATE of one table, the usual case) is
/// written in the order sorted for the after image, without sorting it again.
fn write_rows(out: &mut Quoting, after: Option<&RowImage>, before: Option<&RowImage>) {
    let after = after.map(sortable);
    let before = before.map(sortable);
    let after_order = after.as_deref().map(column_order);
    out.member(b'{', "after");
    write_row(out, after.as_deref(), after_order.as_deref());
    out.member(b',', "before");
    let before_order = match (&before, &after, after_order) {
        (Some(b), Some(a), Some(order))
            if b.len() == a.len() && b.iter().zip(a).all(|(x, y)| x.1 == y.1) =>
        {
            Some(order)
        }
        (Some(b), _, _) => Some(column_order(b)),
        _ => None,
    };
    write_row(out, before.as_deref(), before_order.as_deref());
}

/// A row image as its `Serialize` writes it (columns sorted by name, a repeated name once with
/// its last value; numbers through `serde_json::Number`), or `null`.
fn write_row(out: &mut Quoting, columns: Option<&[Sortable<'_>]>, order: Option<&[usize]>) {
    let (Some(columns), Some(order)) = (columns, order) else {
        out.plain(b"null");
        return;
    };
    let mut lead = b'{';
    for (k, &i) in order.iter().enumerate() {
        let (_, name, cell) = columns[i];
        if order
            .get(k + 1)
            .is_some_and(|&next| columns[next].1 == name)
        {
            continue;
        }
        out.member(lead, name);
        match cell {
            Cell::Str(text) => out.string(text),
            Cell::Number(text) => match text.parse::<serde_json::Number>() {
                // A number's JSON has nothing to escape in a string.
                Ok(number) => out.plain_with(|text| {
                    let _ = serde_json::to_writer(text, &number);
                }),
                Err(_) => out.string(text),
            },
            Cell::Bool(true) => out.plain(b"true"),
            Cell::Bool(false) => out.plain(b"false"),
            Cell::Null => out.plain(b"null"),
            Cell::Nested(value) => serde_into(out, value),
        }
        lead = b',';
    }
    if lead == b'{' {
        out.plain(b"{");
    }
    out.plain(b"}");
}

/// The trace an event was published under, from its `metadata.traceparent` (see
/// [`crate::trace`]); `None` when it has none, or one that does not parse.
pub fn trace_context(event: &BaseEvent) -> Option<TraceContext> {
    TraceContext::parse(event.metadata.get(TRACEPARENT_KEY)?).ok()
}

/// The bytes of an EventBridge `detail` as eda's publishers wrote them, from the parsed JSON a
/// Lambda target receives (which keeps no key order). A change event, or any other
/// [`BaseEvent`] that reads back without loss, is written as [`change_entry`] writes it, field
/// order included, so an event routed from its EventBridge copy (the `event-router`) crosses
/// with the same bytes, and the same envelope content hash, as the copy its producer routed.
/// Any other detail is written as compact JSON.
pub fn published_detail(detail: &Value) -> Vec<u8> {
    use serde::Deserialize as _;
    if let Ok(event) = BaseEvent::deserialize(detail) {
        if serde_json::to_value(&event).ok().as_ref() == Some(detail) {
            if let Ok(bytes) = serde_json::to_vec(&event) {
                return bytes;
            }
        }
    }
    // A `Value` has string keys only: writing it cannot fail.
    serde_json::to_vec(detail).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdc::{KeyColumn, Operation, TableRef};
    use serde_json::{json, Map};

    fn change(seq: &str) -> CdcEvent {
        let mut after = Map::new();
        after.insert("ID".into(), json!("7"));
        after.insert("EMAIL".into(), json!("A@B.COM"));
        CdcEvent {
            table: TableRef::new("SALES", "CUSTOMERS"),
            operation: Operation::Update,
            key: vec![KeyColumn {
                name: "ID".into(),
                value: json!("7"),
            }],
            after: Some(after.into()),
            before: None,
            change_sequence: seq.into(),
            source_timestamp: Some("2024-05-01T12:00:00.000".into()),
            transaction_id: Some("tx-1".into()),
            stream_position: None,
            kafka: None,
            trace: None,
        }
    }

    #[test]
    fn the_same_change_always_gets_the_same_id_and_another_change_another() {
        let seq = "20240501120000000000000000000000001";
        assert_eq!(event_id(&change(seq)), event_id(&change(seq)));
        assert_ne!(
            event_id(&change(seq)),
            event_id(&change("20240501120000000000000000000000002"))
        );
    }

    #[test]
    fn the_id_is_the_sha_256_of_sequence_and_key_and_does_not_carry_over_between_events() {
        // Pinned: consumers de-duplicate on these ids, so the derivation must not drift. The
        // values are uuid v8 of SHA-256(0x01, the 35 digits packed two to a byte, the key
        // "SALES.CUSTOMERS#<key>"), computed outside eda (python hashlib). The first key holds
        // a `|` (escaped) and is the longer, so a key buffer left uncleared would change the
        // second id.
        let seq = "20240501120000000000000000000000001";
        let mut other = change(seq);
        other.key[0].value = json!("8|9");
        assert_eq!(
            event_id(&other).to_string(),
            "6dd02324-8a79-80d0-8f55-fa6f4daec3e8"
        );
        assert_eq!(
            event_id(&change(seq)).to_string(),
            "64e6c75b-cfdd-8da9-8d87-f6683752a7e8"
        );
        // A key too long for one block goes through the incremental path: the same hash.
        let mut long = change(seq);
        long.key[0].value = json!("x".repeat(40));
        assert_eq!(
            event_id(&long).to_string(),
            "6f4f19dc-c20c-8804-a9ed-2de32891961e"
        );
        // A sequence that is not 35 digits (a REFRESH row's empty one): 0x00, its length in
        // eight bytes, its text, then the key.
        assert_eq!(
            event_id(&change("")).to_string(),
            "e2a81aad-4fde-8410-a13c-289d549e7b60"
        );
    }

    #[test]
    fn the_entry_carries_the_event_as_detail() {
        let base = into_base_event(change("20240501120000000000000000000000001"), "us-west-2");
        let entry = change_entry(&base, "eda.cdc", "eda-events");
        assert_eq!(entry.detail_type, "SALES.CUSTOMERS.UPDATE");
        assert_eq!(entry.event_bus_name.as_deref(), Some("eda-events"));
        let detail: serde_json::Value = serde_json::from_str(&entry.detail).expect("JSON detail");
        assert_eq!(detail["event_id"], base.event_id.as_str());
        assert_eq!(detail["payload"]["after"]["EMAIL"], "A@B.COM");
    }

    #[test]
    fn a_change_event_read_back_from_its_detail_is_written_as_it_was_published() {
        let base = into_base_event(change("20240501120000000000000000000000001"), "us-west-2");
        let entry = change_entry(&base, "eda.cdc", "eda-events");
        let parsed: Value = serde_json::from_str(&entry.detail).expect("JSON detail");
        assert_eq!(published_detail(&parsed), entry.detail.as_bytes());
    }

    #[test]
    fn a_detail_that_is_not_a_base_event_crosses_whole() {
        let mut detail = json!({"event_id": "e-1", "event_type": "order.created"});
        assert_eq!(
            serde_json::from_slice::<Value>(&published_detail(&detail)).unwrap(),
            detail
        );
        // A base event with a field it does not know would lose it: kept as it came.
        let base = into_base_event(change("20240501120000000000000000000000001"), "us-west-2");
        detail = serde_json::to_value(&base).unwrap();
        detail["extra"] = json!(1);
        assert_eq!(
            serde_json::from_slice::<Value>(&published_detail(&detail)).unwrap(),
            detail
        );
    }

    #[test]
    fn a_traced_change_carries_its_trace_in_metadata_and_trace_header() {
        let mut traced = change("20240501120000000000000000000000001");
        let context =
            TraceContext::parse("00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01").unwrap();
        traced.trace = Some(Arc::new(crate::trace::MessageTrace {
            context: Some(context),
            tracestate: Some("vendor=1".into()),
            correlation_id: Some("order-42".into()),
        }));
        let untraced = into_base_event(change("20240501120000000000000000000000001"), "r");
        let base = into_base_event(traced, "r");
        // The id and the top-level correlation id do not depend on the trace.
        assert_eq!(base.event_id, untraced.event_id);
        assert_eq!(base.correlation_id.as_deref(), Some("tx-1"));
        assert_eq!(
            base.metadata["trace_id"],
            "5759e988bd862e3fe1be46a994272793"
        );
        assert_eq!(base.metadata["traceparent"], context.traceparent());
        assert_eq!(base.metadata["message_correlation_id"], "order-42");
        // tracestate is for the exported span only.
        assert!(!base.metadata.values().any(|v| v.contains("vendor")));
        let entry = change_entry(&base, "eda.cdc", "bus");
        assert_eq!(
            entry.trace_header.as_deref(),
            Some("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
        );
        // Not counted in the size, as EventBridge does not count it.
        let mut bare = entry.clone();
        bare.trace_header = None;
        assert_eq!(entry.size(), bare.size());
        // Without a trace: no metadata, no header.
        assert!(!untraced.metadata.contains_key("trace_id"));
        assert_eq!(change_entry(&untraced, "eda.cdc", "bus").trace_header, None);
        // The detail read back gives the same entry, header included.
        let parsed: Value = serde_json::from_str(&entry.detail).unwrap();
        assert_eq!(published_detail(&parsed), entry.detail.as_bytes());
    }

    /// `detail` against serde_json: its text is serde_json's serialization of the event, and
    /// its string form that text serialized as a JSON string (what the request body carried
    /// when it escaped the text a second time).
    fn assert_serde_bytes(event: &BaseEvent) {
        let detail = detail(event);
        let text = serde_json::to_string(event).unwrap();
        assert_eq!(detail.as_str(), text, "{event:?}");
        assert_eq!(
            std::str::from_utf8(detail.quoted()).unwrap(),
            serde_json::to_string(&text).unwrap(),
            "{event:?}"
        );
    }

    #[test]
    fn the_detail_is_serde_jsons_byte_for_byte() {
        let mut base = into_base_event(change("20240501120000000000000000000000001"), "us-west-2");
        assert_serde_bytes(&base);
        // Rows with every kind of cell: numbers serde_json rewrites ("1.50", "1E5") or keeps as
        // text ("007" does not parse), escapes, non-ASCII, a repeated column (its last value),
        // nested values, and an empty row.
        let Payload::Change(payload) = &mut base.payload else {
            panic!("a change payload");
        };
        payload.after = Some(
            RowImage::parse(
                r#"{"Z":1.50,"A":"q\"uo\\te\n\u0001\u2028é","N":null,"T":true,"F":false,
                    "BIG":18446744073709551616,"NEG":-0.0,"E":1E5,"A":"again",
                    "NEST":{"b":[1,"x\"",{"c":null}],"a":2.5},"ARR":[],"OBJ":{}}"#,
            )
            .unwrap(),
        );
        payload.before = Some(RowImage::parse("{}").unwrap());
        payload.key = vec![
            KeyColumn {
                name: "ID".into(),
                value: json!(7),
            },
            KeyColumn {
                name: "A\"".into(),
                value: json!("k\n"),
            },
            KeyColumn {
                name: "ID".into(),
                value: json!({"n": [1.5, null]}),
            },
        ];
        payload.omitted = vec!["before"];
        payload.claim_check = Some(Box::new(crate::claim_check::ClaimCheck {
            dynamodb_table: "t\"".into(),
            item_key: [("pk".to_owned(), json!("SALES.X#1"))]
                .into_iter()
                .collect(),
            region: "us-west-2".into(),
            sequence: "1".into(),
        }));
        base.metadata.insert("quote\"".into(), "line\nbreak".into());
        assert_serde_bytes(&base);
        payload_key_empty_and_rows_null(&mut base);
        assert_serde_bytes(&base);
        base.correlation_id = None;
        base.metadata.clear();
        assert_serde_bytes(&base);
        // An event that is no CDC change: its JSON payload as it is.
        base.payload = Payload::Json(json!({"b": "x\"", "a": [1, 2.5, null]}));
        assert_serde_bytes(&base);
    }

    fn payload_key_empty_and_rows_null(base: &mut BaseEvent) {
        let Payload::Change(payload) = &mut base.payload else {
            panic!("a change payload");
        };
        payload.key.clear();
        payload.after = None;
        payload.before = None;
        payload.claim_check = None;
        payload.omitted.clear();
    }

    #[test]
    fn the_benchmarks_change_detail_is_serde_jsons_byte_for_byte() {
        let message = include_bytes!("../tests/fixtures/qlik/bench_update_1kb.json");
        let table = crate::cdc::TableRef::new("SALES", "ORDERS");
        let keys =
            crate::cdc::FallbackKeys::none().with_default(vec!["ORDER_ID".into(), "REGION".into()]);
        let ctx = crate::cdc::DecodeContext {
            default_table: Some(&table),
            fallback_keys: &keys,
        };
        let Ok(crate::cdc::QlikMessage::Change(event)) =
            crate::cdc::decode_qlik_json(message, &ctx, &crate::cdc::MetadataCache::new(), None)
        else {
            panic!("the fixture decodes");
        };
        assert_serde_bytes(&into_base_event(event, "us-west-2"));
    }

    mod rows {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]

            #[test]
            fn any_row_and_key_are_written_as_serde_json_writes_them(
                columns in proptest::collection::vec(
                    ("[A-C\"\\\n é]{0,3}", prop_oneof![
                        "[ -~\n\u{1}\u{2028}é]{0,12}".prop_map(Value::from),
                        any::<i64>().prop_map(Value::from),
                        any::<f64>().prop_map(Value::from),
                        any::<bool>().prop_map(Value::from),
                        Just(Value::Null),
                        Just(json!({"n": ["\"", 1.5]})),
                    ]),
                    0..12,
                ),
                before in 0..3u8,
            ) {
                let mut base =
                    into_base_event(change("20240501120000000000000000000000001"), "us-west-2");
                let Payload::Change(payload) = &mut base.payload else {
                    panic!("a change payload");
                };
                let pairs = columns.iter().map(|(name, value)| (name.as_str(), value));
                payload.after = Some(RowImage::from_pairs(pairs));
                // The before image: the same columns in the same order with other values (its
                // order is the after image's), the columns reversed, or none.
                let values = columns.iter().map(|(_, v)| v).rev();
                payload.before = match before {
                    0 => Some(RowImage::from_pairs(columns.iter().map(|(n, _)| n.as_str()).zip(values))),
                    1 => Some(RowImage::from_pairs(columns.iter().rev().map(|(n, v)| (n.as_str(), v)))),
                    _ => None,
                };
                payload.key = columns
                    .iter()
                    .map(|(name, value)| KeyColumn {
                        name: name.as_str().into(),
                        value: value.clone(),
                    })
                    .collect();
                let detail = detail(&base);
                let text = serde_json::to_string(&base).unwrap();
                prop_assert_eq!(detail.as_str(), text.as_str());
                let quoted = serde_json::to_string(&text).unwrap();
                prop_assert_eq!(detail.quoted(), quoted.as_bytes());
            }
        }
    }

    #[test]
    fn base_event_carries_the_change() {
        let base = into_base_event(change("20240501120000000000000000000000001"), "us-west-2");
        assert_eq!(base.event_type, "SALES.CUSTOMERS.UPDATE");
        assert_eq!(base.payload.to_value()["table"], "SALES.CUSTOMERS");
        assert_eq!(base.payload.to_value()["operation"], "UPDATE");
        assert!(uuid::Uuid::try_parse(&base.event_id).is_ok());
        assert_eq!(base.correlation_id.as_deref(), Some("tx-1"));
        assert_eq!(base.payload.to_value()["key"]["ID"], "7");
        assert_eq!(base.payload.to_value()["after"]["EMAIL"], "A@B.COM");
        assert_eq!(base.timestamp, "2024-05-01T12:00:00.000");
    }
}
