//! `eda-daemon dlq redrive`: replays dead letters through the pipeline's actors.

use eda_actors::redrive::RedriveOptions;
use eda_actors::telemetry::Metrics;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// Replays dead letters as `options` say; prints the report as JSON, and writes the metrics to
/// `metrics_file` when given. Exit 0 when every message read was replayed, 2 when some had to
/// be left in the queue (unreplayable, or older than the tombstones and not forced), 1 when the
/// queue could not be read.
pub fn redrive(path: &Path, options: RedriveOptions, metrics_file: Option<&Path>) -> ExitCode {
    let (config, runtime) = match super::start(path) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let metrics = Arc::new(Metrics::new());
    let outcome = runtime.block_on(eda_actors::redrive::redrive_with(
        &config,
        options,
        metrics.clone(),
    ));
    crate::logging::flush();
    if let Some(file) = metrics_file {
        let written = metrics
            .encode()
            .map_err(|e| e.to_string())
            .and_then(|text| std::fs::write(file, text).map_err(|e| e.to_string()));
        if let Err(err) = written {
            eprintln!("error: metrics not written to {}: {err}", file.display());
        }
    }
    match outcome {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
            if report.left_in_queue.is_empty() && report.refused_older_than_tombstones.is_empty() {
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
