//! `authorizer`: API Gateway REST (TOKEN and REQUEST Lambda authorizers, answered with an IAM
//! policy) and HTTP API (payload 2.0, answered with a simple response) to the core JWT check,
//! with `userId`, `roles` and `tenantId` in the context.
//!
//! The keys are loaded at cold start (`jwt_keys::load_verifier`: the HS256 secret from Secrets
//! Manager, PEM keys, the JWKS) and kept for `jwt.secret_cache_ttl_secs` (or
//! `jwt.jwks_cache_ttl_secs`, whichever is shorter when a JWKS is configured); after that the
//! next invocation reloads them. A token naming a `kid` the verifier does not know also reloads
//! them (a key rotated in the JWKS), at most once per [`KID_RELOAD_INTERVAL`]. When a reload
//! fails (Secrets Manager or the JWKS down), the old keys stay in use, the failure is logged, and
//! no call tries again for [`RELOAD_BACKOFF_FIRST`], doubling per failure up to
//! [`RELOAD_BACKOFF_MAX`]: an outage costs one fetch per backoff, not one per call.
//!
//! Which shape came in is told by the payload: `version: "2.0"` is an HTTP API request,
//! `type: "TOKEN"` a REST token authorizer, anything else a REST request authorizer.

use crate::cold_start::ColdStartError;
use crate::Shim;
use aws_lambda_events::event::apigw::{
    ApiGatewayCustomAuthorizerRequest, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayV2CustomAuthorizerV2Request,
};
use eda_actors::aws::RegionClients;
use eda_actors::jwt_keys::{load_verifier, KeyLoadError};
use eda_actors::telemetry::{LambdaFunction, Metrics};
use eda_config::{Config, JwtConfig};
use eda_core::jwt::authorizer::{
    bearer_from_headers, bearer_token, http_simple_response, rest_policy, ResourceScope,
};
use eda_core::jwt::{Deny, DenyReason, JwtVerifier, Principal};
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, RwLock};

/// Shortest time between two reloads caused by an unknown `kid`, so a stream of forged kids
/// cannot turn into a stream of JWKS fetches.
pub const KID_RELOAD_INTERVAL: Duration = Duration::from_secs(30);

/// How long calls use the old keys without trying again after a failed reload.
pub const RELOAD_BACKOFF_FIRST: Duration = Duration::from_secs(1);

/// The longest wait between two reload attempts while they keep failing.
pub const RELOAD_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The keys in use, and what the reloads have been doing.
struct Keys {
    /// The verifier every call uses.
    verifier: Arc<JwtVerifier>,
    /// When its keys were loaded.
    loaded_at: Instant,
    /// After failed reloads: no attempt before the instant, and the wait that led to it (the
    /// next failure doubles it).
    backoff: Option<(Instant, Duration)>,
}

/// The authorizer's warm state.
pub struct Authorizer {
    /// Where keys come from.
    config: JwtConfig,
    /// Reads the HS256 secret.
    secrets: aws_sdk_secretsmanager::Client,
    /// Fetches the JWKS.
    http: reqwest::Client,
    /// How long loaded keys are trusted.
    ttl: Duration,
    /// The verifier, when its keys were loaded, and the backoff of failed reloads.
    keys: RwLock<Keys>,
    /// Held while a reload runs, so calls that find the keys stale together fetch once.
    reloading: Mutex<()>,
    /// What the REST policy grants: the stage, so API Gateway's authorizer cache can answer the
    /// caller's other routes too.
    scope: ResourceScope,
}

impl Authorizer {
    /// Loads the keys once.
    pub async fn new(
        config: &JwtConfig,
        secrets: aws_sdk_secretsmanager::Client,
    ) -> Result<Self, KeyLoadError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| KeyLoadError::Jwks {
                url: config.jwks_url.clone().unwrap_or_default(),
                message: e.to_string(),
            })?;
        let verifier = load_verifier(config, &secrets, &http).await?;
        let mut ttl = Duration::from_secs(config.secret_cache_ttl_secs);
        if config.jwks_url.is_some() {
            ttl = ttl.min(Duration::from_secs(config.jwks_cache_ttl_secs));
        }
        Ok(Self {
            config: config.clone(),
            secrets,
            http,
            ttl,
            keys: RwLock::new(Keys {
                verifier: Arc::new(verifier),
                loaded_at: Instant::now(),
                backoff: None,
            }),
            reloading: Mutex::new(()),
            scope: ResourceScope::Stage,
        })
    }

    /// Answers one authorizer request (any of the three shapes).
    pub async fn authorize(&self, payload: Value) -> Result<Value, crate::Error> {
        let now = chrono::Utc::now().timestamp();
        if payload.get("version").and_then(Value::as_str) == Some("2.0") {
            let request: ApiGatewayV2CustomAuthorizerV2Request = serde_json::from_value(payload)?;
            let headers = header_pairs(&request.headers);
            let token = bearer_from_headers(headers).or_else(|| {
                request
                    .identity_source
                    .iter()
                    .flatten()
                    .find_map(|s| bearer_token(s))
            });
            let outcome = self.verify(token, now).await;
            return Ok(serde_json::to_value(http_simple_response(&outcome))?);
        }
        let (token, method_arn) = if payload.get("type").and_then(Value::as_str) == Some("TOKEN") {
            let request: ApiGatewayCustomAuthorizerRequest = serde_json::from_value(payload)?;
            let token = request
                .authorization_token
                .as_deref()
                .and_then(bearer_token)
                .map(str::to_owned);
            (token, request.method_arn.unwrap_or_default())
        } else {
            let request: ApiGatewayCustomAuthorizerRequestTypeRequest =
                serde_json::from_value(payload)?;
            let token = bearer_from_headers(header_pairs(&request.headers)).map(str::to_owned);
            (token, request.method_arn.unwrap_or_default())
        };
        let outcome = self.verify(token.as_deref(), now).await;
        Ok(serde_json::to_value(rest_policy(
            &outcome,
            &method_arn,
            self.scope,
        ))?)
    }

    /// Verifies `token` with the current keys, reloading them first when they are stale, and
    /// once more when the token names a key they do not have.
    pub async fn verify(&self, token: Option<&str>, now: i64) -> Result<Principal, Deny> {
        let Some(token) = token else {
            return Err(Deny {
                reason: DenyReason::Malformed,
                detail: "no bearer token".into(),
            });
        };
        let (verifier, loaded_at) = self.current().await;
        let verifier = if loaded_at.elapsed() >= self.ttl {
            self.reload(loaded_at).await.unwrap_or(verifier)
        } else {
            verifier
        };
        let outcome = verifier.verify(token, now);
        let outcome = match outcome {
            Err(deny)
                if deny.reason == DenyReason::UnknownKid
                    && self.config.jwks_url.is_some()
                    && self.current().await.1.elapsed() >= KID_RELOAD_INTERVAL =>
            {
                let (_, loaded_at) = self.current().await;
                match self.reload(loaded_at).await {
                    Some(fresh) => fresh.verify(token, now),
                    None => Err(deny),
                }
            }
            other => other,
        };
        if let Err(deny) = &outcome {
            tracing::debug!(reason = deny.reason.as_str(), detail = %deny.detail, "Token denied.");
        }
        outcome
    }

    async fn current(&self) -> (Arc<JwtVerifier>, Instant) {
        let keys = self.keys.read().await;
        (keys.verifier.clone(), keys.loaded_at)
    }

    /// Loads the keys again, unless a call already did since they were `seen` loaded (its
    /// keys are returned) or a failed reload's backoff still runs (`None`: the caller keeps the
    /// old keys). A failure is logged and starts, or doubles, the backoff.
    async fn reload(&self, seen: Instant) -> Option<Arc<JwtVerifier>> {
        let _one_at_a_time = self.reloading.lock().await;
        {
            let keys = self.keys.read().await;
            if keys.loaded_at != seen {
                return Some(keys.verifier.clone());
            }
            if keys
                .backoff
                .is_some_and(|(not_before, _)| Instant::now() < not_before)
            {
                return None;
            }
        }
        let loaded = load_verifier(&self.config, &self.secrets, &self.http).await;
        let mut keys = self.keys.write().await;
        match loaded {
            Ok(verifier) => {
                let verifier = Arc::new(verifier);
                *keys = Keys {
                    verifier: verifier.clone(),
                    loaded_at: Instant::now(),
                    backoff: None,
                };
                Some(verifier)
            }
            Err(err) => {
                let wait = keys.backoff.map_or(RELOAD_BACKOFF_FIRST, |(_, last)| {
                    (last * 2).min(RELOAD_BACKOFF_MAX)
                });
                keys.backoff = Some((Instant::now() + wait, wait));
                tracing::warn!(
                    error = %err,
                    retry_in_ms = wait.as_millis() as u64,
                    "Authorizer keys not reloaded; keeping the old ones until a later try."
                );
                None
            }
        }
    }
}

fn header_pairs(headers: &http::HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .iter()
        .filter_map(|(name, value)| value.to_str().ok().map(|v| (name.as_str(), v)))
}

impl Shim for Authorizer {
    type Response = Value;
    const FUNCTION: LambdaFunction = LambdaFunction::Authorizer;

    async fn cold_start(config: Config, _metrics: Arc<Metrics>) -> Result<Self, ColdStartError> {
        let region = crate::cold_start::home_region(&config);
        let clients = RegionClients::new(region, &config.aws).await;
        Ok(Self::new(&config.jwt, clients.secretsmanager).await?)
    }

    async fn handle(&self, event: LambdaEvent<Value>) -> Result<Self::Response, crate::Error> {
        self.authorize(event.payload).await
    }
}
