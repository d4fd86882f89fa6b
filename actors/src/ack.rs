//! Acknowledgements: how a sink tells the part of eda that read an event that the event's
//! effects are settled (written, published, or dead-lettered), so its offset may be committed or
//! its Lambda record reported as done.
//!
//! A sink acknowledges through [`Ack`] alone: the one message it can send a partition consumer is
//! [`Settled`], through a [`DerivedActorRef`], so no sink depends on the partition consumer's
//! protocol (and no two actor files import each other).

use ractor::DerivedActorRef;
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
            Ack::Offsets { partition, offsets } => {
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
}
