use super::*;
use eda_config::{RsaKeyConfig, Secret};
use jsonwebtoken::{EncodingKey, Header as JwtHeader};
use serde_json::json;

const RSA_PRIVATE: &str = include_str!("../../tests/fixtures/jwt_rsa_private.pem");
const RSA_PUBLIC: &str = include_str!("../../tests/fixtures/jwt_rsa_public.pem");
const JWKS: &str = include_str!("../../tests/fixtures/jwt_jwks.json");
const SECRET: &[u8] = b"a-32-byte-hs256-secret-for-tests!";
const NOW: i64 = 1_714_564_800; // 2024-05-01T12:00:00Z
const ISS: &str = "https://auth.example.com/";
const AUD: &str = "eda-api";

fn config() -> JwtConfig {
    JwtConfig {
        issuers: vec![ISS.into()],
        audiences: vec![AUD.into(), "other-api".into()],
        leeway_secs: 30,
        rs256_keys: vec![RsaKeyConfig {
            kid: "rsa-1".into(),
            pem: RSA_PUBLIC.into(),
        }],
        ..JwtConfig::default()
    }
}

fn verifier() -> JwtVerifier {
    JwtVerifier::new(&config(), Some(SECRET)).unwrap()
}

fn claims() -> Value {
    json!({
        "sub": "user-42",
        "iss": ISS,
        "aud": AUD,
        "exp": NOW + 600,
        "nbf": NOW - 10,
        "iat": NOW - 10,
        "roles": ["admin", "reader"],
        "tenant_id": "tenant-7",
    })
}

fn hs256(claims: &Value) -> String {
    jsonwebtoken::encode(
        &JwtHeader::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn rs256(kid: Option<&str>, claims: &Value) -> String {
    let mut header = JwtHeader::new(Algorithm::RS256);
    header.kid = kid.map(str::to_owned);
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// A token with any header, signed with HMAC-SHA256 under `secret`.
fn hmac_token(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let message = format!("{}.{}", b64(header), b64(claims));
    let sig = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(secret),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{message}.{sig}")
}

fn reason(result: Result<Principal, Deny>) -> DenyReason {
    match result {
        Ok(p) => panic!("expected a denial, got {p:?}"),
        Err(d) => d.reason,
    }
}

#[test]
fn a_valid_hs256_token_yields_the_principal() {
    let p = verifier().verify(&hs256(&claims()), NOW).unwrap();
    assert_eq!(p.user_id, "user-42");
    assert_eq!(p.roles, ["admin", "reader"]);
    assert_eq!(p.tenant_id.as_deref(), Some("tenant-7"));
    assert_eq!(p.claims["iat"], NOW - 10);
}

#[test]
fn a_valid_rs256_token_is_allowed_with_or_without_kid() {
    let v = verifier();
    assert_eq!(
        v.verify(&rs256(Some("rsa-1"), &claims()), NOW)
            .unwrap()
            .user_id,
        "user-42"
    );
    // One RSA key: a token without kid is unambiguous.
    assert!(v.verify(&rs256(None, &claims()), NOW).is_ok());
}

#[test]
fn configured_claim_names_and_space_separated_roles() {
    let cfg = JwtConfig {
        user_claim: "email".into(),
        roles_claim: "scope".into(),
        tenant_claim: "org".into(),
        ..config()
    };
    let v = JwtVerifier::new(&cfg, Some(SECRET)).unwrap();
    let mut c = claims();
    c["email"] = json!("a@example.com");
    c["scope"] = json!("orders:read  orders:write");
    c["org"] = json!(17);
    let p = v.verify(&hs256(&c), NOW).unwrap();
    assert_eq!(p.user_id, "a@example.com");
    assert_eq!(p.roles, ["orders:read", "orders:write"]);
    assert_eq!(p.tenant_id.as_deref(), Some("17"));
}

#[test]
fn the_inline_secret_is_used_when_none_is_fetched() {
    let cfg = JwtConfig {
        hs256_secret: Some(Secret::new(String::from_utf8(SECRET.to_vec()).unwrap())),
        ..config()
    };
    let v = JwtVerifier::new(&cfg, None).unwrap();
    assert!(v.verify(&hs256(&claims()), NOW).is_ok());
}

#[test]
fn expiry_and_not_before_respect_the_leeway() {
    let v = verifier();
    let mut c = claims();
    c["exp"] = json!(NOW - 20); // expired, but within the 30 s leeway
    assert!(v.verify(&hs256(&c), NOW).is_ok());
    c["exp"] = json!(NOW - 31);
    assert_eq!(reason(v.verify(&hs256(&c), NOW)), DenyReason::Expired);

    let mut c = claims();
    c["nbf"] = json!(NOW + 25); // early, but within the leeway
    assert!(v.verify(&hs256(&c), NOW).is_ok());
    c["nbf"] = json!(NOW + 120);
    assert_eq!(reason(v.verify(&hs256(&c), NOW)), DenyReason::NotYetValid);

    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(reason(v.verify(&hs256(&c), NOW)), DenyReason::Malformed);
    c["exp"] = json!("tomorrow");
    assert_eq!(reason(v.verify(&hs256(&c), NOW)), DenyReason::Malformed);
}

#[test]
fn issuer_and_audience_are_checked() {
    let v = verifier();
    let mut c = claims();
    c["iss"] = json!("https://evil.example.com/");
    assert_eq!(reason(v.verify(&hs256(&c), NOW)), DenyReason::WrongIssuer);
    c.as_object_mut().unwrap().remove("iss");
    assert_eq!(reason(v.verify(&hs256(&c), NOW)), DenyReason::WrongIssuer);

    let mut c = claims();
    c["aud"] = json!("someone-else");
    assert_eq!(reason(v.verify(&hs256(&c), NOW)), DenyReason::WrongAudience);
    c["aud"] = json!(["x", "other-api"]);
    assert!(
        v.verify(&hs256(&c), NOW).is_ok(),
        "one accepted audience is enough"
    );
    c.as_object_mut().unwrap().remove("aud");
    assert_eq!(reason(v.verify(&hs256(&c), NOW)), DenyReason::WrongAudience);
}

#[test]
fn empty_issuers_or_audiences_deny_unless_the_opt_out_says_otherwise() {
    let mut stranger = claims();
    stranger["iss"] = json!("https://evil.example.com/");
    stranger["aud"] = json!("someone-else");
    let token = hs256(&stranger);
    let no_issuers = JwtConfig {
        issuers: Vec::new(),
        ..config()
    };
    let v = JwtVerifier::new(&no_issuers, Some(SECRET)).unwrap();
    assert_eq!(
        reason(v.verify(&hs256(&claims()), NOW)),
        DenyReason::WrongIssuer
    );
    let no_audiences = JwtConfig {
        audiences: Vec::new(),
        ..config()
    };
    let v = JwtVerifier::new(&no_audiences, Some(SECRET)).unwrap();
    assert_eq!(
        reason(v.verify(&hs256(&claims()), NOW)),
        DenyReason::WrongAudience
    );

    let any = JwtConfig {
        issuers: Vec::new(),
        audiences: Vec::new(),
        insecure_accept_any_issuer_and_audience: true,
        ..config()
    };
    let v = JwtVerifier::new(&any, Some(SECRET)).unwrap();
    assert!(v.verify(&token, NOW).is_ok());
    // The opt-out leaves a configured list in force.
    let issuer_only = JwtConfig {
        audiences: Vec::new(),
        insecure_accept_any_issuer_and_audience: true,
        ..config()
    };
    let v = JwtVerifier::new(&issuer_only, Some(SECRET)).unwrap();
    assert_eq!(reason(v.verify(&token, NOW)), DenyReason::WrongIssuer);
    let mut right_issuer = stranger.clone();
    right_issuer["iss"] = json!(ISS);
    assert!(v.verify(&hs256(&right_issuer), NOW).is_ok());
}

#[test]
fn alg_none_and_unknown_algorithms_are_denied() {
    let v = verifier();
    for alg in ["none", "None", "NONE", "HS512", "RS512", "ES256", "PS256"] {
        let unsigned = format!(
            "{}.{}.",
            b64(&json!({"alg": alg, "typ": "JWT"})),
            b64(&claims())
        );
        assert_eq!(
            reason(v.verify(&unsigned, NOW)),
            DenyReason::AlgorithmNotAllowed,
            "{alg}"
        );
    }
}

#[test]
fn hs_rs_confusion_is_denied() {
    // The classic attack: HS256 "signed" with the RSA public key as the HMAC secret.
    let v = verifier();
    let named = hmac_token(
        &json!({"alg": "HS256", "kid": "rsa-1"}),
        &claims(),
        RSA_PUBLIC.as_bytes(),
    );
    assert_eq!(
        reason(v.verify(&named, NOW)),
        DenyReason::AlgorithmNotAllowed
    );

    let unnamed = hmac_token(&json!({"alg": "HS256"}), &claims(), RSA_PUBLIC.as_bytes());
    assert_eq!(reason(v.verify(&unnamed, NOW)), DenyReason::BadSignature);

    // With no HS256 secret at all, there is no key to try.
    let rsa_only = JwtVerifier::new(&config(), None).unwrap();
    assert_eq!(reason(rsa_only.verify(&unnamed, NOW)), DenyReason::NoKey);

    // And an RS256 header over an HMAC signature fails RSA verification.
    let forged = hmac_token(&json!({"alg": "RS256", "kid": "rsa-1"}), &claims(), SECRET);
    assert_eq!(reason(v.verify(&forged, NOW)), DenyReason::BadSignature);
}

#[test]
fn a_tampered_payload_fails_the_signature() {
    let v = verifier();
    for token in [hs256(&claims()), rs256(Some("rsa-1"), &claims())] {
        let parts: Vec<&str> = token.split('.').collect();
        let mut c = claims();
        c["roles"] = json!(["superuser"]);
        let tampered = format!("{}.{}.{}", parts[0], b64(&c), parts[2]);
        assert_eq!(reason(v.verify(&tampered, NOW)), DenyReason::BadSignature);
    }
}

#[test]
fn unknown_kid_and_missing_keys() {
    let v = verifier();
    assert_eq!(
        reason(v.verify(&rs256(Some("rotated-away"), &claims()), NOW)),
        DenyReason::UnknownKid
    );
    let hs_only = JwtVerifier::new(
        &JwtConfig {
            rs256_keys: Vec::new(),
            ..config()
        },
        Some(SECRET),
    )
    .unwrap();
    assert_eq!(
        reason(hs_only.verify(&rs256(Some("rsa-1"), &claims()), NOW)),
        DenyReason::NoKey
    );
}

#[test]
fn garbage_is_malformed() {
    let v = verifier();
    let valid = hs256(&claims());
    let cases = [
        String::new(),
        "garbage".into(),
        "a.b".into(),
        "a.b.c.d".into(),
        "!!!.???.***".into(),
        format!("{}.{}", valid, "extra"),
        format!("{}.{}.", b64(&json!([1, 2])), b64(&claims())),
        format!(
            "{}.{}.x",
            b64(&json!({"alg": "HS256", "crit": ["exp"]})),
            b64(&claims())
        ),
        "x".repeat(MAX_TOKEN_BYTES + 1),
    ];
    for token in cases {
        assert_eq!(
            reason(v.verify(&token, NOW)),
            DenyReason::Malformed,
            "{:.60}",
            token
        );
    }
    // Claims are only read behind a valid signature: not JSON, or not an object.
    let array_claims = hmac_token(&json!({"alg": "HS256"}), &json!([1]), SECRET);
    assert_eq!(reason(v.verify(&array_claims, NOW)), DenyReason::Malformed);
    let message = format!("{}.bm90IGpzb24", b64(&json!({"alg": "HS256"})));
    let sig = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(SECRET),
        Algorithm::HS256,
    )
    .unwrap();
    let not_json = format!("{message}.{sig}");
    assert_eq!(reason(v.verify(&not_json, NOW)), DenyReason::Malformed);
    // ... while a forged token with junk claims is a signature failure first.
    let forged = format!("{message}.c2ln");
    assert_eq!(reason(v.verify(&forged, NOW)), DenyReason::BadSignature);
}

#[test]
fn jwks_keys_verify_and_are_replaced_on_refresh() {
    let mut v = JwtVerifier::new(
        &JwtConfig {
            rs256_keys: Vec::new(),
            ..config()
        },
        None,
    )
    .unwrap();
    assert_eq!(v.add_jwks(JWKS).unwrap(), 1, "the EC key is skipped");
    let token = rs256(Some("jwks-key-1"), &claims());
    assert!(v.verify(&token, NOW).is_ok());

    let rotated = JWKS.replace("jwks-key-1", "jwks-key-2");
    assert_eq!(v.replace_jwks(&rotated).unwrap(), 1);
    assert_eq!(reason(v.verify(&token, NOW)), DenyReason::UnknownKid);
    assert!(v.verify(&rs256(Some("jwks-key-2"), &claims()), NOW).is_ok());

    // A bad refresh keeps the current keys.
    assert!(v.replace_jwks("{\"keys\": 3}").is_err());
    assert!(v.verify(&rs256(Some("jwks-key-2"), &claims()), NOW).is_ok());
}

#[test]
fn jwks_cannot_shadow_a_configured_key_or_bring_weak_ones() {
    let mut v = verifier();
    let clash = JWKS.replace("jwks-key-1", "rsa-1");
    assert!(matches!(
        v.add_jwks(&clash),
        Err(JwtSetupError::DuplicateKid { .. })
    ));
    assert!(matches!(
        v.replace_jwks(&clash),
        Err(JwtSetupError::DuplicateKid { .. })
    ));
    let weak = json!({"keys": [{"kty": "RSA", "kid": "weak", "n": "AQAB", "e": "AQAB"}]});
    assert!(matches!(
        v.add_jwks(&weak.to_string()),
        Err(JwtSetupError::InvalidJwk { .. })
    ));
    // Still two kids: rsa-1 from config, nothing from the rejected documents.
    assert_eq!(v.keys.rsa.len(), 1);
}

#[test]
fn setup_rejects_bad_keys() {
    let cfg = JwtConfig {
        rs256_keys: vec![RsaKeyConfig {
            kid: "k".into(),
            pem: "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n".into(),
        }],
        ..config()
    };
    let err = JwtVerifier::new(&cfg, None).unwrap_err();
    assert!(err.to_string().contains("\"k\""), "{err}");
    assert!(matches!(
        JwtVerifier::new(&config(), Some(b"")),
        Err(JwtSetupError::EmptySecret)
    ));
}

#[test]
fn several_rsa_keys_require_a_kid() {
    let mut cfg = config();
    cfg.rs256_keys.push(RsaKeyConfig {
        kid: "rsa-2".into(),
        pem: RSA_PUBLIC.into(),
    });
    let v = JwtVerifier::new(&cfg, None).unwrap();
    assert_eq!(
        reason(v.verify(&rs256(None, &claims()), NOW)),
        DenyReason::UnknownKid
    );
    assert!(v.verify(&rs256(Some("rsa-2"), &claims()), NOW).is_ok());
}

#[test]
fn deny_reasons_have_stable_labels() {
    assert_eq!(
        DenyReason::AlgorithmNotAllowed.as_str(),
        "algorithm_not_allowed"
    );
    assert_eq!(
        serde_json::to_value(DenyReason::NotYetValid).unwrap(),
        "not_yet_valid"
    );
}
