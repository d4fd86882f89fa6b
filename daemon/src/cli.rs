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
}
