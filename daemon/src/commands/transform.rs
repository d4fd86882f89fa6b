//! `eda-daemon transform`: what would the transformer make of this event?

use super::{read_input, EXIT_BAD_INPUT};
use eda_core::transform::{Outcome, Transformer};
use std::path::Path;
use std::process::ExitCode;

/// Transforms one event (JSON, from `file` or stdin) with the configured rules (or the defaults)
/// and prints the `transformed` event, or every validation reason and exit 2.
pub fn transform(file: Option<&Path>, config: Option<&Path>) -> ExitCode {
    let transformer_config = match config {
        Some(path) => match super::load_config(path) {
            Ok(config) => config.transformer,
            Err(code) => return code,
        },
        None => eda_config::TransformerConfig::default(),
    };
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-west-2".into());
    let transformer = match Transformer::new(&transformer_config, region) {
        Ok(t) => t,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let raw = match read_input(file) {
        Ok(raw) => raw,
        Err(code) => return code,
    };
    let value: serde_json::Value = match serde_json::from_slice(&raw) {
        Ok(v) => v,
        Err(err) => {
            eprintln!("error: the input is not JSON: {err}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let outcome = transformer.transform_json(value, chrono::Utc::now());
    let detail_type = outcome.detail_type();
    let (body, code) = match &outcome {
        Outcome::Transformed(event) => (serde_json::to_value(event), ExitCode::SUCCESS),
        Outcome::ValidationFailed(failed) => {
            (serde_json::to_value(failed), ExitCode::from(EXIT_BAD_INPUT))
        }
    };
    match body {
        Ok(body) => {
            let printed = serde_json::json!({ "detail_type": detail_type, "detail": body });
            println!(
                "{}",
                serde_json::to_string_pretty(&printed).unwrap_or_default()
            );
            code
        }
        Err(err) => {
            eprintln!("error: the outcome could not be printed: {err}");
            ExitCode::FAILURE
        }
    }
}
