//! `eda-daemon check-config`: what an operator sees.

use eda_testkit::{local_config_path, unique};
use std::process::Command;

fn check_config(envs: &[(&str, &str)], config: &std::path::Path) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eda-daemon"));
    cmd.arg("check-config").arg("--config").arg(config);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("eda-daemon runs")
}

#[test]
fn environment_override_shows_in_the_effective_configuration() {
    let out = check_config(&[("EDA_KAFKA__BROKERS", "x:1")], &local_config_path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("brokers = \"x:1\""), "{stdout}");
    assert!(
        stdout.contains("secret_access_key = \"***redacted***\""),
        "{stdout}"
    );
}

#[test]
fn unknown_key_exits_2_naming_the_key() {
    let dir = std::env::temp_dir().join(unique("eda-cli"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[kafka]\nbrokerz = \"x\"\n").unwrap();
    let out = check_config(&[], &file);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("brokerz"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn broken_rule_exits_2_with_every_error() {
    let out = check_config(
        &[
            ("EDA_KAFKA__DRAIN_TIMEOUT_MS", "30000"),
            ("EDA_KAFKA__SESSION_TIMEOUT_MS", "10000"),
            ("EDA_PUBLISH__MAX_ENTRIES", "50"),
        ],
        &local_config_path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "kafka.drain_timeout_ms (30000) must be less than kafka.session_timeout_ms (10000)"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("publish.max_entries (50) must be between 1 and 10"),
        "{stderr}"
    );
}

fn run_with_stdin(args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_eda-daemon"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("eda-daemon runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("stdin written");
    child.wait_with_output().expect("eda-daemon exits")
}

#[test]
fn transform_prints_the_normalized_event() {
    let now = chrono::Utc::now().to_rfc3339();
    let event = format!(
        r#"{{"event_id":"2f1c7c1e-0a4b-4c8e-9a57-1d2b3c4d5e6f","event_type":"order.created",
            "source_region":"us-west-2","timestamp":"{now}","payload":{{"email":" Ada@Example.COM "}}}}"#
    );
    let out = run_with_stdin(&["transform"], &event);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(printed["detail_type"], "transformed");
    assert_eq!(printed["detail"]["payload"]["email"], "ada@example.com");
}

#[test]
fn transform_lists_every_reason_and_exits_2() {
    let out = run_with_stdin(
        &["transform"],
        r#"{"event_id":"nope","payload":{"email":"bad"}}"#,
    );
    assert_eq!(out.status.code(), Some(2));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(printed["detail_type"], "validation_failed");
    let codes: Vec<&str> = printed["detail"]["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .filter_map(|r| r["code"].as_str())
        .collect();
    for code in ["invalid_uuid", "missing_field", "invalid_email"] {
        assert!(codes.contains(&code), "{code} missing from {codes:?}");
    }
}

/// The HS256 key `deploy/local/resources.py` stores in the local Secrets Manager.
const LOCAL_HS256_SECRET: &[u8] = b"local-development-hs256-secret-change-me";

fn local_token(audience: &str, expires_in: i64) -> String {
    let claims = serde_json::json!({
        "sub": "user-42",
        "iss": "https://auth.eda.local",
        "aud": audience,
        "exp": chrono::Utc::now().timestamp() + expires_in,
        "roles": ["admin", "reader"],
        "tenant_id": "t-1",
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(LOCAL_HS256_SECRET),
    )
    .expect("token signs")
}

fn jwt_verify(token: &str) -> (Option<i32>, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_eda-daemon"))
        .args(["jwt", "verify", "--config"])
        .arg(local_config_path())
        .arg(token)
        .output()
        .expect("eda-daemon runs");
    let printed = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("not JSON; stderr: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), printed)
}

#[test]
fn jwt_verify_allows_a_token_signed_with_the_secret_from_secrets_manager() {
    let (code, printed) = jwt_verify(&format!("Bearer {}", local_token("eda-api", 600)));
    assert_eq!(code, Some(0), "{printed}");
    assert_eq!(printed["decision"], "allow");
    assert_eq!(printed["context"]["userId"], "user-42");
    assert_eq!(printed["context"]["roles"], "admin,reader");
    assert_eq!(printed["context"]["tenantId"], "t-1");
}

#[test]
fn jwt_verify_denies_wrong_audience_and_expired_tokens_with_the_reason() {
    let (code, printed) = jwt_verify(&local_token("someone-else", 600));
    assert_eq!(code, Some(2));
    assert_eq!(printed["reason"], "wrong_audience");
    let (code, printed) = jwt_verify(&local_token("eda-api", -3600));
    assert_eq!(code, Some(2));
    assert_eq!(printed["reason"], "expired");
}

/// `jwt verify` of `token` on the local configuration with `envs` set.
fn jwt_verify_with(envs: &[(&str, &str)], token: &str) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eda-daemon"));
    cmd.args(["jwt", "verify", "--config"])
        .arg(local_config_path())
        .arg(token);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("eda-daemon runs")
}

/// A token signed with the local secret, from an issuer and for an audience nobody configured.
fn stranger_token() -> String {
    let claims = serde_json::json!({
        "sub": "intruder",
        "iss": "https://evil.example",
        "aud": "someone-else",
        "exp": chrono::Utc::now().timestamp() + 600,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(LOCAL_HS256_SECRET),
    )
    .expect("token signs")
}

/// Keys configured, issuers and audiences left empty (the defaults): the configuration is
/// refused, naming both keys, instead of letting any issuer's token in for any audience.
#[test]
fn an_authorizer_without_issuers_and_audiences_is_refused_naming_the_keys() {
    let out = jwt_verify_with(
        &[("EDA_JWT__ISSUERS", "[]"), ("EDA_JWT__AUDIENCES", "[]")],
        &stranger_token(),
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(!stdout.contains("\"allow\""), "{stdout}");
    assert!(stderr.contains("jwt.issuers"), "{stderr}");
    assert!(stderr.contains("jwt.audiences"), "{stderr}");
}

/// The loud opt-out lets any issuer and audience in, as asked; the signature still counts.
#[test]
fn any_issuer_and_audience_only_with_the_loud_opt_out() {
    let envs = [
        ("EDA_JWT__ISSUERS", "[]"),
        ("EDA_JWT__AUDIENCES", "[]"),
        ("EDA_JWT__INSECURE_ACCEPT_ANY_ISSUER_AND_AUDIENCE", "true"),
    ];
    let out = jwt_verify_with(&envs, &stranger_token());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"allow\""), "{stdout}");
    // With issuers configured, the opt-out is refused as contradictory.
    let out = jwt_verify_with(
        &[("EDA_JWT__INSECURE_ACCEPT_ANY_ISSUER_AND_AUDIENCE", "true")],
        &stranger_token(),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("jwt.insecure_accept_any_issuer_and_audience"),
        "{stderr}"
    );
}

fn fixture(path: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/fixtures")
        .join(path)
}

fn decode(args: &[&str], file: &std::path::Path) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_eda-daemon"))
        .arg("decode")
        .args(args)
        .arg(file)
        .output()
        .expect("eda-daemon runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn decode_prints_the_change_and_its_guarded_write() {
    let (code, stdout, stderr) = decode(
        &[
            "--format",
            "qlik-json",
            "--table",
            "SALES.ORDERS",
            "--key",
            "ORDER_ID",
        ],
        &fixture("qlik/update_envelope.json"),
    );
    assert_eq!(code, Some(0), "{stderr}");
    let printed: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(printed["event"]["operation"], "UPDATE");
    assert_eq!(
        printed["condition"],
        "attribute_not_exists(pk) OR #seq < :seq"
    );
    let write = &printed["plan"]["writes"][0];
    assert_eq!(write["table_name"], "eda-cdc");
    assert_eq!(write["sequence"], printed["event"]["change_sequence"]);
    assert_eq!(write["tombstone"], false);
}

#[test]
fn decode_reads_debezium_too() {
    let (code, stdout, stderr) = decode(
        &["--format", "debezium", "--key", "id"],
        &fixture("debezium/mysql_insert.json"),
    );
    assert_eq!(code, Some(0), "{stderr}");
    let printed: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(printed["event"]["operation"], "INSERT");
}

#[test]
fn undecodable_message_exits_2_saying_what_is_wrong() {
    let dir = std::env::temp_dir().join(unique("eda-decode"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.json");
    std::fs::write(&file, r#"{"magic":"atMSX","type":"DT","message":{}}"#).unwrap();
    let (code, _, stderr) = decode(&["--format", "qlik-json"], &file);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("does not decode"), "{stderr}");
    assert!(stderr.contains("atMSX"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}
