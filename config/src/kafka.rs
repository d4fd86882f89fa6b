//! `[kafka]`: the consumer group that reads Qlik Replicate's CDC topics.

use crate::error::Validator;
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// How the CDC messages on the topics are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageFormat {
    /// Qlik Replicate's JSON messages (`atMSG` envelope or the unwrapped form).
    QlikJson,
    /// Qlik Replicate's Avro messages in the Confluent wire format, schemas from the registry.
    QlikAvro,
    /// Debezium JSON change events, for users who capture with Debezium instead of Qlik.
    Debezium,
}

/// librdkafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    /// No TLS, no SASL: local brokers only.
    Plaintext,
    /// TLS without SASL.
    Ssl,
    /// SASL without TLS.
    SaslPlaintext,
    /// SASL over TLS: what Confluent Cloud and MSK with IAM/SCRAM use.
    SaslSsl,
}

impl SecurityProtocol {
    /// The value librdkafka expects.
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// The consumer group reading the CDC topics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma-separated `host:port` (librdkafka `bootstrap.servers`).
    pub brokers: String,
    /// Consumer group id; every replica of the daemon joins the same group.
    pub group_id: String,
    /// Topics Qlik Replicate writes to; partitions are spread over the group's members.
    pub topics: Vec<String>,
    /// Encoding of the messages on those topics.
    pub format: MessageFormat,
    /// Transport security between the daemon and the brokers.
    pub security_protocol: SecurityProtocol,
    /// SASL credentials, required when `security_protocol` is `sasl_plaintext` or `sasl_ssl`.
    pub sasl: Option<SaslConfig>,
    /// TLS files, used when `security_protocol` is `ssl` or `sasl_ssl`.
    pub ssl: Option<SslConfig>,
    /// Group session timeout: a member silent for this long loses its partitions.
    pub session_timeout_ms: u64,
    /// How long a graceful shutdown (SIGTERM) takes at most, and how long a revoke waits: in-flight
    /// work drains for up to three quarters of it (all but 5 s, when it is over 20 s), then what
    /// is done is committed, the group left and the actors stopped within the rest; what did not
    /// drain is read again by the next owner. Must stay under `session_timeout_ms` so the group
    /// does not evict us while we drain, and under the pod's termination grace period.
    pub drain_timeout_ms: u64,
    /// How long the member may stay out of its group (not joined since it started, or since
    /// its partitions were revoked) while the brokers answer, before it closes its consumer and
    /// the supervisor starts a fresh one that joins anew. librdkafka rejoins on its own after a
    /// broker outage; this catches a member that does not (a group the coordinator cannot form
    /// around it). While no broker answers, nothing is restarted. Must exceed
    /// `session_timeout_ms` plus `drain_timeout_ms`, the longest an ordinary rebalance keeps a
    /// member out.
    pub rejoin_timeout_ms: u64,
    /// How long the member may stay out of its group while the brokers answer, restarts
    /// included, before `/healthz` fails so that the orchestrator replaces the pod. Must exceed
    /// `rejoin_timeout_ms`, so a restart is tried first.
    pub out_of_group_liveness_ms: u64,
    /// How often stored offsets are committed to the group coordinator.
    pub commit_interval_ms: u64,
    /// Messages a partition may have in flight: read, and not yet passed by the commit (settled
    /// downstream together with every message before it). At the limit its reader stops until
    /// the commit moves, so memory stays flat under any input rate and a head message that never
    /// settles stops the reading here. Each message in flight holds about 5 KB of the daemon's
    /// memory for a 1-2 KB Qlik message (in `make bench-e2e`, 4 × 3,072 fewer in flight cut the
    /// peak RSS by 56 MB), and at the daemon's rate a larger window only adds waiting: with
    /// 4,096 the backlog run's p99 read-to-settled was 15-20 s (up to 30 s), with 1,024 about
    /// 4 s (up to 6 s) (`docs/perf/profile.md`).
    pub max_in_flight_per_partition: usize,
    /// Bytes (message payload plus key) a partition may have in flight, read but not yet
    /// settled and committable; at the limit its reader stops, as at
    /// `max_in_flight_per_partition`, so a partition of large messages holds bounded memory.
    /// A single message larger than this is still read, alone. The default (8 MiB) binds before
    /// `max_in_flight_per_partition` once messages average more than 8 KB.
    pub max_in_flight_bytes_per_partition: u64,
    /// Largest batch of changes handed to an applier at once.
    pub batch_max: usize,
    /// How long a partition's reader waits for more messages to fill a batch before sending
    /// what it has. 0 (the default) sends what librdkafka has already fetched, at once: the
    /// appliers and the publisher gather what waits for them while they are busy, so batches
    /// still fill under load, and a wait here only adds to every message's latency (at 10,000
    /// msg/s, 5 ms took the bench's p50 from 8 to 14 ms and saved no CPU).
    pub batch_linger_ms: u64,
    /// The source table of a topic's messages that name none themselves (Qlik Replicate's
    /// default, with one topic per table): `"topic" = "SCHEMA.TABLE"`, or a pattern deriving
    /// both from the topic's name, `"qlik.{schema}.{table}" = "{schema}.{table}"` (a placeholder
    /// takes at least one character, as few as it can before the text that follows it, the rest
    /// of the name at the end). A topic's own line wins over patterns; among patterns the first
    /// in key order that matches. A message's own `schema`/`table` wins over this, and so does a
    /// table its Kafka headers name (`table_header`, `schema_header`).
    pub topic_tables: BTreeMap<String, String>,
    /// Kafka header that names a message's table: `SCHEMA.TABLE`, or the bare table name with
    /// the schema in `schema_header`. Used when the message itself names no table, before
    /// `topic_tables`; empty: headers are not read.
    pub table_header: String,
    /// Kafka header that names the schema of a bare table name in `table_header`.
    pub schema_header: String,
    /// Kafka header holding a W3C `traceparent` (`00-<trace id>-<parent id>-<flags>`): the
    /// message's changes are published under that trace (the event's `metadata.trace_id`, the
    /// `PutEvents` X-Ray `TraceHeader`, the cross-region envelope). A malformed value is counted
    /// (`eda_trace_headers_malformed_total`) and ignored, never a dead letter. Empty: not read.
    pub traceparent_header: String,
    /// Kafka header holding the W3C `tracestate` that goes with `traceparent_header`; it is
    /// passed to the exported span only. Empty: not read.
    pub tracestate_header: String,
    /// Kafka header holding the producer's correlation id, carried in each event of the message
    /// as `metadata.message_correlation_id` (the event's `correlation_id` stays the source
    /// transaction id). At most 512 bytes of text, else counted as malformed and ignored.
    /// Empty: not read.
    pub correlation_id_header: String,
    /// Key columns per source table (`"SCHEMA.TABLE" = ["ID"]`), used until Qlik's metadata
    /// message for that table has been seen, and for formats that carry no key information.
    pub key_columns: BTreeMap<String, Vec<String>>,
    /// Extra librdkafka properties passed through verbatim (`"fetch.min.bytes" = "1"`). Values
    /// whose key mentions a password or secret are redacted when the config is printed.
    pub librdkafka: BTreeMap<String, String>,
}

/// SASL authentication for the brokers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    /// `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` or `OAUTHBEARER` (librdkafka `sasl.mechanisms`).
    pub mechanism: String,
    /// SASL user name (for Confluent Cloud, the API key).
    pub username: String,
    /// SASL password (for Confluent Cloud, the API secret); never printed.
    pub password: Secret,
}

/// TLS material for the broker connection; paths are read by librdkafka.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SslConfig {
    /// CA bundle that signs the brokers' certificates (`ssl.ca.location`); empty uses the system's.
    pub ca_location: Option<String>,
    /// Client certificate for mutual TLS (`ssl.certificate.location`).
    pub certificate_location: Option<String>,
    /// Client private key for mutual TLS (`ssl.key.location`).
    pub key_location: Option<String>,
    /// Password of the client key, if it is encrypted; never printed.
    pub key_password: Option<Secret>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "localhost:9092".into(),
            group_id: "eda-cdc".into(),
            topics: vec!["qlik.cdc".into()],
            format: MessageFormat::QlikJson,
            security_protocol: SecurityProtocol::Plaintext,
            sasl: None,
            ssl: None,
            session_timeout_ms: 30_000,
            drain_timeout_ms: 10_000,
            rejoin_timeout_ms: 90_000,
            out_of_group_liveness_ms: 300_000,
            commit_interval_ms: 5_000,
            max_in_flight_per_partition: 1_024,
            max_in_flight_bytes_per_partition: 8 * 1024 * 1024,
            batch_max: 500,
            batch_linger_ms: 0,
            topic_tables: BTreeMap::new(),
            table_header: "table".into(),
            schema_header: "schema".into(),
            traceparent_header: "traceparent".into(),
            tracestate_header: "tracestate".into(),
            correlation_id_header: "correlation-id".into(),
            key_columns: BTreeMap::new(),
            librdkafka: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// `session_timeout_ms` as a duration.
    pub fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.session_timeout_ms)
    }

    /// `drain_timeout_ms` as a duration.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }

    /// The partitions' share of `drain_timeout_ms`: the rest is kept for committing, leaving
    /// the group and stopping the actors.
    pub fn partition_drain_timeout(&self) -> Duration {
        let whole = self.drain_timeout();
        whole - (whole / 4).min(Duration::from_secs(5))
    }

    /// `rejoin_timeout_ms` as a duration.
    pub fn rejoin_timeout(&self) -> Duration {
        Duration::from_millis(self.rejoin_timeout_ms)
    }

    /// `out_of_group_liveness_ms` as a duration.
    pub fn out_of_group_liveness(&self) -> Duration {
        Duration::from_millis(self.out_of_group_liveness_ms)
    }

    /// `commit_interval_ms` as a duration.
    pub fn commit_interval(&self) -> Duration {
        Duration::from_millis(self.commit_interval_ms)
    }

    /// `batch_linger_ms` as a duration.
    pub fn batch_linger(&self) -> Duration {
        Duration::from_millis(self.batch_linger_ms)
    }

    pub(crate) fn validate(&self, v: &mut Validator) {
        v.non_empty("kafka.brokers", &self.brokers);
        v.non_empty("kafka.group_id", &self.group_id);
        v.non_empty_list("kafka.topics", &self.topics);
        for (i, topic) in self.topics.iter().enumerate() {
            v.non_empty(&format!("kafka.topics[{i}]"), topic);
        }
        v.range(
            "kafka.session_timeout_ms",
            self.session_timeout_ms,
            1_000,
            3_600_000,
        );
        v.less(
            "kafka.drain_timeout_ms",
            self.drain_timeout_ms,
            "kafka.session_timeout_ms",
            self.session_timeout_ms,
        );
        v.range(
            "kafka.rejoin_timeout_ms",
            self.rejoin_timeout_ms,
            1_000,
            3_600_000,
        );
        let rebalance = self
            .session_timeout_ms
            .saturating_add(self.drain_timeout_ms);
        if self.rejoin_timeout_ms <= rebalance {
            v.invalid(
                "kafka.rejoin_timeout_ms",
                self.rejoin_timeout_ms,
                format!(
                    "must exceed kafka.session_timeout_ms + kafka.drain_timeout_ms ({rebalance}), \
                     the longest an ordinary rebalance keeps a member out of its group"
                ),
            );
        }
        v.less(
            "kafka.rejoin_timeout_ms",
            self.rejoin_timeout_ms,
            "kafka.out_of_group_liveness_ms",
            self.out_of_group_liveness_ms,
        );
        v.range(
            "kafka.commit_interval_ms",
            self.commit_interval_ms,
            10,
            600_000,
        );
        v.range(
            "kafka.max_in_flight_per_partition",
            self.max_in_flight_per_partition,
            1,
            1_000_000,
        );
        v.range(
            "kafka.max_in_flight_bytes_per_partition",
            self.max_in_flight_bytes_per_partition,
            1_024,
            1024 * 1024 * 1024,
        );
        v.range("kafka.batch_max", self.batch_max, 1, 10_000);
        v.range("kafka.batch_linger_ms", self.batch_linger_ms, 0, 10_000);
        if self.security_protocol.uses_sasl() {
            match &self.sasl {
                None => v.push(crate::ValidationError::Empty {
                    key: "kafka.sasl".into(),
                }),
                Some(sasl) => {
                    v.non_empty("kafka.sasl.mechanism", &sasl.mechanism);
                    v.non_empty("kafka.sasl.username", &sasl.username);
                }
            }
        }
        if let Err((key, reason)) = crate::TopicTables::parse(&self.topic_tables) {
            v.invalid(
                &format!("kafka.topic_tables.\"{key}\""),
                self.topic_tables.get(&key).map_or("", String::as_str),
                reason,
            );
        }
        for (table, cols) in &self.key_columns {
            v.non_empty_list(&format!("kafka.key_columns.\"{table}\""), cols);
        }
        for key in self.librdkafka.keys() {
            if MANAGED_PROPERTIES.contains(&key.as_str()) {
                v.invalid(
                    &format!("kafka.librdkafka.\"{key}\""),
                    key,
                    "is set by eda itself (offsets are stored only after acknowledgement)",
                );
            }
        }
    }
}

/// librdkafka properties eda sets itself and that a passthrough must not override, because
/// at-least-once delivery depends on them.
const MANAGED_PROPERTIES: &[&str] = &["enable.auto.offset.store", "group.id", "bootstrap.servers"];

/// Whether a passthrough property carries a credential and must be redacted when printed.
pub fn is_sensitive_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "sasl.oauthbearer.config", "key.pem"]
        .iter()
        .any(|needle| key.contains(needle))
}
