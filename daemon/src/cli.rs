//! The command line.

use clap::{Parser, Subcommand};
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
    /// JWT operations.
    Jwt {
        /// What to do with a token.
        #[command(subcommand)]
        command: JwtCommand,
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
