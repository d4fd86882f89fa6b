//! Acknowledgements: how a sink tells the part of eda that read an event that the event's
//! effects are settled (written, published, or dead-lettered), so its offset may be committed or
//! its Lambda record reported as done.
//!
//! A sink acknowledges through [`Ack`] alone: the one message it can send a partition consumer is
//! [`Settled`], through a [`DerivedActorRef`], so no sink depends on the partition consumer's
//! protocol (and no two actor files import each other).

use ractor::DerivedActorRef;
use std::time::Instant;
use tokio::sync::oneshot;

/// Offsets of one partition whose effects are settled: the only message an acknowledgement
/// sends back to the partition consumer that read them.
#[derive(Debug)]
pub struct Settled(pub Vec<i64>);

/// Who to tell when a message's work is settled.
#[derive(Debug)]
pub enum Ack {
    /// Kafka messages of one partition: their offsets go back to the partition consumer, which
    /// advances its commit watermark.
    Offsets {
        /// The partition consumer that read them, seen as the receiver of [`Settled`].
        partition: DerivedActorRef<Settled>,
        /// The offsets settled.
        offsets: Vec<i64>,
        /// When the oldest of them was taken from librdkafka (the start of its read-to-settled
        /// time), for the stage times (`eda_apply_stage_duration_seconds`).
        read_at: Instant,
    },
    /// A caller waiting on the outcome (a Lambda invocation, the publisher waiting on the DLQ).
    Notify(oneshot::Sender<()>),
    /// Nobody is waiting (redrive, tools).
    None,
}

impl Ack {
    /// Settles the acknowledgement. A partition consumer that has stopped (its partition was
    /// revoked, or it is restarting) no longer needs it: the offsets will be read again.
    pub fn settle(self) {
        match self {
            Ack::Offsets {
                partition, offsets, ..
            } => {
                if !offsets.is_empty() {
                    let _ = partition.send_message(Settled(offsets));
                }
            }
            Ack::Notify(tx) => {
                let _ = tx.send(());
            }
            Ack::None => {}
        }
    }

    /// When the messages this acknowledges were read and how many they are; `None` for what
    /// was not read from Kafka.
    pub fn read(&self) -> Option<(Instant, usize)> {
        match self {
            Ack::Offsets {
                offsets, read_at, ..
            } => Some((*read_at, offsets.len())),
            Ack::Notify(_) | Ack::None => None,
        }
    }
}

/// The work of the messages waiting in an actor's mailbox, gathered to be handled as one batch
/// (the CDC applier's changes, the publisher's events), each message's acknowledgement kept to
/// be settled when the batch is.
///
/// The actor adds each message's items; the first one starts a run message the actor sends
/// itself, and everything that arrives before that run message is reached joins the batch.
/// Nothing waits for more to arrive.
#[derive(Debug)]
pub(crate) struct Gathering<T> {
    items: Vec<T>,
    acks: Vec<Ack>,
    /// Whether a run message is on its way through the mailbox.
    run_queued: bool,
}

/// What an actor does after [`Gathering::add`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// A batch's worth has gathered: run it now.
    RunNow,
    /// Send yourself the run message (none is on its way).
    QueueRun,
    /// A run message is already on its way.
    Wait,
}

impl<T> Gathering<T> {
    /// Nothing gathered.
    pub(crate) fn new() -> Self {
        Self {
            items: Vec::new(),
            acks: Vec::new(),
            run_queued: false,
        }
    }

    /// Adds one message's items and acknowledgement; `limit` items make a batch to run at once.
    pub(crate) fn add(&mut self, items: Vec<T>, ack: Ack, limit: usize) -> Next {
        if self.items.is_empty() {
            self.items = items;
        } else {
            self.items.extend(items);
        }
        self.acks.push(ack);
        if self.items.len() >= limit {
            Next::RunNow
        } else if self.run_queued {
            Next::Wait
        } else {
            self.run_queued = true;
            Next::QueueRun
        }
    }

    /// The run message reached the actor.
    pub(crate) fn run_arrived(&mut self) {
        self.run_queued = false;
    }

    /// Whether no message has been gathered since the last [`Gathering::take`].
    pub(crate) fn is_empty(&self) -> bool {
        self.acks.is_empty()
    }

    /// The gathered items, in the order they came, and the acknowledgements of their messages.
    pub(crate) fn take(&mut self) -> (Vec<T>, Vec<Ack>) {
        (
            std::mem::take(&mut self.items),
            std::mem::take(&mut self.acks),
        )
    }
}
