//! Every AWS call ends: an endpoint that takes a request and never answers gives a timeout
//! error after `aws.attempt_timeout_ms` (one attempt: the lean client leaves retries to eda's
//! own loop) instead of holding the caller, so an applier is never stuck on one write. The
//! black hole is the fault proxy in front of the real DynamoDB Local; no real server can be
//! made to hang on demand.

use super::fault_proxy::{Fault, FaultProxy};
use eda_actors::aws::{DynamoDbItemWriter, RegionClients};
use eda_actors::ports::ItemWriter;
use eda_actors::telemetry::ErrorClass;
use eda_core::apply_plan::WriteOutcome;
use eda_core::apply_plan::{AttrValue, PlannedWrite, PK_ATTR, SEQ_ATTR};
use eda_testkit::{local_config, Sinks};
use std::time::Duration;

#[tokio::test]
async fn a_black_holed_dynamodb_write_times_out_and_succeeds_once_the_path_is_back() {
    let sinks = Sinks::create_uninspected().await;
    let proxy = FaultProxy::start("127.0.0.1:8000".parse().expect("address")).await;
    let mut config = local_config();
    config.regions.primary.endpoints.dynamodb = Some(proxy.url());
    config.aws.attempt_timeout_ms = 300;
    let clients = RegionClients::new(&config.regions.primary, &config.aws).await;
    let writer = DynamoDbItemWriter::new(&clients);
    let sequence = eda_loadtest::history::sequence(1);
    let write = PlannedWrite {
        table_name: sinks.table.name.clone(),
        item: [
            (
                PK_ATTR.to_string(),
                AttrValue::S("SALES.CUSTOMERS#C1".into()),
            ),
            (SEQ_ATTR.to_string(), AttrValue::S(sequence.clone())),
        ]
        .into_iter()
        .collect(),
        sequence,
        tombstone: false,
        winner: 0,
        covers: vec![0],
    };

    proxy.set(Fault::BlackHole);
    // The bound only keeps a broken build from hanging the suite; the client ends the call
    // long before it.
    let failed = tokio::time::timeout(Duration::from_secs(60), writer.write(&write))
        .await
        .expect("the call ends on its own");
    let err = failed.expect_err("nothing answered, so the write cannot have succeeded");
    assert_eq!(err.class, ErrorClass::Timeout, "{err:?}");
    assert!(err.is_retryable(), "a timeout is worth another attempt");

    proxy.set(Fault::None);
    let outcome = tokio::time::timeout(Duration::from_secs(60), writer.write(&write))
        .await
        .expect("the call ends on its own")
        .expect("the write goes through once the path is back");
    assert!(
        matches!(outcome, WriteOutcome::Applied { previous: None }),
        "{outcome:?}"
    );
    assert!(sinks.table.items().await.contains_key("SALES.CUSTOMERS#C1"));
}
