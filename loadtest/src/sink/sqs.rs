//! SQS in memory: queues by region and name (the last segment of the queue URL), created by the
//! first call that names them, with visibility timeouts, receive counts and long polling.
//!
//! The limits that shape eda's DLQ writer are kept: 10 entries per batch with distinct ids,
//! 256 KiB per message and per batch (body plus attribute names, types and values), answered
//! with SQS's own codes (`TooManyEntriesInBatchRequest`, `BatchEntryIdsNotDistinct`,
//! `BatchRequestTooLong`, `InvalidParameterValue`), so a batch that real SQS would refuse is
//! refused here too. No MD5 digests are returned (the Rust SDK does not check them).

use super::wire::{integer, list, string, AwsError};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Entries per batch call.
const MAX_BATCH: usize = 10;
/// Bytes per message, and per batch.
const MAX_BYTES: usize = 262_144;
/// The visibility timeout of a queue nobody configured.
const DEFAULT_VISIBILITY: Duration = Duration::from_secs(30);
/// How often a long poll looks again.
const POLL_STEP: Duration = Duration::from_millis(20);
/// The account in the queue URLs the sink hands out.
const ACCOUNT: &str = "000000000000";

/// One message.
#[derive(Debug, Clone)]
struct Message {
    id: String,
    body: String,
    /// `MessageAttributes` as sent.
    attributes: Option<Value>,
    sent_ms: u128,
    receives: u32,
}

/// One queue.
#[derive(Debug, Default)]
struct Queue {
    /// Visible messages, oldest first.
    visible: VecDeque<Message>,
    /// Received messages by receipt handle, with when they become visible again.
    in_flight: HashMap<String, (Message, Instant)>,
}

impl Queue {
    /// Makes messages whose visibility timeout passed visible again.
    fn expire(&mut self, now: Instant) {
        let due: Vec<String> = self
            .in_flight
            .iter()
            .filter(|(_, (_, until))| *until <= now)
            .map(|(handle, _)| handle.clone())
            .collect();
        for handle in due {
            if let Some((message, _)) = self.in_flight.remove(&handle) {
                self.visible.push_back(message);
            }
        }
    }
}

/// The depth of one queue, for the statistics.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct QueueStats {
    /// Messages waiting to be received.
    pub visible: usize,
    /// Messages received and not yet deleted.
    pub in_flight: usize,
}

/// The SQS of the sink, every region's.
#[derive(Debug, Default)]
pub struct Sqs {
    /// Queues by (region, name).
    queues: Mutex<BTreeMap<(String, String), Queue>>,
    /// Numbers message ids and receipt handles.
    next: AtomicU64,
}

impl Sqs {
    /// Answers `operation`; `host` is the sink's address as the caller wrote it, for queue URLs.
    pub async fn handle(
        &self,
        operation: &str,
        region: &str,
        host: &str,
        request: Map<String, Value>,
    ) -> Result<Value, AwsError> {
        match operation {
            "SendMessage" => self.send_message(region, &request),
            "SendMessageBatch" => self.send_message_batch(region, &request),
            "ReceiveMessage" => self.receive_message(region, &request).await,
            "DeleteMessage" => {
                let handle = string(&request, "ReceiptHandle")?;
                self.with_queue(region, &request, |q| {
                    q.in_flight.remove(handle);
                    Ok(json!({}))
                })
            }
            "DeleteMessageBatch" => self.delete_message_batch(region, &request),
            "GetQueueAttributes" => self.get_queue_attributes(region, &request),
            "ListQueues" => Ok(self.list_queues(region, host, &request)),
            "GetQueueUrl" | "CreateQueue" => {
                let name = string(&request, "QueueName")?;
                let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
                queues
                    .entry((region.to_string(), name.to_string()))
                    .or_default();
                Ok(json!({"QueueUrl": url(host, name)}))
            }
            "PurgeQueue" => self.with_queue(region, &request, |q| {
                *q = Queue::default();
                Ok(json!({}))
            }),
            other => Err(AwsError::new(
                400,
                "UnsupportedOperation",
                format!("the sink does not answer SQS's {other}"),
            )),
        }
    }

    /// Depths per `region/queue`.
    pub fn stats(&self) -> BTreeMap<String, QueueStats> {
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues
            .iter()
            .map(|((region, name), q)| {
                let stats = QueueStats {
                    visible: q.visible.len(),
                    in_flight: q.in_flight.len(),
                };
                (format!("{region}/{name}"), stats)
            })
            .collect()
    }

    fn with_queue<T>(
        &self,
        region: &str,
        request: &Map<String, Value>,
        f: impl FnOnce(&mut Queue) -> Result<T, AwsError>,
    ) -> Result<T, AwsError> {
        let name = queue_name(string(request, "QueueUrl")?)?;
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        f(queues
            .entry((region.to_string(), name.to_string()))
            .or_default())
    }

    fn message(&self, body: &str, attributes: Option<&Value>) -> Result<Message, AwsError> {
        let size = body.len() + attributes.map_or(0, attributes_size);
        if size > MAX_BYTES {
            return Err(AwsError::new(
                400,
                "InvalidParameterValue",
                format!(
                    "One or more parameters are invalid. Reason: Message must be shorter than \
                     {MAX_BYTES} bytes."
                ),
            ));
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        Ok(Message {
            id: format!("00000000-0000-4000-9000-{n:012x}"),
            body: body.to_string(),
            attributes: attributes.cloned(),
            sent_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis()),
            receives: 0,
        })
    }

    fn send_message(&self, region: &str, request: &Map<String, Value>) -> Result<Value, AwsError> {
        let message = self.message(
            string(request, "MessageBody")?,
            request.get("MessageAttributes"),
        )?;
        let id = message.id.clone();
        self.with_queue(region, request, |q| {
            q.visible.push_back(message);
            Ok(json!({"MessageId": id}))
        })
    }

    fn send_message_batch(
        &self,
        region: &str,
        request: &Map<String, Value>,
    ) -> Result<Value, AwsError> {
        let entries = batch(request)?;
        let total: usize = entries
            .iter()
            .map(|e| {
                e.get("MessageBody")
                    .and_then(Value::as_str)
                    .map_or(0, str::len)
                    + e.get("MessageAttributes").map_or(0, attributes_size)
            })
            .sum();
        if total > MAX_BYTES {
            return Err(AwsError::new(
                400,
                "BatchRequestTooLong",
                format!("Batch requests cannot be longer than {MAX_BYTES} bytes. You have sent {total} bytes."),
            ));
        }
        let (mut successful, mut failed, mut accepted) = (Vec::new(), Vec::new(), Vec::new());
        for entry in entries {
            let id = entry["Id"].as_str().unwrap_or_default();
            let made = entry
                .get("MessageBody")
                .and_then(Value::as_str)
                .ok_or_else(|| AwsError::new(400, "MissingParameter", "MessageBody is required"))
                .and_then(|body| self.message(body, entry.get("MessageAttributes")));
            match made {
                Ok(message) => {
                    successful.push(json!({"Id": id, "MessageId": message.id}));
                    accepted.push(message);
                }
                Err(err) => failed.push(json!({
                    "Id": id, "Code": err.code, "Message": err.message, "SenderFault": true
                })),
            }
        }
        self.with_queue(region, request, |q| {
            q.visible.extend(accepted);
            Ok(json!({"Successful": successful, "Failed": failed}))
        })
    }

    async fn receive_message(
        &self,
        region: &str,
        request: &Map<String, Value>,
    ) -> Result<Value, AwsError> {
        let max = integer(request, "MaxNumberOfMessages")?.unwrap_or(1);
        if !(1..=10).contains(&max) {
            return Err(AwsError::new(
                400,
                "InvalidParameterValue",
                "MaxNumberOfMessages must be between 1 and 10",
            ));
        }
        let visibility = integer(request, "VisibilityTimeout")?
            .map_or(DEFAULT_VISIBILITY, |s| Duration::from_secs(s.max(0) as u64));
        let wait = Duration::from_secs(
            integer(request, "WaitTimeSeconds")?
                .unwrap_or(0)
                .clamp(0, 20) as u64,
        );
        let with_attributes = !list(request, "MessageAttributeNames")?.is_empty();
        let deadline = Instant::now() + wait;
        loop {
            let received = self.with_queue(region, request, |q| {
                let now = Instant::now();
                q.expire(now);
                let mut out = Vec::new();
                while out.len() < max as usize {
                    let Some(mut message) = q.visible.pop_front() else {
                        break;
                    };
                    message.receives += 1;
                    let handle = format!(
                        "{}-{}",
                        message.id,
                        self.next.fetch_add(1, Ordering::Relaxed)
                    );
                    let mut answer = json!({
                        "MessageId": message.id,
                        "ReceiptHandle": handle,
                        "Body": message.body,
                        "Attributes": {
                            "ApproximateReceiveCount": message.receives.to_string(),
                            "SentTimestamp": message.sent_ms.to_string()
                        }
                    });
                    if let (true, Some(attributes)) = (with_attributes, &message.attributes) {
                        answer["MessageAttributes"] = attributes.clone();
                    }
                    out.push(answer);
                    q.in_flight.insert(handle, (message, now + visibility));
                }
                Ok(out)
            })?;
            if !received.is_empty() || Instant::now() >= deadline {
                return Ok(json!({ "Messages": received }));
            }
            tokio::time::sleep(POLL_STEP.min(deadline - Instant::now())).await;
        }
    }

    fn delete_message_batch(
        &self,
        region: &str,
        request: &Map<String, Value>,
    ) -> Result<Value, AwsError> {
        let entries = batch(request)?;
        self.with_queue(region, request, |q| {
            let successful: Vec<Value> = entries
                .iter()
                .map(|entry| {
                    if let Some(handle) = entry["ReceiptHandle"].as_str() {
                        q.in_flight.remove(handle);
                    }
                    json!({"Id": entry["Id"]})
                })
                .collect();
            Ok(json!({"Successful": successful, "Failed": []}))
        })
    }

    fn get_queue_attributes(
        &self,
        region: &str,
        request: &Map<String, Value>,
    ) -> Result<Value, AwsError> {
        let url = string(request, "QueueUrl")?;
        let name = queue_name(url)?.to_string();
        self.with_queue(region, request, |q| {
            q.expire(Instant::now());
            Ok(json!({"Attributes": {
                "ApproximateNumberOfMessages": q.visible.len().to_string(),
                "ApproximateNumberOfMessagesNotVisible": q.in_flight.len().to_string(),
                "ApproximateNumberOfMessagesDelayed": "0",
                "VisibilityTimeout": DEFAULT_VISIBILITY.as_secs().to_string(),
                "QueueArn": format!("arn:aws:sqs:{region}:{ACCOUNT}:{name}")
            }}))
        })
    }

    fn list_queues(&self, region: &str, host: &str, request: &Map<String, Value>) -> Value {
        let prefix = request
            .get("QueueNamePrefix")
            .and_then(Value::as_str)
            .unwrap_or("");
        let max = request
            .get("MaxResults")
            .and_then(Value::as_u64)
            .map_or(1000, |m| m.clamp(1, 1000)) as usize;
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let urls: Vec<String> = queues
            .keys()
            .filter(|(r, name)| r == region && name.starts_with(prefix))
            .take(max)
            .map(|(_, name)| url(host, name))
            .collect();
        json!({ "QueueUrls": urls })
    }
}

/// A batch call's entries: 1 to 10, with distinct ids.
fn batch(request: &Map<String, Value>) -> Result<&[Value], AwsError> {
    let entries = list(request, "Entries")?;
    if entries.is_empty() {
        return Err(AwsError::new(
            400,
            "EmptyBatchRequest",
            "There should be at least one entry in the request.",
        ));
    }
    if entries.len() > MAX_BATCH {
        return Err(AwsError::new(
            400,
            "TooManyEntriesInBatchRequest",
            format!(
                "Maximum number of entries per request are {MAX_BATCH}. You have sent {}.",
                entries.len()
            ),
        ));
    }
    let ids: HashSet<&str> = entries.iter().filter_map(|e| e["Id"].as_str()).collect();
    if ids.len() != entries.len() {
        return Err(AwsError::new(
            400,
            "BatchEntryIdsNotDistinct",
            "Two or more batch entries in the request have the same Id.",
        ));
    }
    Ok(entries)
}

/// The queue a URL names: its last path segment.
fn queue_name(url: &str) -> Result<&str, AwsError> {
    url.rsplit('/')
        .next()
        .filter(|name| !name.is_empty())
        .ok_or_else(|| {
            AwsError::new(
                400,
                "QueueDoesNotExist",
                format!("no queue in the URL {url:?}"),
            )
        })
}

fn url(host: &str, name: &str) -> String {
    format!("http://{host}/{ACCOUNT}/{name}")
}

/// What message attributes add to a message's size: names, types and values.
fn attributes_size(attributes: &Value) -> usize {
    attributes.as_object().map_or(0, |map| {
        map.iter()
            .map(|(name, value)| {
                let text =
                    |field: &str| value.get(field).and_then(Value::as_str).map_or(0, str::len);
                name.len() + text("DataType") + text("StringValue") + text("BinaryValue") * 3 / 4
            })
            .sum()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[tokio::test]
    async fn a_message_is_received_once_until_its_visibility_runs_out_and_deleted() {
        let sqs = Sqs::default();
        let queue = "http://h/000000000000/q";
        sqs.handle(
            "SendMessage",
            "r",
            "h",
            request(json!({"QueueUrl": queue, "MessageBody": "hi"})),
        )
        .await
        .unwrap();
        let receive = json!({"QueueUrl": queue, "MaxNumberOfMessages": 10, "VisibilityTimeout": 0});
        let first = sqs
            .handle("ReceiveMessage", "r", "h", request(receive.clone()))
            .await
            .unwrap();
        assert_eq!(first["Messages"][0]["Body"], "hi");
        let again = sqs
            .handle("ReceiveMessage", "r", "h", request(receive))
            .await
            .unwrap();
        assert_eq!(
            again["Messages"][0]["Attributes"]["ApproximateReceiveCount"],
            "2"
        );
        let handle = again["Messages"][0]["ReceiptHandle"].clone();
        sqs.handle(
            "DeleteMessage",
            "r",
            "h",
            request(json!({"QueueUrl": queue, "ReceiptHandle": handle})),
        )
        .await
        .unwrap();
        assert_eq!(sqs.stats()["r/q"].visible + sqs.stats()["r/q"].in_flight, 0);
    }

    #[tokio::test]
    async fn batches_sqs_would_refuse_are_refused_with_its_codes() {
        let sqs = Sqs::default();
        let entry = |id: &str, size: usize| json!({"Id": id, "MessageBody": "x".repeat(size)});
        let send =
            |entries: Value| request(json!({"QueueUrl": "http://h/a/q", "Entries": entries}));
        let too_many: Vec<Value> = (0..11).map(|i| entry(&i.to_string(), 1)).collect();
        for (entries, code) in [
            (json!(too_many), "TooManyEntriesInBatchRequest"),
            (
                json!([entry("a", 1), entry("a", 1)]),
                "BatchEntryIdsNotDistinct",
            ),
            (
                json!([entry("a", 200_000), entry("b", 100_000)]),
                "BatchRequestTooLong",
            ),
            (json!([]), "EmptyBatchRequest"),
        ] {
            let err = sqs
                .handle("SendMessageBatch", "r", "h", send(entries))
                .await
                .unwrap_err();
            assert_eq!(err.code, code);
        }
        let ok = sqs
            .handle(
                "SendMessageBatch",
                "r",
                "h",
                send(json!([entry("a", 5), entry("b", 5)])),
            )
            .await
            .unwrap();
        assert_eq!(ok["Successful"].as_array().unwrap().len(), 2);
        assert_eq!(sqs.stats()["r/q"].visible, 2);
    }
}
