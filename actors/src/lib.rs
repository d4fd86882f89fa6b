//! The logic of eda, shared by the daemon and the Lambda shims.
//!
//! # Layout
//!
//! - [`core`]: plain synchronous Rust with no tokio, AWS SDK or rdkafka types — CDC decoding,
//!   the apply plan, the transformer, the circuit breaker, the cross-region envelope, JWT checks,
//!   health aggregation and the dead-letter record. Both shapes of eda call it, and most tests
//!   live there.
//! - [`aws`]: the AWS SDK clients of each region, built once from the configuration.

pub mod aws;
pub mod core;
