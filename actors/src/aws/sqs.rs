//! [`DeadLetterSink`] on SQS: `SendMessageBatch`, and `ReceiveMessage`/`DeleteMessage` for
//! redrive.

use super::error::{entry_error, sink_error};
use crate::ports::{DeadLetterSink, ReceivedDeadLetter, SinkError};
use aws_sdk_sqs::operation::receive_message::ReceiveMessageOutput;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use eda_core::dead_letter::SqsMessage;
use eda_core::failure::ErrorClass;
use futures_util::future::BoxFuture;

/// The dead-letter queue of one region.
#[derive(Debug, Clone)]
pub struct SqsDeadLetterQueue {
    /// The region's client (its endpoint may be the local stack's).
    client: aws_sdk_sqs::Client,
    /// The queue URL.
    queue_url: String,
}

impl SqsDeadLetterQueue {
    /// The queue at `queue_url`.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    async fn send(&self, messages: &[SqsMessage]) -> Result<Vec<Result<(), SinkError>>, SinkError> {
        let mut entries = Vec::with_capacity(messages.len());
        for (index, message) in messages.iter().enumerate() {
            let mut entry = SendMessageBatchRequestEntry::builder()
                .id(index.to_string())
                .message_body(&message.body);
            for (name, value) in &message.attributes {
                let attribute = MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(value)
                    .build()
                    .map_err(|err| client_error("SendMessageBatch", err))?;
                entry = entry.message_attributes(*name, attribute);
            }
            entries.push(
                entry
                    .build()
                    .map_err(|err| client_error("SendMessageBatch", err))?,
            );
        }
        send_entries(&self.client, &self.queue_url, entries).await
    }

    async fn receive_some(
        &self,
        max: i32,
        wait_secs: i32,
    ) -> Result<Vec<ReceivedDeadLetter>, SinkError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.clamp(1, 10))
            .wait_time_seconds(wait_secs.clamp(0, 20))
            .send()
            .await
            .map_err(|err| sink_error("sqs", "ReceiveMessage", &err))?;
        Ok(bodies_and_handles(&output)
            .map(|(body, receipt_handle)| ReceivedDeadLetter {
                body,
                receipt_handle,
            })
            .collect())
    }

    async fn delete_one(&self, receipt_handle: &str) -> Result<(), SinkError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|err| sink_error("sqs", "DeleteMessage", &err))?;
        Ok(())
    }
}

impl DeadLetterSink for SqsDeadLetterQueue {
    fn send_batch<'a>(
        &'a self,
        messages: &'a [SqsMessage],
    ) -> BoxFuture<'a, Result<Vec<Result<(), SinkError>>, SinkError>> {
        Box::pin(self.send(messages))
    }

    fn receive<'a>(
        &'a self,
        max: i32,
        wait_secs: i32,
    ) -> BoxFuture<'a, Result<Vec<ReceivedDeadLetter>, SinkError>> {
        Box::pin(self.receive_some(max, wait_secs))
    }

    fn delete<'a>(&'a self, receipt_handle: &'a str) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(self.delete_one(receipt_handle))
    }
}

/// Sends `entries` (ids are their indexes) in one `SendMessageBatch` to the queue at
/// `queue_url`: a whole-call error, or one result per entry.
pub(super) async fn send_entries(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    entries: Vec<SendMessageBatchRequestEntry>,
) -> Result<Vec<Result<(), SinkError>>, SinkError> {
    let count = entries.len();
    let output = client
        .send_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|err| sink_error("sqs", "SendMessageBatch", &err))?;
    let mut results: Vec<Result<(), SinkError>> = vec![Ok(()); count];
    for failed in output.failed() {
        if let Some(slot) = failed
            .id()
            .parse::<usize>()
            .ok()
            .and_then(|i| results.get_mut(i))
        {
            *slot = Err(entry_error(
                "sqs",
                "SendMessageBatch",
                Some(failed.code()),
                failed.message(),
                failed.sender_fault(),
            ));
        }
    }
    Ok(results)
}

/// The body and receipt handle of each message a `ReceiveMessage` returned.
pub(super) fn bodies_and_handles(
    output: &ReceiveMessageOutput,
) -> impl Iterator<Item = (String, String)> + '_ {
    output
        .messages()
        .iter()
        .filter_map(|m| Some((m.body()?.to_string(), m.receipt_handle()?.to_string())))
}

/// A request the SDK refused to build (a missing required field): a client error.
pub(super) fn client_error(operation: &'static str, err: impl std::fmt::Display) -> SinkError {
    SinkError {
        service: "sqs",
        operation,
        class: ErrorClass::Client,
        message: err.to_string(),
    }
}
