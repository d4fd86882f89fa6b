//! [`EventPublisher`] on EventBridge `PutEvents`, through the [lean client](super::lean): eda
//! writes the request (each entry's `Detail` escaped once, straight into the body) and reads
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
/// the bus defaulting to `bus`. `Time`
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
        json::string(out, &entry.detail);
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
