//! The verdicts: from what each of a plan's writes did to the fate of every change it covers —
//! publish its event, skip it (the table already holds something newer), or dead-letter it.
//!
//! The applier actor runs the writes; this decides what follows from their outcomes, so the
//! rule that decides which events are owed is a pure function with its own tests.

use crate::apply_plan::ApplyPlan;
use crate::failure::{ErrorClass, Stage};

/// What a sequence-guarded write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The item was written; `previous` is the sequence it replaced (`None`: a new item).
    Applied {
        /// `_seq` of the item that was there before.
        previous: Option<String>,
    },
    /// The guard held: the stored item is as new as this change or newer. Not an error — a
    /// replayed or out-of-order change. `current` is the stored sequence, when known.
    Superseded {
        /// `_seq` of the stored item.
        current: Option<String>,
    },
}

/// A write that did not succeed, after its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFailure {
    /// What kind of failure the last attempt was.
    pub class: ErrorClass,
    /// The last error, as its `Display` said.
    pub message: String,
    /// Attempts made.
    pub attempts: u32,
}

/// A write's outcome after retries: what it did, or how it failed.
pub type WriteResult = Result<WriteOutcome, WriteFailure>;

/// What happens to one change of a batch after its writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It took effect now, over an older item or none: publish its event.
    Publish,
    /// The table already held this change or a newer one: a replay after a crash, a redelivery,
    /// or a write whose reply was lost and was sent again. Whether its event went out before is
    /// unknown (a crash between the write and the publish leaves it owed), so it is published
    /// again under the same event id; consumers de-duplicate on the id, and the duplicates are
    /// counted.
    Republish,
    /// The same change appeared earlier in this batch: its event is published once, there.
    Skip,
    /// It could not be applied.
    DeadLetter {
        /// What kind of failure.
        class: ErrorClass,
        /// The error.
        message: String,
        /// [`Stage::Plan`] or [`Stage::Apply`].
        stage: Stage,
        /// Attempts made.
        attempts: u32,
    },
}

impl Verdict {
    /// Whether the change's event goes out.
    pub fn publishes(&self) -> bool {
        matches!(self, Verdict::Publish | Verdict::Republish)
    }
}

/// Decides each change's fate from the plan and what each write did (`outcomes[i]` for
/// `plan.writes[i]`; `None` only if a write was never attempted, treated as a failure).
///
/// The rule is the delivery contract: every source change gets its event at least once, whatever
/// the crash point. So every change a successful write covers is published:
///
/// - a write applied over sequence `previous` took effect for the changes it covers above
///   `previous` ([`Verdict::Publish`]; all of them over a new item) — the coalesced changes took
///   effect in order, even though only the last was written — and the ones at or below
///   `previous` were applied before ([`Verdict::Republish`]);
/// - a write the guard refused covers changes the table already holds or has passed
///   ([`Verdict::Republish`]): the earlier write may have landed just before a crash, or its
///   reply been lost, with the events still owed. Publishing only the change equal to the stored
///   sequence (as eda once did) lost every earlier change's event of the key on such a crash;
/// - a change that appeared earlier in the same batch with the same sequence is published once;
/// - a failed write dead-letters every change it covers; a rejected change (no key, bad
///   sequence) is dead-lettered at the `plan` stage.
pub fn settle(
    plan: &ApplyPlan,
    outcomes: &[Option<WriteResult>],
    sequences: &[Option<String>],
) -> Vec<Verdict> {
    let mut verdicts = vec![Verdict::Skip; sequences.len()];
    for (write, outcome) in plan.writes.iter().zip(outcomes) {
        for &index in &write.covers {
            let seq = sequences[index].as_deref();
            let verdict = match outcome {
                Some(Ok(WriteOutcome::Applied { previous })) => match previous.as_deref() {
                    Some(prev) if seq.is_none_or(|s| s <= prev) => Verdict::Republish,
                    _ => Verdict::Publish,
                },
                Some(Ok(WriteOutcome::Superseded { .. })) => Verdict::Republish,
                Some(Err(failure)) => Verdict::DeadLetter {
                    class: failure.class,
                    message: failure.message.clone(),
                    stage: Stage::Apply,
                    attempts: failure.attempts,
                },
                None => Verdict::DeadLetter {
                    class: ErrorClass::Internal,
                    message: "the write was never attempted".into(),
                    stage: Stage::Apply,
                    attempts: 0,
                },
            };
            // The same change delivered twice in one batch is published once.
            let repeat = verdict.publishes()
                && write
                    .covers
                    .iter()
                    .take_while(|&&i| i != index)
                    .any(|&i| sequences[i].as_deref() == seq && verdicts[i].publishes());
            // A change two writes covered would be dead-lettered if either failed, and published
            // once if neither did (a key-changing update is split into two changes before it is
            // planned, so each change has one write).
            let current = &verdicts[index];
            let failed = |v: &Verdict| matches!(v, Verdict::DeadLetter { .. });
            if failed(current) || (current.publishes() && !failed(&verdict)) {
                continue;
            }
            verdicts[index] = if repeat { Verdict::Skip } else { verdict };
        }
    }
    for rejected in &plan.rejected {
        verdicts[rejected.index] = Verdict::DeadLetter {
            class: rejected.error.class(),
            message: rejected.error.to_string(),
            stage: Stage::Plan,
            attempts: 1,
        };
    }
    verdicts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply_plan::{self, effective_sequence, PlanOptions, TableRouting};
    use crate::cdc::{CdcEvent, KeyColumn, Operation, TableRef};
    use serde_json::{json, Map};

    fn change(id: &str, seq: &str) -> CdcEvent {
        let mut after = Map::new();
        after.insert("ID".into(), json!(id));
        CdcEvent {
            table: TableRef::new("S", "T"),
            operation: Operation::Update,
            key: vec![KeyColumn {
                name: "ID".into(),
                value: json!(id),
            }],
            after: Some(after.into()),
            before: None,
            change_sequence: seq.into(),
            source_timestamp: None,
            transaction_id: None,
            stream_position: None,
            kafka: None,
            trace: None,
        }
    }

    fn seq(n: u32) -> String {
        format!("{n:035}")
    }

    fn planned(events: &[CdcEvent]) -> (ApplyPlan, Vec<Option<String>>) {
        let opts = PlanOptions {
            now_epoch_secs: 0,
            tombstone_ttl_secs: 60,
            refresh_started_at: None,
        };
        let plan = apply_plan::plan(events, &TableRouting::new("t"), &opts);
        let seqs = events
            .iter()
            .map(|e| effective_sequence(e, &opts).ok())
            .collect();
        (plan, seqs)
    }

    #[test]
    fn coalesced_changes_are_all_published_and_those_the_item_held_are_marked_again() {
        let events = [
            change("1", &seq(5)),
            change("1", &seq(6)),
            change("1", &seq(7)),
        ];
        let (plan, seqs) = planned(&events);
        let outcomes = [Some(Ok(WriteOutcome::Applied {
            previous: Some(seq(5)),
        }))];
        let v = settle(&plan, &outcomes, &seqs);
        assert_eq!(v, [Verdict::Republish, Verdict::Publish, Verdict::Publish]);
    }

    /// The crash the contract is about: a batch's write lands, the process dies before its
    /// events are out, and the replay (with a newer change of the key read since) writes over
    /// it. The replayed changes' events are owed, and go out under their ids.
    #[test]
    fn a_write_that_landed_before_a_crash_still_gets_its_events_on_the_replay() {
        let first = [
            change("1", &seq(3)),
            change("1", &seq(4)),
            change("1", &seq(5)),
        ];
        let (plan, seqs) = planned(&first);
        let v = settle(
            &plan,
            &[Some(Ok(WriteOutcome::Applied { previous: None }))],
            &seqs,
        );
        assert_eq!(v, [Verdict::Publish, Verdict::Publish, Verdict::Publish]);
        // The crash: none of them went out. The replay reads them again, with change 6.
        let replay = [
            change("1", &seq(3)),
            change("1", &seq(4)),
            change("1", &seq(5)),
            change("1", &seq(6)),
        ];
        let (plan, seqs) = planned(&replay);
        let outcomes = [Some(Ok(WriteOutcome::Applied {
            previous: Some(seq(5)),
        }))];
        let v = settle(&plan, &outcomes, &seqs);
        assert_eq!(
            v,
            [
                Verdict::Republish,
                Verdict::Republish,
                Verdict::Republish,
                Verdict::Publish
            ]
        );
    }

    #[test]
    fn a_change_delivered_twice_in_a_batch_is_published_once() {
        let events = [
            change("1", &seq(5)),
            change("1", &seq(5)),
            change("1", &seq(6)),
        ];
        let (plan, seqs) = planned(&events);
        let outcomes = [Some(Ok(WriteOutcome::Applied { previous: None }))];
        let v = settle(&plan, &outcomes, &seqs);
        assert_eq!(v, [Verdict::Publish, Verdict::Skip, Verdict::Publish]);
    }

    #[test]
    fn a_refused_write_publishes_every_change_it_covers_again() {
        let events = [change("1", &seq(3)), change("1", &seq(4))];
        let (plan, seqs) = planned(&events);
        // The table holds the last of them (a replay, or a retried write whose reply was lost).
        let outcomes = [Some(Ok(WriteOutcome::Superseded {
            current: Some(seq(4)),
        }))];
        assert_eq!(
            settle(&plan, &outcomes, &seqs),
            [Verdict::Republish, Verdict::Republish]
        );
        // The table holds a newer change: these were applied before it, and their events may
        // never have gone out.
        let outcomes = [Some(Ok(WriteOutcome::Superseded {
            current: Some(seq(9)),
        }))];
        assert_eq!(
            settle(&plan, &outcomes, &seqs),
            [Verdict::Republish, Verdict::Republish]
        );
    }

    #[test]
    fn a_failed_write_dead_letters_what_it_covers_and_a_bad_sequence_is_rejected() {
        let events = [change("1", &seq(3)), change("2", "not-a-sequence")];
        let (plan, seqs) = planned(&events);
        let failure = WriteFailure {
            class: ErrorClass::Client,
            message: "dynamodb PutItem failed (client): ValidationException".into(),
            attempts: 1,
        };
        let outcomes = [Some(Err(failure))];
        let v = settle(&plan, &outcomes, &seqs);
        assert!(matches!(
            v[0],
            Verdict::DeadLetter {
                stage: Stage::Apply,
                class: ErrorClass::Client,
                attempts: 1,
                ..
            }
        ));
        assert!(matches!(
            v[1],
            Verdict::DeadLetter {
                stage: Stage::Plan,
                class: ErrorClass::Validation,
                ..
            }
        ));
    }
}
