//! The one-pass reader of a Qlik JSON message: the strict scanner walks the text once, header
//! strings borrow from it when they have no escapes, row images are indexed as they are met, and
//! the `MD` message's lineage and table structure are read with serde.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::*;

/// The top level of either shape; fields of the other shape are simply absent.
#[derive(Default)]
pub(super) struct Top<'a> {
    pub(super) magic: Option<Cow<'a, str>>,
    pub(super) kind: Option<Cow<'a, str>>,
    /// Envelope headers (free-form, usually null) or, unwrapped, the change headers.
    pub(super) headers: Option<Headers<'a>>,
    /// What `headers` was when it was neither an object nor null (an error only when unwrapped).
    pub(super) headers_not_object: Option<&'static str>,
    pub(super) message: Option<Body<'a>>,
    pub(super) parts: DataParts<'a>,
}

/// The enveloped message: data-message and metadata-message fields side by side, so one pass
/// reads either whatever order the keys come in.
#[derive(Default)]
pub(super) struct Body<'a> {
    pub(super) parts: DataParts<'a>,
    pub(super) headers: Option<Headers<'a>>,
    pub(super) lineage: Option<Lineage>,
    pub(super) table_structure: Option<TableStructure>,
}

/// Why reading the message failed: bad JSON (placed by byte offset), or a field of the wrong
/// kind.
pub(super) enum Fail {
    Syntax(ScanError),
    Field(QlikJsonError),
}

impl From<ScanError> for Fail {
    fn from(e: ScanError) -> Self {
        Fail::Syntax(e)
    }
}

impl Fail {
    pub(super) fn into_error(self, text: &str) -> QlikJsonError {
        match self {
            Fail::Field(e) => e,
            Fail::Syntax(e) => {
                let (line, column) = e.line_column(text);
                QlikJsonError::Syntax {
                    message: e.problem.into_owned(),
                    line,
                    column,
                }
            }
        }
    }
}

/// Which fields an object has had, so a repeated one is refused (as serde does).
pub(super) struct Seen(u16);

impl Seen {
    pub(super) fn first(&mut self, bit: u16, key: &JsonStr, name: &str) -> Result<(), Fail> {
        if self.0 & (1 << bit) != 0 {
            return Err(Fail::Syntax(ScanError {
                at: key.open,
                problem: format!("duplicate field `{name}`").into(),
            }));
        }
        self.0 |= 1 << bit;
        Ok(())
    }
}

pub(super) fn read_top<'a>(text: &'a str, top: &mut Top<'a>) -> Result<(), Fail> {
    let mut scan = Scanner::new(text);
    scan.ws();
    if scan.peek() != Some(b'{') {
        let found = kind_at(scan.peek());
        return Err(Fail::Syntax(scan.fail(match found {
            "no value" if scan.peek().is_none() => "EOF while parsing a value",
            "no value" => "expected a value",
            _ => "expected a JSON object",
        })));
    }
    members(&mut scan, |scan, key, name, seen| {
        match name {
            "magic" => {
                seen.first(0, key, name)?;
                top.magic = string_field(scan, "magic")?;
            }
            "type" => {
                seen.first(1, key, name)?;
                top.kind = string_field(scan, "type")?;
            }
            "headers" => {
                seen.first(2, key, name)?;
                match scan.peek() {
                    Some(b'{') => read_headers(scan, top.headers.insert(Headers::default()))?,
                    Some(b'n') => scan.literal("null")?,
                    found => {
                        top.headers_not_object = Some(kind_at(found));
                        scan.skip_value()?;
                    }
                }
            }
            "message" => {
                seen.first(3, key, name)?;
                object_field(scan, "message", &mut top.message, read_body)?;
            }
            other => {
                if !top.parts.read(scan, key, other, seen, &UNWRAPPED)? {
                    scan.skip_value()?;
                }
            }
        }
        Ok(())
    })?;
    scan.end()?;
    Ok(())
}

pub(super) fn read_body<'a>(scan: &mut Scanner<'a>, body: &mut Body<'a>) -> Result<(), Fail> {
    members(scan, |scan, key, name, seen| {
        match name {
            "headers" => {
                seen.first(2, key, name)?;
                object_field(scan, "message.headers", &mut body.headers, read_headers)?;
            }
            "lineage" => {
                seen.first(5, key, name)?;
                body.lineage = scan.nested()?;
            }
            "tableStructure" => {
                seen.first(6, key, name)?;
                body.table_structure = scan.nested()?;
            }
            other => {
                if !body.parts.read(scan, key, other, seen, &ENVELOPED)? {
                    scan.skip_value()?;
                }
            }
        }
        Ok(())
    })
}

/// Reads the object at the scanner's offset member by member: `member` gets the scanner (on the
/// value), the key (its place, for errors), the decoded name and the fields seen so far, and
/// reads the value.
#[inline(always)]
pub(super) fn members<'a>(
    scan: &mut Scanner<'a>,
    mut member: impl FnMut(&mut Scanner<'a>, &JsonStr, &str, &mut Seen) -> Result<(), Fail>,
) -> Result<(), Fail> {
    scan.open_object()?;
    let mut seen = Seen(0);
    let mut first = true;
    loop {
        let key = match scan.compact_key(&mut first) {
            Some(key) => key,
            None => match scan.next_key(&mut first)? {
                Some(key) => key,
                None => break,
            },
        };
        let name = scan.decode(key)?;
        member(scan, &key, &name, &mut seen)?;
    }
    Ok(())
}

/// An object read by `read` into `slot`, or null (leaving it empty); anything else is an error
/// at `path`.
pub(super) fn object_field<'a, T: Default>(
    scan: &mut Scanner<'a>,
    path: &'static str,
    slot: &mut Option<T>,
    read: impl FnOnce(&mut Scanner<'a>, &mut T) -> Result<(), Fail>,
) -> Result<(), Fail> {
    match scan.peek() {
        Some(b'{') => read(scan, slot.insert(T::default())),
        Some(b'n') => {
            scan.literal("null")?;
            *slot = None;
            Ok(())
        }
        found => Err(Fail::Field(invalid(
            path,
            format!("expected an object, found {}", kind_at(found)),
        ))),
    }
}

/// A string or null.
pub(super) fn string_field<'a>(
    scan: &mut Scanner<'a>,
    path: &'static str,
) -> Result<Option<Cow<'a, str>>, Fail> {
    match scan.peek() {
        Some(b'"') => {
            let s = scan.string()?;
            Ok(Some(scan.decode(s)?))
        }
        Some(b'n') => {
            scan.literal("null")?;
            Ok(None)
        }
        found => Err(Fail::Field(invalid(
            path,
            format!("expected a string, found {}", kind_at(found)),
        ))),
    }
}

/// A row image (an object, indexed in this same pass) or null.
pub(super) fn image_field(
    scan: &mut Scanner<'_>,
    path: &'static str,
) -> Result<Option<RowImage>, Fail> {
    if scan.peek() == Some(b'n') {
        scan.literal("null")?;
        return Ok(None);
    }
    match RowImage::scan(scan) {
        Ok(row) => Ok(Some(row)),
        Err(RowError::Malformed { at, problem }) => Err(Fail::Syntax(ScanError { at, problem })),
        Err(other) => Err(Fail::Field(invalid(path, other.to_string()))),
    }
}

/// The change headers; every field is read as whatever JSON it holds, so type problems become
/// errors with a field path later.
pub(super) fn read_headers<'a>(
    scan: &mut Scanner<'a>,
    headers: &mut Headers<'a>,
) -> Result<(), Fail> {
    members(scan, |scan, key, name, seen| {
        let (bit, slot) = match name {
            "operation" => (0, &mut headers.operation),
            "changeSequence" => (1, &mut headers.change_sequence),
            "timestamp" => (2, &mut headers.timestamp),
            "streamPosition" => (3, &mut headers.stream_position),
            "transactionId" => (4, &mut headers.transaction_id),
            "transactionEventCounter" => (5, &mut headers.transaction_event_counter),
            "transactionLastEvent" => (6, &mut headers.transaction_last_event),
            "changeMask" => (7, &mut headers.change_mask),
            "columnMask" => (8, &mut headers.column_mask),
            _ => return Ok(scan.skip_value()?),
        };
        seen.first(bit, key, name)?;
        *slot = Some(read_scalar(scan)?);
        Ok(())
    })
}

/// Any JSON value as a [`Scalar`] (nested values checked and skipped). Inlined: returned
/// through memory, the value costs a store-forwarding stall per header.
#[inline(always)]
pub(super) fn read_scalar<'a>(scan: &mut Scanner<'a>) -> Result<Scalar<'a>, ScanError> {
    Ok(match scan.peek() {
        Some(b'"') => {
            let s = scan.string()?;
            Scalar::Str(scan.decode(s)?)
        }
        Some(b'-' | b'0'..=b'9') => {
            let (start, end) = scan.number()?;
            let digits = scan.text().get(start..end).unwrap_or("");
            if let Ok(n) = digits.parse::<i64>() {
                Scalar::I64(n)
            } else if let Ok(n) = digits.parse::<u64>() {
                Scalar::U64(n)
            } else {
                Scalar::Float
            }
        }
        Some(b't') => scan.literal("true").map(|()| Scalar::Bool)?,
        Some(b'f') => scan.literal("false").map(|()| Scalar::Bool)?,
        Some(b'n') => scan.literal("null").map(|()| Scalar::Null)?,
        Some(b'{' | b'[') => {
            scan.skip_value()?;
            Scalar::Nested
        }
        Some(_) => return Err(scan.fail("expected a value")),
        None => return Err(scan.fail("EOF while parsing a value")),
    })
}

#[derive(Deserialize)]
pub(super) struct Lineage {
    #[serde(default)]
    pub(super) schema: Option<String>,
    #[serde(default)]
    pub(super) table: Option<String>,
    #[serde(rename = "tableVersion", default)]
    pub(super) table_version: Option<i64>,
}

#[derive(Deserialize)]
pub(super) struct TableStructure {
    #[serde(rename = "tableColumns", default)]
    pub(super) table_columns: BTreeMap<String, ColumnDef>,
}

#[derive(Deserialize)]
pub(super) struct ColumnDef {
    #[serde(default)]
    pub(super) ordinal: Option<i64>,
    #[serde(rename = "type", default)]
    pub(super) data_type: Option<String>,
    #[serde(rename = "primaryKeyPosition", default)]
    pub(super) primary_key_position: Option<i64>,
}

/// Change headers, every field lenient so type problems become errors with a field path.
#[derive(Default)]
pub(super) struct Headers<'a> {
    pub(super) operation: Option<Scalar<'a>>,
    pub(super) change_sequence: Option<Scalar<'a>>,
    pub(super) timestamp: Option<Scalar<'a>>,
    pub(super) stream_position: Option<Scalar<'a>>,
    pub(super) transaction_id: Option<Scalar<'a>>,
    pub(super) transaction_event_counter: Option<Scalar<'a>>,
    pub(super) transaction_last_event: Option<Scalar<'a>>,
    pub(super) change_mask: Option<Scalar<'a>>,
    pub(super) column_mask: Option<Scalar<'a>>,
}

/// Any JSON value, kept only as far as header checks need (nested values are skipped). Shared
/// with the Debezium decoder, whose source fields are equally loosely typed.
#[derive(Debug)]
pub(crate) enum Scalar<'a> {
    Str(Cow<'a, str>),
    I64(i64),
    U64(u64),
    /// A float; its value is never needed, only its kind for error messages.
    Float,
    /// A boolean; only its kind matters.
    Bool,
    Null,
    Nested,
}

impl Scalar<'_> {
    pub(super) fn expected(&self, what: &str) -> String {
        let found = match self {
            Scalar::Str(_) => "a string",
            Scalar::I64(_) | Scalar::U64(_) | Scalar::Float => "a number",
            Scalar::Bool => "a boolean",
            Scalar::Null => "null",
            Scalar::Nested => "an object or array",
        };
        format!("expected {what}, found {found}")
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Scalar<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::I64(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar::U64(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                let _ = v;
                Ok(Scalar::Float)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                let _ = v;
                Ok(Scalar::Bool)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
                Scalar::deserialize(d)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Nested)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Nested)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}
