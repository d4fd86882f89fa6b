//! The pure core's integration tests: the decoders against fixture files in the documented shapes,
//! and the path from decoded events to the simulated table. One binary for the crate.

mod avro_support;
mod cdc_fixtures;
