//! Table structures learned from Qlik metadata messages, and the configured key fallback.
//!
//! Qlik data messages do not say which columns form the primary key; the metadata (`MD`) message
//! Qlik sends before a table's first data message (and again after every DDL change, with a
//! higher `tableVersion`) does, through each column's `primaryKeyPosition`. [`MetadataCache`]
//! keeps every version of every table it was given; [`FallbackKeys`] covers tables no metadata
//! message describes.
//!
//! The cache itself is plain data: decoding a metadata message does not change it, the caller
//! records the structure (the daemon first makes it durable, then shares it between partitions
//! and pods; see `eda_actors::kafka::table_structures`).
//!
//! Which version keys a data message: the newest one whose key columns are all in the row,
//! except that a version whose metadata message lies *later in the same partition* than the data
//! message (known from [`TableMetadata::origin`]) does not apply to it yet — what a replay after
//! a restart needs, when the store already knows a structure the partition has not reached
//! again. Such versions are still tried last, so a key is never lost for want of a version.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::error::KeyError;
use super::row::RowImage;
use super::{extract_key, KafkaCoordinates, KeyColumn, TableRef};

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
    /// The Kafka message that first described this version, when known: data messages earlier
    /// in the same partition predate it.
    #[serde(default)]
    pub origin: Option<KafkaCoordinates>,
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
            origin: None,
        }
    }

    /// The same structure, first read from the message at `origin`.
    pub fn read_at(mut self, origin: Option<KafkaCoordinates>) -> Self {
        self.origin = origin;
        self
    }

    /// Whether this version's metadata message comes after `at` in the same partition, so the
    /// data message at `at` predates it.
    fn is_after(&self, at: Option<&KafkaCoordinates>) -> bool {
        match (&self.origin, at) {
            (Some(origin), Some(at)) => {
                origin.partition == at.partition
                    && origin.offset > at.offset
                    && origin.topic == at.topic
            }
            _ => false,
        }
    }
}

/// Every known structure per source table, fed by Qlik metadata messages (and, in the daemon,
/// by the durable store of them).
///
/// Nested maps keyed by schema then table let a data message look its table up by `&str` without
/// building a key.
#[derive(Debug, Clone, Default)]
pub struct MetadataCache {
    /// schema -> table -> structures, oldest version first.
    tables: HashMap<Arc<str>, HashMap<Arc<str>, Vec<TableMetadata>>>,
}

impl MetadataCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a structure, in version order, unless its version is known already (metadata is
    /// sent again after a Qlik task restart and replayed after a rebalance; the first structure
    /// recorded for a version is kept, so an older or repeated message never replaces a newer
    /// one). Returns whether the cache changed.
    pub fn insert(&mut self, meta: TableMetadata) -> bool {
        let versions = self
            .tables
            .entry(meta.table.schema.clone())
            .or_default()
            .entry(meta.table.table.clone())
            .or_default();
        match versions.binary_search_by_key(&meta.table_version, |m| m.table_version) {
            Ok(_) => false,
            Err(at) => {
                versions.insert(at, meta);
                true
            }
        }
    }

    /// The newest known structure of `schema.table`.
    pub fn get(&self, schema: &str, table: &str) -> Option<&TableMetadata> {
        self.versions(schema, table).last()
    }

    /// Every known structure of `schema.table`, oldest version first.
    pub fn versions(&self, schema: &str, table: &str) -> &[TableMetadata] {
        self.tables
            .get(schema)
            .and_then(|t| t.get(table))
            .map_or(&[], Vec::as_slice)
    }

    /// Whether `meta`'s version of its table is known.
    pub fn contains(&self, meta: &TableMetadata) -> bool {
        self.versions(&meta.table.schema, &meta.table.table)
            .binary_search_by_key(&meta.table_version, |m| m.table_version)
            .is_ok()
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

/// The key of a change to `table` at `at`, read from `image`: with the key columns of a known
/// structure (see the module doc for which), else with the configured ones.
///
/// A structure whose key columns are not all in the row is passed over for an older (or, last,
/// a later) one; when none fits, the error is the newest applicable structure's. Configuration
/// is consulted only when no structure with key columns is known.
pub(crate) fn table_key(
    table: &TableRef,
    cache: Option<&MetadataCache>,
    fallback: &FallbackKeys,
    at: Option<&KafkaCoordinates>,
    image: Option<&RowImage>,
) -> Result<Vec<KeyColumn>, KeyError> {
    let versions = cache.map_or(&[][..], |c| c.versions(&table.schema, &table.table));
    // The common case first: the newest structure applies and its key is in the row.
    if let Some(newest) = versions.last() {
        if !newest.key_columns.is_empty() && !newest.is_after(at) {
            match extract_key(&newest.key_columns, image) {
                Ok(key) => return Ok(key),
                Err(err) if versions.len() == 1 => return Err(err),
                Err(_) => {}
            }
        }
    }
    let keyed = |m: &&TableMetadata| !m.key_columns.is_empty();
    let in_effect = versions.iter().rev().filter(|m| !m.is_after(at));
    let later = versions.iter().filter(|m| m.is_after(at));
    let mut first_error = None;
    for meta in in_effect.chain(later).filter(keyed) {
        match extract_key(&meta.key_columns, image) {
            Ok(key) => return Ok(key),
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    if let Some(err) = first_error {
        return Err(err);
    }
    let names = fallback
        .get(&table.schema, &table.table)
        .ok_or_else(|| KeyError::UnknownKey {
            table: table.qualified(),
        })?;
    extract_key(names, image)
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

    fn row(pairs: &[(&str, &str)]) -> RowImage {
        let map: serde_json::Map<String, serde_json::Value> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        map.into()
    }

    fn at(partition: i32, offset: i64) -> KafkaCoordinates {
        KafkaCoordinates {
            topic: "cdc".into(),
            partition,
            offset,
        }
    }

    fn key_of(
        cache: &MetadataCache,
        fallback: &FallbackKeys,
        at: Option<&KafkaCoordinates>,
        image: &RowImage,
    ) -> Result<Vec<String>, KeyError> {
        let t = TableRef::new("s", "t");
        table_key(&t, Some(cache), fallback, at, Some(image))
            .map(|key| key.iter().map(|k| k.name.to_string()).collect())
    }

    #[test]
    fn an_older_table_version_replayed_does_not_replace_a_newer_one() {
        let mut cache = MetadataCache::new();
        let t = TableRef::new("s", "t");
        assert!(cache.insert(TableMetadata::new(t.clone(), 2, vec![col("ID", 1, 1)])));
        // The older structure is kept beside it (old data messages may need it), never over it.
        assert!(cache.insert(TableMetadata::new(t.clone(), 1, vec![col("X", 1, 1)])));
        assert_eq!(
            cache
                .get("s", "t")
                .map(|m| (m.table_version, m.key_columns.clone())),
            Some((2, names(&["ID"])))
        );
        // The same version again (a replay, a Qlik task restart) changes nothing, even if it
        // differs: the first structure recorded for a version stands.
        assert!(!cache.insert(TableMetadata::new(t.clone(), 2, vec![col("Y", 1, 1)])));
        assert!(!cache.insert(TableMetadata::new(t.clone(), 1, vec![col("X", 1, 1)])));
        let versions: Vec<(i64, KeyNames)> = cache
            .versions("s", "t")
            .iter()
            .map(|m| (m.table_version, m.key_columns.clone()))
            .collect();
        assert_eq!(versions, [(1, names(&["X"])), (2, names(&["ID"]))]);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn metadata_wins_over_fallback_and_fallback_over_nothing() {
        let t = TableRef::new("s", "t");
        let fallback = FallbackKeys::none().with_table(&t, vec!["FB".into()]);
        let image = row(&[("ID", "1"), ("FB", "2")]);
        let mut cache = MetadataCache::new();
        assert_eq!(
            key_of(&cache, &fallback, None, &image),
            Ok(vec!["FB".into()])
        );
        cache.insert(TableMetadata::new(t.clone(), 1, vec![col("ID", 1, 1)]));
        assert_eq!(
            key_of(&cache, &fallback, None, &image),
            Ok(vec!["ID".into()])
        );
        let other = TableRef::new("s", "u");
        assert!(matches!(
            table_key(&other, Some(&cache), &fallback, None, Some(&image)),
            Err(KeyError::UnknownKey { .. })
        ));
    }

    #[test]
    fn a_row_without_the_newest_key_takes_an_older_structures_key() {
        let t = TableRef::new("s", "t");
        let mut cache = MetadataCache::new();
        cache.insert(TableMetadata::new(t.clone(), 1, vec![col("OLD_ID", 1, 1)]));
        cache.insert(TableMetadata::new(t.clone(), 2, vec![col("NEW_ID", 1, 1)]));
        let none = FallbackKeys::none();
        assert_eq!(
            key_of(
                &cache,
                &none,
                None,
                &row(&[("NEW_ID", "1"), ("OLD_ID", "2")])
            ),
            Ok(vec!["NEW_ID".into()])
        );
        assert_eq!(
            key_of(&cache, &none, None, &row(&[("OLD_ID", "2")])),
            Ok(vec!["OLD_ID".into()])
        );
        assert_eq!(
            key_of(&cache, &none, None, &row(&[("NAME", "x")])),
            Err(KeyError::MissingKeyColumn {
                column: "NEW_ID".into()
            }),
            "no structure fits: the newest one's error"
        );
    }

    #[test]
    fn a_structure_described_later_in_the_same_partition_does_not_key_earlier_data() {
        let t = TableRef::new("s", "t");
        let mut cache = MetadataCache::new();
        cache
            .insert(TableMetadata::new(t.clone(), 1, vec![col("A", 1, 1)]).read_at(Some(at(0, 0))));
        // A DDL change widened the key; its metadata message is at offset 100 of partition 0.
        cache.insert(
            TableMetadata::new(t.clone(), 2, vec![col("A", 1, 1), col("B", 2, 2)])
                .read_at(Some(at(0, 100))),
        );
        let none = FallbackKeys::none();
        let image = row(&[("A", "1"), ("B", "2")]);
        // Replayed data of partition 0 from before the change keeps the key it had then.
        assert_eq!(
            key_of(&cache, &none, Some(&at(0, 50)), &image),
            Ok(vec!["A".into()])
        );
        assert_eq!(
            key_of(&cache, &none, Some(&at(0, 150)), &image),
            Ok(vec!["A".into(), "B".into()])
        );
        // Another partition cannot be ordered against offset 100: the newest structure applies.
        assert_eq!(
            key_of(&cache, &none, Some(&at(1, 50)), &image),
            Ok(vec!["A".into(), "B".into()])
        );
        // A later structure is still better than none.
        let mut only_later = MetadataCache::new();
        only_later.insert(
            TableMetadata::new(t.clone(), 3, vec![col("A", 1, 1)]).read_at(Some(at(0, 100))),
        );
        assert_eq!(
            key_of(&only_later, &none, Some(&at(0, 50)), &image),
            Ok(vec!["A".into()])
        );
    }
}
