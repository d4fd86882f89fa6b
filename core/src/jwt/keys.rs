//! The verifier's keys: one HS256 secret and RS256 public keys by `kid`, each pinned to its
//! algorithm.
//!
//! Keys come from three places — the HS256 secret the caller fetched from Secrets Manager (or the
//! inline one in config), PEM keys in config, and JWKS documents the caller fetched — and are
//! checked when loaded, so a bad key fails at start-up (or at a JWKS refresh) and never shows up
//! as a denied token later.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;

/// Smallest RSA modulus accepted from a JWKS, in bytes (2048 bits): shorter keys are forgeable.
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// Why the verifier could not be built or a JWKS not loaded; raised at start-up or refresh, never
/// per token.
#[derive(Debug, thiserror::Error)]
pub enum JwtSetupError {
    /// A configured PEM is not an RSA public key.
    #[error(
        "jwt.rs256_keys: the key with kid {kid:?} is not a valid RSA public key PEM: {message}"
    )]
    InvalidPem {
        /// The configured kid.
        kid: String,
        /// What the PEM parser said.
        message: String,
    },
    /// The JWKS document is not JSON of the form `{"keys":[...]}`.
    #[error("the JWKS document is malformed: {0}")]
    InvalidJwks(String),
    /// An RSA key in the JWKS cannot be used.
    #[error("JWKS key {kid:?} is unusable: {message}")]
    InvalidJwk {
        /// Its kid.
        kid: String,
        /// Why.
        message: String,
    },
    /// A JWKS key has the kid of a configured PEM key; which one a token means would be a guess.
    #[error("JWKS key {kid:?} has the same kid as a key in jwt.rs256_keys")]
    DuplicateKid {
        /// The kid in both.
        kid: String,
    },
    /// The HS256 secret is empty, which would let anyone sign tokens.
    #[error("the HS256 secret is empty")]
    EmptySecret,
}

impl JwtSetupError {
    /// Whether loading again may help: never for a bad key, so callers do not loop on it.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// Where an RSA key came from, so a JWKS refresh replaces only what the previous one added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// `jwt.rs256_keys` in config.
    Config,
    /// A JWKS document.
    Jwks,
}

/// An RS256 public key and where it came from.
pub(super) struct RsaKey {
    /// The key as jsonwebtoken verifies with it.
    pub(super) key: DecodingKey,
    /// Config or JWKS.
    pub(super) origin: Origin,
}

/// All keys the verifier knows.
#[derive(Default)]
pub(super) struct KeyStore {
    /// The HS256 secret; only ever used for `alg: HS256`.
    pub(super) hs256: Option<DecodingKey>,
    /// RS256 keys by kid; only ever used for `alg: RS256`.
    pub(super) rsa: HashMap<String, RsaKey>,
}

impl KeyStore {
    pub(super) fn set_hs256(&mut self, secret: &[u8]) -> Result<(), JwtSetupError> {
        if secret.is_empty() {
            return Err(JwtSetupError::EmptySecret);
        }
        self.hs256 = Some(DecodingKey::from_secret(secret));
        Ok(())
    }

    pub(super) fn add_pem(&mut self, kid: &str, pem: &str) -> Result<(), JwtSetupError> {
        let key =
            DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| JwtSetupError::InvalidPem {
                kid: kid.to_owned(),
                message: e.to_string(),
            })?;
        self.rsa.insert(
            kid.to_owned(),
            RsaKey {
                key,
                origin: Origin::Config,
            },
        );
        Ok(())
    }

    /// Adds the usable RSA signing keys of a JWKS; returns how many were added.
    pub(super) fn add_jwks(&mut self, json: &str) -> Result<usize, JwtSetupError> {
        let doc: JwksDocument =
            serde_json::from_str(json).map_err(|e| JwtSetupError::InvalidJwks(e.to_string()))?;
        let mut parsed = Vec::new();
        for jwk in doc.keys {
            if let Some(entry) = jwk.into_rsa_key()? {
                if matches!(self.rsa.get(&entry.0), Some(k) if k.origin == Origin::Config) {
                    return Err(JwtSetupError::DuplicateKid { kid: entry.0 });
                }
                parsed.push(entry);
            }
        }
        // All or nothing: a document with one bad key changes nothing.
        let added = parsed.len();
        for (kid, key) in parsed {
            self.rsa.insert(
                kid,
                RsaKey {
                    key,
                    origin: Origin::Jwks,
                },
            );
        }
        Ok(added)
    }

    pub(super) fn remove_jwks_keys(&mut self) {
        self.rsa.retain(|_, k| k.origin == Origin::Config);
    }
}

/// A JWKS document: only `keys` matters.
#[derive(Deserialize)]
struct JwksDocument {
    /// The keys, each parsed leniently so an unknown key type is skipped, not fatal.
    keys: Vec<JwkFields>,
}

/// The JWK members the verifier reads; anything else is ignored.
#[derive(Deserialize)]
struct JwkFields {
    /// Key type; only `RSA` is used.
    kty: String,
    /// Key id tokens select the key by.
    kid: Option<String>,
    /// Algorithm the key is meant for; when given it must be RS256.
    alg: Option<String>,
    /// Intended use; when given it must be `sig`.
    #[serde(rename = "use")]
    use_: Option<String>,
    /// RSA modulus, base64url.
    n: Option<String>,
    /// RSA public exponent, base64url.
    e: Option<String>,
}

impl JwkFields {
    /// The key as (kid, key) when it is an RS256 signing key; `None` for keys meant for something
    /// else (EC, encryption, other algorithms), which a JWKS legitimately mixes in.
    fn into_rsa_key(self) -> Result<Option<(String, DecodingKey)>, JwtSetupError> {
        if self.kty != "RSA"
            || self.use_.as_deref().is_some_and(|u| u != "sig")
            || self.alg.as_deref().is_some_and(|a| a != "RS256")
        {
            return Ok(None);
        }
        let kid = self.kid.unwrap_or_default();
        let bad = |message: &str| JwtSetupError::InvalidJwk {
            kid: kid.clone(),
            message: message.to_owned(),
        };
        if kid.is_empty() {
            return Err(bad("an RSA key without a kid cannot be selected"));
        }
        let (Some(n), Some(e)) = (self.n.as_deref(), self.e.as_deref()) else {
            return Err(bad("missing n or e"));
        };
        let n_bytes = URL_SAFE_NO_PAD
            .decode(n)
            .map_err(|err| bad(&format!("n is not base64url: {err}")))?;
        let e_bytes = URL_SAFE_NO_PAD
            .decode(e)
            .map_err(|err| bad(&format!("e is not base64url: {err}")))?;
        let significant = n_bytes.iter().skip_while(|b| **b == 0).count();
        if significant < MIN_RSA_MODULUS_BYTES {
            return Err(bad(&format!(
                "the modulus is {} bits, under 2048",
                significant * 8
            )));
        }
        if e_bytes.is_empty() {
            return Err(bad("empty exponent"));
        }
        let key = DecodingKey::from_rsa_raw_components(&n_bytes, &e_bytes);
        Ok(Some((kid, key)))
    }
}
