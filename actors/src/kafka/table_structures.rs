//! [`TableStructures`]: the structures of Qlik source tables, durable in DynamoDB and shared by
//! every partition of the process (and, through the store, by every pod).
//!
//! # Why it exists
//!
//! A Qlik data message does not say which columns form its table's primary key; the metadata
//! (`MD`) message Qlik sends before a table's first data message (and again, with a higher
//! `tableVersion`, after each DDL change) does. Kept only in memory, per partition, that
//! knowledge was lost on every restart and rebalance: the data messages after the committed
//! offset found no key, were dead-lettered and committed, and a redrive failed the same way. A
//! partition whose table's metadata message went to another partition never had it at all.
//!
//! # Where table structure lives
//!
//! In a dedicated DynamoDB table, `regions.primary.metadata_table` (created by
//! `deploy/local/resources.py` locally; one item per table and version, described in
//! `aws/table_structures.rs`). Weighed against the alternatives:
//!
//! - items in the CDC table: every reader of that table (and of its stream: the stream-processor
//!   Lambda would publish them as changes) would meet rows that are no source rows, and the CDC
//!   table's key schema (`pk` alone) cannot hold a version per table without a made-up key;
//! - a compacted Kafka topic: eda would need producer rights and a topic of its own, and a
//!   restarted pod would have to read it whole before its first message; Kafka offers no
//!   conditional write to keep an older structure from landing after a newer one.
//!
//! DynamoDB is already a dependency of every pod, is strongly consistent on read, and its
//! conditional write records each version once.
//!
//! **IAM**: the daemon's role (and the redrive's) needs `dynamodb:PutItem`, `dynamodb:Query` and
//! `dynamodb:Scan` on `arn:aws:dynamodb:<region>:<account>:table/<metadata_table>`.
//!
//! # When it is written and read
//!
//! - **Written before the metadata message is acknowledged.** [`TableStructures::record`] returns
//!   once the item is in DynamoDB, and the decoder answers for the metadata message only then; so
//!   by the time its offset can be committed, the structure is durable. A crash before that
//!   replays the message, and recording it again changes nothing.
//! - **Loaded at start**: the consumer group reads the whole table ([`TableStructures::load`])
//!   before it joins. One in-memory [`MetadataCache`] then serves every partition of the process:
//!   it is replaced (copy on write) when a structure is learned, and a decoder notices through a
//!   generation counter, one atomic load per message.
//! - **Looked up on a miss**: a data message whose key cannot be found (its table is unknown here,
//!   or a key column is missing from the row) makes the decoder ask the store for the table's
//!   versions ([`TableStructures::look_up`]) before giving up: another pod may have recorded it
//!   since this one started. Only a table that neither the store, the stream nor
//!   `kafka.key_columns` describes is a permanent "unknown key" dead letter.
//!
//! # Versions
//!
//! Every version is kept (an item each, written once under `attribute_not_exists`), so a replayed
//! older metadata message never replaces a newer structure, in the store or in memory. Which
//! version keys a data message is the core's rule (`eda_core::cdc::metadata`): the newest whose
//! key columns are in the row, except one whose metadata message lies later in the same partition.
//!
//! # Failures
//!
//! A store call that fails transiently (throttling, a timeout, a refused connection, a 5xx) makes
//! the message's decode fail with that retryable [`ErrorClass`](eda_core::failure::ErrorClass):
//! the message is not the problem, and the partition holds it until the store answers. A refusal
//! on its merits (the table does not exist, access denied) stops the consumer group at start with
//! the table's name; met later, it dead-letters the message with class `client` (redrivable once
//! fixed). A transient failure of the load at start does not stop the group: decoders load the
//! table before their first message instead.

use crate::ports::{SinkError, TableStructureStore};
use eda_core::cdc::{MetadataCache, TableMetadata};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// The table structures one process knows, and the store that makes them durable.
pub struct TableStructures {
    /// The durable record every pod shares.
    store: Arc<dyn TableStructureStore>,
    /// What this process knows; replaced whole when it learns something, so a decoder's copy of
    /// the `Arc` stays valid while it decodes.
    cache: RwLock<Arc<MetadataCache>>,
    /// Bumped on every replacement of `cache`; a decoder compares it with its copy's.
    generation: AtomicU64,
    /// Whether the store has been read whole since the process started.
    loaded: AtomicBool,
    /// One load at a time: partitions starting together would each scan the table otherwise.
    loading: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for TableStructures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableStructures")
            .field("store", &self.store.name())
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl TableStructures {
    /// Nothing known yet; [`load`](Self::load) reads the store.
    pub fn new(store: Arc<dyn TableStructureStore>) -> Self {
        Self {
            store,
            cache: RwLock::new(Arc::new(MetadataCache::new())),
            generation: AtomicU64::new(0),
            loaded: AtomicBool::new(false),
            loading: tokio::sync::Mutex::new(()),
        }
    }

    /// Where the structures are kept (the metadata table's name).
    pub fn store_name(&self) -> &str {
        self.store.name()
    }

    /// Reads every recorded structure into memory; returns how many the store holds.
    pub async fn load(&self) -> Result<usize, SinkError> {
        let _one_at_a_time = self.loading.lock().await;
        self.load_locked().await
    }

    /// Loads the store unless it was loaded since the process started.
    pub async fn ensure_loaded(&self) -> Result<(), SinkError> {
        if self.loaded.load(Ordering::Acquire) {
            return Ok(());
        }
        let _one_at_a_time = self.loading.lock().await;
        if !self.loaded.load(Ordering::Acquire) {
            self.load_locked().await?;
        }
        Ok(())
    }

    async fn load_locked(&self) -> Result<usize, SinkError> {
        let structures = self.store.all().await?;
        let count = structures.len();
        self.merge(structures);
        self.loaded.store(true, Ordering::Release);
        Ok(count)
    }

    /// Whether the store has been read whole.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// The generation of what is known; it changes whenever something is learned.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// What is known now, with its generation.
    pub fn snapshot(&self) -> (u64, Arc<MetadataCache>) {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        (self.generation(), cache.clone())
    }

    /// Makes `structure` durable, then known to every partition. A version known already is
    /// not written again. When the store holds the version already (another pod, or this one
    /// before a restart, recorded it), the stored structure is the one taken.
    pub async fn record(&self, structure: TableMetadata) -> Result<(), SinkError> {
        if self.snapshot().1.contains(&structure) {
            return Ok(());
        }
        if self.store.record(&structure).await? {
            tracing::info!(
                table = %structure.table.qualified(),
                table_version = structure.table_version,
                key_columns = ?structure.key_columns,
                store = self.store.name(),
                "Table structure recorded."
            );
            self.merge(vec![structure]);
        } else {
            self.look_up(&structure.table.qualified()).await?;
        }
        Ok(())
    }

    /// Asks the store for every version of the table `qualified` (`SCHEMA.TABLE`); returns
    /// whether that taught this process anything.
    pub async fn look_up(&self, qualified: &str) -> Result<bool, SinkError> {
        let versions = self.store.versions(qualified).await?;
        let learned = self.merge(versions);
        if learned {
            tracing::info!(
                table = qualified,
                store = self.store.name(),
                "Table structure read from the store."
            );
        }
        Ok(learned)
    }

    /// Adds what is new among `structures`; returns whether anything was.
    fn merge(&self, structures: Vec<TableMetadata>) -> bool {
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        let fresh: Vec<TableMetadata> = structures
            .into_iter()
            .filter(|s| !cache.contains(s))
            .collect();
        if fresh.is_empty() {
            return false;
        }
        let mut next = MetadataCache::clone(&cache);
        for structure in fresh {
            next.insert(structure);
        }
        *cache = Arc::new(next);
        self.generation.fetch_add(1, Ordering::AcqRel);
        true
    }
}
