//! Property tests: the guard makes replays, order and batch boundaries irrelevant.

use proptest::prelude::*;

use super::tests::{event, seq, OPTS};
use super::{plan, simulate, AttrValue, SimTable, TableRouting};
use crate::cdc::{CdcEvent, Operation};

fn op() -> impl Strategy<Value = Operation> {
    prop_oneof![
        Just(Operation::Insert),
        Just(Operation::Update),
        Just(Operation::Delete),
    ]
}

/// A history over a few keys, sequences increasing in history order, with some redeliveries.
fn history() -> impl Strategy<Value = Vec<CdcEvent>> {
    (
        prop::collection::vec((0i64..4, op(), 0u8..3), 1..30),
        prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    )
        .prop_map(|(changes, dups)| {
            let mut events: Vec<CdcEvent> = changes
                .into_iter()
                .enumerate()
                .map(|(i, (id, op, v))| event(op, id, &seq(i as u64 + 1), &format!("v{v}")))
                .collect();
            let extra: Vec<CdcEvent> = dups
                .iter()
                .map(|d| events[d.index(events.len())].clone())
                .collect();
            events.extend(extra);
            events
        })
}

fn routing() -> TableRouting {
    TableRouting::new("cdc")
}

/// Applies `events` one batch each, in order: the reference final table.
fn apply_in_order(events: &[CdcEvent]) -> SimTable {
    let mut t = SimTable::new();
    for e in events {
        simulate(&mut t, &plan(std::slice::from_ref(e), &routing(), &OPTS));
    }
    t
}

fn apply_batches(t: &mut SimTable, events: &[CdcEvent], cuts: &[prop::sample::Index]) {
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c.index(events.len() + 1)).collect();
    bounds.push(0);
    bounds.push(events.len());
    bounds.sort_unstable();
    for w in bounds.windows(2) {
        simulate(t, &plan(&events[w[0]..w[1]], &routing(), &OPTS));
    }
}

proptest! {
    #[test]
    fn applying_a_plan_twice_changes_nothing(events in history()) {
        let p = plan(&events, &routing(), &OPTS);
        let mut once = SimTable::new();
        simulate(&mut once, &p);
        let mut twice = once.clone();
        let outcome = simulate(&mut twice, &p);
        prop_assert_eq!(outcome.written, 0);
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn replaying_a_suffix_changes_nothing(events in history(), from in any::<prop::sample::Index>()) {
        let reference = apply_in_order(&events);
        let mut t = reference.clone();
        let start = from.index(events.len());
        simulate(&mut t, &plan(&events[start..], &routing(), &OPTS));
        prop_assert_eq!(t, reference);
    }

    #[test]
    fn shuffled_history_in_any_batches_gives_the_in_order_table(
        (events, shuffled) in history().prop_flat_map(|h| (Just(h.clone()), Just(h).prop_shuffle())),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let reference = apply_in_order(&events);
        let mut t = SimTable::new();
        apply_batches(&mut t, &shuffled, &cuts);
        prop_assert_eq!(t, reference);
    }

    #[test]
    fn coalescing_keeps_the_highest_sequence_per_key(
        events in history().prop_flat_map(|h| Just(h).prop_shuffle()),
    ) {
        let p = plan(&events, &routing(), &OPTS);
        let mut covered = 0;
        for w in &p.writes {
            covered += w.covers.len();
            prop_assert!(w.covers.contains(&w.winner));
            for &i in &w.covers {
                prop_assert!(events[i].change_sequence <= w.sequence);
            }
            prop_assert_eq!(&events[w.winner].change_sequence, &w.sequence);
        }
        prop_assert_eq!(covered, events.len());
    }

    #[test]
    fn a_tombstone_stops_an_older_insert(id in 0i64..4, older in 1u64..50, gap in 1u64..50) {
        let mut t = SimTable::new();
        let delete = event(Operation::Delete, id, &seq(older + gap), "gone");
        simulate(&mut t, &plan(&[delete], &routing(), &OPTS));
        let late = event(Operation::Insert, id, &seq(older), "zombie");
        let outcome = simulate(&mut t, &plan(&[late], &routing(), &OPTS));
        prop_assert_eq!(outcome.skipped, 1);
        let item = t.values().next().cloned().unwrap_or_default();
        prop_assert_eq!(item.get("_deleted"), Some(&AttrValue::Bool(true)));
    }
}

/// A key value of any shape a decoder gives, escapes included.
fn key_value() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "[a-z|\\\\é0-9]{0,12}".prop_map(serde_json::Value::from),
    ]
}

proptest! {
    // The applier a change goes to is the one the hash of its rendered pk names (as it was when
    // the pk was rendered for it): the pk's text hashed piece by piece must hash as the whole.
    #[test]
    fn applier_for_hashes_the_rendered_pk(
        schema in "[A-Za-z_.]{1,8}",
        table in "[A-Za-z_]{1,8}",
        values in prop::collection::vec(key_value(), 1..4),
        appliers in 1usize..17,
    ) {
        use std::hash::{Hash, Hasher};
        let mut change = event(Operation::Update, 1, &seq(1), "x");
        change.table = crate::cdc::TableRef::new(schema, table);
        change.key = values
            .into_iter()
            .enumerate()
            .map(|(i, value)| crate::cdc::KeyColumn { name: format!("K{i}").into(), value })
            .collect();
        let pk = super::render_pk(&change.table, change.key.iter().map(|k| &k.value));
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        pk.hash(&mut hasher);
        let rendered = usize::try_from(hasher.finish() % appliers as u64).unwrap_or(0);
        prop_assert_eq!(super::applier_for(&change, appliers), rendered);
    }
}
