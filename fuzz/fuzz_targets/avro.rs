#![no_main]
//! (to be written)
libfuzzer_sys::fuzz_target!(|_data: &[u8]| {});
