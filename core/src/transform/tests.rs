//! Behaviour of the transformer as a consumer of `transformed` / `validation_failed` sees it.

use super::*;
use eda_config::FieldRule;
use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeSet;

fn now() -> DateTime<Utc> {
    time::parse_timestamp("2024-05-01T12:00:00.500Z").expect("literal")
}

fn config() -> TransformerConfig {
    let mut config = TransformerConfig {
        email_fields: vec!["payload.email".into(), "metadata.owner".into()],
        uuid_fields: vec!["payload.customer_id".into()],
        rules: vec![
            FieldRule {
                field: "payload.status".into(),
                required: true,
                one_of: vec!["new".into(), "paid".into()],
                ..FieldRule::default()
            },
            FieldRule {
                field: "payload.amount".into(),
                min: Some(0.0),
                max: Some(10_000.0),
                ..FieldRule::default()
            },
            FieldRule {
                field: "payload.sku".into(),
                pattern: Some("^[A-Z]{2}-[0-9]+$".into()),
                max_len: Some(8),
                ..FieldRule::default()
            },
        ],
        ..TransformerConfig::default()
    };
    let entry = |country: &str, region: &str| GeoEntry {
        country: country.into(),
        region: region.into(),
        ..GeoEntry::default()
    };
    config
        .geo
        .by_key
        .insert("US".into(), entry("US", "North America"));
    config
        .geo
        .by_ip_prefix
        .insert("203.0.".into(), entry("AU", "Oceania"));
    config
        .geo
        .by_ip_prefix
        .insert("203.0.113.".into(), entry("NZ", "Oceania"));
    config
}

fn transformer() -> Transformer {
    Transformer::new(&config(), "us-west-2").expect("valid config")
}

fn valid_json() -> Value {
    json!({
        "event_id": "0b0e3b5e-4a57-4d1c-9d0e-6a1f1c2b3d4e",
        "event_type": "order.created",
        "source_region": "us-east-1",
        "timestamp": "2024-05-01T11:59:00.123456",
        "correlation_id": "req-1",
        "payload": {
            "email": "  Jane.Doe@Example.COM ",
            "customer_id": "9f1c2b3d-0000-4000-8000-000000000001",
            "status": " paid",
            "amount": "12.50",
            "sku": "AB-12",
            "country": "US",
            "lines": [{"name": " widget "}]
        },
        "metadata": {"owner": "Ops@Example.com"}
    })
}

fn valid_event() -> BaseEvent {
    serde_json::from_value(valid_json()).expect("valid literal")
}

fn transformed(outcome: Outcome) -> TransformedEvent {
    match outcome {
        Outcome::Transformed(t) => t,
        Outcome::ValidationFailed(f) => panic!("unexpected failure: {:?}", f.reasons),
    }
}

fn failed(outcome: Outcome) -> ValidationFailed {
    match outcome {
        Outcome::ValidationFailed(f) => f,
        Outcome::Transformed(t) => panic!("unexpectedly valid: {t:?}"),
    }
}

fn codes(f: &ValidationFailed) -> BTreeSet<(String, &'static str)> {
    f.reasons
        .iter()
        .map(|r| (r.field.clone(), r.code.as_str()))
        .collect()
}

#[test]
fn a_configured_field_at_the_top_is_normalized_too() {
    // `source_region` is a shared `Arc<str>`: editing it replaces this event's copy only.
    let mut c = config();
    c.email_fields.push("source_region".into());
    let t = Transformer::new(&c, "us-west-2").expect("valid config");
    let mut event = valid_event();
    event.source_region = " Ops@Example.COM".into();
    let kept = event.source_region.clone();
    let out = transformed(t.transform(event, now()));
    assert_eq!(&*out.source_region, "ops@example.com");
    assert_eq!(&*kept, " Ops@Example.COM");
}

#[test]
fn a_valid_event_is_normalized_and_enriched() {
    let outcome = transformer().transform(valid_event(), now());
    assert_eq!(outcome.detail_type(), "transformed");
    let t = transformed(outcome);
    assert_eq!(t.payload.to_value()["email"], "jane.doe@example.com");
    assert_eq!(t.payload.to_value()["status"], "paid");
    assert_eq!(t.payload.to_value()["lines"][0]["name"], "widget");
    assert_eq!(t.metadata["owner"], "ops@example.com");
    assert_eq!(&*t.processing_region, "us-west-2");
    assert_eq!(
        t.enrichment.geo.as_deref().map(|g| g.region.as_str()),
        Some("North America")
    );
    let json = serde_json::to_value(&t).expect("serializable");
    assert_eq!(json["timestamp"], "2024-05-01T11:59:00.123Z");
    assert_eq!(json["received_at"], "2024-05-01T12:00:00.500Z");
    assert_eq!(json["enrichment"]["geo"]["country"], "US");
    let back: TransformedEvent = serde_json::from_value(json).expect("round trip");
    assert_eq!(back, t);
}

#[test]
fn both_entry_points_agree() {
    let t = transformer();
    assert_eq!(
        t.transform(valid_event(), now()),
        t.transform_json(valid_json(), now())
    );
    let mut raw = valid_json();
    raw["payload"]["email"] = json!("nope");
    raw["event_type"] = json!("");
    let from_json = failed(t.transform_json(raw.clone(), now()));
    let event: BaseEvent = serde_json::from_value(raw).expect("still decodes");
    let from_event = failed(t.transform(event, now()));
    assert_eq!(codes(&from_json), codes(&from_event));
}

#[test]
fn geolocation_falls_back_to_the_longest_ip_prefix() {
    let t = transformer();
    let mut raw = valid_json();
    raw["payload"]["country"] = json!("FR");
    raw["payload"]["ip"] = json!("203.0.113.9");
    let geo = transformed(t.transform_json(raw.clone(), now()))
        .enrichment
        .geo;
    assert_eq!(geo.map(|g| g.country.clone()), Some("NZ".into()));
    raw["payload"]["ip"] = json!("203.0.7.1");
    let geo = transformed(t.transform_json(raw.clone(), now()))
        .enrichment
        .geo;
    assert_eq!(geo.map(|g| g.country.clone()), Some("AU".into()));
    raw["payload"]["ip"] = json!("10.0.0.1");
    assert_eq!(
        transformed(t.transform_json(raw, now())).enrichment.geo,
        None
    );
}

#[test]
fn every_reason_is_listed_and_the_event_is_kept_as_received() {
    let raw = json!({
        "event_id": "not-a-uuid",
        "source_region": 7,
        "timestamp": "2024-04-01T00:00:00Z",
        "correlation_id": ["x"],
        "payload": {
            "email": "jane@",
            "customer_id": "nope",
            "amount": -5,
            "sku": "abc-123456",
        },
        "metadata": {"owner": "OPS@EXAMPLE.COM", "n": 1}
    });
    let f = failed(transformer().transform_json(raw.clone(), now()));
    assert_eq!(f.event, raw, "kept as received");
    let want: BTreeSet<(String, &str)> = [
        ("event_id", "invalid_uuid"),
        ("event_type", "missing_field"),
        ("source_region", "invalid_type"),
        ("timestamp", "timestamp_too_old"),
        ("correlation_id", "invalid_type"),
        ("metadata.n", "invalid_type"),
        ("payload.customer_id", "invalid_uuid"),
        ("payload.email", "invalid_email"),
        ("payload.status", "missing_field"),
        ("payload.amount", "rule_min"),
        ("payload.sku", "rule_pattern"),
        ("payload.sku", "rule_max_len"),
    ]
    .into_iter()
    .map(|(f, c)| (f.to_owned(), c))
    .collect();
    assert_eq!(codes(&f), want);
    assert_eq!(f.reasons.len(), want.len(), "one reason per failure");
    let json = serde_json::to_value(Outcome::ValidationFailed(f.clone()).detail_type()).ok();
    assert_eq!(json, Some(json!("validation_failed")));
}

#[test]
fn timestamp_bounds_and_forms() {
    let t = transformer();
    let with_ts = |ts: Value| {
        let mut raw = valid_json();
        raw["timestamp"] = ts;
        t.transform_json(raw, now())
    };
    let ts = transformed(with_ts(json!(1_714_564_800_000_i64))).timestamp;
    assert_eq!(time::format_millis(&ts), "2024-05-01T12:00:00.000Z");
    assert!(with_ts(json!("2024-05-01T14:00:00+02:00")).is_valid());
    let code = |o: Outcome| failed(o).reasons[0].code;
    assert_eq!(
        code(with_ts(json!("2024-05-01T12:06:00Z"))),
        ReasonCode::TimestampInFuture
    );
    assert_eq!(
        code(with_ts(json!("yesterday"))),
        ReasonCode::InvalidTimestamp
    );
    assert_eq!(code(with_ts(json!(true))), ReasonCode::InvalidType);
    assert_eq!(code(with_ts(json!(null))), ReasonCode::MissingField);
    assert!(
        with_ts(json!("2024-04-24T12:00:01Z")).is_valid(),
        "just inside 7 days"
    );
}

#[test]
fn not_an_object_is_a_reason_not_an_error() {
    let f = failed(transformer().transform_json(json!([1, 2]), now()));
    assert_eq!(f.reasons[0].code, ReasonCode::NotAnObject);
    assert_eq!(f.event, json!([1, 2]));
}

#[test]
fn trimming_can_be_turned_off() {
    let config = TransformerConfig {
        trim_strings: false,
        ..config()
    };
    let mut raw = valid_json();
    raw["payload"]["status"] = json!("paid");
    let t = Transformer::new(&config, "r").expect("valid");
    let out = transformed(t.transform_json(raw, now()));
    assert_eq!(out.payload.to_value()["lines"][0]["name"], " widget ");
    assert_eq!(
        out.payload.to_value()["email"],
        "jane.doe@example.com",
        "e-mails are always trimmed"
    );
}

#[test]
fn trimming_handles_every_kind_of_blank_in_place() {
    for (input, want) in [
        ("plain", "plain"),
        ("", ""),
        ("  ", ""),
        ("\u{0B}tab\t", "tab"),
        ("\u{00A0}nbsp\u{2003}", "nbsp"),
        ("  é ", "é"),
        ("ünïcode", "ünïcode"),
    ] {
        let mut s = input.to_owned();
        trim_in_place(&mut s);
        assert_eq!(s, want, "{input:?}");
    }
    let email = normalized_email(" Jane@EXAMPLE.com ");
    assert_eq!(email.as_deref(), Some("jane@example.com"));
    assert_eq!(
        normalized_email(" jane@example.com").as_deref(),
        Some("jane@example.com")
    );
    assert_eq!(normalized_email("jane@example.com"), None);
    // A and Z are capitals, their neighbours are not; a non-ASCII capital is one too.
    assert_eq!(normalized_email("[@]`{"), None);
    assert_eq!(normalized_email("z@Z.io").as_deref(), Some("z@z.io"));
    assert_eq!(normalized_email("a@A.io").as_deref(), Some("a@a.io"));
    assert_eq!(
        normalized_email("ÉLODIE@example.com").as_deref(),
        Some("élodie@example.com")
    );
}

/// [`normalized_email`] as it was written before its one-pass scan: the oracle below.
fn normalized_email_plainly(email: &str) -> Option<String> {
    let trimmed = email.trim();
    let upper = if trimmed.is_ascii() {
        trimmed.bytes().any(|b| b.is_ascii_uppercase())
    } else {
        trimmed.chars().any(char::is_uppercase)
    };
    match (upper, trimmed.len() == email.len()) {
        (false, true) => None,
        (false, false) => Some(trimmed.to_owned()),
        (true, _) => Some(trimmed.to_lowercase()),
    }
}

proptest! {
    #[test]
    fn normalized_email_agrees_with_the_plain_definition(
        email in "[ \t@AZ\\[`az{09.ÉéǅΣ]{0,12}"
    ) {
        prop_assert_eq!(normalized_email(&email), normalized_email_plainly(&email));
    }
}

#[test]
fn bad_configuration_names_the_key() {
    let mut c = config();
    c.rules[1].field = "amount".into();
    let err = Transformer::new(&c, "r").expect_err("unknown root");
    assert!(
        err.to_string()
            .starts_with("transformer.rules[1].field: `amount`"),
        "{err}"
    );
    let mut c = config();
    c.rules[2].pattern = Some("(".into());
    let err = Transformer::new(&c, "r").expect_err("bad regex");
    assert!(
        err.to_string().starts_with("transformer.rules[2].pattern"),
        "{err}"
    );
}

/// A JSON payload with strings that need trimming and e-mails that need lower-casing.
fn payload_strategy() -> impl Strategy<Value = Value> {
    let text = "[ \t]{0,2}[a-zA-Z0-9 ]{0,8}[ \t\n]{0,2}".prop_map(Value::String);
    let leaf = prop_oneof![
        text,
        any::<i32>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
    ];
    let tree = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,5}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let email = "[ ]{0,2}[a-zA-Z]{1,6}@[a-zA-Z]{1,6}\\.[a-zA-Z]{2,3}[ ]{0,2}";
    (tree, email).prop_map(|(tree, email)| {
        json!({
            "email": email,
            "status": "new",
            "country": "US",
            "extra": tree,
        })
    })
}

proptest! {
    #[test]
    fn normalization_is_idempotent(payload in payload_strategy(), offset_ms in -600_000i64..290_000) {
        let t = transformer();
        let ts = now() + TimeDelta::milliseconds(offset_ms);
        let event = BaseEvent {
            event_id: "0b0e3b5e-4a57-4d1c-9d0e-6a1f1c2b3d4e".into(),
            event_type: "x".into(),
            source_region: "us-east-1".into(),
            timestamp: ts.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
            payload: payload.into(),
            ..BaseEvent::default()
        };
        let later = now() + TimeDelta::seconds(1);
        let once = transformed(t.transform(event, later));
        let twice = transformed(t.transform(once.to_base(), later));
        prop_assert_eq!(&once, &twice);
        let via_json = transformed(t.transform_json(Value::from(once.to_base()), later));
        prop_assert_eq!(&once, &via_json);
    }

    #[test]
    fn every_invalid_field_yields_its_own_reason(breaks in prop::collection::btree_set(0usize..BREAKS.len(), 0..BREAKS.len())) {
        let mut raw = valid_json();
        let mut want = BTreeSet::new();
        for &i in &breaks {
            let (field, code, apply) = BREAKS[i];
            apply(&mut raw);
            want.insert((field.to_owned(), code));
        }
        let outcome = transformer().transform_json(raw, now());
        if want.is_empty() {
            prop_assert!(outcome.is_valid());
        } else {
            let f = failed(outcome);
            prop_assert_eq!(f.reasons.len(), want.len());
            prop_assert_eq!(codes(&f), want);
        }
    }
}

type Break = (&'static str, &'static str, fn(&mut Value));

/// Independent ways to break the valid event, each with the one reason it must produce.
const BREAKS: &[Break] = &[
    ("event_id", "invalid_uuid", |v| v["event_id"] = json!("123")),
    ("event_type", "missing_field", |v| {
        v["event_type"] = json!(null)
    }),
    ("source_region", "invalid_type", |v| {
        v["source_region"] = json!({})
    }),
    ("timestamp", "timestamp_in_future", |v| {
        v["timestamp"] = json!("2024-05-02T00:00:00Z")
    }),
    ("payload.email", "invalid_email", |v| {
        v["payload"]["email"] = json!("a@b")
    }),
    ("payload.customer_id", "invalid_uuid", |v| {
        v["payload"]["customer_id"] = json!("x")
    }),
    ("payload.status", "rule_one_of", |v| {
        v["payload"]["status"] = json!("lost")
    }),
    ("payload.amount", "rule_max", |v| {
        v["payload"]["amount"] = json!(1e9)
    }),
    ("payload.sku", "rule_max_len", |v| {
        v["payload"]["sku"] = json!("AB-1234567")
    }),
    ("metadata.owner", "invalid_email", |v| {
        v["metadata"]["owner"] = json!("ops")
    }),
];
