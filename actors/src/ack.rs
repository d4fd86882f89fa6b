//! Acknowledgements: how a sink tells the part of eda that read an event that the event's
//! effects are settled (written, published, or dead-lettered), so its offset may be committed or
//! its Lambda record reported as done.

use crate::partition_consumer::PartitionConsumerMsg;
use ractor::ActorRef;
use tokio::sync::oneshot;

/// Who to tell when a message's work is settled.
#[derive(Debug)]
pub enum Ack {
    /// Kafka messages of one partition: their offsets go back to the partition consumer, which
    /// advances its commit watermark.
    Offsets {
        /// The partition consumer that read them.
        partition: ActorRef<PartitionConsumerMsg>,
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
                    let _ = partition.cast(PartitionConsumerMsg::Acked(offsets));
                }
            }
            Ack::Notify(tx) => {
                let _ = tx.send(());
            }
            Ack::None => {}
        }
    }
}
