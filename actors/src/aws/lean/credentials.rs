//! The credentials the lean client signs with: taken from the SDK's configured provider (static
//! keys, a profile, or the default chain: environment, IRSA web identity, instance metadata) and
//! kept until shortly before they expire.
//!
//! A request never waits for a refresh while its credentials still have [`MIN_LEFT`] to run:
//! once they are within [`REFRESH_AHEAD`] of expiring, the first request to notice starts one
//! refresh in the background and goes on with the old ones. Only when there are none yet, or
//! they are about to expire, does a request wait, and then for a single shared refresh.

use crate::ports::SinkError;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use eda_core::failure::ErrorClass;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// How long before expiry a background refresh starts.
const REFRESH_AHEAD: Duration = Duration::from_secs(300);

/// Credentials with less than this left are not used: the request waits for fresh ones (a
/// request signed now may reach AWS a few seconds later).
const MIN_LEFT: Duration = Duration::from_secs(15);

/// A cache over one provider, shared by the region's lean clients.
pub(crate) struct CredentialsCache {
    /// Where credentials come from; `None` when the SDK found no provider at all.
    provider: Option<SharedCredentialsProvider>,
    /// The last credentials loaded (cloning is an `Arc` increment).
    current: RwLock<Option<Credentials>>,
    /// Set while a background refresh runs, so only one starts.
    refreshing: AtomicBool,
    /// Serializes the loads a request waits for.
    load: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for CredentialsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialsCache")
            .field("provider", &self.provider.is_some())
            .finish_non_exhaustive()
    }
}

impl CredentialsCache {
    /// A cache over `provider`; loads nothing until the first request.
    pub(crate) fn new(provider: Option<SharedCredentialsProvider>) -> Arc<Self> {
        Arc::new(Self {
            provider,
            current: RwLock::new(None),
            refreshing: AtomicBool::new(false),
            load: tokio::sync::Mutex::new(()),
        })
    }

    /// Credentials to sign with now.
    pub(crate) async fn get(
        self: &Arc<Self>,
        service: &'static str,
    ) -> Result<Credentials, SinkError> {
        let now = SystemTime::now();
        if let Some(creds) = self.cached() {
            match left(&creds, now) {
                None => return Ok(creds),
                Some(left) if left > REFRESH_AHEAD => return Ok(creds),
                Some(left) if left > MIN_LEFT => {
                    self.refresh_in_background(service);
                    return Ok(creds);
                }
                Some(_) => {}
            }
        }
        let _guard = self.load.lock().await;
        // Another request may have loaded them while this one waited.
        if let Some(creds) = self.cached() {
            if left(&creds, SystemTime::now()).is_none_or(|left| left > MIN_LEFT) {
                return Ok(creds);
            }
        }
        self.load(service).await
    }

    fn cached(&self) -> Option<Credentials> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn refresh_in_background(self: &Arc<Self>, service: &'static str) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let cache = self.clone();
        tokio::spawn(async move {
            let _guard = cache.load.lock().await;
            if let Err(err) = cache.load(service).await {
                tracing::warn!(error = %err, "Refreshing AWS credentials failed; the current ones are used until they expire.");
            }
            cache.refreshing.store(false, Ordering::Release);
        });
    }

    async fn load(&self, service: &'static str) -> Result<Credentials, SinkError> {
        let provider = self.provider.as_ref().ok_or_else(|| SinkError {
            service,
            operation: "credentials",
            class: ErrorClass::Client,
            message: "no AWS credentials provider is configured".into(),
        })?;
        let creds = provider
            .provide_credentials()
            .await
            .map_err(|err| credentials_error(service, &err))?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(creds.clone());
        Ok(creds)
    }
}

/// Time left before `creds` expire; `None` when they never do.
fn left(creds: &Credentials, now: SystemTime) -> Option<Duration> {
    creds
        .expiry()
        .map(|expiry| expiry.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A provider's failure as a [`SinkError`]: a provider that timed out or failed to reach its
/// source (STS, instance metadata) is worth another attempt; none configured, or a
/// configuration it cannot use, is not.
fn credentials_error(service: &'static str, err: &CredentialsError) -> SinkError {
    let class = match err {
        CredentialsError::ProviderTimedOut(_) => ErrorClass::Timeout,
        CredentialsError::CredentialsNotLoaded(_) | CredentialsError::InvalidConfiguration(_) => {
            ErrorClass::Client
        }
        _ => ErrorClass::Connect,
    };
    SinkError {
        service,
        operation: "credentials",
        class,
        message: format!(
            "loading AWS credentials: {}",
            aws_sdk_dynamodb::error::DisplayErrorContext(err)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expiring_in(secs: u64) -> Credentials {
        Credentials::new(
            "AKID",
            "secret",
            None,
            Some(SystemTime::now() + Duration::from_secs(secs)),
            "test",
        )
    }

    #[tokio::test]
    async fn credentials_are_loaded_once_and_reused_until_near_expiry() {
        let cache = CredentialsCache::new(Some(SharedCredentialsProvider::new(expiring_in(3_600))));
        let first = cache.get("dynamodb").await.expect("loaded");
        // Replace what the cache holds: a reload would bring back the provider's.
        *cache.current.write().expect("lock") = Some(expiring_in(1_800));
        let second = cache.get("dynamodb").await.expect("cached");
        assert_eq!(first.access_key_id(), second.access_key_id());
        assert!(second.expiry() < first.expiry(), "the cached pair was used");
    }

    #[tokio::test]
    async fn credentials_about_to_expire_are_replaced_before_use() {
        let cache = CredentialsCache::new(Some(SharedCredentialsProvider::new(expiring_in(3_600))));
        *cache.current.write().expect("lock") = Some(expiring_in(5));
        let creds = cache.get("dynamodb").await.expect("reloaded");
        let left = left(&creds, SystemTime::now()).expect("expires");
        assert!(left > MIN_LEFT, "{left:?}");
    }

    #[tokio::test]
    async fn no_provider_is_a_clear_permanent_error() {
        let cache = CredentialsCache::new(None);
        let err = cache
            .get("dynamodb")
            .await
            .expect_err("nothing to sign with");
        assert_eq!(err.class, ErrorClass::Client);
        assert!(err.message.contains("no AWS credentials"), "{err}");
    }
}
