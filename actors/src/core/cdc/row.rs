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
//! The index is built by the strict scanner of `scan.rs` in the same pass that checks the
//! text is JSON, so a decoder reads a message once (see `qlik_json`); text that is not JSON is an
//! error with its offset, never a panic. [`RowWriter`] writes a row's text and its index together
//! (decoders with typed values such as Avro, maps, rewritten rows), with column keys escaped once
//! per schema when the writer is given [`ColumnKey`]s. Each row also remembers whether any string
//! value could start or end with whitespace, so the transformer's trimming skips the rows where
//! it would change nothing.
//!
//! Column order is the source's; when a column name repeats, the last occurrence wins, as in a
//! `serde_json::Map`.

use std::borrow::Cow;
use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::avro_logical::Rendered;
use super::scan::{kind_at, plain_string_end, special_from, JsonStr, ScanError, Scanner};

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

/// A column name a [`RowWriter`] can write: a plain `&str` (escaped as it is written), or a
/// [`ColumnKey`] escaped once ahead of time.
pub trait ColumnName {
    /// Writes `"name":` (after a comma unless it is the first column) and returns the name's span
    /// and where the value starts.
    #[doc(hidden)]
    fn write_to(&self, row: &mut RowWriter) -> (Span, usize);
}

impl ColumnName for &str {
    fn write_to(&self, row: &mut RowWriter) -> (Span, usize) {
        row.comma();
        let span = row.string(self.as_bytes());
        row.text.push(b':');
        (span, row.text.len())
    }
}

impl ColumnName for &String {
    fn write_to(&self, row: &mut RowWriter) -> (Span, usize) {
        self.as_str().write_to(row)
    }
}

/// A column name with its JSON key text (`"NAME":`) prepared once, for writers that write the
/// same columns for every message (the Avro decoder, per schema). Reads as the plain name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnKey {
    name: String,
    /// `"NAME":`, escaped.
    json: Vec<u8>,
    escaped: bool,
}

impl ColumnKey {
    /// Prepares `name`.
    pub fn new(name: &str) -> ColumnKey {
        let mut json = Vec::with_capacity(name.len() + 3);
        let escaped = write_json_string(&mut json, name.as_bytes());
        json.push(b':');
        ColumnKey {
            name: name.to_owned(),
            json,
            escaped,
        }
    }
}

impl std::ops::Deref for ColumnKey {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

impl ColumnName for &ColumnKey {
    fn write_to(&self, row: &mut RowWriter) -> (Span, usize) {
        row.comma();
        let start = row.text.len() + 1;
        row.text.extend_from_slice(&self.json);
        let span = if self.escaped {
            row.decoded_copy(&self.name)
        } else {
            Span::raw(start as u32, (start + self.name.len()) as u32)
        };
        (span, row.text.len())
    }
}

/// Writes a row's JSON text column by column, indexing it as it goes.
pub struct RowWriter {
    /// The text so far: UTF-8 by construction (every piece written is a `str` or checked ASCII),
    /// kept as bytes so a decoder's ASCII strings need no `str` check of their own; checked once,
    /// whole, by [`RowWriter::finish`].
    text: Vec<u8>,
    columns: Vec<Column>,
    decoded: String,
    nested: Vec<Value>,
    padded: bool,
}

impl RowWriter {
    /// A writer with room for about `bytes` of text.
    pub fn with_capacity(bytes: usize) -> RowWriter {
        let mut text = Vec::with_capacity(bytes + 2);
        text.push(b'{');
        RowWriter {
            text,
            columns: Vec::with_capacity(16),
            decoded: String::new(),
            nested: Vec::new(),
            padded: false,
        }
    }

    /// Writes the UTF-8 text `bytes` as a JSON string; the span of its content (a decoded copy
    /// when it needed escapes).
    fn string(&mut self, bytes: &[u8]) -> Span {
        let start = self.text.len() + 1;
        if write_json_string(&mut self.text, bytes) {
            // Callers pass UTF-8, so this cannot fail; only strings with escapes come here.
            self.decoded_copy(std::str::from_utf8(bytes).unwrap_or_default())
        } else {
            Span::raw(start as u32, (start + bytes.len()) as u32)
        }
    }

    /// A span of `s` copied into the side buffer (its JSON spelling needed escapes).
    fn decoded_copy(&mut self, s: &str) -> Span {
        append_decoded(&mut self.decoded, s)
    }

    /// The comma before every column but the first.
    fn comma(&mut self) {
        if !self.columns.is_empty() {
            self.text.push(b',');
        }
    }

    /// Starts a column: its name and the colon; returns the name's span and where the value
    /// starts.
    fn name(&mut self, name: impl ColumnName) -> (Span, usize) {
        name.write_to(self)
    }

    /// Ends a column whose value was written from `start`.
    fn column(&mut self, (name, start): (Span, usize), value: Kind) {
        self.columns.push(Column {
            name,
            value,
            raw_value: (start as u32, self.text.len() as u32),
        });
    }

    /// Appends a column with a JSON value.
    pub fn push(&mut self, name: impl ColumnName, value: &Value) {
        match value {
            Value::String(s) => self.push_str(name, s),
            Value::Number(n) => {
                use std::io::Write as _;
                let at = self.name(name);
                // Writing to a `Vec` cannot fail.
                let _ = write!(self.text, "{n}");
                let number = Span::raw(at.1 as u32, self.text.len() as u32);
                self.column(at, Kind::Number(number));
            }
            Value::Bool(b) => self.push_bool(name, *b),
            Value::Null => self.push_null(name),
            nested => {
                let at = self.name(name);
                self.text.extend_from_slice(nested.to_string().as_bytes());
                self.nested.push(nested.clone());
                self.column(at, Kind::Nested((self.nested.len() - 1) as u32));
            }
        }
    }

    /// Appends a string column.
    pub fn push_str(&mut self, name: impl ColumnName, value: &str) {
        self.push_text(name, value.as_bytes());
    }

    /// Appends a string column from UTF-8 text.
    fn push_text(&mut self, name: impl ColumnName, value: &[u8]) {
        self.padded |= bytes_may_be_padded(value);
        let at = self.name(name);
        let span = self.string(value);
        self.column(at, Kind::Str(span));
    }

    /// Appends a string column from bytes that must be UTF-8: ASCII text (nearly all of it) is
    /// written with no `str` check of its own, anything else is checked first. On an error
    /// nothing is written.
    pub(crate) fn push_utf8(
        &mut self,
        name: impl ColumnName,
        value: &[u8],
    ) -> Result<(), std::str::Utf8Error> {
        if !value.is_ascii() {
            return std::str::from_utf8(value).map(|s| self.push_str(name, s));
        }
        self.push_text(name, value);
        Ok(())
    }

    /// Appends a date or timestamp column.
    pub(crate) fn push_rendered(&mut self, name: impl ColumnName, value: &Rendered) {
        // Inline text is ASCII and owned text a `String`: both are UTF-8, so this never fails.
        let _ = self.push_utf8(name, value.as_bytes());
    }

    /// Appends a number column from its JSON text (digits written by the caller's formatter).
    pub(crate) fn push_number(&mut self, name: impl ColumnName, json_number: &str) {
        let at = self.name(name);
        self.text.extend_from_slice(json_number.as_bytes());
        let number = Span::raw(at.1 as u32, self.text.len() as u32);
        self.column(at, Kind::Number(number));
    }

    /// Appends a boolean column.
    pub(crate) fn push_bool(&mut self, name: impl ColumnName, value: bool) {
        let at = self.name(name);
        self.text
            .extend_from_slice(if value { b"true" } else { b"false" });
        self.column(at, Kind::Bool(value));
    }

    /// Appends a null column.
    pub(crate) fn push_null(&mut self, name: impl ColumnName) {
        let at = self.name(name);
        self.text.extend_from_slice(b"null");
        self.column(at, Kind::Null);
    }

    /// Appends a copy of `column` of `row`, its value's text as it is there.
    fn push_column(&mut self, row: &RowImage, column: &Column) {
        let at = self.name(row.text(column.name));
        let (from, to) = column.raw_value;
        self.text.extend_from_slice(
            row.raw
                .as_bytes()
                .get(from as usize..to as usize)
                .unwrap_or(b"null"),
        );
        if let Kind::Str(span) = column.value {
            self.padded |= may_be_padded(row.text(span));
        }
        let value = match column.value {
            Kind::Str(span) if span.is_decoded() => Kind::Str(self.decoded_copy(row.text(span))),
            Kind::Str(span) => Kind::Str(span.moved(from, at.1)),
            Kind::Number(span) => Kind::Number(span.moved(from, at.1)),
            Kind::Nested(i) => {
                let value = row.nested.get(i as usize).cloned().unwrap_or(Value::Null);
                self.nested.push(value);
                Kind::Nested((self.nested.len() - 1) as u32)
            }
            kind @ (Kind::Bool(_) | Kind::Null) => kind,
        };
        self.column(at, value);
    }

    /// The finished row.
    pub fn finish(mut self) -> RowImage {
        self.text.push(b'}');
        if self.text.len() > SPAN_MAX || self.decoded.len() > SPAN_MAX {
            // Spans cannot address it; DynamoDB items and Kafka messages are far smaller.
            return RowImage::empty();
        }
        // Every piece written was UTF-8 (see `text`), so this check passes; it is one pass over
        // the whole text, cheaper than one per string.
        let Ok(text) = super::simd::utf8_string(self.text) else {
            return RowImage::empty();
        };
        RowImage {
            raw: text.into_boxed_str(),
            columns: self.columns,
            decoded: self.decoded,
            nested: self.nested,
            padded: self.padded,
        }
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

/// Appends the UTF-8 text `bytes` as a JSON string literal, escaped as serde_json escapes; returns
/// whether anything needed escaping.
fn write_json_string(out: &mut Vec<u8>, bytes: &[u8]) -> bool {
    out.push(b'"');
    let mut plain_from = 0;
    let mut escaped = false;
    loop {
        let i = special_from(bytes, plain_from);
        out.extend_from_slice(bytes.get(plain_from..i).unwrap_or(&[]));
        let Some(&b) = bytes.get(i) else {
            break;
        };
        escaped = true;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                use std::io::Write as _;
                // Writing to a `Vec` cannot fail.
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        plain_from = i + 1;
    }
    out.push(b'"');
    escaped
}

/// Indexes the object at the scanner's offset (whitespace already skipped), checking its JSON as
/// it goes, and leaves the offset after it. Spans are relative to the object's first byte.
fn index_at(scan: &mut Scanner<'_>) -> Result<Parts, RowError> {
    let base = scan.pos();
    match scan.peek() {
        Some(b'{') => scan.open_object().map_err(malformed)?,
        None => return Err(malformed(scan.fail("EOF while parsing a value"))),
        Some(b'"' | b'[' | b't' | b'f' | b'n' | b'-' | b'0'..=b'9') => {
            return Err(RowError::NotAnObject {
                found: kind_at(scan.peek()),
            })
        }
        Some(_) => return Err(malformed(scan.fail("expected a value"))),
    }
    if scan.text().len() - base > SPAN_MAX {
        return Err(RowError::TooLarge);
    }
    // Offsets fit a span from here on: the object lies in text shorter than 2 GiB from `base`.
    let rel = |at: usize| (at - base) as u32;
    let mut parts = Parts {
        columns: Vec::with_capacity(24),
        decoded: String::new(),
        nested: Vec::new(),
        range: (base, base),
        padded: false,
    };
    let mut first = true;
    loop {
        // Nearly every member of a Qlik row is `"NAME":"value"` with no escapes: read in one step.
        let at = compact_members(scan.bytes(), scan.pos(), base, &mut first, &mut parts);
        scan.seek(at);
        let Some(key) = scan.next_key(&mut first).map_err(malformed)? else {
            break;
        };
        let name = parts.span(scan, key, rel)?;
        let start = scan.pos();
        let value = match scan.peek() {
            Some(b'"') => {
                let s = scan.string().map_err(malformed)?;
                let span = parts.span(scan, s, rel)?;
                parts.padded |= if s.escaped {
                    may_be_padded(parts.decoded.get(span.range()).unwrap_or(""))
                } else {
                    // The bytes of an unescaped string are its text: no need to slice a `str`.
                    bytes_may_be_padded(scan.text().as_bytes().get(s.start..s.end).unwrap_or(&[]))
                };
                Kind::Str(span)
            }
            Some(b'-' | b'0'..=b'9') => {
                let (from, to) = scan.number().map_err(malformed)?;
                Kind::Number(Span::raw(rel(from), rel(to)))
            }
            Some(b't') => scan
                .literal("true")
                .map(|()| Kind::Bool(true))
                .map_err(malformed)?,
            Some(b'f') => scan
                .literal("false")
                .map(|()| Kind::Bool(false))
                .map_err(malformed)?,
            Some(b'n') => scan
                .literal("null")
                .map(|()| Kind::Null)
                .map_err(malformed)?,
            Some(b'{' | b'[') => {
                parts
                    .nested
                    .push(scan.nested::<Value>().map_err(malformed)?);
                Kind::Nested((parts.nested.len() - 1) as u32)
            }
            Some(_) => return Err(malformed(scan.fail("expected a value"))),
            None => return Err(malformed(scan.fail("EOF while parsing a value"))),
        };
        parts.columns.push(Column {
            name,
            value,
            raw_value: (rel(start), rel(scan.pos())),
        });
    }
    parts.range = (base, scan.pos());
    Ok(parts)
}

/// Indexes the run of members from `pos` that are in the compact form Qlik writes,
/// `"NAME":"value"` with no escapes in either string (and, unless `first`, the `,` before with no
/// whitespace); returns the offset after the last one. The first member of any other form (or
/// the object's end, or an error) stops the run, for the general reader to take from there.
/// Spans are relative to `base`, the object's first byte, whose text is shorter than 2 GiB.
#[inline(always)]
fn compact_members(
    bytes: &[u8],
    mut pos: usize,
    base: usize,
    first: &mut bool,
    parts: &mut Parts,
) -> usize {
    let rel = |at: usize| (at - base) as u32;
    let mut padded = false;
    loop {
        let key_open = if *first {
            pos
        } else if bytes.get(pos) == Some(&b',') {
            pos + 1
        } else {
            break;
        };
        if bytes.get(key_open) != Some(&b'"') {
            break;
        }
        let Some(key_end) = plain_string_end(bytes, key_open) else {
            break;
        };
        if bytes.get(key_end + 1..key_end + 3) != Some(b":\"") {
            break;
        }
        let value_open = key_end + 2;
        let Some(value_end) = plain_string_end(bytes, value_open) else {
            break;
        };
        padded |= bytes_may_be_padded(bytes.get(value_open + 1..value_end).unwrap_or(&[]));
        parts.columns.push(Column {
            name: Span::raw(rel(key_open + 1), rel(key_end)),
            value: Kind::Str(Span::raw(rel(value_open + 1), rel(value_end))),
            raw_value: (rel(value_open), rel(value_end + 1)),
        });
        *first = false;
        pos = value_end + 1;
    }
    parts.padded |= padded;
    pos
}

/// What indexing an object found, before the row takes its text.
struct Parts {
    columns: Vec<Column>,
    decoded: String,
    nested: Vec<Value>,
    /// The object's byte range in the scanned text.
    range: (usize, usize),
    padded: bool,
}

impl Parts {
    /// The span of a string's content: in the text when it has no escapes, else decoded into the
    /// side buffer.
    #[inline(always)]
    fn span(
        &mut self,
        scan: &Scanner<'_>,
        s: JsonStr,
        rel: impl Fn(usize) -> u32,
    ) -> Result<Span, RowError> {
        if s.escaped {
            self.decoded_span(scan, s)
        } else {
            Ok(Span::raw(rel(s.start), rel(s.end)))
        }
    }

    #[inline(never)]
    fn decoded_span(&mut self, scan: &Scanner<'_>, s: JsonStr) -> Result<Span, RowError> {
        let value = scan.unescape(s).map_err(malformed)?;
        let span = append_decoded(&mut self.decoded, &value);
        if self.decoded.len() > SPAN_MAX {
            return Err(RowError::TooLarge);
        }
        Ok(span)
    }

    /// The row, owning a copy of the object's text.
    fn into_row(self, text: &str) -> Result<RowImage, RowError> {
        let (start, end) = self.range;
        let raw = text.get(start..end).ok_or(RowError::TooLarge)?;
        Ok(RowImage {
            raw: raw.into(),
            columns: self.columns,
            decoded: self.decoded,
            nested: self.nested,
            padded: self.padded,
        })
    }
}

/// Appends `s` to a row's side buffer; its span there (the caller bounds the buffer's size).
fn append_decoded(buf: &mut String, s: &str) -> Span {
    let at = buf.len();
    buf.push_str(s);
    Span::decoded(at as u32, buf.len() as u32)
}

fn malformed(e: ScanError) -> RowError {
    RowError::Malformed {
        at: e.at,
        problem: e.problem,
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
    fn rows_know_whether_a_string_may_need_trimming() {
        assert!(!row(r#"{"A":"x","B":1,"C":"q\"r"}"#).may_have_padded_strings());
        assert!(row(r#"{"A":"x","B":"y "}"#).may_have_padded_strings());
        assert!(row(r#"{"A":"\tx"}"#).may_have_padded_strings());
        assert!(row(r#"{"A":"caf\u00e9"}"#).may_have_padded_strings());
        let clean = row(r#"{"A":"x","B":2}"#);
        assert!(!clean.may_have_padded_strings());
        let mut set = clean.clone();
        set.set("C", &json!(" y"));
        assert!(set.may_have_padded_strings());
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

    #[test]
    fn rewriting_one_column_edits_each_of_its_string_occurrences_only() {
        // "A" twice, an escaped name that decodes to "A", a number under the name "A", and a
        // column whose name only shares the length.
        let r = row(r#"{"A":"a","B":"a","\u0041":"b","A":7,"Z":"a","A":"c"}"#);
        let out = r
            .rewrite_column("A", |v| Some(v.to_uppercase()))
            .expect("changed");
        assert_eq!(
            out.as_json(),
            r#"{"A":"A","B":"a","A":"B","A":7,"Z":"a","A":"C"}"#
        );
        assert!(r.rewrite_column("A", |_| None).is_none());
        assert!(r.rewrite_column("Q", |_| Some(String::new())).is_none());
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
            prop_assert_eq!(built.to_map(), map.clone());
            // Trimming may skip a row only when no string of it would change.
            let untrimmed = |r: &RowImage| r.iter().any(|(_, c)| matches!(c, Cell::Str(v) if v.trim() != v));
            for r in [&indexed, &built] {
                prop_assert!(!untrimmed(r) || r.may_have_padded_strings());
            }
            // The writer's index is the one a scan of its text builds.
            let scanned = RowImage::parse(built.as_json()).expect("the writer writes JSON");
            prop_assert_eq!(built.iter().collect::<Vec<_>>(), scanned.iter().collect::<Vec<_>>());
            prop_assert_eq!(serde_json::from_str::<Map<String, Value>>(built.as_json()).ok(), Some(map.clone()));
            // Rebuilt rows too: every string trimmed of "a", and one column set.
            let rewritten = indexed.rewrite_strings(|_, v| v.contains('a').then(|| v.replace('a', "")));
            if let Some(rewritten) = rewritten {
                let scanned = RowImage::parse(rewritten.as_json()).expect("JSON");
                prop_assert_eq!(rewritten.iter().collect::<Vec<_>>(), scanned.iter().collect::<Vec<_>>());
            }
            let mut set = indexed.clone();
            set.set("é\"", &json!({"k": ["\u{1}"]}));
            let scanned = RowImage::parse(set.as_json()).expect("JSON");
            prop_assert_eq!(set.iter().collect::<Vec<_>>(), scanned.iter().collect::<Vec<_>>());
        }

        /// Rows as Qlik writes them (compact, plain strings: the indexer's one-step path), with
        /// one byte changed, removed or added: the index takes exactly the text serde_json takes
        /// as an object, and reads the same columns from it.
        #[test]
        fn a_damaged_compact_row_is_refused_or_read_as_serde_reads_it(
            map in proptest::collection::btree_map(
                "[A-Z_]{1,6}",
                prop_oneof![
                    4 => "[a-z .@-]{0,20}".prop_map(Value::from),
                    1 => any::<i32>().prop_map(Value::from),
                    1 => Just(Value::Null),
                ],
                1..6,
            ),
            at in any::<prop::sample::Index>(),
            edit in 0u8..3,
            byte in prop::sample::select(b"\"\\:,{}[] \x01\ta0nu".to_vec()),
        ) {
            let map: Map<String, Value> = map.into_iter().collect();
            let mut text = serde_json::to_string(&map).expect("serializes").into_bytes();
            let i = at.index(text.len());
            match edit {
                0 => text[i] = byte,
                1 => { text.remove(i); }
                _ => text.insert(i, byte),
            }
            let Ok(text) = String::from_utf8(text) else { return Ok(()) };
            let serde = serde_json::from_str::<Map<String, Value>>(&text);
            match RowImage::parse(&text) {
                Ok(indexed) => prop_assert_eq!(Some(indexed.to_map()), serde.ok(), "{:?}", text),
                Err(e) => prop_assert!(serde.is_err(), "{:?} refused: {}", text, e),
            }
        }

        #[test]
        fn a_string_from_bytes_is_written_as_the_same_text_or_refused_whole(
            bytes in proptest::collection::vec(
                prop_oneof![3 => 0x20u8..0x7f, 1 => any::<u8>()],
                0..24,
            )
        ) {
            let mut from_bytes = RowWriter::with_capacity(32);
            from_bytes.push_str("A", "x");
            let pushed = from_bytes.push_utf8("B", &bytes);
            let from_bytes = from_bytes.finish();
            match std::str::from_utf8(&bytes) {
                Ok(text) => {
                    prop_assert!(pushed.is_ok());
                    let mut from_str = RowWriter::with_capacity(32);
                    from_str.push_str("A", "x");
                    from_str.push_str("B", text);
                    let from_str = from_str.finish();
                    prop_assert_eq!(from_bytes.as_json(), from_str.as_json());
                    prop_assert_eq!(from_bytes.get("B"), Some(Cell::Str(text)));
                    prop_assert_eq!(from_bytes.may_have_padded_strings(), from_str.may_have_padded_strings());
                    let scanned = RowImage::parse(from_bytes.as_json()).expect("JSON");
                    prop_assert_eq!(from_bytes.iter().collect::<Vec<_>>(), scanned.iter().collect::<Vec<_>>());
                }
                // Not UTF-8: an error, and the row keeps only what came before.
                Err(_) => {
                    prop_assert!(pushed.is_err());
                    prop_assert_eq!(from_bytes.as_json(), r#"{"A":"x"}"#);
                }
            }
        }
    }
}
