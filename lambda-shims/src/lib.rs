//! The five Lambda entry points of eda, as thin shims over the same actors and core the daemon
//! runs: each builds its SDK clients and starts its actors once, at cold start, keeps them across
//! warm invocations, and turns the Lambda event into their messages. No logic of its own beyond
//! that conversion.
//!
//! # Layout
//!
//! - [`cold_start`]: the configuration (defaults, optional `CONFIG_FILE`, `EDA_` environment),
//!   logging, and [`run`], which hands a [`Shim`] to the Lambda runtime.
//! - [`publishing`]: one region's `EventBridgePublisher` + `DlqWriter` actor pair, the two
//!   `RegionRouter`s (started by the daemon's own start function, one breaker per region), and
//!   waiting on the `Ack` that says a batch is published, routed or dead-lettered.
//! - One module per function, each with its state (built once) and its handler:
//!   [`authorizer`], [`stream_processor`], [`event_transformer`], [`health_checker`],
//!   [`event_router`]. The binaries under `src/bin/` only call [`cold_start::run`].

/// The daemon's allocator, for every binary built on this crate (the five functions and their
/// tests): the same allocation costs in both shapes.
#[global_allocator]
static ALLOC: eda_core::alloc::Mimalloc = eda_core::alloc::Mimalloc;

pub mod authorizer;
pub mod cold_start;
pub mod event_router;
pub mod event_transformer;
pub mod health_checker;
pub mod publishing;
pub mod stream_processor;

pub use cold_start::{run, Shim};

/// The error a handler returns to the runtime (which reports it as the invocation's failure).
pub type Error = lambda_runtime::Error;
