//! [`EventPublisher`] on EventBridge `PutEvents`, through the [lean client](super::lean): eda
//! writes the request (each entry's `Detail` copied in the string form it was written in
//! alongside its JSON, [`eda_core::eventbridge::Detail`], never escaped again here) and reads
//! back only the per-entry results.

use super::error::entry_error;
use super::lean::{self, json, LeanClient};
use crate::ports::{EventPublisher, SinkError};
use eda_core::eventbridge::EventBridgeEntry;
use eda_core::failure::ErrorClass;
use futures_util::future::BoxFuture;

/// The `X-Amz-Target` of `PutEvents`.
const PUT_EVENTS: &str = "AWSEvents.PutEvents";

/// Publishes to one bus in one region.
#[derive(Debug, Clone)]
pub struct EventBridgeClient {
    /// The region's lean EventBridge client (its endpoint may be the local stack's).
    client: LeanClient,
    /// The bus entries go to when they name none.
    bus: String,
    /// The region, for labels and logs.
    region: String,
}

impl EventBridgeClient {
    /// A publisher to `bus` through `client` (a region's
    /// [`lean_eventbridge`](super::RegionClients::lean_eventbridge)).
    pub fn new(client: LeanClient, bus: impl Into<String>, region: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
            region: region.into(),
        }
    }

    async fn put(
        &self,
        entries: &[EventBridgeEntry],
    ) -> Result<Vec<Result<String, SinkError>>, SinkError> {
        let body = lean::body_with(|out| put_events_body(out, entries, &self.bus));
        let answer = self
            .client
            .call(PUT_EVENTS, body)
            .await
            .map_err(|err| err.into_sink_error("eventbridge", "PutEvents"))?;
        let output: PutEventsOutput = serde_json::from_slice(&answer).map_err(|err| SinkError {
            service: "eventbridge",
            operation: "PutEvents",
            class: ErrorClass::Server,
            message: format!("unreadable answer: {err}"),
        })?;
        if output.entries.len() != entries.len() {
            return Err(SinkError {
                service: "eventbridge",
                operation: "PutEvents",
                class: ErrorClass::Server,
                message: format!(
                    "{} results for {} entries",
                    output.entries.len(),
                    entries.len()
                ),
            });
        }
        Ok(output
            .entries
            .into_iter()
            .map(|result| match (result.event_id, result.error_code) {
                (Some(id), None) => Ok(id),
                (_, code) => Err(entry_error(
                    "eventbridge",
                    "PutEvents",
                    code.as_deref(),
                    result.error_message.as_deref(),
                    false,
                )),
            })
            .collect())
    }
}

impl EventPublisher for EventBridgeClient {
    fn put_events<'a>(
        &'a self,
        entries: &'a [EventBridgeEntry],
    ) -> BoxFuture<'a, Result<Vec<Result<String, SinkError>>, SinkError>> {
        Box::pin(self.put(entries))
    }

    fn bus(&self) -> &str {
        &self.bus
    }

    fn region(&self) -> &str {
        &self.region
    }
}

/// The `PutEvents` request: every field of every entry (`TraceHeader` when the entry is traced),
/// the bus defaulting to `bus`. `Detail` is copied as the string it already is
/// ([`Detail::quoted`](eda_core::eventbridge::Detail::quoted)), the same bytes escaping its text
/// would write, without a pass over them. `Time`
/// goes as epoch seconds (the protocol's timestamp form); a `time` that is not RFC 3339 is left
/// out, as the SDK adapter did, so EventBridge stamps the arrival time.
fn put_events_body(out: &mut Vec<u8>, entries: &[EventBridgeEntry], bus: &str) {
    out.push(b'{');
    json::key(out, "Entries");
    out.push(b'[');
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        json::key(out, "Source");
        json::string(out, &entry.source);
        out.push(b',');
        json::key(out, "DetailType");
        json::string(out, &entry.detail_type);
        out.push(b',');
        json::key(out, "Detail");
        out.extend_from_slice(entry.detail.quoted());
        if !entry.resources.is_empty() {
            out.push(b',');
            json::key(out, "Resources");
            out.push(b'[');
            for (j, resource) in entry.resources.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                json::string(out, resource);
            }
            out.push(b']');
        }
        if let Some(time) = entry.time.as_deref().and_then(epoch_seconds) {
            out.push(b',');
            json::key(out, "Time");
            out.extend_from_slice(time.as_bytes());
        }
        if let Some(trace) = &entry.trace_header {
            out.push(b',');
            json::key(out, "TraceHeader");
            json::string(out, trace);
        }
        out.push(b',');
        json::key(out, "EventBusName");
        json::string(out, entry.event_bus_name.as_deref().unwrap_or(bus));
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
}

/// An RFC 3339 time as epoch seconds, with milliseconds when it has a fraction.
fn epoch_seconds(time: &str) -> Option<String> {
    let at = chrono::DateTime::parse_from_rfc3339(time).ok()?;
    let millis = at.timestamp_subsec_millis();
    Some(if millis == 0 {
        at.timestamp().to_string()
    } else {
        format!("{}.{millis:03}", at.timestamp())
    })
}

/// What eda reads of a `PutEvents` answer: one result per entry, in order.
#[derive(serde::Deserialize)]
struct PutEventsOutput {
    /// The per-entry results (`FailedEntryCount` is their count of errors, not needed).
    #[serde(rename = "Entries", default)]
    entries: Vec<ResultEntry>,
}

/// One entry's result: its event id, or its error.
#[derive(serde::Deserialize)]
struct ResultEntry {
    #[serde(rename = "EventId")]
    event_id: Option<String>,
    #[serde(rename = "ErrorCode")]
    error_code: Option<String>,
    #[serde(rename = "ErrorMessage")]
    error_message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use eda_core::cdc::{CdcEvent, KeyColumn, Operation, RowImage, TableRef};
    use eda_core::change_event::{change_entry, into_base_event};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    /// The body as it was written before details carried their string form: each `Detail`
    /// escaped from its text into the body (the code of 2f7c0da, kept to compare with).
    fn body_escaping_each_detail(entries: &[EventBridgeEntry], bus: &str) -> Vec<u8> {
        let mut out = Vec::new();
        out.push(b'{');
        json::key(&mut out, "Entries");
        out.push(b'[');
        for (i, entry) in entries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'{');
            json::key(&mut out, "Source");
            json::string(&mut out, &entry.source);
            out.push(b',');
            json::key(&mut out, "DetailType");
            json::string(&mut out, &entry.detail_type);
            out.push(b',');
            json::key(&mut out, "Detail");
            json::string(&mut out, &entry.detail);
            if !entry.resources.is_empty() {
                out.push(b',');
                json::key(&mut out, "Resources");
                out.push(b'[');
                for (j, resource) in entry.resources.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    json::string(&mut out, resource);
                }
                out.push(b']');
            }
            if let Some(time) = entry.time.as_deref().and_then(epoch_seconds) {
                out.push(b',');
                json::key(&mut out, "Time");
                out.extend_from_slice(time.as_bytes());
            }
            if let Some(trace) = &entry.trace_header {
                out.push(b',');
                json::key(&mut out, "TraceHeader");
                json::string(&mut out, trace);
            }
            out.push(b',');
            json::key(&mut out, "EventBusName");
            json::string(&mut out, entry.event_bus_name.as_deref().unwrap_or(bus));
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
        out
    }

    /// The body written now, checked byte for byte against the body escaping each detail.
    fn assert_same_body(entries: &[EventBridgeEntry]) {
        let mut now = Vec::new();
        put_events_body(&mut now, entries, "eda-events");
        let before = body_escaping_each_detail(entries, "eda-events");
        assert_eq!(
            String::from_utf8_lossy(&now),
            String::from_utf8_lossy(&before)
        );
        assert_eq!(now, before);
    }

    /// The benchmark's change (`make bench-ir`'s and `make bench-e2e`'s 1 KB Qlik update) as
    /// the entry the publisher sends.
    fn bench_entry() -> EventBridgeEntry {
        let message = include_bytes!("../../../core/tests/fixtures/qlik/bench_update_1kb.json");
        let table = TableRef::new("SALES", "ORDERS");
        let keys = eda_core::cdc::FallbackKeys::none()
            .with_default(vec!["ORDER_ID".into(), "REGION".into()]);
        let ctx = eda_core::cdc::DecodeContext {
            default_table: Some(&table),
            fallback_keys: &keys,
        };
        let Ok(eda_core::cdc::QlikMessage::Change(event)) = eda_core::cdc::decode_qlik_json(
            message,
            &ctx,
            &eda_core::cdc::MetadataCache::new(),
            None,
        ) else {
            panic!("the fixture decodes");
        };
        change_entry(
            &into_base_event(event, "us-west-2"),
            "eda.cdc",
            "eda-events",
        )
    }

    /// A change whose after image holds `columns` (and its before image them reversed).
    fn change_with(columns: &[(&str, Value)]) -> EventBridgeEntry {
        let after = RowImage::from_pairs(columns.iter().map(|(name, value)| (*name, value)));
        let before = RowImage::from_pairs(columns.iter().rev().map(|(name, value)| (*name, value)));
        let event = CdcEvent {
            table: TableRef::new("SALES", "CUSTOMERS"),
            operation: Operation::Update,
            key: vec![KeyColumn {
                name: "ID".into(),
                value: json!("7\"\\"),
            }],
            after: Some(after),
            before: Some(before),
            change_sequence: "20240501120000000000000000000000001".into(),
            source_timestamp: Some("2024-05-01T12:00:00.000".into()),
            transaction_id: Some("tx-\u{2028}".into()),
            stream_position: None,
            kafka: None,
            trace: None,
        };
        change_entry(
            &into_base_event(event, "us-west-2"),
            "eda.cdc",
            "eda-events",
        )
    }

    #[test]
    fn the_body_is_the_one_that_escaped_each_detail_byte_for_byte() {
        // The benchmark's event, alone and ten to a call.
        let bench = bench_entry();
        assert_same_body(std::slice::from_ref(&bench));
        assert_same_body(&vec![bench; 10]);
        // Row values with quotes, backslashes, every control byte, U+2028/U+2029, non-ASCII,
        // numbers serde_json rewrites, and a nested value.
        let controls: String = (0u8..0x20).map(char::from).collect();
        let tricky = change_with(&[
            ("QUOTES", json!("say \"hi\" \"\"")),
            ("BACKSLASHES", json!("C:\\path\\\\to\\\"x")),
            ("CONTROLS", json!(controls)),
            ("SEPARATORS", json!("line\u{2028}para\u{2029}é😀\u{7f}")),
            ("N", json!(1.50)),
            ("NESTED", json!({"a\"": ["\\", null, "\n"]})),
        ]);
        // Details that are no change event: written as they came.
        let plain = EventBridgeEntry {
            source: "eda.health".into(),
            detail_type: "HealthCheck\"".into(),
            detail: r#"{"note":"a \"b\"\n\\ \u2028"}"#.into(),
            resources: vec!["arn:\"x\"".into()],
            time: Some("2026-12-06T13:52:00.250Z".into()),
            event_bus_name: None,
            trace_header: Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".into()),
        };
        assert_same_body(&[tricky.clone(), plain.clone(), EventBridgeEntry::default()]);
        // The sizes EventBridge is told about are the text's.
        assert_eq!(
            tricky.size(),
            7 + "SALES.CUSTOMERS.UPDATE".len() + tricky.detail.as_str().len()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn any_change_or_detail_gives_the_body_that_escaped_each_detail(
            values in proptest::collection::vec(
                prop_oneof![
                    any::<String>().prop_map(Value::from),
                    "[\"\\\\\\x00-\\x1f\u{2028}\u{2029}a-z é]{0,16}".prop_map(Value::from),
                    any::<f64>().prop_map(Value::from),
                    any::<i64>().prop_map(Value::from),
                    Just(Value::Null),
                ],
                0..8,
            ),
            detail in any::<String>(),
        ) {
            let names = ["A", "B\"", "C\\", "D\n", "E", "F", "G", "H"];
            let columns: Vec<(&str, Value)> = names.iter().copied().zip(values).collect();
            let entries = [
                change_with(&columns),
                EventBridgeEntry { detail: detail.into(), ..EventBridgeEntry::default() },
            ];
            let mut now = Vec::new();
            put_events_body(&mut now, &entries, "eda-events");
            prop_assert_eq!(now, body_escaping_each_detail(&entries, "eda-events"));
        }
    }

    #[test]
    fn every_field_of_an_entry_is_written_and_the_detail_escaped_once() {
        // The local AWS stand-in drops `TraceHeader`, so the request itself is checked here;
        // the second entry, untraced, has none.
        let entries = [
            EventBridgeEntry {
                source: "eda.cdc".into(),
                detail_type: "customer.updated".into(),
                detail: r#"{"name":"a \"b\"\n"}"#.into(),
                resources: vec!["arn:aws:dynamodb:us-west-2:1:table/t".into()],
                time: Some("2026-12-06T13:52:00.250Z".into()),
                event_bus_name: Some("other-bus".into()),
                trace_header: Some(
                    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
                        .into(),
                ),
            },
            EventBridgeEntry {
                source: "eda.cdc".into(),
                detail_type: "t".into(),
                detail: "{}".into(),
                time: Some("not a time".into()),
                ..EventBridgeEntry::default()
            },
        ];
        let mut out = Vec::new();
        put_events_body(&mut out, &entries, "eda-events");
        let parsed: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(
            parsed,
            serde_json::json!({"Entries": [
                {
                    "Source": "eda.cdc",
                    "DetailType": "customer.updated",
                    "Detail": r#"{"name":"a \"b\"\n"}"#,
                    "Resources": ["arn:aws:dynamodb:us-west-2:1:table/t"],
                    "Time": 1_796_565_120.25,
                    "TraceHeader": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
                    "EventBusName": "other-bus",
                },
                {
                    "Source": "eda.cdc",
                    "DetailType": "t",
                    "Detail": "{}",
                    "EventBusName": "eda-events",
                },
            ]})
        );
    }
}
