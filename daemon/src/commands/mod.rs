//! One module per subcommand; [`dispatch`] maps each to its exit code.

mod check_config;
mod run;

use crate::cli::{Cli, Command};
use std::process::ExitCode;

/// Exit code for bad input: an invalid configuration, an undecodable message, a denied token.
pub const EXIT_BAD_INPUT: u8 = 2;

/// Runs the chosen subcommand.
pub fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run { config } => run::run(&config),
        Command::CheckConfig { config } => check_config::check_config(&config),
        Command::ConfigReference => {
            print!("{}", eda_config::reference::markdown());
            ExitCode::SUCCESS
        }
    }
}

/// Loads and validates the configuration, printing every problem to stderr on failure.
pub fn load_config(path: &std::path::Path) -> Result<eda_config::Config, ExitCode> {
    eda_config::Config::load(Some(path)).map_err(|err| {
        eprintln!(
            "error: configuration {} is not usable: {err}",
            path.display()
        );
        ExitCode::from(EXIT_BAD_INPUT)
    })
}
