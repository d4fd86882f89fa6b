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
    /// It took effect (or is a replay of what the table holds): publish its event.
    Publish,
    /// The table already holds a newer change: nothing to publish.
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

/// Decides each change's fate from the plan and what each write did (`outcomes[i]` for
/// `plan.writes[i]`; `None` only if a write was never attempted, treated as a failure).
///
/// - a write that was applied over sequence `previous` publishes every change it covers whose
///   sequence is above `previous` (all of them over a new item) — the coalesced changes took
///   effect in order, even though only the last was written;
/// - a write the guard refused publishes the covered change whose sequence equals the stored
///   one (a replay of the current state), and skips the older ones;
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
            let publish = match outcome {
                Some(Ok(WriteOutcome::Applied { previous })) => match previous.as_deref() {
                    None => true,
                    Some(prev) => seq.is_some_and(|s| s > prev),
                },
                Some(Ok(WriteOutcome::Superseded { current })) => {
                    current.is_some() && seq == current.as_deref()
                }
                Some(Err(failure)) => {
                    verdicts[index] = Verdict::DeadLetter {
                        class: failure.class,
                        message: failure.message.clone(),
                        stage: Stage::Apply,
                        attempts: failure.attempts,
                    };
                    continue;
                }
                None => {
                    verdicts[index] = Verdict::DeadLetter {
                        class: ErrorClass::Internal,
                        message: "the write was never attempted".into(),
                        stage: Stage::Apply,
                        attempts: 0,
                    };
                    continue;
                }
            };
            // The same change delivered twice in one batch is published once.
            let repeat = write
                .covers
                .iter()
                .take_while(|&&i| i != index)
                .any(|&i| sequences[i].as_deref() == seq && verdicts[i] == Verdict::Publish);
            if publish && !repeat && verdicts[index] == Verdict::Skip {
                verdicts[index] = Verdict::Publish;
            }
        }
    }
    for rejected in &plan.rejected {
        verdicts[rejected.index] = Verdict::DeadLetter {
            class: ErrorClass::Validation,
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
    fn coalesced_changes_newer_than_the_stored_item_are_all_published() {
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
        assert_eq!(v, [Verdict::Skip, Verdict::Publish, Verdict::Publish]);
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
    fn a_replay_of_the_stored_change_is_published_again_and_older_ones_are_not() {
        let events = [change("1", &seq(3)), change("1", &seq(4))];
        let (plan, seqs) = planned(&events);
        let outcomes = [Some(Ok(WriteOutcome::Superseded {
            current: Some(seq(4)),
        }))];
        assert_eq!(
            settle(&plan, &outcomes, &seqs),
            [Verdict::Skip, Verdict::Publish]
        );
        let outcomes = [Some(Ok(WriteOutcome::Superseded {
            current: Some(seq(9)),
        }))];
        assert_eq!(
            settle(&plan, &outcomes, &seqs),
            [Verdict::Skip, Verdict::Skip]
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
