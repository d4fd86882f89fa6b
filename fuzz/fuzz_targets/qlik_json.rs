#![no_main]
//! Arbitrary bytes into the Qlik JSON decoder: it must return an error, never panic. Two inputs
//! are decoded with one metadata cache so a metadata message can shape the next data message.
use eda_actors::core::cdc::{decode_qlik_json, DecodeContext, FallbackKeys, MetadataCache, TableRef};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let table = TableRef::new("dbo", "ORDERS");
    let keys = FallbackKeys::none().with_default(vec!["ID".into()]);
    let ctx = DecodeContext {
        default_table: Some(&table),
        fallback_keys: &keys,
    };
    let mut cache = MetadataCache::new();
    let (first, second) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let _ = decode_qlik_json(first, &ctx, &mut cache, None);
    let _ = decode_qlik_json(second, &ctx, &mut cache, None);
});
