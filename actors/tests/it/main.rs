//! One integration-test binary for eda-actors: fixtures in the documented shapes, real actors,
//! and real servers on loopback. Each module covers one area.

mod avro_support;
mod cdc_fixtures;
mod schema_registry;
mod supervisor;
