//! JWT verification for the API Gateway authorizer.
//!
//! A [`JwtVerifier`] is built once (at cold start, or when the HS256 secret or the JWKS is
//! refreshed) and then verifies tokens with no I/O and no clock: `now` is passed in, so a test
//! can ask about any instant. Every key is pinned to one algorithm — the HS256 secret verifies
//! only HS256, RSA keys only RS256 — and the token's own `alg` merely selects which pinned key to
//! try, so `alg: none`, other algorithms and HS/RS confusion (an HS256 token "signed" with the RSA
//! public key as the HMAC secret) are denied before any signature is checked.
//!
//! jsonwebtoken does the cryptography; the token is split, decoded and its claims checked here,
//! so each denial carries a precise [`DenyReason`] and the time checks use the caller's `now`.
//!
//! # Layout
//!
//! - this file: [`JwtVerifier`], [`Principal`], [`Deny`];
//! - [`keys`]: loading the HS256 secret, PEM keys and JWKS documents;
//! - [`authorizer`]: bearer-token extraction and the API Gateway responses (REST IAM policy,
//!   HTTP API simple response).

pub mod authorizer;
pub mod keys;

use std::borrow::Cow;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use eda_config::JwtConfig;
use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use authorizer::{
    bearer_from_headers, bearer_token, http_simple_response, rest_policy, AuthorizerContext,
    Effect, HttpSimpleResponse, IamPolicyResponse, PolicyDocument, PolicyStatement, ResourceScope,
};
pub use keys::JwtSetupError;

/// Longest token accepted; API Gateway caps headers near this, and it bounds the work a hostile
/// token can cause.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Who the token says the caller is, in the shape the authorizer passes on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Principal {
    /// From the `jwt.user_claim` claim (`sub` by default); the IAM policy's `principalId`.
    pub user_id: String,
    /// From the `jwt.roles_claim` claim, a JSON list or a space-separated string.
    pub roles: Vec<String>,
    /// From the `jwt.tenant_claim` claim, when the token has one.
    pub tenant_id: Option<String>,
    /// Every claim of the token, for handlers that need more than the three above.
    pub claims: Map<String, Value>,
}

/// Why a token was refused; the `snake_case` names are what logs and metrics carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyReason {
    /// `exp` is past (beyond the leeway).
    Expired,
    /// `nbf` is still ahead (beyond the leeway).
    NotYetValid,
    /// The signature does not verify with the selected key.
    BadSignature,
    /// `iss` is missing or not one of `jwt.issuers`.
    WrongIssuer,
    /// `aud` names none of `jwt.audiences`.
    WrongAudience,
    /// `alg` is not one this verifier accepts, or not the one the selected key is pinned to.
    AlgorithmNotAllowed,
    /// The token names a `kid` no key has (or has none when several RSA keys could apply).
    UnknownKid,
    /// Not a well-formed JWT, or a required claim is missing or of the wrong type.
    Malformed,
    /// No key of the token's algorithm is configured.
    NoKey,
}

impl DenyReason {
    /// The reason as a constant label, for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::BadSignature => "bad_signature",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::UnknownKid => "unknown_kid",
            Self::Malformed => "malformed",
            Self::NoKey => "no_key",
        }
    }
}

impl std::fmt::Display for DenyReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused token: the reason for metrics and a detail for the log (never for the caller, who
/// only learns "denied").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token denied ({reason}): {detail}")]
pub struct Deny {
    /// The typed reason.
    pub reason: DenyReason,
    /// What exactly was wrong, for operators.
    pub detail: Cow<'static, str>,
}

impl Deny {
    fn new(reason: DenyReason, detail: impl Into<Cow<'static, str>>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// Verifies bearer tokens against pinned keys and the configured issuers, audiences and claims.
pub struct JwtVerifier {
    /// The keys, each pinned to its algorithm.
    keys: keys::KeyStore,
    /// `jwt.issuers`; empty denies every token, unless `any_issuer_or_audience`.
    issuers: Vec<String>,
    /// `jwt.audiences`; empty denies every token, unless `any_issuer_or_audience`.
    audiences: Vec<String>,
    /// `jwt.insecure_accept_any_issuer_and_audience`: an empty list above accepts any value.
    any_issuer_or_audience: bool,
    /// `jwt.leeway_secs`, applied to `exp` and `nbf`.
    leeway_secs: f64,
    /// `jwt.user_claim`.
    user_claim: String,
    /// `jwt.roles_claim`.
    roles_claim: String,
    /// `jwt.tenant_claim`.
    tenant_claim: String,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<_> = self.keys.rsa.keys().collect();
        kids.sort();
        f.debug_struct("JwtVerifier")
            .field("hs256", &self.keys.hs256.is_some())
            .field("rs256_kids", &kids)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .finish()
    }
}

/// The token header members the verifier reads.
#[derive(Deserialize)]
struct Header<'a> {
    /// Algorithm the token claims; it only selects which pinned key to try.
    #[serde(borrow)]
    alg: Cow<'a, str>,
    /// Key id, selecting among RSA keys.
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    /// Critical extensions: none are supported, so their presence denies (RFC 7515 §4.1.11).
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

impl JwtVerifier {
    /// Builds the verifier from config. `hs256_secret` is the secret the caller fetched from
    /// Secrets Manager (`jwt.hs256_secret_id`); without it the inline `jwt.hs256_secret` is used,
    /// and without either HS256 tokens are denied with [`DenyReason::NoKey`].
    pub fn new(cfg: &JwtConfig, hs256_secret: Option<&[u8]>) -> Result<Self, JwtSetupError> {
        let mut keys = keys::KeyStore::default();
        let inline = cfg.hs256_secret.as_ref().map(|s| s.expose().as_bytes());
        if let Some(secret) = hs256_secret.or(inline) {
            keys.set_hs256(secret)?;
        }
        for key in &cfg.rs256_keys {
            keys.add_pem(&key.kid, &key.pem)?;
        }
        Ok(Self {
            keys,
            issuers: cfg.issuers.clone(),
            audiences: cfg.audiences.clone(),
            any_issuer_or_audience: cfg.insecure_accept_any_issuer_and_audience,
            // Config bounds the leeway to an hour, so the conversion is exact.
            leeway_secs: cfg.leeway_secs as f64,
            user_claim: cfg.user_claim.clone(),
            roles_claim: cfg.roles_claim.clone(),
            tenant_claim: cfg.tenant_claim.clone(),
        })
    }

    /// Replaces the HS256 secret, when the cached Secrets Manager value is refreshed.
    pub fn set_hs256_secret(&mut self, secret: &[u8]) -> Result<(), JwtSetupError> {
        self.keys.set_hs256(secret)
    }

    /// Adds the RS256 signing keys of a JWKS document (other key types and uses are skipped);
    /// returns how many were added. A document with an unusable RSA key changes nothing.
    pub fn add_jwks(&mut self, json: &str) -> Result<usize, JwtSetupError> {
        self.keys.add_jwks(json)
    }

    /// Replaces every key a previous JWKS added with the keys of this one (a JWKS refresh, so
    /// rotated-out keys stop verifying); config PEM keys stay.
    pub fn replace_jwks(&mut self, json: &str) -> Result<usize, JwtSetupError> {
        // Parse into a scratch store first so a bad document leaves the current keys in place.
        let mut fresh = keys::KeyStore::default();
        fresh.add_jwks(json)?;
        if let Some(kid) = fresh.rsa.keys().find(|kid| {
            self.keys
                .rsa
                .get(*kid)
                .is_some_and(|k| k.origin == keys::Origin::Config)
        }) {
            return Err(JwtSetupError::DuplicateKid { kid: kid.clone() });
        }
        self.keys.remove_jwks_keys();
        let added = fresh.rsa.len();
        self.keys.rsa.extend(fresh.rsa);
        Ok(added)
    }

    /// Verifies `token` at `now` (Unix seconds): signature with the pinned key, then `exp`,
    /// `nbf`, `iss` and `aud`, then the principal's claims.
    pub fn verify(&self, token: &str, now: i64) -> Result<Principal, Deny> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Deny::new(DenyReason::Malformed, "token too long"));
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Deny::new(
                DenyReason::Malformed,
                "a JWT has exactly three dot-separated parts",
            ));
        };
        let header_json = decode_part(header_b64, "header")?;
        let header: Header<'_> = serde_json::from_slice(&header_json)
            .map_err(|e| Deny::new(DenyReason::Malformed, format!("header: {e}")))?;
        if header.crit.is_some() {
            return Err(Deny::new(
                DenyReason::Malformed,
                "critical header extensions are not supported",
            ));
        }
        let (key, alg) = self.select_key(&header)?;

        // The signed message is the token up to the second dot.
        let message = &token[..header_b64.len() + 1 + payload_b64.len()];
        match jsonwebtoken::crypto::verify(signature_b64, message.as_bytes(), key, alg) {
            Ok(true) => {}
            Ok(false) => {
                return Err(Deny::new(
                    DenyReason::BadSignature,
                    "the signature does not verify",
                ))
            }
            Err(e) => match e.kind() {
                jsonwebtoken::errors::ErrorKind::Base64(_) => {
                    return Err(Deny::new(
                        DenyReason::Malformed,
                        "the signature is not base64url",
                    ))
                }
                _ => return Err(Deny::new(DenyReason::BadSignature, e.to_string())),
            },
        }

        let payload = decode_part(payload_b64, "payload")?;
        let claims: Map<String, Value> = serde_json::from_slice(&payload)
            .map_err(|e| Deny::new(DenyReason::Malformed, format!("claims: {e}")))?;
        self.check_claims(&claims, now)?;
        self.principal(claims)
    }

    /// Chooses the pinned key for the token's `alg` and `kid`.
    fn select_key(
        &self,
        header: &Header<'_>,
    ) -> Result<(&jsonwebtoken::DecodingKey, Algorithm), Deny> {
        let kid = header.kid.as_deref();
        match &*header.alg {
            "HS256" => {
                if kid.is_some_and(|kid| self.keys.rsa.contains_key(kid)) {
                    return Err(Deny::new(
                        DenyReason::AlgorithmNotAllowed,
                        "an HS256 token names an RSA key, which only verifies RS256",
                    ));
                }
                let key =
                    self.keys.hs256.as_ref().ok_or_else(|| {
                        Deny::new(DenyReason::NoKey, "no HS256 secret is configured")
                    })?;
                Ok((key, Algorithm::HS256))
            }
            "RS256" => {
                if self.keys.rsa.is_empty() {
                    return Err(Deny::new(DenyReason::NoKey, "no RS256 key is configured"));
                }
                let key = match kid {
                    Some(kid) => self.keys.rsa.get(kid).ok_or_else(|| {
                        Deny::new(
                            DenyReason::UnknownKid,
                            format!("no RS256 key has kid {kid:?}"),
                        )
                    })?,
                    // Without a kid the key is unambiguous only when there is one.
                    None if self.keys.rsa.len() == 1 => {
                        self.keys.rsa.values().next().ok_or_else(|| {
                            Deny::new(DenyReason::NoKey, "no RS256 key is configured")
                        })?
                    }
                    None => {
                        return Err(Deny::new(
                            DenyReason::UnknownKid,
                            "the token has no kid and several RS256 keys are configured",
                        ))
                    }
                };
                Ok((&key.key, Algorithm::RS256))
            }
            other => Err(Deny::new(
                DenyReason::AlgorithmNotAllowed,
                format!("alg {:?} is not accepted", truncate(other)),
            )),
        }
    }

    /// `exp` (required), `nbf`, `iss`, `aud`, against `now` with the leeway.
    fn check_claims(&self, claims: &Map<String, Value>, now: i64) -> Result<(), Deny> {
        // Seconds since the epoch fit an f64 exactly for any realistic date.
        let now = now as f64;
        let exp = numeric(claims, "exp")?
            .ok_or_else(|| Deny::new(DenyReason::Malformed, "the token has no exp"))?;
        if now >= exp + self.leeway_secs {
            return Err(Deny::new(
                DenyReason::Expired,
                format!("expired at {exp}, now {now}"),
            ));
        }
        if let Some(nbf) = numeric(claims, "nbf")? {
            if now + self.leeway_secs < nbf {
                return Err(Deny::new(
                    DenyReason::NotYetValid,
                    format!("not valid before {nbf}, now {now}"),
                ));
            }
        }
        // Deny by default: an empty list accepts anything only when the configuration says so
        // in as many words (validation refuses the empty lists otherwise; this holds for a
        // verifier built from an unvalidated configuration too).
        if self.issuers.is_empty() && !self.any_issuer_or_audience {
            return Err(Deny::new(
                DenyReason::WrongIssuer,
                "no issuer is accepted (jwt.issuers is empty)",
            ));
        }
        if self.audiences.is_empty() && !self.any_issuer_or_audience {
            return Err(Deny::new(
                DenyReason::WrongAudience,
                "no audience is accepted (jwt.audiences is empty)",
            ));
        }
        if !self.issuers.is_empty() {
            match claims.get("iss") {
                Some(Value::String(iss)) if self.issuers.iter().any(|i| i == iss) => {}
                Some(Value::String(iss)) => {
                    return Err(Deny::new(
                        DenyReason::WrongIssuer,
                        format!("issuer {:?} is not accepted", truncate(iss)),
                    ))
                }
                _ => return Err(Deny::new(DenyReason::WrongIssuer, "the token has no iss")),
            }
        }
        if !self.audiences.is_empty() {
            let accepted = |aud: &str| self.audiences.iter().any(|a| a == aud);
            let ok = match claims.get("aud") {
                Some(Value::String(aud)) => accepted(aud),
                Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(accepted),
                _ => false,
            };
            if !ok {
                return Err(Deny::new(
                    DenyReason::WrongAudience,
                    "the token names none of the accepted audiences",
                ));
            }
        }
        Ok(())
    }

    /// Builds the principal from the configured claims.
    fn principal(&self, claims: Map<String, Value>) -> Result<Principal, Deny> {
        let user_id = match claims.get(&self.user_claim) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(Deny::new(
                    DenyReason::Malformed,
                    format!("the token has no {:?} claim", self.user_claim),
                ))
            }
        };
        let roles = match claims.get(&self.roles_claim) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        let tenant_id = match claims.get(&self.tenant_claim) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Ok(Principal {
            user_id,
            roles,
            tenant_id,
            claims,
        })
    }
}

fn decode_part(part: &str, what: &'static str) -> Result<Vec<u8>, Deny> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| {
        Deny::new(
            DenyReason::Malformed,
            format!("the {what} is not base64url"),
        )
    })
}

/// A NumericDate claim: absent is `None`, present but not a number is malformed.
fn numeric(claims: &Map<String, Value>, name: &'static str) -> Result<Option<f64>, Deny> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|v| v.is_finite())
            .map(Some)
            .ok_or_else(|| Deny::new(DenyReason::Malformed, format!("{name} is not a number"))),
        Some(_) => Err(Deny::new(
            DenyReason::Malformed,
            format!("{name} is not a number"),
        )),
    }
}

/// At most 64 characters of a token-supplied string, so a log line stays short.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests;
