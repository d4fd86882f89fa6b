//! `[transformer]`: validation rules, enrichment tables and normalization for `BaseEvent`s.

use crate::error::Validator;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The event transformer: validates, enriches and normalizes events. Field paths are dotted
/// (`payload.customer.email`) and address the event's JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransformerConfig {
    /// An event timestamp older than this (seconds before now) is rejected.
    pub max_age_secs: u64,
    /// An event timestamp further ahead than this (seconds after now) is rejected; clocks skew.
    pub max_future_secs: u64,
    /// Fields that must hold an e-mail address when present; they are lower-cased.
    pub email_fields: Vec<String>,
    /// Fields that must hold a UUID when present (`event_id` is always checked).
    pub uuid_fields: Vec<String>,
    /// Whether every string in the payload is trimmed of surrounding whitespace.
    pub trim_strings: bool,
    /// Further per-field rules.
    pub rules: Vec<FieldRule>,
    /// The geolocation lookup used for enrichment.
    pub geo: GeoConfig,
}

impl Default for TransformerConfig {
    fn default() -> Self {
        Self {
            max_age_secs: 7 * 24 * 3600,
            max_future_secs: 300,
            email_fields: vec!["payload.email".into()],
            uuid_fields: Vec::new(),
            trim_strings: true,
            rules: Vec::new(),
            geo: GeoConfig::default(),
        }
    }
}

/// A rule on one field; every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FieldRule {
    /// Dotted path of the field the rule checks.
    pub field: String,
    /// The field must be present and not null.
    pub required: bool,
    /// A string field must match this regular expression (compiled once at start-up).
    pub pattern: Option<String>,
    /// A numeric field must be at least this.
    pub min: Option<f64>,
    /// A numeric field must be at most this.
    pub max: Option<f64>,
    /// A string field must be one of these values.
    pub one_of: Vec<String>,
    /// A string field must be at most this many characters.
    pub max_len: Option<usize>,
}

/// Geolocation enrichment from tables kept in the configuration (no network lookup on the hot
/// path): first by a key field such as a country code, then by IP prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeoConfig {
    /// Field whose value keys `by_key` (e.g. `payload.country`).
    pub key_field: String,
    /// Field holding an IPv4/IPv6 address looked up in `by_ip_prefix` (e.g. `payload.ip`).
    pub ip_field: String,
    /// Locations by key value (`"US" = { region = "North America", ... }`).
    pub by_key: BTreeMap<String, GeoEntry>,
    /// Locations by address prefix (`"203.0.113." = { ... }`); the longest prefix wins.
    pub by_ip_prefix: BTreeMap<String, GeoEntry>,
}

impl Default for GeoConfig {
    fn default() -> Self {
        Self {
            key_field: "payload.country".into(),
            ip_field: "payload.ip".into(),
            by_key: BTreeMap::new(),
            by_ip_prefix: BTreeMap::new(),
        }
    }
}

/// A location added to events under `enrichment.geo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeoEntry {
    /// ISO 3166 country code.
    pub country: String,
    /// A coarser area (continent, sales region).
    pub region: String,
    /// City, when known.
    pub city: Option<String>,
    /// IANA time zone, when known.
    pub timezone: Option<String>,
}

impl TransformerConfig {
    pub(crate) fn validate(&self, v: &mut Validator) {
        v.range(
            "transformer.max_age_secs",
            self.max_age_secs,
            1,
            100 * 366 * 24 * 3600,
        );
        v.range(
            "transformer.max_future_secs",
            self.max_future_secs,
            0,
            366 * 24 * 3600,
        );
        for (i, rule) in self.rules.iter().enumerate() {
            let key = |name: &str| format!("transformer.rules[{i}].{name}");
            v.non_empty(&key("field"), &rule.field);
            if let Some(pattern) = &rule.pattern {
                if let Err(err) = regex::Regex::new(pattern) {
                    v.invalid(&key("pattern"), pattern, err.to_string());
                }
            }
            if let (Some(min), Some(max)) = (rule.min, rule.max) {
                if min > max {
                    v.less(&key("max"), max, &key("min"), min);
                }
            }
        }
        for (prefix, entry) in &self.geo.by_ip_prefix {
            if entry.country.is_empty() {
                v.push(crate::ValidationError::Empty {
                    key: format!("transformer.geo.by_ip_prefix.\"{prefix}\".country"),
                });
            }
        }
    }
}
