//! Runs one hot path of the pure core `N` times, for `make bench-ir`, which counts the
//! instructions under callgrind: `(Ir(3000) - Ir(1000)) / 2000` is the cost of one event, exact
//! to a few instructions. On a shared or virtual machine, where wall-clock figures move by tens
//! of percent from one minute to the next, that is the figure to compare two versions of the code
//! by (criterion's `make bench` stays the one for per-event time).
//!
//! `cargo run --release -p eda-core --example instructions -- qlik|avro|entry|change|envelope|message N`
//!
//! - `qlik`: the `pipeline` bench's path: Qlik JSON decode, the change as a `BaseEvent`, the
//!   transformer (1364-byte update).
//! - `avro`: the `decode` bench's Avro decode with a cached schema (388-byte update).
//! - `entry`: the strings of one `PutEvents` entry as the lean client writes them into the
//!   request body (`Source`, `DetailType`, `Detail`, `EventBusName`), for the `qlik` path's
//!   change event (its `Detail` is that event as JSON, copied into the body in the string form
//!   it was written in alongside its JSON).
//! - `change`: from the `qlik` path's change event to the bytes of its `PutEvents` entry in the
//!   body: the entry built (its `Detail` written, as JSON and as a JSON string in one pass)
//!   and its strings written as `entry` writes them.
//! - `envelope`: the cross-region copy of that change event, as a region router makes it with
//!   the default `routing` settings: the envelope packed (SHA-256, zstd, base64) into its entry,
//!   and the entry's strings written into the body. It also prints the compression ratio.
//! - `message`: one Kafka message's bytes decoded, routed, planned and handed off up to its
//!   entry, as the partition consumer and the CDC applier do it (`message/mod.rs`; the
//!   `allocations` example counts its allocation calls).

use std::hint::black_box;
use std::sync::Arc;

use eda_config::RoutingConfig;
use eda_core::cdc::{decode_qlik_json, MetadataCache, NoSchemaSource, QlikMessage};
use eda_core::change_event::{change_entry, into_base_event};
use eda_core::envelope::{EntryTarget, EnvelopeMeta, EnvelopePacker};
use eda_core::eventbridge::EventBridgeEntry;
use eda_core::transform::BaseEvent;

mod message;
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
        "change" => change(n),
        "envelope" => envelope(n),
        "message" => message::run(&message::Setup::new(), n),
        _ => usage(),
    };
    println!("{done} of {n} events");
}

fn usage() -> ! {
    eprintln!("usage: instructions qlik|avro|entry|change|envelope|message N");
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

/// The `qlik` path's change as the business event the publisher sends.
fn change_event() -> BaseEvent {
    let source = Source::new("SALES", "ORDERS");
    let ctx = source.ctx();
    let (_, region) = pipeline_transformer();
    let Ok(QlikMessage::Change(event)) =
        decode_qlik_json(QLIK_UPDATE, &ctx, &MetadataCache::new(), None)
    else {
        panic!("the Qlik update decodes");
    };
    into_base_event(event, region)
}

/// The strings of one `PutEvents` entry written into `out`, as the lean client writes them:
/// `Source`, `DetailType` and `EventBusName` escaped, `Detail` copied in the string form it
/// was made with.
fn write_entry(out: &mut Vec<u8>, entry: &EventBridgeEntry) {
    let bus = entry.event_bus_name.as_deref().unwrap_or_default();
    for text in [&entry.source, &entry.detail_type] {
        eda_core::json_string::write(out, black_box(text));
    }
    out.extend_from_slice(black_box(entry.detail.quoted()));
    eda_core::json_string::write(out, black_box(bus));
}

/// The strings of the `qlik` path's `PutEvents` entry escaped into a body buffer (reused, as the
/// lean client reuses its per-thread buffer) `n` times; how many came out whole.
fn entry(n: usize) -> usize {
    let entry = change_entry(&change_event(), "eda.cdc", "eda-bus");
    let mut out = Vec::with_capacity(4096);
    let mut whole = 0;
    for _ in 0..n {
        out.clear();
        write_entry(&mut out, &entry);
        whole += usize::from(out.len() > entry.detail.len() + 2);
        black_box(&out);
    }
    whole
}

/// The `qlik` path's change event made into its entry and written into a body buffer `n`
/// times; how many came out whole.
fn change(n: usize) -> usize {
    let event = change_event();
    let mut out = Vec::with_capacity(4096);
    let mut whole = 0;
    for _ in 0..n {
        out.clear();
        let entry = change_entry(black_box(&event), "eda.cdc", "eda-bus");
        write_entry(&mut out, &entry);
        whole += usize::from(out.len() > entry.detail.len() + 2);
        black_box(&out);
    }
    whole
}

/// The `qlik` path's change event (its published detail) packed into a cross-region entry with
/// the default routing settings and written into a body buffer `n` times; how many came out
/// whole. Prints the payload's size before and after compression.
fn envelope(n: usize) -> usize {
    let event = change_event();
    let payload = change_entry(&event, "eda.cdc", "eda-bus")
        .detail
        .shared_text();
    let payload = payload.as_bytes();
    let mut packer = EnvelopePacker::new(&RoutingConfig::default(), None).expect("packer");
    let meta = EnvelopeMeta {
        event_id: &event.event_id,
        source_region: "us-west-2",
        target_region: "us-east-1",
        event_type: &event.event_type,
        correlation_id: event.correlation_id.as_deref(),
        traceparent: None,
        created_at: chrono::DateTime::from_timestamp(1_714_564_800, 123_000_000)
            .unwrap_or_default(),
    };
    let target = EntryTarget {
        source: "eda.cross-region",
        event_bus_name: Some("eda-bus-us-east-1"),
    };
    let mut out = Vec::with_capacity(4096);
    let mut whole = 0;
    let mut sizes = (0, 0, 0);
    for _ in 0..n {
        out.clear();
        let Ok(packed) = packer.pack_entry(&meta, black_box(payload), &target, None) else {
            continue;
        };
        write_entry(&mut out, &packed.entry);
        sizes = (
            packed.envelope.original_size,
            packed.envelope.compressed_size,
            packed.entry.size(),
        );
        whole += usize::from(out.len() > packed.entry.detail.len() + 2);
        black_box(&out);
    }
    let (original, compressed, entry) = sizes;
    println!(
        "envelope: payload {original} B -> zstd {compressed} B (ratio {:.2}), entry {entry} B",
        original as f64 / compressed.max(1) as f64
    );
    whole
}
