//! `[schema_registry]`: where Avro schemas are fetched from.

use crate::error::Validator;
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A Confluent-compatible Schema Registry, used when `kafka.format` is `qlik-avro`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchemaRegistryConfig {
    /// Base URL (`http://127.0.0.1:8081`); required for Avro topics.
    pub url: Option<String>,
    /// Basic-auth user (Confluent Cloud: the API key).
    pub username: Option<String>,
    /// Basic-auth password (Confluent Cloud: the API secret); never printed.
    pub password: Option<Secret>,
    /// Schemas kept parsed in memory, by id; ids are immutable, so entries never go stale.
    pub cache_capacity: usize,
    /// Per-request timeout when fetching a schema.
    pub timeout_ms: u64,
}

impl Default for SchemaRegistryConfig {
    fn default() -> Self {
        Self {
            url: None,
            username: None,
            password: None,
            cache_capacity: 1_000,
            timeout_ms: 5_000,
        }
    }
}

impl SchemaRegistryConfig {
    /// `timeout_ms` as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub(crate) fn validate(&self, avro: bool, v: &mut Validator) {
        match &self.url {
            Some(url) => v.url("schema_registry.url", url),
            None if avro => v.invalid(
                "schema_registry.url",
                "(unset)",
                "is required when kafka.format is qlik-avro",
            ),
            None => {}
        }
        if self.password.is_some() && self.username.is_none() {
            v.invalid(
                "schema_registry.username",
                "(unset)",
                "is required when schema_registry.password is set",
            );
        }
        v.range(
            "schema_registry.cache_capacity",
            self.cache_capacity,
            1,
            1_000_000,
        );
        v.range("schema_registry.timeout_ms", self.timeout_ms, 1, 600_000);
    }
}
