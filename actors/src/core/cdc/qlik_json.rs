//! Qlik Replicate's JSON messages, as its Kafka target writes them.
//!
//! Two shapes are accepted:
//!
//! - the Replicate envelope: `{"magic":"atMSG","type":"DT"|"MD","headers":null,
//!   "messageSchemaId":null,"messageSchema":null,"message":{...}}`, where a `DT` message holds
//!   `{"data":{..},"beforeData":{..},"headers":{..}}` and an `MD` message holds
//!   `{"schemaId":..,"lineage":{"schema","table","tableVersion",..},"tableStructure":
//!   {"tableColumns":{"COL":{"ordinal","type","primaryKeyPosition",..}}},"dataSchema":..}`;
//! - the unwrapped data message `{"data":{..},"beforeData":{..},"headers":{..}}`.
//!
//! The message is read in one pass by the strict scanner of `scan.rs`: header strings borrow
//! from the input when they contain no escapes, and the row images are indexed (and checked) as
//! they are met, each keeping a copy of its own JSON text ([`RowImage`]). Metadata messages update
//! the [`MetadataCache`]; data messages take their key columns from it, or from
//! [`super::FallbackKeys`].
//!
//! Where the table comes from: Qlik's Kafka target does not put the table name in a data message
//! by default (one topic per table is the usual layout), so the decoder uses a `schema`/`table`
//! pair in the message when present (added by a Replicate transformation or newer versions), else
//! the consumer's [`super::DecodeContext::default_table`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::error::QlikJsonError;
use super::metadata::{key_names, ColumnMetadata, MetadataCache, TableMetadata};
use super::row::{RowError, RowImage};
use super::scan::{kind_at, line_column, JsonStr, ScanError, Scanner};
use super::{
    extract_key, is_valid_sequence, CdcEvent, DecodeContext, KafkaCoordinates, Operation, TableRef,
};

/// What one Qlik JSON message turned out to be.
// `Change` is nearly every message; boxing it to shrink the rare `Metadata` would cost an
// allocation per change on the hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum QlikMessage {
    /// A row change, ready for the apply plan.
    Change(CdcEvent),
    /// A metadata message; the cache now knows this table's structure (unless it already knew a
    /// newer version, in which case `updated` is false). Acknowledge it; nothing is written.
    Metadata {
        /// Table described.
        table: TableRef,
        /// Its `tableVersion`.
        table_version: i64,
        /// Whether the cache changed.
        updated: bool,
    },
}

/// Decodes one Qlik Replicate JSON message (either shape). Metadata messages update `metadata`;
/// data messages read key columns from it. `origin` is stamped on the event as-is.
pub fn decode_qlik_json(
    bytes: &[u8],
    ctx: &DecodeContext<'_>,
    metadata: &mut MetadataCache,
    origin: Option<KafkaCoordinates>,
) -> Result<QlikMessage, QlikJsonError> {
    // UTF-8 checked once for the whole message (fast for ASCII); then one pass of the strict
    // scanner reads the envelope and indexes the row images.
    let text = super::simd::utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let (line, column) = line_column(bytes, at);
        QlikJsonError::Syntax {
            message: format!("invalid UTF-8 (byte {at})"),
            line,
            column,
        }
    })?;
    // The message is read into `top` in place: its parts are large, and returning them through
    // each reader cost a copy per level.
    let mut top = Top::default();
    read_top(text, &mut top).map_err(|fail| fail.into_error(text))?;
    match top.magic {
        Some(magic) => {
            if magic != "atMSG" {
                return Err(QlikJsonError::BadMagic {
                    found: magic.into_owned(),
                });
            }
            let kind = top.kind.ok_or(QlikJsonError::Missing { path: "type" })?;
            let body = top
                .message
                .as_mut()
                .ok_or(QlikJsonError::Missing { path: "message" })?;
            match kind.as_ref() {
                "DT" => {
                    let headers = body.headers.as_ref().ok_or(QlikJsonError::Missing {
                        path: "message.headers",
                    })?;
                    data_message(
                        &mut body.parts,
                        headers,
                        "message.headers",
                        ctx,
                        metadata,
                        origin,
                    )
                }
                "MD" => metadata_message(std::mem::take(body), metadata),
                other => Err(QlikJsonError::BadMessageType {
                    found: other.to_owned(),
                }),
            }
        }
        None => {
            if let Some(found) = top.headers_not_object {
                return Err(invalid(
                    "headers",
                    format!("expected an object, found {found}"),
                ));
            }
            let headers = top
                .headers
                .as_ref()
                .ok_or(QlikJsonError::Missing { path: "headers" })?;
            data_message(&mut top.parts, headers, "headers", ctx, metadata, origin)
        }
    }
}

/// The pieces of a data message, whichever shape carried them.
#[derive(Default)]
struct DataParts<'a> {
    data: Option<RowImage>,
    before: Option<RowImage>,
    schema: Option<Cow<'a, str>>,
    table: Option<Cow<'a, str>>,
}

/// Where the [`DataParts`] fields sit in one shape, for errors.
struct PartPaths {
    data: &'static str,
    before: &'static str,
    schema: &'static str,
    table: &'static str,
}

const UNWRAPPED: PartPaths = PartPaths {
    data: "data",
    before: "beforeData",
    schema: "schema",
    table: "table",
};

const ENVELOPED: PartPaths = PartPaths {
    data: "message.data",
    before: "message.beforeData",
    schema: "message.schema",
    table: "message.table",
};

impl<'a> DataParts<'a> {
    /// Reads the member `name` if it is one of the parts (answering whether it was); the parts
    /// take bits 8 to 11 of `seen`.
    fn read(
        &mut self,
        scan: &mut Scanner<'a>,
        key: &JsonStr,
        name: &str,
        seen: &mut Seen,
        paths: &PartPaths,
    ) -> Result<bool, Fail> {
        match name {
            "data" => {
                seen.first(8, key, name)?;
                self.data = image_field(scan, paths.data)?;
            }
            "beforeData" => {
                seen.first(9, key, name)?;
                self.before = image_field(scan, paths.before)?;
            }
            "schema" => {
                seen.first(10, key, name)?;
                self.schema = string_field(scan, paths.schema)?;
            }
            "table" => {
                seen.first(11, key, name)?;
                self.table = string_field(scan, paths.table)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

fn data_message(
    parts: &mut DataParts<'_>,
    headers: &Headers<'_>,
    hpath: &'static str,
    ctx: &DecodeContext<'_>,
    metadata: &MetadataCache,
    origin: Option<KafkaCoordinates>,
) -> Result<QlikMessage, QlikJsonError> {
    let at = |field: &'static str| -> &'static str {
        // Paths are static so errors stay cheap to build; both shapes are spelled out.
        match (hpath, field) {
            ("headers", "operation") => "headers.operation",
            ("headers", "changeSequence") => "headers.changeSequence",
            ("headers", "timestamp") => "headers.timestamp",
            ("headers", "streamPosition") => "headers.streamPosition",
            ("headers", "transactionId") => "headers.transactionId",
            ("headers", "transactionEventCounter") => "headers.transactionEventCounter",
            ("headers", "transactionLastEvent") => "headers.transactionLastEvent",
            ("headers", "changeMask") => "headers.changeMask",
            ("headers", "columnMask") => "headers.columnMask",
            (_, "changeMask") => "message.headers.changeMask",
            (_, "columnMask") => "message.headers.columnMask",
            (_, "operation") => "message.headers.operation",
            (_, "changeSequence") => "message.headers.changeSequence",
            (_, "timestamp") => "message.headers.timestamp",
            (_, "streamPosition") => "message.headers.streamPosition",
            (_, "transactionId") => "message.headers.transactionId",
            (_, "transactionEventCounter") => "message.headers.transactionEventCounter",
            _ => "message.headers.transactionLastEvent",
        }
    };
    let op_text = match &headers.operation {
        Some(Scalar::Str(s)) => s.as_ref(),
        None | Some(Scalar::Null) => {
            return Err(QlikJsonError::Missing {
                path: at("operation"),
            })
        }
        Some(other) => return Err(invalid(at("operation"), other.expected("a string"))),
    };
    let operation = parse_operation(op_text)
        .ok_or_else(|| invalid(at("operation"), format!("unknown operation {op_text:?}")))?;

    let change_sequence = match optional_string(&headers.change_sequence, at("changeSequence"))? {
        Some(seq) if is_valid_sequence(seq) => seq.to_owned(),
        Some("") | None if operation == Operation::Refresh => String::new(),
        Some(seq) => {
            return Err(invalid(
                at("changeSequence"),
                format!("expected 35 decimal digits, found {seq:?}"),
            ))
        }
        None => {
            return Err(QlikJsonError::Missing {
                path: at("changeSequence"),
            })
        }
    };
    let source_timestamp = match &headers.timestamp {
        None | Some(Scalar::Null) => None,
        Some(Scalar::Str(s)) if s.is_empty() => None,
        Some(Scalar::Str(s)) => Some(s.clone().into_owned()),
        Some(Scalar::I64(n)) => Some(n.to_string()),
        Some(Scalar::U64(n)) => Some(n.to_string()),
        Some(other) => return Err(invalid(at("timestamp"), other.expected("a string"))),
    };
    let stream_position = optional_string(&headers.stream_position, at("streamPosition"))?
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let transaction_id = optional_string(&headers.transaction_id, at("transactionId"))?
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    match &headers.transaction_event_counter {
        None | Some(Scalar::Null | Scalar::I64(_) | Scalar::U64(_)) => {}
        Some(Scalar::Str(s)) if s.parse::<u64>().is_ok() => {}
        Some(other) => {
            return Err(invalid(
                at("transactionEventCounter"),
                other.expected("an integer"),
            ))
        }
    }
    match &headers.transaction_last_event {
        None | Some(Scalar::Null | Scalar::Bool) => {}
        Some(Scalar::Str(s)) if s == "true" || s == "false" => {}
        Some(other) => {
            return Err(invalid(
                at("transactionLastEvent"),
                other.expected("a boolean"),
            ))
        }
    }

    for (mask, field) in [
        (&headers.change_mask, "changeMask"),
        (&headers.column_mask, "columnMask"),
    ] {
        if let Some(m) = optional_string(mask, at(field))? {
            if !m.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(
                    at(field),
                    format!("expected hex digits, found {m:?}"),
                ));
            }
        }
    }

    let (after, before) = (parts.data.take(), parts.before.take());
    let table = match (&parts.schema, &parts.table) {
        (Some(schema), Some(table)) => TableRef::new(&**schema, &**table),
        _ => ctx.default_table.cloned().ok_or(QlikJsonError::NoTable)?,
    };
    let key = key_names(&table, Some(metadata), ctx.fallback_keys)
        .and_then(|names| extract_key(names, after.as_ref().or(before.as_ref())))
        .map_err(|source| QlikJsonError::Key {
            table: table.qualified(),
            source,
        })?;
    Ok(QlikMessage::Change(CdcEvent {
        table,
        operation,
        key,
        after,
        before,
        change_sequence,
        source_timestamp,
        transaction_id,
        stream_position,
        kafka: origin,
    }))
}

fn metadata_message(
    body: Body<'_>,
    metadata: &mut MetadataCache,
) -> Result<QlikMessage, QlikJsonError> {
    let lineage = body.lineage.ok_or(QlikJsonError::Missing {
        path: "message.lineage",
    })?;
    let schema = lineage.schema.ok_or(QlikJsonError::Missing {
        path: "message.lineage.schema",
    })?;
    let table_name = lineage.table.ok_or(QlikJsonError::Missing {
        path: "message.lineage.table",
    })?;
    let structure = body.table_structure.ok_or(QlikJsonError::Missing {
        path: "message.tableStructure",
    })?;
    let columns = structure
        .table_columns
        .into_iter()
        .map(|(name, c)| ColumnMetadata {
            name,
            ordinal: c.ordinal.unwrap_or(0),
            data_type: c.data_type.unwrap_or_default(),
            primary_key_position: c.primary_key_position.unwrap_or(0),
        })
        .collect();
    let table = TableRef::new(schema, table_name);
    let table_version = lineage.table_version.unwrap_or(0);
    let updated = metadata.insert(TableMetadata::new(table.clone(), table_version, columns));
    Ok(QlikMessage::Metadata {
        table,
        table_version,
        updated,
    })
}

/// Qlik's operation names; REFRESH is a full-load row.
pub(crate) fn parse_operation(s: &str) -> Option<Operation> {
    match s {
        "INSERT" => Some(Operation::Insert),
        "UPDATE" => Some(Operation::Update),
        "DELETE" => Some(Operation::Delete),
        "REFRESH" => Some(Operation::Refresh),
        _ => None,
    }
}

fn invalid(path: &'static str, problem: String) -> QlikJsonError {
    QlikJsonError::Invalid { path, problem }
}

fn optional_string<'s>(
    v: &'s Option<Scalar<'_>>,
    path: &'static str,
) -> Result<Option<&'s str>, QlikJsonError> {
    match v {
        None | Some(Scalar::Null) => Ok(None),
        Some(Scalar::Str(s)) => Ok(Some(s.as_ref())),
        Some(other) => Err(invalid(path, other.expected("a string"))),
    }
}

/// The top level of either shape; fields of the other shape are simply absent.
#[derive(Default)]
struct Top<'a> {
    magic: Option<Cow<'a, str>>,
    kind: Option<Cow<'a, str>>,
    /// Envelope headers (free-form, usually null) or, unwrapped, the change headers.
    headers: Option<Headers<'a>>,
    /// What `headers` was when it was neither an object nor null (an error only when unwrapped).
    headers_not_object: Option<&'static str>,
    message: Option<Body<'a>>,
    parts: DataParts<'a>,
}

/// The enveloped message: data-message and metadata-message fields side by side, so one pass
/// reads either whatever order the keys come in.
#[derive(Default)]
struct Body<'a> {
    parts: DataParts<'a>,
    headers: Option<Headers<'a>>,
    lineage: Option<Lineage>,
    table_structure: Option<TableStructure>,
}

/// Why reading the message failed: bad JSON (placed by byte offset), or a field of the wrong
/// kind.
enum Fail {
    Syntax(ScanError),
    Field(QlikJsonError),
}

impl From<ScanError> for Fail {
    fn from(e: ScanError) -> Self {
        Fail::Syntax(e)
    }
}

impl Fail {
    fn into_error(self, text: &str) -> QlikJsonError {
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
struct Seen(u16);

impl Seen {
    fn first(&mut self, bit: u16, key: &JsonStr, name: &str) -> Result<(), Fail> {
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

fn read_top<'a>(text: &'a str, top: &mut Top<'a>) -> Result<(), Fail> {
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

fn read_body<'a>(scan: &mut Scanner<'a>, body: &mut Body<'a>) -> Result<(), Fail> {
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
fn members<'a>(
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
fn object_field<'a, T: Default>(
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
fn string_field<'a>(
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
fn image_field(scan: &mut Scanner<'_>, path: &'static str) -> Result<Option<RowImage>, Fail> {
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
fn read_headers<'a>(scan: &mut Scanner<'a>, headers: &mut Headers<'a>) -> Result<(), Fail> {
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
fn read_scalar<'a>(scan: &mut Scanner<'a>) -> Result<Scalar<'a>, ScanError> {
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
struct Lineage {
    #[serde(default)]
    schema: Option<String>,
    #[serde(default)]
    table: Option<String>,
    #[serde(rename = "tableVersion", default)]
    table_version: Option<i64>,
}

#[derive(Deserialize)]
struct TableStructure {
    #[serde(rename = "tableColumns", default)]
    table_columns: BTreeMap<String, ColumnDef>,
}

#[derive(Deserialize)]
struct ColumnDef {
    #[serde(default)]
    ordinal: Option<i64>,
    #[serde(rename = "type", default)]
    data_type: Option<String>,
    #[serde(rename = "primaryKeyPosition", default)]
    primary_key_position: Option<i64>,
}

/// Change headers, every field lenient so type problems become errors with a field path.
#[derive(Default)]
struct Headers<'a> {
    operation: Option<Scalar<'a>>,
    change_sequence: Option<Scalar<'a>>,
    timestamp: Option<Scalar<'a>>,
    stream_position: Option<Scalar<'a>>,
    transaction_id: Option<Scalar<'a>>,
    transaction_event_counter: Option<Scalar<'a>>,
    transaction_last_event: Option<Scalar<'a>>,
    change_mask: Option<Scalar<'a>>,
    column_mask: Option<Scalar<'a>>,
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
    fn expected(&self, what: &str) -> String {
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
