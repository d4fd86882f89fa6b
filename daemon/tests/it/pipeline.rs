//! The daemon's pipeline against the local stack: a real broker, DynamoDB Local and the AWS
//! stand-in (ministack).

use eda_actors::cdc_applier::CdcApplierMsg;
use eda_actors::pipeline::applier_name;
use eda_loadtest::history::{History, HistorySpec};
use eda_testkit::{init_logs, scenario, Scenario, Sinks};
use ractor::ActorRef;
use serde_json::Value;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_messy_history_ends_as_the_source_with_one_event_per_change_and_poison_in_the_dlq() {
    init_logs();
    let history = History::generate(&HistorySpec {
        seed: 21,
        keys: 750,
        changes_per_key: 4,
        duplicate_rate: 0.08,
        redelivery_rate: 0.08,
        delete_rate: 0.25,
        poison: 3,
        ..HistorySpec::default()
    });
    let mut run = scenario(&history, Sinks::create().await, |_| {}).await;
    assert!(
        run.settled.mismatches.is_empty(),
        "table differs from the source: {}",
        run.settled
    );

    let ids = eda_testkit::events::event_ids(&run.events().await);
    assert_eq!(ids.len(), history.changes, "one event per applied change");

    let letters = run
        .scenario
        .sinks
        .dlq
        .drain(3, Duration::from_secs(30))
        .await;
    assert_eq!(letters.len(), 3, "every poison message is dead-lettered");
    for letter in &letters {
        let letter: Value = serde_json::from_str(letter).expect("dead letter is JSON");
        assert_eq!(letter["stage"], "decode");
        assert_eq!(letter["error_class"], "decode");
        assert_eq!(letter["source"]["topic"], run.scenario.topic.as_str());
        assert!(letter["source"]["offset"].as_i64().is_some());
        assert!(letter["source"]["partition"].as_i64().is_some());
    }
    let text = run.metrics.encode().expect("metrics encode");
    assert!(
        text.contains("eda_dlq_messages_total{source=\"kafka\",error_class=\"decode\"} 3"),
        "{text}"
    );
    run.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_applier_that_panics_is_restarted_and_no_message_is_skipped() {
    init_logs();
    let scenario = Scenario::new(Sinks::create_uninspected().await, 4).await;
    let history = History::generate(&HistorySpec {
        seed: 5,
        keys: 750,
        changes_per_key: 4,
        ..HistorySpec::default()
    });
    // Let traffic flow, then make an applier fail mid-stream.
    let (pipeline, obs) = scenario.start_halfway(&history).await;
    let applier: ActorRef<CdcApplierMsg> = pipeline
        .child(&applier_name(0))
        .await
        .expect("applier-0 runs")
        .into();
    applier.cast(CdcApplierMsg::InjectPanic).expect("sent");
    scenario.produce_rest(&history).await;

    let settled = scenario
        .settle(&history, Duration::from_secs(120), &[])
        .await;
    assert!(
        settled.mismatches.is_empty(),
        "after the restart the table differs: {settled}"
    );
    let text = obs.metrics.encode().expect("metrics encode");
    let restarts: f64 = text
        .lines()
        .filter(|l| l.starts_with("eda_actor_restarts_total{actor=\"cdc_applier\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(restarts >= 1.0, "the restart is counted: {text}");
    let fresh = pipeline
        .child(&applier_name(0))
        .await
        .expect("applier-0 runs again");
    assert_ne!(fresh.get_id(), applier.get_id(), "a new instance");
    pipeline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn qlik_avro_through_the_schema_registry_ends_as_the_source() {
    init_logs();
    // The history's records name the schema id, which the topic's subject gets first.
    let mut scenario = Scenario::new(Sinks::create_uninspected().await, 4).await;
    let id = scenario.use_avro().await;
    let history = History::generate(&HistorySpec {
        seed: 3,
        keys: 500,
        changes_per_key: 3,
        encoding: eda_loadtest::history::Encoding::Avro(id),
        ..HistorySpec::default()
    });
    scenario.produce(&history.records).await;
    let (pipeline, _) = scenario.start().await;
    let settled = scenario
        .settle(&history, Duration::from_secs(120), &[])
        .await;
    assert!(
        settled.mismatches.is_empty(),
        "Avro: the table differs from the source: {settled}"
    );
    pipeline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_member_joining_mid_run_shares_the_partitions_and_nothing_is_lost() {
    init_logs();
    let scenario = Scenario::new(Sinks::create_uninspected().await, 4).await;
    let history = History::generate(&HistorySpec {
        seed: 17,
        keys: 750,
        changes_per_key: 4,
        ..HistorySpec::default()
    });
    let (first, first_obs) = scenario.start_halfway(&history).await;
    // Same group: the partitions are revoked (drained, committed) and shared out again.
    let (second, second_obs) = scenario.start().await;
    scenario.produce_rest(&history).await;

    let (first_ready, second_ready) = (first_obs.readiness, second_obs.readiness);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while first_ready.partitions_assigned() + second_ready.partitions_assigned() != 4
        || first_ready.partitions_assigned() == 4
    {
        assert!(
            std::time::Instant::now() < deadline,
            "partitions not shared: {} + {}",
            first_ready.partitions_assigned(),
            second_ready.partitions_assigned()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let settled = scenario
        .settle(&history, Duration::from_secs(120), &[])
        .await;
    assert!(
        settled.mismatches.is_empty(),
        "after the rebalance the table differs: {settled}"
    );
    second.shutdown().await;
    first.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partition_held_at_its_in_flight_limit_skips_nothing() {
    init_logs();
    let history = History::generate(&HistorySpec {
        seed: 8,
        keys: 750,
        changes_per_key: 4,
        ..HistorySpec::default()
    });
    // ~430 messages per partition against room for 100: the reader waits for acknowledgements
    // again and again (this once lost the messages librdkafka had prefetched during a pause).
    let run = scenario(&history, Sinks::create_uninspected().await, |config| {
        config.kafka.max_in_flight_per_partition = 100;
        config.kafka.batch_max = 50;
    })
    .await;
    assert!(
        run.settled.mismatches.is_empty(),
        "under flow control the table differs: {}",
        run.settled
    );
    run.shutdown().await;
}
