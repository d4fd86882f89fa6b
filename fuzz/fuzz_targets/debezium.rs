#![no_main]
//! Arbitrary bytes into the Debezium decoder, with and without a message key (the input is split
//! at its first NUL into value and key).
use eda_core::cdc::{decode_debezium, DecodeContext, FallbackKeys};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let keys = FallbackKeys::none().with_default(vec!["id".into()]);
    let ctx = DecodeContext {
        default_table: None,
        fallback_keys: &keys,
    };
    let _ = decode_debezium(data, None, &ctx, None);
    if let Some(i) = data.iter().position(|b| *b == 0) {
        let _ = decode_debezium(&data[..i], Some(&data[i + 1..]), &ctx, None);
    }
});
