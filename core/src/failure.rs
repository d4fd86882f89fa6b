//! One vocabulary of failure for all of eda: what kind of failure happened ([`ErrorClass`]) and
//! where in the pipeline a dead letter gave up ([`Stage`]).
//!
//! The ports classify every failed AWS call into an [`ErrorClass`]; the retry loops ask it
//! [`ErrorClass::is_retryable`]; telemetry uses [`ErrorClass::as_str`] as the `error_class` label
//! value; a dead letter records it with its [`Stage`]. One enum, so a retry decision, a metric
//! and a DLQ record can never disagree about what went wrong.

use serde::{Deserialize, Serialize};

/// What kind of failure: a low-cardinality label for metrics, dead letters, SQS attributes and
/// redrive filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The bytes could not be decoded (bad JSON, bad Avro, unknown wire format).
    Decode,
    /// The message's schema is unknown, unreachable or does not match the data.
    Schema,
    /// The event decoded but failed validation (no key, a malformed sequence, a rule).
    Validation,
    /// The service throttled the call.
    Throttled,
    /// The call timed out.
    Timeout,
    /// The connection could not be made or broke.
    Connect,
    /// The service answered with a 5xx.
    Server,
    /// The service refused the request on its merits (a 4xx other than throttling). Dead letters
    /// written before this vocabulary said `apply` or `publish` for it.
    #[serde(alias = "apply", alias = "publish")]
    Client,
    /// The payload exceeds the target's size limit (EventBridge's 256 KB).
    TooLarge,
    /// A circuit breaker refused the call, or no region could take the event. Dead letters written
    /// before this vocabulary said `route` for it.
    #[serde(alias = "route")]
    CircuitOpen,
    /// A bug or a broken invariant inside eda.
    Internal,
    /// A failure nothing above describes (an SDK error of an unknown kind).
    Other,
}

impl ErrorClass {
    /// Every value, for tests and for pre-registering series.
    pub const ALL: &'static [ErrorClass] = &[
        Self::Decode,
        Self::Schema,
        Self::Validation,
        Self::Throttled,
        Self::Timeout,
        Self::Connect,
        Self::Server,
        Self::Client,
        Self::TooLarge,
        Self::CircuitOpen,
        Self::Internal,
        Self::Other,
    ];

    /// The class as a constant label value (the `error_class` label, the `errorClass` SQS
    /// attribute).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Decode => "decode",
            Self::Schema => "schema",
            Self::Validation => "validation",
            Self::Throttled => "throttled",
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Server => "server",
            Self::Client => "client",
            Self::TooLarge => "too_large",
            Self::CircuitOpen => "circuit_open",
            Self::Internal => "internal",
            Self::Other => "other",
        }
    }

    /// Throttling, timeouts, connection failures and 5xx are worth another attempt; anything
    /// refused on its merits (bad input, validation, access, size, a missing resource) is not.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::Throttled | Self::Timeout | Self::Connect | Self::Server
        )
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The pipeline stage that gave up on an event; decides what a redrive replays and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Decoding the Kafka message (the payload is the message's bytes).
    Decode,
    /// Planning the write (the change has no usable key or sequence; the payload is the change).
    Plan,
    /// Writing to DynamoDB (the payload is the change).
    Apply,
    /// Publishing to EventBridge (the payload is the event's detail).
    Publish,
    /// Routing to another region (the payload is an `OwedEvent`: the cross-region envelope and
    /// its target region, which a redrive delivers it to).
    Route,
}

impl Stage {
    /// Every value, for tests.
    pub const ALL: &'static [Stage] = &[
        Self::Decode,
        Self::Plan,
        Self::Apply,
        Self::Publish,
        Self::Route,
    ];

    /// The stage as a constant label value (the `stage` SQS attribute).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Decode => "decode",
            Self::Plan => "plan",
            Self::Apply => "apply",
            Self::Publish => "publish",
            Self::Route => "route",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_what_serde_writes() {
        for class in ErrorClass::ALL {
            let json = serde_json::to_string(class).expect("serializes");
            assert_eq!(json, format!("\"{}\"", class.as_str()));
        }
        for stage in Stage::ALL {
            let json = serde_json::to_string(stage).expect("serializes");
            assert_eq!(json, format!("\"{}\"", stage.as_str()));
        }
    }

    #[test]
    fn dead_letters_of_the_old_vocabulary_still_read() {
        let read = |s: &str| serde_json::from_str::<ErrorClass>(s).expect("reads");
        assert_eq!(read("\"apply\""), ErrorClass::Client);
        assert_eq!(read("\"publish\""), ErrorClass::Client);
        assert_eq!(read("\"route\""), ErrorClass::CircuitOpen);
        assert_eq!(read("\"throttled\""), ErrorClass::Throttled);
    }

    #[test]
    fn only_transient_failures_are_retried() {
        let retryable: Vec<_> = ErrorClass::ALL
            .iter()
            .filter(|c| c.is_retryable())
            .map(|c| c.as_str())
            .collect();
        assert_eq!(retryable, ["throttled", "timeout", "connect", "server"]);
    }
}
