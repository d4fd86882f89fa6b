//! The shape of a pipeline test: a generated history produced to a fresh topic, a pipeline
//! started on it, a wait until the table settles, and a comparison of the table against the
//! source's last images that says what differs and why.
//!
//! [`scenario()`] does all of it in one call. A test that acts mid-run (kills a process, adds a
//! group member, registers a schema before the history exists) takes the same steps itself
//! through a [`Scenario`]: [`Scenario::new`], [`produce`](Scenario::produce),
//! [`start`](Scenario::start) or a daemon process on [`env`](Scenario::env) (or
//! [`start_halfway`](Scenario::start_halfway), act, [`produce_rest`](Scenario::produce_rest)),
//! then [`settle`](Scenario::settle).

use crate::local::BROKERS;
use crate::sinks::Sinks;
use crate::topic::{committed_offsets, fresh_topic_on};
use eda_actors::pipeline::{Observability, Pipeline};
use eda_actors::telemetry::Metrics;
use eda_config::Config;
use eda_loadtest::history::{History, Record};
use rdkafka::producer::FutureProducer;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Partitions of the topic [`scenario()`] creates: more than one, so ordering is per key.
pub const PARTITIONS: i32 = 4;

/// How long [`scenario()`] waits for the table to settle.
pub const SETTLE_WITHIN: Duration = Duration::from_secs(120);

/// How long [`scenario()`] reads the inspection queue for one event per change.
pub const EVENTS_WITHIN: Duration = Duration::from_secs(150);

/// A fresh topic, one test's sinks, and the configuration that joins them: what a pipeline test
/// sets up before its history flows.
pub struct Scenario {
    /// The table, bus and dead-letter queue the pipeline writes to.
    pub sinks: Sinks,
    /// The topic the history goes to, created empty.
    pub topic: String,
    /// The broker the topic is on (the shared one, or a test's private broker).
    pub brokers: String,
    /// The pipeline's configuration, pointed at `sinks` and `topic` with a fresh group; change
    /// it before starting.
    pub config: Config,
    /// Produces to `topic`; kept, so a history produced in parts goes through one producer.
    producer: FutureProducer,
    /// Per partition, one past the last offset produced: where the group must commit.
    produced: Mutex<BTreeMap<i32, i64>>,
}

impl Scenario {
    /// Creates a topic of `partitions` partitions for `sinks`; nothing is produced yet.
    pub async fn new(sinks: Sinks, partitions: i32) -> Self {
        Self::on_broker(sinks, partitions, BROKERS).await
    }

    /// [`new`](Self::new) on the broker at `brokers` (a test's [`PrivateBroker`]): the topic,
    /// the producer and the pipeline's configuration all point there.
    ///
    /// [`PrivateBroker`]: crate::broker::PrivateBroker
    pub async fn on_broker(sinks: Sinks, partitions: i32, brokers: &str) -> Self {
        let topic = fresh_topic_on(brokers, partitions).await;
        let mut config = sinks.config(&topic);
        config.kafka.brokers = brokers.to_string();
        let producer = eda_loadtest::kafka::producer(brokers).expect("producer");
        Self {
            sinks,
            topic,
            brokers: brokers.to_string(),
            config,
            producer,
            produced: Mutex::new(BTreeMap::new()),
        }
    }

    /// Switches the topic to Qlik Avro: registers the load generator's schema under the topic's
    /// subject in the local Schema Registry and returns its id, for
    /// `eda_loadtest::history::Encoding::Avro`.
    pub async fn use_avro(&mut self) -> u32 {
        self.config.kafka.format = eda_config::MessageFormat::QlikAvro;
        let registry = eda_actors::kafka::schema_registry::SchemaRegistryClient::new(
            &self.config.schema_registry,
        )
        .expect("registry client");
        registry
            .register(
                &eda_loadtest::avro::subject(&self.topic),
                eda_loadtest::avro::CUSTOMERS_SCHEMA,
            )
            .await
            .expect("schema registered")
    }

    /// The consumer group the pipeline joins.
    pub fn group(&self) -> &str {
        &self.config.kafka.group_id
    }

    /// The same setup as `EDA_` variables, for a daemon process started on `config/local.toml`
    /// (changes made to [`config`](Self::config) are not in it).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = self.sinks.env(&self.topic, self.group());
        env.push(("EDA_KAFKA__BROKERS".into(), self.brokers.clone()));
        env
    }

    /// Produces `records` to the topic, in order, and waits until each is delivered.
    pub async fn produce(&self, records: &[Record]) {
        let ends = eda_loadtest::kafka::produce(&self.producer, &self.topic, records)
            .await
            .expect("produced");
        let mut produced = self.produced.lock().unwrap_or_else(PoisonError::into_inner);
        for (partition, end) in ends {
            let known = produced.entry(partition).or_insert(0);
            *known = (*known).max(end);
        }
    }

    /// Waits up to `within` until the group has committed, on every partition produced to, the
    /// offset after the last record produced there (the producer's delivery reports say where
    /// that is; the broker's watermark answer has been seen below it). `Err` names each
    /// partition short of its end.
    pub async fn committed_to_the_end(&self, within: Duration) -> Result<(), String> {
        let ends = self
            .produced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let deadline = std::time::Instant::now() + within;
        loop {
            let committed = committed_offsets(
                &self.brokers,
                &self.topic,
                self.group(),
                ends.keys().copied().collect(),
            )
            .await;
            let short: Vec<String> = match &committed {
                Ok(committed) => ends
                    .iter()
                    .filter(|(p, end)| committed.get(p).copied().flatten() < Some(**end))
                    .map(|(p, end)| {
                        format!(
                            "p{p} committed {:?} of {end}",
                            committed.get(p).copied().flatten()
                        )
                    })
                    .collect(),
                Err(err) => vec![format!("committed offsets not known: {err}")],
            };
            if short.is_empty() {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(short.join(", "));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Produces the first half of `history`, starts a pipeline on it and returns once traffic
    /// flows (an item is applied, within 60 s): the point where a test acts mid-run (kills an
    /// actor, adds a member) before [`produce_rest`](Self::produce_rest).
    pub async fn start_halfway(&self, history: &History) -> (Pipeline, Observability) {
        self.produce(first_half(history)).await;
        let started = self.start().await;
        self.sinks
            .table
            .wait_until_applied(1, Duration::from_secs(60))
            .await;
        started
    }

    /// Produces the half of `history` that [`start_halfway`](Self::start_halfway) left.
    pub async fn produce_rest(&self, history: &History) {
        let produced = first_half(history).len();
        self.produce(&history.records[produced..]).await;
    }

    /// Starts an in-process pipeline on the configuration; returns it with its metrics and
    /// readiness. Started twice, the two pipelines are two members of one group.
    pub async fn start(&self) -> (Pipeline, Observability) {
        let config = Arc::new(self.config.clone());
        let obs = Observability::new(&config);
        let pipeline = Pipeline::start(config, obs.clone())
            .await
            .expect("pipeline starts");
        (pipeline, obs)
    }

    /// Waits up to `within` until the table holds exactly `history`'s last images; what still
    /// differs then, explained with the dead letters, the group's offsets and the notable lines
    /// of `logs` (daemon processes' stderr).
    pub async fn settle(&self, history: &History, within: Duration, logs: &[&Path]) -> Settled {
        let mismatches = self.sinks.table.wait_for(history, within).await;
        let why = if mismatches.is_empty() {
            String::new()
        } else {
            self.sinks
                .explain(
                    &mismatches,
                    Some((&self.brokers, &self.topic, self.group())),
                    logs,
                )
                .await
        };
        Settled { mismatches, why }
    }
}

/// The records a mid-run test produces before it acts.
fn first_half(history: &History) -> &[Record] {
    &history.records[..history.records.len() / 2]
}

/// How the table ended against the source.
pub struct Settled {
    /// One line a difference (empty: the table is the source's last images).
    pub mismatches: Vec<String>,
    /// Why, for the failing test's message: the mismatches, dead letters, offsets and logs.
    why: String,
}

impl fmt::Display for Settled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.why)
    }
}

/// A [`scenario()`] whose pipeline still runs: the test checks what else it must (events, dead
/// letters, metrics) while nothing has been shut down, then calls [`Run::shutdown`].
pub struct Run {
    /// The topic, sinks and configuration the run used.
    pub scenario: Scenario,
    /// The running pipeline.
    pub pipeline: Pipeline,
    /// The pipeline's `/metrics`.
    pub metrics: Arc<Metrics>,
    /// How the table ended.
    pub settled: Settled,
    /// Reads the inspection queue from before the pipeline started, when the sinks have one.
    events: Option<JoinHandle<Vec<String>>>,
}

impl Run {
    /// Every message the inspection queue received until one event per change of the history
    /// arrived, or [`EVENTS_WITHIN`] passed since the pipeline started.
    pub async fn events(&mut self) -> Vec<String> {
        self.events
            .take()
            .expect("the sinks are inspected and the events not taken yet")
            .await
            .expect("the reader of the inspection queue")
    }

    /// Stops the pipeline gracefully, as every test ends.
    pub async fn shutdown(self) {
        self.pipeline.shutdown().await;
    }
}

/// A pipeline test in one call: `history` produced to a fresh topic of [`PARTITIONS`]
/// partitions, a pipeline started on the configuration of `sinks` (changed by `configure`),
/// and the table compared with the history's last images once it settles, within
/// [`SETTLE_WITHIN`]. When the sinks are inspected, their queue is read from before the start,
/// while the events arrive. The pipeline keeps running for the test's further checks.
pub async fn scenario(history: &History, sinks: Sinks, configure: impl FnOnce(&mut Config)) -> Run {
    let mut scenario = Scenario::new(sinks, PARTITIONS).await;
    configure(&mut scenario.config);
    scenario.produce(&history.records).await;
    let events = scenario.sinks.inspect.clone().map(|queue| {
        let want = history.changes;
        tokio::spawn(async move { queue.drain_until_distinct(want, EVENTS_WITHIN).await })
    });
    let (pipeline, obs) = scenario.start().await;
    let settled = scenario.settle(history, SETTLE_WITHIN, &[]).await;
    Run {
        scenario,
        pipeline,
        metrics: obs.metrics,
        settled,
        events,
    }
}
