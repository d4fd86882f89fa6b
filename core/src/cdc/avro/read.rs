//! The Avro binary reader: walks a compiled schema (see `schema.rs`) and reads straight into
//! `serde_json::Value`s, with logical types rendered as natural JSON. Reading without
//! `apache_avro::types::Value` in between saves a full copy of every record on the hot path and
//! lets errors carry the exact byte offset.
//!
//! Every length and count read from the input is checked against the bytes that remain before
//! anything is allocated, and nesting is bounded, so hostile input cannot exhaust memory or stack.

use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat};
use serde_json::{Map, Number, Value};

use crate::cdc::row::{ColumnKey, RowImage, RowWriter};

use super::logical::{b64, decimal_string, iso_date, rfc3339, Rendered};
use super::schema::{Compiled, Node, TimeUnit};

/// Deepest nesting of records/arrays/maps/unions the reader follows.
const MAX_DEPTH: usize = 64;

/// Where and why reading failed; the path is collected while unwinding.
#[derive(Debug)]
pub(crate) struct ReadError {
    pub(crate) offset: usize,
    pub(crate) problem: String,
    /// Path segments, innermost first.
    pub(crate) path: Vec<String>,
}

impl ReadError {
    pub(crate) fn new(offset: usize, problem: impl Into<String>) -> Box<Self> {
        Box::new(ReadError {
            offset,
            problem: problem.into(),
            path: Vec::new(),
        })
    }

    /// A string at `offset` that is not UTF-8.
    fn utf8(offset: usize, e: std::str::Utf8Error) -> Box<Self> {
        ReadError::new(offset, format!("invalid UTF-8: {e}"))
    }

    pub(crate) fn within(mut self: Box<Self>, segment: &str) -> Box<Self> {
        self.path.push(segment.to_owned());
        self
    }

    /// The path outermost first, joined with dots.
    pub(crate) fn path_string(&self) -> String {
        let mut parts: Vec<&str> = self.path.iter().rev().map(String::as_str).collect();
        if parts.is_empty() {
            parts.push("$");
        }
        parts.join(".")
    }
}

/// A cursor over Avro binary.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Added to `pos` in errors so offsets count from the start of the whole message.
    base: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn err(&self, problem: impl Into<String>) -> Box<ReadError> {
        ReadError::new(self.offset(), problem)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Box<ReadError>> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| self.err(format!("needs {n} bytes, {} left", self.remaining())))?;
        let out = self.buf.get(self.pos..end).unwrap_or(&[]);
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Box<ReadError>> {
        let start = self.offset();
        self.take(N)?
            .try_into()
            .map_err(|_| ReadError::new(start, format!("needs {N} bytes")))
    }

    fn long(&mut self) -> Result<i64, Box<ReadError>> {
        let start = self.offset();
        let mut acc: u64 = 0;
        for i in 0..10u32 {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| ReadError::new(start, "truncated varint"))?;
            self.pos += 1;
            acc |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(((acc >> 1) as i64) ^ -((acc & 1) as i64));
            }
        }
        Err(ReadError::new(start, "varint longer than 10 bytes"))
    }

    fn int(&mut self) -> Result<i32, Box<ReadError>> {
        let start = self.offset();
        let v = self.long()?;
        i32::try_from(v).map_err(|_| ReadError::new(start, format!("{v} overflows an int")))
    }

    fn len(&mut self) -> Result<usize, Box<ReadError>> {
        let start = self.offset();
        let v = self.long()?;
        let n = usize::try_from(v)
            .map_err(|_| ReadError::new(start, format!("negative length {v}")))?;
        if n > self.remaining() {
            return Err(ReadError::new(
                start,
                format!("length {n} exceeds the {} bytes left", self.remaining()),
            ));
        }
        Ok(n)
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], Box<ReadError>> {
        let n = self.len()?;
        self.take(n)
    }

    pub(crate) fn string(&mut self) -> Result<&'a str, Box<ReadError>> {
        let start = self.offset();
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|e| ReadError::utf8(start, e))
    }

    /// Reads one block count of an array or map: `Ok(0)` ends the sequence.
    fn block_count(&mut self) -> Result<usize, Box<ReadError>> {
        let start = self.offset();
        let raw = self.long()?;
        if raw < 0 {
            // A negative count is followed by the block's size in bytes, which we do not need.
            self.long()?;
        }
        // Items can be zero bytes long (nulls), so a count is capped by what is left (with room
        // for small arrays of nulls) rather than trusted: a forged count must not spin for ever.
        let n = usize::try_from(raw.unsigned_abs()).unwrap_or(usize::MAX);
        if n > self.remaining().max(1024) {
            return Err(ReadError::new(
                start,
                format!(
                    "block count {n} exceeds the {} bytes left",
                    self.remaining()
                ),
            ));
        }
        Ok(n)
    }

    /// Reads a union's branch index and returns the node of that branch.
    pub(crate) fn union_branch(&mut self, branches: &[usize]) -> Result<usize, Box<ReadError>> {
        let start = self.offset();
        let i = self.long()?;
        usize::try_from(i)
            .ok()
            .and_then(|i| branches.get(i))
            .copied()
            .ok_or_else(|| ReadError::new(start, format!("union branch {i} out of range")))
    }

    /// Reads a value of node `idx` into JSON.
    pub(crate) fn value(
        &mut self,
        c: &Compiled,
        idx: usize,
        depth: usize,
    ) -> Result<Value, Box<ReadError>> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting deeper than 64 levels"));
        }
        Ok(match c.node(idx) {
            Node::Null => Value::Null,
            Node::Boolean => Value::Bool(self.boolean()?),
            Node::Int => Value::from(self.int()?),
            Node::Long => Value::from(self.long()?),
            Node::Float => {
                let v = f32::from_le_bytes(self.array::<4>()?);
                Number::from_f64(f64::from(v)).map_or(Value::Null, Value::Number)
            }
            Node::Double => Number::from_f64(f64::from_le_bytes(self.array::<8>()?))
                .map_or(Value::Null, Value::Number),
            Node::Bytes => Value::String(b64(self.bytes()?)),
            Node::String => Value::String(self.string()?.to_owned()),
            Node::Fixed(n) => Value::String(b64(self.take(*n)?)),
            Node::Enum(symbols) => {
                let start = self.offset();
                let i = self.long()?;
                let sym = usize::try_from(i)
                    .ok()
                    .and_then(|i| symbols.get(i))
                    .ok_or_else(|| ReadError::new(start, format!("enum index {i} out of range")))?;
                Value::String(sym.clone())
            }
            Node::Array(item) => {
                let mut out = Vec::new();
                loop {
                    let n = self.block_count()?;
                    if n == 0 {
                        break;
                    }
                    out.reserve(n.min(self.remaining()));
                    for i in 0..n {
                        let v = self
                            .value(c, *item, depth + 1)
                            .map_err(|e| e.within(&i.to_string()))?;
                        out.push(v);
                    }
                }
                Value::Array(out)
            }
            Node::Map(item) => {
                let mut out = Map::new();
                loop {
                    let n = self.block_count()?;
                    if n == 0 {
                        break;
                    }
                    for _ in 0..n {
                        let k = self.string()?;
                        let v = self.value(c, *item, depth + 1).map_err(|e| e.within(k))?;
                        out.insert(k.to_owned(), v);
                    }
                }
                Value::Object(out)
            }
            Node::Union(branches) => {
                let b = self.union_branch(branches)?;
                self.value(c, b, depth + 1)?
            }
            Node::Record(fields) => Value::Object(self.record(c, fields, depth)?),
            Node::Decimal { scale, fixed } => Value::String(self.decimal(*scale, *fixed)?),
            Node::BigDecimal => {
                let inner = self.bytes()?;
                let mut r = Reader::new(inner, self.offset().saturating_sub(inner.len()));
                let digits = r.bytes()?;
                let start = r.offset();
                let scale = r.long()?;
                let scale = usize::try_from(scale)
                    .map_err(|_| ReadError::new(start, format!("negative scale {scale}")))?;
                Value::String(decimal_string(digits, scale))
            }
            Node::Uuid => Value::String(self.uuid(&mut uuid::Uuid::encode_buffer())?.to_owned()),
            Node::Date => Value::String(self.date()?.into_string()),
            Node::TimeMillis => {
                let start = self.offset();
                let ms = self.int()?;
                let t = u32::try_from(ms)
                    .ok()
                    .and_then(|ms| {
                        NaiveTime::from_num_seconds_from_midnight_opt(
                            ms / 1000,
                            (ms % 1000) * 1_000_000,
                        )
                    })
                    .ok_or_else(|| {
                        ReadError::new(start, format!("time-millis {ms} out of range"))
                    })?;
                Value::String(t.format("%H:%M:%S%.3f").to_string())
            }
            Node::TimeMicros => {
                let start = self.offset();
                let us = self.long()?;
                let t = u64::try_from(us)
                    .ok()
                    .and_then(|us| {
                        let secs = u32::try_from(us / 1_000_000).ok()?;
                        let nanos = u32::try_from(us % 1_000_000).ok()? * 1000;
                        NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos)
                    })
                    .ok_or_else(|| {
                        ReadError::new(start, format!("time-micros {us} out of range"))
                    })?;
                Value::String(t.format("%H:%M:%S%.6f").to_string())
            }
            Node::Timestamp(unit, utc) => Value::String(self.timestamp(*unit, *utc)?.into_string()),
            Node::Duration => {
                let b = self.array::<12>()?;
                let word = |i: usize| {
                    let mut w = [0u8; 4];
                    w.copy_from_slice(b.get(i..i + 4).unwrap_or(&[0; 4]));
                    u32::from_le_bytes(w)
                };
                let mut m = Map::new();
                m.insert("months".into(), Value::from(word(0)));
                m.insert("days".into(), Value::from(word(4)));
                m.insert("millis".into(), Value::from(word(8)));
                Value::Object(m)
            }
            Node::Pending => return Err(self.err("schema node is incomplete")),
        })
    }

    /// Reads a row image: a record (possibly inside nullable unions) written straight into a
    /// [`RowImage`], without building a map. `None` for a null branch; `Ok(None)` too for a
    /// value that is not a record, which the caller ignores.
    pub(crate) fn row(
        &mut self,
        c: &Compiled,
        idx: usize,
        depth: usize,
    ) -> Result<Option<RowImage>, Box<ReadError>> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting deeper than 64 levels"));
        }
        match c.node(idx) {
            Node::Union(branches) => {
                let b = self.union_branch(branches)?;
                self.row(c, b, depth + 1)
            }
            Node::Record(fields) => {
                let mut row = RowWriter::with_capacity(fields.len() * 32);
                for (name, idx) in fields {
                    self.column(c, *idx, depth + 1, name, &mut row)
                        .map_err(|e| e.within(name))?;
                }
                Ok(Some(row.finish()))
            }
            _ => {
                self.value(c, idx, depth)?;
                Ok(None)
            }
        }
    }

    fn boolean(&mut self) -> Result<bool, Box<ReadError>> {
        let start = self.offset();
        match self.take(1)? {
            [0] => Ok(false),
            [1] => Ok(true),
            other => Err(ReadError::new(start, format!("boolean byte {other:?}"))),
        }
    }

    /// A decimal (bytes or fixed) as its exact decimal text.
    fn decimal(&mut self, scale: usize, fixed: Option<usize>) -> Result<String, Box<ReadError>> {
        let raw = match fixed {
            Some(n) => self.take(n)?,
            None => self.bytes()?,
        };
        Ok(decimal_string(raw, scale))
    }

    /// A uuid: 16 bytes (rendered into `buf`) or its text.
    fn uuid<'b>(&mut self, buf: &'b mut [u8; 45]) -> Result<&'b str, Box<ReadError>>
    where
        'a: 'b,
    {
        let start = self.offset();
        let b = self.bytes()?;
        if b.len() == 16 {
            let u = uuid::Uuid::from_slice(b).map_err(|e| ReadError::new(start, e.to_string()))?;
            Ok(u.hyphenated().encode_lower(buf))
        } else {
            std::str::from_utf8(b).map_err(|e| ReadError::utf8(start, e))
        }
    }

    /// A date as `YYYY-MM-DD`.
    fn date(&mut self) -> Result<Rendered, Box<ReadError>> {
        let start = self.offset();
        let days = self.int()?;
        let date = NaiveDate::from_ymd_opt(1970, 1, 1)
            .and_then(|e| e.checked_add_signed(chrono::Duration::days(i64::from(days))))
            .ok_or_else(|| ReadError::new(start, format!("date {days} out of range")))?;
        Ok(iso_date(date))
    }

    /// A timestamp in RFC 3339 (with `Z` when the schema says it is UTC).
    fn timestamp(&mut self, unit: TimeUnit, utc: bool) -> Result<Rendered, Box<ReadError>> {
        let start = self.offset();
        let v = self.long()?;
        let (dt, fmt) = match unit {
            TimeUnit::Millis => (DateTime::from_timestamp_millis(v), SecondsFormat::Millis),
            TimeUnit::Micros => (DateTime::from_timestamp_micros(v), SecondsFormat::Micros),
            TimeUnit::Nanos => (
                Some(DateTime::from_timestamp_nanos(v)),
                SecondsFormat::Nanos,
            ),
        };
        let dt = dt.ok_or_else(|| ReadError::new(start, format!("timestamp {v} out of range")))?;
        Ok(rfc3339(&dt, fmt, utc))
    }

    /// Reads one column of a row straight into the row's text: the plain kinds (null, boolean,
    /// int, long, string, decimal, uuid, date, timestamp) are written with no `Value` in between;
    /// the others through one.
    fn column(
        &mut self,
        c: &Compiled,
        idx: usize,
        depth: usize,
        name: &ColumnKey,
        row: &mut RowWriter,
    ) -> Result<(), Box<ReadError>> {
        match c.node(idx) {
            Node::Null => row.push_null(name),
            Node::Int => row.push_number(name, itoa::Buffer::new().format(self.int()?)),
            Node::Long => row.push_number(name, itoa::Buffer::new().format(self.long()?)),
            Node::String => {
                let start = self.offset();
                row.push_utf8(name, self.bytes()?)
                    .map_err(|e| ReadError::utf8(start, e))?;
            }
            Node::Boolean => row.push_bool(name, self.boolean()?),
            Node::Decimal { scale, fixed } => row.push_str(name, &self.decimal(*scale, *fixed)?),
            Node::Uuid => row.push_str(name, self.uuid(&mut uuid::Uuid::encode_buffer())?),
            Node::Date => row.push_rendered(name, &self.date()?),
            Node::Timestamp(unit, utc) => row.push_rendered(name, &self.timestamp(*unit, *utc)?),
            Node::Union(branches) if depth <= MAX_DEPTH => {
                let b = self.union_branch(branches)?;
                return self.column(c, b, depth + 1, name, row);
            }
            _ => {
                let v = self.value(c, idx, depth)?;
                row.push(name, &v);
            }
        }
        Ok(())
    }

    /// Reads the fields of a record into a map.
    pub(crate) fn record(
        &mut self,
        c: &Compiled,
        fields: &[(ColumnKey, usize)],
        depth: usize,
    ) -> Result<Map<String, Value>, Box<ReadError>> {
        let mut out = Map::new();
        for (name, idx) in fields {
            let v = self.value(c, *idx, depth + 1).map_err(|e| e.within(name))?;
            out.insert(name.to_string(), v);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_decode_zigzag() {
        let mut r = Reader::new(&[0x02, 0x01, 0xAC, 0x02], 0);
        assert_eq!(r.long().ok(), Some(1));
        assert_eq!(r.long().ok(), Some(-1));
        assert_eq!(r.long().ok(), Some(150));
        assert!(r.long().is_err());
    }
}
