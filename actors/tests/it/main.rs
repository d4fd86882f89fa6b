//! One integration-test binary for eda-actors: real actors, and real servers on loopback.

mod schema_registry;
mod supervisor;
