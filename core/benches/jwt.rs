//! JWT authorizer cost: verify a token and build the REST API IAM policy, for HS256 and RS256.
//!
//! Targets: HS256 verify + policy ≤ 20 µs, RS256 ≤ 100 µs (the seed allowed 10 ms).

// The daemon's and the Lambda binaries' allocator, so the figures are theirs.
#[global_allocator]
static ALLOC: eda_core::alloc::Mimalloc = eda_core::alloc::Mimalloc;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use eda_config::{JwtConfig, RsaKeyConfig};
use eda_core::jwt::{rest_policy, JwtVerifier, ResourceScope};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

const RSA_PRIVATE: &str = include_str!("../tests/fixtures/jwt_rsa_private.pem");
const RSA_PUBLIC: &str = include_str!("../tests/fixtures/jwt_rsa_public.pem");
const SECRET: &[u8] = b"a-32-byte-hs256-secret-for-bench";
const NOW: i64 = 1_714_564_800;
const ARN: &str = "arn:aws:execute-api:us-west-2:123456789012:abc123/prod/GET/orders/42";

fn bench(c: &mut Criterion) {
    let cfg = JwtConfig {
        issuers: vec!["https://auth.example.com/".into()],
        audiences: vec!["eda-api".into()],
        rs256_keys: vec![RsaKeyConfig {
            kid: "rsa-1".into(),
            pem: RSA_PUBLIC.into(),
        }],
        ..JwtConfig::default()
    };
    let verifier = JwtVerifier::new(&cfg, Some(SECRET)).expect("verifier");
    let claims = json!({
        "sub": "user-42", "iss": "https://auth.example.com/", "aud": "eda-api",
        "exp": NOW + 600, "nbf": NOW - 10, "iat": NOW - 10,
        "roles": ["admin", "reader"], "tenant_id": "tenant-7",
    });
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .expect("hs256 token");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    let rs = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).expect("rsa key"),
    )
    .expect("rs256 token");

    let mut group = c.benchmark_group("jwt");
    for (name, token) in [("hs256_verify_policy", &hs), ("rs256_verify_policy", &rs)] {
        assert!(verifier.verify(token, NOW).is_ok(), "{name} must verify");
        group.bench_function(name, |b| {
            b.iter(|| {
                let outcome = verifier.verify(black_box(token), NOW);
                let policy = rest_policy(&outcome, ARN, ResourceScope::Stage);
                black_box(serde_json::to_vec(&policy).expect("policy json"))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
