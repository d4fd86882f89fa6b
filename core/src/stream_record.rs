//! `EventRecord`: a DynamoDB Streams record as Lambda delivers it, and its images as plain JSON.
//!
//! The `stream-processor` shim receives `{"Records":[...]}` batches whose items are in DynamoDB's
//! typed JSON (`{"S":"x"}`, `{"N":"1"}`, `{"M":{..}}`...). This is our own serde model of that
//! shape, so the core does not depend on an SDK or event crate, plus the conversion of an image
//! to the plain JSON the rest of eda (EventBridge details, the transformer) works with, and back.
//!
//! Plain JSON loses some distinctions, so the conversion is exact in one direction only:
//! plain → typed → plain gives back the same JSON. Typed → plain → typed keeps `S`, `BOOL`,
//! `NULL`, `M`, `L` and numbers that fit a JSON number exactly; binary becomes a base64 string,
//! sets become lists, and a number that does not fit (more digits than an `f64` holds, or a
//! spelling like `1.50`) becomes a string, so no digit is ever lost.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

/// A batch as Lambda hands it to the `stream-processor` function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DynamoDbStreamEvent {
    /// The records, in stream order per shard.
    #[serde(rename = "Records")]
    pub records: Vec<EventRecord>,
}

/// One DynamoDB Streams record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Unique id of the record; the de-duplication key downstream.
    #[serde(rename = "eventID")]
    pub event_id: String,
    /// What happened to the item.
    #[serde(rename = "eventName")]
    pub event_name: StreamEventName,
    /// Record format version (`1.0`, `1.1`).
    #[serde(
        rename = "eventVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub event_version: Option<String>,
    /// Always `aws:dynamodb` for these records.
    #[serde(rename = "eventSource", default)]
    pub event_source: String,
    /// Region of the table, which tells the router where the change happened.
    #[serde(rename = "awsRegion")]
    pub aws_region: String,
    /// ARN of the stream (the table name is inside it).
    #[serde(
        rename = "eventSourceARN",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub event_source_arn: Option<String>,
    /// Who made the change; set to the DynamoDB service for TTL deletions.
    #[serde(
        rename = "userIdentity",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub user_identity: Option<UserIdentity>,
    /// The change itself.
    pub dynamodb: StreamRecord,
}

impl EventRecord {
    /// Whether this is a REMOVE done by DynamoDB's TTL, which a replica may want to skip (the
    /// other region's TTL removes its copy on its own).
    pub fn is_ttl_expiry(&self) -> bool {
        self.event_name == StreamEventName::Remove
            && self
                .user_identity
                .as_ref()
                .is_some_and(|u| u.kind == "Service" && u.principal_id == "dynamodb.amazonaws.com")
    }

    /// The table name, from the stream ARN (`...:table/NAME/stream/...`).
    pub fn table_name(&self) -> Option<&str> {
        let arn = self.event_source_arn.as_deref()?;
        let after = arn.split_once(":table/")?.1;
        Some(after.split_once('/').map_or(after, |(name, _)| name))
    }
}

/// `eventName`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum StreamEventName {
    /// A new item.
    Insert,
    /// A changed item.
    Modify,
    /// A deleted item.
    Remove,
}

/// `userIdentity`, present on TTL deletions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserIdentity {
    /// `Service` for TTL.
    #[serde(rename = "type")]
    pub kind: String,
    /// `dynamodb.amazonaws.com` for TTL.
    #[serde(rename = "principalId")]
    pub principal_id: String,
}

/// `StreamViewType`: which images the stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamViewType {
    /// Keys only.
    KeysOnly,
    /// The item after the change.
    NewImage,
    /// The item before the change.
    OldImage,
    /// Both.
    NewAndOldImages,
}

/// An item image: attribute name to typed value (ordered, so output is stable).
pub type Image = BTreeMap<String, AttributeValue>;

/// The `dynamodb` member of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamRecord {
    /// When the change was made, in epoch seconds (fractional in newer records).
    #[serde(
        rename = "ApproximateCreationDateTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub approximate_creation_date_time: Option<f64>,
    /// The item's key attributes.
    #[serde(rename = "Keys", default)]
    pub keys: Image,
    /// The item after the change (INSERT, MODIFY) when the view includes it.
    #[serde(rename = "NewImage", default, skip_serializing_if = "Option::is_none")]
    pub new_image: Option<Image>,
    /// The item before the change (MODIFY, REMOVE) when the view includes it.
    #[serde(rename = "OldImage", default, skip_serializing_if = "Option::is_none")]
    pub old_image: Option<Image>,
    /// Position in the shard; the item identifier of a partial batch failure.
    #[serde(rename = "SequenceNumber")]
    pub sequence_number: String,
    /// Size of the record, in bytes.
    #[serde(rename = "SizeBytes", default)]
    pub size_bytes: u64,
    /// Which images are present.
    #[serde(
        rename = "StreamViewType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stream_view_type: Option<StreamViewType>,
}

/// A DynamoDB attribute value in typed JSON: exactly one of the type keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AttributeValue {
    /// `S`: a string.
    #[serde(rename = "S")]
    S(String),
    /// `N`: a number, kept as DynamoDB's decimal text (up to 38 digits).
    #[serde(rename = "N")]
    N(String),
    /// `B`: binary, base64 on the wire.
    #[serde(rename = "B", with = "base64_bytes")]
    B(Vec<u8>),
    /// `SS`: a string set.
    #[serde(rename = "SS")]
    StringSet(Vec<String>),
    /// `NS`: a number set.
    #[serde(rename = "NS")]
    NumberSet(Vec<String>),
    /// `BS`: a binary set.
    #[serde(rename = "BS", with = "base64_list")]
    BinarySet(Vec<Vec<u8>>),
    /// `M`: a map.
    #[serde(rename = "M")]
    Map(BTreeMap<String, AttributeValue>),
    /// `L`: a list.
    #[serde(rename = "L")]
    List(Vec<AttributeValue>),
    /// `NULL`: always `true` in practice.
    #[serde(rename = "NULL")]
    Null(bool),
    /// `BOOL`: a boolean.
    #[serde(rename = "BOOL")]
    Bool(bool),
}

impl AttributeValue {
    /// The value as plain JSON (see the module docs for what is lossy).
    pub fn to_plain(&self) -> Value {
        match self {
            Self::S(s) => Value::String(s.clone()),
            Self::N(n) => number_to_plain(n),
            Self::B(b) => Value::String(BASE64.encode(b)),
            Self::StringSet(items) => items.iter().cloned().map(Value::String).collect(),
            Self::NumberSet(items) => items.iter().map(|n| number_to_plain(n)).collect(),
            Self::BinarySet(items) => items
                .iter()
                .map(|b| Value::String(BASE64.encode(b)))
                .collect(),
            Self::Map(map) => Value::Object(image_to_plain(map)),
            Self::List(items) => items.iter().map(Self::to_plain).collect(),
            Self::Null(_) => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
        }
    }

    /// The typed form of a plain JSON value: strings `S`, numbers `N`, objects `M`, arrays `L`.
    pub fn from_plain(value: &Value) -> Self {
        match value {
            Value::Null => Self::Null(true),
            Value::Bool(b) => Self::Bool(*b),
            Value::Number(n) => Self::N(n.to_string()),
            Value::String(s) => Self::S(s.clone()),
            Value::Array(items) => Self::List(items.iter().map(Self::from_plain).collect()),
            Value::Object(map) => Self::Map(plain_to_image(map)),
        }
    }
}

/// An image as a plain JSON object.
pub fn image_to_plain(image: &Image) -> Map<String, Value> {
    image
        .iter()
        .map(|(k, v)| (k.clone(), v.to_plain()))
        .collect()
}

/// A plain JSON object as an image.
pub fn plain_to_image(object: &Map<String, Value>) -> Image {
    object
        .iter()
        .map(|(k, v)| (k.clone(), AttributeValue::from_plain(v)))
        .collect()
}

/// A DynamoDB number as a JSON number when that loses nothing, else as its text.
fn number_to_plain(text: &str) -> Value {
    if let Ok(i) = text.parse::<i64>() {
        return Value::Number(i.into());
    }
    if let Ok(u) = text.parse::<u64>() {
        return Value::Number(u.into());
    }
    // A decimal is kept as a number only if the f64 prints back as the same text: then nothing
    // was rounded, and the typed form comes back identical.
    if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
        if n.to_string() == text {
            return Value::Number(n);
        }
    }
    Value::String(text.to_owned())
}

/// Serde for `B`: standard base64 on the wire.
mod base64_bytes {
    use super::BASE64;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        BASE64.decode(text).map_err(serde::de::Error::custom)
    }
}

/// Serde for `BS`: a list of standard base64 strings.
mod base64_list {
    use super::BASE64;
    use base64::Engine as _;
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(items: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(items.len()))?;
        for item in items {
            seq.serialize_element(&BASE64.encode(item))?;
        }
        seq.end()
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(d)?
            .into_iter()
            .map(|t| BASE64.decode(t).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const LAMBDA_SAMPLE: &str = include_str!("../tests/fixtures/stream_lambda_sample.json");
    const ALL_TYPES: &str = include_str!("../tests/fixtures/stream_all_types.json");

    #[test]
    fn parses_the_sample_event_from_the_lambda_docs() {
        let event: DynamoDbStreamEvent = serde_json::from_str(LAMBDA_SAMPLE).unwrap();
        let names: Vec<_> = event.records.iter().map(|r| r.event_name).collect();
        assert_eq!(
            names,
            [
                StreamEventName::Insert,
                StreamEventName::Modify,
                StreamEventName::Remove
            ]
        );
        let modify = &event.records[1];
        assert_eq!(modify.event_source, "aws:dynamodb");
        assert_eq!(modify.aws_region, "us-west-2");
        assert_eq!(modify.table_name(), Some("ExampleTableWithStream"));
        assert_eq!(modify.dynamodb.sequence_number, "222");
        assert_eq!(
            modify.dynamodb.stream_view_type,
            Some(StreamViewType::NewAndOldImages)
        );
        assert_eq!(
            Value::Object(image_to_plain(&modify.dynamodb.keys)),
            json!({"Id": 101})
        );
        assert_eq!(
            Value::Object(image_to_plain(modify.dynamodb.new_image.as_ref().unwrap())),
            json!({"Id": 101, "Message": "This item has changed"})
        );
        assert!(event.records[2].dynamodb.new_image.is_none());
        assert!(!event.records[2].is_ttl_expiry());
    }

    #[test]
    fn every_attribute_type_converts_to_plain_json() {
        let event: DynamoDbStreamEvent = serde_json::from_str(ALL_TYPES).unwrap();
        let record = &event.records[0];
        assert!(record.is_ttl_expiry());
        assert_eq!(record.table_name(), Some("eda-orders"));
        assert_eq!(
            record.dynamodb.approximate_creation_date_time,
            Some(1_714_564_800.5)
        );
        let old = record.dynamodb.old_image.as_ref().unwrap();
        assert_eq!(old["blob"], AttributeValue::B(vec![0, 1, 2, 255]));
        assert_eq!(
            Value::Object(image_to_plain(old)),
            json!({
                "pk": "ORDERS#42",
                "sk": 7,
                "total": 129.95,
                "big": "123456789012345678901234567890",
                "scaled": "1.50",
                "paid": true,
                "note": null,
                "blob": "AAEC/w==",
                "tags": ["gift", "express"],
                "sizes": [1, 2.5],
                "thumbs": ["AQ==", "Ag=="],
                "lines": [{"sku": "SKU-1001", "qty": 2}, -3],
                "address": {"city": "Seattle", "zip": "98101"}
            })
        );
        // The typed wire form round-trips exactly.
        let again: DynamoDbStreamEvent =
            serde_json::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
        assert_eq!(again, event);
    }

    #[test]
    fn malformed_attribute_values_are_rejected() {
        for bad in [
            r#"{"S": 1}"#,
            r#"{"X": "1"}"#,
            r#"{"S": "a", "N": "1"}"#,
            r#"{"B": "not base64!"}"#,
            r#"{}"#,
        ] {
            assert!(
                serde_json::from_str::<AttributeValue>(bad).is_err(),
                "{bad}"
            );
        }
    }

    fn lossless_typed() -> impl Strategy<Value = AttributeValue> {
        let leaf = prop_oneof![
            ".{0,20}".prop_map(AttributeValue::S),
            any::<i64>().prop_map(|i| AttributeValue::N(i.to_string())),
            any::<bool>().prop_map(AttributeValue::Bool),
            Just(AttributeValue::Null(true)),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(AttributeValue::List),
                proptest::collection::btree_map(".{0,8}", inner, 0..8)
                    .prop_map(AttributeValue::Map),
            ]
        })
    }

    proptest! {
        #[test]
        fn plain_to_typed_and_back_is_exact(value in crate::test_json::any_json()) {
            let typed = AttributeValue::from_plain(&value);
            // Through the wire form too, as a stream record would carry it.
            let wire = serde_json::to_string(&typed).unwrap();
            let typed: AttributeValue = serde_json::from_str(&wire).unwrap();
            prop_assert_eq!(typed.to_plain(), value);
        }

        #[test]
        fn typed_to_plain_and_back_is_exact_for_lossless_types(value in lossless_typed()) {
            prop_assert_eq!(AttributeValue::from_plain(&value.to_plain()), value);
        }

        #[test]
        fn numbers_never_lose_digits(text in "-?[0-9]{1,40}(\\.[0-9]{1,10})?") {
            match number_to_plain(&text) {
                Value::String(s) => prop_assert_eq!(s, text),
                Value::Number(n) => {
                    // A number only when it is the same value: compare by re-parsing both.
                    let back = n.to_string();
                    prop_assert!(
                        back == text
                            || back.parse::<i128>().ok() == text.parse::<i128>().ok()
                    );
                }
                other => prop_assert!(false, "{other:?}"),
            }
        }
    }
}
