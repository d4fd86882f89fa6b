//! The health probes' calls and the Secrets Manager read: the SDK calls that are not a port of
//! their own, kept here so every SDK call of eda lives under `aws/` and fails as a [`SinkError`].

use super::error::sink_error;
use super::RegionClients;
use crate::ports::SinkError;

impl RegionClients {
    /// The cheapest DynamoDB call that proves the endpoint answers with these credentials:
    /// `ListTables` for one table.
    pub async fn probe_dynamodb(&self) -> Result<(), SinkError> {
        self.dynamodb
            .list_tables()
            .limit(1)
            .send()
            .await
            .map(drop)
            .map_err(|e| sink_error("dynamodb", "ListTables", &e))
    }

    /// The same for EventBridge: `ListEventBuses` for one bus.
    pub async fn probe_eventbridge(&self) -> Result<(), SinkError> {
        self.eventbridge
            .list_event_buses()
            .limit(1)
            .send()
            .await
            .map(drop)
            .map_err(|e| sink_error("eventbridge", "ListEventBuses", &e))
    }

    /// The same for SQS: `ListQueues` for one queue.
    pub async fn probe_sqs(&self) -> Result<(), SinkError> {
        self.sqs
            .list_queues()
            .max_results(1)
            .send()
            .await
            .map(drop)
            .map_err(|e| sink_error("sqs", "ListQueues", &e))
    }
}

/// Reads a secret's value (`GetSecretValue`): its string, or its binary value; `Ok(None)` when
/// the secret holds neither.
pub async fn secret_value(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<Option<Vec<u8>>, SinkError> {
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| sink_error("secretsmanager", "GetSecretValue", &e))?;
    if let Some(text) = out.secret_string() {
        return Ok(Some(text.as_bytes().to_vec()));
    }
    Ok(out.secret_binary().map(|blob| blob.as_ref().to_vec()))
}
