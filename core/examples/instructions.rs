//! Runs one hot path of the pure core `N` times, for `make bench-ir`, which counts the
//! instructions under callgrind: `(Ir(3000) - Ir(1000)) / 2000` is the cost of one event, exact
//! to a few instructions. On a shared or virtual machine, where wall-clock figures move by tens
//! of percent from one minute to the next, that is the figure to compare two versions of the code
//! by (criterion's `make bench` stays the one for per-event time).
//!
//! `cargo run --release -p eda-core --example instructions -- qlik|avro|entry N`
//!
//! - `qlik`: the `pipeline` bench's path: Qlik JSON decode, the change as a `BaseEvent`, the
//!   transformer (1364-byte update).
//! - `avro`: the `decode` bench's Avro decode with a cached schema (388-byte update).
//! - `entry`: the strings of one `PutEvents` entry as the lean client writes them into the
//!   request body (`Source`, `DetailType`, `Detail`, `EventBusName`), for the `qlik` path's
//!   change event (its `Detail` is that event as JSON, escaped into a JSON string).

use std::hint::black_box;
use std::sync::Arc;

use eda_core::cdc::{decode_qlik_json, MetadataCache, NoSchemaSource, QlikMessage};
use eda_core::change_event::{change_entry, into_base_event};

#[path = "../benches/workloads.rs"]
mod workloads;
use workloads::{avro_cached, pipeline_transformer, Source, QLIK_UPDATE};

// The binaries' allocator, as in the benches.
#[global_allocator]
static ALLOC: eda_core::alloc::Mimalloc = eda_core::alloc::Mimalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, n) = match args.as_slice() {
        [path, n] => match n.parse::<usize>() {
            Ok(n) => (path.as_str(), n),
            Err(_) => usage(),
        },
        _ => usage(),
    };
    let done = match path {
        "qlik" => qlik(n),
        "avro" => avro(n),
        "entry" => entry(n),
        _ => usage(),
    };
    println!("{done} of {n} events");
}

fn usage() -> ! {
    eprintln!("usage: instructions qlik|avro|entry N");
    std::process::exit(2)
}

/// Decode+transform `n` times; how many came out valid (all of them, or the figure is wrong).
fn qlik(n: usize) -> usize {
    let source = Source::new("SALES", "ORDERS");
    let ctx = source.ctx();
    let (transformer, region) = pipeline_transformer();
    let now = chrono::Utc::now();
    let metadata = MetadataCache::new();
    let mut valid = 0;
    for _ in 0..n {
        let Ok(QlikMessage::Change(event)) =
            decode_qlik_json(black_box(QLIK_UPDATE), &ctx, &metadata, None)
        else {
            continue;
        };
        let out = transformer.transform(into_base_event(event, Arc::clone(&region)), now);
        valid += usize::from(out.is_valid());
        drop(black_box(out));
    }
    valid
}

/// Avro decode with a cached schema `n` times; how many decoded.
fn avro(n: usize) -> usize {
    let (bytes, mut decoder) = avro_cached();
    let source = Source::new("dbo", "ORDERS");
    let ctx = source.ctx();
    let mut decoded = 0;
    for _ in 0..n {
        let event = decoder.decode(black_box(&bytes), &NoSchemaSource, &ctx, None, None);
        decoded += usize::from(event.is_ok());
        drop(black_box(event));
    }
    decoded
}

/// The strings of the `qlik` path's `PutEvents` entry escaped into a body buffer (reused, as the
/// lean client reuses its per-thread buffer) `n` times; how many came out whole.
fn entry(n: usize) -> usize {
    let source = Source::new("SALES", "ORDERS");
    let ctx = source.ctx();
    let (_, region) = pipeline_transformer();
    let Ok(QlikMessage::Change(event)) =
        decode_qlik_json(QLIK_UPDATE, &ctx, &MetadataCache::new(), None)
    else {
        panic!("the Qlik update decodes");
    };
    let entry = change_entry(&into_base_event(event, region), "eda.cdc", "eda-bus");
    let bus = entry.event_bus_name.as_deref().unwrap_or_default();
    let mut out = Vec::with_capacity(4096);
    let mut whole = 0;
    for _ in 0..n {
        out.clear();
        for text in [&entry.source, &entry.detail_type, &entry.detail] {
            eda_core::json_string::write(&mut out, black_box(text));
        }
        eda_core::json_string::write(&mut out, black_box(bus));
        whole += usize::from(out.len() > entry.detail.len() + 2);
        black_box(&out);
    }
    whole
}
