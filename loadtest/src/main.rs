//! `eda-loadtest`: sample traffic for the demo, a look at a topic, and the end-to-end benchmark.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use eda_actors::pipeline::{Observability, Pipeline};
use eda_loadtest::history::{Encoding, History, HistorySpec};
use eda_loadtest::kafka;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Partitions of the topic `produce` creates.
const PARTITIONS: i32 = 4;

/// eda's load generator.
#[derive(Debug, Parser)]
#[command(name = "eda-loadtest", about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Json,
    Avro,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Produce a Qlik CDC history (INSERT/UPDATE/DELETE with duplicates and redeliveries).
    Produce {
        /// Broker list.
        #[arg(long, default_value = "127.0.0.1:9092")]
        brokers: String,
        /// Topic (created with 4 partitions if missing; an existing one must have 4 for
        /// `--metadata`).
        #[arg(long, default_value = "qlik.cdc")]
        topic: String,
        /// Distinct keys.
        #[arg(long, default_value_t = 200)]
        keys: usize,
        /// Changes per key.
        #[arg(long, default_value_t = 5)]
        changes: usize,
        /// Poison (undecodable) messages to mix in.
        #[arg(long, default_value_t = 2)]
        poison: usize,
        /// Random seed.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Wire format: Qlik JSON, or Qlik Avro (schema registered in the Schema Registry).
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
        /// Schema Registry for `--format avro`.
        #[arg(long, default_value = "http://127.0.0.1:8081")]
        schema_registry: String,
        /// Share of keys whose last change is a DELETE (0..1).
        #[arg(long, default_value_t = 0.2)]
        delete_rate: f64,
        /// Share of changes sent twice in a row (0..1).
        #[arg(long, default_value_t = 0.05)]
        duplicate_rate: f64,
        /// Share of changes after which an older change of the key is sent again (0..1).
        #[arg(long, default_value_t = 0.05)]
        redelivery_rate: f64,
        /// Messages per second; 0 sends as fast as the broker takes them.
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Send Qlik's metadata (MD) message of the table first, at the head of each of the
        /// topic's 4 partitions, so the daemon learns the key from the stream (JSON only).
        #[arg(long)]
        metadata: bool,
    },
    /// Show a topic: each partition's offsets, then its messages (partition:offset, key, headers,
    /// value), as `kcat -C` would. Reads by assignment: joins no group, commits nothing.
    Peek(eda_loadtest::peek::PeekSpec),
    /// The end-to-end figure: produce a backlog to a fresh topic, run the pipeline in this
    /// process against the configured endpoints, and report messages/s and latency.
    E2e {
        /// Configuration (endpoints, tables); topic and group are replaced by fresh ones.
        #[arg(long, short)]
        config: PathBuf,
        /// Messages to push through.
        #[arg(long, default_value_t = 20_000)]
        messages: usize,
        /// Changes per key (keys = messages / changes).
        #[arg(long, default_value_t = 4)]
        changes: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Produce {
            brokers,
            topic,
            keys,
            changes,
            poison,
            seed,
            format,
            schema_registry,
            delete_rate,
            duplicate_rate,
            redelivery_rate,
            rate,
            metadata,
        } => {
            let encoding = match format {
                Format::Json => Encoding::Json,
                Format::Avro => {
                    let registry = eda_actors::kafka::schema_registry::SchemaRegistryClient::new(
                        &eda_config::SchemaRegistryConfig {
                            url: Some(schema_registry),
                            ..Default::default()
                        },
                    )?;
                    let id = registry
                        .register(
                            &eda_loadtest::avro::subject(&topic),
                            eda_loadtest::avro::CUSTOMERS_SCHEMA,
                        )
                        .await?;
                    Encoding::Avro(id)
                }
            };
            let history = History::generate(&HistorySpec {
                seed,
                keys,
                changes_per_key: changes,
                poison,
                delete_rate,
                duplicate_rate,
                redelivery_rate,
                sequence_base: HistorySpec::base_now(),
                encoding,
                metadata_partitions: if metadata { PARTITIONS } else { 0 },
                ..HistorySpec::default()
            });
            kafka::create_topic(&brokers, &topic, PARTITIONS).await?;
            let producer = kafka::producer(&brokers)?;
            let started = Instant::now();
            if rate == 0 {
                kafka::produce(&producer, &topic, &history.records).await?;
            } else {
                // Chunks of a tenth of a second's worth, each on its own schedule.
                let chunk = usize::try_from((rate / 10).max(1)).unwrap_or(1);
                for (i, part) in history.records.chunks(chunk).enumerate() {
                    let due =
                        started + Duration::from_secs_f64(i as f64 * chunk as f64 / rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                    kafka::produce(&producer, &topic, part).await?;
                }
            }
            let deleted = history.expected.values().filter(|v| v.is_none()).count();
            let described = history
                .records
                .iter()
                .filter(|r| r.partition.is_some())
                .count();
            println!(
                "produced {} messages to {topic} in {:.2?}: {} changes over {keys} keys ({deleted} end deleted), {} duplicates/redeliveries, {poison} poison, {described} metadata, {:?}",
                history.records.len(),
                started.elapsed(),
                history.changes,
                history.records.len() - history.changes - poison - described,
                encoding,
            );
        }
        Command::Peek(spec) => {
            let shown = tokio::task::spawn_blocking(move || {
                eda_loadtest::peek::peek(&spec, &mut std::io::stdout().lock())
            })
            .await??;
            eprintln!("{shown} messages shown");
        }
        Command::E2e {
            config,
            messages,
            changes,
        } => e2e(&config, messages, changes).await?,
    }
    Ok(())
}

async fn e2e(path: &std::path::Path, messages: usize, changes: usize) -> anyhow::Result<()> {
    let mut config = eda_config::Config::load(Some(path)).context("configuration")?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let topic = format!("eda-bench-{}", &run[..8]);
    config.kafka.topics = vec![topic.clone()];
    config.kafka.group_id = format!("eda-bench-{}", &run[..8]);
    // Buses without rules, in both regions (the secondary takes every change's cross-region
    // envelope): the figure is the daemon's, not the stand-in's rule delivery to SQS. DynamoDB
    // Local and the stand-in still answer every call.
    for region in [&mut config.regions.primary, &mut config.regions.secondary] {
        region.event_bus = "eda-bench".into();
        let clients = eda_actors::aws::RegionClients::new(region, &config.aws).await;
        let _ = clients
            .eventbridge
            .create_event_bus()
            .name("eda-bench")
            .send()
            .await;
    }
    let changes = changes.max(1);
    let history = History::generate(&HistorySpec {
        seed: 11,
        keys: (messages / changes).max(1),
        changes_per_key: changes,
        duplicate_rate: 0.0,
        redelivery_rate: 0.0,
        delete_rate: 0.1,
        poison: 0,
        padding: 600,
        sequence_base: HistorySpec::base_now(),
        encoding: Encoding::Json,
        metadata_partitions: 0,
    });
    let total = history.records.len();
    let bytes: usize = history.records.iter().map(|r| r.value.len()).sum();
    kafka::create_topic(&config.kafka.brokers, &topic, 4).await?;
    let producer = kafka::producer(&config.kafka.brokers)?;
    kafka::produce(&producer, &topic, &history.records).await?;
    eprintln!(
        "produced {total} messages ({} bytes avg) to {topic}; starting the pipeline",
        bytes / total
    );

    let obs = Observability::new(&config);
    let metrics = obs.metrics.clone();
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let pipeline = Pipeline::start(Arc::new(config), obs).await?;
    let mut first_seen = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    let done = loop {
        let text = metrics.encode().unwrap_or_default();
        let settled = histogram_count(&text, &topic);
        if first_seen.is_none() && settled > 0 {
            first_seen = Some(Instant::now());
        }
        if settled >= total as u64 {
            break Instant::now();
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {settled} of {total} settled in 600 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let cpu = cpu_seconds() - cpu_before;
    let text = metrics.encode().unwrap_or_default();
    pipeline.shutdown().await;
    let elapsed = done - first_seen.unwrap_or(started);
    let (p50, p99) = (
        histogram_quantile(&text, &topic, 0.50),
        histogram_quantile(&text, &topic, 0.99),
    );
    println!(
        "e2e: {total} messages in {:.2} s = {:.0} msg/s (from first settled to last); start-up {:.2} s",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        (first_seen.unwrap_or(started) - started).as_secs_f64(),
    );
    println!(
        "e2e: read-to-settled latency p50 <= {:.3} s, p99 <= {:.3} s (histogram bucket bounds; a backlog, so this includes queueing)",
        p50, p99
    );
    println!(
        "e2e: daemon CPU {:.1} µs per message ({:.2} CPU-s in this process; DynamoDB Local, the AWS stand-in and the broker are separate processes)",
        cpu * 1e6 / total as f64,
        cpu
    );
    Ok(())
}

/// `eda_kafka_processing_duration_seconds_count{topic=...}` from the encoded registry.
fn histogram_count(text: &str, topic: &str) -> u64 {
    let needle = format!("eda_kafka_processing_duration_seconds_count{{topic=\"{topic}\"}}");
    text.lines()
        .find_map(|line| line.strip_prefix(&needle))
        .and_then(|rest| rest.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// The upper bound of the bucket holding quantile `q`.
fn histogram_quantile(text: &str, topic: &str, q: f64) -> f64 {
    let prefix = "eda_kafka_processing_duration_seconds_bucket{";
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| l.starts_with(prefix) && l.contains(&format!("topic=\"{topic}\"")))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let count: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((bound, count))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().map_or(0.0, |b| b.1);
    buckets
        .iter()
        .find(|(_, count)| *count >= q * total)
        .map_or(f64::NAN, |b| b.0)
}

/// User + system CPU time of this process, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks / 100.0
}
