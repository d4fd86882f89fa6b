//! A daemon pipeline (in this process) reads a messy history from the local broker and writes
//! it into the sink: the sink's table ends exact against the source and every change's event
//! is counted, in the primary (change events) and the secondary (cross-region envelopes).

use crate::{config_on, start_sink};
use eda_actors::aws::RegionClients;
use eda_actors::pipeline::{Observability, Pipeline};
use eda_loadtest::bench::metrics::Settled;
use eda_loadtest::history::{History, HistorySpec};
use eda_loadtest::sink::dynamodb::KeySchema;
use eda_loadtest::sink::SinkOptions;
use eda_loadtest::verify;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pipeline_run_against_the_sink_leaves_the_table_exact_and_every_event_counted() {
    let tables = HashMap::from([(
        "eda-qlik-metadata".to_string(),
        KeySchema::parse("pk,version").expect("schema"),
    )]);
    let (sink, url, _stop) = start_sink(SinkOptions {
        tables,
        latency: "uniform:0..2".parse().expect("latency"),
        ..SinkOptions::default()
    })
    .await;
    let history = History::generate(&HistorySpec {
        seed: 31,
        keys: 400,
        changes_per_key: 4,
        duplicate_rate: 0.1,
        redelivery_rate: 0.1,
        delete_rate: 0.25,
        metadata_partitions: 4,
        ..HistorySpec::default()
    });
    let run = uuid::Uuid::new_v4().simple().to_string();
    let topic = format!("eda-sink-it-{}", &run[..8]);
    let mut config = config_on(&url);
    config.kafka.topics = vec![topic.clone()];
    config.kafka.group_id = format!("eda-sink-it-{}", &run[..8]);
    // The history's metadata messages name the key; no fallback needed.
    config.kafka.key_columns.clear();
    eda_loadtest::kafka::create_topic(&config.kafka.brokers, &topic, 4)
        .await
        .expect("topic");
    let producer = eda_loadtest::kafka::producer(&config.kafka.brokers).expect("producer");
    eda_loadtest::kafka::produce(&producer, &topic, &history.records)
        .await
        .expect("produce");

    let obs = Observability::new(&config);
    let metrics = obs.metrics.clone();
    let config = Arc::new(config);
    let pipeline = Pipeline::start(config.clone(), obs)
        .await
        .expect("pipeline");
    let total = history.records.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let settled = Settled::parse(&metrics.encode().unwrap_or_default(), &topic).count;
        if settled >= total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {settled} of {total} messages settled in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pipeline.shutdown().await;

    let clients = RegionClients::new(&config.regions.primary, &config.aws).await;
    let items = verify::scan_table(&clients.dynamodb, &config.regions.primary.cdc_table)
        .await
        .expect("scan");
    let mismatches = verify::table_mismatches(&items, &history);
    assert!(
        mismatches.is_empty(),
        "the table differs from the source: {mismatches:?}"
    );
    let owed = verify::owed_event_ids(&history, &eda_core::cdc::FallbackKeys::none());
    assert_eq!(owed.len(), history.changes);
    for (region, source) in [("us-west-2", "eda.cdc"), ("us-east-1", "eda.cross-region")] {
        let seen: HashSet<String> = sink.event_ids(region, source).into_iter().collect();
        let (missing, shown) = verify::missing_events(&owed, &seen, 5);
        assert_eq!(missing, 0, "{source} events missing in {region}: {shown:?}");
    }
    let stats = sink.stats();
    assert_eq!(
        stats["tables"]["us-west-2/eda-qlik-metadata"]["items"], 1,
        "the table's structure, recorded once: {stats}"
    );
}
