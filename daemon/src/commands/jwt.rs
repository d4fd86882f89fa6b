//! `eda-daemon jwt verify`: would the authorizer let this token in?

use super::EXIT_BAD_INPUT;
use eda_actors::aws::RegionClients;
use eda_core::jwt::{http_simple_response, AuthorizerContext};
use std::path::Path;
use std::process::ExitCode;

/// Verifies `token` with the configured keys (fetching the HS256 secret from Secrets Manager and
/// the JWKS when configured) and prints allow or deny, the reason and the context.
pub fn verify(config: &Path, token: &str) -> ExitCode {
    let config = match super::load_config(config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let runtime = match super::one_shot_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let verifier = runtime.block_on(async {
        let clients = RegionClients::new(&config.regions.primary, &config.aws).await;
        let http = reqwest::Client::new();
        eda_actors::jwt_keys::load_verifier(&config.jwt, &clients.secretsmanager, &http).await
    });
    let verifier = match verifier {
        Ok(v) => v,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let token = eda_core::jwt::bearer_token(token).unwrap_or(token);
    let outcome = verifier.verify(token, chrono::Utc::now().timestamp());
    let simple = http_simple_response(&outcome);
    let printed = match &outcome {
        Ok(principal) => serde_json::json!({
            "decision": "allow",
            "principal": principal.user_id,
            "context": AuthorizerContext::from_principal(principal),
            "http_api_response": simple,
        }),
        Err(deny) => serde_json::json!({
            "decision": "deny",
            "reason": deny.reason.as_str(),
            "detail": deny.detail,
            "http_api_response": simple,
        }),
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&printed).unwrap_or_default()
    );
    if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_BAD_INPUT)
    }
}
