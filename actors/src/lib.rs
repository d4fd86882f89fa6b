//! The logic of eda, shared by the daemon and the Lambda shims.
//!
//! # Layout
//!
//! - [`core`]: plain synchronous Rust with no tokio, AWS SDK or rdkafka types — CDC decoding,
//!   the apply plan, the transformer, the circuit breaker, the cross-region envelope, JWT checks,
//!   health aggregation and the dead-letter record. Both shapes of eda call it, and most tests
//!   live there.
//! - [`pipeline`]: the daemon's supervision tree, assembled from the configuration. Its actors,
//!   one per file: [`consumer_group`], [`partition_consumer`] (with [`message_decoder`]),
//!   [`cdc_applier`], [`eventbridge_publisher`], [`dlq_writer`]; [`ack`] is how they tell each
//!   other that a message's effects are settled; [`region_router`] (one per region, each owning
//!   its circuit breaker) carries replicated events across regions with failover, and
//!   [`health_prober`] (one per region) probes the region's services and feeds its router.
//! - [`aws`]: the AWS SDK clients of each region, built once from the configuration.
//! - [`telemetry`]: the metrics registry, the internal events that log and count, and the
//!   readiness and liveness state behind `/readyz` and `/healthz`.
//! - [`supervisor`]: the restart building block every supervising actor embeds, and the generic
//!   [`Supervisor`](supervisor::Supervisor) actor the root of the tree is made of.
//! - [`schema_registry`]: the Confluent Schema Registry client, with a cache by schema id.
//! - [`redrive`]: replays the dead-letter queue through the same actors.
//! - [`ports`]: one small trait per outbound capability (`ItemWriter`, `EventPublisher`,
//!   `DeadLetterSink`); [`aws`] holds their SDK adapters.
//! - [`retry`]: exponential backoff with full jitter around those calls.
//! - [`jwt_keys`]: loads the authorizer's keys (Secrets Manager, JWKS) into the core verifier.
//! - [`alloc`]: the global allocator of every eda binary (mimalloc).

pub mod ack;
pub mod alloc;
pub mod aws;
pub mod cdc_applier;
pub mod consumer_group;
pub mod core;
pub mod dlq_writer;
pub mod eventbridge_publisher;
pub mod health_prober;
pub mod jwt_keys;
pub mod message_decoder;
pub mod partition_consumer;
pub mod pipeline;
pub mod ports;
pub mod redrive;
pub mod region_router;
pub mod retry;
pub mod schema_registry;
pub mod supervisor;
pub mod telemetry;
