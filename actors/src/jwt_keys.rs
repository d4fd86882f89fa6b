//! Loading the authorizer's keys: the HS256 secret from Secrets Manager and RS256 keys from a
//! JWKS URL, into the pure [`eda_core::jwt::JwtVerifier`].
//!
//! The verifier itself does no I/O; this module is the edge that fetches what it needs, used by
//! `eda-daemon jwt verify` and the authorizer Lambda.

use eda_config::JwtConfig;
use eda_core::jwt::{JwtSetupError, JwtVerifier};

/// Why the keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyLoadError {
    /// Secrets Manager did not hand out the HS256 secret.
    #[error("reading secret {secret_id} from Secrets Manager failed: {message}")]
    Secret {
        /// The configured `jwt.hs256_secret_id`.
        secret_id: String,
        /// What the SDK said.
        message: String,
    },
    /// The JWKS document could not be fetched.
    #[error("fetching JWKS from {url} failed: {message}")]
    Jwks {
        /// The configured `jwt.jwks_url`.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A key was fetched but is not usable (wrong type, too short, bad document).
    #[error(transparent)]
    Setup(#[from] JwtSetupError),
}

impl KeyLoadError {
    /// Whether trying again later may succeed (network and service errors), as opposed to a
    /// configuration or key problem.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            KeyLoadError::Secret { .. } | KeyLoadError::Jwks { .. }
        )
    }
}

/// Reads the HS256 secret named by `jwt.hs256_secret_id` (the secret string is the key).
pub async fn fetch_hs256_secret(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<Vec<u8>, KeyLoadError> {
    match crate::aws::secret_value(client, secret_id).await {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(KeyLoadError::Secret {
            secret_id: secret_id.to_string(),
            message: "the secret has no value".into(),
        }),
        Err(err) => Err(KeyLoadError::Secret {
            secret_id: secret_id.to_string(),
            message: err.to_string(),
        }),
    }
}

/// Fetches the JWKS document at `url`.
pub async fn fetch_jwks(http: &reqwest::Client, url: &str) -> Result<String, KeyLoadError> {
    let fail = |message: String| KeyLoadError::Jwks {
        url: url.to_string(),
        message,
    };
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !response.status().is_success() {
        return Err(fail(format!("HTTP {}", response.status())));
    }
    response.text().await.map_err(|e| fail(e.to_string()))
}

/// Builds a verifier with every key source the configuration names: the inline or Secrets
/// Manager HS256 secret, PEM keys, and the JWKS URL.
pub async fn load_verifier(
    config: &JwtConfig,
    secrets: &aws_sdk_secretsmanager::Client,
    http: &reqwest::Client,
) -> Result<JwtVerifier, KeyLoadError> {
    let secret = match &config.hs256_secret_id {
        Some(id) => Some(fetch_hs256_secret(secrets, id).await?),
        None => None,
    };
    let mut verifier = JwtVerifier::new(config, secret.as_deref())?;
    if let Some(url) = &config.jwks_url {
        let document = fetch_jwks(http, url).await?;
        verifier.add_jwks(&document)?;
    }
    Ok(verifier)
}
