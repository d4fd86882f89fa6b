//! [`EventPublisher`] on EventBridge `PutEvents`.

use super::error::{entry_error, sink_error};
use crate::ports::{EventPublisher, SinkError};
use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use eda_core::eventbridge::EventBridgeEntry;
use futures_util::future::BoxFuture;

/// Publishes to one bus in one region.
#[derive(Debug, Clone)]
pub struct EventBridgeClient {
    /// The region's client (its endpoint may be the local stack's).
    client: aws_sdk_eventbridge::Client,
    /// The bus entries go to when they name none.
    bus: String,
    /// The region, for labels and logs.
    region: String,
}

impl EventBridgeClient {
    /// A publisher to `bus` through `client`.
    pub fn new(
        client: aws_sdk_eventbridge::Client,
        bus: impl Into<String>,
        region: impl Into<String>,
    ) -> Self {
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
        let request: Vec<PutEventsRequestEntry> = entries
            .iter()
            .map(|entry| request_entry(entry, &self.bus))
            .collect();
        let output = self
            .client
            .put_events()
            .set_entries(Some(request))
            .send()
            .await
            .map_err(|err| sink_error("eventbridge", "PutEvents", &err))?;
        let results = output.entries();
        if results.len() != entries.len() {
            return Err(SinkError {
                service: "eventbridge",
                operation: "PutEvents",
                class: eda_core::failure::ErrorClass::Server,
                message: format!("{} results for {} entries", results.len(), entries.len()),
            });
        }
        Ok(results
            .iter()
            .map(|result| match (result.event_id(), result.error_code()) {
                (Some(id), None) => Ok(id.to_string()),
                (_, code) => Err(entry_error(
                    "eventbridge",
                    "PutEvents",
                    code,
                    result.error_message(),
                    false,
                )),
            })
            .collect())
    }
}

/// The SDK's entry for `entry`, sent to `bus` when it names none; its `TraceHeader` is the
/// entry's X-Ray header.
fn request_entry(entry: &EventBridgeEntry, bus: &str) -> PutEventsRequestEntry {
    PutEventsRequestEntry::builder()
        .source(&entry.source)
        .detail_type(&entry.detail_type)
        .detail(&entry.detail)
        .set_resources((!entry.resources.is_empty()).then(|| entry.resources.clone()))
        .set_time(entry.time.as_deref().and_then(|t| {
            DateTime::from_str(t, aws_sdk_eventbridge::primitives::DateTimeFormat::DateTime).ok()
        }))
        .event_bus_name(entry.event_bus_name.as_deref().unwrap_or(bus))
        .set_trace_header(entry.trace_header.clone())
        .build()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The local AWS stand-in drops `TraceHeader`, so the request itself is checked here.
    #[test]
    fn the_request_carries_the_entry_trace_header() {
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let entry = EventBridgeEntry {
            source: "eda.cdc".into(),
            detail_type: "SALES.CUSTOMERS.UPDATE".into(),
            detail: "{}".into(),
            trace_header: Some(header.into()),
            ..EventBridgeEntry::default()
        };
        let request = request_entry(&entry, "eda-events");
        assert_eq!(request.trace_header(), Some(header));
        assert_eq!(request.event_bus_name(), Some("eda-events"));
        let untraced = EventBridgeEntry {
            trace_header: None,
            ..entry
        };
        assert_eq!(request_entry(&untraced, "eda-events").trace_header(), None);
    }
}
