//! The command line.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// eda: Qlik Replicate CDC from Kafka to DynamoDB and EventBridge, across two regions.
#[derive(Debug, Parser)]
#[command(name = "eda-daemon", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The operator's tasks.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pipeline until SIGTERM or SIGINT.
    Run {
        /// TOML configuration file (layered over the defaults, under `EDA_*` variables).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print the effective configuration with secrets redacted (exit 0), or every validation
    /// error (exit 2).
    CheckConfig {
        /// TOML configuration file (layered over the defaults, under `EDA_*` variables).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print the configuration reference (every key, its type, default and meaning) as Markdown.
    ConfigReference,
    /// Validate, enrich and normalize one event (JSON from FILE or stdin): prints the
    /// `transformed` event, or every validation reason and exits 2.
    Transform {
        /// The event; stdin when absent.
        file: Option<PathBuf>,
        /// Configuration whose `[transformer]` rules apply; the defaults when absent.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Decode one CDC message (from FILE or stdin) and print the `CdcEvent` and its apply plan
    /// as JSON, or the decode error and exit 2.
    Decode(DecodeArgs),
    /// Resolve a change event that went by reference (too large for EventBridge, its
    /// `payload.claim_check` names the item holding its row): read the item and print the event
    /// with its row in `payload.after` (exit 0); say so and exit 1 when the item holds another
    /// change now (a newer one replaced the row) or is gone; exit 2 on bad input.
    ClaimCheck {
        /// TOML configuration file: the regions' DynamoDB endpoints and credentials.
        #[arg(long, short)]
        config: PathBuf,
        /// The event (an EventBridge event, or its detail) as JSON; stdin when absent.
        file: Option<PathBuf>,
    },
    /// Dead-letter queue operations.
    Dlq {
        /// What to do with the queue.
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Re-run a window of a topic's changes (replay, backfill): resolves times to offsets,
    /// prints the plan (per partition: from, to, messages), then moves the consumer group's
    /// committed offsets to the window's start (`--mode move-group`, only while the group has
    /// no active member) or runs the window once through the pipeline under its own group id
    /// (`--mode one-off`). The apply is sequence-guarded: the table never goes back, and every
    /// change of the window has its event published again under the same event id.
    Replay(ReplayArgs),
    /// JWT operations.
    Jwt {
        /// What to do with a token.
        #[command(subcommand)]
        command: JwtCommand,
    },
}

/// `decode`'s arguments.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// How the message is encoded.
    #[arg(long, value_enum)]
    pub format: DecodeFormat,
    /// Schema Registry base URL (for `qlik-avro`); overrides `schema_registry.url`.
    #[arg(long)]
    pub schema_registry: Option<String>,
    /// Source table (`SCHEMA.TABLE`) of a message that does not name its own (Qlik puts one
    /// table per topic and no table name in data messages by default).
    #[arg(long)]
    pub table: Option<String>,
    /// Key column, when no Qlik metadata message or configuration names the keys; repeat for
    /// composite keys.
    #[arg(long = "key")]
    pub keys: Vec<String>,
    /// Configuration for key columns, table routing and the tombstone TTL.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The message; stdin when absent.
    pub file: Option<PathBuf>,
}

/// `replay`'s arguments: a window of a topic, and what to do with it.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("start").required(true).args(["from_time", "from_offset"])))]
#[command(group(clap::ArgGroup::new("stop").args(["to_time", "to_offset"])))]
pub struct ReplayArgs {
    /// TOML configuration file (brokers, the daemon's group, the sinks).
    #[arg(long, short)]
    pub config: PathBuf,
    /// The topic to replay.
    #[arg(long)]
    pub topic: String,
    /// Start every partition at its first message at or after this time (RFC 3339).
    #[arg(long)]
    pub from_time: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// Start partition PARTITION at OFFSET; repeat for more partitions (the others are not
    /// replayed).
    #[arg(long, value_name = "PARTITION:OFFSET", value_parser = parse_partition_offset)]
    pub from_offset: Vec<(i32, i64)>,
    /// Stop before the first message at or after this time (RFC 3339); the end of each
    /// partition when neither this nor `--to-offset` is given.
    #[arg(long)]
    pub to_time: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// Stop partition PARTITION before OFFSET; repeat for more partitions.
    #[arg(long, value_name = "PARTITION:OFFSET", value_parser = parse_partition_offset)]
    pub to_offset: Vec<(i32, i64)>,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// What to do with the plan.
    #[arg(long, value_enum, default_value_t = ReplayMode::MoveGroup)]
    pub mode: ReplayMode,
    /// Consumer group of a one-off pass; `<kafka.group_id>-replay-<unix time>` by default.
    #[arg(long)]
    pub replay_group: Option<String>,
}

/// Message encodings `decode` understands.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DecodeFormat {
    /// Qlik Replicate JSON (`atMSG` envelope or unwrapped).
    QlikJson,
    /// Qlik Replicate Avro in the Confluent wire format.
    QlikAvro,
    /// Debezium JSON.
    Debezium,
}

/// What `replay` does with its plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplayMode {
    /// Set the daemon's consumer group's committed offsets to the window's start; the daemon,
    /// started afterwards, reads the window again. Refused while the group has an active member.
    MoveGroup,
    /// Run the window once through the pipeline's actors under a group of its own, stopping at
    /// the window's end; the daemon's group is left as it is.
    OneOff,
}

/// Parses `PARTITION:OFFSET`.
fn parse_partition_offset(s: &str) -> Result<(i32, i64), String> {
    let (partition, offset) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not PARTITION:OFFSET"))?;
    let partition: i32 = partition
        .trim()
        .parse()
        .map_err(|e| format!("partition {partition:?}: {e}"))?;
    let offset: i64 = offset
        .trim()
        .parse()
        .map_err(|e| format!("offset {offset:?}: {e}"))?;
    if partition < 0 || offset < 0 {
        return Err(format!("{s:?}: partition and offset cannot be negative"));
    }
    Ok((partition, offset))
}

/// Dead-letter queue operations.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Read dead letters from the primary region's DLQ and replay them through the pipeline
    /// (safe: the apply is sequence-guarded, as long as the tombstones of later deletes live).
    /// Letters older than `apply.tombstone_ttl_secs` that would write to the table are refused
    /// and reported. Prints a JSON report; exit 2 if some had to stay.
    Redrive {
        /// TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Most dead letters to read.
        #[arg(long, default_value_t = 1000)]
        max: usize,
        /// Replay letters older than the tombstones (`apply.tombstone_ttl_secs`) too. A row
        /// deleted after such a letter failed may come back: check the source first.
        #[arg(long)]
        force_older_than_tombstones: bool,
        /// Write the redrive's metrics (OpenMetrics text, `eda_dlq_redrive_refused_total`
        /// among them) to this file when done, e.g. for node_exporter's textfile collector.
        #[arg(long)]
        metrics_file: Option<PathBuf>,
    },
}

/// JWT operations.
#[derive(Debug, Subcommand)]
pub enum JwtCommand {
    /// Verify a token as the authorizer would: prints allow or deny, the reason and the context
    /// (exit 0 allow, 2 deny).
    Verify {
        /// TOML configuration file whose `[jwt]` section names issuers, audiences and keys.
        #[arg(long, short)]
        config: PathBuf,
        /// The token, bare or as `Bearer <token>`.
        token: String,
    },
}
