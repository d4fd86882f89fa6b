//! An SQS queue a test reads: the copy of a bus's events, or a dead-letter queue. Reading
//! deletes what was read, so a later read reaches further, and tests read while messages arrive
//! rather than afterwards.

use crate::local::unique;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, QueueAttributeName};
use eda_actors::aws::RegionClients;
use serde_json::Value;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Whether `event` (an EventBridge event as a rule delivers it) is a health prober's
/// `HealthCheckEvent`, which shares the buses with the change events tests count.
pub fn is_health_event(event: &Value) -> bool {
    event["detail-type"] == eda_core::health::DETAIL_TYPE_HEALTH_CHECK
}

/// One queue and a client that reaches it; cheap to clone into a reader task of its own.
#[derive(Clone)]
pub struct Queue {
    /// A client of the queue's region, never one routed through a fault proxy.
    sqs: aws_sdk_sqs::Client,
    /// The queue's URL.
    pub url: String,
}

impl Queue {
    /// A reader of the queue at `url`, for a queue the test did not create here.
    pub fn new(sqs: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            sqs,
            url: url.into(),
        }
    }

    /// Creates a queue named `prefix` plus a unique suffix in the clients' region.
    pub async fn create(clients: &RegionClients, prefix: &str) -> Self {
        let url = clients
            .sqs
            .create_queue()
            .queue_name(unique(prefix))
            .send()
            .await
            .expect("create_queue")
            .queue_url()
            .expect("queue url")
            .to_string();
        Self::new(clients.sqs.clone(), url)
    }

    /// The queue's ARN, which a rule's target names.
    pub async fn arn(&self) -> String {
        self.attribute(QueueAttributeName::QueueArn)
            .await
            .expect("queue attributes")
            .expect("queue arn")
    }

    /// One attribute of the queue (`None` if the answer lacks it).
    async fn attribute(&self, name: QueueAttributeName) -> Result<Option<String>, String> {
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(name.clone())
            .send()
            .await
            .map_err(|err| err.to_string())?;
        Ok(attrs.attributes().and_then(|a| a.get(&name)).cloned())
    }

    /// One receive of up to 10 messages, waiting up to `wait_seconds` for the first; deletes
    /// what it received and returns the bodies.
    async fn receive(&self, wait_seconds: i32) -> Vec<String> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait_seconds)
            .send()
            .await
            .expect("receive_message");
        let mut bodies = Vec::new();
        let mut deletes = Vec::new();
        for message in received.messages() {
            if let Some(body) = message.body() {
                bodies.push(body.to_string());
            }
            if let Some(handle) = message.receipt_handle() {
                deletes.push(
                    DeleteMessageBatchRequestEntry::builder()
                        .id(deletes.len().to_string())
                        .receipt_handle(handle)
                        .build()
                        .expect("an id and a receipt handle"),
                );
            }
        }
        // One DeleteMessageBatch for the (up to 10) messages, not a call each: a reader that must
        // keep up with a busy run on a loaded machine makes two calls per ten messages.
        if !deletes.is_empty() {
            let _ = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(deletes))
                .send()
                .await;
        }
        bodies
    }

    /// One receive of up to 10 messages, waiting up to `wait_seconds` for the first, that hides
    /// them from later receives for `hide_seconds` instead of deleting them: a reader that must
    /// keep up with a busy stand-in reads each message once, at one call per ten.
    pub async fn receive_hidden(
        &self,
        wait_seconds: i32,
        hide_seconds: i32,
    ) -> Result<Vec<String>, String> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .visibility_timeout(hide_seconds)
            .wait_time_seconds(wait_seconds)
            .send()
            .await
            .map_err(|err| err.to_string())?;
        Ok(received
            .messages()
            .iter()
            .filter_map(|m| m.body().map(str::to_string))
            .collect())
    }

    /// Receives (and deletes) messages until `want` arrived or `within` passed; returns every
    /// body received.
    pub async fn drain(&self, want: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut bodies = Vec::new();
        while bodies.len() < want && Instant::now() < deadline {
            let more = self.receive(0).await;
            if more.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            bodies.extend(more);
        }
        bodies
    }

    /// Receives (and deletes) messages until `want` change events with distinct ids arrived, or
    /// `within` passed; returns every body received but the probers' health check events, which
    /// share the buses and are neither counted nor returned. Distinct, because an event published
    /// twice (a retried batch) is still one change.
    pub async fn drain_until_distinct(&self, want: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut bodies = Vec::new();
        let mut ids = HashSet::new();
        while ids.len() < want && Instant::now() < deadline {
            for body in self.drain(10, Duration::from_millis(200)).await {
                let Ok(event) = serde_json::from_str::<Value>(&body) else {
                    bodies.push(body);
                    continue;
                };
                if is_health_event(&event) {
                    continue;
                }
                // Only change events count: a cross-region envelope carries the id of the change
                // it wraps and lands on this bus when its region fails over home, so counting it
                // would stop the reader before that change's own event arrived.
                if event["source"] == "eda.cdc" {
                    if let Some(id) = event["detail"]["event_id"].as_str() {
                        ids.insert(id.to_string());
                    }
                }
                bodies.push(body);
            }
        }
        bodies
    }

    /// Receives (and deletes) messages until one containing each marker arrived or `within`
    /// passed; returns, in marker order, the first such message as JSON (`None`: never came).
    /// A marker is whatever the test made unique about its event: an id, a table name.
    pub async fn find(&self, markers: &[String], within: Duration) -> Vec<Option<Value>> {
        let mut found: Vec<Option<Value>> = vec![None; markers.len()];
        let deadline = Instant::now() + within;
        while found.iter().any(Option::is_none) && Instant::now() < deadline {
            for body in self.receive(1).await {
                for (i, marker) in markers.iter().enumerate() {
                    if found[i].is_none() && body.contains(marker.as_str()) {
                        found[i] = Some(serde_json::from_str(&body).expect("an event as JSON"));
                    }
                }
            }
        }
        found
    }

    /// Up to 10 messages, left in the queue (visible again at once): for a failing test's
    /// message, which must not consume what the test still counts.
    pub async fn peek(&self) -> Vec<String> {
        let Ok(received) = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .wait_time_seconds(0)
            .send()
            .await
        else {
            return Vec::new();
        };
        received
            .messages()
            .iter()
            .filter_map(|m| m.body().map(str::to_string))
            .collect()
    }

    /// Deletes the queue (best effort), for a queue on a shared bus's rule that outlives its test.
    pub async fn delete(&self) {
        let _ = self.sqs.delete_queue().queue_url(&self.url).send().await;
    }

    /// The messages waiting in the queue (SQS's approximate count; `None` if the answer lacks
    /// it): how a test sees a dead letter land without consuming it.
    pub async fn depth(&self) -> Result<Option<u64>, String> {
        let count = self
            .attribute(QueueAttributeName::ApproximateNumberOfMessages)
            .await?;
        Ok(count.and_then(|n| n.parse().ok()))
    }
}
