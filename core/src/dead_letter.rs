//! The dead-letter record: what eda writes to SQS when it gives up on an event.
//!
//! A [`DeadLetterEvent`] keeps everything an operator needs to understand and replay a failure:
//! the original payload (as text when it is valid UTF-8, else base64), the error class and
//! message, the pipeline stage, where the event came from (a Kafka offset, a Lambda request, a
//! DynamoDB Streams record or an EventBridge event), how many attempts were made and when, and
//! the breaker state and region when routing was involved.
//!
//! SQS caps a message (body and attributes together) at `dlq.max_message_bytes`. When the record
//! does not fit, in this order: an error message longer than [`ERROR_MESSAGE_FLOOR`] is cut to it
//! (the SDK's error dumps run to kilobytes; the payload is what a redrive needs); then the payload
//! is stored zstd-compressed (`payload_encoding: "zstd_base64"`), whole; only a payload too large
//! even so is cut — and the record says so (`payload_truncated`, `original_size`) — never the
//! error context; and only a pathologically long context is cut after the payload is gone. The
//! redrive command parses the body back with [`DeadLetterEvent::from_sqs_body`] and replays
//! [`DeadLetterEvent::original_payload_bytes`].

use std::borrow::Cow;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::failure::{ErrorClass, Stage};

/// Where the failed event came from, so a redrive can put it back in the right place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeadLetterSource {
    /// A Kafka record.
    Kafka {
        /// Topic it was read from (shared with the change's [`KafkaCoordinates`], so the source
        /// of each change costs no copy of it).
        ///
        /// [`KafkaCoordinates`]: crate::cdc::KafkaCoordinates
        topic: Arc<str>,
        /// Partition.
        partition: i32,
        /// Offset of the record.
        offset: i64,
    },
    /// A Lambda invocation (API Gateway, schedule, EventBridge target).
    Lambda {
        /// The invocation's request id.
        request_id: String,
        /// The function name.
        function: String,
    },
    /// A DynamoDB Streams record.
    #[serde(rename = "dynamodb_stream")]
    DynamoDbStream {
        /// The record's `eventID`.
        event_id: String,
        /// The record's `SequenceNumber`.
        sequence_number: String,
    },
    /// An EventBridge event.
    #[serde(rename = "eventbridge")]
    EventBridge {
        /// The event's `id`.
        event_id: String,
    },
}

impl DeadLetterSource {
    /// The variant as a constant label (`kafka`, `lambda`, `dynamodb_stream`, `eventbridge`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kafka { .. } => "kafka",
            Self::Lambda { .. } => "lambda",
            Self::DynamoDbStream { .. } => "dynamodb_stream",
            Self::EventBridge { .. } => "eventbridge",
        }
    }
}

/// How `payload` holds the original bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadEncoding {
    /// The bytes were UTF-8 (and SQS-safe) and are stored as they are, readable in the console.
    Text,
    /// The bytes are stored as standard base64.
    Base64,
    /// The bytes are stored as one zstd frame, in standard base64: a payload too large for the
    /// message as it is.
    ZstdBase64,
}

/// What an error message is cut to, at most, before a payload is compressed or cut.
pub const ERROR_MESSAGE_FLOOR: usize = 1024;

/// zstd level of a compressed payload: letters are rare, so this favours size.
const PAYLOAD_ZSTD_LEVEL: i32 = 9;

/// Largest payload a `zstd_base64` letter may inflate to, whatever it claims.
const MAX_INFLATED_PAYLOAD: usize = 64 * 1024 * 1024;

/// A failed event with its error context, as written to the DLQ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterEvent {
    /// Unique id of this dead letter (not of the event), for de-duplication and redrive logs.
    pub id: String,
    /// The correlation id of the failed event, to find its logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The kind of failure.
    pub error_class: ErrorClass,
    /// The last error, as its `Display` said.
    pub error_message: String,
    /// Whether `error_message` was cut to fit the message size (only after the payload).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub error_message_truncated: bool,
    /// The pipeline stage that gave up; decides what a redrive replays.
    pub stage: Stage,
    /// Where the event came from.
    pub source: DeadLetterSource,
    /// How many times processing was attempted.
    pub attempts: u32,
    /// When the first attempt failed.
    pub first_failure_at: DateTime<Utc>,
    /// When the last attempt failed.
    pub last_failure_at: DateTime<Utc>,
    /// The circuit breaker state at the time, when routing was involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker_state: Option<String>,
    /// The region involved, when routing was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// How `payload` is encoded.
    pub payload_encoding: PayloadEncoding,
    /// The original payload (or its first part, when `payload_truncated`).
    pub payload: String,
    /// Whether `payload` was cut to fit the message size; a truncated payload cannot be replayed.
    #[serde(default)]
    pub payload_truncated: bool,
    /// Size in bytes of the original payload.
    pub original_size: usize,
    /// The key of the Kafka message the letter was read from, when it had one: a redrive
    /// decodes the payload with it, as the consumer did (a Debezium message may name its key
    /// columns only there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_key: Option<KafkaKey>,
    /// The table (`SCHEMA.TABLE`) the Kafka message's headers named, for a redrive to decode
    /// the payload as it was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_table: Option<String>,
}

/// A Kafka message key kept in a dead letter: as text when it is UTF-8, else base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaKey {
    /// How `data` holds the bytes.
    pub encoding: PayloadEncoding,
    /// The key.
    pub data: String,
}

impl KafkaKey {
    /// Keeps `key`, readable when it is text.
    pub fn new(key: &[u8]) -> Self {
        let (encoding, data) = encode(key);
        Self { encoding, data }
    }

    /// The key's bytes.
    pub fn bytes(&self) -> Result<Cow<'_, [u8]>, DeadLetterError> {
        match self.encoding {
            PayloadEncoding::Text => Ok(Cow::Borrowed(self.data.as_bytes())),
            PayloadEncoding::Base64 => BASE64
                .decode(&self.data)
                .map(Cow::Owned)
                .map_err(|e| DeadLetterError::Malformed(format!("kafka_key: {e}"))),
            // Keys are written as text or base64 only.
            PayloadEncoding::ZstdBase64 => Err(DeadLetterError::Malformed(
                "kafka_key: a key is never compressed".into(),
            )),
        }
    }
}

/// `bytes` as SQS-safe text when they are, else as base64.
fn encode(bytes: &[u8]) -> (PayloadEncoding, String) {
    match std::str::from_utf8(bytes) {
        Ok(text) if text.chars().all(sqs_safe) => (PayloadEncoding::Text, text.to_owned()),
        _ => (PayloadEncoding::Base64, BASE64.encode(bytes)),
    }
}

/// A dead letter ready for `SendMessage`: body and message attributes, together within the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsMessage {
    /// The JSON body.
    pub body: String,
    /// String message attributes (name, value) for filtering and redrive selection.
    pub attributes: Vec<(&'static str, String)>,
}

/// What can go wrong writing or reading a dead letter.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// Even without payload and with a shortened message the record does not fit.
    #[error("the dead letter needs at least {needed} bytes but the limit is {max}")]
    LimitTooSmall {
        /// Bytes the irreducible part of the record takes.
        needed: usize,
        /// The limit given.
        max: usize,
    },
    /// The body is not a dead letter.
    #[error("malformed dead letter: {0}")]
    Malformed(String),
    /// The payload was truncated when written, so replaying it would replay a fragment.
    #[error("the payload was truncated to fit SQS ({kept} of {original_size} bytes kept)")]
    PayloadTruncated {
        /// Bytes kept.
        kept: usize,
        /// Bytes of the original.
        original_size: usize,
    },
}

impl DeadLetterError {
    /// Never: these are properties of the record, not of the moment.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

impl DeadLetterEvent {
    /// A dead letter for a first failure at `failed_at`; attempts start at 1.
    pub fn new(
        id: impl Into<String>,
        payload: &[u8],
        error_class: ErrorClass,
        error_message: &str,
        stage: Stage,
        source: DeadLetterSource,
        failed_at: DateTime<Utc>,
    ) -> Self {
        let original_size = payload.len();
        let (payload_encoding, payload) = encode(payload);
        Self {
            id: id.into(),
            correlation_id: None,
            error_class,
            error_message: sqs_clean(error_message).into_owned(),
            error_message_truncated: false,
            stage,
            source,
            attempts: 1,
            first_failure_at: failed_at,
            last_failure_at: failed_at,
            breaker_state: None,
            region: None,
            payload_encoding,
            payload,
            payload_truncated: false,
            original_size,
            kafka_key: None,
            kafka_table: None,
        }
    }

    /// Keeps the Kafka message's key and the table its headers named, for a redrive.
    pub fn with_kafka_message(mut self, key: Option<&[u8]>, table: Option<String>) -> Self {
        self.kafka_key = key.map(KafkaKey::new);
        self.kafka_table = table;
        self
    }

    /// Whether replaying this letter could bring back a row that was deleted after it: it
    /// replays a change into the table (stage `decode`, `plan` or `apply`) and failed first
    /// `tombstone_ttl_secs` or longer before `now`, so the tombstone of a later DELETE of its
    /// key may be gone, and with it the guard that would refuse the older change.
    pub fn outlived_tombstones(&self, now: DateTime<Utc>, tombstone_ttl_secs: u64) -> bool {
        let applies = matches!(self.stage, Stage::Decode | Stage::Plan | Stage::Apply);
        let age = now
            .signed_duration_since(self.first_failure_at)
            .num_seconds();
        applies && u64::try_from(age).is_ok_and(|age| age >= tombstone_ttl_secs)
    }

    /// Sets the number of attempts made (at least 1).
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, correlation_id: impl Into<String>) -> Self {
        self.correlation_id = Some(correlation_id.into());
        self
    }

    /// Records the breaker state and region of a routing failure.
    pub fn with_breaker(mut self, state: impl Into<String>, region: impl Into<String>) -> Self {
        self.breaker_state = Some(state.into());
        self.region = Some(region.into());
        self
    }

    /// Counts another failed attempt at `failed_at` with its error.
    pub fn record_attempt(&mut self, failed_at: DateTime<Utc>, error_message: &str) {
        self.attempts = self.attempts.saturating_add(1);
        self.last_failure_at = failed_at;
        self.error_message = sqs_clean(error_message).into_owned();
    }

    /// String attributes worth filtering on: error class, stage, source kind, and the region when
    /// known.
    pub fn sqs_attributes(&self) -> Vec<(&'static str, String)> {
        let mut attrs = vec![
            ("errorClass", self.error_class.as_str().to_owned()),
            ("stage", self.stage.as_str().to_owned()),
            ("sourceKind", self.source.kind().to_owned()),
        ];
        if let Some(region) = &self.region {
            attrs.push(("region", region.clone()));
        }
        attrs
    }

    /// The message to send: body plus attributes within `max_bytes` (SQS counts both).
    pub fn to_sqs_message(&self, max_bytes: usize) -> Result<SqsMessage, DeadLetterError> {
        let attributes = self.sqs_attributes();
        // SQS counts each attribute's name, data type ("String") and value.
        let attr_bytes: usize = attributes
            .iter()
            .map(|(name, value)| name.len() + "String".len() + value.len())
            .sum();
        let body = self.to_sqs_body(max_bytes.saturating_sub(attr_bytes))?;
        Ok(SqsMessage { body, attributes })
    }

    /// The JSON body within `max_bytes`: whole when it fits; else with an error message longer
    /// than [`ERROR_MESSAGE_FLOOR`] cut to it, then with the payload compressed; else with the
    /// payload cut (and flagged), and only then the error message.
    pub fn to_sqs_body(&self, max_bytes: usize) -> Result<String, DeadLetterError> {
        let full = to_json(self)?;
        if full.len() <= max_bytes {
            return Ok(full);
        }
        let mut event = Cow::Borrowed(self);
        if json_len(&self.error_message) > ERROR_MESSAGE_FLOOR {
            let e = event.to_mut();
            e.error_message = prefix_within(
                &self.error_message,
                ERROR_MESSAGE_FLOOR,
                PayloadEncoding::Text,
            );
            e.error_message_truncated = true;
            let shorter = to_json(e)?;
            if shorter.len() <= max_bytes {
                return Ok(shorter);
            }
        }
        if let Some(compressed) = event.compressed()? {
            let json = to_json(&compressed)?;
            if json.len() <= max_bytes {
                return Ok(json);
            }
        }
        event.cut_to(max_bytes)
    }

    /// The letter with its payload as one zstd frame in base64, when that is shorter.
    fn compressed(&self) -> Result<Option<Self>, DeadLetterError> {
        if self.payload_encoding == PayloadEncoding::ZstdBase64 {
            return Ok(None);
        }
        let bytes = self.original_payload_bytes()?;
        let frame = zstd::bulk::compress(&bytes, PAYLOAD_ZSTD_LEVEL)
            .map_err(|e| DeadLetterError::Malformed(format!("payload: {e}")))?;
        let encoded = BASE64.encode(frame);
        if encoded.len() >= json_len(&self.payload) {
            return Ok(None);
        }
        let mut compressed = self.clone();
        compressed.payload_encoding = PayloadEncoding::ZstdBase64;
        compressed.payload = encoded;
        Ok(Some(compressed))
    }

    /// The body with the payload cut (and flagged) to fit, and only then the error message.
    fn cut_to(&self, max_bytes: usize) -> Result<String, DeadLetterError> {
        let mut cut = self.clone();
        cut.payload_truncated = true;
        cut.payload = String::new();
        let without_payload = to_json(&cut)?.len();
        if without_payload <= max_bytes {
            cut.payload = prefix_within(
                &self.payload,
                max_bytes - without_payload,
                self.payload_encoding,
            );
            return fit(&cut, max_bytes, Shave::Payload);
        }
        // The error context alone is too big: keep every field but shorten the message.
        cut.error_message_truncated = true;
        cut.error_message = String::new();
        let bare = to_json(&cut)?.len();
        if bare > max_bytes {
            return Err(DeadLetterError::LimitTooSmall {
                needed: bare,
                max: max_bytes,
            });
        }
        cut.error_message =
            prefix_within(&self.error_message, max_bytes - bare, PayloadEncoding::Text);
        fit(&cut, max_bytes, Shave::ErrorMessage)
    }

    /// Parses a body written by [`Self::to_sqs_body`], for the redrive command.
    pub fn from_sqs_body(body: &str) -> Result<Self, DeadLetterError> {
        serde_json::from_str(body).map_err(|e| DeadLetterError::Malformed(e.to_string()))
    }

    /// The original bytes, to replay; refused when the payload was truncated.
    pub fn original_payload_bytes(&self) -> Result<Cow<'_, [u8]>, DeadLetterError> {
        let bytes = match self.payload_encoding {
            PayloadEncoding::Text => Cow::Borrowed(self.payload.as_bytes()),
            PayloadEncoding::Base64 => Cow::Owned(
                BASE64
                    .decode(&self.payload)
                    .map_err(|e| DeadLetterError::Malformed(format!("payload: {e}")))?,
            ),
            PayloadEncoding::ZstdBase64 if self.payload_truncated => {
                return Err(DeadLetterError::PayloadTruncated {
                    kept: 0,
                    original_size: self.original_size,
                })
            }
            PayloadEncoding::ZstdBase64 => {
                let frame = BASE64
                    .decode(&self.payload)
                    .map_err(|e| DeadLetterError::Malformed(format!("payload: {e}")))?;
                let limit = self.original_size.min(MAX_INFLATED_PAYLOAD);
                Cow::Owned(
                    zstd::bulk::decompress(&frame, limit)
                        .map_err(|e| DeadLetterError::Malformed(format!("payload: {e}")))?,
                )
            }
        };
        if self.payload_truncated || bytes.len() != self.original_size {
            return Err(DeadLetterError::PayloadTruncated {
                kept: bytes.len(),
                original_size: self.original_size,
            });
        }
        Ok(bytes)
    }
}

fn to_json(event: &DeadLetterEvent) -> Result<String, DeadLetterError> {
    serde_json::to_string(event).map_err(|e| DeadLetterError::Malformed(e.to_string()))
}

/// Which field [`fit`] shortens.
#[derive(Clone, Copy)]
enum Shave {
    Payload,
    ErrorMessage,
}

/// Serializes `event`, shaving its cut field further in the (not expected) case the estimate
/// was short, so the limit holds whatever the escaping.
fn fit(event: &DeadLetterEvent, max_bytes: usize, shave: Shave) -> Result<String, DeadLetterError> {
    let mut event = Cow::Borrowed(event);
    loop {
        let json = to_json(&event)?;
        if json.len() <= max_bytes {
            return Ok(json);
        }
        let over = json.len() - max_bytes;
        let e = event.to_mut();
        let (field, encoding) = match shave {
            Shave::ErrorMessage => (&mut e.error_message, PayloadEncoding::Text),
            Shave::Payload => (&mut e.payload, e.payload_encoding),
        };
        if field.is_empty() {
            return Err(DeadLetterError::LimitTooSmall {
                needed: json.len(),
                max: max_bytes,
            });
        }
        let budget = json_len(field).saturating_sub(over);
        *field = prefix_within(field, budget, encoding);
    }
}

/// The longest prefix of `s` whose JSON-escaped form takes at most `budget` bytes; for base64,
/// whole 4-character groups only, so the prefix still decodes.
fn prefix_within(s: &str, budget: usize, encoding: PayloadEncoding) -> String {
    if encoding != PayloadEncoding::Text {
        // Base64 is ASCII without characters JSON escapes.
        return s[..s.len().min(budget / 4 * 4)].to_owned();
    }
    let mut used = 0;
    let mut end = 0;
    for (i, c) in s.char_indices() {
        let cost = escaped_len(c);
        if used + cost > budget {
            break;
        }
        used += cost;
        end = i + c.len_utf8();
    }
    s[..end].to_owned()
}

/// Bytes of the JSON string contents of `s` (without quotes), as serde_json writes it.
fn json_len(s: &str) -> usize {
    s.chars().map(escaped_len).sum()
}

/// Bytes serde_json writes for `c` inside a string.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// Whether SQS accepts `c` in a message (after JSON escaping, which covers control characters):
/// it refuses U+FFFE and U+FFFF.
fn sqs_safe(c: char) -> bool {
    c != '\u{fffe}' && c != '\u{ffff}'
}

/// `s` with the characters SQS refuses replaced by U+FFFD.
fn sqs_clean(s: &str) -> Cow<'_, str> {
    if s.chars().all(sqs_safe) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(
            s.chars()
                .map(|c| if sqs_safe(c) { c } else { '\u{fffd}' })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_714_564_800 + secs, 0).unwrap_or_default()
    }

    fn kafka() -> DeadLetterSource {
        DeadLetterSource::Kafka {
            topic: "qlik.SALES.ORDERS".into(),
            partition: 3,
            offset: 1_234_567,
        }
    }

    fn letter(payload: &[u8]) -> DeadLetterEvent {
        DeadLetterEvent::new(
            "dl-1",
            payload,
            ErrorClass::Client,
            "ValidationException: item size has exceeded the maximum allowed size",
            Stage::Apply,
            kafka(),
            at(0),
        )
        .with_correlation_id("corr-9")
    }

    #[test]
    fn the_kafka_key_and_header_table_round_trip_in_any_bytes() {
        for key in [&br#"{"id":1005}"#[..], &[0xff, 0x00, 0x10][..]] {
            let dl = letter(b"x").with_kafka_message(Some(key), Some("SALES.ORDERS".into()));
            let back =
                DeadLetterEvent::from_sqs_body(&dl.to_sqs_body(256 * 1024).unwrap()).unwrap();
            assert_eq!(&*back.kafka_key.as_ref().unwrap().bytes().unwrap(), key);
            assert_eq!(back.kafka_table.as_deref(), Some("SALES.ORDERS"));
        }
        // Letters written before these fields read back without them.
        let old = letter(b"x").to_sqs_body(256 * 1024).unwrap();
        assert!(!old.contains("kafka_key"));
        assert_eq!(
            DeadLetterEvent::from_sqs_body(&old).unwrap().kafka_key,
            None
        );
    }

    #[test]
    fn a_letter_that_applies_a_change_outlives_the_tombstones_at_their_ttl() {
        let ttl = 7 * 24 * 3600;
        let dl = letter(b"x");
        assert!(!dl.outlived_tombstones(at(ttl as i64 - 1), ttl));
        assert!(dl.outlived_tombstones(at(ttl as i64), ttl));
        // Re-publishing an event or delivering an owed one writes no row: any age is safe.
        for stage in [Stage::Publish, Stage::Route] {
            let mut other = dl.clone();
            other.stage = stage;
            assert!(!other.outlived_tombstones(at(10 * ttl as i64), ttl));
        }
    }

    #[test]
    fn a_small_letter_round_trips_whole() {
        let mut dl = letter(br#"{"ORDER_ID":1}"#).with_breaker("open", "us-east-1");
        dl.record_attempt(at(30), "ThrottlingException");
        let body = dl.to_sqs_body(256 * 1024).unwrap();
        let back = DeadLetterEvent::from_sqs_body(&body).unwrap();
        assert_eq!(back, dl);
        assert_eq!(back.attempts, 2);
        assert_eq!(back.error_message, "ThrottlingException");
        assert_eq!(back.payload_encoding, PayloadEncoding::Text);
        assert_eq!(
            &*back.original_payload_bytes().unwrap(),
            br#"{"ORDER_ID":1}"#
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["source"]["kind"], "kafka");
        assert_eq!(v["source"]["offset"], 1_234_567);
        assert_eq!(v["error_class"], "client");
        assert_eq!(v["stage"], "apply");
        assert_eq!(v["first_failure_at"], "2024-05-01T12:00:00Z");
    }

    #[test]
    fn binary_payloads_travel_as_base64() {
        let bytes = [0u8, 0xff, 0x10, 0x80, 0x00];
        let dl = letter(&bytes);
        assert_eq!(dl.payload_encoding, PayloadEncoding::Base64);
        let back = DeadLetterEvent::from_sqs_body(&dl.to_sqs_body(4096).unwrap()).unwrap();
        assert_eq!(&*back.original_payload_bytes().unwrap(), &bytes);
        // Text SQS would refuse is base64 too.
        assert_eq!(
            letter("a\u{ffff}b".as_bytes()).payload_encoding,
            PayloadEncoding::Base64
        );
    }

    /// Letters zstd cannot shrink: the decimal digits of a xorshift, as text.
    fn incompressible_text(len: usize) -> String {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'0' + (x % 10) as u8)
            })
            .collect()
    }

    #[test]
    fn a_payload_too_large_as_it_is_is_kept_whole_compressed() {
        let payload = format!("{{\"row\":\"{}\"}}", "order shipped ".repeat(30_000));
        assert!(payload.len() > 400 * 1024);
        let mut dl = letter(payload.as_bytes());
        dl.error_message = format!("PutItem failed: {}", "debug dump ".repeat(500));
        let body = dl.to_sqs_body(256 * 1024).unwrap();
        assert!(body.len() <= 256 * 1024);
        let back = DeadLetterEvent::from_sqs_body(&body).unwrap();
        assert!(!back.payload_truncated);
        assert_eq!(back.payload_encoding, PayloadEncoding::ZstdBase64);
        assert_eq!(&*back.original_payload_bytes().unwrap(), payload.as_bytes());
        // The long error message was cut first, to its floor, and says so.
        assert!(back.error_message_truncated);
        assert!(back.error_message.len() <= ERROR_MESSAGE_FLOOR);
        assert!(dl.error_message.starts_with(&back.error_message));
    }

    #[test]
    fn an_oversized_payload_is_truncated_and_says_so() {
        let payload = incompressible_text(600 * 1024);
        let dl = letter(payload.as_bytes());
        let body = dl.to_sqs_body(256 * 1024).unwrap();
        assert!(body.len() <= 256 * 1024);
        assert!(body.len() > 255 * 1024, "uses the room it has");
        let back = DeadLetterEvent::from_sqs_body(&body).unwrap();
        assert!(back.payload_truncated);
        assert_eq!(
            back.payload_encoding,
            PayloadEncoding::Text,
            "readable, as cut"
        );
        assert_eq!(back.original_size, 600 * 1024);
        assert_eq!(back.error_message, dl.error_message);
        assert_eq!(back.source, dl.source);
        assert!(matches!(
            back.original_payload_bytes(),
            Err(DeadLetterError::PayloadTruncated { original_size, .. }) if original_size == 600 * 1024
        ));
    }

    #[test]
    fn a_huge_error_message_is_cut_to_its_floor_before_the_payload_and_below_it_after() {
        let mut dl = letter(b"payload");
        dl.error_message = "e".repeat(4_000);
        let body = dl.to_sqs_body(2_048).unwrap();
        assert!(body.len() <= 2_048);
        let back = DeadLetterEvent::from_sqs_body(&body).unwrap();
        assert_eq!(&*back.original_payload_bytes().unwrap(), b"payload");
        assert!(back.error_message_truncated);
        assert_eq!(back.error_message.len(), ERROR_MESSAGE_FLOOR);
        // A context too big even with the message at its floor: the payload goes, then the
        // message is cut further.
        let body = dl.to_sqs_body(900).unwrap();
        assert!(body.len() <= 900);
        let back = DeadLetterEvent::from_sqs_body(&body).unwrap();
        assert!(back.payload_truncated && back.payload.is_empty());
        assert!(back.error_message_truncated);
        assert!(back.error_message.len() > 100);
        assert_eq!(back.error_class, ErrorClass::Client);
        assert!(matches!(
            dl.to_sqs_body(100),
            Err(DeadLetterError::LimitTooSmall { .. })
        ));
    }

    #[test]
    fn the_sqs_message_counts_attributes_in_the_limit() {
        let dl = letter("y".repeat(10_000).as_bytes()).with_breaker("half_open", "us-west-2");
        let msg = dl.to_sqs_message(4_096).unwrap();
        let attr: usize = msg
            .attributes
            .iter()
            .map(|(n, v)| n.len() + 6 + v.len())
            .sum();
        assert!(msg.body.len() + attr <= 4_096);
        assert_eq!(
            msg.attributes,
            vec![
                ("errorClass", "client".to_owned()),
                ("stage", "apply".to_owned()),
                ("sourceKind", "kafka".to_owned()),
                ("region", "us-west-2".to_owned()),
            ]
        );
    }

    #[test]
    fn every_source_kind_round_trips() {
        let sources = [
            kafka(),
            DeadLetterSource::Lambda {
                request_id: "req-1".into(),
                function: "eda-authorizer".into(),
            },
            DeadLetterSource::DynamoDbStream {
                event_id: "e1".into(),
                sequence_number: "111".into(),
            },
            DeadLetterSource::EventBridge {
                event_id: "eb-1".into(),
            },
        ];
        for source in sources {
            let kind = source.kind();
            let dl = DeadLetterEvent::new(
                "i",
                b"p",
                ErrorClass::Client,
                "m",
                Stage::Publish,
                source,
                at(0),
            );
            let body = dl.to_sqs_body(4096).unwrap();
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["source"]["kind"], kind);
            assert_eq!(DeadLetterEvent::from_sqs_body(&body).unwrap(), dl);
        }
        assert!(DeadLetterEvent::from_sqs_body("{}").is_err());
    }

    fn payloads() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..20_000),
            ".{0,6000}".prop_map(String::into_bytes),
            "[\"\\\\\\n\\u{0001}a\u{e9}\u{1f600}]{0,8000}".prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn the_body_fits_and_keeps_its_error_context(
            payload in payloads(),
            message in ".{0,300}",
            max in 1_024usize..=40_000,
        ) {
            let dl = DeadLetterEvent::new(
                "dl-prop", &payload, ErrorClass::Validation, &message, Stage::Plan, kafka(), at(5),
            );
            let body = dl.to_sqs_body(max).unwrap();
            prop_assert!(body.len() <= max, "{} > {}", body.len(), max);
            let back = DeadLetterEvent::from_sqs_body(&body).unwrap();
            prop_assert_eq!(back.error_class, dl.error_class);
            // The message is whole whenever the letter fits without its payload; only a context
            // too big on its own is cut, after the payload, and the cut says so.
            let mut bare = dl.clone();
            bare.payload = String::new();
            bare.payload_truncated = true;
            let context_fits = serde_json::to_string(&bare).unwrap().len() <= max;
            prop_assert_eq!(back.error_message_truncated, !context_fits);
            if context_fits {
                prop_assert_eq!(&back.error_message, &dl.error_message);
            } else {
                prop_assert!(back.payload.is_empty());
                prop_assert!(dl.error_message.starts_with(&back.error_message));
                prop_assert!(back.error_message.len() < dl.error_message.len());
            }
            prop_assert_eq!(&back.stage, &dl.stage);
            prop_assert_eq!(&back.source, &dl.source);
            prop_assert_eq!(back.attempts, dl.attempts);
            prop_assert_eq!(back.original_size, payload.len());
            if back.payload_truncated {
                prop_assert!(dl.payload.starts_with(&back.payload));
            } else {
                prop_assert_eq!(&*back.original_payload_bytes().unwrap(), &payload[..]);
            }
        }
    }
}
