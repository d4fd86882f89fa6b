//! A DynamoDB item as the sink keeps it: the item's JSON text as the request carried it, an index
//! of its top-level attributes into that text, and its size as DynamoDB counts it.
//!
//! Keeping the text instead of a tree of `serde_json::Value`s makes storing an item two copies
//! and an index (a tree cost some seventy allocations for a 1 KB item, and as many frees when it
//! was replaced), answers that return an item (`ReturnValues`, the stored item of a refused
//! condition) a copy of its text, and the sequence guard a parse of the one attribute it reads.
//! Operations that need the whole item as a tree (`GetItem`, `Query`, `Scan`, transactions)
//! parse it again with [`Item::to_map`]: they are not on a benchmark's hot path.

use super::condition::Attributes;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// One stored item.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The item as a JSON object of DynamoDB values (`{"pk":{"S":"k"},...}`).
    text: Box<str>,
    /// The attribute names, decoded, one after another (`attrs` points into it).
    names: Box<str>,
    /// Where each top-level attribute's name (in `names`) and value (in `text`) are.
    attrs: Box<[Span]>,
    /// Its size as DynamoDB counts it (see [`super::dynamodb::item_size`]).
    size: usize,
}

/// An attribute's name in [`Item::names`] and its value in [`Item::text`], as byte ranges.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    name: (u32, u32),
    value: (u32, u32),
}

impl Item {
    /// The item `map` (an item the general path read into a tree).
    pub fn from_map(map: &Map<String, Value>) -> Self {
        let text = serde_json::to_string(map).unwrap_or_else(|_| "{}".into());
        // The tree's own count, which also sizes values of no DynamoDB type.
        let mut de = serde_json::Deserializer::from_str(&text);
        let mut item = de
            .deserialize_map(ItemVisitor { sized: false })
            .expect("a serialized map reads back as an item");
        item.size = super::dynamodb::item_size(map);
        item
    }

    /// Reads an item from its JSON text; the error says why it is not an item the sink sizes
    /// (a value that is not a DynamoDB value of one type, an attribute named twice).
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        let item = <Item as serde::Deserialize>::deserialize(&mut de)?;
        de.end()?;
        Ok(item)
    }

    /// The item's JSON text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Its size as DynamoDB counts it (attribute names plus values).
    pub fn size(&self) -> usize {
        self.size
    }

    /// The JSON text of attribute `name`'s value.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|span| &self.names[span.name.0 as usize..span.name.1 as usize] == name)
            .map(|span| &self.text[span.value.0 as usize..span.value.1 as usize])
    }

    /// Attribute `name`'s value.
    pub fn get(&self, name: &str) -> Option<Value> {
        serde_json::from_str(self.raw(name)?).ok()
    }

    /// The whole item as a tree, for answers that return or filter it.
    pub fn to_map(&self) -> Map<String, Value> {
        serde_json::from_str(&self.text).unwrap_or_default()
    }

    /// The item of `attributes` (names and DynamoDB values, no name twice), written as text and
    /// read back for its index and size; the error says why it is not an item (a value of no
    /// DynamoDB type).
    pub fn from_pairs<V: JsonText>(attributes: &[(String, V)]) -> Result<Self, serde_json::Error> {
        let mut text = String::with_capacity(attributes.len() * 48);
        text.push('{');
        for (i, (name, value)) in attributes.iter().enumerate() {
            member(&mut text, i > 0, name, &value.json_text());
        }
        text.push('}');
        Self::parse(&text)
    }

    /// The item with each attribute of `set` taking its value (added where the item has none),
    /// the rest kept as they are: a PartiQL `UPDATE … SET`. Built as text, the kept attributes
    /// copied as they lie, without a tree of the item; the error says why it is not an item.
    pub fn with<V: JsonText>(&self, set: &[(String, V)]) -> Result<Self, serde_json::Error> {
        let mut text = String::with_capacity(self.text.len() + 64);
        text.push('{');
        let mut first = true;
        for span in self.attrs.iter() {
            let name = &self.names[span.name.0 as usize..span.name.1 as usize];
            if set.iter().all(|(n, _)| n != name) {
                let value = &self.text[span.value.0 as usize..span.value.1 as usize];
                member(&mut text, !std::mem::take(&mut first), name, value);
            }
        }
        for (name, value) in set {
            member(
                &mut text,
                !std::mem::take(&mut first),
                name,
                &value.json_text(),
            );
        }
        text.push('}');
        Self::parse(&text)
    }
}

/// A DynamoDB value as JSON text: a tree's serialization, or the request's own text.
pub trait JsonText {
    /// The value's JSON.
    fn json_text(&self) -> Cow<'_, str>;
}

impl JsonText for Value {
    fn json_text(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_string())
    }
}

impl JsonText for &RawValue {
    fn json_text(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.get())
    }
}

/// Appends `"name":value` (after a comma when `comma`) to an object's text.
fn member(text: &mut String, comma: bool, name: &str, value: &str) {
    if comma {
        text.push(',');
    }
    text.push_str(&Value::from(name).to_string());
    text.push(':');
    text.push_str(value);
}

impl Attributes for Item {
    fn attribute(&self, name: &str) -> Option<Cow<'_, Value>> {
        self.get(name).map(Cow::Owned)
    }

    fn has(&self, name: &str) -> bool {
        self.raw(name).is_some()
    }
}

impl<'de> serde::Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ItemVisitor { sized: true })
    }
}

/// Reads an item; `sized`: sizing its values too (refusing what is no DynamoDB value).
struct ItemVisitor {
    sized: bool,
}

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = Item;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an item: attribute names to DynamoDB values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
        let mut text = String::with_capacity(1024);
        let mut names = String::with_capacity(256);
        let mut attrs: Vec<Span> = Vec::with_capacity(24);
        let mut size = 0;
        text.push('{');
        loop {
            let name_start = names.len();
            if map.next_key_seed(AppendName(&mut names))?.is_none() {
                break;
            }
            let name = &names[name_start..];
            if attrs
                .iter()
                .any(|span| &names[span.name.0 as usize..span.name.1 as usize] == name)
            {
                return Err(de::Error::custom(format!("attribute {name} given twice")));
            }
            let value: &'de RawValue = map.next_value()?;
            if self.sized {
                size += name.len() + value_size(value.get()).map_err(de::Error::custom)?;
            }
            if !attrs.is_empty() {
                text.push(',');
            }
            push_json_string(&mut text, name);
            text.push(':');
            let value_start = text.len();
            text.push_str(value.get());
            attrs.push(Span {
                name: (offset(name_start)?, offset(names.len())?),
                value: (offset(value_start)?, offset(text.len())?),
            });
        }
        text.push('}');
        Ok(Item {
            text: text.into_boxed_str(),
            names: names.into_boxed_str(),
            attrs: attrs.into_boxed_slice(),
            size,
        })
    }
}

fn offset<E: de::Error>(at: usize) -> Result<u32, E> {
    u32::try_from(at).map_err(|_| E::custom("an item over 4 GB"))
}

/// `text` as a JSON string.
fn push_json_string(out: &mut String, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(text).unwrap_or_default());
    }
}

/// Appends an attribute name, decoded, to the buffer (no allocation of its own).
struct AppendName<'b>(&'b mut String);

impl<'de> DeserializeSeed<'de> for AppendName<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for AppendName<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an attribute name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<(), E> {
        self.0.push_str(name);
        Ok(())
    }
}

/// The size of one DynamoDB value (its JSON text) as DynamoDB counts it, read without building
/// it: the same figures as [`super::dynamodb::item_size`] gives for a value of one type.
fn value_size(text: &str) -> Result<usize, serde_json::Error> {
    ValueSize.deserialize(&mut serde_json::Deserializer::from_str(text))
}

/// Sizes a DynamoDB value (`{"S": "..."}`).
struct ValueSize;

impl<'de> DeserializeSeed<'de> for ValueSize {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ValueSize {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a DynamoDB value of one type")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let Some(kind) = map.next_key_seed(KindSeed)? else {
            return Err(de::Error::custom("a DynamoDB value without its type"));
        };
        let size = match kind {
            Kind::S => map.next_value_seed(StrLen)?,
            // Base64 on the wire: three bytes per four characters.
            Kind::B => map.next_value_seed(StrLen)? * 3 / 4,
            // Two digits per byte, plus one.
            Kind::N => map.next_value_seed(StrLen)?.div_ceil(2) + 1,
            Kind::M => 3 + map.next_value_seed(MapSize)?,
            Kind::L => 3 + map.next_value_seed(ListSize)?,
            Kind::Set => map.next_value_seed(SetSize)?,
            Kind::Other => {
                map.next_value::<IgnoredAny>()?;
                1
            }
        };
        if map.next_key::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("a DynamoDB value of more than one type"));
        }
        Ok(size)
    }
}

/// The type of a DynamoDB value, as far as its size goes.
enum Kind {
    S,
    B,
    N,
    M,
    L,
    /// `SS`, `NS`, `BS`.
    Set,
    /// `BOOL`, `NULL`, anything else: one byte.
    Other,
}

struct KindSeed;

impl<'de> DeserializeSeed<'de> for KindSeed {
    type Value = Kind;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Kind, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KindSeed {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a DynamoDB type")
    }

    fn visit_str<E: de::Error>(self, kind: &str) -> Result<Kind, E> {
        Ok(match kind {
            "S" => Kind::S,
            "B" => Kind::B,
            "N" => Kind::N,
            "M" => Kind::M,
            "L" => Kind::L,
            "SS" | "NS" | "BS" => Kind::Set,
            _ => Kind::Other,
        })
    }
}

/// The length of a string, decoded.
struct StrLen;

impl<'de> DeserializeSeed<'de> for StrLen {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for StrLen {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<usize, E> {
        Ok(text.len())
    }
}

/// An `M` value's payload: names and values, each plus one.
struct MapSize;

impl<'de> DeserializeSeed<'de> for MapSize {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MapSize {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of DynamoDB values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let mut size = 0;
        while let Some(name) = map.next_key_seed(StrLen)? {
            size += name + map.next_value_seed(ValueSize)? + 1;
        }
        Ok(size)
    }
}

/// An `L` value's payload: values, each plus one.
struct ListSize;

impl<'de> DeserializeSeed<'de> for ListSize {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ListSize {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of DynamoDB values")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut size = 0;
        while let Some(value) = seq.next_element_seed(ValueSize)? {
            size += value + 1;
        }
        Ok(size)
    }
}

/// A set's payload: its strings' lengths.
struct SetSize;

impl<'de> DeserializeSeed<'de> for SetSize {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for SetSize {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a set of strings")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut size = 0;
        while let Some(len) = seq.next_element_seed(StrLen)? {
            size += len;
        }
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_update_replaces_and_adds_attributes_and_keeps_the_rest() {
        let old = Item::parse(r#"{"pk":{"S":"k"},"NAME":{"S":"old"},"_seq":{"S":"1"}}"#).unwrap();
        let set = vec![
            ("NAME".to_string(), json!({"S": "new"})),
            ("CITY".to_string(), json!({"S": "Oslo"})),
        ];
        let new = old.with(&set).expect("an item");
        let mut want = old.to_map();
        want.extend(set.iter().cloned());
        assert_eq!(new.to_map(), want);
        assert_eq!(new.size(), super::super::dynamodb::item_size(&want));
        assert_eq!(new.raw("_seq"), Some(r#"{"S":"1"}"#));
        // The same from the request's own text, and a whole item from its attributes.
        let raw: Vec<Box<RawValue>> = set
            .iter()
            .map(|(_, v)| RawValue::from_string(v.to_string()).unwrap())
            .collect();
        let raw_set: Vec<(String, &RawValue)> = set
            .iter()
            .zip(&raw)
            .map(|((name, _), value)| (name.clone(), &**value))
            .collect();
        assert_eq!(old.with(&raw_set).expect("an item"), new);
        let pairs: Vec<(String, Value)> = want.clone().into_iter().collect();
        assert_eq!(Item::from_pairs(&pairs).expect("an item").to_map(), want);
        assert!(old
            .with(&[("X".to_string(), json!("not a DynamoDB value"))])
            .is_err());
    }

    #[test]
    fn an_item_read_from_text_has_the_trees_size_and_attributes() {
        let tree = json!({
            "pk": {"S": "SALES.CUSTOMERS#1"},
            "_seq": {"S": "0002"},
            "AMOUNT": {"N": "-12345.6789"},
            "NAME": {"S": "O'Brien \"Bob\" \u{e9}"},
            "BLOB": {"B": "AAECAw=="},
            "ACTIVE": {"BOOL": true},
            "GONE": {"NULL": true},
            "TAGS": {"SS": ["a", "bc"]},
            "NESTED": {"M": {"a": {"L": [{"N": "1"}, {"S": "x"}]}}},
            "we\"ird": {"S": "name with a quote"}
        });
        let map = tree.as_object().unwrap();
        let text = serde_json::to_string(map).unwrap();
        let item = Item::parse(&text).unwrap();
        assert_eq!(item.size(), super::super::dynamodb::item_size(map));
        assert_eq!(&item.to_map(), map);
        assert_eq!(
            item.get("NAME"),
            Some(json!({"S": "O'Brien \"Bob\" \u{e9}"}))
        );
        assert_eq!(item.get("we\"ird"), Some(json!({"S": "name with a quote"})));
        assert!(item.has("GONE") && !item.has("ABSENT"));
        assert_eq!(Item::from_map(map), item);
    }

    #[test]
    fn what_is_no_item_of_one_typed_value_per_attribute_is_refused() {
        for text in [
            r#"{"a": {"S": "x"}, "a": {"S": "y"}}"#,
            r#"{"a": {"S": "x", "N": "1"}}"#,
            r#"{"a": {"S": 1}}"#,
            r#"{"a": {}}"#,
            r#"["a"]"#,
        ] {
            assert!(Item::parse(text).is_err(), "{text}");
        }
    }
}
