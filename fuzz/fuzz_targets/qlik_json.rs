#![no_main]
//! Arbitrary bytes into the Qlik JSON decoder: it must return an error, never panic. Two inputs
//! are decoded with one metadata cache so a metadata message can shape the next data message.
//!
//! The decoder reads JSON with its own strict scanner, so each input is also checked against
//! serde_json: the decoder never accepts what serde_json refuses as JSON, and it reports a syntax
//! error only for text serde_json refuses too, or for the two things it refuses beyond plain
//! grammar (a message that is not an object, a repeated envelope field, a string a
//! Rust `String` cannot hold).
use eda_core::cdc::{
    decode_qlik_json, DecodeContext, FallbackKeys, MetadataCache, QlikJsonError, QlikMessage,
    TableRef,
};

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
    for input in [first, second] {
        let outcome = decode_qlik_json(input, &ctx, &cache, None);
        // UTF-8 first: serde_json skips an ignored string's bytes without checking them.
        let text = std::str::from_utf8(input).ok();
        let json = text.is_some_and(|t| serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok());
        match &outcome {
            Ok(_) => assert!(json, "accepted what serde_json refuses: {outcome:?}"),
            Err(QlikJsonError::Syntax { message, .. }) if json => {
                let beyond_grammar = message.starts_with("duplicate field")
                    || message.starts_with("expected a JSON object")
                    || (message.starts_with("invalid escape")
                        && text.is_some_and(|t| serde_json::from_str::<serde_json::Value>(t).is_err()));
                assert!(beyond_grammar, "refused JSON serde_json reads: {message}");
            }
            Err(_) => {}
        }
        if let Ok(QlikMessage::Metadata(meta)) = outcome {
            cache.insert(meta);
        }
    }
});
