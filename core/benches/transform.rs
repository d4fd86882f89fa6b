//! Transformer and circuit breaker cost per event.
//!
//! The CDC path aims at 500K events/s on one core for Qlik decode and transform together, so
//! the transform of a ~1 KB event from a built `BaseEvent` must stay well under a microsecond.
//! Also measured: the Lambda path (raw JSON value, and JSON text decoded then transformed) and
//! one breaker acquire + record, paid on every cross-region call.
//!
//! Run: `cargo bench -p eda-core --bench transform`. Criterion prints time per event and
//! throughput (elements/s).

// The daemon's and the Lambda binaries' allocator, so the figures are theirs.
#[global_allocator]
static ALLOC: eda_core::alloc::Mimalloc = eda_core::alloc::Mimalloc;

use chrono::{DateTime, Utc};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use eda_config::{BreakerConfig, FieldRule, GeoEntry, TransformerConfig};
use eda_core::breaker::{CircuitBreaker, ManualClock, SystemClock};
use eda_core::transform::{time, BaseEvent, Transformer};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// A typical order event: about 1 KB of JSON, some strings to trim, an address to lower-case.
fn event_json() -> Value {
    json!({
        "event_id": "0b0e3b5e-4a57-4d1c-9d0e-6a1f1c2b3d4e",
        "event_type": "orders.order.updated",
        "source_region": "us-east-1",
        "timestamp": "2024-05-01T11:59:58.123456",
        "correlation_id": "7d4f1c2b-9a0e-4b8e-8c1d-2f3a4b5c6d7e",
        "payload": {
            "order_id": "ORD-2024-0000123456",
            "customer_id": "9f1c2b3d-0000-4000-8000-000000000001",
            "email": " Jane.Doe@Example.COM",
            "first_name": "Jane",
            "last_name": "Doe ",
            "phone": "+1-555-0100",
            "status": "paid",
            "amount": "149.90",
            "currency": "USD",
            "country": "US",
            "ip": "203.0.113.42",
            "shipping_address": {
                "line1": "1200 Example Avenue",
                "line2": "Suite 400",
                "city": "Salt Lake City",
                "state": "UT",
                "postal_code": "84101",
                "country": "US"
            },
            "items": [
                {"sku": "AB-1001", "name": "Widget, large", "qty": 2, "unit_price": 39.95},
                {"sku": "AB-1002", "name": "Widget, small ", "qty": 1, "unit_price": 19.99},
                {"sku": "CD-2001", "name": "Gadget", "qty": 1, "unit_price": 50.01}
            ],
            "created_at": "2024-05-01T11:58:00.000000",
            "updated_at": "2024-05-01T11:59:58.123456",
            "notes": "Leave at the front desk. Call on arrival."
        },
        "metadata": {
            "schema_version": "3",
            "producer": "qlik-replicate",
            "table": "SALES.ORDERS",
            "change_seq": "20240501115958123456000000000000000000001"
        }
    })
}

fn transformer() -> Transformer {
    let mut config = TransformerConfig {
        uuid_fields: vec!["payload.customer_id".into()],
        rules: vec![
            FieldRule {
                field: "payload.status".into(),
                required: true,
                one_of: vec!["new".into(), "paid".into(), "shipped".into()],
                ..FieldRule::default()
            },
            FieldRule {
                field: "payload.amount".into(),
                min: Some(0.0),
                max: Some(1_000_000.0),
                ..FieldRule::default()
            },
            FieldRule {
                field: "payload.order_id".into(),
                pattern: Some("^ORD-[0-9]{4}-[0-9]{10}$".into()),
                max_len: Some(32),
                ..FieldRule::default()
            },
        ],
        ..TransformerConfig::default()
    };
    config.geo.by_key.insert(
        "US".into(),
        GeoEntry {
            country: "US".into(),
            region: "North America".into(),
            city: None,
            timezone: Some("America/Denver".into()),
        },
    );
    Transformer::new(&config, "us-west-2").expect("valid bench config")
}

fn now() -> DateTime<Utc> {
    time::parse_timestamp("2024-05-01T12:00:00Z").expect("literal")
}

fn bench_transform(c: &mut Criterion) {
    let t = transformer();
    let raw = event_json();
    let text = serde_json::to_string(&raw).expect("serializable");
    let event: BaseEvent = serde_json::from_value(raw.clone()).expect("valid event");
    assert!(t.transform(event.clone(), now()).is_valid());
    println!("event size: {} bytes of JSON", text.len());

    let mut group = c.benchmark_group("transform");
    group.throughput(Throughput::Elements(1));
    group.bench_function("from_base_event", |b| {
        b.iter_batched(
            || event.clone(),
            |e| t.transform(e, black_box(now())),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("from_json_value", |b| {
        b.iter_batched(
            || raw.clone(),
            |v| t.transform_json(v, black_box(now())),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("decode_json_text_then_transform", |b| {
        b.iter(|| {
            let e: BaseEvent = serde_json::from_str(black_box(&text)).expect("valid");
            t.transform(e, now())
        })
    });
    group.finish();
}

fn bench_breaker(c: &mut Criterion) {
    let config = BreakerConfig::default();
    let mut group = c.benchmark_group("breaker");
    group.throughput(Throughput::Elements(1));
    let mut cb = CircuitBreaker::new(
        "us-east-1",
        &config,
        SystemClock::new(),
        fastrand::Rng::with_seed(1),
    );
    group.bench_function("acquire_record_system_clock", |b| {
        b.iter(|| {
            if let Ok(permit) = cb.try_acquire() {
                cb.record_success(permit, black_box(Duration::from_millis(3)));
            }
        })
    });
    let clock = Arc::new(ManualClock::new());
    let mut cb = CircuitBreaker::new("us-east-1", &config, clock, fastrand::Rng::with_seed(1));
    group.bench_function("acquire_record_manual_clock", |b| {
        b.iter(|| {
            if let Ok(permit) = cb.try_acquire() {
                cb.record_success(permit, black_box(Duration::from_millis(3)));
            }
        })
    });
    group.finish();
}

fn quick() -> Criterion {
    // Two cores shared with other builds: short, steady runs.
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = quick();
    targets = bench_transform, bench_breaker
}
criterion_main!(benches);
