//! Avro schemas compiled for reading.
//!
//! `apache_avro` parses the schema text once; this module flattens the parsed schema into an arena
//! of [`Node`]s, named types becoming indices so recursive schemas stay finite, and logical types
//! becoming their own nodes so the reader renders them without looking anything up.

use std::collections::HashMap;

use apache_avro::schema::Schema;

use crate::cdc::row::ColumnKey;

/// One compiled schema node; children are indices into [`Compiled::nodes`].
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Fixed(usize),
    Enum(Vec<String>),
    Array(usize),
    Map(usize),
    Union(Vec<usize>),
    Record(Vec<(ColumnKey, usize)>),
    /// Decimal over `bytes` (`fixed: None`) or a fixed of that size.
    Decimal {
        scale: usize,
        fixed: Option<usize>,
    },
    BigDecimal,
    Uuid,
    Date,
    TimeMillis,
    TimeMicros,
    Timestamp(TimeUnit, bool),
    Duration,
    /// A named type still being compiled (only seen transiently).
    Pending,
}

/// Resolution of a timestamp logical type.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TimeUnit {
    Millis,
    Micros,
    Nanos,
}

/// A schema flattened for reading.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub(crate) nodes: Vec<Node>,
    pub(crate) root: usize,
}

impl Compiled {
    /// Flattens a parsed schema; fails only on a reference to an undefined name.
    pub(crate) fn new(schema: &Schema) -> Result<Self, String> {
        let mut c = Compiler {
            nodes: Vec::new(),
            named: HashMap::new(),
        };
        let root = c.compile(schema)?;
        Ok(Compiled {
            nodes: c.nodes,
            root,
        })
    }

    /// The node at `idx`; indices come from compilation so they are always in range, but a
    /// missing node still reads as an error rather than a panic.
    pub(crate) fn node(&self, idx: usize) -> &Node {
        self.nodes.get(idx).unwrap_or(&Node::Pending)
    }

    /// Follows a nullable union (`["null", T]`) to `T`; other nodes are returned as they are.
    pub(crate) fn non_null(&self, idx: usize) -> usize {
        if let Node::Union(branches) = self.node(idx) {
            let others: Vec<usize> = branches
                .iter()
                .copied()
                .filter(|b| !matches!(self.node(*b), Node::Null))
                .collect();
            if let [only] = others.as_slice() {
                return *only;
            }
        }
        idx
    }
}

struct Compiler {
    nodes: Vec<Node>,
    named: HashMap<String, usize>,
}

impl Compiler {
    fn push(&mut self, n: Node) -> usize {
        self.nodes.push(n);
        self.nodes.len() - 1
    }

    fn compile(&mut self, s: &Schema) -> Result<usize, String> {
        let node = match s {
            Schema::Null => Node::Null,
            Schema::Boolean => Node::Boolean,
            Schema::Int => Node::Int,
            Schema::Long => Node::Long,
            Schema::Float => Node::Float,
            Schema::Double => Node::Double,
            Schema::Bytes => Node::Bytes,
            Schema::String => Node::String,
            Schema::Uuid => Node::Uuid,
            Schema::Date => Node::Date,
            Schema::TimeMillis => Node::TimeMillis,
            Schema::TimeMicros => Node::TimeMicros,
            Schema::TimestampMillis => Node::Timestamp(TimeUnit::Millis, true),
            Schema::TimestampMicros => Node::Timestamp(TimeUnit::Micros, true),
            Schema::TimestampNanos => Node::Timestamp(TimeUnit::Nanos, true),
            Schema::LocalTimestampMillis => Node::Timestamp(TimeUnit::Millis, false),
            Schema::LocalTimestampMicros => Node::Timestamp(TimeUnit::Micros, false),
            Schema::LocalTimestampNanos => Node::Timestamp(TimeUnit::Nanos, false),
            Schema::Duration => Node::Duration,
            Schema::BigDecimal => Node::BigDecimal,
            Schema::Decimal(d) => {
                let fixed = match d.inner.as_ref() {
                    Schema::Fixed(f) => Some(f.size),
                    _ => None,
                };
                Node::Decimal {
                    scale: d.scale,
                    fixed,
                }
            }
            Schema::Fixed(f) => {
                let idx = self.push(Node::Fixed(f.size));
                self.named.insert(f.name.fullname(None), idx);
                return Ok(idx);
            }
            Schema::Enum(e) => {
                let idx = self.push(Node::Enum(e.symbols.clone()));
                self.named.insert(e.name.fullname(None), idx);
                return Ok(idx);
            }
            Schema::Array(a) => {
                let idx = self.push(Node::Pending);
                let item = self.compile(&a.items)?;
                self.nodes[idx] = Node::Array(item);
                return Ok(idx);
            }
            Schema::Map(m) => {
                let idx = self.push(Node::Pending);
                let item = self.compile(&m.types)?;
                self.nodes[idx] = Node::Map(item);
                return Ok(idx);
            }
            Schema::Union(u) => {
                let idx = self.push(Node::Pending);
                let mut branches = Vec::with_capacity(u.variants().len());
                for v in u.variants() {
                    branches.push(self.compile(v)?);
                }
                self.nodes[idx] = Node::Union(branches);
                return Ok(idx);
            }
            Schema::Record(r) => {
                let idx = self.push(Node::Pending);
                // Registered before the fields so a recursive reference resolves to this node.
                self.named.insert(r.name.fullname(None), idx);
                let mut fields = Vec::with_capacity(r.fields.len());
                for f in &r.fields {
                    fields.push((ColumnKey::new(&f.name), self.compile(&f.schema)?));
                }
                self.nodes[idx] = Node::Record(fields);
                return Ok(idx);
            }
            Schema::Ref { name } => {
                let full = name.fullname(None);
                return self
                    .named
                    .get(&full)
                    .or_else(|| self.named.get(&name.name))
                    .copied()
                    .ok_or_else(|| format!("reference to undefined type {full}"));
            }
        };
        Ok(self.push(node))
    }
}
