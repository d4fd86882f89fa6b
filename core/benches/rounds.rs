//! The two throughput goals measured by rounds, beside criterion's figures.
//!
//! Criterion reports a mean (its slope estimate), which on a shared virtual machine carries
//! every pause the host imposes: the same code's figure moved by 30 % between runs minutes apart.
//! This bench runs each path in rounds of 20,000 events, interleaved, and prints the best round
//! (what one core does when it is not interrupted: the figure to hold the goals to), the tenth
//! percentile and the median (how much the machine took away).
//!
//! - `pipeline/qlik_json_decode_transform_1364B`: the `pipeline` bench's path (Qlik JSON decode,
//!   the change as a `BaseEvent`, the transformer); goal ≥ 500K events/s, ≤ 2 µs per event.
//! - `avro/decode_cached_update_388B`: the `decode` bench's Avro decode with a cached schema;
//!   goal ≥ 300K events/s.
//!
//! `cargo bench -p eda-core --bench rounds` (part of `make bench`).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use eda_core::cdc::{decode_qlik_json, MetadataCache, NoSchemaSource, QlikMessage};
use eda_core::change_event::into_base_event;

// The binaries' allocator, as in the other benches.
#[global_allocator]
static ALLOC: eda_core::alloc::Mimalloc = eda_core::alloc::Mimalloc;

#[path = "workloads.rs"]
mod workloads;
use workloads::{avro_cached, pipeline_transformer, Source, QLIK_UPDATE};

const ROUNDS: usize = 150;
const EVENTS: u32 = 20_000;

fn main() {
    // `cargo bench -- FILTER` hands criterion's filter to every bench: run only on a match.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted =
        |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));

    let source = Source::new("SALES", "ORDERS");
    let ctx = source.ctx();
    let (transformer, region) = pipeline_transformer();
    let now = chrono::Utc::now();
    let metadata = MetadataCache::new();
    let mut qlik = || {
        let Ok(QlikMessage::Change(event)) =
            decode_qlik_json(black_box(QLIK_UPDATE), &ctx, &metadata, None)
        else {
            return false;
        };
        let out = transformer.transform(into_base_event(event, Arc::clone(&region)), now);
        black_box(out).is_valid()
    };

    let avro_source = Source::new("dbo", "ORDERS");
    let avro_ctx = avro_source.ctx();
    let (avro_bytes, mut decoder) = avro_cached();
    let mut avro = || {
        black_box(decoder.decode(
            black_box(&avro_bytes),
            &NoSchemaSource,
            &avro_ctx,
            None,
            None,
        ))
        .is_ok()
    };

    let mut paths = vec![
        Path::new("pipeline/qlik_json_decode_transform_1364B", &mut qlik),
        Path::new("avro/decode_cached_update_388B", &mut avro),
    ];
    paths.retain(|p| wanted(p.name));
    if paths.is_empty() {
        return;
    }
    // Every event must go through, or the figure would time an error path.
    for Path { name, run, .. } in &mut paths {
        assert!(run(), "{name}: the workload failed");
    }
    for _ in 0..ROUNDS {
        for Path { name, run, times } in &mut paths {
            let start = Instant::now();
            let mut ok = 0u32;
            for _ in 0..EVENTS {
                ok += u32::from(run());
            }
            let per_event = start.elapsed().as_nanos() as f64 / f64::from(EVENTS);
            assert_eq!(ok, EVENTS, "{name}: an event failed");
            times.push(per_event);
        }
    }
    println!("rounds of {EVENTS} events, {ROUNDS} per path, interleaved; per event:");
    for Path {
        name, mut times, ..
    } in paths
    {
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        let (best, p10, median) = (times[0], at(0.1), at(0.5));
        println!(
            "{name}: best {best:.0} ns ({:.0}K events/s), p10 {p10:.0} ns, median {median:.0} ns ({:.0}K events/s)",
            1e6 / best,
            1e6 / median,
        );
    }
}

/// One measured path: its name, one event's work, and the per-event time of each round.
struct Path<'a> {
    name: &'static str,
    run: &'a mut dyn FnMut() -> bool,
    times: Vec<f64>,
}

impl<'a> Path<'a> {
    fn new(name: &'static str, run: &'a mut dyn FnMut() -> bool) -> Self {
        Path {
            name,
            run,
            times: Vec::with_capacity(ROUNDS),
        }
    }
}
