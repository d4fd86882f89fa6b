//! `[regions.primary]` and `[regions.secondary]`: the two AWS regions eda runs across, and
//! `[aws]`: how the SDK clients authenticate.

use crate::error::Validator;
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The two regions. eda is a two-region system (us-west-2 primary, us-east-1 secondary by
/// default); naming them by role keeps environment overrides simple
/// (`EDA_REGIONS__SECONDARY__EVENT_BUS=...`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Regions {
    /// The region that takes traffic while it is healthy.
    pub primary: RegionConfig,
    /// The region traffic fails over to when the primary's breaker is open.
    pub secondary: RegionConfig,
}

impl Default for Regions {
    fn default() -> Self {
        Self {
            primary: RegionConfig::named("us-west-2"),
            secondary: RegionConfig::named("us-east-1"),
        }
    }
}

impl Regions {
    /// Both regions, primary first, with the key prefix that names them in errors.
    pub fn all(&self) -> [(&'static str, &RegionConfig); 2] {
        [
            ("regions.primary", &self.primary),
            ("regions.secondary", &self.secondary),
        ]
    }

    /// The other region of the pair: where the events produced in `home` are replicated to,
    /// and where `home`'s traffic fails over to.
    pub fn other(&self, home: &str) -> &RegionConfig {
        if self.secondary.name == home {
            &self.primary
        } else {
            &self.secondary
        }
    }

    pub(crate) fn validate(&self, v: &mut Validator) {
        for (prefix, region) in self.all() {
            region.validate(prefix, v);
        }
        if self.primary.name == self.secondary.name {
            v.invalid(
                "regions.secondary.name",
                &self.secondary.name,
                "must differ from regions.primary.name",
            );
        }
    }
}

/// One region's resources and, for local runs, where to reach them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegionConfig {
    /// AWS region name (`us-west-2`); also signs requests and names the region in events.
    pub name: String,
    /// Endpoint overrides, for local stand-ins; unset means the AWS default endpoint.
    pub endpoints: Endpoints,
    /// DynamoDB table CDC changes are applied to in this region (items keyed by `pk`).
    pub cdc_table: String,
    /// DynamoDB table holding the structure of every source table Qlik's metadata (`MD`)
    /// messages described, one item per table and `tableVersion` (hash key `pk`, the
    /// `SCHEMA.TABLE` string; range key `version`, a number). The daemon (with `kafka.format`
    /// `qlik-json` or `qlik-avro`) records a structure here before it acknowledges its metadata
    /// message, reads the table at start, and looks a table up here before it gives up on a data
    /// message whose key it cannot find; so restarts, rebalances and other pods keep the key
    /// columns. The daemon uses the primary region's.
    pub metadata_table: String,
    /// EventBridge bus that receives change, transformed, health and cross-region events.
    pub event_bus: String,
    /// SQS queue URL of the dead-letter queue in this region.
    pub dlq_queue_url: String,
    /// SQS queue URL, in this region, of the events owed to the *other* region: cross-region
    /// events that region's bus could not take when they were sent (its breaker open, its calls
    /// failing) wait here, durably, and that region's router delivers them once it takes events
    /// again. It lives on this side so it is reachable while the other region is down. Not the
    /// dead-letter queue: an owed event is on its way, not failed.
    pub owed_queue_url: String,
}

impl RegionConfig {
    fn named(name: &str) -> Self {
        Self {
            name: name.into(),
            endpoints: Endpoints::default(),
            cdc_table: "eda-cdc".into(),
            metadata_table: "eda-qlik-metadata".into(),
            event_bus: "eda-events".into(),
            dlq_queue_url: String::new(),
            owed_queue_url: String::new(),
        }
    }

    fn validate(&self, prefix: &str, v: &mut Validator) {
        v.non_empty(&format!("{prefix}.name"), &self.name);
        v.non_empty(&format!("{prefix}.cdc_table"), &self.cdc_table);
        v.non_empty(&format!("{prefix}.metadata_table"), &self.metadata_table);
        if self.metadata_table == self.cdc_table {
            v.invalid(
                &format!("{prefix}.metadata_table"),
                &self.metadata_table,
                format!("must differ from {prefix}.cdc_table (table structures are not changes)"),
            );
        }
        v.non_empty(&format!("{prefix}.event_bus"), &self.event_bus);
        v.non_empty(&format!("{prefix}.dlq_queue_url"), &self.dlq_queue_url);
        if !self.dlq_queue_url.is_empty() {
            v.url(&format!("{prefix}.dlq_queue_url"), &self.dlq_queue_url);
        }
        v.non_empty(&format!("{prefix}.owed_queue_url"), &self.owed_queue_url);
        if !self.owed_queue_url.is_empty() {
            v.url(&format!("{prefix}.owed_queue_url"), &self.owed_queue_url);
            if self.owed_queue_url == self.dlq_queue_url {
                // The owed queue is drained back onto a bus; dead letters are not events.
                v.invalid(
                    &format!("{prefix}.owed_queue_url"),
                    &self.owed_queue_url,
                    "must differ from dlq_queue_url",
                );
            }
        }
        for (service, url) in self.endpoints.iter() {
            if let Some(url) = url {
                v.url(&format!("{prefix}.endpoints.{service}"), url);
            }
        }
    }
}

impl Default for RegionConfig {
    fn default() -> Self {
        Self::named("")
    }
}

/// Per-service endpoint overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Endpoints {
    /// DynamoDB (and DynamoDB Streams) endpoint, e.g. DynamoDB Local on `http://127.0.0.1:8000`.
    pub dynamodb: Option<String>,
    /// EventBridge endpoint, e.g. the local stack's on `http://127.0.0.1:5000`.
    pub eventbridge: Option<String>,
    /// SQS endpoint.
    pub sqs: Option<String>,
    /// Secrets Manager endpoint (the authorizer's HS256 secret).
    pub secretsmanager: Option<String>,
}

impl Endpoints {
    fn iter(&self) -> [(&'static str, &Option<String>); 4] {
        [
            ("dynamodb", &self.dynamodb),
            ("eventbridge", &self.eventbridge),
            ("sqs", &self.sqs),
            ("secretsmanager", &self.secretsmanager),
        ]
    }
}

/// How the AWS SDK clients find credentials, and how long they wait.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AwsConfig {
    /// Named profile from the shared AWS config files; unset uses the default chain
    /// (environment, IRSA web identity on EKS, instance metadata).
    pub profile: Option<String>,
    /// Fixed credentials, for local stand-ins that accept any key; never use in production.
    pub static_credentials: Option<StaticCredentials>,
    /// Longest wait for a connection to a service endpoint.
    pub connect_timeout_ms: u64,
    /// Longest one attempt of any AWS call may take before it counts as a timeout and is
    /// retried: a server that takes a request and never answers cannot hold a worker. Keep it
    /// well above the slowest answer a working service gives: the service still does the work
    /// of an attempt given up on, and asking again adds to its load.
    pub attempt_timeout_ms: u64,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            profile: None,
            static_credentials: None,
            connect_timeout_ms: 3_000,
            attempt_timeout_ms: 60_000,
        }
    }
}

impl AwsConfig {
    /// `connect_timeout_ms` as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// `attempt_timeout_ms` as a duration.
    pub fn attempt_timeout(&self) -> Duration {
        Duration::from_millis(self.attempt_timeout_ms)
    }

    pub(crate) fn validate(&self, v: &mut Validator) {
        v.range(
            "aws.connect_timeout_ms",
            self.connect_timeout_ms,
            10,
            60_000,
        );
        v.range(
            "aws.attempt_timeout_ms",
            self.attempt_timeout_ms,
            10,
            600_000,
        );
    }
}

/// An access key pair given in the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticCredentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key; never printed.
    pub secret_access_key: Secret,
}
