//! The pure per-message work of the CDC path, end to end on one core: Qlik JSON decode, the
//! change as a `BaseEvent`, and the transformer (validate, enrich, normalize). The goal is
//! ≥ 500K events/s, i.e. ≤ 2 µs per event. Criterion's mean carries the host's pauses on a shared
//! machine; `rounds.rs` prints the best, p10 and median round of the same path beside it.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eda_core::cdc::{decode_qlik_json, MetadataCache, QlikMessage};
use eda_core::change_event::into_base_event;
use std::hint::black_box;

// The daemon's and the Lambda binaries' allocator, so the figure is theirs.
#[global_allocator]
static ALLOC: eda_core::alloc::Mimalloc = eda_core::alloc::Mimalloc;

#[path = "workloads.rs"]
mod workloads;
use workloads::{pipeline_transformer, Source, QLIK_UPDATE};

fn decode_and_transform(c: &mut Criterion) {
    let source = Source::new("SALES", "ORDERS");
    let ctx = source.ctx();
    let (transformer, region) = pipeline_transformer();
    let now = chrono::Utc::now();
    let metadata = MetadataCache::new();

    // The path must succeed, or the figure would time an error branch.
    let QlikMessage::Change(probe) =
        decode_qlik_json(QLIK_UPDATE, &ctx, &metadata, None).expect("decodes")
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
                decode_qlik_json(black_box(QLIK_UPDATE), &ctx, &metadata, None)
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
