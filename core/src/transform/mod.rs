//! The event transformer: validates, enriches and normalizes [`BaseEvent`]s.
//!
//! Every event eda publishes for downstream consumers passes through here once. A valid event
//! leaves as a [`TransformedEvent`] (EventBridge detail-type `transformed`): its strings
//! trimmed, its e-mail addresses lower-cased, its timestamp in RFC 3339 UTC with milliseconds,
//! and enriched with the processing region, the time it was received and a geolocation looked up
//! in configured tables. An invalid event leaves as [`ValidationFailed`] (`validation_failed`)
//! holding the event exactly as received and **every** reason it failed, each naming the field
//! and a machine-readable [`ReasonCode`], so a producer fixes all its mistakes in one round.
//!
//! A [`Transformer`] is built once from the configuration (regular expressions compiled, field
//! paths parsed) and then used for every event. It has two entry points:
//! [`Transformer::transform`] for an already-built event (the CDC path, which must stay far
//! under a microsecond per event) and [`Transformer::transform_json`] for raw JSON (the Lambda
//! shim), where a missing or ill-typed field is a reason rather than a decoding error. The
//! current time is a parameter: nothing here reads the clock.
//!
//! # Layout
//!
//! - this file: the event types and the [`Transformer`] entry points;
//! - `validate`: the checks, which only read the event, so a failed event is returned intact;
//! - `field`: configured dotted paths (`payload.customer.email`) and their lookup;
//! - [`time`]: the timestamp forms accepted and the one emitted.

mod field;
mod payload;
pub mod time;
mod validate;

#[cfg(test)]
mod tests;

use chrono::{DateTime, TimeDelta, Utc};
use eda_config::{GeoEntry, TransformerConfig};
use field::FieldPath;
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::cdc::row::may_be_padded;

pub use payload::{ChangePayload, Payload};
pub use validate::is_valid_email;

/// EventBridge detail-type of a valid, normalized event.
pub const DETAIL_TYPE_TRANSFORMED: &str = "transformed";
/// EventBridge detail-type of an event refused by validation.
pub const DETAIL_TYPE_VALIDATION_FAILED: &str = "validation_failed";

/// The core event every producer sends: what a business event is before eda has touched it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BaseEvent {
    /// Unique id of the event (a UUID); downstream de-duplicates on it.
    pub event_id: String,
    /// What happened (`order.created`); consumers route on it.
    pub event_type: String,
    /// Region the event was produced in, so cross-region copies are recognizable. Shared: every
    /// event of a region names the same one.
    pub source_region: Arc<str>,
    /// When it happened, as the producer wrote it: RFC 3339, epoch milliseconds, or Qlik's
    /// zone-less UTC form. Kept as text so a bad value is a validation reason, not a decode error.
    #[serde(deserialize_with = "text_or_integer")]
    pub timestamp: String,
    /// Ties together the events of one request or transaction, when the producer knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The business data.
    #[serde(default)]
    pub payload: Payload,
    /// Producer-supplied string attributes (trace ids, schema versions), carried through. Keys
    /// are `Cow` so the ones eda sets itself (`change_sequence`, ...) cost no allocation.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<Cow<'static, str>, String>,
}

/// Accepts a timestamp given as a JSON string or as an integer (epoch milliseconds).
fn text_or_integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum TextOrInteger {
        Text(String),
        Integer(i64),
    }
    Ok(match TextOrInteger::deserialize(d)? {
        TextOrInteger::Text(s) => s,
        TextOrInteger::Integer(n) => n.to_string(),
    })
}

impl BaseEvent {
    /// Whether the event went by claim check: a change whose row was left out for its size (see
    /// [`claim_check`](crate::claim_check)).
    pub fn is_by_reference(&self) -> bool {
        matches!(&self.payload, Payload::Change(change) if change.claim_check.is_some())
    }
}

impl From<BaseEvent> for Value {
    /// The event as JSON, for a [`ValidationFailed`] built from a [`BaseEvent`].
    fn from(event: BaseEvent) -> Value {
        let mut map = Map::new();
        map.insert("event_id".into(), Value::String(event.event_id));
        map.insert("event_type".into(), Value::String(event.event_type));
        map.insert(
            "source_region".into(),
            Value::String(event.source_region.to_string()),
        );
        map.insert("timestamp".into(), Value::String(event.timestamp));
        if let Some(id) = event.correlation_id {
            map.insert("correlation_id".into(), Value::String(id));
        }
        map.insert("payload".into(), event.payload.into_value());
        if !event.metadata.is_empty() {
            let metadata = event
                .metadata
                .into_iter()
                .map(|(k, v)| (k.into_owned(), Value::String(v)));
            map.insert("metadata".into(), Value::Object(metadata.collect()));
        }
        Value::Object(map)
    }
}

/// A valid event after normalization and enrichment: what consumers of `transformed` receive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransformedEvent {
    /// The producer's event id, unchanged.
    pub event_id: String,
    /// The producer's event type, unchanged.
    pub event_type: String,
    /// The producer's region, unchanged.
    pub source_region: Arc<str>,
    /// When it happened, in UTC to the millisecond (emitted as `2024-05-01T12:00:00.123Z`).
    #[serde(with = "time::rfc3339_millis")]
    pub timestamp: DateTime<Utc>,
    /// The producer's correlation id, unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The business data with strings trimmed and e-mail addresses lower-cased.
    pub payload: Payload,
    /// The producer's attributes, with configured e-mail fields lower-cased.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<Cow<'static, str>, String>,
    /// Region that transformed the event; with `source_region` it shows a cross-region hop.
    pub processing_region: Arc<str>,
    /// When eda received the event, to measure end-to-end delay.
    #[serde(with = "time::rfc3339_millis")]
    pub received_at: DateTime<Utc>,
    /// What eda added from its own tables.
    #[serde(default)]
    pub enrichment: Enrichment,
}

impl TransformedEvent {
    /// The event fields again as a [`BaseEvent`], for re-transforming (which changes nothing)
    /// or re-publishing in the producer's shape.
    pub fn to_base(&self) -> BaseEvent {
        BaseEvent {
            event_id: self.event_id.clone(),
            event_type: self.event_type.clone(),
            source_region: self.source_region.clone(),
            timestamp: time::format_millis(&self.timestamp),
            correlation_id: self.correlation_id.clone(),
            payload: self.payload.clone(),
            metadata: self.metadata.clone(),
        }
    }
}

/// Data eda adds to an event from configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Enrichment {
    /// Location found by key or IP prefix; shared with the table, so adding it costs no copy.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "shared_geo")]
    pub geo: Option<Arc<GeoEntry>>,
}

/// Serde for `Option<Arc<GeoEntry>>` without serde's `rc` feature.
mod shared_geo {
    use super::*;

    pub fn serialize<S: serde::Serializer>(
        geo: &Option<Arc<GeoEntry>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        geo.as_deref().serialize(s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Arc<GeoEntry>>, D::Error> {
        Ok(Option::<GeoEntry>::deserialize(d)?.map(Arc::new))
    }
}

/// An event refused by validation: what consumers of `validation_failed` receive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationFailed {
    /// The event exactly as received, so it can be fixed and replayed.
    pub event: Value,
    /// Every reason it failed, in check order; never empty.
    pub reasons: Vec<Reason>,
    /// Region that validated the event.
    pub processing_region: Arc<str>,
    /// When eda received the event.
    #[serde(with = "time::rfc3339_millis")]
    pub received_at: DateTime<Utc>,
}

/// One failed check: which field, a stable code to count and route on, and a sentence for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// Dotted path of the field (`payload.email`); empty when the event itself is malformed.
    pub field: String,
    /// What kind of failure, stable across releases.
    pub code: ReasonCode,
    /// What was wrong, for a person reading the event.
    pub message: String,
}

/// Machine-readable failure kinds; the serialized names are part of the event contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// The event is not a JSON object.
    NotAnObject,
    /// A required field is absent, null or empty.
    MissingField,
    /// A field has the wrong JSON type for its check.
    InvalidType,
    /// `event_id` or a `uuid_fields` entry is not a UUID.
    InvalidUuid,
    /// An `email_fields` entry is not an e-mail address.
    InvalidEmail,
    /// The timestamp is in none of the accepted forms.
    InvalidTimestamp,
    /// The timestamp is older than `max_age_secs`.
    TimestampTooOld,
    /// The timestamp is further ahead than `max_future_secs`.
    TimestampInFuture,
    /// A rule's `pattern` does not match.
    RulePattern,
    /// Below a rule's `min`.
    RuleMin,
    /// Above a rule's `max`.
    RuleMax,
    /// Not one of a rule's `one_of` values.
    RuleOneOf,
    /// Longer than a rule's `max_len`.
    RuleMaxLen,
}

impl ReasonCode {
    /// The serialized name, for metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::NotAnObject => "not_an_object",
            ReasonCode::MissingField => "missing_field",
            ReasonCode::InvalidType => "invalid_type",
            ReasonCode::InvalidUuid => "invalid_uuid",
            ReasonCode::InvalidEmail => "invalid_email",
            ReasonCode::InvalidTimestamp => "invalid_timestamp",
            ReasonCode::TimestampTooOld => "timestamp_too_old",
            ReasonCode::TimestampInFuture => "timestamp_in_future",
            ReasonCode::RulePattern => "rule_pattern",
            ReasonCode::RuleMin => "rule_min",
            ReasonCode::RuleMax => "rule_max",
            ReasonCode::RuleOneOf => "rule_one_of",
            ReasonCode::RuleMaxLen => "rule_max_len",
        }
    }
}

/// What became of one event: exactly one of the two detail-types is published for it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Valid: publish as `transformed`.
    Transformed(TransformedEvent),
    /// Invalid: publish as `validation_failed`.
    ValidationFailed(ValidationFailed),
}

impl Outcome {
    /// The EventBridge detail-type this outcome is published under.
    pub fn detail_type(&self) -> &'static str {
        match self {
            Outcome::Transformed(_) => DETAIL_TYPE_TRANSFORMED,
            Outcome::ValidationFailed(_) => DETAIL_TYPE_VALIDATION_FAILED,
        }
    }

    /// Whether the event passed validation.
    pub fn is_valid(&self) -> bool {
        matches!(self, Outcome::Transformed(_))
    }
}

/// A configuration the transformer cannot be built from; each names the key.
#[derive(Debug, thiserror::Error)]
pub enum TransformerError {
    /// A field path that can never address an event field.
    #[error("{key}: `{path}` {why}")]
    Path {
        /// The configuration key holding the path.
        key: String,
        /// The path as configured.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A rule pattern that does not compile.
    #[error("{key}: invalid regular expression: {source}")]
    Pattern {
        /// The configuration key holding the pattern.
        key: String,
        /// The compiler's complaint.
        #[source]
        source: regex::Error,
    },
    /// A bound too large to compute with.
    #[error("{key}: {value} is too large")]
    TooLarge {
        /// The configuration key.
        key: &'static str,
        /// The configured value.
        value: u64,
    },
}

/// One configured rule, compiled.
#[derive(Debug)]
struct Rule {
    path: FieldPath,
    required: bool,
    pattern: Option<Regex>,
    min: Option<f64>,
    max: Option<f64>,
    one_of: Vec<String>,
    max_len: Option<usize>,
}

/// The geolocation tables, arranged for lookup.
#[derive(Debug, Default)]
struct Geo {
    key_field: Option<FieldPath>,
    ip_field: Option<FieldPath>,
    by_key: HashMap<String, Arc<GeoEntry>>,
    /// Longest prefix first, so the first match is the most specific.
    by_ip_prefix: Vec<(String, Arc<GeoEntry>)>,
}

/// Validates, enriches and normalizes events; build one per process and share it by reference.
#[derive(Debug)]
pub struct Transformer {
    processing_region: Arc<str>,
    max_age: TimeDelta,
    max_future: TimeDelta,
    trim_strings: bool,
    uuid_fields: Vec<FieldPath>,
    email_fields: Vec<FieldPath>,
    rules: Vec<Rule>,
    geo: Geo,
}

impl Transformer {
    /// Compiles the configuration once: paths parsed, patterns compiled, tables indexed. Fails on
    /// a path that can never match or a pattern that does not compile, naming the key.
    pub fn new(
        config: &TransformerConfig,
        processing_region: impl Into<String>,
    ) -> Result<Transformer, TransformerError> {
        let path = |key: String, text: &str| {
            FieldPath::parse(text).map_err(|e| TransformerError::Path {
                key,
                path: text.to_owned(),
                why: e.as_str(),
            })
        };
        let paths = |name: &str, texts: &[String]| -> Result<Vec<FieldPath>, TransformerError> {
            texts
                .iter()
                .enumerate()
                .map(|(i, t)| path(format!("transformer.{name}[{i}]"), t))
                .collect()
        };
        let seconds = |key: &'static str, value: u64| {
            i64::try_from(value)
                .ok()
                .and_then(TimeDelta::try_seconds)
                .ok_or(TransformerError::TooLarge { key, value })
        };
        let mut rules = Vec::with_capacity(config.rules.len());
        for (i, rule) in config.rules.iter().enumerate() {
            let pattern = match &rule.pattern {
                None => None,
                Some(p) => Some(Regex::new(p).map_err(|source| TransformerError::Pattern {
                    key: format!("transformer.rules[{i}].pattern"),
                    source,
                })?),
            };
            rules.push(Rule {
                path: path(format!("transformer.rules[{i}].field"), &rule.field)?,
                required: rule.required,
                pattern,
                min: rule.min,
                max: rule.max,
                one_of: rule.one_of.clone(),
                max_len: rule.max_len,
            });
        }
        let optional_path = |key: &str, text: &str| {
            (!text.is_empty())
                .then(|| path(key.to_owned(), text))
                .transpose()
        };
        let mut by_ip_prefix: Vec<(String, Arc<GeoEntry>)> = config
            .geo
            .by_ip_prefix
            .iter()
            .map(|(prefix, entry)| (prefix.clone(), Arc::new(entry.clone())))
            .collect();
        by_ip_prefix.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        let geo = Geo {
            key_field: optional_path("transformer.geo.key_field", &config.geo.key_field)?,
            ip_field: optional_path("transformer.geo.ip_field", &config.geo.ip_field)?,
            by_key: config
                .geo
                .by_key
                .iter()
                .map(|(k, entry)| (k.clone(), Arc::new(entry.clone())))
                .collect(),
            by_ip_prefix,
        };
        Ok(Transformer {
            processing_region: processing_region.into().into(),
            max_age: seconds("transformer.max_age_secs", config.max_age_secs)?,
            max_future: seconds("transformer.max_future_secs", config.max_future_secs)?,
            trim_strings: config.trim_strings,
            uuid_fields: paths("uuid_fields", &config.uuid_fields)?,
            email_fields: paths("email_fields", &config.email_fields)?,
            rules,
            geo,
        })
    }

    /// The region this transformer stamps on events.
    pub fn processing_region(&self) -> &str {
        &self.processing_region
    }

    /// Transforms an already-built event (the CDC path). Takes it by value so normalization
    /// happens in place, without copying the payload; `now` is when it was received.
    pub fn transform(&self, event: BaseEvent, now: DateTime<Utc>) -> Outcome {
        let mut reasons = Vec::new();
        let timestamp = self.validate_event(&event, now, &mut reasons);
        match timestamp {
            Some(ts) if reasons.is_empty() => Outcome::Transformed(self.finish(event, ts, now)),
            _ => self.failed(Value::from(event), reasons, now),
        }
    }

    /// Transforms raw event JSON (the Lambda path). A missing or ill-typed field becomes a
    /// reason in [`ValidationFailed`] instead of a decoding error, and the event is kept as
    /// received. Top-level fields that are not part of [`BaseEvent`] are dropped.
    pub fn transform_json(&self, raw: Value, now: DateTime<Utc>) -> Outcome {
        let Value::Object(map) = raw else {
            let reason = Reason {
                field: String::new(),
                code: ReasonCode::NotAnObject,
                message: "the event is not a JSON object".into(),
            };
            return self.failed(raw, vec![reason], now);
        };
        let mut reasons = Vec::new();
        let timestamp = self.validate_json(&map, now, &mut reasons);
        match timestamp {
            Some(ts) if reasons.is_empty() => {
                let event = into_base_event(map);
                Outcome::Transformed(self.finish(event, ts, now))
            }
            _ => self.failed(Value::Object(map), reasons, now),
        }
    }

    fn failed(&self, event: Value, reasons: Vec<Reason>, now: DateTime<Utc>) -> Outcome {
        Outcome::ValidationFailed(ValidationFailed {
            event,
            reasons,
            processing_region: self.processing_region.clone(),
            received_at: time::truncate_to_millis(now),
        })
    }

    /// Normalizes and enriches a validated event; `event.timestamp` is replaced by `timestamp`.
    fn finish(
        &self,
        mut event: BaseEvent,
        timestamp: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> TransformedEvent {
        if self.trim_strings {
            event.payload.trim_strings();
        }
        for path in &self.email_fields {
            path.edit_str(&mut event, normalized_email);
        }
        let geo = self.geolocate(&event);
        TransformedEvent {
            event_id: event.event_id,
            event_type: event.event_type,
            source_region: event.source_region,
            timestamp: time::truncate_to_millis(timestamp),
            correlation_id: event.correlation_id,
            payload: event.payload,
            metadata: event.metadata,
            processing_region: self.processing_region.clone(),
            received_at: time::truncate_to_millis(now),
            enrichment: Enrichment { geo },
        }
    }

    /// The configured location for the event: by key first, then by the longest IP prefix.
    fn geolocate(&self, event: &BaseEvent) -> Option<Arc<GeoEntry>> {
        let geo = &self.geo;
        if !geo.by_key.is_empty() {
            if let Some(field::Found::Str(key)) = geo.key_field.as_ref().map(|p| p.find(event)) {
                if let Some(entry) = geo.by_key.get(key) {
                    return Some(Arc::clone(entry));
                }
            }
        }
        if !geo.by_ip_prefix.is_empty() {
            if let Some(field::Found::Str(ip)) = geo.ip_field.as_ref().map(|p| p.find(event)) {
                return geo
                    .by_ip_prefix
                    .iter()
                    .find(|(prefix, _)| ip.starts_with(prefix.as_str()))
                    .map(|(_, entry)| Arc::clone(entry));
            }
        }
        None
    }
}

/// Moves the fields of validated raw JSON into a [`BaseEvent`]; the checks guarantee the types,
/// and `timestamp` is left empty because the parsed time replaces it.
fn into_base_event(mut map: Map<String, Value>) -> BaseEvent {
    let mut take_str = |key: &str| match map.remove(key) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let event_id = take_str("event_id").unwrap_or_default();
    let event_type = take_str("event_type").unwrap_or_default();
    let source_region = take_str("source_region").unwrap_or_default();
    let correlation_id = take_str("correlation_id");
    let metadata = match map.remove("metadata") {
        Some(Value::Object(m)) => m
            .into_iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((Cow::Owned(k), s)),
                _ => None,
            })
            .collect(),
        _ => BTreeMap::new(),
    };
    BaseEvent {
        event_id,
        event_type,
        source_region: source_region.into(),
        timestamp: String::new(),
        correlation_id,
        payload: map.remove("payload").unwrap_or(Value::Null).into(),
        metadata,
    }
}

/// Trims every string in a JSON value in place, without allocating. Leaves are handled in the
/// loop rather than by recursion: most of a payload is leaves.
fn trim_strings(value: &mut Value) {
    match value {
        Value::String(s) => trim_in_place(s),
        Value::Array(items) => items.iter_mut().for_each(trim_child),
        Value::Object(map) => map.values_mut().for_each(trim_child),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn trim_child(value: &mut Value) {
    match value {
        Value::String(s) => trim_in_place(s),
        Value::Array(_) | Value::Object(_) => trim_strings(value),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Trims a string in place; the common case (nothing to trim) costs two byte tests.
fn trim_in_place(s: &mut String) {
    let trimmed = trimmed(s);
    if trimmed.len() == s.len() {
        return;
    }
    // `trimmed` lies inside `s`: its offset is where the leading blanks end.
    let start = trimmed.as_ptr() as usize - s.as_ptr() as usize;
    let end = start + trimmed.len();
    s.truncate(end);
    s.drain(..start);
}

/// `s` without leading and trailing whitespace (`str::trim`), checking only the two end bytes
/// when they cannot be blank (nearly every value).
#[inline]
fn trimmed(s: &str) -> &str {
    if may_be_padded(s) {
        s.trim()
    } else {
        s
    }
}

/// The address trimmed and lower-cased, or `None` when it already is (most are: no copy).
fn normalized_email(email: &str) -> Option<String> {
    let trimmed = trimmed(email);
    // One pass with no early exit (the compiler does it sixteen bytes at a time): whether any
    // byte is an ASCII capital, and whether any is not ASCII (then `char`s decide).
    let (bits, ascii_upper) = trimmed.bytes().fold((0u8, false), |(bits, upper), b| {
        (bits | b, upper | (b.wrapping_sub(b'A') < 26))
    });
    let upper = if bits.is_ascii() {
        ascii_upper
    } else {
        trimmed.chars().any(char::is_uppercase)
    };
    match (upper, trimmed.len() == email.len()) {
        (false, true) => None,
        (false, false) => Some(trimmed.to_owned()),
        (true, _) => Some(trimmed.to_lowercase()),
    }
}
