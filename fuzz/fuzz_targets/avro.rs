#![no_main]
//! Arbitrary bytes into the Confluent-framed Avro decoder, both as a whole message (frame
//! checks) and as the body of a message for the Qlik fixture schema (the binary reader).
use std::sync::OnceLock;

use eda_core::cdc::{AvroDecoder, DecodeContext, FallbackKeys, TableRef};

const SCHEMA: &str = include_str!("../../core/tests/fixtures/avro/qlik_data_record.avsc");
/// A recursive schema with arrays and maps, to reach the reader's depth and count limits.
const NESTED: &str = r#"{"type":"record","name":"DataRecord","fields":[
 {"name":"data","type":{"type":"record","name":"Node","fields":[
   {"name":"id","type":"long"},
   {"name":"kids","type":{"type":"array","items":["null","Node"]}},
   {"name":"tags","type":{"type":"map","values":["null","string","bytes","double"]}},
   {"name":"next","type":["null","Node"]}]}},
 {"name":"beforeData","type":["null","Node"]},
 {"name":"headers","type":{"type":"record","name":"Headers","fields":[
   {"name":"operation","type":{"type":"enum","name":"operation","symbols":["INSERT","UPDATE","DELETE","REFRESH"]}},
   {"name":"changeSequence","type":["null","string"]},
   {"name":"timestamp","type":{"type":"long","logicalType":"timestamp-micros"}}]}}]}"#;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let table = TableRef::new("dbo", "ORDERS");
    let keys = FallbackKeys::none().with_default(vec!["ORDER_ID".into()]);
    let ctx = DecodeContext {
        default_table: Some(&table),
        fallback_keys: &keys,
    };
    // Schemas are compiled once, as in the daemon; each input is then only decoded.
    static DECODER: OnceLock<AvroDecoder> = OnceLock::new();
    let decoder = DECODER.get_or_init(|| {
        let mut d = AvroDecoder::new();
        d.insert_schema(1, SCHEMA).expect("fixture schema compiles");
        d.insert_schema(2, NESTED).expect("nested schema compiles");
        d
    });
    let _ = decoder.decode_cached(data, &ctx, None, None);
    for id in [1u32, 2] {
        let mut framed = Vec::with_capacity(data.len() + 5);
        framed.push(0);
        framed.extend_from_slice(&id.to_be_bytes());
        framed.extend_from_slice(data);
        let _ = decoder.decode_cached(&framed, &ctx, None, None);
    }
});
