//! Events owed to a region: the record a region router keeps, durably, for a cross-region event
//! its target region could not take when it was sent (the target's breaker refused it, or the
//! call failed), so that the event reaches that region once it is back.
//!
//! An [`OwedEvent`] is the envelope exactly as it would have gone on the target's bus, with
//! the target region, why it is owed, since when, and where the event entered eda (for a dead
//! letter, should the target ever refuse it on its merits). It travels as the body of one SQS
//! message in the *owed queue* of the target region (a queue that lives in the other region,
//! reachable while the target is down), and the same JSON is the payload of a `route` dead
//! letter, which `eda-daemon dlq redrive` delivers to [`OwedEvent::target_region`].
//!
//! Failing over to the home bus is a detour, not a destination: the owed record is what makes
//! the event arrive where it was meant to go.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::dead_letter::DeadLetterSource;
use crate::envelope::{CrossRegionEvent, EntryTarget, EnvelopeError};
use crate::eventbridge::EventBridgeEntry;

/// SQS's limit on a message (body and attributes): an owed record larger than this cannot be
/// kept in the queue.
pub const MAX_OWED_MESSAGE_BYTES: usize = 256 * 1024;

/// A cross-region event its target region has not received yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwedEvent {
    /// The region the event is owed to; only that region's router delivers it.
    pub target_region: String,
    /// Why the target did not get it when it was sent (the breaker state or the call's error).
    pub reason: String,
    /// When it became owed.
    pub owed_at: DateTime<Utc>,
    /// Where the event entered eda, for a dead letter.
    pub source: DeadLetterSource,
    /// The envelope, as it goes on the target region's bus.
    pub envelope: CrossRegionEvent,
}

/// Why an owed record cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum OwedError {
    /// The record does not fit one SQS message.
    #[error("the owed record takes {bytes} bytes, over SQS's limit of {max}")]
    TooLarge {
        /// Bytes of the serialized record.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The text is not an owed record.
    #[error("malformed owed record: {0}")]
    Malformed(String),
}

impl OwedEvent {
    /// The record as an SQS message body (JSON), refused when it exceeds `max_bytes`.
    pub fn to_body(&self, max_bytes: usize) -> Result<String, OwedError> {
        let body = serde_json::to_string(self).map_err(|e| OwedError::Malformed(e.to_string()))?;
        if body.len() > max_bytes {
            return Err(OwedError::TooLarge {
                bytes: body.len(),
                max: max_bytes,
            });
        }
        Ok(body)
    }

    /// Parses a body written by [`Self::to_body`] (an owed queue's message, or a `route` dead
    /// letter's payload).
    pub fn from_body(body: &[u8]) -> Result<Self, OwedError> {
        serde_json::from_slice(body).map_err(|e| OwedError::Malformed(e.to_string()))
    }

    /// The EventBridge entry that delivers the event to its target region's bus.
    pub fn entry(&self, target: &EntryTarget<'_>) -> Result<EventBridgeEntry, EnvelopeError> {
        self.envelope.entry(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{EnvelopeMeta, EnvelopePacker};
    use eda_config::RoutingConfig;

    fn owed(payload: &[u8]) -> (OwedEvent, EventBridgeEntry) {
        let mut packer = EnvelopePacker::new(&RoutingConfig::default(), None).expect("packer");
        let at = DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .expect("literal")
            .with_timezone(&Utc);
        let meta = EnvelopeMeta {
            event_id: "ev-1",
            source_region: "us-west-2",
            target_region: "us-east-1",
            event_type: "cdc.SALES.ORDERS",
            correlation_id: Some("tx-9"),
            traceparent: None,
            created_at: at,
        };
        let target = EntryTarget {
            source: "eda.cross-region",
            event_bus_name: Some("eda-events"),
        };
        let packed = packer
            .pack_entry(&meta, payload, &target, None)
            .expect("packs");
        let owed = OwedEvent {
            target_region: "us-east-1".into(),
            reason: "breaker forced_open".into(),
            owed_at: at,
            source: DeadLetterSource::Kafka {
                topic: "qlik.cdc".into(),
                partition: 2,
                offset: 41,
            },
            envelope: packed.envelope,
        };
        (owed, packed.entry)
    }

    #[test]
    fn a_record_read_back_delivers_the_entry_the_router_would_have_sent() {
        let (owed, sent) = owed(br#"{"event_id":"ev-1","n":1}"#);
        let body = owed.to_body(MAX_OWED_MESSAGE_BYTES).expect("fits");
        let back = OwedEvent::from_body(body.as_bytes()).expect("parses");
        assert_eq!(back, owed);
        let target = EntryTarget {
            source: "eda.cross-region",
            event_bus_name: Some("eda-events"),
        };
        assert_eq!(back.entry(&target).expect("entry"), sent);
    }

    #[test]
    fn a_record_over_the_limit_is_refused_with_its_size() {
        let (owed, _) = owed(br#"{"event_id":"ev-1"}"#);
        let err = owed.to_body(100).expect_err("too small a limit");
        assert!(matches!(err, OwedError::TooLarge { max: 100, bytes } if bytes > 100));
    }

    #[test]
    fn something_else_is_not_an_owed_record() {
        assert!(matches!(
            OwedEvent::from_body(br#"{"event_id":"x"}"#),
            Err(OwedError::Malformed(_))
        ));
    }
}
