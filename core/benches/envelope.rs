//! Cross-region packing cost of a realistic ~1 KB Qlik CDC event, with and without the shipped
//! zstd dictionary, and the compression ratio each achieves.

// The daemon's and the Lambda binaries' allocator, so the figures are theirs.
#[global_allocator]
static ALLOC: eda_core::alloc::Mimalloc = eda_core::alloc::Mimalloc;

use chrono::{DateTime, Utc};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use eda_config::RoutingConfig;
use eda_core::envelope::{samples, Dictionary, EntryTarget, EnvelopeMeta, EnvelopePacker};

fn bench(c: &mut Criterion) {
    // Seeds outside the training set (0..4000), so the dictionary has not seen these events.
    let payload = (1_000_000..1_010_000)
        .map(samples::cdc_message)
        .find(|m| (950..=1_100).contains(&m.len()))
        .expect("a ~1 KB sample");
    let meta = EnvelopeMeta {
        event_id: "0b7c5b1e-8a3f-4d1e-9d7a-2f4f1c9b6e11",
        source_region: "us-west-2",
        target_region: "us-east-1",
        event_type: "cdc.SALES.ORDERS",
        correlation_id: Some("corr-1"),
        traceparent: None,
        created_at: DateTime::<Utc>::from_timestamp(1_714_564_800, 0).unwrap_or_default(),
    };
    let target = EntryTarget {
        source: "eda.cross-region",
        event_bus_name: Some("eda-bus-us-east-1"),
    };

    let plain_cfg = RoutingConfig::default();
    let dict_cfg = RoutingConfig {
        dictionary_path: Some("dictionaries/cdc-v1.zdict".into()),
        ..RoutingConfig::default()
    };
    let mut group = c.benchmark_group("envelope");
    for (name, cfg, dict) in [
        ("pack_1k_cdc_plain", &plain_cfg, None),
        (
            "pack_1k_cdc_dictionary",
            &dict_cfg,
            Some(Dictionary::shipped().expect("shipped dictionary")),
        ),
    ] {
        let mut packer = EnvelopePacker::new(cfg, dict).expect("packer");
        let packed = packer
            .pack_entry(&meta, payload.as_bytes(), &target, None)
            .expect("pack");
        let env = &packed.envelope;
        println!(
            "{name}: payload {} B -> zstd {} B (ratio {:.2}x, {:.1}% saved), entry {} B",
            env.original_size,
            env.compressed_size,
            env.original_size as f64 / env.compressed_size as f64,
            100.0 * (1.0 - env.compressed_size as f64 / env.original_size as f64),
            packed.entry.size(),
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                black_box(
                    packer
                        .pack_entry(&meta, black_box(payload.as_bytes()), &target, None)
                        .expect("pack"),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
