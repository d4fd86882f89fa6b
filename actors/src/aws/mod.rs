//! AWS SDK clients, one set per region, built once from the configuration.
//!
//! Endpoint overrides (`regions.*.endpoints`) point a service at a local stand-in (DynamoDB
//! Local, ministack); without them the SDK's regional endpoints are used. Credentials come from
//! `aws.static_credentials` when given (local runs), else from `aws.profile`, else from the
//! default chain (environment, IRSA web identity on EKS, instance metadata).
//!
//! The submodules adapt the clients to the [ports](crate::ports): `dynamodb` (the sequence-guarded
//! `PutItem`), `claim_check` (reading the item an event that went by reference names), `table_structures` (Qlik table structures in the metadata table), `eventbridge`
//! (`PutEvents`), `sqs` (the dead-letter queue), `owed_queue` (the events owed to a region while
//! it cannot take them), `probe` (the health probes' calls and the Secrets Manager read), and
//! `error` (one classification of SDK errors for all). The two calls made per message —
//! `PutItem` and `PutEvents` — go through `lean`, eda's own AWS JSON client, not the SDK.
//! No AWS call of eda lives outside this module.

mod claim_check;
mod dynamodb;
mod endpoint;
mod error;
mod eventbridge;
mod lean;
mod owed_queue;
mod probe;
mod sqs;
mod table_structures;

pub use claim_check::read_claimed_row;
pub use dynamodb::{from_sdk, to_sdk, DynamoDbItemWriter};
pub use eventbridge::EventBridgeClient;
pub use lean::LeanClient;
pub use owed_queue::SqsOwedQueue;
pub use probe::secret_value;
pub use sqs::SqsDeadLetterQueue;
pub use table_structures::DynamoDbTableStructures;

use crate::telemetry::Metrics;
use aws_config::{BehaviorVersion, SdkConfig};
use eda_config::{AwsConfig, RegionConfig};
use std::sync::Arc;

/// The clients eda uses in one region: the SDK's four, and the lean clients of the per-message
/// calls. Cloning is cheap (they share connection pools).
#[derive(Clone, Debug)]
pub struct RegionClients {
    /// The AWS region name, as configured.
    pub region: String,
    /// CDC apply, Qlik table structures, and the health probe's ListTables.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// Change, transformed, health and cross-region events.
    pub eventbridge: aws_sdk_eventbridge::Client,
    /// The dead-letter queue, and the health probe's ListQueues.
    pub sqs: aws_sdk_sqs::Client,
    /// The authorizer's HS256 key.
    pub secretsmanager: aws_sdk_secretsmanager::Client,
    /// DynamoDB `PutItem`, the applier's guarded write (same endpoint, credentials and timeouts
    /// as `dynamodb`).
    pub lean_dynamodb: LeanClient,
    /// EventBridge `PutEvents` (same endpoint, credentials and timeouts as `eventbridge`).
    pub lean_eventbridge: LeanClient,
}

impl RegionClients {
    /// Builds the clients for one region. Does no I/O beyond what the credential chain needs.
    ///
    /// # Panics
    ///
    /// When an endpoint is not a URL; configuration validation refuses those first.
    pub async fn new(region: &RegionConfig, aws: &AwsConfig) -> Self {
        let shared = shared_config(region, aws).await;
        let endpoints = &region.endpoints;
        let credentials = lean::SharedCredentials::new(shared.credentials_provider());
        let http = lean::http_client(aws.connect_timeout());
        let lean_client = |protocol, endpoint: String| {
            LeanClient::new(
                http.clone(),
                protocol,
                &endpoint,
                &region.name,
                credentials.clone(),
                aws.attempt_timeout(),
            )
            .unwrap_or_else(|err| panic!("{err}"))
        };
        let lean_dynamodb = lean_client(
            lean::DYNAMODB,
            endpoint::dynamodb(&shared, endpoints.dynamodb.as_deref(), &region.name).await,
        );
        let lean_eventbridge = lean_client(
            lean::EVENTBRIDGE,
            endpoint::eventbridge(&shared, endpoints.eventbridge.as_deref(), &region.name).await,
        );

        let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(&shared);
        if let Some(url) = &endpoints.dynamodb {
            dynamodb = dynamodb.endpoint_url(url);
        }
        let mut eventbridge = aws_sdk_eventbridge::config::Builder::from(&shared);
        if let Some(url) = &endpoints.eventbridge {
            eventbridge = eventbridge.endpoint_url(url);
        }
        let mut sqs = aws_sdk_sqs::config::Builder::from(&shared);
        if let Some(url) = &endpoints.sqs {
            sqs = sqs.endpoint_url(url);
        }
        let mut secretsmanager = aws_sdk_secretsmanager::config::Builder::from(&shared);
        if let Some(url) = &endpoints.secretsmanager {
            secretsmanager = secretsmanager.endpoint_url(url);
        }

        Self {
            region: region.name.clone(),
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb.build()),
            eventbridge: aws_sdk_eventbridge::Client::from_conf(eventbridge.build()),
            sqs: aws_sdk_sqs::Client::from_conf(sqs.build()),
            secretsmanager: aws_sdk_secretsmanager::Client::from_conf(secretsmanager.build()),
            lean_dynamodb,
            lean_eventbridge,
        }
    }

    /// These clients with the time of every per-message call (`PutItem`,
    /// `BatchExecuteStatement`, `PutEvents`) going into `metrics`
    /// (`eda_aws_call_duration_seconds`), clones included.
    pub fn timed(self, metrics: &Arc<Metrics>) -> Self {
        self.lean_dynamodb.time_calls(Arc::clone(metrics));
        self.lean_eventbridge.time_calls(Arc::clone(metrics));
        self
    }
}

async fn shared_config(region: &RegionConfig, aws: &AwsConfig) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(region.name.clone()))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(aws.connect_timeout())
                .operation_attempt_timeout(aws.attempt_timeout())
                .build(),
        );
    if let Some(creds) = &aws.static_credentials {
        loader = loader.credentials_provider(aws_credential_types::Credentials::new(
            creds.access_key_id.clone(),
            creds.secret_access_key.expose().to_string(),
            None,
            None,
            "eda-static-config",
        ));
    } else if let Some(profile) = &aws.profile {
        loader = loader.profile_name(profile);
    }
    loader.load().await
}
