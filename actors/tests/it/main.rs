//! Integration tests of eda-actors, one binary; each module covers one area.

mod avro_support;
mod cdc_fixtures;
