//! The actors of eda (ractor on tokio), shared by the daemon and the Lambda shims: they move
//! messages and call AWS; every decision they act on comes from the pure core, the crate
//! [`eda_core`] (which cannot import tokio, the AWS SDK, rdkafka or ractor).
//!
//! # Layout
//!
//! - [`pipeline`]: the daemon's supervision tree, assembled from the configuration. Its actors,
//!   one per file: the Kafka side under [`kafka`] (the consumer group, a partition consumer per
//!   partition, the decoder and the Schema Registry client), [`cdc_applier`],
//!   [`eventbridge_publisher`], [`dlq_writer`]; [`ack`] is how they tell each other that a
//!   message's effects are settled; [`region_router`] (one per region, each owning its circuit
//!   breaker) carries replicated events across regions with failover, and [`health_prober`] (one
//!   per region) probes the region's services and feeds its router.
//! - [`aws`]: the AWS SDK clients of each region, built once from the configuration.
//! - [`telemetry`]: the metrics registry, the internal events that log and count, and the
//!   readiness and liveness state behind `/readyz` and `/healthz`.
//! - [`supervisor`]: the restart building block every supervising actor embeds, and the generic
//!   [`Supervisor`](supervisor::Supervisor) actor the root of the tree is made of.
//! - [`redrive`]: replays the dead-letter queue through the same actors.
//! - [`replay`]: re-runs a window of a topic (from a time or offsets): moves the group's offsets,
//!   or runs a bounded one-off pass of the pipeline under its own group.
//! - [`ports`]: one small trait per outbound capability (`ItemWriter`, `EventPublisher`,
//!   `DeadLetterSink`); [`aws`] holds their SDK adapters.
//! - [`settings`]: the configuration mapped to the settings each actor is built with.
//! - [`retry`]: exponential backoff with full jitter around those calls.
//! - [`jwt_keys`]: loads the authorizer's keys (Secrets Manager, JWKS) into the core verifier.

pub mod ack;
pub mod aws;
pub mod cdc_applier;
pub mod dlq_writer;
pub mod eventbridge_publisher;
pub mod health_prober;
pub mod jwt_keys;
pub mod kafka;
pub mod pipeline;
pub mod ports;
pub mod redrive;
pub mod region_router;
pub mod replay;
pub mod retry;
pub mod settings;
pub mod supervisor;
pub mod telemetry;
