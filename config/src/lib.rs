//! The configuration of eda: one typed [`Config`] for every part of the system, layered with
//! figment and validated before anything starts.
//!
//! Layers, later ones winning: built-in defaults ([`Config::default`]), then a TOML file, then
//! environment variables prefixed `EDA_` with `__` between levels
//! (`EDA_KAFKA__BROKERS=b1:9092`, `EDA_REGIONS__PRIMARY__EVENT_BUS=bus`). Every struct denies
//! unknown keys, so a typo is an error that names the key instead of a silently ignored setting.
//! [`Config::validate`] then checks the values and reports every broken rule at once, each naming
//! its key.
//!
//! # Layout
//!
//! One module per section, named for its TOML table: [`kafka`], [`schema_registry`],
//! [`regions`] (also `[aws]`), [`apply`] (also `[publish]` and `[dlq]`), [`breaker`],
//! [`health`], [`routing`], [`transformer`], [`jwt`], [`supervision`], [`tracing`](mod@tracing), and here
//! `[http]`, `[runtime]` and `[logging]`; [`topic_tables`] reads `kafka.topic_tables`. [`secret`] holds the type that keeps credentials out of printed output,
//! [`error`] the typed errors, [`reference`](mod@reference) the generator of the configuration
//! reference in `docs/configuration.md`.

pub mod apply;
pub mod breaker;
pub mod error;
pub mod health;
pub mod jwt;
pub mod kafka;
pub mod reference;
pub mod regions;
pub mod routing;
pub mod schema_registry;
pub mod secret;
pub mod supervision;
pub mod topic_tables;
pub mod tracing;
pub mod transformer;

pub use apply::{ApplyConfig, DlqConfig, PublishConfig, RetryConfig};
pub use breaker::{BreakerConfig, WindowKind};
pub use error::{ConfigError, ValidationError, Validator};
pub use health::HealthConfig;
pub use jwt::{JwtConfig, RsaKeyConfig};
pub use kafka::{KafkaConfig, MessageFormat, SaslConfig, SecurityProtocol, SslConfig};
pub use regions::{AwsConfig, Endpoints, RegionConfig, Regions, StaticCredentials};
pub use routing::RoutingConfig;
pub use schema_registry::SchemaRegistryConfig;
pub use secret::{Secret, REDACTED};
pub use supervision::SupervisionConfig;
pub use topic_tables::TopicTables;
pub use tracing::TracingConfig;
pub use transformer::{FieldRule, GeoConfig, GeoEntry, TransformerConfig};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "EDA_";
/// Separator between nesting levels in those variables' names.
pub const ENV_SEPARATOR: &str = "__";

/// Everything eda can be told, one section per part of the system.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The consumer group reading Qlik Replicate's CDC topics.
    pub kafka: KafkaConfig,
    /// Where Avro schemas come from.
    pub schema_registry: SchemaRegistryConfig,
    /// The two AWS regions and their resources.
    pub regions: Regions,
    /// How the AWS SDK clients authenticate.
    pub aws: AwsConfig,
    /// DynamoDB apply settings.
    pub apply: ApplyConfig,
    /// EventBridge publishing settings.
    pub publish: PublishConfig,
    /// Dead-letter queue settings.
    pub dlq: DlqConfig,
    /// Circuit breaker settings, one breaker per region router.
    pub breaker: BreakerConfig,
    /// Health probing of each region.
    pub health: HealthConfig,
    /// Cross-region routing and packing.
    pub routing: RoutingConfig,
    /// Validation, enrichment and normalization rules.
    pub transformer: TransformerConfig,
    /// The JWT authorizer.
    pub jwt: JwtConfig,
    /// Restart policy of the supervision tree.
    pub supervision: SupervisionConfig,
    /// The daemon's HTTP surface (`/metrics`, `/healthz`, `/readyz`).
    pub http: HttpConfig,
    /// The daemon's async runtime.
    pub runtime: RuntimeConfig,
    /// Log output.
    pub logging: LoggingConfig,
    /// Span export over OTLP (off by default).
    pub tracing: TracingConfig,
}

/// The daemon's HTTP listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address `/metrics`, `/healthz` and `/readyz` are served on; `127.0.0.1:9090` locally,
    /// `0.0.0.0:9090` in the container.
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9090".into(),
        }
    }
}

/// The daemon's async runtime (tokio's multi-threaded scheduler).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Worker threads; 0 (the default) is one per CPU the process may use (tokio's default,
    /// which reads the container's CPU limit). librdkafka's threads come on top. On two CPUs
    /// shared with the broker, one worker spent ~20 % less CPU per message at 10,000 msg/s, with
    /// a p99 no worse (`docs/perf/profile.md`, "Fewer hand-overs"); it also caps the daemon's
    /// own work at one CPU, which a backlog on a node of its own would feel.
    pub worker_threads: usize,
}

/// How logs are written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// `json` (one object per line, for log shippers) or `text` (for people).
    pub format: LogFormat,
    /// A tracing filter (`info`, `eda_actors=debug,info`); `RUST_LOG` overrides it.
    pub filter: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Json,
            filter: "info".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Structured JSON lines carrying `event_id` and `correlation_id` fields.
    Json,
    /// Human-readable lines.
    Text,
}

impl Config {
    /// The layered sources: defaults, then `file` (which must exist when given), then the
    /// `EDA_` environment.
    pub fn figment(file: Option<&Path>) -> Figment {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment.merge(Env::prefixed(ENV_PREFIX).split(ENV_SEPARATOR))
    }

    /// Loads and validates the configuration; on failure every problem is in the error.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let config = Self::from_figment(&Self::figment(file))?;
        config.validate().map_err(ConfigError::Invalid)?;
        Ok(config)
    }

    /// Extracts a configuration from any figment without validating it (tests build their
    /// own layers with `figment::Jail`).
    pub fn from_figment(figment: &Figment) -> Result<Config, ConfigError> {
        Ok(figment.extract()?)
    }

    /// Checks every rule and returns all broken ones, each naming its key.
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        let mut v = Validator::default();
        self.kafka.validate(&mut v);
        self.schema_registry
            .validate(self.kafka.format == MessageFormat::QlikAvro, &mut v);
        self.regions.validate(&mut v);
        self.aws.validate(&mut v);
        self.apply.validate(&mut v);
        self.publish.validate(&mut v);
        self.dlq.validate(&mut v);
        self.breaker.validate(&mut v);
        self.health.validate(&mut v);
        self.routing.validate(&mut v);
        self.transformer.validate(&mut v);
        self.jwt.validate(&mut v);
        self.supervision.validate(&mut v);
        if self.http.listen.parse::<SocketAddr>().is_err() {
            v.invalid(
                "http.listen",
                &self.http.listen,
                "must be an IP address and port, like 127.0.0.1:9090",
            );
        }
        v.range(
            "runtime.worker_threads",
            self.runtime.worker_threads,
            0,
            1_024,
        );
        v.non_empty("logging.filter", &self.logging.filter);
        self.tracing.validate(&mut v);
        let errors = v.into_errors();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The effective configuration as TOML, with every secret replaced by [`REDACTED`]: what
    /// `eda-daemon check-config` prints.
    pub fn to_redacted_toml(&self) -> String {
        let mut printable = self.clone();
        for (key, value) in printable.kafka.librdkafka.iter_mut() {
            if kafka::is_sensitive_property(key) {
                *value = REDACTED.into();
            }
        }
        // Serialization of plain data with string keys cannot fail; fall back to the error text
        // rather than panic if a future field breaks that.
        toml::to_string_pretty(&printable).unwrap_or_else(|err| format!("# unprintable: {err}"))
    }

    /// `http.listen` parsed; [`Config::validate`] has already rejected a bad one.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.http.listen.parse().ok()
    }
}

#[cfg(test)]
mod tests;
