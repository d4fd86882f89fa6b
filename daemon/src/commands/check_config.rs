//! `eda-daemon check-config`: what would the daemon run with?

use std::path::Path;
use std::process::ExitCode;

/// Prints the effective configuration (defaults, file, environment) with secrets redacted.
pub fn check_config(path: &Path) -> ExitCode {
    match super::load_config(path) {
        Ok(config) => {
            println!(
                "# Effective configuration from {} (secrets redacted).",
                path.display()
            );
            print!("{}", config.to_redacted_toml());
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}
