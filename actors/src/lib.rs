//! The logic of eda, shared by the daemon and the Lambda shims.
//!
//! # Layout
//!
//! - [`core`]: plain synchronous Rust with no tokio, AWS SDK or rdkafka types — CDC decoding,
//!   the apply plan, the transformer, the circuit breaker, the cross-region envelope, JWT checks,
//!   health aggregation and the dead-letter record. Both shapes of eda call it, and most tests
//!   live there.
//! - [`aws`]: the AWS SDK clients of each region, built once from the configuration.
//! - [`telemetry`]: the metrics registry, the internal events that log and count, and the
//!   readiness and liveness state behind `/readyz` and `/healthz`.
//! - [`supervisor`]: the restart building block every supervising actor embeds, and the generic
//!   [`Supervisor`](supervisor::Supervisor) actor the root of the tree is made of.
//! - [`schema_registry`]: the Confluent Schema Registry client, with a cache by schema id.
//! - [`jwt_keys`]: loads the authorizer's keys (Secrets Manager, JWKS) into the core verifier.

pub mod aws;
pub mod core;
pub mod jwt_keys;
pub mod schema_registry;
pub mod supervisor;
pub mod telemetry;
