//! A poison storm: many malformed messages and a few very large ones of garbage, mixed into a
//! good history. Each one lands in the DLQ with its context, the good changes are applied and
//! published, and the commits reach the end: the DLQ writer is never wedged by a letter SQS
//! refuses (a batch of large letters over SQS's batch limit, a letter over its message limit).

use eda_loadtest::history::{History, HistorySpec, Record};
use eda_testkit::chaos::{judge, watch_events, Outcome};
use eda_testkit::{init_logs, Scenario, Sinks};
use serde_json::Value;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Bytes of each large poison message: over SQS's 256 KiB message limit.
const LARGE: usize = 300 * 1024;

/// Large poison messages in the storm.
const LARGE_COUNT: usize = 10;

/// Malformed (not JSON) messages in the storm.
const MALFORMED: usize = 1_000;

/// `count` messages of `bytes` bytes that are no wire format at all.
fn garbage(count: usize, bytes: usize) -> Vec<Record> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        // xorshift64: bytes with no structure.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state.to_le_bytes()[0]
    };
    (0..count)
        .map(|_| Record {
            key: None,
            partition: None,
            value: (0..bytes).map(|_| next()).collect(),
            original: false,
        })
        .collect()
}

/// The storm through an in-process pipeline; judged, with the letters' context checked.
pub async fn poison_storm() -> Outcome {
    init_logs();
    let scenario = Scenario::new(Sinks::create().await, 4).await;
    let history = History::generate(&HistorySpec {
        seed: 31,
        keys: 200,
        changes_per_key: 3,
        poison: MALFORMED,
        ..HistorySpec::default()
    });
    scenario.produce(&history.records).await;
    // One after another, so their letters meet in one DLQ batch.
    scenario.produce(&garbage(LARGE_COUNT, LARGE)).await;
    let poison = MALFORMED + LARGE_COUNT;
    let events = watch_events(&scenario, &history, Duration::from_secs(180));
    let started = Instant::now();
    let (pipeline, obs) = scenario.start().await;

    // The letters first, read (and deleted) here: the judge then expects none left.
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

    let mut outcome = judge(
        &format!("poison storm: {MALFORMED} malformed + {LARGE_COUNT} x 300 KB"),
        &scenario,
        &history,
        events,
        0,
        started,
        Duration::from_secs(120),
    )
    .await;
    // The letters were read above; count them in the row.
    outcome.dead_letters += letters.len();
    outcome.poison = poison;
    pipeline.shutdown().await;
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_storm_lands_in_the_dlq_with_context_and_nothing_wedges() {
    poison_storm().await.assert_nothing_lost();
}
