//! What the sink does to a call before it answers: wait a while (`--latency-ms`), and sometimes
//! refuse it as the service would when it throttles (`--throttle-rate`) or fails (`--error-rate`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How long the sink waits before answering a call, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    /// The same wait for every call (`2`, `0.5`; `0` answers at once).
    Fixed(f64),
    /// Uniformly spread between two bounds (`uniform:1..5`).
    Uniform(f64, f64),
    /// Exponentially spread around a mean (`exp:2`): mostly short, with a long tail.
    Exponential(f64),
}

impl Default for Latency {
    fn default() -> Self {
        Latency::Fixed(0.0)
    }
}

impl Latency {
    /// One call's wait; `None` when there is nothing to wait for.
    pub fn sample(&self) -> Option<Duration> {
        let ms = match *self {
            Latency::Fixed(ms) => ms,
            Latency::Uniform(low, high) => low + fastrand::f64() * (high - low),
            // Inverse transform; 1 - u is in (0, 1], so the log is finite.
            Latency::Exponential(mean) => -mean * (1.0 - fastrand::f64()).ln(),
        };
        (ms > 0.0).then(|| Duration::from_secs_f64(ms / 1000.0))
    }
}

/// A latency the command line could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyError(String);

impl fmt::Display for LatencyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "latency {:?}: expected milliseconds (`2`), `uniform:LOW..HIGH` or `exp:MEAN`, all \
             finite and not negative",
            self.0
        )
    }
}

impl std::error::Error for LatencyError {}

impl FromStr for Latency {
    type Err = LatencyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || LatencyError(text.to_string());
        let number = |s: &str| {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(bad)
        };
        if let Some(range) = text.strip_prefix("uniform:") {
            let (low, high) = range.split_once("..").ok_or_else(bad)?;
            let (low, high) = (number(low)?, number(high)?);
            if low > high {
                return Err(bad());
            }
            Ok(Latency::Uniform(low, high))
        } else if let Some(mean) = text.strip_prefix("exp:") {
            Ok(Latency::Exponential(number(mean)?))
        } else {
            Ok(Latency::Fixed(number(text)?))
        }
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Latency::Fixed(ms) => write!(f, "{ms}"),
            Latency::Uniform(low, high) => write!(f, "uniform:{low}..{high}"),
            Latency::Exponential(mean) => write!(f, "exp:{mean}"),
        }
    }
}

/// A share of calls, between 0 and 1, read from the command line.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| format!("{text:?}: expected a fraction of calls between 0 and 1"))
}

/// The fault a call draws, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answered with the service's throttling error (HTTP 400), the work not done.
    Throttle,
    /// Answered with HTTP 500, the work not done.
    ServerError,
}

/// Draws the fault of one call: throttling with probability `throttle_rate`, else a server
/// error with probability `error_rate`.
pub fn draw(throttle_rate: f64, error_rate: f64) -> Option<Fault> {
    if throttle_rate > 0.0 && fastrand::f64() < throttle_rate {
        Some(Fault::Throttle)
    } else if error_rate > 0.0 && fastrand::f64() < error_rate {
        Some(Fault::ServerError)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_read_back_as_written() {
        for text in ["0", "1.5", "uniform:1..5", "exp:2"] {
            let latency: Latency = text.parse().expect(text);
            assert_eq!(latency.to_string(), text);
        }
        assert_eq!(Latency::Fixed(0.0).sample(), None);
        assert_eq!(
            "3".parse::<Latency>().unwrap().sample(),
            Some(Duration::from_millis(3))
        );
    }

    #[test]
    fn a_bad_latency_says_what_is_expected() {
        for text in ["", "-1", "uniform:5..1", "uniform:1-5", "exp:x", "NaN"] {
            let err = text.parse::<Latency>().expect_err(text);
            assert!(err.to_string().contains("uniform:LOW..HIGH"), "{err}");
        }
        assert!(parse_rate("1.5").is_err());
        assert_eq!(parse_rate("0.25"), Ok(0.25));
    }

    #[test]
    fn samples_stay_within_their_distribution() {
        let uniform = Latency::Uniform(1.0, 5.0);
        for _ in 0..1000 {
            let ms = uniform.sample().unwrap().as_secs_f64() * 1000.0;
            assert!((1.0..=5.0).contains(&ms), "{ms}");
        }
        let exp = Latency::Exponential(2.0);
        let mean: f64 = (0..20_000)
            .map(|_| exp.sample().map_or(0.0, |d| d.as_secs_f64() * 1000.0))
            .sum::<f64>()
            / 20_000.0;
        assert!((1.8..2.2).contains(&mean), "mean {mean}");
        assert_eq!(draw(0.0, 0.0), None);
        assert_eq!(draw(1.0, 0.0), Some(Fault::Throttle));
        assert_eq!(draw(0.0, 1.0), Some(Fault::ServerError));
    }
}
