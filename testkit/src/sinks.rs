//! One test's AWS resources on the local stack, so tests running in parallel never read each
//! other's items or events: a DynamoDB table, a table for the Qlik table structures, an
//! EventBridge bus (optionally copied to an inspection queue), a dead-letter queue and the two
//! regions' owed queues, all named uniquely; and the configuration that points a pipeline at
//! them.

use crate::bus::{create_bus, inspected_bus};
use crate::local::{local_config, unique};
use crate::queue::Queue;
use crate::table::Table;
use crate::topic::group_progress_on;
use eda_actors::aws::RegionClients;
use eda_config::Config;
use serde_json::Value;
use std::path::Path;

/// The resources of one test.
pub struct Sinks {
    /// Clients of the primary region, where every resource below lives.
    pub clients: RegionClients,
    /// The CDC table.
    pub table: Table,
    /// The name of the table of Qlik table structures (`regions.primary.metadata_table`).
    pub metadata_table: String,
    /// The bus of both regions (the secondary's copy has no rule: replicated events are not
    /// read there unless a test adds an inspector).
    pub bus: String,
    /// Gets a copy of every event on the primary's bus, when the test reads the events.
    pub inspect: Option<Queue>,
    /// The dead-letter queue.
    pub dlq: Queue,
    /// The owed queue in the primary region: events owed to the secondary while its bus cannot
    /// take them (`regions.primary.owed_queue_url`).
    pub owed_to_secondary: Queue,
    /// The owed queue in the secondary region: events owed to the primary
    /// (`regions.secondary.owed_queue_url`).
    pub owed_to_primary: Queue,
}

impl Sinks {
    /// Creates the resources, with a rule copying every bus event to the inspection queue.
    pub async fn create() -> Self {
        Self::build(true).await
    }

    /// Creates the resources without the inspection rule, for tests that do not read the events
    /// (no queue fills up that nobody reads).
    pub async fn create_uninspected() -> Self {
        Self::build(false).await
    }

    async fn build(inspected: bool) -> Self {
        let config = local_config();
        let clients = RegionClients::new(&config.regions.primary, &config.aws).await;
        let table = Table::create(&clients.dynamodb).await;
        let metadata_table = Table::create_metadata(&clients.dynamodb).await;
        let (bus, inspect) = if inspected {
            let (bus, queue) = inspected_bus(&clients).await;
            (bus, Some(queue))
        } else {
            (create_bus(&clients).await, None)
        };
        // The same bus in the secondary region, where replicated events go; no rule reads it.
        let secondary = RegionClients::new(&config.regions.secondary, &config.aws).await;
        secondary
            .eventbridge
            .create_event_bus()
            .name(&bus)
            .send()
            .await
            .expect("create_event_bus in the secondary region");
        let dlq = Queue::create(&clients, "eda-dlq").await;
        let owed_to_secondary = Queue::create(&clients, "eda-owed").await;
        let owed_to_primary = Queue::create(&secondary, "eda-owed").await;
        Self {
            clients,
            table,
            metadata_table,
            bus,
            inspect,
            dlq,
            owed_to_secondary,
            owed_to_primary,
        }
    }

    /// The local configuration pointed at these resources and at `topic`, with a fresh group
    /// and the short timeouts that keep the tests' restarts short.
    pub fn config(&self, topic: &str) -> Config {
        let mut config = local_config();
        config.kafka.topics = vec![topic.to_string()];
        config.kafka.group_id = unique("eda-test-group");
        config.kafka.commit_interval_ms = 200;
        // A member that dies without leaving is noticed after the session timeout: keep the
        // tests' restarts short.
        config.kafka.session_timeout_ms = 6_000;
        config.kafka.drain_timeout_ms = 3_000;
        config.regions.primary.cdc_table = self.table.name.clone();
        config.regions.primary.metadata_table = self.metadata_table.clone();
        config.regions.primary.event_bus = self.bus.clone();
        config.regions.primary.dlq_queue_url = self.dlq.url.clone();
        config.regions.primary.owed_queue_url = self.owed_to_secondary.url.clone();
        config.regions.secondary.event_bus = self.bus.clone();
        config.regions.secondary.owed_queue_url = self.owed_to_primary.url.clone();
        config.health.interval_ms = 500;
        // Health events and replication stay on, as in production: the readers skip the
        // health events when they count change events ([`Queue::drain_until_distinct`]), and
        // the replicated envelopes go to the secondary region's bus.
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
            (
                "EDA_REGIONS__PRIMARY__CDC_TABLE".into(),
                self.table.name.clone(),
            ),
            (
                "EDA_REGIONS__PRIMARY__METADATA_TABLE".into(),
                self.metadata_table.clone(),
            ),
            ("EDA_REGIONS__PRIMARY__EVENT_BUS".into(), self.bus.clone()),
            (
                "EDA_REGIONS__PRIMARY__DLQ_QUEUE_URL".into(),
                self.dlq.url.clone(),
            ),
            (
                "EDA_REGIONS__PRIMARY__OWED_QUEUE_URL".into(),
                self.owed_to_secondary.url.clone(),
            ),
            ("EDA_REGIONS__SECONDARY__EVENT_BUS".into(), self.bus.clone()),
            (
                "EDA_REGIONS__SECONDARY__OWED_QUEUE_URL".into(),
                self.owed_to_primary.url.clone(),
            ),
            ("EDA_HTTP__LISTEN".into(), "127.0.0.1:0".into()),
        ]
    }

    /// Why the table may differ, for a failing test's message: how many mismatches and the
    /// first ones, the dead letters waiting in the DLQ (read, not deleted), the group's committed
    /// offset of each partition against its end (when `kafka` names the broker, topic and group),
    /// and the warnings and assignment changes in `logs` (daemon processes' stderr).
    pub async fn explain(
        &self,
        mismatches: &[String],
        kafka: Option<(&str, &str, &str)>,
        logs: &[&Path],
    ) -> String {
        let mut out = format!(
            "{} mismatches, the first: {:?}",
            mismatches.len(),
            &mismatches[..mismatches.len().min(10)]
        );
        let waiting = match self.dlq.depth().await {
            Ok(Some(n)) => n.to_string(),
            _ => "an unknown number of".into(),
        };
        out.push_str(&format!("\n{waiting} dead letters in the DLQ, the first:"));
        for letter in self.dlq.peek().await {
            let letter: Value = serde_json::from_str(&letter).unwrap_or_default();
            out.push_str(&format!(
                "\n  {} {} x{}: {}",
                letter["error_class"], letter["stage"], letter["attempts"], letter["error_message"]
            ));
        }
        if let Some((brokers, topic, group)) = kafka {
            out.push_str(&format!(
                "\ngroup {group} on {topic}: {}",
                group_progress_on(brokers, topic, group).await
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
