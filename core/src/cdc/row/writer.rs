//! [`RowWriter`]: writes a row's JSON text and its index together, for decoders with typed
//! values (Avro), maps and rewritten rows; [`ColumnKey`]s escape a column name once per schema.

use super::index::append_decoded;
use super::*;
use crate::cdc::avro::logical::Rendered;
use crate::cdc::json::scan::special_from;

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
    pub(super) fn push_column(&mut self, row: &RowImage, column: &Column) {
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
        let Ok(text) = crate::cdc::json::simd::utf8_string(self.text) else {
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
