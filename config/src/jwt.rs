//! `[jwt]`: how the authorizer verifies API Gateway bearer tokens.

use crate::error::Validator;
use crate::secret::Secret;
use serde::{Deserialize, Serialize};

/// JWT verification. Each key pins its algorithm: HS256 keys only verify HS256 tokens, RSA keys
/// only RS256, and `none` is always rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// Accepted `iss` values; a token from any other issuer is denied. Required once any key
    /// is configured (unless `insecure_accept_any_issuer_and_audience`): an empty list denies
    /// every token rather than accepting every issuer.
    pub issuers: Vec<String>,
    /// Accepted `aud` values; a token must name at least one. Required once any key is
    /// configured (unless `insecure_accept_any_issuer_and_audience`): an empty list denies
    /// every token rather than accepting every audience.
    pub audiences: Vec<String>,
    /// Lets an empty `issuers` (or `audiences`) accept any issuer (or audience): every token
    /// signed by a configured key then passes that check, whoever issued it and for whatever
    /// API. Only for a key that nobody else signs with and that signs for this API alone.
    /// Refused while both lists are set, where it would change nothing.
    pub insecure_accept_any_issuer_and_audience: bool,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// Secrets Manager secret id or ARN holding the HS256 key (read once, cached).
    pub hs256_secret_id: Option<String>,
    /// An inline HS256 key, for local runs and tests; prefer `hs256_secret_id`.
    pub hs256_secret: Option<Secret>,
    /// How long the HS256 key read from Secrets Manager is cached. When reading it again fails
    /// (Secrets Manager down), the cached key stays in use and the authorizer tries again
    /// after 1 s, then 2 s, 4 s... up to 60 s between tries, never once per call.
    pub secret_cache_ttl_secs: u64,
    /// RS256 public keys given in PEM, chosen by the token's `kid`.
    pub rs256_keys: Vec<RsaKeyConfig>,
    /// A JWKS URL serving RS256 public keys, fetched and cached by `kid`.
    pub jwks_url: Option<String>,
    /// How long fetched JWKS keys are cached. When fetching them again fails, the cached keys
    /// stay in use and the fetch is retried with the same backoff as the HS256 key.
    pub jwks_cache_ttl_secs: u64,
    /// Claim holding the user id passed on as `userId`.
    pub user_claim: String,
    /// Claim holding the roles (a list or a space-separated string) passed on as `roles`.
    pub roles_claim: String,
    /// Claim holding the tenant passed on as `tenantId`.
    pub tenant_claim: String,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            audiences: Vec::new(),
            insecure_accept_any_issuer_and_audience: false,
            leeway_secs: 30,
            hs256_secret_id: None,
            hs256_secret: None,
            secret_cache_ttl_secs: 300,
            rs256_keys: Vec::new(),
            jwks_url: None,
            jwks_cache_ttl_secs: 600,
            user_claim: "sub".into(),
            roles_claim: "roles".into(),
            tenant_claim: "tenant_id".into(),
        }
    }
}

/// One RS256 public key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RsaKeyConfig {
    /// Key id a token names in its header to select this key.
    pub kid: String,
    /// The public key, PEM-encoded (`-----BEGIN PUBLIC KEY-----`).
    pub pem: String,
}

impl JwtConfig {
    /// Whether any key source is configured; an authorizer without one denies everything.
    pub fn has_keys(&self) -> bool {
        self.hs256_secret_id.is_some()
            || self.hs256_secret.is_some()
            || !self.rs256_keys.is_empty()
            || self.jwks_url.is_some()
    }

    pub(crate) fn validate(&self, v: &mut Validator) {
        if self.insecure_accept_any_issuer_and_audience {
            if !self.issuers.is_empty() && !self.audiences.is_empty() {
                v.invalid(
                    "jwt.insecure_accept_any_issuer_and_audience",
                    true,
                    "changes nothing while jwt.issuers and jwt.audiences are both set; remove it",
                );
            }
        } else if self.has_keys() {
            for (key, list) in [
                ("jwt.issuers", &self.issuers),
                ("jwt.audiences", &self.audiences),
            ] {
                if list.is_empty() {
                    v.invalid(
                        key,
                        "[]",
                        "must name what the authorizer accepts once a key is configured \
                         (jwt.insecure_accept_any_issuer_and_audience = true accepts any)",
                    );
                }
            }
        }
        for (i, issuer) in self.issuers.iter().enumerate() {
            v.non_empty(&format!("jwt.issuers[{i}]"), issuer);
        }
        for (i, audience) in self.audiences.iter().enumerate() {
            v.non_empty(&format!("jwt.audiences[{i}]"), audience);
        }
        v.range("jwt.leeway_secs", self.leeway_secs, 0, 3_600);
        v.range(
            "jwt.secret_cache_ttl_secs",
            self.secret_cache_ttl_secs,
            1,
            86_400,
        );
        v.range(
            "jwt.jwks_cache_ttl_secs",
            self.jwks_cache_ttl_secs,
            1,
            86_400,
        );
        if let Some(url) = &self.jwks_url {
            v.url("jwt.jwks_url", url);
        }
        if self.hs256_secret.as_ref().is_some_and(|s| s.is_empty()) {
            v.push(crate::ValidationError::Empty {
                key: "jwt.hs256_secret".into(),
            });
        }
        for (i, key) in self.rs256_keys.iter().enumerate() {
            v.non_empty(&format!("jwt.rs256_keys[{i}].kid"), &key.kid);
            if !key.pem.contains("-----BEGIN") {
                v.invalid(
                    &format!("jwt.rs256_keys[{i}].pem"),
                    "(key)",
                    "must be a PEM-encoded public key",
                );
            }
        }
        v.non_empty("jwt.user_claim", &self.user_claim);
        v.non_empty("jwt.roles_claim", &self.roles_claim);
        v.non_empty("jwt.tenant_claim", &self.tenant_claim);
    }
}
