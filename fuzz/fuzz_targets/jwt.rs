#![no_main]
//! Arbitrary bytes as a bearer token into a verifier holding both an HS256 secret and an RSA key:
//! it must deny (or, for a real signature, allow) without panicking, whatever the input.

use std::sync::OnceLock;

use eda_core::jwt::{rest_policy, JwtVerifier, ResourceScope};
use eda_config::{JwtConfig, RsaKeyConfig};

const RSA_PUBLIC: &str = include_str!("../../core/tests/fixtures/jwt_rsa_public.pem");
const NOW: i64 = 1_714_564_800;

fn verifier() -> &'static JwtVerifier {
    static VERIFIER: OnceLock<JwtVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let cfg = JwtConfig {
            issuers: vec!["https://auth.example.com/".into()],
            audiences: vec!["eda-api".into()],
            rs256_keys: vec![RsaKeyConfig {
                kid: "rsa-1".into(),
                pem: RSA_PUBLIC.into(),
            }],
            ..JwtConfig::default()
        };
        JwtVerifier::new(&cfg, Some(b"fuzz-hs256-secret")).expect("fuzz verifier")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    let outcome = verifier().verify(&token, NOW);
    let _ = rest_policy(
        &outcome,
        "arn:aws:execute-api:us-west-2:123456789012:abc123/prod/GET/x",
        ResourceScope::Stage,
    );
    let _ = eda_core::jwt::bearer_token(&token);
});
