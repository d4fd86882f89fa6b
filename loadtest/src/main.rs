//! `eda-loadtest`: sample traffic for the demo, a look at a topic, the blackhole AWS endpoint
//! and the end-to-end benchmarks.

/// mimalloc, as the daemon: the sink parses every AWS call into JSON trees and items, and
/// glibc's malloc took a third of its CPU (`docs/perf/profile.md`), on the cores the daemon
/// shares with it.
#[global_allocator]
static ALLOC: eda_core::alloc::Mimalloc = eda_core::alloc::Mimalloc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
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
    /// A blackhole AWS endpoint for benchmarks (DynamoDB, EventBridge, SQS in memory, with
    /// eda's sequence guard): a benchmark harness, NOT a stand-in for correctness — the real
    /// local servers stay the reference. Prints `listening on http://ADDR` when ready; serves
    /// until SIGTERM or SIGINT. `GET /_sink/stats` shows what it saw.
    Sink(SinkArgs),
    /// The end-to-end benchmark (`make bench-e2e`): the release daemon, as its own process,
    /// drains a backlog from the broker into the sink, then a plain rdkafka consumer reads the
    /// same topic (the floor); then a fixed offered rate with the sink at 1 ms. Both runs are
    /// checked exact. Writes a report and plots under `--out`; the last line is the
    /// `e2e-blackhole:` figure.
    BenchE2e(BenchArgs),
}

/// `eda-loadtest sink`'s options.
#[derive(Debug, clap::Args)]
struct SinkArgs {
    /// Address to listen on (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// How long after its request is read each AWS call is answered, in milliseconds (the
    /// call's work is done meanwhile): fixed (`1`), `uniform:LOW..HIGH` or `exp:MEAN`.
    #[arg(long, default_value = "0")]
    latency_ms: eda_loadtest::sink::faults::Latency,
    /// Share of AWS calls answered with the service's throttling error (0..1).
    #[arg(long, default_value = "0", value_parser = eda_loadtest::sink::faults::parse_rate)]
    throttle_rate: f64,
    /// Share of AWS calls answered with an HTTP 500 (0..1).
    #[arg(long, default_value = "0", value_parser = eda_loadtest::sink::faults::parse_rate)]
    error_rate: f64,
    /// A table's key schema, `NAME=HASH[,RANGE]` (repeatable); other tables are keyed by `pk`.
    #[arg(long = "table", value_parser = parse_table)]
    tables: Vec<(String, eda_loadtest::sink::dynamodb::KeySchema)>,
    /// Worker threads of the sink's runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// `eda-loadtest bench-e2e`'s options.
#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// Broker list.
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// The release daemon binary (default: `eda-daemon` beside this binary).
    #[arg(long)]
    daemon: Option<PathBuf>,
    /// Where the report, plots, configurations and logs go.
    #[arg(long, default_value = "target/bench-e2e")]
    out: PathBuf,
    /// Messages of the backlog (at least; 1-2 KB Qlik JSON each).
    #[arg(long, default_value_t = 200_000)]
    messages: usize,
    /// Partitions of the benchmark topics.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Padding bytes per row image (600 gives 1-2 KB messages).
    #[arg(long, default_value_t = 600)]
    padding: usize,
    /// Messages per second offered in the fixed-rate run.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Seconds the fixed-rate run offers them.
    #[arg(long, default_value_t = 20)]
    rate_secs: u64,
    /// The sink's latency in the fixed-rate run (as `sink --latency-ms`).
    #[arg(long, default_value = "1")]
    rate_latency_ms: eda_loadtest::sink::faults::Latency,
    /// Which runs: `backlog`, `rate` or `both`.
    #[arg(long, value_enum, default_value_t = BenchMode::Both)]
    mode: BenchMode,
    /// Produce the backlog again even if the broker still holds the cached one.
    #[arg(long)]
    fresh: bool,
    /// Worker threads of the sink process.
    #[arg(long, default_value_t = 1)]
    sink_threads: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BenchMode {
    Backlog,
    Rate,
    Both,
}

fn parse_table(text: &str) -> Result<(String, eda_loadtest::sink::dynamodb::KeySchema), String> {
    let (name, schema) = text
        .split_once('=')
        .and_then(|(name, keys)| {
            Some((name, eda_loadtest::sink::dynamodb::KeySchema::parse(keys)?))
        })
        .filter(|(name, _)| !name.is_empty())
        .ok_or_else(|| format!("{text:?}: expected NAME=HASH or NAME=HASH,RANGE"))?;
    Ok((name.to_string(), schema))
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Command::Sink(args) = &cli.command {
        runtime.worker_threads(args.threads.max(1));
    }
    runtime.enable_all().build()?.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
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
        Command::Sink(args) => sink(args).await?,
        Command::BenchE2e(args) => bench(args).await?,
    }
    Ok(())
}

async fn sink(args: SinkArgs) -> anyhow::Result<()> {
    use eda_loadtest::sink::{serve, Sink, SinkOptions};
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let sink = Arc::new(Sink::new(SinkOptions {
        latency: args.latency_ms,
        throttle_rate: args.throttle_rate,
        error_rate: args.error_rate,
        tables: args.tables.into_iter().collect(),
    }));
    // The first line on stdout is the address, for whoever started the sink.
    println!("listening on http://{}", listener.local_addr()?);
    use std::io::Write as _;
    std::io::stdout().flush()?;
    let stop = async {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    serve(listener, sink.clone(), stop).await;
    eprintln!("{}", sink.stats());
    Ok(())
}

async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let daemon = match args.daemon {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .context("the directory of eda-loadtest")?
            .join("eda-daemon"),
    };
    let spec = eda_loadtest::bench::BenchSpec {
        brokers: args.brokers,
        daemon,
        out: args.out,
        messages: args.messages,
        partitions: args.partitions,
        padding: args.padding,
        rate: args.rate,
        rate_secs: args.rate_secs,
        rate_latency: args.rate_latency_ms.to_string(),
        backlog: args.mode != BenchMode::Rate,
        fixed_rate: args.mode != BenchMode::Backlog,
        fresh: args.fresh,
        sink_threads: args.sink_threads,
    };
    eda_loadtest::bench::run(&spec).await
}
