//! eda's test kit: what the integration tests of the daemon (`daemon/tests/it`) and of the Lambda
//! shims (`lambda-shims/tests/it`) share, so that each helper exists once and the next pipeline
//! test is one call to [`scenario()`]. A dev-only crate: it is only ever a `[dev-dependencies]`
//! entry, and nothing that ships links it.
//!
//! Everything here works against the local stack (`deploy/local/stack.sh`): a Kafka-API broker,
//! DynamoDB Local and the AWS stand-in (ministack) on 127.0.0.1, reached through `config/local.toml`. Every resource a
//! test creates is named uniquely, so tests running in parallel never see each other's items,
//! events or offsets.
//!
//! # Layout
//!
//! - [`broker`]: a private Kafka-API broker for one test, to freeze or cut off without touching
//!   the shared one.
//! - [`local`]: the stack's addresses, the shipped local configuration, unique names and test
//!   logs.
//! - [`queue`]: an SQS queue a test reads: draining it, finding marked events, its depth.
//! - [`events`]: the event ids a history owes, to name the changes whose events are missing.
//! - [`bus`]: EventBridge buses with an inspection queue that receives a copy of every event.
//! - [`table`]: a per-test CDC table, its items, and how they differ from a history's last
//!   images; and a per-test table of Qlik table structures.
//! - [`topic`]: fresh topics, and how far a consumer group got on one.
//! - [`sinks`]: one test's tables, bus and dead-letter queue together, the configuration that
//!   points a pipeline at them, and why a table differs.
//! - [`chaos`]: the chaos suite's verdict on a scenario (table, events, dead letters, commits)
//!   and the row `make chaos` prints.
//! - [`scenario`](mod@scenario): a history on a fresh topic through a pipeline into those sinks
//!   — [`scenario()`] in one call, or [`Scenario`]'s steps for a test that acts mid-run.

pub mod broker;
pub mod bus;
pub mod chaos;
pub mod events;
pub mod local;
pub mod queue;
pub mod scenario;
pub mod sinks;
pub mod table;
pub mod topic;

pub use broker::PrivateBroker;
pub use bus::{envelope_of, inspected_bus, Inspector};
pub use local::{free_port, init_logs, local_config, local_config_path, unique};
pub use queue::{is_health_event, Queue};
pub use scenario::{scenario, Run, Scenario, Settled};
pub use sinks::Sinks;
pub use table::Table;
