//! Key-changing UPDATEs: an UPDATE whose before image names another key than its after image
//! moves the row from one item to another. It is applied, and published, as two changes of the
//! same sequence: the DELETE of the old key (a tombstone) and the INSERT of the new key.
//!
//! Why two changes and not one write of both items: each key's changes must be applied in the
//! order the partition holds them, and the two keys may belong to different appliers
//! ([`applier_for`](super::applier_for)). Split before routing, the DELETE queues behind the old
//! key's earlier changes on the old key's applier and the INSERT behind the new key's on its
//! own, so neither key sees the move out of order. The two events are what the item writes
//! record, so the `stream-processor` (which sees a tombstone and a new item) publishes the same
//! two events under the same ids (table, key, sequence).
//!
//! The halves are made from the message alone, so a replay after a crash makes the same two
//! changes with the same ids; the message counts as acknowledged once both are.

use super::render_pk;
use crate::cdc::{CdcEvent, KeyColumn, Operation};

/// The old key's values when `event` is an UPDATE that moves its row to another key: its before
/// image has every key column and renders another `pk` than its key.
fn moved_from(event: &CdcEvent) -> Option<Vec<KeyColumn>> {
    if event.operation != Operation::Update {
        return None;
    }
    let before = event.before.as_ref()?;
    let old: Vec<KeyColumn> = event
        .key
        .iter()
        .map(|k| {
            before.get(&k.name).map(|cell| KeyColumn {
                name: k.name.clone(),
                value: cell.to_value(),
            })
        })
        .collect::<Option<_>>()?;
    let rendered = |key: &[KeyColumn]| render_pk(&event.table, key.iter().map(|k| &k.value));
    (rendered(&old) != rendered(&event.key)).then_some(old)
}

/// Whether `event` is an UPDATE that changes its row's key.
pub fn changes_key(event: &CdcEvent) -> bool {
    moved_from(event).is_some()
}

/// The changes `event` is applied as: itself, or for an UPDATE that changes its row's key, the
/// DELETE of the old key (before image kept, no after image) and the INSERT of the new key (after
/// image, and the before image for consumers who want to see where the row came from), both
/// with the UPDATE's sequence, time, transaction and Kafka coordinates.
pub fn split_key_change(event: CdcEvent) -> (CdcEvent, Option<CdcEvent>) {
    let Some(old_key) = moved_from(&event) else {
        return (event, None);
    };
    let delete = CdcEvent {
        table: event.table.clone(),
        operation: Operation::Delete,
        key: old_key,
        after: None,
        before: event.before.clone(),
        change_sequence: event.change_sequence.clone(),
        source_timestamp: event.source_timestamp.clone(),
        transaction_id: event.transaction_id.clone(),
        stream_position: event.stream_position.clone(),
        kafka: event.kafka.clone(),
        trace: event.trace.clone(),
    };
    let insert = CdcEvent {
        operation: Operation::Insert,
        ..event
    };
    (delete, Some(insert))
}

/// A batch with every key-changing UPDATE replaced, in place, by its two changes (see
/// [`split_key_change`]); the batch itself when none changes its key.
pub fn split_key_changes(events: Vec<CdcEvent>) -> Vec<CdcEvent> {
    if !events.iter().any(changes_key) {
        return events;
    }
    let mut split = Vec::with_capacity(events.len() + 1);
    for event in events {
        let (first, second) = split_key_change(event);
        split.push(first);
        split.extend(second);
    }
    split
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply_plan::{applier_for, plan, AttrValue, PlanOptions, TableRouting};
    use crate::cdc::TableRef;
    use crate::change_event::event_id;
    use serde_json::{json, Map, Value};

    fn values(key: &[KeyColumn]) -> Vec<&Value> {
        key.iter().map(|k| &k.value).collect()
    }

    fn row(id: &str, name: &str) -> Map<String, Value> {
        let mut row = Map::new();
        row.insert("ID".into(), json!(id));
        row.insert("NAME".into(), json!(name));
        row
    }

    fn update(before: &str, after: &str) -> CdcEvent {
        CdcEvent {
            table: TableRef::new("S", "T"),
            operation: Operation::Update,
            key: vec![KeyColumn {
                name: "ID".into(),
                value: json!(after),
            }],
            after: Some(row(after, "moved").into()),
            before: Some(row(before, "old").into()),
            change_sequence: format!("{:035}", 9),
            source_timestamp: Some("2024-05-01T12:00:00.000".into()),
            transaction_id: Some("tx".into()),
            stream_position: None,
            kafka: None,
            trace: None,
        }
    }

    #[test]
    fn an_update_that_keeps_its_key_is_one_change() {
        let event = update("1", "1");
        assert!(!changes_key(&event));
        let (same, none) = split_key_change(event.clone());
        assert_eq!(same, event);
        assert!(none.is_none());
        // A number and its text are the same key, as in the item's `pk`.
        let mut numeric = update("1", "1");
        numeric.key[0].value = json!(1);
        assert!(!changes_key(&numeric));
    }

    #[test]
    fn a_key_change_is_the_old_keys_delete_and_the_new_keys_insert() {
        let (delete, insert) = split_key_change(update("1", "2"));
        let insert = insert.expect("two changes");
        assert_eq!(delete.operation, Operation::Delete);
        assert_eq!(values(&delete.key), [&json!("1")]);
        assert!(delete.after.is_none());
        assert_eq!(insert.operation, Operation::Insert);
        assert_eq!(values(&insert.key), [&json!("2")]);
        assert_eq!(delete.change_sequence, insert.change_sequence);
        // Each is published under the id of its own key.
        assert_ne!(event_id(&delete), event_id(&insert));
        // The same message always makes the same two ids (a replay after a crash).
        let (again, _) = split_key_change(update("1", "2"));
        assert_eq!(event_id(&again), event_id(&delete));
    }

    #[test]
    fn the_halves_plan_a_tombstone_and_an_insert() {
        let events = split_key_changes(vec![update("1", "2")]);
        let opts = PlanOptions {
            now_epoch_secs: 100,
            tombstone_ttl_secs: 60,
            refresh_started_at: None,
        };
        let p = plan(&events, &TableRouting::new("t"), &opts);
        assert_eq!(p.writes.len(), 2);
        assert_eq!(p.writes[0].pk(), "S.T#1");
        assert!(p.writes[0].tombstone);
        assert_eq!(p.writes[0].item["_op"], AttrValue::S("DELETE".into()));
        assert_eq!(p.writes[1].pk(), "S.T#2");
        assert_eq!(p.writes[1].item["_op"], AttrValue::S("INSERT".into()));
        assert_eq!(p.writes[1].item["NAME"], AttrValue::S("moved".into()));
        // Each half goes where its own key's other changes go.
        assert_eq!(
            applier_for(&events[0], 8),
            applier_for(&update("1", "1"), 8)
        );
        assert_eq!(
            applier_for(&events[1], 8),
            applier_for(&update("2", "2"), 8)
        );
    }

    #[test]
    fn a_batch_without_key_changes_is_kept_as_it_is() {
        let events = vec![update("1", "1"), update("2", "2")];
        assert_eq!(split_key_changes(events.clone()), events);
        let split = split_key_changes(vec![update("1", "1"), update("3", "4"), update("2", "2")]);
        let ops: Vec<_> = split.iter().map(|e| e.operation).collect();
        assert_eq!(
            ops,
            [
                Operation::Update,
                Operation::Delete,
                Operation::Insert,
                Operation::Update
            ]
        );
    }
}
