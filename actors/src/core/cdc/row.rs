//! [`RowImage`]: a row (before or after image) kept as the JSON object text it arrived in, with an
//! index of its columns.
//!
//! A change's images are most of its bytes, and most of their columns are only carried through:
//! written to DynamoDB and published as they are. Building a `serde_json::Map` per image cost an
//! allocation per column name and value and a B-tree insert per column, which was most of the
//! decode time of a Qlik message. A `RowImage` instead owns one copy of the object text and a
//! small index of where each column's name and value lie in it, so
//!
//! - a column is looked up by a scan of the index, and a string column reads as a `&str` borrowed
//!   from the text (or, when the JSON escaped it, from one side buffer decoded at index time);
//! - serializing the row writes its columns from the index, with no map built (in a map's order,
//!   so the JSON is the same as before);
//! - nested values (rare in CDC rows) are parsed once at index time, so paths can descend them;
//! - [`RowImage::to_map`] builds the `serde_json` map for the places that want one.
//!
//! The index is built from text serde_json has already validated (a `RawValue`), or that
//! [`RowWriter`] wrote, so the scanner only has to find boundaries; it still returns an error rather than panic on anything else.
//! Column order is the source's; when a column name repeats, the last occurrence wins, as in a
//! `serde_json::Map`.

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A row image: one JSON object, kept as text with an index of its columns.
#[derive(Clone)]
pub struct RowImage {
    /// The object's JSON text.
    raw: Box<str>,
    columns: Vec<Column>,
    /// Decoded text of the names and string values the JSON escaped.
    decoded: String,
    /// Parsed nested values (objects and arrays).
    nested: Vec<Value>,
}

/// Where a piece of text lies: in the raw JSON or in the decoded side buffer.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
    decoded: bool,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// The span is the string's content (unescaped).
    Str(Span),
    /// The span is the number's JSON text.
    Number(Span),
    Bool(bool),
    Null,
    /// Index into `nested`.
    Nested(u32),
}

#[derive(Debug, Clone, Copy)]
struct Column {
    name: Span,
    value: Kind,
    /// The value's JSON text in `raw`, as written.
    raw_value: (u32, u32),
}

/// One column's value, borrowed from a [`RowImage`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// A string.
    Str(&'a str),
    /// A number, as its JSON text.
    Number(&'a str),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// An object or an array.
    Nested(&'a Value),
}

impl Cell<'_> {
    /// The value as a `serde_json::Value` (allocates).
    pub fn to_value(&self) -> Value {
        match *self {
            Cell::Str(s) => Value::String(s.to_owned()),
            Cell::Number(text) => text
                .parse::<serde_json::Number>()
                .map(Value::Number)
                // Validated JSON numbers always parse; a string keeps the digits if not.
                .unwrap_or_else(|_| Value::String(text.to_owned())),
            Cell::Bool(b) => Value::Bool(b),
            Cell::Null => Value::Null,
            Cell::Nested(v) => v.clone(),
        }
    }
}

/// Text that is not a JSON object, or not one the index can hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    /// The value is a JSON string, number, array, ... instead of an object.
    #[error("expected a JSON object, found {found}")]
    NotAnObject {
        /// What it was.
        found: &'static str,
    },
    /// The text ended or broke where the index expected more (never for serde-validated text).
    #[error("malformed JSON object at byte {at}")]
    Malformed {
        /// Byte offset.
        at: usize,
    },
    /// Rows are at most 4 GiB.
    #[error("row image larger than 4 GiB")]
    TooLarge,
}

impl RowImage {
    /// Indexes a copy of validated JSON text (serde_json's `RawValue` guarantees it is JSON).
    pub fn from_raw(raw: &RawValue) -> Result<RowImage, RowError> {
        RowImage::index(raw.get().into())
    }

    /// Indexes JSON text that is valid JSON (validated by serde_json, or written by
    /// [`RowWriter`]); anything else is an error, never a panic.
    fn index(raw: Box<str>) -> Result<RowImage, RowError> {
        let text = &*raw;
        if u32::try_from(text.len()).is_err() {
            return Err(RowError::TooLarge);
        }
        let mut index = Indexer {
            bytes: text.as_bytes(),
            text,
            pos: 0,
            decoded: String::new(),
            nested: Vec::new(),
        };
        let columns = index.object()?;
        let (decoded, nested) = (index.decoded, index.nested);
        Ok(RowImage {
            raw,
            columns,
            decoded,
            nested,
        })
    }

    /// Builds a row from a map (decoders that produce typed values, tests).
    pub fn from_map(map: &Map<String, Value>) -> RowImage {
        let mut row = RowWriter::with_capacity(map.len() * 24);
        for (name, value) in map {
            row.push(name, value);
        }
        row.finish()
    }

    /// Builds a row from `(name, value)` pairs, in their order.
    pub fn from_pairs<'a, I>(pairs: I) -> RowImage
    where
        I: IntoIterator<Item = (&'a str, &'a Value)>,
    {
        let mut row = RowWriter::with_capacity(256);
        for (name, value) in pairs {
            row.push(name, value);
        }
        row.finish()
    }

    /// The object's JSON text, as received (or as built).
    pub fn as_json(&self) -> &str {
        &self.raw
    }

    /// The number of columns (a repeated name counts each time).
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// Whether the object has no columns.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// The value of column `name` (its last occurrence).
    pub fn get(&self, name: &str) -> Option<Cell<'_>> {
        self.position(name).map(|i| self.cell(&self.columns[i]))
    }

    /// Whether a column holds an object or an array.
    pub fn has_nested(&self) -> bool {
        !self.nested.is_empty()
    }

    /// Whether the row has column `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Columns in the source's order, with their values (a repeated name appears each time;
    /// [`RowImage::to_map`] keeps the last).
    pub fn iter(&self) -> impl Iterator<Item = (&str, Cell<'_>)> + '_ {
        self.columns
            .iter()
            .map(move |c| (self.text(c.name), self.cell(c)))
    }

    /// The row as a `serde_json` map.
    pub fn to_map(&self) -> Map<String, Value> {
        self.iter()
            .map(|(name, cell)| (name.to_owned(), cell.to_value()))
            .collect()
    }

    /// A copy of the row with the string columns that `change` rewrites replaced; `change` sees
    /// each string column's name and value and answers the new value, or `None` to keep it.
    /// Returns `None` when nothing changed (and so costs no copy).
    pub fn rewrite_strings<F>(&self, mut change: F) -> Option<RowImage>
    where
        F: FnMut(&str, &str) -> Option<String>,
    {
        let mut replaced: Vec<(usize, String)> = Vec::new();
        for (i, column) in self.columns.iter().enumerate() {
            if let Kind::Str(span) = column.value {
                if let Some(new) = change(self.text(column.name), self.text(span)) {
                    replaced.push((i, new));
                }
            }
        }
        if replaced.is_empty() {
            return None;
        }
        let raw = &*self.raw;
        let mut row = RowWriter::with_capacity(raw.len());
        let mut next = replaced.iter().peekable();
        for (i, column) in self.columns.iter().enumerate() {
            let name = self.text(column.name);
            match next.peek() {
                Some((at, new)) if *at == i => {
                    row.push_str(name, new);
                    next.next();
                }
                _ => {
                    let (start, end) = column.raw_value;
                    row.push_raw(
                        name,
                        raw.get(start as usize..end as usize).unwrap_or("null"),
                    );
                }
            }
        }
        Some(row.finish())
    }

    /// Sets column `name` to `value` (replacing every occurrence, or appending it), keeping the
    /// other columns as they are. Rebuilds the text: for tools and tests, not the hot path.
    pub fn set(&mut self, name: &str, value: &Value) {
        let raw = &*self.raw;
        let mut row = RowWriter::with_capacity(raw.len() + name.len() + 16);
        let mut found = false;
        for column in &self.columns {
            let column_name = self.text(column.name);
            if column_name == name {
                if !found {
                    row.push(name, value);
                    found = true;
                }
            } else {
                let (start, end) = column.raw_value;
                row.push_raw(
                    column_name,
                    raw.get(start as usize..end as usize).unwrap_or("null"),
                );
            }
        }
        if !found {
            row.push(name, value);
        }
        *self = row.finish();
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.columns.iter().rposition(|c| self.text(c.name) == name)
    }

    fn text(&self, span: Span) -> &str {
        let range = span.start as usize..span.end as usize;
        let from = if span.decoded {
            self.decoded.get(range)
        } else {
            self.raw.get(range)
        };
        from.unwrap_or("")
    }

    fn cell(&self, column: &Column) -> Cell<'_> {
        match column.value {
            Kind::Str(span) => Cell::Str(self.text(span)),
            Kind::Number(span) => Cell::Number(self.text(span)),
            Kind::Bool(b) => Cell::Bool(b),
            Kind::Null => Cell::Null,
            Kind::Nested(i) => self.nested.get(i as usize).map_or(Cell::Null, Cell::Nested),
        }
    }
}

impl fmt::Debug for RowImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Two rows are equal when they hold the same columns and values, whatever the order or spacing
/// of their text.
impl PartialEq for RowImage {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw || self.to_map() == other.to_map()
    }
}

/// Serialized column by column from the index (strings escaped again, numbers as numbers), so
/// any serializer can take it, and exactly as the `serde_json::Map` of the row would be: columns
/// sorted by name, a repeated name once with its last value. Events published from a row are
/// therefore byte-identical to events published from its map, which is what lets the
/// `event-router` rebuild a detail from its parsed JSON and get the same content hash.
impl Serialize for RowImage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut order: Vec<(&str, usize)> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| (self.text(c.name), i))
            .collect();
        // Stable by name, then the last of equal names kept.
        order.sort_by(|a, b| a.0.cmp(b.0));
        let mut map = s.serialize_map(Some(order.len()))?;
        for (k, &(name, i)) in order.iter().enumerate() {
            if order.get(k + 1).is_some_and(|next| next.0 == name) {
                continue;
            }
            map.serialize_entry(name, &self.cell(&self.columns[i]))?;
        }
        map.end()
    }
}

impl Serialize for Cell<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Cell::Str(v) => s.serialize_str(v),
            Cell::Number(text) => match text.parse::<serde_json::Number>() {
                Ok(n) => n.serialize(s),
                Err(_) => s.serialize_str(text),
            },
            Cell::Bool(b) => s.serialize_bool(b),
            Cell::Null => s.serialize_unit(),
            Cell::Nested(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for RowImage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Through `Value` rather than `RawValue`, so non-JSON deserializers work too.
        match Value::deserialize(d)? {
            Value::Object(map) => Ok(RowImage::from_map(&map)),
            other => Err(D::Error::custom(RowError::NotAnObject {
                found: kind_of(&other),
            })),
        }
    }
}

impl From<&Map<String, Value>> for RowImage {
    fn from(map: &Map<String, Value>) -> Self {
        RowImage::from_map(map)
    }
}

impl From<Map<String, Value>> for RowImage {
    fn from(map: Map<String, Value>) -> Self {
        RowImage::from_map(&map)
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Writes a row's JSON text column by column, then indexes it.
pub struct RowWriter {
    text: String,
    first: bool,
}

impl RowWriter {
    /// A writer with room for about `bytes` of text.
    pub fn with_capacity(bytes: usize) -> RowWriter {
        let mut text = String::with_capacity(bytes + 2);
        text.push('{');
        RowWriter { text, first: true }
    }

    fn name(&mut self, name: &str) {
        if !self.first {
            self.text.push(',');
        }
        self.first = false;
        write_json_string(&mut self.text, name);
        self.text.push(':');
    }

    /// Appends a column with a JSON value.
    pub fn push(&mut self, name: &str, value: &Value) {
        self.name(name);
        match value {
            Value::String(s) => write_json_string(&mut self.text, s),
            Value::Number(n) => {
                use std::fmt::Write as _;
                let _ = write!(self.text, "{n}");
            }
            Value::Bool(true) => self.text.push_str("true"),
            Value::Bool(false) => self.text.push_str("false"),
            Value::Null => self.text.push_str("null"),
            nested => self.text.push_str(&nested.to_string()),
        }
    }

    /// Appends a string column.
    pub fn push_str(&mut self, name: &str, value: &str) {
        self.name(name);
        write_json_string(&mut self.text, value);
    }

    /// Appends a column whose value is already JSON text (must be valid JSON).
    fn push_raw(&mut self, name: &str, json: &str) {
        self.name(name);
        self.text.push_str(json);
    }

    /// The finished row.
    pub fn finish(mut self) -> RowImage {
        self.text.push('}');
        // The writer only emits valid JSON, so indexing succeeds; an empty row is the fallback.
        RowImage::index(self.text.into_boxed_str()).unwrap_or_else(|_| RowImage::empty())
    }
}

impl RowImage {
    /// A row without columns (`{}`).
    pub fn empty() -> RowImage {
        RowImage {
            raw: "{}".into(),
            columns: Vec::new(),
            decoded: String::new(),
            nested: Vec::new(),
        }
    }
}

/// Appends `s` as a JSON string literal.
fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    let mut plain_from = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[plain_from..i]);
        if escape.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(escape);
        }
        plain_from = i + 1;
    }
    out.push_str(&s[plain_from..]);
    out.push('"');
}

/// The boundary scanner over validated JSON text.
struct Indexer<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    decoded: String,
    nested: Vec<Value>,
}

impl Indexer<'_> {
    fn malformed(&self) -> RowError {
        RowError::Malformed { at: self.pos }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn expect(&mut self, b: u8) -> Result<(), RowError> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.malformed())
        }
    }

    fn object(&mut self) -> Result<Vec<Column>, RowError> {
        self.skip_ws();
        match self.peek() {
            Some(b'{') => self.pos += 1,
            Some(b'[') => return Err(RowError::NotAnObject { found: "an array" }),
            Some(b'"') => return Err(RowError::NotAnObject { found: "a string" }),
            Some(b't' | b'f') => return Err(RowError::NotAnObject { found: "a boolean" }),
            Some(b'n') => return Err(RowError::NotAnObject { found: "null" }),
            Some(_) => return Err(RowError::NotAnObject { found: "a number" }),
            None => return Err(self.malformed()),
        }
        let mut columns = Vec::with_capacity(24);
        self.skip_ws();
        if self.peek() == Some(b'}') {
            return Ok(columns);
        }
        loop {
            self.skip_ws();
            let name = self.string()?;
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            let start = self.pos;
            let value = self.value()?;
            columns.push(Column {
                name,
                value,
                raw_value: (start as u32, self.pos as u32),
            });
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => return Ok(columns),
                _ => return Err(self.malformed()),
            }
        }
    }

    /// A string at `pos` (on its opening quote): its content's span, decoded when escaped.
    fn string(&mut self) -> Result<Span, RowError> {
        let open = self.pos;
        self.expect(b'"')?;
        let start = self.pos;
        let mut escaped = false;
        loop {
            let rest = self.bytes.get(self.pos..).ok_or_else(|| self.malformed())?;
            match memchr::memchr2(b'"', b'\\', rest) {
                Some(i) if rest[i] == b'"' => {
                    let end = self.pos + i;
                    self.pos = end + 1;
                    if !escaped {
                        return Ok(Span {
                            start: start as u32,
                            end: end as u32,
                            decoded: false,
                        });
                    }
                    let literal = self.text.get(open..=end).ok_or_else(|| self.malformed())?;
                    let value: String =
                        serde_json::from_str(literal).map_err(|_| self.malformed())?;
                    let at = self.decoded.len();
                    self.decoded.push_str(&value);
                    return Ok(Span {
                        start: at as u32,
                        end: self.decoded.len() as u32,
                        decoded: true,
                    });
                }
                Some(i) => {
                    // A backslash: skip it and the character it escapes.
                    escaped = true;
                    self.pos += i + 2;
                }
                None => return Err(self.malformed()),
            }
        }
    }

    fn value(&mut self) -> Result<Kind, RowError> {
        match self.peek() {
            Some(b'"') => self.string().map(Kind::Str),
            Some(b'{' | b'[') => {
                let start = self.pos;
                self.skip_nested()?;
                let text = self
                    .text
                    .get(start..self.pos)
                    .ok_or_else(|| self.malformed())?;
                let value: Value = serde_json::from_str(text).map_err(|_| self.malformed())?;
                self.nested.push(value);
                Ok(Kind::Nested((self.nested.len() - 1) as u32))
            }
            Some(b't') => self.literal("true", Kind::Bool(true)),
            Some(b'f') => self.literal("false", Kind::Bool(false)),
            Some(b'n') => self.literal("null", Kind::Null),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.pos;
                while let Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') = self.peek() {
                    self.pos += 1;
                }
                Ok(Kind::Number(Span {
                    start: start as u32,
                    end: self.pos as u32,
                    decoded: false,
                }))
            }
            _ => Err(self.malformed()),
        }
    }

    fn literal(&mut self, word: &str, kind: Kind) -> Result<Kind, RowError> {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word.as_bytes()) {
            self.pos += word.len();
            Ok(kind)
        } else {
            Err(self.malformed())
        }
    }

    /// Skips an object or array, minding strings.
    fn skip_nested(&mut self) -> Result<(), RowError> {
        let mut depth = 0usize;
        loop {
            match self.peek() {
                Some(b'{' | b'[') => {
                    depth += 1;
                    self.pos += 1;
                }
                Some(b'}' | b']') => {
                    depth = depth.checked_sub(1).ok_or_else(|| self.malformed())?;
                    self.pos += 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                Some(b'"') => {
                    self.string()?;
                }
                Some(_) => self.pos += 1,
                None => return Err(self.malformed()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn row(text: &str) -> RowImage {
        let raw = RawValue::from_string(text.to_owned()).expect("valid JSON");
        RowImage::from_raw(&raw).expect("an object")
    }

    #[test]
    fn columns_read_back_in_source_order_with_their_types() {
        let r = row(r#" { "B" : "x" , "A":12.5e1,"C":true,"D":null,"E":{"f":[1,"}"]},"F":-3 } "#);
        let names: Vec<&str> = r.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["B", "A", "C", "D", "E", "F"]);
        assert_eq!(r.get("B"), Some(Cell::Str("x")));
        assert_eq!(r.get("A"), Some(Cell::Number("12.5e1")));
        assert_eq!(r.get("C"), Some(Cell::Bool(true)));
        assert_eq!(r.get("D"), Some(Cell::Null));
        assert_eq!(
            r.get("E").map(|c| c.to_value()),
            Some(json!({"f": [1, "}"]}))
        );
        assert_eq!(r.get("F").map(|c| c.to_value()), Some(json!(-3)));
        assert_eq!(r.get("G"), None);
    }

    #[test]
    fn escaped_names_and_values_are_decoded() {
        let r = row(r#"{"na\"me":"a\\b\u00e9\n","plain":"ok"}"#);
        assert_eq!(r.get("na\"me"), Some(Cell::Str("a\\bé\n")));
        assert_eq!(r.get("plain"), Some(Cell::Str("ok")));
    }

    #[test]
    fn a_repeated_name_reads_as_its_last_value_like_a_map() {
        let r = row(r#"{"A":"1","A":"2"}"#);
        assert_eq!(r.get("A"), Some(Cell::Str("2")));
        assert_eq!(
            r.to_map(),
            json!({"A": "2"}).as_object().cloned().unwrap_or_default()
        );
    }

    #[test]
    fn what_is_not_an_object_is_refused() {
        for (text, found) in [
            ("[1]", "an array"),
            ("\"x\"", "a string"),
            ("3", "a number"),
        ] {
            let raw = RawValue::from_string(text.to_owned()).expect("valid JSON");
            assert_eq!(
                RowImage::from_raw(&raw).err(),
                Some(RowError::NotAnObject { found })
            );
        }
    }

    #[test]
    fn serializing_writes_what_the_rows_map_would() {
        let text = r#"{"Z":"1","A":2.5,"B":{"c":[true,null]},"D":"q\"uote","Z":"2"}"#;
        let map: Map<String, Value> = serde_json::from_str(text).expect("an object");
        assert_eq!(
            serde_json::to_string(&row(text)).expect("serializes"),
            serde_json::to_string(&map).expect("serializes")
        );
    }

    #[test]
    fn rewriting_changes_only_what_it_answers_for() {
        let r = row(r#"{"A":" x ","B":1,"C":"Y@Z.COM"}"#);
        assert!(r.rewrite_strings(|_, _| None).is_none());
        let out = r
            .rewrite_strings(|name, v| (name == "A").then(|| v.trim().to_owned()))
            .expect("changed");
        assert_eq!(out.as_json(), r#"{"A":"x","B":1,"C":"Y@Z.COM"}"#);
        assert_eq!(out.get("A"), Some(Cell::Str("x")));
    }

    proptest! {
        #[test]
        fn any_object_round_trips_through_the_index(
            map in proptest::collection::btree_map(
                "[a-zA-Z_\"\\\\é ]{0,8}",
                prop_oneof![
                    any::<i64>().prop_map(Value::from),
                    any::<bool>().prop_map(Value::from),
                    "[ -~é\n\"\\\\]{0,12}".prop_map(Value::from),
                    Just(Value::Null),
                    Just(json!({"n": [1, {"x": "]"}]})),
                ],
                0..8,
            )
        ) {
            let map: Map<String, Value> = map.into_iter().collect();
            let text = serde_json::to_string(&map).expect("serializes");
            let indexed = row(&text);
            prop_assert_eq!(indexed.to_map(), map.clone());
            prop_assert_eq!(serde_json::to_string(&indexed).ok(), Some(text.clone()));
            let built = RowImage::from_map(&map);
            prop_assert_eq!(built.to_map(), map);
        }
    }
}
