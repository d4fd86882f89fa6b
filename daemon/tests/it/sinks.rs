//! Per-test AWS resources on the local stack, so tests running in parallel never read each
//! other's items or events: a DynamoDB table, an EventBridge bus whose rule copies every event to
//! an inspection queue, and a dead-letter queue — all named uniquely.

use super::support::{local_config, unique};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use eda_actors::aws::RegionClients;
use eda_config::Config;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

/// The resources of one test.
pub struct Sinks {
    /// Clients of the primary region.
    pub clients: RegionClients,
    /// The CDC table.
    pub table: String,
    /// The bus.
    pub bus: String,
    /// Gets a copy of every event on the bus.
    pub inspect_url: String,
    /// The dead-letter queue.
    pub dlq_url: String,
}

impl Sinks {
    /// Creates the resources, with a rule copying every bus event to the inspection queue.
    pub async fn create() -> Self {
        Self::build(true).await
    }

    /// Creates the resources without the inspection rule, for tests that do not read the events:
    /// moto then answers PutEvents in milliseconds instead of feeding an ever longer queue.
    pub async fn create_uninspected() -> Self {
        Self::build(false).await
    }

    async fn build(inspected: bool) -> Self {
        let config = local_config();
        let clients = RegionClients::new(&config.regions.primary, &config.aws).await;
        let table = unique("eda-test");
        clients
            .dynamodb
            .create_table()
            .table_name(&table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build()
                    .expect("key schema"),
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("attribute"),
            )
            .send()
            .await
            .expect("create_table");
        let (bus, inspect_url) = if inspected {
            inspected_bus(&clients).await
        } else {
            (create_bus(&clients).await, String::new())
        };
        // The same bus in the secondary region, where replicated events go; no rule reads it.
        RegionClients::new(&config.regions.secondary, &config.aws)
            .await
            .eventbridge
            .create_event_bus()
            .name(&bus)
            .send()
            .await
            .expect("create_event_bus in the secondary region");
        let dlq_url = create_queue(&clients, &unique("eda-dlq")).await;
        Self {
            clients,
            table,
            bus,
            inspect_url,
            dlq_url,
        }
    }

    /// The local configuration pointed at these resources and at `topic`, with a fresh group.
    pub fn config(&self, topic: &str) -> Config {
        let mut config = local_config();
        config.kafka.topics = vec![topic.to_string()];
        config.kafka.group_id = unique("eda-test-group");
        config.kafka.commit_interval_ms = 200;
        // A member that dies without leaving is noticed after the session timeout: keep the
        // tests' restarts short.
        config.kafka.session_timeout_ms = 6_000;
        config.kafka.drain_timeout_ms = 3_000;
        config.regions.primary.cdc_table = self.table.clone();
        config.regions.primary.event_bus = self.bus.clone();
        config.regions.primary.dlq_queue_url = self.dlq_url.clone();
        config.regions.secondary.event_bus = self.bus.clone();
        config.health.interval_ms = 500;
        // Health events would crowd the inspection queue these tests count change events in,
        // and replicating every change doubles moto's EventBridge load, which it cannot carry
        // for these histories in time; `regions::the_pipeline_replicates...` covers replication.
        config.health.publish_events = false;
        config.routing.replicate_tables = Vec::new();
        config
    }

    /// The same, as `EDA_` variables for a daemon process started on `config/local.toml`.
    pub fn env(&self, topic: &str, group: &str) -> Vec<(String, String)> {
        vec![
            ("EDA_KAFKA__TOPICS".into(), format!("[\"{topic}\"]")),
            ("EDA_KAFKA__GROUP_ID".into(), group.into()),
            ("EDA_KAFKA__COMMIT_INTERVAL_MS".into(), "200".into()),
            ("EDA_KAFKA__SESSION_TIMEOUT_MS".into(), "6000".into()),
            ("EDA_KAFKA__DRAIN_TIMEOUT_MS".into(), "3000".into()),
            ("EDA_REGIONS__PRIMARY__CDC_TABLE".into(), self.table.clone()),
            ("EDA_REGIONS__PRIMARY__EVENT_BUS".into(), self.bus.clone()),
            (
                "EDA_REGIONS__PRIMARY__DLQ_QUEUE_URL".into(),
                self.dlq_url.clone(),
            ),
            ("EDA_REGIONS__SECONDARY__EVENT_BUS".into(), self.bus.clone()),
            ("EDA_HEALTH__PUBLISH_EVENTS".into(), "false".into()),
            ("EDA_ROUTING__REPLICATE_TABLES".into(), "[]".into()),
            ("EDA_HTTP__LISTEN".into(), "127.0.0.1:0".into()),
        ]
    }

    /// Every item of the table, by `pk`, as plain JSON-ish values (strings, booleans).
    pub async fn items(&self) -> BTreeMap<String, HashMap<String, AttributeValue>> {
        let mut items = BTreeMap::new();
        let mut start = None;
        loop {
            let page = self
                .clients
                .dynamodb
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            for item in page.items() {
                if let Some(AttributeValue::S(pk)) = item.get("pk") {
                    items.insert(pk.clone(), item.clone());
                }
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return items,
            }
        }
    }

    /// Waits until the table holds at least `count` items (traffic is flowing), or fails the test.
    pub async fn wait_until_applied(&self, count: usize, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let applied = self.items().await.len();
            if applied >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {applied} of {count} items applied within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the table holds exactly `expected` (key -> last image, `None` deleted);
    /// returns the mismatches left at the deadline (empty: equal).
    pub async fn wait_for_table(
        &self,
        expected: &BTreeMap<String, Option<Map<String, Value>>>,
        pk: impl Fn(&str) -> String,
        within: Duration,
    ) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let items = self.items().await;
            let mismatches = compare(&items, expected, &pk);
            if mismatches.is_empty() || Instant::now() > deadline {
                return mismatches;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Why the table may differ, for a failing test's message: how many mismatches and the
    /// first ones, the dead letters waiting in the DLQ (read, not deleted), the group's committed
    /// offset of each partition against its end (when `kafka` names the topic and group), and
    /// the warnings and assignment changes in `logs` (daemon processes' stderr).
    pub async fn explain(
        &self,
        mismatches: &[String],
        kafka: Option<(&str, &str)>,
        logs: &[&Path],
    ) -> String {
        let mut out = format!(
            "{} mismatches, the first: {:?}",
            mismatches.len(),
            &mismatches[..mismatches.len().min(10)]
        );
        let waiting = match self.dlq_depth().await {
            Ok(Some(n)) => n.to_string(),
            _ => "an unknown number of".into(),
        };
        out.push_str(&format!("\n{waiting} dead letters in the DLQ, the first:"));
        for letter in self.peek_dead_letters().await {
            out.push_str(&format!("\n  {letter}"));
        }
        if let Some((topic, group)) = kafka {
            out.push_str(&format!(
                "\ngroup {group} on {topic}: {}",
                group_progress(topic, group).await
            ));
        }
        for log in logs {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let notable: Vec<String> = text
                .lines()
                .map(strip_ansi)
                .filter(|l| {
                    l.contains(" WARN ")
                        || l.contains(" ERROR ")
                        || l.contains("assignment changed")
                        || l.contains("Consumer group")
                })
                .collect();
            out.push_str(&format!(
                "\n{} ({} notable lines, the last 30):",
                log.display(),
                notable.len()
            ));
            for line in &notable[notable.len().saturating_sub(30)..] {
                out.push_str(&format!("\n  {line}"));
            }
        }
        out
    }

    /// The messages waiting in the DLQ (SQS's approximate count; `None` if the answer lacks it).
    pub async fn dlq_depth(&self) -> Result<Option<u64>, String> {
        use aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages;
        let attrs = self
            .clients
            .sqs
            .get_queue_attributes()
            .queue_url(&self.dlq_url)
            .attribute_names(ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(|err| err.to_string())?;
        Ok(attrs
            .attributes()
            .and_then(|a| a.get(&ApproximateNumberOfMessages))
            .and_then(|n| n.parse().ok()))
    }

    /// Up to 10 dead letters of the DLQ as `class stage attempts: message`, left in the queue.
    async fn peek_dead_letters(&self) -> Vec<String> {
        let Ok(received) = self
            .clients
            .sqs
            .receive_message()
            .queue_url(&self.dlq_url)
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
            .map(|message| {
                let body: Value = message
                    .body()
                    .and_then(|b| serde_json::from_str(b).ok())
                    .unwrap_or_default();
                format!(
                    "{} {} x{}: {}",
                    body["error_class"], body["stage"], body["attempts"], body["error_message"]
                )
            })
            .collect()
    }

    /// A reader of the inspection queue that can run in a task of its own.
    pub fn drainer(&self) -> Drainer {
        Drainer {
            sqs: self.clients.sqs.clone(),
            queue_url: self.inspect_url.clone(),
        }
    }

    /// Receives (and deletes) messages from `queue_url` until `want` arrived or `within` passed.
    pub async fn drain(&self, queue_url: &str, want: usize, within: Duration) -> Vec<String> {
        Drainer {
            sqs: self.clients.sqs.clone(),
            queue_url: queue_url.to_string(),
        }
        .drain(want, within)
        .await
    }
}

/// Reads and deletes the messages of one queue.
pub struct Drainer {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

impl Drainer {
    /// A reader of `queue_url`.
    pub fn new(sqs: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            sqs,
            queue_url: queue_url.into(),
        }
    }

    /// Receives (and deletes) messages until `want` change events with distinct ids arrived,
    /// or `within` passed; returns every body received.
    pub async fn drain_until_distinct(&self, want: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut bodies = Vec::new();
        let mut ids = std::collections::HashSet::new();
        while ids.len() < want && Instant::now() < deadline {
            let more = self.drain(10, Duration::from_millis(200)).await;
            for body in &more {
                if let Ok(event) = serde_json::from_str::<Value>(body) {
                    if let Some(id) = event["detail"]["event_id"].as_str() {
                        ids.insert(id.to_string());
                    }
                }
            }
            bodies.extend(more);
        }
        bodies
    }

    /// Receives (and deletes) messages until `want` arrived or `within` passed.
    pub async fn drain(&self, want: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut bodies = Vec::new();
        let queue_url = &self.queue_url;
        while bodies.len() < want && Instant::now() < deadline {
            let received = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive_message");
            if received.messages().is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            for message in received.messages() {
                if let Some(body) = message.body() {
                    bodies.push(body.to_string());
                }
                if let Some(handle) = message.receipt_handle() {
                    let _ = self
                        .sqs
                        .delete_message()
                        .queue_url(queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await;
                }
            }
        }
        bodies
    }
}

/// Creates a uniquely named bus in the clients' region; returns its name.
async fn create_bus(clients: &RegionClients) -> String {
    let bus = unique("eda-bus");
    clients
        .eventbridge
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .expect("create_event_bus");
    bus
}

/// Creates a uniquely named bus in the clients' region whose rule copies every event to a new
/// inspection queue; returns the bus name and the queue URL.
pub async fn inspected_bus(clients: &RegionClients) -> (String, String) {
    let bus = create_bus(clients).await;
    let inspect_url = create_queue(clients, &unique("eda-inspect")).await;
    let inspect_arn = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&inspect_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .expect("queue arn");
    clients
        .eventbridge
        .put_rule()
        .name("copy-all")
        .event_bus_name(&bus)
        .event_pattern(r#"{"account":["123456789012"]}"#)
        .send()
        .await
        .expect("put_rule");
    clients
        .eventbridge
        .put_targets()
        .rule("copy-all")
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("inspect")
                .arn(inspect_arn)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("put_targets");
    (bus, inspect_url)
}

/// Creates a queue; returns its URL.
pub async fn create_queue(clients: &RegionClients, name: &str) -> String {
    clients
        .sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("create_queue")
        .queue_url()
        .expect("queue url")
        .to_string()
}

fn compare(
    items: &BTreeMap<String, HashMap<String, AttributeValue>>,
    expected: &BTreeMap<String, Option<Map<String, Value>>>,
    pk: &impl Fn(&str) -> String,
) -> Vec<String> {
    let mut mismatches = Vec::new();
    for (key, image) in expected {
        let item = items.get(&pk(key));
        let live = item.filter(|i| !matches!(i.get("_deleted"), Some(AttributeValue::Bool(true))));
        match (image, live) {
            (None, None) => {}
            (None, Some(_)) => {
                mismatches.push(format!("{key}: deleted at the source, live in the table"))
            }
            (Some(_), None) => mismatches.push(format!("{key}: missing")),
            (Some(image), Some(item)) => {
                for (column, value) in image {
                    let stored = match item.get(column) {
                        Some(AttributeValue::S(s)) => Value::String(s.clone()),
                        Some(other) => Value::String(format!("{other:?}")),
                        None => Value::Null,
                    };
                    if &stored != value {
                        mismatches.push(format!("{key}.{column}: {stored} != {value}"));
                    }
                }
            }
        }
    }
    let known: std::collections::HashSet<String> = expected.keys().map(|k| pk(k)).collect();
    for pk in items.keys() {
        if !known.contains(pk) {
            mismatches.push(format!("{pk}: not in the source"));
        }
    }
    mismatches
}

/// Each partition of `topic` as `p<N> committed <offset> of <end>`: whether the group consumed
/// everything, or where it stopped.
async fn group_progress(topic: &str, group: &str) -> String {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let (topic, group) = (topic.to_string(), group.to_string());
    let report =
        tokio::task::spawn_blocking(move || -> Result<String, rdkafka::error::KafkaError> {
            let timeout = Duration::from_secs(5);
            let consumer: BaseConsumer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", super::support::BROKERS)
                .set("group.id", &group)
                .set("enable.auto.commit", "false")
                .create()?;
            let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
            let partitions: Vec<i32> = metadata
                .topics()
                .iter()
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            let mut wanted = rdkafka::TopicPartitionList::new();
            for &p in &partitions {
                wanted.add_partition(&topic, p);
            }
            let committed = consumer.committed_offsets(wanted, timeout)?;
            let mut parts = Vec::new();
            for p in partitions {
                let (_, end) = consumer.fetch_watermarks(&topic, p, timeout)?;
                let at = committed
                    .find_partition(&topic, p)
                    .map(|e| format!("{:?}", e.offset()))
                    .unwrap_or_else(|| "none".into());
                parts.push(format!("p{p} committed {at} of {end}"));
            }
            Ok(parts.join(", "))
        })
        .await;
    match report {
        Ok(Ok(report)) => report,
        Ok(Err(err)) => format!("not known ({err})"),
        Err(err) => format!("not known ({err})"),
    }
}

/// `line` without its terminal colour codes.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
