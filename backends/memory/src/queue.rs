//! One queue's state: ready, delayed and leased messages, kept in publish order.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
    time::Duration,
};

use broker_core::{Headers, Message, Properties, QueueCounts, Received};
use bytes::Bytes;
use tokio::{sync::Notify, time::Instant};

use crate::expiry::ExpiringMap;

/// `now + duration`, or about thirty years from now when that cannot be represented: a moment
/// that never comes for this process. Keeps a huge delay or lease from panicking.
pub(crate) fn after(now: Instant, duration: Duration) -> Instant {
    const NEVER: Duration = Duration::from_secs(30 * 365 * 24 * 3600);
    now.checked_add(duration)
        .or_else(|| now.checked_add(NEVER))
        .unwrap_or(now)
}

/// A message as the queue keeps it. `seq` is its place in publish order, kept for life.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) seq: u64,
    pub(crate) id: String,
    pub(crate) payload: Bytes,
    pub(crate) headers: Headers,
    pub(crate) properties: Properties,
    pub(crate) ordering_key: Option<String>,
    pub(crate) receive_count: u32,
}

impl Stored {
    pub(crate) fn new(seq: u64, message: &Message) -> Self {
        Self {
            seq,
            id: uuid::Uuid::new_v4().to_string(),
            payload: message.payload.clone(),
            headers: message.headers.clone(),
            properties: message.properties.clone(),
            ordering_key: message.ordering_key.clone(),
            receive_count: 0,
        }
    }
}

#[derive(Debug)]
struct Leased {
    stored: Stored,
    lease: u64,
    until: Instant,
}

/// Where a message goes when it leaves a lease without an ack.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Return {
    Ready,
    After(Duration),
    DeadLetter,
}

#[derive(Debug, Default)]
pub(crate) struct QueueState {
    ready: BTreeMap<u64, Stored>,
    delayed: BTreeSet<(Instant, u64)>,
    delayed_messages: HashMap<u64, Stored>,
    leased: HashMap<u64, Leased>,
    lease_ends: BTreeSet<(Instant, u64)>,
    /// Deduplication ids seen within their window.
    dedup: ExpiringMap<()>,
    pub(crate) notify: Arc<Notify>,
}

impl QueueState {
    /// Whether `id` was seen within the window that began when it was first seen; records it
    /// for `window` if not. Costs the same however many ids are remembered.
    pub(crate) fn is_duplicate(&mut self, id: &str, window: Duration, now: Instant) -> bool {
        if self.dedup.get(id, now).is_some() {
            return true;
        }
        self.dedup.insert(id, (), now + window, now);
        false
    }

    pub(crate) fn push(&mut self, stored: Stored, delay: Option<Duration>, now: Instant) {
        match delay {
            Some(d) if !d.is_zero() => {
                self.delayed.insert((after(now, d), stored.seq));
                self.delayed_messages.insert(stored.seq, stored);
            }
            _ => {
                self.ready.insert(stored.seq, stored);
            }
        }
    }

    /// Moves due delayed messages to ready, and expired leases back (or to `dead`, once a
    /// message has been received `max_receives` times).
    pub(crate) fn reap(&mut self, now: Instant, max_receives: Option<u32>, dead: &mut Vec<Stored>) {
        while let Some(&(due, seq)) = self.delayed.first() {
            if due > now {
                break;
            }
            self.delayed.pop_first();
            if let Some(stored) = self.delayed_messages.remove(&seq) {
                self.ready.insert(seq, stored);
            }
        }
        while let Some(&(until, seq)) = self.lease_ends.first() {
            if until > now {
                break;
            }
            self.lease_ends.pop_first();
            if let Some(leased) = self.leased.remove(&seq) {
                self.give_back(leased.stored, Return::Ready, now, max_receives, dead);
            }
        }
    }

    /// Leases up to `max` ready messages, in publish order.
    pub(crate) fn take(
        &mut self,
        max: usize,
        lease_for: Duration,
        now: Instant,
        next_lease: &mut u64,
    ) -> Vec<Received> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some((seq, mut stored)) = self.ready.pop_first() else {
                break;
            };
            stored.receive_count += 1;
            *next_lease += 1;
            let lease = *next_lease;
            let until = after(now, lease_for);
            out.push(Received {
                id: stored.id.clone(),
                payload: stored.payload.clone(),
                headers: stored.headers.clone(),
                properties: stored.properties.clone(),
                ordering_key: stored.ordering_key.clone(),
                receive_count: stored.receive_count,
                token: broker_core::AckToken::new(format!("{seq}:{lease}")),
            });
            self.lease_ends.insert((until, seq));
            self.leased.insert(
                seq,
                Leased {
                    stored,
                    lease,
                    until,
                },
            );
        }
        out
    }

    /// Ends a lease held under `lease`; `None` if that lease is no longer current: handed out
    /// again, or ended by `now` (even if nobody took the message back yet).
    pub(crate) fn settle(&mut self, seq: u64, lease: u64, now: Instant) -> Option<Stored> {
        match self.leased.get(&seq) {
            Some(l) if l.lease == lease && l.until > now => {
                let leased = self.leased.remove(&seq)?;
                self.lease_ends.remove(&(leased.until, seq));
                Some(leased.stored)
            }
            _ => None,
        }
    }

    /// Moves the end of a current lease to `until`; `false` if that lease is no longer
    /// current at `now` (see [`settle`](Self::settle)).
    pub(crate) fn extend(&mut self, seq: u64, lease: u64, now: Instant, until: Instant) -> bool {
        match self.leased.get_mut(&seq) {
            Some(l) if l.lease == lease && l.until > now => {
                self.lease_ends.remove(&(l.until, seq));
                l.until = until;
                self.lease_ends.insert((until, seq));
                true
            }
            _ => false,
        }
    }

    /// Puts a message that left its lease back where `how` says.
    pub(crate) fn give_back(
        &mut self,
        stored: Stored,
        how: Return,
        now: Instant,
        max_receives: Option<u32>,
        dead: &mut Vec<Stored>,
    ) {
        let exhausted = max_receives.is_some_and(|max| stored.receive_count >= max);
        match how {
            Return::DeadLetter => dead.push(stored),
            _ if exhausted => dead.push(stored),
            Return::Ready => {
                self.ready.insert(stored.seq, stored);
            }
            Return::After(delay) => self.push(stored, Some(delay), now),
        }
    }

    /// When the next delayed message falls due or the next lease ends.
    pub(crate) fn next_event(&self) -> Option<Instant> {
        let delayed = self.delayed.first().map(|(at, _)| *at);
        let lease = self.lease_ends.first().map(|(at, _)| *at);
        match (delayed, lease) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The queue's messages by state, after [`reap`](Self::reap).
    pub(crate) fn counts(&self) -> QueueCounts {
        QueueCounts {
            ready: self.ready.len() as u64,
            in_flight: Some(self.leased.len() as u64),
            delayed: Some(self.delayed_messages.len() as u64),
        }
    }

    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(300);

    #[test]
    fn a_deduplication_check_costs_the_same_with_100_000_ids_in_the_window() {
        let now = Instant::now();
        let mut queue = QueueState::default();
        for n in 0..100_000 {
            assert!(!queue.is_duplicate(&format!("id-{n}"), WINDOW, now));
        }
        let before = queue.dedup.examined();
        for n in 100_000..101_000 {
            assert!(!queue.is_duplicate(&format!("id-{n}"), WINDOW, now));
        }
        let per_check = (queue.dedup.examined() - before) / 1_000;
        assert!(per_check <= 2, "{per_check} ids examined per check");
        assert!(
            queue.is_duplicate("id-0", WINDOW, now),
            "the oldest id is remembered"
        );
    }

    #[test]
    fn an_id_is_a_duplicate_only_within_its_window() {
        let now = Instant::now();
        let mut queue = QueueState::default();
        assert!(!queue.is_duplicate("a", WINDOW, now));
        assert!(queue.is_duplicate("a", WINDOW, now + WINDOW / 2));
        assert!(!queue.is_duplicate("a", WINDOW, now + WINDOW));
        assert!(queue.is_duplicate("a", WINDOW, now + WINDOW + WINDOW / 2));
    }
}
