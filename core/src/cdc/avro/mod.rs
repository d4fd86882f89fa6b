//! Qlik Replicate's Avro records in the Confluent wire format.
//!
//! A message is `0x00`, a 4-byte big-endian schema id, then the Avro binary body. The schema is
//! Qlik's data record: a `data` record (the after image), a nullable `beforeData` of the same
//! record, and a `headers` record (`operation` enum, `changeSequence`, `timestamp`,
//! `streamPosition`, `transactionId`, masks and transaction counters), optionally with `schema` and
//! `table` string fields.
//!
//! [`AvroDecoder`] parses and compiles each schema once per id and keeps it; decoding then walks
//! the compiled form straight into `serde_json` values. The async daemon calls
//! [`AvroDecoder::peek_schema_id`] and [`AvroDecoder::has_schema`], fetches a missing schema from
//! the Schema Registry itself and calls [`AvroDecoder::insert_schema`], so decoding never blocks;
//! [`AvroDecoder::decode`] with a synchronous [`SchemaSource`] covers tests and tools.
//!
//! Inside: `schema` (the schema compiled once per id), `read` (the binary reader that walks it)
//! and `logical` (decimals, dates and timestamps rendered as text).
//!
//! Logical types come out as natural JSON: `decimal` as an exact decimal string (`"12.50"`, never a
//! float, so no precision is lost; the apply plan stores it as a string attribute), `date` as
//! `"YYYY-MM-DD"`, `time-*` as `"hh:mm:ss.fff"`, `timestamp-millis/micros/nanos` as RFC 3339 UTC
//! (`"2023-09-11T03:23:25.000Z"`), `local-timestamp-*` the same without `Z`, `uuid` as its
//! hyphenated string, `bytes`/`fixed` as standard base64, and NaN/infinite floats as `null`.

use std::collections::HashMap;

use apache_avro::schema::Schema;
use serde_json::Value;

pub(crate) mod logical;
mod read;
mod schema;

use crate::cdc::error::{AvroError, SchemaSourceError};
use crate::cdc::metadata::{table_key, MetadataCache};
use crate::cdc::qlik::parse_operation;
use crate::cdc::row::RowImage;
use crate::cdc::{
    is_valid_sequence, CdcEvent, DecodeContext, KafkaCoordinates, Operation, TableRef,
};
use read::{ReadError, Reader};
use schema::{Compiled, Node};

/// Supplies schema text by id on a cache miss (a Schema Registry client, a fixture map).
pub trait SchemaSource {
    /// The schema JSON registered under `id`.
    fn schema(&self, id: u32) -> Result<String, SchemaSourceError>;
}

/// A fixed set of schemas, for tests, tools and pre-seeded caches.
impl SchemaSource for HashMap<u32, String> {
    fn schema(&self, id: u32) -> Result<String, SchemaSourceError> {
        self.get(&id)
            .cloned()
            .ok_or(SchemaSourceError::NotFound { id })
    }
}

/// A source that knows nothing: decoding succeeds only for schemas already inserted.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSchemaSource;

impl SchemaSource for NoSchemaSource {
    fn schema(&self, id: u32) -> Result<String, SchemaSourceError> {
        Err(SchemaSourceError::NotFound { id })
    }
}

/// What a top-level field of the data record means to us.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    Data,
    BeforeData,
    Headers,
    Schema,
    Table,
    Other,
}

/// What a field of the headers record means to us.
#[derive(Debug, Clone, Copy, PartialEq)]
enum HeaderRole {
    Operation,
    ChangeSequence,
    Timestamp,
    StreamPosition,
    TransactionId,
    Other,
}

/// A schema compiled for Qlik records: the field roles are worked out once, not per message.
#[derive(Debug, Clone)]
struct Layout {
    compiled: Compiled,
    fields: Vec<(String, usize, Role)>,
    header_record: usize,
    header_fields: Vec<(usize, HeaderRole)>,
}

impl Layout {
    fn new(id: u32, text: &str) -> Result<Self, AvroError> {
        let schema = Schema::parse_str(text).map_err(|e| AvroError::SchemaParse {
            id,
            message: e.to_string(),
        })?;
        let compiled =
            Compiled::new(&schema).map_err(|message| AvroError::SchemaParse { id, message })?;
        let shape = |problem: &str| AvroError::SchemaShape {
            id,
            problem: problem.to_owned(),
        };
        let Node::Record(top) = compiled.node(compiled.root) else {
            return Err(shape("the top-level type is not a record"));
        };
        let fields: Vec<(String, usize, Role)> = top
            .iter()
            .map(|(name, idx)| {
                let role = match &**name {
                    "data" => Role::Data,
                    "beforeData" => Role::BeforeData,
                    "headers" => Role::Headers,
                    "schema" => Role::Schema,
                    "table" => Role::Table,
                    _ => Role::Other,
                };
                (name.to_string(), *idx, role)
            })
            .collect();
        let headers_idx = fields
            .iter()
            .find(|f| f.2 == Role::Headers)
            .map(|f| f.1)
            .ok_or_else(|| shape("no `headers` field"))?;
        let header_record = compiled.non_null(headers_idx);
        let Node::Record(hfields) = compiled.node(header_record) else {
            return Err(shape("`headers` is not a record"));
        };
        let header_fields: Vec<(usize, HeaderRole)> = hfields
            .iter()
            .map(|(name, idx)| {
                let role = match &**name {
                    "operation" => HeaderRole::Operation,
                    "changeSequence" => HeaderRole::ChangeSequence,
                    "timestamp" => HeaderRole::Timestamp,
                    "streamPosition" => HeaderRole::StreamPosition,
                    "transactionId" => HeaderRole::TransactionId,
                    _ => HeaderRole::Other,
                };
                (*idx, role)
            })
            .collect();
        if !header_fields
            .iter()
            .any(|(_, r)| *r == HeaderRole::Operation)
        {
            return Err(shape("`headers` has no `operation` field"));
        }
        Ok(Layout {
            compiled,
            fields,
            header_record,
            header_fields,
        })
    }
}

/// Header values as read, before validation.
#[derive(Default)]
struct RawHeaders {
    operation: Option<Value>,
    change_sequence: Option<Value>,
    timestamp: Option<Value>,
    stream_position: Option<Value>,
    transaction_id: Option<Value>,
}

/// Decodes Confluent-framed Qlik Avro records, keeping every schema it has seen compiled.
#[derive(Debug, Default)]
pub struct AvroDecoder {
    /// Schema id -> compiled layout; schemas are immutable in a registry, so entries never expire.
    layouts: HashMap<u32, Layout>,
}

impl AvroDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The schema id in a Confluent frame, so the caller can fetch a missing schema first.
    pub fn peek_schema_id(bytes: &[u8]) -> Result<u32, AvroError> {
        match bytes {
            [0, a, b, c, d, ..] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
            [m, _, _, _, _, ..] => Err(AvroError::BadMagic { found: *m }),
            _ => Err(AvroError::TooShort { len: bytes.len() }),
        }
    }

    /// Whether the schema `id` is already compiled.
    pub fn has_schema(&self, id: u32) -> bool {
        self.layouts.contains_key(&id)
    }

    /// Parses, checks and compiles the schema text registered under `id`.
    pub fn insert_schema(&mut self, id: u32, text: &str) -> Result<(), AvroError> {
        let layout = Layout::new(id, text)?;
        self.layouts.insert(id, layout);
        Ok(())
    }

    /// Decodes one message, asking `source` for the schema only if this id was never seen.
    pub fn decode(
        &mut self,
        bytes: &[u8],
        source: &dyn SchemaSource,
        ctx: &DecodeContext<'_>,
        metadata: Option<&MetadataCache>,
        origin: Option<KafkaCoordinates>,
    ) -> Result<CdcEvent, AvroError> {
        let id = Self::peek_schema_id(bytes)?;
        if !self.has_schema(id) {
            let text = source
                .schema(id)
                .map_err(|source| AvroError::SchemaSource { id, source })?;
            self.insert_schema(id, &text)?;
        }
        self.decode_cached(bytes, ctx, metadata, origin)
    }

    /// Decodes one message whose schema must already be cached; never consults a source, so it
    /// can run on a shared reference.
    pub fn decode_cached(
        &self,
        bytes: &[u8],
        ctx: &DecodeContext<'_>,
        metadata: Option<&MetadataCache>,
        origin: Option<KafkaCoordinates>,
    ) -> Result<CdcEvent, AvroError> {
        let id = Self::peek_schema_id(bytes)?;
        let layout = self.layouts.get(&id).ok_or(AvroError::SchemaSource {
            id,
            source: SchemaSourceError::NotFound { id },
        })?;
        let body = bytes.get(5..).unwrap_or(&[]);
        let mut r = Reader::new(body, 5);
        let c = &layout.compiled;
        let body_err = |e: Box<ReadError>| AvroError::Body {
            id,
            offset: e.offset,
            path: e.path_string(),
            problem: e.problem,
        };
        let mut data = None;
        let mut before = None;
        let mut headers = None;
        let (mut schema, mut table) = (None, None);
        for (name, idx, role) in &layout.fields {
            match role {
                Role::Headers => {
                    headers = Some(
                        read_headers(&mut r, layout, *idx, 0)
                            .map_err(|e| body_err(e.within(name)))?,
                    );
                }
                Role::Data => data = r.row(c, *idx, 1).map_err(|e| body_err(e.within(name)))?,
                Role::BeforeData => {
                    before = r.row(c, *idx, 1).map_err(|e| body_err(e.within(name)))?
                }
                _ => {
                    let v = r.value(c, *idx, 1).map_err(|e| body_err(e.within(name)))?;
                    match (role, v) {
                        (Role::Schema, Value::String(s)) => schema = Some(s),
                        (Role::Table, Value::String(s)) => table = Some(s),
                        _ => {}
                    }
                }
            }
        }
        if r.remaining() != 0 {
            return Err(AvroError::Body {
                id,
                offset: r.offset(),
                path: "$".into(),
                problem: format!("{} trailing bytes after the record", r.remaining()),
            });
        }
        let h = headers.ok_or(AvroError::Header {
            id,
            path: "headers",
            problem: "missing".into(),
        })?;
        build_event(id, h, data, before, schema, table, ctx, metadata, origin)
    }
}

/// Reads the headers field (a record, possibly inside a nullable union) by role.
fn read_headers(
    r: &mut Reader<'_>,
    layout: &Layout,
    idx: usize,
    depth: usize,
) -> Result<RawHeaders, Box<ReadError>> {
    let c = &layout.compiled;
    if idx == layout.header_record {
        let mut h = RawHeaders::default();
        for (field_idx, role) in &layout.header_fields {
            let v = r.value(c, *field_idx, 2)?;
            match role {
                HeaderRole::Operation => h.operation = Some(v),
                HeaderRole::ChangeSequence => h.change_sequence = Some(v),
                HeaderRole::Timestamp => h.timestamp = Some(v),
                HeaderRole::StreamPosition => h.stream_position = Some(v),
                HeaderRole::TransactionId => h.transaction_id = Some(v),
                HeaderRole::Other => {}
            }
        }
        return Ok(h);
    }
    match c.node(idx) {
        Node::Union(branches) if depth < 4 => {
            let branch = r.union_branch(branches)?;
            read_headers(r, layout, branch, depth + 1)
        }
        Node::Null => Err(ReadError::new(r.offset(), "headers is null")),
        _ => Err(ReadError::new(r.offset(), "headers has an unexpected type")),
    }
}

#[allow(clippy::too_many_arguments)]
fn build_event(
    id: u32,
    h: RawHeaders,
    data: Option<RowImage>,
    before: Option<RowImage>,
    schema: Option<String>,
    table: Option<String>,
    ctx: &DecodeContext<'_>,
    metadata: Option<&MetadataCache>,
    origin: Option<KafkaCoordinates>,
) -> Result<CdcEvent, AvroError> {
    let header = |path: &'static str, problem: String| AvroError::Header { id, path, problem };
    let operation = match &h.operation {
        Some(Value::String(s)) => parse_operation(s)
            .ok_or_else(|| header("headers.operation", format!("unknown operation {s:?}")))?,
        _ => {
            return Err(header(
                "headers.operation",
                "missing or not a string".into(),
            ))
        }
    };
    let change_sequence = match h.change_sequence {
        Some(Value::String(s)) if is_valid_sequence(&s) => s,
        Some(Value::String(s)) if s.is_empty() && operation == Operation::Refresh => s,
        Some(Value::Null) | None if operation == Operation::Refresh => String::new(),
        Some(other) => {
            return Err(header(
                "headers.changeSequence",
                format!("expected 35 decimal digits, found {other}"),
            ))
        }
        None => return Err(header("headers.changeSequence", "missing".into())),
    };
    let text = |v: Option<Value>| match v {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let table = match (schema, table) {
        (Some(schema), Some(table)) => TableRef::new(schema, table),
        _ => ctx.default_table.cloned().ok_or(AvroError::NoTable)?,
    };
    let image = data.as_ref().or(before.as_ref());
    let key = table_key(&table, metadata, ctx.fallback_keys, origin.as_ref(), image).map_err(
        |source| AvroError::Key {
            table: table.qualified(),
            source,
        },
    )?;
    Ok(CdcEvent {
        table,
        operation,
        key,
        after: data,
        before,
        change_sequence,
        source_timestamp: text(h.timestamp),
        transaction_id: text(h.transaction_id),
        stream_position: text(h.stream_position),
        kafka: origin,
        trace: None,
    })
}
