//! `eda-daemon`: the long-running CDC pipeline, and the operator's commands around it.
//!
//! # Layout
//!
//! - [`cli`]: the command line (clap), one subcommand per operator task.
//! - [`commands`]: one module per subcommand, and [`commands::dispatch`], which runs the chosen
//!   one:
//!   - `run`: the pipeline, until SIGTERM or SIGINT;
//!   - `check-config`: the effective configuration, secrets redacted, or every validation error;
//!   - `config-reference`: every configuration key as Markdown (one line in `dispatch`);
//!   - `decode`: a CDC message to its change and the conditional write it becomes;
//!   - `transform`: an event through the transformer;
//!   - `claim-check`: the row of a change event that went by claim check, read from its item;
//!   - `dlq redrive`: dead letters replayed through the pipeline's actors;
//!   - `replay`: a window of a topic (from a time or offsets) run again: the group's offsets
//!     moved, or a bounded one-off pass of the pipeline under its own group;
//!   - `jwt verify`: a token through the authorizer's checks.
//! - [`logging`]: structured JSON (or text) logs through `tracing`, and span export when
//!   configured.
//! - [`otlp`]: the OTLP/HTTP span exporter (`tracing.otlp_endpoint`), X-Ray's way in through an
//!   ADOT collector.
//! - [`http`]: `/metrics`, `/healthz` and `/readyz`, served until shutdown.
//!
//! Exit codes: 0 success, 1 an operational failure, 2 bad input (invalid configuration,
//! undecodable message, denied token).

/// mimalloc: the CDC path allocates small strings and rows per change, and mimalloc's per-thread
/// free lists cost a fraction of glibc's malloc there (see the `pipeline` bench and
/// [`eda_core::alloc`]).
#[global_allocator]
static ALLOC: eda_core::alloc::Mimalloc = eda_core::alloc::Mimalloc;

mod cli;
mod commands;
mod http;
mod logging;
mod otlp;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Before the runtime and librdkafka start their threads: small pages only, so the RSS is
    // what is in use (`eda_core::alloc::disable_transparent_huge_pages` says why).
    eda_core::alloc::disable_transparent_huge_pages();
    let cli = cli::Cli::parse();
    commands::dispatch(cli)
}
