//! A poison storm: many malformed messages and a few very large ones of garbage, mixed into a
//! good history. Each one lands in the DLQ with its context, the good changes are applied and
//! published, and the commits reach the end: the DLQ writer is never wedged by a letter SQS
//! refuses (a batch of large letters over SQS's batch limit, a letter over its message limit).

use eda_loadtest::history::{History, HistorySpec, Record};
use eda_testkit::{init_logs, Scenario, Sinks};
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;

/// Bytes of each large poison message: over SQS's 256 KiB message limit.
const LARGE: usize = 300 * 1024;

/// Large poison messages in the storm.
const LARGE_COUNT: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_storm_lands_in_the_dlq_with_context_and_nothing_wedges() {
    init_logs();
    let scenario = Scenario::new(Sinks::create().await, 4).await;
    let history = History::generate(&HistorySpec {
        seed: 31,
        keys: 200,
        changes_per_key: 3,
        poison: 1_000,
        ..HistorySpec::default()
    });
    // Ten messages of 300 KB of bytes that are no wire format at all, one after another, so
    // their letters meet in one DLQ batch.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut garbage = || {
        // xorshift64: bytes with no structure at all.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state.to_le_bytes()[0]
    };
    let large: Vec<Record> = (0..LARGE_COUNT)
        .map(|_| Record {
            key: None,
            value: (0..LARGE).map(|_| garbage()).collect(),
            original: false,
        })
        .collect();
    scenario.produce(&history.records).await;
    scenario.produce(&large).await;
    let poison = 1_000 + LARGE_COUNT;
    let events = {
        let queue = scenario.sinks.inspect.clone().expect("inspected sinks");
        let want = history.changes;
        tokio::spawn(async move {
            queue
                .drain_until_distinct(want, Duration::from_secs(180))
                .await
        })
    };
    let (pipeline, obs) = scenario.start().await;

    let settled = scenario
        .settle(&history, Duration::from_secs(120), &[])
        .await;
    assert!(
        settled.mismatches.is_empty(),
        "the good changes among the poison: {settled}"
    );
    let ids = eda_testkit::events::event_ids(&events.await.expect("event reader"));
    assert_eq!(ids.len(), history.changes, "every good change's event");

    let letters = scenario
        .sinks
        .dlq
        .drain(poison, Duration::from_secs(120))
        .await;
    let mut offsets = HashSet::new();
    let mut large_letters = 0;
    for letter in &letters {
        let letter: Value = serde_json::from_str(letter).expect("a dead letter is JSON");
        assert_eq!(letter["stage"], "decode", "{letter}");
        assert_eq!(letter["source"]["topic"], scenario.topic.as_str());
        let partition = letter["source"]["partition"].as_i64().expect("partition");
        let offset = letter["source"]["offset"].as_i64().expect("offset");
        offsets.insert((partition, offset));
        if letter["original_size"].as_u64() == Some(LARGE as u64) {
            large_letters += 1;
            assert_eq!(
                letter["payload_truncated"], true,
                "a 300 KB payload is cut to fit SQS, and says so"
            );
        }
    }
    assert_eq!(
        offsets.len(),
        poison,
        "every poison message is dead-lettered once ({} letters read)",
        letters.len()
    );
    assert_eq!(large_letters, LARGE_COUNT, "the large ones among them");

    let text = obs.metrics.encode().expect("metrics encode");
    assert!(
        text.contains(&format!(
            "eda_dlq_messages_total{{source=\"kafka\",error_class=\"decode\"}} {poison}"
        )),
        "{text}"
    );
    pipeline.shutdown().await;
    let at_end = scenario.committed_to_the_end(Duration::from_secs(10)).await;
    assert!(
        at_end.is_ok(),
        "the group committed to the end of every partition: {at_end:?}"
    );
}
