//! Decode and apply-plan throughput of the CDC core.
//!
//! Goals (from the issue): Qlik JSON decode well under 2 µs for a ~1 KB message (≥500K events/s
//! for decode+transform on one core), Avro decode with a cached schema ≥300K/s, and planning a
//! batch of 500 changes. Run with `cargo bench -p eda-core --bench decode`.

// The daemon's and the Lambda binaries' allocator, so the figures are theirs.
#[global_allocator]
static ALLOC: eda_core::alloc::Mimalloc = eda_core::alloc::Mimalloc;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use eda_core::apply_plan::{plan, PlanOptions, TableRouting};
use eda_core::cdc::avro::NoSchemaSource;
use eda_core::cdc::{decode_qlik_json, CdcEvent, MetadataCache, QlikMessage};

#[path = "workloads.rs"]
mod workloads;
use workloads::{avro_cached, Source, QLIK_UPDATE};

fn qlik_json(c: &mut Criterion) {
    let source = Source::new("dbo", "ORDERS");
    let ctx = source.ctx();
    let cache = MetadataCache::new();
    let mut g = c.benchmark_group("qlik_json");
    g.throughput(Throughput::Elements(1));
    g.bench_function(format!("decode_update_{}B", QLIK_UPDATE.len()), |b| {
        b.iter(|| {
            let m = decode_qlik_json(black_box(QLIK_UPDATE), &ctx, &cache, None);
            black_box(m.is_ok())
        })
    });
    // Floors, for reading the figure above: serde_json building a `Value` from the same bytes
    // (no checks), and serde_json merely validating them (what a lazy, raw-image model would pay).
    g.bench_function("baseline_serde_json_value", |b| {
        b.iter(|| {
            black_box(serde_json::from_slice::<serde_json::Value>(black_box(QLIK_UPDATE)).is_ok())
        })
    });
    g.bench_function("baseline_serde_json_validate_only", |b| {
        b.iter(|| {
            black_box(
                serde_json::from_slice::<serde::de::IgnoredAny>(black_box(QLIK_UPDATE)).is_ok(),
            )
        })
    });
    g.finish();
}

fn avro(c: &mut Criterion) {
    let (bytes, mut decoder) = avro_cached();
    let source = Source::new("dbo", "ORDERS");
    let ctx = source.ctx();
    let mut g = c.benchmark_group("avro");
    g.throughput(Throughput::Elements(1));
    g.bench_function(format!("decode_cached_update_{}B", bytes.len()), |b| {
        b.iter(|| {
            let e = decoder.decode(black_box(&bytes), &NoSchemaSource, &ctx, None, None);
            black_box(e.is_ok())
        })
    });
    g.finish();
}

/// 500 changes over 200 keys, so coalescing has work to do.
fn batch() -> Vec<CdcEvent> {
    let source = Source::new("dbo", "ORDERS");
    let ctx = source.ctx();
    let cache = MetadataCache::new();
    let template = match decode_qlik_json(QLIK_UPDATE, &ctx, &cache, None) {
        Ok(QlikMessage::Change(e)) => e,
        other => panic!("bench fixture must decode: {other:?}"),
    };
    (0..500u64)
        .map(|i| {
            let mut e = template.clone();
            let id = serde_json::Value::from((i % 200).to_string());
            e.key[0].value = id.clone();
            if let Some(after) = e.after.as_mut() {
                after.set("ORDER_ID", &id);
            }
            e.change_sequence = format!("20230911032410{:021}", 1000 - i);
            e
        })
        .collect()
}

fn apply_plan(c: &mut Criterion) {
    let events = batch();
    let routing = TableRouting::new("eda-cdc");
    let opts = PlanOptions {
        now_epoch_secs: 1_700_000_000,
        tombstone_ttl_secs: 7 * 86_400,
        refresh_started_at: None,
    };
    let mut g = c.benchmark_group("apply_plan");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("plan_batch_500", |b| {
        b.iter_batched(
            || (),
            |()| black_box(plan(black_box(&events), &routing, &opts)),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, qlik_json, avro, apply_plan);
criterion_main!(benches);
