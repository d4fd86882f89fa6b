//! `eda-daemon claim-check`: the row of a change event that went by reference.

use super::{read_input, EXIT_BAD_INPUT};
use eda_actors::aws::{read_claimed_row, RegionClients};
use eda_core::claim_check::{ClaimCheck, Claimed};
use serde_json::{json, Value};
use std::path::Path;
use std::process::ExitCode;

/// Reads the event (an EventBridge event or its detail, from `file` or stdin), reads the item
/// its claim check names in that region, and prints the event with `payload.after` filled in.
pub fn claim_check(config: &Path, file: Option<&Path>) -> ExitCode {
    let config = match super::load_config(config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let raw = match read_input(file) {
        Ok(raw) => raw,
        Err(code) => return code,
    };
    let mut detail: Value = match serde_json::from_slice::<Value>(&raw) {
        Ok(event) if event.get("detail").is_some() => event["detail"].clone(),
        Ok(detail) => detail,
        Err(err) => {
            eprintln!("error: the input is not JSON: {err}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let claim: ClaimCheck = match detail
        .pointer("/payload/claim_check")
        .map(|c| serde_json::from_value(c.clone()))
    {
        Some(Ok(claim)) => claim,
        Some(Err(err)) => {
            eprintln!("error: payload.claim_check is not a claim check: {err}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
        None => {
            eprintln!("error: the event has no payload.claim_check (it was published whole)");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let Some(region) = [&config.regions.primary, &config.regions.secondary]
        .into_iter()
        .find(|r| r.name == claim.region)
    else {
        eprintln!(
            "error: the claim check names region {}, which the configuration does not",
            claim.region
        );
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let runtime = match super::one_shot_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let claimed = runtime.block_on(async {
        let clients = RegionClients::new(region, &config.aws).await;
        read_claimed_row(&clients.dynamodb, &claim).await
    });
    let (printed, code) = match claimed {
        Ok(Claimed::Row(row)) => {
            detail["payload"]["after"] = Value::Object(row);
            (
                json!({ "outcome": "row", "detail": detail }),
                ExitCode::SUCCESS,
            )
        }
        Ok(Claimed::Other { sequence, deleted }) => (
            json!({
                "outcome": "replaced",
                "why": "the item holds another change of the key now; the newer change's event \
                        carries (or references) the current row",
                "item_sequence": sequence,
                "item_deleted": deleted,
                "claim_check": claim,
            }),
            ExitCode::FAILURE,
        ),
        Ok(Claimed::Missing) => (
            json!({
                "outcome": "missing",
                "why": "no such item in that table",
                "claim_check": claim,
            }),
            ExitCode::FAILURE,
        ),
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&printed).unwrap_or_default()
    );
    code
}
