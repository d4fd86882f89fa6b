//! Table structures learned from Qlik metadata messages, and the configured key fallback.
//!
//! Qlik data messages do not say which columns form the primary key; the metadata (`MD`) message
//! Qlik sends before a table's first data message (and again after every DDL change, with a
//! higher `tableVersion`) does, through each column's `primaryKeyPosition`. [`MetadataCache`]
//! remembers the newest structure per `schema.table`; [`FallbackKeys`] covers tables whose
//! metadata message was never seen (e.g. consumed before this process started).

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::error::KeyError;
use super::TableRef;

/// One column of a source table, as described by a Qlik metadata message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnMetadata {
    /// Column name.
    pub name: String,
    /// Position of the column in the record (1-based in Qlik's messages); orders `changeMask` bits.
    pub ordinal: i64,
    /// Qlik data type name (e.g. `INT4`, `STRING`, `NUMERIC`).
    pub data_type: String,
    /// Position in the primary key (1-based), or 0 when the column is not part of it.
    pub primary_key_position: i64,
}

/// The structure of one source table at one `tableVersion`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableMetadata {
    /// Table described.
    pub table: TableRef,
    /// Qlik's structure version; increases on every DDL change, so an older message never
    /// replaces a newer structure.
    pub table_version: i64,
    /// Columns in ordinal order.
    pub columns: Vec<ColumnMetadata>,
    /// Primary-key column names in key order, precomputed once so data messages share them.
    pub key_columns: KeyNames,
}

impl TableMetadata {
    /// Builds the structure and derives the key order from `primaryKeyPosition`.
    pub fn new(table: TableRef, table_version: i64, mut columns: Vec<ColumnMetadata>) -> Self {
        columns.sort_by_key(|c| c.ordinal);
        let mut keyed: Vec<&ColumnMetadata> = columns
            .iter()
            .filter(|c| c.primary_key_position > 0)
            .collect();
        keyed.sort_by_key(|c| c.primary_key_position);
        let key_columns = keyed.iter().map(|c| Arc::from(c.name.as_str())).collect();
        Self {
            table,
            table_version,
            columns,
            key_columns,
        }
    }
}

/// Latest known structure per source table, fed by Qlik metadata messages.
///
/// Nested maps keyed by schema then table let a data message look its table up by `&str` without
/// building a key.
#[derive(Debug, Clone, Default)]
pub struct MetadataCache {
    /// schema -> table -> structure.
    tables: HashMap<Arc<str>, HashMap<Arc<str>, TableMetadata>>,
}

impl MetadataCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a structure unless a newer `tableVersion` is already known (metadata can be
    /// replayed after a rebalance). Returns whether the cache changed.
    pub fn insert(&mut self, meta: TableMetadata) -> bool {
        let by_table = self.tables.entry(meta.table.schema.clone()).or_default();
        match by_table.get(&meta.table.table) {
            Some(existing) if existing.table_version > meta.table_version => false,
            _ => {
                by_table.insert(meta.table.table.clone(), meta);
                true
            }
        }
    }

    /// The known structure of `schema.table`.
    pub fn get(&self, schema: &str, table: &str) -> Option<&TableMetadata> {
        self.tables.get(schema)?.get(table)
    }

    /// Number of tables known; for metrics and tests.
    pub fn len(&self) -> usize {
        self.tables.values().map(HashMap::len).sum()
    }

    /// Whether no table is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Key column names in key order, shared with every change that carries them.
pub type KeyNames = Vec<Arc<str>>;

/// Key columns configured by the operator, for tables whose metadata message is not known.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FallbackKeys {
    /// schema -> table -> key column names, in key order.
    #[serde(default)]
    pub per_table: HashMap<Arc<str>, HashMap<Arc<str>, KeyNames>>,
    /// Key columns assumed for any other table (e.g. `["ID"]`), if set.
    #[serde(default)]
    pub default: Option<KeyNames>,
}

impl FallbackKeys {
    /// No fallback: a table without metadata is an error.
    pub fn none() -> Self {
        Self::default()
    }

    /// Adds the key columns of one table.
    pub fn with_table(mut self, table: &TableRef, columns: Vec<String>) -> Self {
        self.per_table
            .entry(table.schema.clone())
            .or_default()
            .insert(table.table.clone(), shared(columns));
        self
    }

    /// Sets the key columns assumed for unlisted tables.
    pub fn with_default(mut self, columns: Vec<String>) -> Self {
        self.default = Some(shared(columns));
        self
    }

    /// The configured key of `schema.table`, if any.
    pub fn get(&self, schema: &str, table: &str) -> Option<&[Arc<str>]> {
        self.per_table
            .get(schema)
            .and_then(|t| t.get(table))
            .or(self.default.as_ref())
            .map(Vec::as_slice)
            .filter(|cols| !cols.is_empty())
    }
}

/// Configured names as [`KeyNames`], shared from here on.
fn shared(columns: Vec<String>) -> KeyNames {
    columns.into_iter().map(Arc::from).collect()
}

/// Key column names of a table: metadata first (it follows DDL changes), then configuration.
pub(crate) fn key_names<'a>(
    table: &TableRef,
    cache: Option<&'a MetadataCache>,
    fallback: &'a FallbackKeys,
) -> Result<&'a [Arc<str>], KeyError> {
    if let Some(meta) = cache.and_then(|c| c.get(&table.schema, &table.table)) {
        if !meta.key_columns.is_empty() {
            return Ok(&meta.key_columns);
        }
    }
    fallback
        .get(&table.schema, &table.table)
        .ok_or_else(|| KeyError::UnknownKey {
            table: table.qualified(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(names: &[&str]) -> Vec<Arc<str>> {
        names.iter().map(|&n| Arc::from(n)).collect()
    }

    fn col(name: &str, ordinal: i64, pk: i64) -> ColumnMetadata {
        ColumnMetadata {
            name: name.into(),
            ordinal,
            data_type: "STRING".into(),
            primary_key_position: pk,
        }
    }

    #[test]
    fn key_order_follows_primary_key_position_not_ordinal() {
        let meta = TableMetadata::new(
            TableRef::new("s", "t"),
            1,
            vec![col("B", 2, 1), col("A", 1, 2), col("C", 3, 0)],
        );
        assert_eq!(meta.key_columns, names(&["B", "A"]));
    }

    #[test]
    fn an_older_table_version_does_not_replace_a_newer_one() {
        let mut cache = MetadataCache::new();
        let t = TableRef::new("s", "t");
        assert!(cache.insert(TableMetadata::new(t.clone(), 2, vec![col("ID", 1, 1)])));
        assert!(!cache.insert(TableMetadata::new(t.clone(), 1, vec![col("X", 1, 1)])));
        assert_eq!(
            cache.get("s", "t").map(|m| m.key_columns.clone()),
            Some(names(&["ID"]))
        );
    }

    #[test]
    fn metadata_wins_over_fallback_and_fallback_over_nothing() {
        let t = TableRef::new("s", "t");
        let fallback = FallbackKeys::none().with_table(&t, vec!["FB".into()]);
        let mut cache = MetadataCache::new();
        assert_eq!(
            key_names(&t, Some(&cache), &fallback).map(<[_]>::to_vec),
            Ok(names(&["FB"]))
        );
        cache.insert(TableMetadata::new(t.clone(), 1, vec![col("ID", 1, 1)]));
        assert_eq!(
            key_names(&t, Some(&cache), &fallback).map(<[_]>::to_vec),
            Ok(names(&["ID"]))
        );
        let other = TableRef::new("s", "u");
        assert!(matches!(
            key_names(&other, Some(&cache), &fallback),
            Err(KeyError::UnknownKey { .. })
        ));
    }
}
