//! The applier's writes gathered into `BatchExecuteStatement` calls (`actors/src/aws/dynamodb/
//! batch.rs`) against DynamoDB Local: every write is answered as its own `PutItem` would answer
//! it, and the table ends item for item as with one `PutItem` per write — through inserts,
//! updates, a dropped column, replays, deletes, a resurrection and a key's first `UPDATE`.

use eda_actors::aws::DynamoDbItemWriter;
use eda_actors::ports::ItemWriter;
use eda_core::apply_plan::{plan, PlanOptions, PlannedWrite, TableRouting, WriteOutcome};
use eda_core::cdc::{CdcEvent, Operation};
use eda_loadtest::history::{change_of, row_with_notes, sequence};
use eda_testkit::table::Table;
use eda_testkit::Sinks;
use serde_json::{Map, Value};

/// A change of key `key` at sequence `n`; `row` is its image (the before image of a delete).
fn change(key: u32, operation: Operation, n: u64, row: Map<String, Value>) -> CdcEvent {
    let mut event = change_of(&key.to_string(), operation, &sequence(n));
    if operation == Operation::Delete {
        event.before = Some(row.into());
    } else {
        event.after = Some(row.into());
    }
    event
}

/// The generated table's row of `key`, noted `note`.
fn row(key: u32, note: &str) -> Map<String, Value> {
    row_with_notes(&key.to_string(), note)
}

/// `row` without its `NAME` column and with an `EMAIL` (a column dropped, one added).
fn altered(key: u32, note: &str) -> Map<String, Value> {
    let mut row = row(key, note);
    row.remove("NAME");
    row.insert("EMAIL".into(), format!("{key}@example.com").into());
    row
}

/// Every write of `writes` at once, as the applier keeps them in flight.
async fn write_all(writer: &DynamoDbItemWriter, writes: &[PlannedWrite]) -> Vec<WriteOutcome> {
    futures_util::future::join_all(writes.iter().map(|w| writer.write(w)))
        .await
        .into_iter()
        .map(|outcome| outcome.expect("every write is answered"))
        .collect()
}

#[tokio::test]
async fn batched_writes_end_item_for_item_as_one_put_item_per_write_and_are_answered_alike() {
    let sinks = Sinks::create_uninspected().await;
    let batched_table = &sinks.table;
    let single_table = Table::create(&sinks.clients.dynamodb).await;
    let batched = DynamoDbItemWriter::new(&sinks.clients);
    let single = DynamoDbItemWriter::with_statements_per_call(&sinks.clients, 1);

    let rounds: Vec<(&str, Vec<CdcEvent>)> =
        vec![
            (
                "inserts of 30 new keys",
                (1..=30)
                    .map(|k| change(k, Operation::Insert, 100 + u64::from(k), row(k, "inserted")))
                    .collect(),
            ),
            (
                "updates of the same columns",
                (1..=30)
                    .map(|k| change(k, Operation::Update, 200 + u64::from(k), row(k, "updated")))
                    .collect(),
            ),
            (
                "a dropped and an added column, replays, deletes, a key's first UPDATE",
                (1..=10)
                    .map(|k| {
                        change(
                            k,
                            Operation::Update,
                            300 + u64::from(k),
                            altered(k, "altered"),
                        )
                    })
                    // Replays of round two and of round one: the guard refuses them.
                    .chain((11..=20).map(|k| {
                        change(k, Operation::Update, 200 + u64::from(k), row(k, "replayed"))
                    }))
                    .chain((21..=25).map(|k| {
                        change(k, Operation::Delete, 300 + u64::from(k), row(k, "deleted"))
                    }))
                    .chain((26..=30).map(|k| {
                        change(k, Operation::Insert, 100 + u64::from(k), row(k, "replayed"))
                    }))
                    .chain((31..=35).map(|k| {
                        change(
                            k,
                            Operation::Update,
                            300 + u64::from(k),
                            row(k, "first seen"),
                        )
                    }))
                    .collect(),
            ),
            (
                "inserts over tombstones, updates of the altered rows, an older delete",
                (21..=23)
                    .map(|k| change(k, Operation::Insert, 400 + u64::from(k), row(k, "again")))
                    .chain((1..=10).map(|k| {
                        change(
                            k,
                            Operation::Update,
                            400 + u64::from(k),
                            altered(k, "altered again"),
                        )
                    }))
                    .chain(std::iter::once(change(
                        11,
                        Operation::Delete,
                        150,
                        row(11, "old"),
                    )))
                    .collect(),
            ),
        ];
    let opts = PlanOptions {
        now_epoch_secs: 1_800_000_000,
        tombstone_ttl_secs: 3_600,
        refresh_started_at: None,
    };
    for (round, events) in rounds {
        let on_batched = plan(&events, &TableRouting::new(&batched_table.name), &opts);
        let on_single = plan(&events, &TableRouting::new(&single_table.name), &opts);
        assert!(
            on_batched.rejected.is_empty(),
            "{round}: {:?}",
            on_batched.rejected
        );
        let (answers, expected) = tokio::join!(
            write_all(&batched, &on_batched.writes),
            write_all(&single, &on_single.writes)
        );
        assert_eq!(
            answers, expected,
            "{round}: each write answered as its PutItem is"
        );
        let (got, wanted) = (batched_table.items().await, single_table.items().await);
        let differ: Vec<_> = wanted
            .iter()
            .filter(|(pk, item)| got.get(*pk) != Some(item))
            .map(|(pk, item)| (pk, got.get(pk), item))
            .collect();
        assert!(
            differ.is_empty() && got.len() == wanted.len(),
            "{round}: the table holds what one PutItem per write leaves; (pk, batched, PutItem): \
             {differ:#?}"
        );
    }
    let items = batched_table.items().await;
    assert_eq!(items.len(), 35);
    let altered = &items[&eda_loadtest::history::pk("7")];
    assert!(
        !altered.contains_key("NAME") && altered.contains_key("EMAIL"),
        "the dropped column is gone: {altered:?}"
    );
}
