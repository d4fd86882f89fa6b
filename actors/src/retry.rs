//! Retries with exponential backoff and full jitter, for calls to AWS.
//!
//! The SDK already retries a few times on its own; this loop sits above it and decides, per
//! [`SinkError::is_retryable`], whether a failure is worth waiting for (throttling, 5xx, a lost
//! connection) or final (the service refused the request on its merits). The delay before
//! attempt `n` is uniform in `[0, min(max, base * 2^n)]` so that many callers throttled at once
//! do not come back in step.

use crate::ports::SinkError;
use eda_config::RetryConfig;
use std::future::Future;
use std::time::Duration;

/// The delay before retry number `attempt` (1 for the first retry), with full jitter.
pub fn backoff(config: &RetryConfig, attempt: u32, rng: &mut fastrand::Rng) -> Duration {
    let exp = attempt.saturating_sub(1).min(20);
    let ceiling = config
        .base_delay()
        .saturating_mul(1u32 << exp)
        .min(config.max_delay());
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rng.u64(0..=millis))
}

/// Runs `call` until it succeeds, fails with a non-retryable error, or `config.max_attempts`
/// attempts are used. Returns the last error and the number of attempts made.
pub async fn with_retry<T, F, Fut>(config: &RetryConfig, mut call: F) -> Result<T, (SinkError, u32)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SinkError>>,
{
    let mut rng = fastrand::Rng::new();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match call().await {
            Ok(value) => return Ok(value),
            Err(err) if err.is_retryable() && attempt < config.max_attempts => {
                tokio::time::sleep(backoff(config, attempt, &mut rng)).await;
            }
            Err(err) => return Err((err, attempt)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::ErrorClass;

    fn config() -> RetryConfig {
        RetryConfig {
            max_attempts: 4,
            base_delay_ms: 1,
            max_delay_ms: 3,
        }
    }

    fn error(class: ErrorClass) -> SinkError {
        SinkError {
            service: "dynamodb",
            operation: "PutItem",
            class,
            message: "x".into(),
        }
    }

    #[test]
    fn backoff_never_exceeds_the_ceiling() {
        let config = RetryConfig {
            max_attempts: 10,
            base_delay_ms: 25,
            max_delay_ms: 100,
        };
        let mut rng = fastrand::Rng::with_seed(7);
        for attempt in 1..30 {
            let delay = backoff(&config, attempt, &mut rng);
            assert!(delay <= Duration::from_millis(100), "{delay:?}");
        }
    }

    #[tokio::test]
    async fn throttling_is_retried_until_attempts_run_out() {
        let mut calls = 0;
        let result: Result<(), _> = with_retry(&config(), || {
            calls += 1;
            async { Err(error(ErrorClass::Throttled)) }
        })
        .await;
        let (err, attempts) = result.expect_err("never succeeds");
        assert_eq!(err.class, ErrorClass::Throttled);
        assert_eq!((attempts, calls), (4, 4));
    }

    #[tokio::test]
    async fn a_refusal_is_not_retried() {
        let mut calls = 0;
        let result: Result<(), _> = with_retry(&config(), || {
            calls += 1;
            async { Err(error(ErrorClass::Client)) }
        })
        .await;
        assert_eq!(result.expect_err("fails").1, 1);
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn a_transient_failure_then_success_succeeds() {
        let mut calls = 0;
        let result = with_retry(&config(), || {
            calls += 1;
            let fail = calls < 3;
            async move {
                if fail {
                    Err(error(ErrorClass::Server))
                } else {
                    Ok(calls)
                }
            }
        })
        .await;
        assert_eq!(result.expect("succeeds on the third attempt"), 3);
    }
}
