//! One applied CDC change as a business event: the [`BaseEvent`] the transformer validates and
//! the EventBridge publisher sends, so the daemon and the Lambda shims describe a change the same
//! way.
//!
//! The event id is derived from the change itself (table, key, sequence), so a change that is
//! replayed after a crash is published under the same id and consumers can de-duplicate it.

use super::apply_plan::write_pk;
use super::cdc::{packed_sequence, CdcEvent, PACKED_SEQUENCE_LEN};
use super::eventbridge::EventBridgeEntry;
use super::trace::{TraceContext, CORRELATION_ID_KEY, TRACEPARENT_KEY, TRACE_ID_KEY};
use super::transform::{BaseEvent, ChangePayload};
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
        // A BaseEvent is plain strings and JSON values: serializing it cannot fail.
        detail: serde_json::to_string(event).unwrap_or_default(),
        resources: Vec::new(),
        time: None,
        event_bus_name: Some(bus.to_string()),
        trace_header: trace_context(event).map(|c| c.xray_header()),
    }
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
