//! What one consumer holds of the partitions assigned to it, and the one commit rule: the
//! committed offset of a partition is its contiguous watermark, the lowest offset read and not
//! yet settled (or one past the last offset read when all are settled). Nothing settled is ever
//! committed past a message that is not.
//!
//! Every assignment of a partition is an epoch: a rebalance that takes the partition away ends
//! it, and tokens of that epoch settle nothing (the new owner reads the partition again from
//! its committed offset).
//!
//! Beside the commit, a consumer records the handed-out mark of each partition: one past the
//! highest offset any consumer of the group handed out. It is committed as the offset of a
//! second group that no consumer joins, `<group>.handed` (commit metadata would be the natural
//! place, but not every Kafka-protocol broker keeps it). A consumer that is assigned the
//! partition later knows that records below the mark were handed out before: they are
//! redeliveries, and count one more receive.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
};

use crate::record::Record;

/// A record read from a partition and not yet settled.
#[derive(Debug)]
struct Held {
    record: Arc<Record>,
    receive_count: u32,
    handed_out: bool,
}

/// One assigned partition.
#[derive(Debug)]
struct Partition {
    epoch: u64,
    /// Whether the group's committed offset and mark were read since the assignment.
    resolved: bool,
    /// Records below this offset were handed out before this assignment.
    handed_before: i64,
    /// What the group has committed (where a new owner resumes).
    committed: Option<i64>,
    /// The handed-out mark the group has committed.
    handed_committed: i64,
    /// One past the highest offset handed out, by anyone, as far as this consumer knows.
    handed_high: i64,
    /// One past the last offset read in this epoch.
    next: Option<i64>,
    /// Records read and not settled, handed out or not.
    outstanding: BTreeMap<i64, Held>,
    /// The offsets of those not handed out yet: what a receive looks through, so that it
    /// does not walk past every record handed out and not acked yet.
    waiting: BTreeSet<i64>,
}

impl Partition {
    fn watermark(&self) -> Option<i64> {
        self.outstanding.keys().next().copied().or(self.next)
    }
}

/// A record handed out: where it is, and what to give the receiver.
#[derive(Debug, Clone)]
pub(crate) struct Taken {
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) epoch: u64,
    pub(crate) record: Arc<Record>,
    pub(crate) receive_count: u32,
}

/// An offset to commit for a partition: its watermark, or its handed-out mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Commit {
    pub(crate) partition: i32,
    pub(crate) epoch: u64,
    pub(crate) offset: i64,
}

/// What settling a token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// It was held and now is not.
    Now,
    /// It was settled already (a repeated ack).
    Already,
    /// Its partition was taken away since it was handed out.
    Stale,
}

/// The partitions assigned to one consumer.
#[derive(Debug, Default)]
pub(crate) struct Partitions {
    epochs: u64,
    assigned: HashMap<i32, Partition>,
}

impl Partitions {
    /// `partition` is now ours; what the group committed is not known yet (see
    /// [`Partitions::resolve`]).
    pub(crate) fn assign(&mut self, partition: i32) {
        self.epochs += 1;
        self.assigned.insert(
            partition,
            Partition {
                epoch: self.epochs,
                resolved: false,
                handed_before: 0,
                committed: None,
                handed_committed: 0,
                handed_high: 0,
                next: None,
                outstanding: BTreeMap::new(),
                waiting: BTreeSet::new(),
            },
        );
    }

    /// The partitions (and epochs) whose committed offset and mark are not known yet.
    pub(crate) fn unresolved(&self) -> Vec<(i32, u64)> {
        self.assigned
            .iter()
            .filter(|(_, p)| !p.resolved)
            .map(|(&partition, p)| (partition, p.epoch))
            .collect()
    }

    /// The group committed `committed` for `partition` with the handed-out mark `handed`, as
    /// read in `epoch`.
    pub(crate) fn resolve(
        &mut self,
        partition: i32,
        epoch: u64,
        committed: Option<i64>,
        handed: i64,
    ) {
        if let Some(p) = self.assigned.get_mut(&partition)
            && p.epoch == epoch
            && !p.resolved
        {
            p.resolved = true;
            p.committed = committed;
            p.handed_before = handed;
            p.handed_committed = handed;
            p.handed_high = p.handed_high.max(handed);
        }
    }

    /// `partition` is no longer ours: what it held is forgotten, to be read again by its new
    /// owner from the committed offset.
    pub(crate) fn revoke(&mut self, partition: i32) {
        self.assigned.remove(&partition);
    }

    /// Forgets every partition.
    pub(crate) fn revoke_all(&mut self) {
        self.assigned.clear();
    }

    /// Keeps `record`, read at `offset`, until it is handed out and settled. Returns `false`
    /// (and keeps nothing) when the partition is not assigned.
    pub(crate) fn read(&mut self, partition: i32, offset: i64, record: Record) -> bool {
        let Some(p) = self.assigned.get_mut(&partition) else {
            return false;
        };
        let redelivered = offset < p.handed_before;
        let receive_count = record.receives.saturating_add(1 + u32::from(redelivered));
        p.next = Some(p.next.map_or(offset + 1, |next| next.max(offset + 1)));
        p.waiting.insert(offset);
        p.outstanding.insert(
            offset,
            Held {
                record: Arc::new(record),
                receive_count,
                handed_out: false,
            },
        );
        true
    }

    /// Hands out up to `room` records that are due at `now`, lowest offset first in each
    /// partition.
    pub(crate) fn take_due(&mut self, now: u64, room: usize) -> Vec<Taken> {
        let mut taken = Vec::new();
        for (&partition, p) in &mut self.assigned {
            let before = taken.len();
            for &offset in &p.waiting {
                if taken.len() >= room {
                    break;
                }
                let Some(held) = p.outstanding.get_mut(&offset) else {
                    continue;
                };
                if !held.record.is_due(now) {
                    continue;
                }
                held.handed_out = true;
                p.handed_high = p.handed_high.max(offset + 1);
                taken.push(Taken {
                    partition,
                    offset,
                    epoch: p.epoch,
                    record: held.record.clone(),
                    receive_count: held.receive_count,
                });
            }
            for handed in &taken[before..] {
                p.waiting.remove(&handed.offset);
            }
            if taken.len() >= room {
                break;
            }
        }
        taken
    }

    /// How long until the earliest delayed record is due, in milliseconds after `now`.
    pub(crate) fn next_due(&self, now: u64) -> Option<u64> {
        self.assigned
            .values()
            .flat_map(|p| {
                p.waiting
                    .iter()
                    .filter_map(|offset| p.outstanding.get(offset))
            })
            .filter_map(|held| held.record.not_before)
            .map(|due| due.saturating_sub(now))
            .min()
    }

    /// The record a token of `epoch` names and its receive count, while it is still held.
    pub(crate) fn held(
        &self,
        partition: i32,
        offset: i64,
        epoch: u64,
    ) -> Option<(Arc<Record>, u32)> {
        let p = self.assigned.get(&partition).filter(|p| p.epoch == epoch)?;
        p.outstanding
            .get(&offset)
            .filter(|held| held.handed_out)
            .map(|held| (held.record.clone(), held.receive_count))
    }

    /// Settles the record at `offset`, handed out in `epoch`.
    pub(crate) fn settle(&mut self, partition: i32, offset: i64, epoch: u64) -> Settled {
        match self.assigned.get_mut(&partition) {
            Some(p) if p.epoch == epoch => match p.outstanding.get(&offset) {
                Some(held) if held.handed_out => {
                    p.outstanding.remove(&offset);
                    Settled::Now
                }
                _ => Settled::Already,
            },
            _ => Settled::Stale,
        }
    }

    /// The watermarks to commit: every partition whose watermark moved past what the group
    /// has committed.
    pub(crate) fn commits(&self) -> Vec<Commit> {
        self.resolved(|p| {
            let offset = p.watermark()?;
            p.committed.is_none_or(|c| offset > c).then_some(offset)
        })
    }

    /// Records that `commits` reached the group (those of partitions still in that epoch).
    pub(crate) fn committed(&mut self, commits: &[Commit]) {
        for (p, offset) in self.matching(commits) {
            p.committed = Some(p.committed.map_or(offset, |c| c.max(offset)));
        }
    }

    /// The handed-out marks to record: every partition that handed out records past the
    /// recorded mark.
    pub(crate) fn marks(&self) -> Vec<Commit> {
        self.resolved(|p| (p.handed_high > p.handed_committed).then_some(p.handed_high))
    }

    /// Records that `marks` were recorded.
    pub(crate) fn marked(&mut self, marks: &[Commit]) {
        for (p, offset) in self.matching(marks) {
            p.handed_committed = p.handed_committed.max(offset);
        }
    }

    /// One commit per resolved partition for which `offset` answers one. A partition whose
    /// group commit is not known yet commits nothing: it could lower what the group has.
    fn resolved(&self, offset: impl Fn(&Partition) -> Option<i64>) -> Vec<Commit> {
        let mut commits: Vec<Commit> = self
            .assigned
            .iter()
            .filter(|(_, p)| p.resolved)
            .filter_map(|(&partition, p)| {
                offset(p).map(|offset| Commit {
                    partition,
                    epoch: p.epoch,
                    offset,
                })
            })
            .collect();
        commits.sort_by_key(|c| c.partition);
        commits
    }

    /// The partitions of `commits` still in the commit's epoch, with the commit's offset.
    fn matching<'a>(
        &'a mut self,
        commits: &'a [Commit],
    ) -> impl Iterator<Item = (&'a mut Partition, i64)> + 'a {
        self.assigned.iter_mut().filter_map(move |(partition, p)| {
            let commit = commits
                .iter()
                .find(|c| c.partition == *partition && c.epoch == p.epoch)?;
            Some((p, commit.offset))
        })
    }
}

#[cfg(test)]
mod tests {
    use broker_core::Message;

    use super::*;

    fn record(receives: u32) -> Record {
        Record {
            receives,
            ..Record::publish(&Message::new("m"))
        }
    }

    /// Partitions with `partition` assigned and the group's commit read.
    fn assigned(partition: i32, committed: Option<i64>, handed: i64) -> Partitions {
        let mut partitions = Partitions::default();
        partitions.assign(partition);
        let (_, epoch) = partitions.unresolved()[0];
        partitions.resolve(partition, epoch, committed, handed);
        partitions
    }

    fn with_read(offsets: std::ops::Range<i64>) -> Partitions {
        let mut partitions = assigned(0, Some(offsets.start), 0);
        for offset in offsets {
            assert!(partitions.read(0, offset, record(0)));
        }
        partitions
    }

    fn commit_offset(partitions: &Partitions) -> Option<i64> {
        partitions.commits().first().map(|c| c.offset)
    }

    #[test]
    fn acks_after_a_gap_are_not_committed_past_it() {
        let mut partitions = with_read(10..15);
        let taken = partitions.take_due(0, 10);
        assert_eq!(taken.len(), 5);
        let epoch = taken[0].epoch;
        for offset in [11, 12, 14] {
            assert_eq!(partitions.settle(0, offset, epoch), Settled::Now);
        }
        assert_eq!(
            commit_offset(&partitions),
            None,
            "10 is not settled: the group stays at 10"
        );
        assert_eq!(partitions.settle(0, 10, epoch), Settled::Now);
        assert_eq!(
            commit_offset(&partitions),
            Some(13),
            "10 to 12 are settled, 13 is not"
        );
        assert_eq!(partitions.settle(0, 13, epoch), Settled::Now);
        assert_eq!(commit_offset(&partitions), Some(15), "all settled");
    }

    #[test]
    fn nothing_moved_means_nothing_to_commit() {
        let mut partitions = assigned(0, None, 0);
        partitions.read(0, 3, record(0));
        let commits = partitions.commits();
        assert_eq!(
            commits.len(),
            1,
            "a group that never committed gets its first commit"
        );
        assert_eq!(commits[0].offset, 3);
        partitions.committed(&commits);
        assert!(partitions.commits().is_empty());
    }

    #[test]
    fn handing_out_moves_the_mark_that_the_next_owner_reads() {
        let mut partitions = with_read(0..3);
        assert!(partitions.marks().is_empty(), "nothing handed out yet");
        partitions.take_due(0, 2);
        let marks = partitions.marks();
        assert_eq!(marks.len(), 1);
        assert_eq!(marks[0].offset, 2);
        assert!(
            partitions.commits().is_empty(),
            "nothing settled: the watermark stays"
        );
        partitions.marked(&marks);
        assert!(partitions.marks().is_empty());

        let mut next_owner = assigned(0, Some(0), marks[0].offset);
        for offset in 0..3 {
            next_owner.read(0, offset, record(0));
        }
        let counts: Vec<u32> = next_owner
            .take_due(0, 3)
            .iter()
            .map(|t| t.receive_count)
            .collect();
        assert_eq!(counts, [2, 2, 1], "handed out before: redelivered");
    }

    #[test]
    fn a_republished_copy_counts_the_earlier_receives() {
        let mut partitions = assigned(1, None, 0);
        partitions.read(1, 0, record(2));
        assert_eq!(partitions.take_due(0, 1)[0].receive_count, 3);
    }

    #[test]
    fn tokens_of_a_revoked_partition_are_stale() {
        let mut partitions = with_read(0..2);
        let taken = partitions.take_due(0, 2);
        partitions.revoke(0);
        assert_eq!(partitions.settle(0, 0, taken[0].epoch), Settled::Stale);
        partitions.assign(0);
        assert_eq!(partitions.settle(0, 0, taken[0].epoch), Settled::Stale);
        assert!(partitions.held(0, 1, taken[1].epoch).is_none());
    }

    #[test]
    fn a_repeated_ack_is_already_settled() {
        let mut partitions = with_read(0..1);
        let taken = partitions.take_due(0, 1);
        assert_eq!(partitions.settle(0, 0, taken[0].epoch), Settled::Now);
        assert_eq!(partitions.settle(0, 0, taken[0].epoch), Settled::Already);
    }

    #[test]
    fn a_delayed_record_waits_and_holds_the_watermark_back() {
        let mut partitions = assigned(0, Some(0), 0);
        let delayed = Record {
            not_before: Some(1_000),
            ..record(0)
        };
        partitions.read(0, 0, delayed);
        partitions.read(0, 1, record(0));
        let now = partitions.take_due(500, 10);
        assert_eq!(now.iter().map(|t| t.offset).collect::<Vec<_>>(), [1]);
        assert_eq!(partitions.next_due(500), Some(500));
        partitions.settle(0, 1, now[0].epoch);
        assert_eq!(commit_offset(&partitions), None, "0 is not settled yet");
        let later = partitions.take_due(1_000, 10);
        assert_eq!(later.iter().map(|t| t.offset).collect::<Vec<_>>(), [0]);
    }

    #[test]
    fn nothing_is_committed_before_the_groups_commit_is_known() {
        let mut partitions = Partitions::default();
        partitions.assign(0);
        partitions.read(0, 0, record(0));
        let taken = partitions.take_due(0, 1);
        partitions.settle(0, 0, taken[0].epoch);
        assert!(
            partitions.commits().is_empty(),
            "a commit now could go backwards"
        );
        assert!(
            partitions.marks().is_empty(),
            "a mark now could lower the group's handed-out mark"
        );
    }

    #[test]
    fn reading_a_partition_that_is_not_ours_keeps_nothing() {
        let mut partitions = Partitions::default();
        assert!(!partitions.read(5, 0, record(0)));
        assert!(partitions.take_due(0, 10).is_empty());
    }
}
