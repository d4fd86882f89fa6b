//! `eda-daemon run`: the pipeline.

use std::path::Path;
use std::process::ExitCode;

/// Loads the configuration and starts the supervision tree.
pub fn run(path: &Path) -> ExitCode {
    let config = match super::load_config(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    crate::logging::init(&config.logging);
    tracing::error!(
        config = %path.display(),
        "The pipeline is not built yet; `run` validates the configuration only."
    );
    ExitCode::FAILURE
}
