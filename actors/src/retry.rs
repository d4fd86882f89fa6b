//! Retries with exponential backoff and full jitter, for calls to AWS.
//!
//! The calls still made through the SDK are retried a few times by the SDK itself; the
//! per-message `PutItem` and `PutEvents` (the lean client, `crate::aws`) make one attempt per
//! call, so for them this loop is the only one. It decides, per
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

/// Runs `call` until it succeeds, fails with a non-retryable error, or `config` allows no
/// further attempt (`max_attempts` made, or the next would start after `max_elapsed_ms`).
/// Returns the last error and the number of attempts made.
pub async fn with_retry<T, F, Fut>(config: &RetryConfig, mut call: F) -> Result<T, (SinkError, u32)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SinkError>>,
{
    let mut rng = fastrand::Rng::new();
    let mut attempt = 0;
    let started = tokio::time::Instant::now();
    loop {
        attempt += 1;
        match call().await {
            Ok(value) => return Ok(value),
            Err(err) if err.is_retryable() => {
                let delay = backoff(config, attempt, &mut rng);
                if !config.allows_another(attempt, started.elapsed(), delay) {
                    return Err((err, attempt));
                }
                // Every failure would flood the log during an outage; powers of two do not.
                if attempt.is_power_of_two() && attempt >= 4 {
                    tracing::warn!(
                        service = err.service,
                        operation = err.operation,
                        attempt,
                        error = %err,
                        "Call still failing; retrying."
                    );
                }
                tokio::time::sleep(delay).await;
            }
            Err(err) => return Err((err, attempt)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eda_core::failure::ErrorClass;

    fn config() -> RetryConfig {
        RetryConfig {
            max_attempts: 4,
            base_delay_ms: 1,
            max_delay_ms: 3,
            max_elapsed_ms: 0,
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
            max_elapsed_ms: 0,
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

    /// Time is paused: each backoff advances the clock at once.
    #[tokio::test(start_paused = true)]
    async fn the_appliers_default_rides_out_a_two_minute_outage() {
        let config = eda_config::ApplyConfig::default().retry;
        let started = tokio::time::Instant::now();
        let mut calls = 0u32;
        let result = with_retry(&config, || {
            calls += 1;
            let down = started.elapsed() < Duration::from_secs(120);
            async move {
                if down {
                    Err(error(ErrorClass::Timeout))
                } else {
                    Ok(())
                }
            }
        })
        .await;
        assert!(result.is_ok(), "dead-lettered after {calls} calls");
        assert!(calls > 8, "{calls} calls: more than the old fixed eight");
    }

    #[tokio::test(start_paused = true)]
    async fn no_attempt_starts_after_the_time_budget() {
        let config = RetryConfig {
            max_attempts: 0,
            base_delay_ms: 100,
            max_delay_ms: 2_000,
            max_elapsed_ms: 30_000,
        };
        let started = tokio::time::Instant::now();
        let mut last_start = Duration::ZERO;
        let result: Result<(), _> = with_retry(&config, || {
            last_start = started.elapsed();
            async { Err(error(ErrorClass::Server)) }
        })
        .await;
        let (_, attempts) = result.expect_err("never succeeds");
        assert!(last_start < Duration::from_secs(30), "{last_start:?}");
        // Full jitter averages half the 2 s ceiling: about 30 attempts in 30 s.
        assert!(attempts > 10, "{attempts} attempts in the budget");
    }

    #[test]
    fn both_limits_zero_retries_forever_and_either_limit_ends_it() {
        let mut config = RetryConfig {
            max_attempts: 0,
            max_elapsed_ms: 0,
            ..RetryConfig::default()
        };
        let long = Duration::from_secs(86_400 * 365);
        assert!(config.allows_another(u32::MAX - 1, long, long));
        config.max_attempts = 3;
        assert!(config.allows_another(2, long, long));
        assert!(!config.allows_another(3, Duration::ZERO, Duration::ZERO));
        config.max_attempts = 0;
        config.max_elapsed_ms = 1_000;
        assert!(config.allows_another(
            1_000,
            Duration::from_millis(500),
            Duration::from_millis(400)
        ));
        assert!(!config.allows_another(1, Duration::from_millis(500), Duration::from_millis(600)));
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
