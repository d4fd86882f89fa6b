//! `eda-loadtest bench-e2e` (`make bench-e2e`): the release daemon, as its own process, against
//! the blackhole AWS endpoint ([`crate::sink`]), in two runs, each checked exact at the end.
//!
//! 1. **Backlog.** A history of at least `messages` Qlik JSON messages (1-2 KB, duplicates,
//!    redeliveries and deletes mixed in) waits on a topic of `partitions` partitions
//!    ([`backlog`]: cached by spec, see there); a fresh sink and `eda-daemon run` (replication
//!    on: both regions point at the sink) drain it. The daemon's `/metrics` and `/proc` are read
//!    every second. Then a plain rdkafka consumer reads the same topic ([`raw`]): the floor.
//! 2. **Fixed rate.** A fresh topic, a sink answering after 1 ms, the daemon started and ready,
//!    then a producer alongside offers `rate` messages a second for `rate_secs` seconds; the
//!    read-to-settled quantiles come from the daemon's histogram over that run.
//!
//! Both runs end with the same checks: the sink's CDC table equals the history's last images,
//! and every change's event id was put on the primary's bus and (as a cross-region envelope) on
//! the secondary's. The figures ([`report`]): N = messages per second between 10 % and 90 % of
//! the messages settled (interpolated between scrapes); C = the daemon's `utime + stime` when
//! the last message settled, per message (start-up included); M = its `VmHWM`; R = the raw
//! consumer's messages per second from its first message to its last; X = N / R. The last line
//! printed is `e2e-blackhole: <N> msg/s sustained; <C> us CPU/msg; peak RSS <M> MB; raw consume
//! <R> msg/s; ratio <X>`.

pub mod backlog;
pub mod metrics;
pub mod process;
pub mod raw;
pub mod report;

use crate::history::History;
use crate::verify;
use anyhow::Context as _;
use backlog::{Backlog, TrafficSpec};
use metrics::Settled;
use process::{DaemonProcess, SinkProcess};
use report::{RunSummary, Sample};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The primary region of the benchmark's configuration.
const PRIMARY: &str = "us-west-2";
/// The secondary region.
const SECONDARY: &str = "us-east-1";
/// The CDC table (in the sink).
const CDC_TABLE: &str = "eda-cdc";
/// The table of Qlik table structures (in the sink), hash key `pk`, range key `version`.
const METADATA_TABLE: &str = "eda-qlik-metadata";
/// The source of change events, and of cross-region envelopes.
const CHANGE_SOURCE: &str = "eda.cdc";
const ENVELOPE_SOURCE: &str = "eda.cross-region";

/// What `bench-e2e` runs.
#[derive(Debug, Clone)]
pub struct BenchSpec {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// The release `eda-daemon` binary.
    pub daemon: PathBuf,
    /// Where the report, plots, configurations, logs and the backlog marker go.
    pub out: PathBuf,
    /// Messages of the backlog (at least).
    pub messages: usize,
    /// Partitions of the topics.
    pub partitions: i32,
    /// Padding bytes per row image (message size).
    pub padding: usize,
    /// Offered messages per second of the fixed-rate run.
    pub rate: u64,
    /// How long the fixed-rate run offers them.
    pub rate_secs: u64,
    /// Sink latency of the fixed-rate run.
    pub rate_latency: String,
    /// Whether to run the backlog (and the raw consume).
    pub backlog: bool,
    /// Whether to run the fixed rate.
    pub fixed_rate: bool,
    /// Produce the backlog again even if the broker holds a cached one.
    pub fresh: bool,
    /// Worker threads of the sink.
    pub sink_threads: usize,
}

/// Runs the benchmark and prints its table and last line.
pub async fn run(spec: &BenchSpec) -> anyhow::Result<()> {
    std::fs::create_dir_all(&spec.out)
        .with_context(|| format!("creating {}", spec.out.display()))?;
    anyhow::ensure!(
        spec.daemon.exists(),
        "no daemon binary at {} (build it: cargo build --release -p eda-daemon)",
        spec.daemon.display()
    );
    let machine = report::machine();
    eprintln!("[bench-e2e] {machine}");
    let mut runs = Vec::new();
    let mut problems = Vec::new();
    let mut raw = None;
    let mut notes = Vec::new();
    if spec.backlog {
        let (summary, floor, note) = backlog_run(spec, &mut problems).await?;
        runs.push(summary);
        raw = Some(floor);
        notes.push(note);
    }
    if spec.fixed_rate {
        let (summary, note) = rate_run(spec, &mut problems).await?;
        runs.push(summary);
        notes.push(note);
    }
    let table = report::table(&runs, raw);
    let last = runs
        .iter()
        .find(|r| r.mode == "backlog")
        .zip(raw)
        .map(|(run, raw)| {
            format!(
                "e2e-blackhole: {:.0} msg/s sustained; {:.1} us CPU/msg; peak RSS {:.1} MB; raw consume {raw:.0} msg/s; ratio {:.3}",
                run.sustained,
                run.cpu_us_per_msg,
                run.peak_rss_mb,
                run.sustained / raw
            )
        });
    let rate_line = runs.iter().find(|r| r.mode != "backlog").map(|run| {
        format!(
            "e2e-rate: {} msg/s offered for {} s, sink {} ms: {:.0} msg/s settled; read-to-settled p50 {} ms, p99 {} ms, p999 {} ms; {:.1} us CPU/msg; RSS {} MB while offered, peak {:.1} MB",
            spec.rate,
            spec.rate_secs,
            spec.rate_latency,
            run.sustained,
            fmt_ms(run.latency_ms[0]),
            fmt_ms(run.latency_ms[1]),
            fmt_ms(run.latency_ms[2]),
            run.cpu_us_per_msg,
            run.steady_rss_mb
                .map_or_else(|| "-".to_string(), |mb| format!("{mb:.1}")),
            run.peak_rss_mb
        )
    });
    let report_path = spec.out.join("report.md");
    let mut text = format!(
        "# eda end-to-end on the blackhole sink (`make bench-e2e`)\n\nMachine: {machine}.\n\n{table}\n"
    );
    for line in rate_line.iter().chain(last.iter()) {
        text.push_str(&format!("    {line}\n"));
    }
    text.push('\n');
    for note in &notes {
        text.push_str(&format!("- {note}\n"));
    }
    if spec.backlog {
        text.push_str("\n![backlog run: throughput and p99 over time](backlog.svg)\n");
    }
    if spec.fixed_rate {
        text.push_str("\n![fixed-rate run: throughput and p99 over time](rate.svg)\n");
    }
    std::fs::write(&report_path, &text)?;
    println!();
    print!("{table}");
    for note in &notes {
        println!("{note}");
    }
    println!("report: {}", report_path.display());
    if !problems.is_empty() {
        for problem in &problems {
            println!("CHECK FAILED: {problem}");
        }
        anyhow::bail!(
            "{} check(s) failed; the figures above do not count",
            problems.len()
        );
    }
    if let Some(line) = rate_line {
        println!("{line}");
    }
    if let Some(line) = last {
        println!("{line}");
    }
    Ok(())
}

fn fmt_ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"))
}

/// The backlog run, then the raw consume of the same topic.
async fn backlog_run(
    spec: &BenchSpec,
    problems: &mut Vec<String>,
) -> anyhow::Result<(RunSummary, f64, String)> {
    let traffic = TrafficSpec {
        seed: 11,
        messages: spec.messages,
        changes_per_key: 4,
        padding: spec.padding,
        partitions: spec.partitions,
    };
    let history = traffic.history();
    let total = history.records.len() as u64;
    let sizes: Vec<usize> = history.records.iter().map(|r| r.value.len()).collect();
    let Backlog {
        topic,
        produced,
        produce_secs,
        ..
    } = backlog::backlog(&spec.brokers, &traffic, &history, &spec.out, spec.fresh).await?;
    let mut note = format!(
        "backlog: {total} messages ({} changes over {} keys, {}-{} bytes, avg {}) on {topic}, {} partitions",
        history.changes,
        history.expected.len(),
        sizes.iter().min().unwrap_or(&0),
        sizes.iter().max().unwrap_or(&0),
        sizes.iter().sum::<usize>() / sizes.len().max(1),
        spec.partitions,
    );
    match (produced, produce_secs) {
        (true, Some(secs)) => note.push_str(&format!(
            "; produced in {secs:.1} s ({:.0} msg/s)",
            total as f64 / secs
        )),
        _ => note.push_str("; reused (cached: the broker still held it)"),
    }
    eprintln!("[bench-e2e] {note}");
    let load_before = report::load_average();
    let sink = start_sink(spec, "0", "backlog").await?;
    let config = write_config(spec, "backlog", &topic, &sink.url)?;
    let mut daemon =
        DaemonProcess::start(&spec.daemon, &config, &spec.out.join("daemon-backlog.log")).await?;
    let bar = backlog::bar(total, "draining");
    let samples = watch(
        &mut daemon,
        &sink,
        &config,
        &topic,
        total,
        Duration::from_secs(400),
        &bar,
    )
    .await?;
    bar.finish();
    let stages = stage_note(&config).await;
    let checked = check(&config, &sink.url, &history, problems).await?;
    note.push_str(&format!(
        "; {}; load average {load_before} at the start, {} at the end; {stages}",
        sink_note(&samples, &checked),
        report::load_average()
    ));
    let summary = summarize("backlog", &samples, total, checked);
    std::fs::write(spec.out.join("backlog.csv"), report::csv(&samples))?;
    report::plot(
        &spec.out.join("backlog.svg"),
        &format!("eda backlog run: {total} messages, sink at 0 ms"),
        &samples,
    )?;
    let exit = daemon.stop().await?;
    if !exit.success() {
        problems.push(format!(
            "the backlog run's daemon exited with {exit} on SIGTERM"
        ));
    }
    sink.stop().await?;
    eprintln!("[bench-e2e] reading {topic} with a plain rdkafka consumer");
    let floor = raw::consume(&spec.brokers, &topic, total).await?;
    Ok((summary, floor, note))
}

/// The fixed-rate run.
async fn rate_run(
    spec: &BenchSpec,
    problems: &mut Vec<String>,
) -> anyhow::Result<(RunSummary, String)> {
    let messages = usize::try_from(spec.rate * spec.rate_secs).unwrap_or(usize::MAX);
    let traffic = TrafficSpec {
        seed: 12,
        messages,
        changes_per_key: 4,
        padding: spec.padding,
        partitions: spec.partitions,
    };
    let history = traffic.history();
    let total = history.records.len() as u64;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let topic = format!("eda-bench-rate-{}", &run_id[..8]);
    crate::kafka::create_topic(&spec.brokers, &topic, spec.partitions).await?;
    let load_before = report::load_average();
    let sink = start_sink(spec, &spec.rate_latency, "rate").await?;
    let config = write_config(spec, "rate", &topic, &sink.url)?;
    let mut daemon =
        DaemonProcess::start(&spec.daemon, &config, &spec.out.join("daemon-rate.log")).await?;
    let metrics_url = daemon_url(&config)?;
    wait_ready(&mut daemon, &metrics_url).await?;
    let producer = crate::kafka::producer(&spec.brokers)?;
    let offered = backlog::bar(total, "offering");
    let producing = {
        let records = history.records.clone();
        let topic = topic.clone();
        let rate = spec.rate;
        let offered = offered.clone();
        tokio::spawn(async move {
            backlog::produce_at(&producer, &topic, &records, rate, &offered).await
        })
    };
    let bar = backlog::bar(total, "settled");
    let started_at = daemon.started.elapsed().as_secs_f64();
    let deadline = Duration::from_secs(spec.rate_secs + 240);
    let samples = watch(&mut daemon, &sink, &config, &topic, total, deadline, &bar).await?;
    bar.finish();
    let send_secs = producing.await??;
    offered.finish();
    let stages = stage_note(&config).await;
    let checked = check(&config, &sink.url, &history, problems).await?;
    let sink_cost = format!(
        "{}; load average {load_before} at the start, {} at the end; {stages}",
        sink_note(&samples, &checked),
        report::load_average()
    );
    let mut summary = summarize("fixed rate", &samples, total, checked);
    // Latency over everything that settled after the producer started.
    let first = samples
        .iter()
        .rev()
        .find(|s| s.t <= started_at)
        .map(|s| s.settled.clone())
        .unwrap_or_default();
    let window = samples
        .last()
        .map(|s| s.settled.since(&first))
        .unwrap_or_default();
    summary.latency_ms = [0.5, 0.99, 0.999].map(|q| window.quantile(q).map(|s| s * 1000.0));
    summary.steady_rss_mb =
        report::median_rss_mb(&samples, started_at, started_at + spec.rate_secs as f64);
    summary.mode = format!(
        "fixed rate {} msg/s, sink {} ms",
        spec.rate, spec.rate_latency
    );
    std::fs::write(spec.out.join("rate.csv"), report::csv(&samples))?;
    report::plot(
        &spec.out.join("rate.svg"),
        &format!(
            "eda at {} msg/s offered for {} s, sink at {} ms",
            spec.rate, spec.rate_secs, spec.rate_latency
        ),
        &samples,
    )?;
    let exit = daemon.stop().await?;
    if !exit.success() {
        problems.push(format!(
            "the fixed-rate run's daemon exited with {exit} on SIGTERM"
        ));
    }
    sink.stop().await?;
    if let Err(err) = crate::kafka::delete_topic(&spec.brokers, &topic).await {
        eprintln!("[bench-e2e] {topic} stays on the broker: {err}");
    }
    let note = format!(
        "fixed rate: {total} messages offered at {} msg/s (sent in {send_secs:.1} s) to {topic}; quantiles from the daemon's read-to-settled histogram, interpolated inside its buckets; {sink_cost}",
        spec.rate
    );
    Ok((summary, note))
}

async fn start_sink(spec: &BenchSpec, latency: &str, run: &str) -> anyhow::Result<SinkProcess> {
    let args = [
        "--latency-ms".to_string(),
        latency.to_string(),
        "--threads".to_string(),
        spec.sink_threads.to_string(),
        "--table".to_string(),
        format!("{METADATA_TABLE}=pk,version"),
    ];
    SinkProcess::start(&args, &spec.out.join(format!("sink-{run}.log"))).await
}

/// Writes the daemon's configuration for one run: the topic, a fresh group, both regions on
/// the sink, a free port for `/metrics`.
fn write_config(spec: &BenchSpec, run: &str, topic: &str, sink: &str) -> anyhow::Result<PathBuf> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let group = format!(
        "eda-bench-{run}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let region = |name: &str, role: &str| {
        format!(
            r#"
[regions.{role}]
name = "{name}"
cdc_table = "{CDC_TABLE}"
metadata_table = "{METADATA_TABLE}"
event_bus = "eda-events"
dlq_queue_url = "{sink}/000000000000/eda-dlq"
owed_queue_url = "{sink}/000000000000/eda-owed"

[regions.{role}.endpoints]
dynamodb = "{sink}"
eventbridge = "{sink}"
sqs = "{sink}"
secretsmanager = "{sink}"
"#
        )
    };
    let text = format!(
        r#"# Written by eda-loadtest bench-e2e for its {run} run: every AWS endpoint is the sink.
[kafka]
brokers = "{brokers}"
group_id = "{group}"
topics = ["{topic}"]
format = "qlik-json"
key_columns = {{ "SALES.CUSTOMERS" = ["CUSTOMER_ID"] }}

[aws.static_credentials]
access_key_id = "123456789012"
secret_access_key = "bench"
{primary}{secondary}
[http]
listen = "127.0.0.1:{port}"

[logging]
format = "text"
filter = "warn"
"#,
        brokers = spec.brokers,
        primary = region(PRIMARY, "primary"),
        secondary = region(SECONDARY, "secondary"),
    );
    let path = spec.out.join(format!("daemon-{run}.toml"));
    std::fs::write(&path, text)?;
    Ok(path)
}

fn daemon_url(config: &Path) -> anyhow::Result<String> {
    let config = eda_config::Config::load(Some(config)).context("the written configuration")?;
    Ok(format!("http://{}", config.http.listen))
}

/// Waits until the daemon's `/readyz` answers 200 (partitions assigned, sinks reachable).
async fn wait_ready(daemon: &mut DaemonProcess, url: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    for _ in 0..600 {
        daemon.check_alive()?;
        if let Ok(response) = client.get(format!("{url}/readyz")).send().await {
            if response.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!(
        "the daemon was not ready within 60 s; see {}",
        daemon.log.display()
    )
}

/// Scrapes the daemon every second until `total` messages of `topic` settled.
async fn watch(
    daemon: &mut DaemonProcess,
    sink: &SinkProcess,
    config: &Path,
    topic: &str,
    total: u64,
    within: Duration,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Vec<Sample>> {
    let url = format!("{}/metrics", daemon_url(config)?);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let sink_cpu = || sink.stats().map_or(0.0, |s| s.cpu_secs);
    let mut samples = vec![Sample {
        t: 0.0,
        settled: Settled::default(),
        proc: daemon.stats().unwrap_or_default(),
        sink_cpu_secs: sink_cpu(),
    }];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        daemon.check_alive()?;
        let t = daemon.started.elapsed().as_secs_f64();
        let settled = match client.get(&url).send().await {
            Ok(response) => Settled::parse(&response.text().await.unwrap_or_default(), topic),
            // Not listening yet (start-up), or a slow answer: this second has no sample.
            Err(_) => continue,
        };
        let Some(proc) = daemon.stats() else { continue };
        bar.set_position(settled.count.min(total));
        let done = settled.count >= total;
        samples.push(Sample {
            t,
            settled,
            proc,
            sink_cpu_secs: sink_cpu(),
        });
        if done {
            return Ok(samples);
        }
        anyhow::ensure!(
            t < within.as_secs_f64(),
            "only {} of {total} messages settled in {} s; see {}",
            samples.last().map_or(0, |s| s.settled.count),
            within.as_secs(),
            daemon.log.display()
        );
    }
}

/// Where the daemon's read-to-settled time went over its run ([`metrics::stages`]), read from
/// its `/metrics` once everything settled.
async fn stage_note(config: &Path) -> String {
    let text = async {
        let url = format!("{}/metrics", daemon_url(config)?);
        let response = reqwest::Client::new()
            .get(&url)
            .timeout(Duration::from_secs(5))
            .send()
            .await?;
        anyhow::Ok(response.text().await?)
    };
    match text.await {
        Ok(text) => metrics::stages(&text),
        Err(err) => format!("the stage times were not read: {err}"),
    }
}

/// What the end-of-run checks found.
struct Checked {
    /// AWS calls the sink answered.
    calls: u64,
    /// The per-message calls by operation, and how full their batches were.
    by_operation: String,
    mismatches: usize,
    seen: usize,
    owed: usize,
    total_put: u64,
}

/// The table against the history, and the event ids against the changes; what fails is added
/// to `problems`.
async fn check(
    config_path: &Path,
    sink: &str,
    history: &History,
    problems: &mut Vec<String>,
) -> anyhow::Result<Checked> {
    let config = eda_config::Config::load(Some(config_path))?;
    let clients = eda_actors::aws::RegionClients::new(&config.regions.primary, &config.aws).await;
    let items = verify::scan_table(&clients.dynamodb, CDC_TABLE).await?;
    let mismatches = verify::table_mismatches(&items, history);
    if !mismatches.is_empty() {
        problems.push(format!(
            "the table differs from the source in {} places, e.g. {:?}",
            mismatches.len(),
            &mismatches[..mismatches.len().min(5)]
        ));
    }
    let fallback = eda_actors::kafka::message_decoder::fallback_keys(&config.kafka);
    let owed = verify::owed_event_ids(history, &fallback);
    let client = reqwest::Client::new();
    let mut seen_everywhere: Option<HashSet<String>> = None;
    for (region, source) in [(PRIMARY, CHANGE_SOURCE), (SECONDARY, ENVELOPE_SOURCE)] {
        let ids: Vec<String> = client
            .get(format!(
                "{sink}/_sink/events?region={region}&source={source}"
            ))
            .send()
            .await?
            .json()
            .await?;
        let ids: HashSet<String> = ids.into_iter().collect();
        let (missing, shown) = verify::missing_events(&owed, &ids, 5);
        if missing > 0 {
            problems.push(format!(
                "{missing} of {} changes have no {source} event in {region}, e.g. {shown:?}",
                owed.len()
            ));
        }
        seen_everywhere = Some(match seen_everywhere {
            None => ids,
            Some(before) => before.intersection(&ids).cloned().collect(),
        });
    }
    let seen = seen_everywhere
        .unwrap_or_default()
        .iter()
        .filter(|id| owed.contains_key(*id))
        .count();
    let stats: serde_json::Value = client
        .get(format!("{sink}/_sink/stats"))
        .send()
        .await?
        .json()
        .await?;
    std::fs::write(
        config_path.with_extension("sink-stats.json"),
        serde_json::to_vec_pretty(&stats)?,
    )?;
    let total_put = [
        format!("{PRIMARY}/{CHANGE_SOURCE}"),
        format!("{SECONDARY}/{ENVELOPE_SOURCE}"),
    ]
    .iter()
    .map(|key| stats["events"][key]["total"].as_u64().unwrap_or(0))
    .sum();
    let calls = stats["calls"].as_object().map_or(0, |calls| {
        calls.values().filter_map(|c| c["calls"].as_u64()).sum()
    });
    let by_operation = [
        ("dynamodb.PutItem", ""),
        ("dynamodb.BatchExecuteStatement", " statements"),
        ("eventbridge.PutEvents", " entries"),
    ]
    .iter()
    .filter_map(|(operation, members)| {
        let counts = &stats["calls"][operation];
        let n = counts["calls"].as_u64().filter(|n| *n > 0)?;
        let name = operation.split('.').nth(1).unwrap_or(operation);
        Some(if members.is_empty() {
            format!("{name} {n}")
        } else {
            let carried = counts["members"].as_u64().unwrap_or(0);
            format!(
                "{name} {n} ({:.1}{members} a call)",
                carried as f64 / n as f64
            )
        })
    })
    .collect::<Vec<_>>()
    .join(", ");
    Ok(Checked {
        calls,
        by_operation,
        mismatches: mismatches.len(),
        seen,
        owed: owed.len(),
        total_put,
    })
}

/// What the sink cost the machine during a run.
fn sink_note(samples: &[Sample], checked: &Checked) -> String {
    let cpu = samples.last().map_or(0.0, |s| s.sink_cpu_secs);
    format!(
        "the sink answered {} AWS calls ({}) with {cpu:.1} CPU-s ({:.1} µs a call), on the same two cores",
        checked.calls,
        checked.by_operation,
        cpu * 1e6 / checked.calls.max(1) as f64
    )
}

fn summarize(mode: &str, samples: &[Sample], total: u64, checked: Checked) -> RunSummary {
    let last = samples.last();
    let proc = last.map(|s| s.proc).unwrap_or_default();
    let settled = last.map(|s| s.settled.clone()).unwrap_or_default();
    RunSummary {
        mode: mode.to_string(),
        messages: total,
        sustained: report::steady_rate(samples, total).unwrap_or(0.0),
        daemon_cores: report::steady_cores(samples, total),
        cpu_us_per_msg: proc.cpu_secs * 1e6 / total.max(1) as f64,
        peak_rss_mb: samples.iter().map(|s| s.proc.hwm_kb).max().unwrap_or(0) as f64 / 1024.0,
        latency_ms: [0.5, 0.99, 0.999].map(|q| settled.quantile(q).map(|s| s * 1000.0)),
        steady_rss_mb: None,
        seconds: last.map_or(0.0, |s| s.t),
        table_mismatches: checked.mismatches,
        events_seen: checked.seen,
        events_owed: checked.owed,
        events_total: checked.total_put,
    }
}
