//! Layering and validation, with figment's `Jail` isolating files and environment.

// figment's `Jail::expect_with` fixes the closure's error type to `figment::Error`, which is large.
#![allow(clippy::result_large_err)]

use super::*;
use figment::Jail;

const MINIMAL: &str = r#"
[regions.primary]
dlq_queue_url = "http://127.0.0.1:5000/123456789012/eda-dlq"
owed_queue_url = "http://127.0.0.1:5000/123456789012/eda-owed"

[regions.secondary]
dlq_queue_url = "http://127.0.0.1:5000/123456789012/eda-dlq"
owed_queue_url = "http://127.0.0.1:5000/123456789012/eda-owed"
"#;

fn load_in(jail: &Jail, file: &str) -> Result<Config, ConfigError> {
    Config::load(Some(&jail.directory().join(file)))
}

#[test]
fn defaults_then_file_then_environment() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "eda.toml",
            &format!("{MINIMAL}\n[kafka]\nbrokers = \"file:9092\"\ngroup_id = \"from-file\"\n"),
        )?;
        jail.set_env("EDA_KAFKA__BROKERS", "x:1");
        jail.set_env("EDA_REGIONS__SECONDARY__EVENT_BUS", "east-bus");
        let config = load_in(jail, "eda.toml").expect("valid");
        assert_eq!(
            config.kafka.brokers, "x:1",
            "environment wins over the file"
        );
        assert_eq!(
            config.kafka.group_id, "from-file",
            "file wins over defaults"
        );
        assert_eq!(
            config.kafka.session_timeout_ms, 30_000,
            "defaults fill the rest"
        );
        assert_eq!(config.regions.secondary.event_bus, "east-bus");
        assert_eq!(config.regions.secondary.name, "us-east-1");
        Ok(())
    });
}

#[test]
fn environment_lists_and_numbers_parse() {
    Jail::expect_with(|jail| {
        jail.create_file("eda.toml", MINIMAL)?;
        jail.set_env("EDA_KAFKA__TOPICS", "[a, b]");
        jail.set_env("EDA_BREAKER__MINIMUM_CALLS", "7");
        let config = load_in(jail, "eda.toml").expect("valid");
        assert_eq!(config.kafka.topics, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(config.breaker.minimum_calls, 7);
        Ok(())
    });
}

#[test]
fn unknown_key_in_file_is_named() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "eda.toml",
            &format!("{MINIMAL}\n[kafka]\nbrokerz = \"x\"\n"),
        )?;
        let err = load_in(jail, "eda.toml").expect_err("unknown key");
        let text = err.to_string();
        assert!(text.contains("brokerz"), "{text}");
        assert!(text.contains("kafka"), "{text}");
        Ok(())
    });
}

#[test]
fn unknown_environment_key_is_named() {
    Jail::expect_with(|jail| {
        jail.create_file("eda.toml", MINIMAL)?;
        jail.set_env("EDA_KAFAK__BROKERS", "x:1");
        let err = load_in(jail, "eda.toml").expect_err("unknown section");
        assert!(err.to_string().contains("kafak"), "{err}");
        Ok(())
    });
}

#[test]
fn missing_file_is_an_error() {
    Jail::expect_with(|jail| {
        let err = load_in(jail, "nope.toml").expect_err("missing file");
        assert!(err.to_string().contains("nope.toml"), "{err}");
        Ok(())
    });
}

#[test]
fn drain_timeout_must_stay_under_session_timeout() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "eda.toml",
            &format!("{MINIMAL}\n[kafka]\ndrain_timeout_ms = 30000\nsession_timeout_ms = 10000\n"),
        )?;
        let err = load_in(jail, "eda.toml").expect_err("broken rule");
        assert!(
            err.to_string().contains(
                "kafka.drain_timeout_ms (30000) must be less than kafka.session_timeout_ms (10000)"
            ),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn the_in_flight_byte_bound_is_read_from_the_environment_and_checked() {
    Jail::expect_with(|jail| {
        jail.create_file("eda.toml", MINIMAL)?;
        let config = load_in(jail, "eda.toml").expect("valid");
        assert_eq!(
            config.kafka.max_in_flight_bytes_per_partition,
            8 * 1024 * 1024
        );
        jail.set_env("EDA_KAFKA__MAX_IN_FLIGHT_BYTES_PER_PARTITION", "1048576");
        let config = load_in(jail, "eda.toml").expect("valid");
        assert_eq!(config.kafka.max_in_flight_bytes_per_partition, 1_048_576);
        for bad in ["0", "2147483648"] {
            jail.set_env("EDA_KAFKA__MAX_IN_FLIGHT_BYTES_PER_PARTITION", bad);
            let err = load_in(jail, "eda.toml").expect_err("out of range");
            assert!(
                err.to_string()
                    .contains("kafka.max_in_flight_bytes_per_partition"),
                "{err}"
            );
        }
        Ok(())
    });
}

#[test]
fn the_runtime_worker_count_is_read_from_the_environment_and_checked() {
    Jail::expect_with(|jail| {
        jail.create_file("eda.toml", MINIMAL)?;
        let config = load_in(jail, "eda.toml").expect("valid");
        assert_eq!(config.runtime.worker_threads, 0, "one per CPU by default");
        jail.set_env("EDA_RUNTIME__WORKER_THREADS", "1");
        let config = load_in(jail, "eda.toml").expect("valid");
        assert_eq!(config.runtime.worker_threads, 1);
        jail.set_env("EDA_RUNTIME__WORKER_THREADS", "5000");
        let err = load_in(jail, "eda.toml").expect_err("out of range");
        assert!(err.to_string().contains("runtime.worker_threads"), "{err}");
        Ok(())
    });
}

#[test]
fn a_rejoin_timeout_within_an_ordinary_rebalance_is_refused_by_name() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "eda.toml",
            &format!(
                "{MINIMAL}\n[kafka]\nsession_timeout_ms = 30000\ndrain_timeout_ms = 10000\n\
                 rejoin_timeout_ms = 40000\nout_of_group_liveness_ms = 30000\n"
            ),
        )?;
        let err = load_in(jail, "eda.toml")
            .expect_err("broken rules")
            .to_string();
        assert!(
            err.contains(
                "kafka.rejoin_timeout_ms (40000) is invalid: must exceed \
                 kafka.session_timeout_ms + kafka.drain_timeout_ms (40000)"
            ),
            "{err}"
        );
        assert!(
            err.contains(
                "kafka.rejoin_timeout_ms (40000) must be less than \
                 kafka.out_of_group_liveness_ms (30000)"
            ),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn an_aws_timeout_of_zero_is_refused_by_name() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "eda.toml",
            &format!("{MINIMAL}\n[aws]\nattempt_timeout_ms = 0\n"),
        )?;
        let err = load_in(jail, "eda.toml").expect_err("broken rule");
        assert!(
            err.to_string()
                .contains("aws.attempt_timeout_ms (0) must be between 10 and 600000"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn every_broken_rule_is_reported_at_once() {
    let mut config = Config::default();
    config.kafka.topics.clear();
    config.publish.max_entries = 11;
    config.http.listen = "nowhere".into();
    let errors = config.validate().expect_err("invalid");
    let keys: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    for expected in [
        "kafka.topics must not be empty",
        "publish.max_entries (11) must be between 1 and 10",
        "http.listen (nowhere) is invalid",
        "regions.primary.dlq_queue_url must not be empty",
        "regions.secondary.dlq_queue_url must not be empty",
        "regions.primary.owed_queue_url must not be empty",
        "regions.secondary.owed_queue_url must not be empty",
    ] {
        assert!(
            keys.iter().any(|k| k.starts_with(expected)),
            "{expected} not in {keys:#?}"
        );
    }
}

#[test]
fn the_metadata_table_is_not_the_cdc_table() {
    Jail::expect_with(|jail| {
        jail.create_file("eda.toml", MINIMAL)?;
        jail.set_env("EDA_REGIONS__PRIMARY__METADATA_TABLE", "eda-cdc");
        let err = load_in(jail, "eda.toml").expect_err("broken rule");
        assert!(
            err.to_string().contains(
                "regions.primary.metadata_table (eda-cdc) is invalid: must differ from regions.primary.cdc_table"
            ),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn sasl_protocol_requires_credentials() {
    let mut config = Config::default();
    config.kafka.security_protocol = SecurityProtocol::SaslSsl;
    let errors = config.validate().expect_err("invalid");
    assert!(errors.contains(&ValidationError::Empty {
        key: "kafka.sasl".into()
    }));
}

#[test]
fn avro_requires_a_schema_registry() {
    let mut config = Config::default();
    config.kafka.format = MessageFormat::QlikAvro;
    let errors = config.validate().expect_err("invalid");
    assert!(errors
        .iter()
        .any(|e| e.to_string().starts_with("schema_registry.url")));
}

#[test]
fn a_bad_rule_pattern_names_the_rule() {
    let mut config = Config::default();
    config.transformer.rules.push(FieldRule {
        field: "payload.sku".into(),
        pattern: Some("([".into()),
        ..FieldRule::default()
    });
    let errors = config.validate().expect_err("invalid");
    assert!(errors
        .iter()
        .any(|e| e.to_string().starts_with("transformer.rules[0].pattern")));
}

#[test]
fn managed_librdkafka_properties_cannot_be_overridden() {
    let mut config = Config::default();
    config
        .kafka
        .librdkafka
        .insert("enable.auto.offset.store".into(), "true".into());
    let errors = config.validate().expect_err("invalid");
    assert!(errors
        .iter()
        .any(|e| e.to_string().contains("enable.auto.offset.store")));
}

#[test]
fn printed_configuration_hides_every_secret() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "eda.toml",
            &format!(
                "{MINIMAL}
[kafka]
security_protocol = \"sasl_ssl\"
[kafka.sasl]
mechanism = \"PLAIN\"
username = \"api-key\"
password = \"kafka-pass-123\"
[kafka.librdkafka]
\"sasl.password\" = \"passthrough-pass-456\"
\"fetch.min.bytes\" = \"1\"
[jwt]
issuers = [\"https://auth.example.com\"]
audiences = [\"eda-api\"]
hs256_secret = \"hs-secret-789\"
[aws.static_credentials]
access_key_id = \"AKIA\"
secret_access_key = \"aws-secret-000\"
"
            ),
        )?;
        let config = load_in(jail, "eda.toml").expect("valid");
        assert_eq!(
            config.kafka.sasl.as_ref().map(|s| s.password.expose()),
            Some("kafka-pass-123")
        );
        let printed = config.to_redacted_toml();
        for secret in [
            "kafka-pass-123",
            "passthrough-pass-456",
            "hs-secret-789",
            "aws-secret-000",
        ] {
            assert!(!printed.contains(secret), "{secret} leaked:\n{printed}");
        }
        assert!(printed.contains("api-key"), "non-secrets stay visible");
        assert!(printed.contains("\"fetch.min.bytes\" = \"1\""));
        assert!(printed.contains(REDACTED));
        Ok(())
    });
}

#[test]
fn the_redacted_output_parses_back_as_configuration() {
    let printed = Config::default().to_redacted_toml();
    let parsed: Config = toml::from_str(&printed).expect("round trip");
    assert_eq!(parsed, Config::default());
}

#[test]
fn the_shipped_local_configuration_is_valid() {
    // Inside a jail: other tests set EDA_ variables, and jails take turns.
    Jail::expect_with(|_jail| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("local.toml");
        let config = Config::load(Some(&path)).expect("config/local.toml is valid");
        assert_eq!(config.regions.primary.name, "us-west-2");
        assert_eq!(config.regions.secondary.name, "us-east-1");
        Ok(())
    });
}

#[test]
fn a_change_crosses_when_its_table_or_its_event_type_is_replicated() {
    let routing = RoutingConfig {
        replicate_tables: vec!["SALES.ORDERS".into()],
        replicate_event_types: vec!["SALES.CUSTOMERS.DELETE".into()],
        ..RoutingConfig::default()
    };
    assert!(routing.replicates_change("sales.orders", "SALES.ORDERS.INSERT"));
    assert!(routing.replicates_change("SALES.CUSTOMERS", "SALES.CUSTOMERS.DELETE"));
    assert!(!routing.replicates_change("SALES.CUSTOMERS", "SALES.CUSTOMERS.INSERT"));
    // By default every table crosses.
    assert!(RoutingConfig::default().replicates_change("ANY.TABLE", "ANY.TABLE.INSERT"));
}

#[test]
fn each_region_is_the_other_ones_other_region() {
    let regions = Regions::default();
    assert_eq!(regions.other("us-west-2").name, "us-east-1");
    assert_eq!(regions.other("us-east-1").name, "us-west-2");
}

#[test]
fn the_owed_queue_is_not_the_dead_letter_queue() {
    let mut config = Config::default();
    for region in [&mut config.regions.primary, &mut config.regions.secondary] {
        region.dlq_queue_url = "https://sqs.us-west-2.amazonaws.com/1/eda-dlq".into();
        region.owed_queue_url = region.dlq_queue_url.clone();
    }
    let errors = config.validate().expect_err("invalid");
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert!(
        text.iter()
            .any(|e| e.starts_with("regions.primary.owed_queue_url")
                && e.contains("must differ from dlq_queue_url")),
        "{text:#?}"
    );
}

#[test]
fn an_authorizer_with_keys_must_name_its_issuers_and_audiences() {
    fn jwt_errors(config: &Config) -> Vec<String> {
        config
            .validate()
            .err()
            .unwrap_or_default()
            .iter()
            .map(|e| e.to_string())
            .filter(|e| e.starts_with("jwt."))
            .collect()
    }
    let mut config = Config::default();
    config.jwt.hs256_secret_id = Some("eda/jwt-hs256".into());
    let text = jwt_errors(&config);
    for key in ["jwt.issuers", "jwt.audiences"] {
        assert!(
            text.iter()
                .any(|e| e.starts_with(key) && e.contains("insecure_accept_any")),
            "{key} missing from {text:#?}"
        );
    }
    // Without keys there is nothing to authorize: the empty lists are the defaults.
    assert!(jwt_errors(&Config::default()).is_empty());
    // The loud opt-out accepts the empty lists...
    config.jwt.insecure_accept_any_issuer_and_audience = true;
    assert!(jwt_errors(&config).is_empty());
    // ...and is refused where it would change nothing.
    config.jwt.issuers = vec!["https://auth.example.com".into()];
    config.jwt.audiences = vec!["eda-api".into()];
    let text = jwt_errors(&config);
    assert_eq!(text.len(), 1, "{text:#?}");
    assert!(
        text[0].starts_with("jwt.insecure_accept_any_issuer_and_audience"),
        "{text:#?}"
    );
}

#[test]
fn a_broken_topic_tables_line_is_named() {
    let mut config = Config::default();
    config
        .kafka
        .topic_tables
        .insert("qlik.{table}".into(), "{schema}.{table}".into());
    let text: Vec<String> = config
        .validate()
        .expect_err("invalid")
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert!(
        text.iter()
            .any(|e| e.starts_with("kafka.topic_tables.\"qlik.{table}\"")
                && e.contains("does not capture")),
        "{text:#?}"
    );
}

#[test]
fn the_never_wired_dead_letter_invalid_key_is_refused_by_name() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "eda.toml",
            &format!("{MINIMAL}\n[dlq]\ndead_letter_invalid = true\n"),
        )?;
        let err = load_in(jail, "eda.toml").expect_err("an unknown key");
        assert!(err.to_string().contains("dead_letter_invalid"), "{err}");
        Ok(())
    });
}

#[test]
fn span_export_is_off_by_default_and_its_endpoint_must_be_a_url() {
    Jail::expect_with(|jail| {
        jail.create_file("eda.toml", MINIMAL)?;
        let config = load_in(jail, "eda.toml").expect("valid");
        assert!(!config.tracing.exports());
        assert_eq!(config.kafka.traceparent_header, "traceparent");
        assert_eq!(config.kafka.correlation_id_header, "correlation-id");
        jail.set_env("EDA_TRACING__OTLP_ENDPOINT", "collector:4318");
        let err = load_in(jail, "eda.toml").expect_err("not a URL");
        assert!(
            err.to_string()
                .contains("tracing.otlp_endpoint (collector:4318) is invalid"),
            "{err}"
        );
        jail.set_env(
            "EDA_TRACING__OTLP_ENDPOINT",
            "http://127.0.0.1:4318/v1/traces",
        );
        let config = load_in(jail, "eda.toml").expect("valid");
        assert!(config.tracing.exports());
        Ok(())
    });
}
