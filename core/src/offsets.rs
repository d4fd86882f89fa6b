//! The per-partition offset watermark: which offset may be stored for commit.
//!
//! A partition consumer reads messages in offset order but their effects (DynamoDB write,
//! EventBridge event, DLQ record) are acknowledged in any order, because different keys are
//! applied in parallel. Committing an offset tells the group "everything before this is done",
//! so the offset to store is one past the longest prefix of read messages that are all
//! acknowledged. A crash then replays from there: nothing is skipped, and the sequence-guarded
//! apply absorbs what is replayed.
//!
//! Offsets need not be contiguous (compacted topics, transaction markers): the tracker only knows
//! the offsets it was given.
//!
//! A message may have effects in more than one place: a key-changing UPDATE becomes the DELETE of
//! its old key and the INSERT of its new key, applied by the appliers of the two keys. Such a
//! message is given its number of *parts* ([`OffsetTracker::add_part`]), and it counts as
//! acknowledged once every part is.

use std::collections::VecDeque;

/// What a partition has read and not yet been able to commit.
#[derive(Debug, Default, Clone)]
pub struct OffsetTracker {
    /// Read offsets in order, each with the number of its parts not acknowledged yet (0: all
    /// its effects are acknowledged). The front is the oldest unacknowledged message
    /// (acknowledged ones are popped as soon as they are at the front).
    pending: VecDeque<(i64, u32)>,
    /// One past the last offset popped: the offset that may be stored.
    watermark: Option<i64>,
    /// The watermark as last handed out by [`OffsetTracker::take_committable`].
    taken: Option<i64>,
    /// The highest offset tracked, to reject out-of-order input.
    last_tracked: Option<i64>,
}

/// Misuse of the tracker: a bug in the caller, reported rather than corrupting the watermark.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OffsetError {
    /// Offsets must be tracked in increasing order, as a partition delivers them.
    #[error("offset {offset} tracked after {last}: offsets must increase")]
    NotIncreasing {
        /// The offset given.
        offset: i64,
        /// The highest offset tracked before it.
        last: i64,
    },
    /// The offset was never tracked, or was already acknowledged and committed past.
    #[error("offset {0} is not in flight")]
    NotInFlight(i64),
}

impl OffsetTracker {
    /// A tracker for a partition that has read nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that a message was read and its effects are now in flight.
    pub fn track(&mut self, offset: i64) -> Result<(), OffsetError> {
        if let Some(last) = self.last_tracked {
            if offset <= last {
                return Err(OffsetError::NotIncreasing { offset, last });
            }
        }
        self.last_tracked = Some(offset);
        self.pending.push_back((offset, 1));
        Ok(())
    }

    /// Records that the message at `offset` has one more part whose effects are acknowledged on
    /// their own (each part is acknowledged with one [`ack`](Self::ack)).
    pub fn add_part(&mut self, offset: i64) -> Result<(), OffsetError> {
        let entry = self.entry(offset)?;
        *entry = entry.saturating_add(1);
        Ok(())
    }

    /// Records that the effects of one part of the message at `offset` (of the whole message,
    /// unless it was given parts) are acknowledged downstream; `true` when that was its last
    /// part.
    pub fn ack(&mut self, offset: i64) -> Result<bool, OffsetError> {
        let entry = self.entry(offset)?;
        *entry -= 1;
        let done = *entry == 0;
        while let Some(&(front, 0)) = self.pending.front() {
            self.watermark = Some(front + 1);
            self.pending.pop_front();
        }
        Ok(done)
    }

    /// The parts still owed of the message at `offset`, which must be in flight.
    fn entry(&mut self, offset: i64) -> Result<&mut u32, OffsetError> {
        let index = self
            .pending
            .binary_search_by_key(&offset, |(o, _)| *o)
            .map_err(|_| OffsetError::NotInFlight(offset))?;
        match &mut self.pending[index] {
            (_, 0) => Err(OffsetError::NotInFlight(offset)),
            (_, parts) => Ok(parts),
        }
    }

    /// Messages read whose effects are not all acknowledged yet (plus acknowledged ones waiting
    /// behind an older unacknowledged one): what backpressure counts.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// The offset that may be stored now (one past the acknowledged prefix), if any.
    pub fn committable(&self) -> Option<i64> {
        self.watermark
    }

    /// Where the partition's commit stands as far as this tracker knows: the committable
    /// offset, or, before anything settled, the first offset read (where reading started, so
    /// what was committed before). `None` while nothing was read.
    pub fn commit_point(&self) -> Option<i64> {
        self.watermark
            .or_else(|| self.pending.front().map(|&(offset, _)| offset))
    }

    /// The committable offset if it moved since the last call, so callers store each advance
    /// once.
    pub fn take_committable(&mut self) -> Option<i64> {
        if self.watermark != self.taken {
            self.taken = self.watermark;
            self.watermark
        } else {
            None
        }
    }

    /// Forgets everything in flight: after a rewind (the partition is re-read from its
    /// committed offset), acknowledgements of the old reads must not move the watermark.
    pub fn reset(&mut self) {
        self.pending.clear();
        self.last_tracked = None;
    }
}

/// Messages of a partition past its committed offset: what is not read yet plus what is read
/// and not settled (a restart reads both again). The partition's end is the broker's answer
/// (`reported_end`, its high watermark) or one past the last offset read, whichever is higher,
/// because a broker's answer has been seen below offsets already read. `None` when neither is
/// known.
pub fn committed_lag(
    reported_end: Option<i64>,
    last_read: Option<i64>,
    committed: i64,
) -> Option<i64> {
    let end = reported_end.max(last_read.map(|offset| offset + 1))?;
    Some((end - committed).max(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn watermark_waits_for_the_oldest_message() {
        let mut t = OffsetTracker::new();
        for o in [10, 11, 12] {
            t.track(o).unwrap();
        }
        t.ack(12).unwrap();
        t.ack(11).unwrap();
        assert_eq!(t.committable(), None, "10 is still in flight");
        assert_eq!(t.in_flight(), 3);
        t.ack(10).unwrap();
        assert_eq!(t.committable(), Some(13));
        assert_eq!(t.in_flight(), 0);
        assert_eq!(t.take_committable(), Some(13));
        assert_eq!(
            t.take_committable(),
            None,
            "each advance is handed out once"
        );
    }

    #[test]
    fn a_message_of_two_parts_waits_for_both() {
        let mut t = OffsetTracker::new();
        t.track(7).unwrap();
        t.track(8).unwrap();
        t.add_part(7).unwrap();
        t.ack(8).unwrap();
        assert_eq!(t.ack(7), Ok(false));
        assert_eq!(t.committable(), None, "one part of 7 is still in flight");
        assert_eq!(t.ack(7), Ok(true));
        assert_eq!(t.committable(), Some(9));
        assert_eq!(t.ack(7), Err(OffsetError::NotInFlight(7)));
        assert_eq!(t.add_part(7), Err(OffsetError::NotInFlight(7)));
    }

    #[test]
    fn gaps_in_offsets_are_fine() {
        let mut t = OffsetTracker::new();
        t.track(5).unwrap();
        t.track(9).unwrap();
        t.ack(5).unwrap();
        assert_eq!(t.committable(), Some(6));
        t.ack(9).unwrap();
        assert_eq!(t.committable(), Some(10));
    }

    #[test]
    fn misuse_is_reported() {
        let mut t = OffsetTracker::new();
        t.track(3).unwrap();
        assert_eq!(
            t.track(3),
            Err(OffsetError::NotIncreasing { offset: 3, last: 3 })
        );
        assert_eq!(t.ack(4), Err(OffsetError::NotInFlight(4)));
        t.ack(3).unwrap();
        assert_eq!(t.ack(3), Err(OffsetError::NotInFlight(3)));
    }

    #[test]
    fn reset_drops_acks_of_old_reads() {
        let mut t = OffsetTracker::new();
        t.track(1).unwrap();
        t.track(2).unwrap();
        t.ack(1).unwrap();
        t.reset();
        assert_eq!(t.ack(2), Err(OffsetError::NotInFlight(2)));
        assert_eq!(t.committable(), Some(2), "what was committable stays so");
        t.track(2).unwrap();
        t.ack(2).unwrap();
        assert_eq!(t.committable(), Some(3));
    }

    #[test]
    fn the_commit_point_is_where_reading_started_until_something_settles() {
        let mut t = OffsetTracker::new();
        assert_eq!(t.commit_point(), None);
        t.track(416).unwrap();
        t.track(417).unwrap();
        t.ack(417).unwrap();
        assert_eq!(t.commit_point(), Some(416), "the head holds it");
        t.ack(416).unwrap();
        assert_eq!(t.commit_point(), Some(418));
    }

    #[test]
    fn lag_counts_from_the_commit_and_trusts_no_low_broker_answer() {
        // A head that never settles: everything read is still owed.
        assert_eq!(committed_lag(Some(500), Some(499), 100), Some(400));
        // The broker's answer below what was read (seen: 269 against 416 read).
        assert_eq!(committed_lag(Some(269), Some(415), 300), Some(116));
        // No answer from the broker: what was read still counts.
        assert_eq!(committed_lag(None, Some(9), 5), Some(5));
        // Caught up.
        assert_eq!(committed_lag(Some(10), Some(9), 10), Some(0));
        // A committed offset past a low answer, nothing read: never negative.
        assert_eq!(committed_lag(Some(269), None, 416), Some(0));
        assert_eq!(committed_lag(None, None, 3), None);
    }

    proptest! {
        /// Whatever order acknowledgements arrive in, the watermark is one past the longest
        /// acknowledged prefix, and never passes an unacknowledged message.
        #[test]
        fn watermark_is_the_acknowledged_prefix(
            gaps in proptest::collection::vec(1i64..4, 1..60),
            order in any::<u64>(),
            acked_count in 0usize..60,
        ) {
            let offsets: Vec<i64> = gaps.iter().scan(0i64, |acc, g| { *acc += g; Some(*acc) }).collect();
            let mut t = OffsetTracker::new();
            for &o in &offsets { t.track(o).unwrap(); }
            let mut shuffled = offsets.clone();
            fastrand::Rng::with_seed(order).shuffle(&mut shuffled);
            let acked: Vec<i64> = shuffled.into_iter().take(acked_count.min(offsets.len())).collect();
            for &o in &acked { t.ack(o).unwrap(); }
            let prefix = offsets.iter().take_while(|o| acked.contains(o)).last();
            prop_assert_eq!(t.committable(), prefix.map(|o| o + 1));
            if let Some(first_unacked) = offsets.iter().find(|o| !acked.contains(o)) {
                prop_assert!(t.committable().is_none_or(|w| w <= *first_unacked));
            }
        }
    }
}
