//! The cost of one HTTP exchange of the lean client, for callgrind, `strace -c` and
//! `perf stat` (`make bench-ir`'s `exchange` path; `docs/perf/profile.md`).
//!
//! `exchange URL N [IN_FLIGHT]` writes N conditional `PutItem`s of a ~1 KB item through the lean
//! client (`DynamoDbItemWriter`, as the applier does) to the DynamoDB endpoint `URL` — meant to be
//! `eda-loadtest sink` in its own process, so that only the client's work is counted here —
//! with `IN_FLIGHT` calls at a time (default 1) on a two-worker runtime like the daemon's, and
//! prints `N of N exchanges` once every write was applied.
//!
//! The configuration is `config/local.toml` with the primary region's DynamoDB endpoint set to
//! `URL`; the sink checks no signatures.

use eda_actors::aws::{DynamoDbItemWriter, RegionClients};
use eda_actors::ports::ItemWriter;
use eda_core::apply_plan::{AttrValue, PlannedWrite, WriteOutcome, PK_ATTR, SEQ_ATTR};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The `n`th write: its own key, ~1 KB of attributes like a benchmark row.
fn write(n: usize) -> PlannedWrite {
    let sequence = format!("{n:020}");
    let mut item = BTreeMap::from([
        (
            PK_ATTR.to_string(),
            AttrValue::S(format!("SALES.CUSTOMERS#{n}")),
        ),
        (SEQ_ATTR.to_string(), AttrValue::S(sequence.clone())),
        ("AMOUNT".to_string(), AttrValue::N("-12345.6789".into())),
        ("ACTIVE".to_string(), AttrValue::Bool(n % 2 == 0)),
    ]);
    for column in 0..12 {
        item.insert(
            format!("COLUMN_{column}"),
            AttrValue::S(format!("{column:02} O'Brien \"Bob\" {}", "x".repeat(60))),
        );
    }
    PlannedWrite {
        table_name: "eda-exchange".to_string(),
        item,
        sequence,
        tombstone: false,
        winner: 0,
        covers: vec![0],
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(n)) = (
        args.get(1),
        args.get(2).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: exchange URL N [IN_FLIGHT]");
        std::process::exit(2);
    };
    let in_flight: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(1).max(1);
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/local.toml");
    std::env::set_var("EDA_REGIONS__PRIMARY__ENDPOINTS__DYNAMODB", url);
    let config = eda_config::Config::load(Some(&file)).expect("config/local.toml loads");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let applied = runtime.block_on(async {
        let clients = RegionClients::new(&config.regions.primary, &config.aws).await;
        let writer = DynamoDbItemWriter::new(&clients);
        let next = Arc::new(AtomicUsize::new(0));
        let applied = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..in_flight {
            let (writer, next, applied) = (writer.clone(), next.clone(), applied.clone());
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    match writer.write(&write(i)).await {
                        Ok(WriteOutcome::Applied { .. }) => {
                            applied.fetch_add(1, Ordering::Relaxed);
                        }
                        other => eprintln!("write {i}: {other:?}"),
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        applied.load(Ordering::Relaxed)
    });
    println!("{applied} of {n} exchanges");
}
