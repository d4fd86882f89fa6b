//! `eda-daemon dlq redrive`: replays dead letters through the pipeline's actors.

use std::path::Path;
use std::process::ExitCode;

/// Replays up to `max` dead letters; prints the report as JSON. Exit 0 when every message read
/// was replayed, 2 when some had to be left in the queue, 1 when the queue could not be read.
pub fn redrive(path: &Path, max: usize) -> ExitCode {
    let (config, runtime) = match super::start(path) {
        Ok(started) => started,
        Err(code) => return code,
    };
    match runtime.block_on(eda_actors::redrive::redrive(&config, max)) {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
            if report.left_in_queue.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(super::EXIT_BAD_INPUT)
            }
        }
        Err(err) => {
            eprintln!("error: redrive stopped: {err}");
            ExitCode::FAILURE
        }
    }
}
