//! [`OwedQueue`] on SQS: `SendMessageBatch` when a region cannot take its events,
//! `ReceiveMessage`/`DeleteMessageBatch` when its router delivers them, and
//! `GetQueueAttributes` for the owed-events gauge.

use super::error::{entry_error, sink_error};
use super::sqs::{bodies_and_handles, client_error, send_entries};
use crate::ports::{OwedQueue, ReceivedOwed, SinkError};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, QueueAttributeName, SendMessageBatchRequestEntry,
};
use futures_util::future::BoxFuture;

/// The owed queue of one target region, reached through the client of the region it lives in.
#[derive(Debug, Clone)]
pub struct SqsOwedQueue {
    /// The client of the region the queue lives in (not the target region's).
    client: aws_sdk_sqs::Client,
    /// The queue URL.
    queue_url: String,
}

impl SqsOwedQueue {
    /// The queue at `queue_url`, through `client`.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    async fn send(&self, bodies: &[String]) -> Result<Vec<Result<(), SinkError>>, SinkError> {
        let entries = bodies
            .iter()
            .enumerate()
            .map(|(index, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .message_body(body)
                    .build()
                    .map_err(|err| client_error("SendMessageBatch", err))
            })
            .collect::<Result<Vec<_>, _>>()?;
        send_entries(&self.client, &self.queue_url, entries).await
    }

    async fn receive_some(
        &self,
        max: i32,
        visibility_secs: i32,
    ) -> Result<Vec<ReceivedOwed>, SinkError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.clamp(1, 10))
            .visibility_timeout(visibility_secs.max(1))
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(|err| sink_error("sqs", "ReceiveMessage", &err))?;
        Ok(bodies_and_handles(&output)
            .map(|(body, receipt_handle)| ReceivedOwed {
                body,
                receipt_handle,
            })
            .collect())
    }

    async fn delete_some(&self, receipt_handles: &[String]) -> Result<(), SinkError> {
        if receipt_handles.is_empty() {
            return Ok(());
        }
        let entries = receipt_handles
            .iter()
            .enumerate()
            .map(|(index, handle)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(handle)
                    .build()
                    .map_err(|err| client_error("DeleteMessageBatch", err))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|err| sink_error("sqs", "DeleteMessageBatch", &err))?;
        match output.failed().first() {
            Some(failed) => Err(entry_error(
                "sqs",
                "DeleteMessageBatch",
                Some(failed.code()),
                failed.message(),
                failed.sender_fault(),
            )),
            None => Ok(()),
        }
    }

    async fn count(&self) -> Result<u64, SinkError> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|err| sink_error("sqs", "GetQueueAttributes", &err))?;
        let attributes = output.attributes();
        let read = |name: QueueAttributeName| {
            attributes
                .and_then(|a| a.get(&name))
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(read(QueueAttributeName::ApproximateNumberOfMessages)
            + read(QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
    }
}

impl OwedQueue for SqsOwedQueue {
    fn send_batch<'a>(
        &'a self,
        bodies: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Result<(), SinkError>>, SinkError>> {
        Box::pin(self.send(bodies))
    }

    fn receive<'a>(
        &'a self,
        max: i32,
        visibility_secs: i32,
    ) -> BoxFuture<'a, Result<Vec<ReceivedOwed>, SinkError>> {
        Box::pin(self.receive_some(max, visibility_secs))
    }

    fn delete_batch<'a>(
        &'a self,
        receipt_handles: &'a [String],
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(self.delete_some(receipt_handles))
    }

    fn depth(&self) -> BoxFuture<'_, Result<u64, SinkError>> {
        Box::pin(self.count())
    }
}
