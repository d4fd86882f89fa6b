//! The pure per-message work of the CDC path, end to end on one core: Qlik JSON decode, the
//! change as a `BaseEvent`, and the transformer (validate, enrich, normalize). The goal is
//! ≥ 500K events/s, i.e. ≤ 2 µs per event.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eda_actors::core::cdc::{
    decode_qlik_json, DecodeContext, FallbackKeys, MetadataCache, QlikMessage, TableRef,
};
use eda_actors::core::change_event::into_base_event;
use eda_actors::core::transform::Transformer;
use eda_config::TransformerConfig;
use std::hint::black_box;

// The daemon's and the Lambda binaries' allocator, so the figure is theirs.
#[global_allocator]
static ALLOC: eda_actors::alloc::Mimalloc = eda_actors::alloc::Mimalloc;

const QLIK_UPDATE: &[u8] = include_bytes!("../tests/fixtures/qlik/bench_update_1kb.json");

fn decode_and_transform(c: &mut Criterion) {
    let table = TableRef::new("SALES", "ORDERS");
    let keys = FallbackKeys::none().with_default(vec!["ORDER_ID".into(), "REGION".into()]);
    let ctx = DecodeContext {
        default_table: Some(&table),
        fallback_keys: &keys,
    };
    let config = TransformerConfig {
        // The fixture's change is from 2023; the bound is not what is measured here.
        max_age_secs: 100 * 366 * 24 * 3600,
        email_fields: vec!["payload.after.CUSTOMER_EMAIL".into()],
        ..TransformerConfig::default()
    };
    let transformer = Transformer::new(&config, "us-west-2").expect("transformer");
    let now = chrono::Utc::now();
    // One region name for every event, as the daemon holds it.
    let region: std::sync::Arc<str> = "us-west-2".into();
    let mut metadata = MetadataCache::new();

    // The path must succeed, or the figure would time an error branch.
    let QlikMessage::Change(probe) =
        decode_qlik_json(QLIK_UPDATE, &ctx, &mut metadata, None).expect("decodes")
    else {
        panic!("the fixture is a data message");
    };
    assert!(transformer
        .transform(into_base_event(probe, std::sync::Arc::clone(&region)), now)
        .is_valid());

    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(1));
    group.bench_function("qlik_json_decode_transform_1364B", |b| {
        b.iter(|| {
            let Ok(QlikMessage::Change(event)) =
                decode_qlik_json(black_box(QLIK_UPDATE), &ctx, &mut metadata, None)
            else {
                unreachable!("checked above");
            };
            black_box(
                transformer.transform(into_base_event(event, std::sync::Arc::clone(&region)), now),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, decode_and_transform);
criterion_main!(benches);
