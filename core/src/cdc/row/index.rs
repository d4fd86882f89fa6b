//! The indexer: reads a JSON object's text once with the strict scanner, checking it, and records
//! where each column's name and value lie ([`Parts`], turned into a [`RowImage`]).

use super::*;
use crate::cdc::json::scan::{kind_at, plain_string_end, ScanError};

/// Indexes the object at the scanner's offset (whitespace already skipped), checking its JSON as
/// it goes, and leaves the offset after it. Spans are relative to the object's first byte.
pub(super) fn index_at(scan: &mut Scanner<'_>) -> Result<Parts, RowError> {
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
pub(super) struct Parts {
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
    pub(super) fn into_row(self, text: &str) -> Result<RowImage, RowError> {
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
pub(super) fn append_decoded(buf: &mut String, s: &str) -> Span {
    let at = buf.len();
    buf.push_str(s);
    Span::decoded(at as u32, buf.len() as u32)
}

pub(super) fn malformed(e: ScanError) -> RowError {
    RowError::Malformed {
        at: e.at,
        problem: e.problem,
    }
}
