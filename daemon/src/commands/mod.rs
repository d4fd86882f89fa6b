//! One module per subcommand; [`dispatch`] maps each to its exit code.

mod check_config;
mod claim_check;
mod decode;
mod dlq;
mod jwt;
mod replay;
mod run;
mod transform;

use crate::cli::{Cli, Command, DlqCommand, JwtCommand};
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
        Command::Transform { file, config } => {
            transform::transform(file.as_deref(), config.as_deref())
        }
        Command::ClaimCheck { config, file } => claim_check::claim_check(&config, file.as_deref()),
        Command::Dlq {
            command:
                DlqCommand::Redrive {
                    config,
                    max,
                    force_older_than_tombstones,
                    metrics_file,
                },
        } => dlq::redrive(
            &config,
            eda_actors::redrive::RedriveOptions {
                max,
                force_older_than_tombstones,
            },
            metrics_file.as_deref(),
        ),
        Command::Replay(args) => replay::replay(args),
        Command::Jwt {
            command: JwtCommand::Verify { config, token },
        } => jwt::verify(&config, &token),
        Command::Decode(args) => decode::decode(&args),
    }
}

/// Reads a command's input: the named file, or stdin when there is none.
pub fn read_input(file: Option<&std::path::Path>) -> Result<Vec<u8>, ExitCode> {
    use std::io::Read;
    let result = match file {
        Some(path) => std::fs::read(path).map_err(|e| format!("{}: {e}", path.display())),
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map(|_| buf)
                .map_err(|e| format!("stdin: {e}"))
        }
    };
    result.map_err(|err| {
        eprintln!("error: cannot read the input: {err}");
        ExitCode::from(EXIT_BAD_INPUT)
    })
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

/// The single-threaded runtime of a one-shot command, or the exit code that says why not.
pub fn one_shot_runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| {
            eprintln!("error: cannot start the async runtime: {err}");
            ExitCode::FAILURE
        })
}

/// What a long-running command needs first: the validated configuration, logging (and span
/// export, when configured: flush it with [`crate::logging::flush`] before the runtime goes), and
/// a multi-threaded runtime; or the exit code that says why not.
pub fn start(
    path: &std::path::Path,
) -> Result<(eda_config::Config, tokio::runtime::Runtime), ExitCode> {
    let config = load_config(path)?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if config.runtime.worker_threads > 0 {
        builder.worker_threads(config.runtime.worker_threads);
    }
    let runtime = builder
        .enable_all()
        .thread_name("eda")
        .build()
        .map_err(|err| {
            eprintln!("error: cannot start the runtime: {err}");
            ExitCode::FAILURE
        })?;
    crate::logging::init(&config.logging, &config.tracing, runtime.handle().clone());
    Ok((config, runtime))
}
