//! [`RowImage`]: a row (before or after image) kept as the JSON object text it arrived in, with an
//! index of its columns.
//!
//! A change's images are most of its bytes, and most of their columns are only carried through:
//! written to DynamoDB and published as they are. Building a `serde_json::Map` per image would
//! cost an allocation per column name and value and a B-tree insert per column, most of the
//! decode time of a Qlik message. A `RowImage` instead owns one copy of the object text and a
//! small index of where each column's name and value lie in it, so
//!
//! - a column is looked up by a scan of the index, and a string column reads as a `&str` borrowed
//!   from the text (or, when the JSON escaped it, from one side buffer decoded at index time);
//! - serializing the row writes its columns from the index, with no map built (in a map's order,
//!   so the JSON is the same as a map's);
//! - nested values (rare in CDC rows) are parsed once at index time, so paths can descend them;
//! - [`RowImage::to_map`] builds the `serde_json` map for the places that want one.
//!
//! The index is built by the strict scanner of `json/scan.rs` (in `index.rs`) in the same pass
//! that checks the text is JSON, so a decoder reads a message once (see `qlik/read.rs`); text
//! that is not JSON is an error with its offset, never a panic. [`RowWriter`] writes a row's text
//! and its index together (decoders with typed values such as Avro, maps, rewritten rows), with
//! column keys escaped once per schema when the writer is given [`ColumnKey`]s. Each row also
//! remembers whether any string value could start or end with whitespace, so the transformer's
//! trimming skips the rows where it would change nothing.
//!
//! `writer.rs` holds [`RowWriter`], `index.rs` the indexer.
//!
//! Column order is the source's; when a column name repeats, the last occurrence wins, as in a
//! `serde_json::Map`.

use std::borrow::Cow;
use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::cdc::json::scan::{JsonStr, Scanner};

mod index;
#[cfg(test)]
mod tests;
mod writer;

use index::{index_at, malformed};
pub use writer::{ColumnKey, ColumnName, RowWriter};

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
    /// Whether some string value may start or end with whitespace ([`may_be_padded`]).
    padded: bool,
}

/// Whether `s` may start or end with whitespace: its first or last byte is a space, a control
/// character (ASCII's other whitespace, vertical tab included as `char::is_whitespace` has it, is
/// among them) or not ASCII, which is left for the full Unicode check of `str::trim`. Nearly
/// every value answers no from two byte tests.
#[inline]
pub(crate) fn may_be_padded(s: &str) -> bool {
    bytes_may_be_padded(s.as_bytes())
}

/// [`may_be_padded`] on the bytes of a string.
#[inline(always)]
fn bytes_may_be_padded(bytes: &[u8]) -> bool {
    // One test: 0x21..=0x7f (printable ASCII and DEL) is not blank; wrapping puts the space
    // and the control characters above 0x5e with the non-ASCII bytes.
    let blank = |b: &u8| b.wrapping_sub(0x21) > 0x5e;
    bytes.first().is_some_and(blank) || bytes.last().is_some_and(blank)
}

/// Where a piece of text lies: in the raw JSON or in the decoded side buffer. Packed in one word
/// (start in the low 32 bits, end in the next 31, the top bit set for the side buffer), which
/// keeps the indexer's hot loop in registers.
#[derive(Debug, Clone, Copy)]
pub struct Span(u64);

/// Largest offset a [`Span`] can hold: rows are shorter than 2 GiB.
const SPAN_MAX: usize = (1 << 31) - 1;

impl Span {
    fn raw(start: u32, end: u32) -> Span {
        Span(u64::from(start) | u64::from(end) << 32)
    }

    fn decoded(start: u32, end: u32) -> Span {
        Span(Span::raw(start, end).0 | 1 << 63)
    }

    fn range(self) -> std::ops::Range<usize> {
        (self.0 as u32) as usize..((self.0 >> 32) as u32 & 0x7fff_ffff) as usize
    }

    /// The length, computed from the packed word (no range checks: a lookup runs this once per
    /// column).
    fn len(self) -> usize {
        ((self.0 >> 32) as u32 & 0x7fff_ffff).wrapping_sub(self.0 as u32) as usize
    }

    fn is_decoded(self) -> bool {
        self.0 >> 63 == 1
    }

    /// A raw span of text that moved from offset `from` to offset `to`.
    fn moved(self, from: u32, to: usize) -> Span {
        let range = self.range();
        let shift = |at: usize| (at - from as usize + to) as u32;
        Span::raw(shift(range.start), shift(range.end))
    }
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
    /// The text is not valid JSON.
    #[error("{problem} at byte {at}")]
    Malformed {
        /// Byte offset.
        at: usize,
        /// What is wrong.
        problem: Cow<'static, str>,
    },
    /// Rows are shorter than 2 GiB.
    #[error("row image of 2 GiB or more")]
    TooLarge,
}

impl RowImage {
    /// Indexes a copy of a JSON object's text.
    pub fn from_raw(raw: &RawValue) -> Result<RowImage, RowError> {
        RowImage::parse(raw.get())
    }

    /// Indexes a copy of `text`, which must be one JSON object (whitespace around it allowed);
    /// the JSON is checked as it is indexed.
    pub fn parse(text: &str) -> Result<RowImage, RowError> {
        let mut scan = Scanner::new(text);
        scan.ws();
        let parts = index_at(&mut scan)?;
        scan.end().map_err(malformed)?;
        parts.into_row(text)
    }

    /// Indexes the object at the scanner's offset and moves past it: the decoders' one pass over
    /// a message. Error offsets are the scanner's.
    pub(crate) fn scan(scan: &mut Scanner<'_>) -> Result<RowImage, RowError> {
        let parts = index_at(scan)?;
        parts.into_row(scan.text())
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

    /// Whether some string value may start or end with whitespace; when false, trimming every
    /// string of the row would change nothing.
    pub fn may_have_padded_strings(&self) -> bool {
        self.padded
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
    pub fn rewrite_strings<F>(&self, change: F) -> Option<RowImage>
    where
        F: FnMut(&str, &str) -> Option<String>,
    {
        self.rewrite(|_| true, change)
    }

    /// [`RowImage::rewrite_strings`] for the string columns called `name` (every occurrence);
    /// the other columns are passed over by name, their values never read.
    pub fn rewrite_column<F>(&self, name: &str, mut change: F) -> Option<RowImage>
    where
        F: FnMut(&str) -> Option<String>,
    {
        let name = name.as_bytes();
        self.rewrite(|c| self.is_named(c, name), |_, value| change(value))
    }

    fn rewrite<S, F>(&self, mut select: S, mut change: F) -> Option<RowImage>
    where
        S: FnMut(&Column) -> bool,
        F: FnMut(&str, &str) -> Option<String>,
    {
        let mut replaced: Vec<(usize, String)> = Vec::new();
        for (i, column) in self.columns.iter().enumerate() {
            if let Kind::Str(span) = column.value {
                if !select(column) {
                    continue;
                }
                if let Some(new) = change(self.text(column.name), self.text(span)) {
                    replaced.push((i, new));
                }
            }
        }
        if replaced.is_empty() {
            return None;
        }
        let mut next = replaced.into_iter().peekable();
        let row = self.rebuild(0, |row, i, name| match next.next_if(|(at, _)| *at == i) {
            Some((_, new)) => {
                row.push_str(name, &new);
                true
            }
            None => false,
        });
        Some(row.finish())
    }

    /// Sets column `name` to `value` (replacing every occurrence, or appending it), keeping the
    /// other columns as they are. Rebuilds the text: for tools and tests, not the hot path.
    pub fn set(&mut self, name: &str, value: &Value) {
        let mut found = false;
        let mut row = self.rebuild(name.len() + 16, |row, _, column| {
            if column != name {
                return false;
            }
            if !found {
                row.push(name, value);
                found = true;
            }
            true
        });
        if !found {
            row.push(name, value);
        }
        *self = row.finish();
    }

    /// A writer holding a copy of this row's columns, except that `replace` sees each column (its
    /// position and name) first and may write it itself (answering true) or drop it.
    fn rebuild<F>(&self, extra: usize, mut replace: F) -> RowWriter
    where
        F: FnMut(&mut RowWriter, usize, &str) -> bool,
    {
        let mut row = RowWriter::with_capacity(self.raw.len() + extra);
        for (i, column) in self.columns.iter().enumerate() {
            if !replace(&mut row, i, self.text(column.name)) {
                row.push_column(self, column);
            }
        }
        row
    }

    fn position(&self, name: &str) -> Option<usize> {
        // Lengths first: they reject nearly every other column without reading its text. Bytes
        // rather than `str`s: equal bytes are equal text, and a byte slice needs no boundary
        // checks.
        let name = name.as_bytes();
        self.columns.iter().rposition(|c| self.is_named(c, name))
    }

    #[inline(always)]
    fn is_named(&self, column: &Column, name: &[u8]) -> bool {
        if column.name.len() != name.len() {
            return false;
        }
        // The last byte before the whole compare: names of one length mostly differ there
        // (CURRENCY, SUBTOTAL, ORDER_ID), and the compare is a call.
        let text = self.bytes(column.name);
        text.last() == name.last() && text == name
    }

    fn bytes(&self, span: Span) -> &[u8] {
        let from = if span.is_decoded() {
            &self.decoded
        } else {
            &*self.raw
        };
        from.as_bytes().get(span.range()).unwrap_or(&[])
    }

    fn text(&self, span: Span) -> &str {
        let range = span.range();
        let from = if span.is_decoded() {
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

impl RowImage {
    /// A row without columns (`{}`).
    pub fn empty() -> RowImage {
        RowImage {
            raw: "{}".into(),
            columns: Vec::new(),
            decoded: String::new(),
            nested: Vec::new(),
            padded: false,
        }
    }
}
