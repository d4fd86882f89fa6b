//! Trace context: what a Kafka message's producer says about the trace it belongs to, read
//! strictly, and the forms eda passes it on in.
//!
//! A producer that traces its work puts a W3C `traceparent` header on the message (and perhaps
//! `tracestate`), and some put a correlation id of their own. eda reads them
//! ([`MessageTrace::from_headers`]) and carries the trace on every change of the message:
//!
//! - in the published event's `metadata`: `trace_id` (the 32 hex digits, what an operator
//!   searches for) and `traceparent` (the context the event was published under, what a consumer
//!   continues the trace from) — see [`TRACE_ID_KEY`], [`TRACEPARENT_KEY`];
//! - in `PutEvents`' `TraceHeader`, in X-Ray's form ([`TraceContext::xray_header`]);
//! - in the cross-region envelope's `traceparent`, so the other region's bus has the same trace
//!   id in clear;
//! - on the DynamoDB item as the attribute `_trace` (the `traceparent`), so the
//!   `stream-processor` publishes the change under the same trace.
//!
//! A header correlation id goes into the event's `metadata` as [`CORRELATION_ID_KEY`]; the
//! event's top-level `correlation_id` keeps its meaning (the source transaction id, which groups
//! the changes of one transaction), and the event id never depends on either.
//!
//! Parsing is strict, as the W3C recommendation asks: version `00`, exactly 55 characters, a
//! 32-digit trace id and a 16-digit parent id in lower-case hex, neither all zeros, 2 hex digits
//! of flags. Anything else is malformed: the context is dropped (the change is still applied and
//! published, without it) and the caller counts it. A trace context is advisory; a bad one must
//! never cost a change.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Metadata key of the trace id (32 lower-case hex digits) in a published event.
pub const TRACE_ID_KEY: &str = "trace_id";

/// Metadata key of the W3C `traceparent` a published event was published under.
pub const TRACEPARENT_KEY: &str = "traceparent";

/// Metadata key of the correlation id a Kafka message's header carried.
pub const CORRELATION_ID_KEY: &str = "message_correlation_id";

/// Longest correlation id or `tracestate` kept from a header; a longer one is malformed. Both
/// travel in every event of the message, and the claim check keeps a fixed room for such parts
/// ([`RESERVED_BYTES`](crate::claim_check::RESERVED_BYTES)).
pub const MAX_HEADER_VALUE_BYTES: usize = 512;

/// A W3C trace context: which trace, which span is the parent, whether it is sampled.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
}

/// Why a `traceparent` (or a header beside it) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceHeaderError {
    /// Not `00-<32 hex>-<16 hex>-<2 hex>`, in lower case, 55 characters.
    #[error("traceparent {0:?} is not 00-<32 hex>-<16 hex>-<2 hex> in lower case")]
    Format(String),
    /// A version other than `00`.
    #[error("traceparent version {0:?} is not 00")]
    Version(String),
    /// The trace id is all zeros.
    #[error("traceparent trace id is all zeros")]
    ZeroTraceId,
    /// The parent id is all zeros.
    #[error("traceparent parent id is all zeros")]
    ZeroParentId,
    /// A header value that is not UTF-8 text, or too long.
    #[error("header {name} is not printable text of at most {MAX_HEADER_VALUE_BYTES} bytes")]
    BadValue {
        /// The header's name.
        name: String,
    },
}

impl TraceContext {
    /// A context from its parts; `None` when an id is all zeros (invalid in W3C and X-Ray).
    pub fn new(trace_id: [u8; 16], parent_id: [u8; 8], flags: u8) -> Option<Self> {
        (trace_id != [0; 16] && parent_id != [0; 8]).then_some(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// Reads a `traceparent` header value, strictly (see the module's documentation).
    pub fn parse(value: &str) -> Result<Self, TraceHeaderError> {
        let bad = || TraceHeaderError::Format(value.chars().take(80).collect());
        let b = value.as_bytes();
        if b.len() >= 2 && &b[..2] != b"00" && is_lower_hex(&b[..2]) {
            return Err(TraceHeaderError::Version(value[..2].to_owned()));
        }
        if b.len() != 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return Err(bad());
        }
        let (version, trace, parent, flags) = (&b[..2], &b[3..35], &b[36..52], &b[53..55]);
        if version != b"00" || ![trace, parent, flags].iter().all(|p| is_lower_hex(p)) {
            return Err(bad());
        }
        let mut trace_id = [0u8; 16];
        let mut parent_id = [0u8; 8];
        let mut flag = [0u8; 1];
        // Checked above: lower-case hex of the right lengths, so decoding cannot fail.
        hex::decode_to_slice(trace, &mut trace_id).map_err(|_| bad())?;
        hex::decode_to_slice(parent, &mut parent_id).map_err(|_| bad())?;
        hex::decode_to_slice(flags, &mut flag).map_err(|_| bad())?;
        if trace_id == [0; 16] {
            return Err(TraceHeaderError::ZeroTraceId);
        }
        if parent_id == [0; 8] {
            return Err(TraceHeaderError::ZeroParentId);
        }
        Ok(Self {
            trace_id,
            parent_id,
            flags: flag[0],
        })
    }

    /// The trace id's 16 bytes.
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The parent span id's 8 bytes.
    pub fn parent_id(&self) -> [u8; 8] {
        self.parent_id
    }

    /// The trace flags (bit 0: sampled).
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the producer sampled the trace (flag bit 0).
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The trace id as 32 lower-case hex digits: what the event's `metadata.trace_id` holds.
    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }

    /// The same trace, with `parent_id` as the parent: the context of a child span.
    pub fn with_parent(self, parent_id: [u8; 8]) -> Option<Self> {
        Self::new(self.trace_id, parent_id, self.flags)
    }

    /// The `traceparent` header value: `00-<trace id>-<parent id>-<flags>`.
    pub fn traceparent(&self) -> String {
        self.to_string()
    }

    /// The X-Ray trace header of the same trace, as `PutEvents`' `TraceHeader` takes it:
    /// `Root=1-<first 8 hex digits>-<other 24>;Parent=<16 hex digits>;Sampled=<0|1>`. X-Ray's
    /// root is the W3C trace id with a version and a dash: its first 8 digits are X-Ray's epoch
    /// seconds, which a W3C id made by X-Ray's own SDKs (or ADOT) carries, so the mapping goes
    /// both ways without loss.
    pub fn xray_header(&self) -> String {
        let trace = self.trace_id_hex();
        format!(
            "Root=1-{}-{};Parent={};Sampled={}",
            &trace[..8],
            &trace[8..],
            hex::encode(self.parent_id),
            u8::from(self.sampled())
        )
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            hex::encode(self.trace_id),
            hex::encode(self.parent_id),
            self.flags
        )
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceContext({self})")
    }
}

impl Serialize for TraceContext {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TraceContext {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn is_lower_hex(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// The header names a message's trace is read from (`kafka.traceparent_header`, ...).
#[derive(Debug, Clone, Copy)]
pub struct TraceHeaderNames<'a> {
    /// The W3C `traceparent` header; empty: not read.
    pub traceparent: &'a str,
    /// The W3C `tracestate` header; empty: not read.
    pub tracestate: &'a str,
    /// The correlation id header; empty: not read.
    pub correlation_id: &'a str,
}

/// What a Kafka message's headers said about its trace; shared by the changes of the message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageTrace {
    /// The producer's trace context, when its `traceparent` was well formed; replaced by the
    /// context eda published the change under once the change is applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<TraceContext>,
    /// The producer's `tracestate`, kept only beside a valid `traceparent` (W3C: without one it
    /// means nothing), for the exported span's parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
    /// The correlation id header's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

/// What [`MessageTrace::from_headers`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderTrace {
    /// The trace, when a header gave anything usable.
    pub trace: Option<MessageTrace>,
    /// The headers that were present but refused, for the caller to count (and log).
    pub malformed: Vec<TraceHeaderError>,
}

impl MessageTrace {
    /// Reads the trace headers among a message's `(name, value)` headers. A malformed header is
    /// left out and reported in [`HeaderTrace::malformed`]; what is well formed is kept. When a
    /// header appears twice, the last one counts (Kafka keeps headers in order; a later one was
    /// added later).
    pub fn from_headers<'h>(
        names: TraceHeaderNames<'_>,
        headers: impl IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
    ) -> HeaderTrace {
        let (mut parent, mut state, mut correlation) = (None, None, None);
        for (name, value) in headers {
            if name.is_empty() {
                continue;
            }
            if name == names.traceparent {
                parent = Some(value);
            } else if name == names.tracestate {
                state = Some(value);
            } else if name == names.correlation_id {
                correlation = Some(value);
            }
        }
        let mut found = HeaderTrace::default();
        let mut trace = MessageTrace::default();
        if let Some(value) = parent {
            match value.and_then(|v| std::str::from_utf8(v).ok()) {
                Some(text) => match TraceContext::parse(text.trim()) {
                    Ok(context) => trace.context = Some(context),
                    Err(err) => found.malformed.push(err),
                },
                None => found.malformed.push(TraceHeaderError::BadValue {
                    name: names.traceparent.to_owned(),
                }),
            }
        }
        if let (Some(value), Some(_)) = (state, trace.context) {
            match text_value(value) {
                // An empty tracestate is the same as none.
                Some(text) if text.is_empty() => {}
                Some(text) => trace.tracestate = Some(text),
                None => found.malformed.push(TraceHeaderError::BadValue {
                    name: names.tracestate.to_owned(),
                }),
            }
        }
        if let Some(value) = correlation {
            match text_value(value) {
                Some(text) if text.is_empty() => {}
                Some(text) => trace.correlation_id = Some(text),
                None => found.malformed.push(TraceHeaderError::BadValue {
                    name: names.correlation_id.to_owned(),
                }),
            }
        }
        if trace != MessageTrace::default() {
            found.trace = Some(trace);
        }
        found
    }
}

/// A header value as text: UTF-8, no control characters, at most [`MAX_HEADER_VALUE_BYTES`],
/// trimmed.
fn text_value(value: Option<&[u8]>) -> Option<String> {
    let text = std::str::from_utf8(value?).ok()?.trim();
    (text.len() <= MAX_HEADER_VALUE_BYTES && !text.chars().any(char::is_control))
        .then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn names() -> TraceHeaderNames<'static> {
        TraceHeaderNames {
            traceparent: "traceparent",
            tracestate: "tracestate",
            correlation_id: "correlation-id",
        }
    }

    #[test]
    fn a_well_formed_traceparent_reads_back_as_it_was_written() {
        let context = TraceContext::parse(SAMPLE).expect("the W3C sample");
        assert_eq!(context.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex::encode(context.parent_id()), "00f067aa0ba902b7");
        assert!(context.sampled());
        assert_eq!(context.traceparent(), SAMPLE);
        let unsampled = TraceContext::parse(&SAMPLE.replace("-01", "-00")).unwrap();
        assert!(!unsampled.sampled());
        assert_eq!(
            serde_json::to_string(&context).unwrap(),
            format!("\"{SAMPLE}\"")
        );
    }

    #[test]
    fn a_malformed_traceparent_is_refused_with_its_reason() {
        let cases = [
            // Another version, valid or not.
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "version",
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "version",
            ),
            // Version 00 with more fields.
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xx",
                "format",
            ),
            // Upper case, short ids, bad separators, non-hex, empty.
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                "format",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-011",
                "format",
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
                "format",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
                "format",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
                "format",
            ),
            ("", "format"),
            ("not a trace", "format"),
            // All-zero ids.
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "zero trace",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                "zero parent",
            ),
        ];
        for (value, why) in cases {
            let err = TraceContext::parse(value).expect_err(value);
            let expected = match why {
                "version" => matches!(err, TraceHeaderError::Version(_)),
                "format" => matches!(err, TraceHeaderError::Format(_)),
                "zero trace" => err == TraceHeaderError::ZeroTraceId,
                _ => err == TraceHeaderError::ZeroParentId,
            };
            assert!(expected, "{value:?}: {err:?}, expected {why}");
        }
    }

    #[test]
    fn the_xray_header_splits_the_trace_id_after_its_epoch_digits() {
        // The X-Ray documentation's example root, as a W3C id.
        let context =
            TraceContext::parse("00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01").unwrap();
        assert_eq!(
            context.xray_header(),
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
        );
        let unsampled = TraceContext::new(context.trace_id(), context.parent_id(), 0).unwrap();
        assert!(unsampled.xray_header().ends_with(";Sampled=0"));
    }

    #[test]
    fn headers_give_the_context_the_state_and_the_correlation_id() {
        let headers: Vec<(&str, Option<&[u8]>)> = vec![
            ("schema", Some(b"SALES")),
            ("traceparent", Some(SAMPLE.as_bytes())),
            ("tracestate", Some(b"congo=t61rcWkgMzE")),
            ("correlation-id", Some(b" order-42 ")),
        ];
        let found = MessageTrace::from_headers(names(), headers);
        assert!(found.malformed.is_empty());
        let trace = found.trace.expect("a trace");
        assert_eq!(trace.context, Some(TraceContext::parse(SAMPLE).unwrap()));
        assert_eq!(trace.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
        assert_eq!(trace.correlation_id.as_deref(), Some("order-42"));
    }

    #[test]
    fn a_malformed_header_is_reported_and_the_rest_kept() {
        let long = "x".repeat(MAX_HEADER_VALUE_BYTES + 1);
        let headers: Vec<(&str, Option<&[u8]>)> = vec![
            ("traceparent", Some(b"00-zz")),
            // Without a valid traceparent, tracestate is not read at all.
            ("tracestate", Some(b"congo=t61rcWkgMzE")),
            ("correlation-id", Some(b"order-42")),
        ];
        let found = MessageTrace::from_headers(names(), headers);
        assert_eq!(found.malformed.len(), 1);
        assert_eq!(
            found.trace,
            Some(MessageTrace {
                correlation_id: Some("order-42".into()),
                ..MessageTrace::default()
            })
        );
        let headers: Vec<(&str, Option<&[u8]>)> = vec![
            ("traceparent", None),
            ("correlation-id", Some(long.as_bytes())),
        ];
        let found = MessageTrace::from_headers(names(), headers);
        assert_eq!(found.malformed.len(), 2);
        assert_eq!(found.trace, None);
    }

    #[test]
    fn no_header_no_trace_and_an_empty_name_reads_nothing() {
        let headers: Vec<(&str, Option<&[u8]>)> = vec![("table", Some(b"T"))];
        assert_eq!(
            MessageTrace::from_headers(names(), headers),
            HeaderTrace::default()
        );
        let off = TraceHeaderNames {
            traceparent: "",
            tracestate: "",
            correlation_id: "",
        };
        let headers: Vec<(&str, Option<&[u8]>)> = vec![("", Some(SAMPLE.as_bytes()))];
        assert_eq!(
            MessageTrace::from_headers(off, headers),
            HeaderTrace::default()
        );
    }
}
