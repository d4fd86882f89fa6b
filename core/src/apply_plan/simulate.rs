//! An in-memory DynamoDB table with the apply plan's condition semantics.
//!
//! Property tests use it to show that the guard makes order and replays irrelevant; the loadtest
//! and integration tests use it as the expected final state to compare a real table against.

use std::collections::BTreeMap;

use super::{ApplyPlan, AttrValue, Item, PK_ATTR, SEQ_ATTR};

/// Items keyed by (DynamoDB table, `pk`).
pub type SimTable = BTreeMap<(String, String), Item>;

/// What applying a plan did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimOutcome {
    /// Writes whose condition held; the item was replaced.
    pub written: usize,
    /// Writes whose condition failed (an equal or newer sequence was stored): acknowledged, no
    /// effect — exactly what the adapter does on `ConditionalCheckFailed`.
    pub skipped: usize,
}

/// Applies every write of `plan` as a conditional put: `attribute_not_exists(pk) OR _seq < :seq`.
pub fn simulate(table: &mut SimTable, plan: &ApplyPlan) -> SimOutcome {
    let mut outcome = SimOutcome::default();
    for w in &plan.writes {
        let pk = match w.item.get(PK_ATTR) {
            Some(AttrValue::S(pk)) => pk.clone(),
            _ => String::new(),
        };
        let key = (w.table_name.clone(), pk);
        let allowed = match table.get(&key) {
            None => true,
            // As in DynamoDB: a missing `_seq`, or one of another type, fails `<` against a string.
            Some(item) => match item.get(SEQ_ATTR) {
                Some(AttrValue::S(stored)) => stored.as_str() < w.sequence.as_str(),
                _ => false,
            },
        };
        if allowed {
            table.insert(key, w.item.clone());
            outcome.written += 1;
        } else {
            outcome.skipped += 1;
        }
    }
    outcome
}
