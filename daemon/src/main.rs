//! `eda-daemon`: the long-running CDC pipeline, and the operator's commands around it.
//!
//! # Layout
//!
//! - [`cli`]: the command line (clap), one subcommand per operator task.
//! - [`commands`]: one module per subcommand (`check_config`, `run`).
//! - [`logging`]: structured JSON (or text) logs through `tracing`.
//! - [`http`]: `/metrics`, `/healthz` and `/readyz`, served until shutdown.
//!
//! Exit codes: 0 success, 1 an operational failure, 2 bad input (invalid configuration,
//! undecodable message, denied token).

/// mimalloc: the CDC path allocates small strings and rows per change, and mimalloc's per-thread
/// free lists cost a fraction of glibc's malloc there (see the `pipeline` bench and
/// `eda_actors::alloc`).
#[global_allocator]
static ALLOC: eda_core::alloc::Mimalloc = eda_core::alloc::Mimalloc;

mod cli;
mod commands;
// `run` starts it once the supervision tree exists (issue 4); until then only its tests call it.
#[cfg_attr(not(test), allow(dead_code))]
mod http;
mod logging;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    commands::dispatch(cli)
}
