//! [`Payload`]: an event's business data, either any JSON (events from EventBridge) or a CDC
//! change whose row images stay as their JSON text ([`RowImage`]) from decode to publish.
//!
//! The change form exists for speed: a change's rows are most of its bytes, and building them as
//! `serde_json` maps only to serialize them again would be most of the cost of the CDC path. Both forms
//! serialize to the same JSON shape, so consumers cannot tell them apart; a payload read back from
//! JSON is always the `Json` form.

use super::field::{descend, Found, Segment};
use super::{trim_in_place, trim_strings, trimmed};
use crate::cdc::{Cell, KeyColumn, RowImage};
use crate::claim_check::ClaimCheck;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The business data of an event.
#[derive(Debug, Clone)]
pub enum Payload {
    /// Any JSON value.
    Json(Value),
    /// A CDC change (boxed: the `Json` form is the small one).
    Change(Box<ChangePayload>),
}

/// A CDC change as event payload. Fields are declared in the order a `serde_json` map would
/// sort them, so the JSON is the same as a map's apart from the rows' column order (the source's).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangePayload {
    /// The row after the change, or `null`.
    pub after: Option<RowImage>,
    /// The row before the change, or `null`.
    pub before: Option<RowImage>,
    /// The change sequence.
    pub change_sequence: String,
    /// Where the row is when the event goes without it, too large for EventBridge: a claim
    /// check on the item (see [`claim_check`](crate::claim_check)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim_check: Option<Box<ClaimCheck>>,
    /// The key columns and their values, in key order; written as a JSON object whose members
    /// are sorted by name, as a `serde_json` map would write them (a repeated name keeps its
    /// last value).
    #[serde(serialize_with = "key_object")]
    pub key: Vec<KeyColumn>,
    /// The row images (`after`, `before`) left out to keep the event within EventBridge's
    /// limit; empty (and not written) for a whole event.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub omitted: Vec<&'static str>,
    /// `INSERT`, `UPDATE`, `DELETE` or `REFRESH`.
    pub operation: &'static str,
    /// `SCHEMA.TABLE`.
    pub table: String,
}

/// The key columns as a JSON object: sorted by name, a repeated name written once with its last
/// value, like the `serde_json::Map` the JSON form reads back.
fn key_object<S: Serializer>(key: &[KeyColumn], s: S) -> Result<S::Ok, S::Error> {
    let mut order: Vec<&KeyColumn> = key.iter().collect();
    // Stable: among equal names the last one stays last.
    order.sort_by(|a, b| a.name.cmp(&b.name));
    let unique = |i: &usize| {
        order
            .get(i + 1)
            .is_none_or(|next| next.name != order[*i].name)
    };
    let mut map = s.serialize_map(None)?;
    for i in (0..order.len()).filter(unique) {
        map.serialize_entry(&*order[i].name, &order[i].value)?;
    }
    map.end()
}

/// The value of key column `name` (its last occurrence).
fn key_value<'k>(key: &'k [KeyColumn], name: &str) -> Option<&'k Value> {
    key.iter()
        .rev()
        .find(|k| &*k.name == name)
        .map(|k| &k.value)
}

impl Default for Payload {
    fn default() -> Self {
        Payload::Json(Value::Null)
    }
}

impl From<Value> for Payload {
    fn from(value: Value) -> Self {
        Payload::Json(value)
    }
}

impl From<ChangePayload> for Payload {
    fn from(change: ChangePayload) -> Self {
        Payload::Change(Box::new(change))
    }
}

impl Payload {
    /// The payload as a JSON value (builds it for the change form).
    pub fn to_value(&self) -> Value {
        match self {
            Payload::Json(v) => v.clone(),
            Payload::Change(_) => serde_json::to_value(self).unwrap_or(Value::Null),
        }
    }

    /// The payload as a JSON value, moving the `Json` form.
    pub fn into_value(self) -> Value {
        match self {
            Payload::Json(v) => v,
            change => change.to_value(),
        }
    }

    /// What `rest` (the path below `payload`) addresses.
    pub(crate) fn find(&self, rest: &[Segment]) -> Found<'_> {
        let change = match self {
            Payload::Json(v) => return Found::of_value(descend(v, rest)),
            Payload::Change(change) => change,
        };
        let Some((first, below)) = rest.split_first() else {
            return Found::Other;
        };
        match first.key.as_str() {
            "table" if below.is_empty() => Found::Str(&change.table),
            "operation" if below.is_empty() => Found::Str(change.operation),
            "change_sequence" if below.is_empty() => Found::Str(&change.change_sequence),
            "key" if below.is_empty() => Found::Other,
            "key" => {
                let (name, deeper) = (&below[0], &below[1..]);
                Found::of_value(key_value(&change.key, &name.key).and_then(|v| descend(v, deeper)))
            }
            "after" | "before" => {
                let row = if first.key == "after" {
                    &change.after
                } else {
                    &change.before
                };
                match (row, below.split_first()) {
                    (None, None) => Found::Null,
                    (None, Some(_)) => Found::Missing,
                    (Some(_), None) => Found::Other,
                    (Some(row), Some((column, deeper))) => match row.get(&column.key) {
                        None => Found::Missing,
                        Some(cell) if deeper.is_empty() => Found::of_cell(cell),
                        Some(Cell::Nested(v)) => Found::of_value(descend(v, deeper)),
                        Some(_) => Found::Missing,
                    },
                }
            }
            _ => Found::Missing,
        }
    }

    /// Replaces the string `rest` addresses, if there is one, by `edit`'s answer (`None` keeps
    /// it).
    pub(crate) fn edit_str(&mut self, rest: &[Segment], edit: impl Fn(&str) -> Option<String>) {
        let replace = |s: &mut String| {
            if let Some(new) = edit(s) {
                *s = new;
            }
        };
        let change = match self {
            Payload::Json(v) => {
                if let Some(s) = descend_str_mut(v, rest) {
                    replace(s);
                }
                return;
            }
            Payload::Change(change) => change,
        };
        let Some((first, below)) = rest.split_first() else {
            return;
        };
        match first.key.as_str() {
            "table" if below.is_empty() => replace(&mut change.table),
            "change_sequence" if below.is_empty() => replace(&mut change.change_sequence),
            "key" => {
                if let Some((name, deeper)) = below.split_first() {
                    if let Some(s) = change
                        .key
                        .iter_mut()
                        .rev()
                        .find(|k| *k.name == *name.key)
                        .and_then(|k| descend_str_mut(&mut k.value, deeper))
                    {
                        replace(s);
                    }
                }
            }
            "after" | "before" => {
                let row = if first.key == "after" {
                    &mut change.after
                } else {
                    &mut change.before
                };
                let (Some(image), Some((column, deeper))) = (row.as_mut(), below.split_first())
                else {
                    return;
                };
                if deeper.is_empty() {
                    let rewritten = image.rewrite_column(&column.key, &edit);
                    if let Some(new) = rewritten {
                        *image = new;
                    }
                } else {
                    // Below a nested column (rare): edit a map of the row and rebuild it.
                    let mut map = Value::Object(image.to_map());
                    if let Some(s) = descend_str_mut(&mut map, below) {
                        replace(s);
                        if let Value::Object(map) = &map {
                            *image = RowImage::from_map(map);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// Trims every string of the payload, with the transformer's own trimming.
    pub(crate) fn trim_strings(&mut self) {
        let change = match self {
            Payload::Json(v) => return trim_strings(v),
            Payload::Change(change) => change,
        };
        trim_in_place(&mut change.table);
        trim_in_place(&mut change.change_sequence);
        change
            .key
            .iter_mut()
            .for_each(|k| trim_strings(&mut k.value));
        for row in [&mut change.after, &mut change.before]
            .into_iter()
            .flatten()
            .filter(|row| row.has_nested() || row.may_have_padded_strings())
        {
            let rebuilt = if row.has_nested() {
                let before = Value::Object(row.to_map());
                let mut trimmed = before.clone();
                trim_strings(&mut trimmed);
                match trimmed {
                    Value::Object(map) if before.as_object() != Some(&map) => {
                        Some(RowImage::from_map(&map))
                    }
                    _ => None,
                }
            } else {
                row.rewrite_strings(|_, value| {
                    let t = trimmed(value);
                    (t.len() != value.len()).then(|| t.to_owned())
                })
            };
            if let Some(new) = rebuilt {
                *row = new;
            }
        }
    }
}

/// The string below `value` at `rest`, for editing.
fn descend_str_mut<'a>(mut value: &'a mut Value, rest: &[Segment]) -> Option<&'a mut String> {
    for seg in rest {
        value = match value {
            Value::Object(map) => map.get_mut(&seg.key)?,
            Value::Array(items) => items.get_mut(seg.index?)?,
            _ => return None,
        };
    }
    match value {
        Value::String(s) => Some(s),
        _ => None,
    }
}

/// Equal when their JSON is equal, whichever form each is in.
impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Payload::Json(a), Payload::Json(b)) => a == b,
            (Payload::Change(a), Payload::Change(b)) => a == b,
            _ => self.to_value() == other.to_value(),
        }
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Payload::Json(v) => v.serialize(s),
            Payload::Change(change) => change.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(Payload::Json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::{BaseEvent, Outcome, Transformer};
    use eda_config::TransformerConfig;
    use serde_json::json;

    /// The same change in both forms: the row form as the CDC path builds it, and the JSON form
    /// a consumer would read back.
    fn both() -> (Payload, Payload) {
        let after = RowImage::from_map(
            &json!({"ID": " 7 ", "EMAIL": " Ann@Example.COM", "N": 3, "TAGS": {"a": [" x "]}})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        let change = Payload::from(ChangePayload {
            after: Some(after),
            before: None,
            change_sequence: "1".into(),
            claim_check: None,
            key: vec![KeyColumn {
                name: "ID".into(),
                value: json!(" 7 "),
            }],
            omitted: Vec::new(),
            operation: "UPDATE",
            table: "S.T".into(),
        });
        let json = Payload::Json(change.to_value());
        (change, json)
    }

    #[test]
    fn key_columns_are_written_as_a_sorted_object_keeping_the_last_of_a_name() {
        let column = |name: &str, value: Value| KeyColumn {
            name: name.into(),
            value,
        };
        let change = Payload::from(ChangePayload {
            after: None,
            before: None,
            change_sequence: "1".into(),
            claim_check: None,
            key: vec![
                column("REGION", json!("eu")),
                column("ID", json!(1)),
                column("REGION", json!("us")),
            ],
            omitted: Vec::new(),
            operation: "UPDATE",
            table: "S.T".into(),
        });
        let text = serde_json::to_string(&change).expect("serializes");
        assert!(text.contains(r#""key":{"ID":1,"REGION":"us"}"#), "{text}");
        // The JSON form read back writes the same bytes.
        let json = Payload::Json(serde_json::from_str(&text).expect("JSON"));
        assert_eq!(serde_json::to_string(&json).ok(), Some(text));
        // And a path into the key finds what the object holds.
        let segment = |key: &str| Segment {
            key: key.into(),
            index: None,
        };
        let found = change.find(&[segment("key"), segment("REGION")]);
        assert_eq!(found, Found::Str("us"));
    }

    #[test]
    fn both_forms_serialize_alike_and_compare_equal() {
        let (change, json) = both();
        assert_eq!(change, json);
        assert_eq!(
            serde_json::to_value(&change).ok(),
            serde_json::to_value(&json).ok()
        );
        assert_eq!(json.to_value()["before"], Value::Null);
    }

    #[test]
    fn the_transformer_gives_the_same_result_for_both_forms() {
        let config = TransformerConfig {
            email_fields: vec!["payload.after.EMAIL".into()],
            rules: vec![eda_config::FieldRule {
                field: "payload.after.N".into(),
                max: Some(2.0),
                ..Default::default()
            }],
            ..TransformerConfig::default()
        };
        let t = Transformer::new(&config, "r").expect("valid config");
        let now = chrono::Utc::now();
        let (change, json) = both();
        let event = |payload| BaseEvent {
            event_id: uuid::Uuid::new_v4().to_string(),
            event_type: "S.T.UPDATE".into(),
            source_region: "r".into(),
            timestamp: now.to_rfc3339(),
            payload,
            ..BaseEvent::default()
        };
        let (a, b) = (event(change), event(json));
        let mut b = b;
        b.event_id = a.event_id.clone();
        let (out_a, out_b) = (t.transform(a.clone(), now), t.transform(b.clone(), now));
        assert_eq!(out_a, out_b);
        // The rule fails (N = 3 > 2): fix it in both and compare the normalized payloads.
        assert!(!out_a.is_valid());
        let fixed = |mut e: BaseEvent| {
            let mut v = e.payload.to_value();
            v["after"]["N"] = json!(1);
            e.payload = match e.payload {
                Payload::Change(mut c) => {
                    if let Some(row) = c.after.as_mut() {
                        row.set("N", &json!(1));
                    }
                    Payload::Change(c)
                }
                Payload::Json(_) => Payload::Json(v),
            };
            e
        };
        let (Outcome::Transformed(x), Outcome::Transformed(y)) =
            (t.transform(fixed(a), now), t.transform(fixed(b), now))
        else {
            panic!("both valid once fixed");
        };
        assert_eq!(x.payload, y.payload);
        let v = x.payload.to_value();
        assert_eq!(v["after"]["EMAIL"], "ann@example.com");
        assert_eq!(v["after"]["ID"], "7");
        assert_eq!(v["after"]["TAGS"]["a"][0], "x");
        assert_eq!(v["key"]["ID"], "7");
    }
}
