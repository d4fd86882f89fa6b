//! `eda-daemon check-config`: what an operator sees.

use super::support::local_config_path;
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
    let dir = std::env::temp_dir().join(super::support::unique("eda-cli"));
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
