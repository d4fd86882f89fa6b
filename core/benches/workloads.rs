//! The workloads of the `pipeline` and `decode` benches, shared with `make bench-ir`
//! (`core/examples/instructions.rs`), so that the time and the instruction count are figures
//! of the same work. Each bench is its own crate: they include this file with `#[path]`.

// Each includer uses part of it.
#![allow(dead_code)]

use std::sync::Arc;

use eda_config::TransformerConfig;
use eda_core::cdc::{AvroDecoder, DecodeContext, FallbackKeys, TableRef};
use eda_core::transform::Transformer;

#[path = "../tests/it/avro_support.rs"]
pub mod avro_support;

/// A Qlik Replicate UPDATE of an 18-column order row, both images (1364 bytes).
pub const QLIK_UPDATE: &[u8] = include_bytes!("../tests/fixtures/qlik/bench_update_1kb.json");

/// A source table and the key columns configuration gives (`ORDER_ID`, `REGION`), which a
/// decoder borrows through [`Source::ctx`].
pub struct Source {
    table: TableRef,
    keys: FallbackKeys,
}

impl Source {
    pub fn new(schema: &str, table: &str) -> Source {
        Source {
            table: TableRef::new(schema, table),
            keys: FallbackKeys::none().with_default(vec!["ORDER_ID".into(), "REGION".into()]),
        }
    }

    /// What a decoder is given: this table for messages that name none, and these keys.
    pub fn ctx(&self) -> DecodeContext<'_> {
        DecodeContext {
            default_table: Some(&self.table),
            fallback_keys: &self.keys,
        }
    }
}

/// The `pipeline` bench's transformer (the order's e-mail checked and normalized) and the one
/// region name every event shares, as the daemon holds it.
pub fn pipeline_transformer() -> (Transformer, Arc<str>) {
    let config = TransformerConfig {
        // The fixture's change is from 2023; the bound is not what is measured here.
        max_age_secs: 100 * 366 * 24 * 3600,
        email_fields: vec!["payload.after.CUSTOMER_EMAIL".into()],
        ..TransformerConfig::default()
    };
    let transformer = Transformer::new(&config, "us-west-2").expect("transformer");
    (transformer, "us-west-2".into())
}

/// An Avro UPDATE in the Confluent wire format (schema id 1) and a decoder with that schema
/// already cached.
pub fn avro_cached() -> (Vec<u8>, AvroDecoder) {
    let bytes = avro_support::update_message(1, "20230911032410000000000000000000017");
    let mut decoder = AvroDecoder::new();
    decoder
        .insert_schema(1, avro_support::SCHEMA)
        .expect("fixture schema compiles");
    (bytes, decoder)
}
