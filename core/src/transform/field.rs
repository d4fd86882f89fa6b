//! Dotted field paths from the configuration, parsed once, and their lookup in an event.
//!
//! A path such as `payload.customer.email` addresses the event's JSON. The transformer meets
//! events in two shapes (a [`BaseEvent`] built by the CDC path, raw JSON from EventBridge), so a
//! path resolves against either to the same [`Found`] view and every check is written once.

use super::BaseEvent;
use crate::cdc::Cell;
use serde_json::{Map, Value};

/// The event fields a path can start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Root {
    EventId,
    EventType,
    SourceRegion,
    Timestamp,
    CorrelationId,
    Payload,
    Metadata,
}

impl Root {
    /// The JSON key of the field.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Root::EventId => "event_id",
            Root::EventType => "event_type",
            Root::SourceRegion => "source_region",
            Root::Timestamp => "timestamp",
            Root::CorrelationId => "correlation_id",
            Root::Payload => "payload",
            Root::Metadata => "metadata",
        }
    }

    fn parse(key: &str) -> Option<Root> {
        Some(match key {
            "event_id" => Root::EventId,
            "event_type" => Root::EventType,
            "source_region" => Root::SourceRegion,
            "timestamp" => Root::Timestamp,
            "correlation_id" => Root::CorrelationId,
            "payload" => Root::Payload,
            "metadata" => Root::Metadata,
            _ => return None,
        })
    }
}

/// One step below the root: an object key, which also indexes an array when it is a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    pub(crate) key: String,
    pub(crate) index: Option<usize>,
}

/// A parsed dotted path; keeps its text for the reasons it appears in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldPath {
    text: String,
    root: Root,
    rest: Vec<Segment>,
}

/// Why a configured path cannot address an event field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathError {
    /// The first segment is not a field of the event.
    UnknownRoot,
    /// `a..b`, a leading or a trailing dot.
    EmptySegment,
    /// Only `payload` has nested fields; `metadata` has one level of string values.
    TooDeep,
}

impl PathError {
    /// Text for the configuration error.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PathError::UnknownRoot => "must start with event_id, event_type, source_region, timestamp, correlation_id, payload or metadata",
            PathError::EmptySegment => "has an empty segment",
            PathError::TooDeep => "goes below a field that has no nested fields",
        }
    }
}

impl FieldPath {
    /// Parses a configured path, refusing one that can never match an event.
    pub(crate) fn parse(text: &str) -> Result<FieldPath, PathError> {
        let mut parts = text.split('.');
        let root = parts
            .next()
            .and_then(Root::parse)
            .ok_or(PathError::UnknownRoot)?;
        let mut rest = Vec::new();
        for part in parts {
            if part.is_empty() {
                return Err(PathError::EmptySegment);
            }
            rest.push(Segment {
                key: part.to_owned(),
                index: part.parse().ok(),
            });
        }
        let max_depth = match root {
            Root::Payload => usize::MAX,
            Root::Metadata => 1,
            _ => 0,
        };
        if rest.len() > max_depth {
            return Err(PathError::TooDeep);
        }
        Ok(FieldPath {
            text: text.to_owned(),
            root,
            rest,
        })
    }

    /// The path as configured, for reasons.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The field the path starts from.
    pub(crate) fn root(&self) -> Root {
        self.root
    }

    /// Whether the path addresses a value inside the payload, where `trim_strings` applies.
    pub(crate) fn in_payload(&self) -> bool {
        self.root == Root::Payload && !self.rest.is_empty()
    }

    /// Resolves the path against a built event.
    pub(crate) fn find<'a>(&self, event: &'a BaseEvent) -> Found<'a> {
        match self.root {
            Root::EventId => Found::of_str(&event.event_id),
            Root::EventType => Found::of_str(&event.event_type),
            Root::SourceRegion => Found::of_str(&event.source_region),
            Root::Timestamp => Found::of_str(&event.timestamp),
            Root::CorrelationId => event
                .correlation_id
                .as_deref()
                .map_or(Found::Missing, Found::Str),
            Root::Metadata => match self.rest.first() {
                None => Found::Other,
                Some(seg) => event
                    .metadata
                    .get(seg.key.as_str())
                    .map_or(Found::Missing, |v| Found::Str(v)),
            },
            Root::Payload => event.payload.find(&self.rest),
        }
    }

    /// Resolves the path against raw event JSON (the top-level object).
    pub(crate) fn find_json<'a>(&self, event: &'a Map<String, Value>) -> Found<'a> {
        let top = event.get(self.root.key());
        let found = Found::of_value(top.and_then(|v| descend(v, &self.rest)));
        // A built event cannot lack its string fields, only hold them empty: read both alike.
        let required_root = matches!(
            self.root,
            Root::EventId | Root::EventType | Root::SourceRegion | Root::Timestamp
        );
        if required_root && found == Found::Str("") {
            Found::Missing
        } else {
            found
        }
    }

    /// Applies `edit` to the string the path addresses in a built event, if it is one.
    /// Replaces the string the path addresses by `edit`'s answer; `edit` answers `None` to keep
    /// it (so an unchanged value costs no copy).
    pub(crate) fn edit_str(&self, event: &mut BaseEvent, edit: impl Fn(&str) -> Option<String>) {
        let target = match self.root {
            Root::EventId => Some(&mut event.event_id),
            Root::EventType => Some(&mut event.event_type),
            Root::SourceRegion => {
                if let Some(new) = edit(&event.source_region) {
                    event.source_region = new.into();
                }
                return;
            }
            Root::Timestamp => Some(&mut event.timestamp),
            Root::CorrelationId => event.correlation_id.as_mut(),
            Root::Metadata => self
                .rest
                .first()
                .and_then(|seg| event.metadata.get_mut(seg.key.as_str())),
            Root::Payload => return event.payload.edit_str(&self.rest, edit),
        };
        if let Some(s) = target {
            if let Some(new) = edit(s) {
                *s = new;
            }
        }
    }
}

/// Walks nested objects (and arrays, by numeric segment) below a value.
pub(crate) fn descend<'a>(mut value: &'a Value, rest: &[Segment]) -> Option<&'a Value> {
    for seg in rest {
        value = match value {
            Value::Object(map) => map.get(seg.key.as_str())?,
            Value::Array(items) => items.get(seg.index?)?,
            _ => return None,
        };
    }
    Some(value)
}

/// What a path found, reduced to what the checks distinguish.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Found<'a> {
    /// Absent (or an empty required string on a built event, which cannot be absent).
    Missing,
    /// Present as JSON `null`.
    Null,
    /// A string.
    Str(&'a str),
    /// A number.
    Number(f64),
    /// Anything else (bool, object, array).
    Other,
}

impl<'a> Found<'a> {
    fn of_str(s: &'a str) -> Found<'a> {
        if s.is_empty() {
            Found::Missing
        } else {
            Found::Str(s)
        }
    }

    /// A row column's value.
    pub(crate) fn of_cell(cell: Cell<'a>) -> Found<'a> {
        match cell {
            Cell::Null => Found::Null,
            Cell::Str(s) => Found::Str(s),
            Cell::Number(text) => text.parse().map_or(Found::Other, Found::Number),
            Cell::Bool(_) | Cell::Nested(_) => Found::Other,
        }
    }

    pub(crate) fn of_value(value: Option<&'a Value>) -> Found<'a> {
        match value {
            None => Found::Missing,
            Some(Value::Null) => Found::Null,
            Some(Value::String(s)) => Found::Str(s),
            Some(Value::Number(n)) => n.as_f64().map_or(Found::Other, Found::Number),
            Some(_) => Found::Other,
        }
    }

    /// Absent or null: a required check fails, the others do not apply.
    pub(crate) fn is_absent(&self) -> bool {
        matches!(self, Found::Missing | Found::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_that_cannot_match_are_refused() {
        assert_eq!(
            FieldPath::parse("customer.email"),
            Err(PathError::UnknownRoot)
        );
        assert_eq!(
            FieldPath::parse("payload..email"),
            Err(PathError::EmptySegment)
        );
        assert_eq!(FieldPath::parse("payload."), Err(PathError::EmptySegment));
        assert_eq!(FieldPath::parse("event_id.x"), Err(PathError::TooDeep));
        assert_eq!(FieldPath::parse("metadata.a.b"), Err(PathError::TooDeep));
        assert!(FieldPath::parse("metadata.trace").is_ok());
    }

    #[test]
    fn a_path_finds_the_same_value_in_both_shapes() {
        let raw = json!({
            "event_id": "e", "event_type": "t", "source_region": "r", "timestamp": "ts",
            "payload": {"items": [{"sku": "A1"}], "qty": 3, "gift": false, "note": null},
            "metadata": {"trace": "x"}
        });
        let event: BaseEvent = serde_json::from_value(raw.clone()).expect("valid literal");
        let Value::Object(map) = &raw else {
            unreachable!()
        };
        for (path, want) in [
            ("payload.items.0.sku", Found::Str("A1")),
            ("payload.qty", Found::Number(3.0)),
            ("payload.gift", Found::Other),
            ("payload.note", Found::Null),
            ("payload.items.1.sku", Found::Missing),
            ("payload.qty.x", Found::Missing),
            ("metadata.trace", Found::Str("x")),
            ("correlation_id", Found::Missing),
            ("event_type", Found::Str("t")),
        ] {
            let p = FieldPath::parse(path).expect("valid path");
            assert_eq!(p.find(&event), want, "{path}");
            assert_eq!(p.find_json(map), want, "{path} in JSON");
        }
    }
}
