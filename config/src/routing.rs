//! `[routing]`: which events cross regions, and how they are packed.

use crate::error::Validator;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Cross-region routing through the region routers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingConfig {
    /// Source tables (`"SCHEMA.TABLE"`) whose changes are replicated to the other region;
    /// `"*"` means all.
    pub replicate_tables: Vec<String>,
    /// Event types (EventBridge detail-types) replicated to the other region; `"*"` means all.
    pub replicate_event_types: Vec<String>,
    /// zstd level for `CrossRegionEvent` payloads (1 fast .. 19 small).
    pub zstd_level: i32,
    /// Path to a trained zstd dictionary; its id travels in the envelope so the receiver picks
    /// the same one. Unset compresses with the dictionary eda ships (`cdc-v1`, which every
    /// region reads), unless `shipped_dictionary` is false.
    pub dictionary_path: Option<String>,
    /// With `dictionary_path` unset, whether payloads are compressed with the shipped
    /// dictionary (smaller, and cheaper to compress, than without one: ~1.4 KB change events
    /// pack to ~14 % fewer bytes with ~35 % fewer zstd instructions); false compresses without
    /// a dictionary, as eda did before it was the default.
    pub shipped_dictionary: bool,
    /// Largest EventBridge entry a region router sends, in bytes; EventBridge rejects entries
    /// over 256 KB. It also decides which change events travel whole: an event whose
    /// cross-region envelope could exceed it, were zstd unable to shrink it at all, is published
    /// by claim check (the row left out, the DynamoDB item named) on both regions' buses alike.
    pub max_entry_bytes: usize,
    /// Events held while no region can take them; beyond this they go to the DLQ.
    pub failover_buffer: usize,
    /// How long an event may wait in that buffer before it goes to the DLQ.
    pub failover_max_wait_ms: u64,
    /// Per-call timeout of a router's `PutEvents`; a call that takes longer is a breaker
    /// failure and its events fail over.
    pub call_timeout_ms: u64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            replicate_tables: vec!["*".into()],
            replicate_event_types: Vec::new(),
            zstd_level: 3,
            dictionary_path: None,
            shipped_dictionary: true,
            max_entry_bytes: 256 * 1024,
            failover_buffer: 10_000,
            failover_max_wait_ms: 30_000,
            call_timeout_ms: 2_000,
        }
    }
}

impl RoutingConfig {
    /// `failover_max_wait_ms` as a duration.
    pub fn failover_max_wait(&self) -> Duration {
        Duration::from_millis(self.failover_max_wait_ms)
    }

    /// `call_timeout_ms` as a duration.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }

    /// Whether changes of this source table cross regions.
    pub fn replicates_table(&self, table: &str) -> bool {
        self.replicate_tables
            .iter()
            .any(|t| t == "*" || t.eq_ignore_ascii_case(table))
    }

    /// Whether events of this detail-type cross regions.
    pub fn replicates_event_type(&self, detail_type: &str) -> bool {
        self.replicate_event_types
            .iter()
            .any(|t| t == "*" || t == detail_type)
    }

    /// Whether a change of `table` (`"SCHEMA.TABLE"`), published as `event_type`, crosses
    /// regions: its table or its event type is replicated. The daemon's appliers and the
    /// `stream-processor` decide here, so both replicate the same changes.
    pub fn replicates_change(&self, table: &str, event_type: &str) -> bool {
        self.replicates_table(table) || self.replicates_event_type(event_type)
    }

    pub(crate) fn validate(&self, v: &mut Validator) {
        v.range("routing.zstd_level", self.zstd_level, 1, 22);
        v.range(
            "routing.max_entry_bytes",
            self.max_entry_bytes,
            1_024,
            256 * 1024,
        );
        v.range(
            "routing.failover_buffer",
            self.failover_buffer,
            1,
            10_000_000,
        );
        v.range(
            "routing.failover_max_wait_ms",
            self.failover_max_wait_ms,
            0,
            3_600_000,
        );
        v.range("routing.call_timeout_ms", self.call_timeout_ms, 10, 600_000);
        if let Some(path) = &self.dictionary_path {
            v.non_empty("routing.dictionary_path", path);
        }
    }
}
