//! A map whose entries expire, cleaned up a bounded amount per write.
//!
//! Every write appends its deadline to a queue kept in write order. Each write first looks at
//! no more than [`SWEEP_PER_WRITE`] deadlines at the front of that queue and removes the
//! entries whose deadlines passed, so a write costs O(1) however many entries are live. Since
//! a write adds one deadline and may remove two, the expired backlog shrinks with every write.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use tokio::time::Instant;

/// The most deadlines one write looks at: one more than it adds, so the sweep catches up.
const SWEEP_PER_WRITE: usize = 2;

/// Entries keyed by text, each invisible from its deadline on and removed by a later write.
///
/// What a caller may rely on:
/// - [`get`](Self::get) never returns an entry whose deadline passed, swept or not;
/// - [`insert`](Self::insert) looks at no more than [`SWEEP_PER_WRITE`] deadlines;
/// - memory holds the live entries plus one deadline per write not yet swept. An expired entry
///   is removed by the writes that follow it; with no further writes it stays, invisible.
///
/// The sweep follows write order, which is deadline order as long as every entry lives equally
/// long (one store, one window). An entry with a shorter life than one written before it is
/// removed once that earlier entry's deadline passes.
#[derive(Debug)]
pub(crate) struct ExpiringMap<V> {
    entries: HashMap<Arc<str>, Entry<V>>,
    deadlines: VecDeque<Deadline>,
    writes: u64,
    /// Deadlines looked at by sweeps since the map was made: the work the tests count.
    examined: u64,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    expires_at: Instant,
    /// The write that set this value: a deadline of an earlier write of the key is stale.
    write: u64,
}

#[derive(Debug)]
struct Deadline {
    at: Instant,
    key: Arc<str>,
    write: u64,
}

impl<V> Default for ExpiringMap<V> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            deadlines: VecDeque::new(),
            writes: 0,
            examined: 0,
        }
    }
}

impl<V> ExpiringMap<V> {
    /// The value of `key` unless its deadline is at or before `now`.
    pub(crate) fn get(&self, key: &str, now: Instant) -> Option<&V> {
        self.entries
            .get(key)
            .filter(|entry| entry.expires_at > now)
            .map(|entry| &entry.value)
    }

    /// Sets `key` to `value` until `expires_at`, replacing any earlier value and deadline, after
    /// removing up to [`SWEEP_PER_WRITE`] entries that expired by `now`.
    pub(crate) fn insert(&mut self, key: &str, value: V, expires_at: Instant, now: Instant) {
        self.sweep(now);
        self.writes += 1;
        let key: Arc<str> = Arc::from(key);
        self.deadlines.push_back(Deadline {
            at: expires_at,
            key: key.clone(),
            write: self.writes,
        });
        self.entries.insert(
            key,
            Entry {
                value,
                expires_at,
                write: self.writes,
            },
        );
    }

    /// Removes `key` now; its deadline is dropped when the sweep reaches it.
    pub(crate) fn remove(&mut self, key: &str) {
        self.entries.remove(key);
    }

    fn sweep(&mut self, now: Instant) {
        for _ in 0..SWEEP_PER_WRITE {
            let Some(front) = self.deadlines.front() else {
                return;
            };
            self.examined += 1;
            if front.at > now {
                return;
            }
            let Some(deadline) = self.deadlines.pop_front() else {
                return;
            };
            let current = self
                .entries
                .get(&deadline.key)
                .is_some_and(|entry| entry.write == deadline.write);
            if current {
                self.entries.remove(&deadline.key);
            }
        }
    }

    /// Entries held, expired ones not yet swept included.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.entries.len()
    }

    /// Deadlines looked at by every sweep so far.
    #[cfg(test)]
    pub(crate) fn examined(&self) -> u64 {
        self.examined
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const LIVE: usize = 100_000;
    const SECOND: Duration = Duration::from_secs(1);
    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn a_write_examines_a_bounded_number_of_entries_among_100_000_live_ones() {
        let t0 = Instant::now();
        let mut map = ExpiringMap::default();
        for n in 0..LIVE {
            map.insert(&n.to_string(), n, t0 + DAY, t0);
        }
        let before = map.examined();
        for n in LIVE..LIVE + 1_000 {
            map.insert(&n.to_string(), n, t0 + DAY, t0 + SECOND);
        }
        let per_write = (map.examined() - before) / 1_000;
        assert!(per_write <= SWEEP_PER_WRITE as u64, "{per_write} per write");
        assert_eq!(map.held(), LIVE + 1_000, "nothing live was removed");
        assert_eq!(map.get("0", t0 + SECOND), Some(&0));
    }

    #[test]
    fn expired_entries_are_removed_by_later_writes_at_a_bounded_cost() {
        let t0 = Instant::now();
        let mut map = ExpiringMap::default();
        for n in 0..LIVE {
            map.insert(&format!("old-{n}"), n, t0 + SECOND, t0);
        }
        let later = t0 + 2 * SECOND;
        let before = map.examined();
        for n in 0..LIVE {
            map.insert(&format!("new-{n}"), n, later + DAY, later);
        }
        let examined = map.examined() - before;
        assert!(
            examined <= (LIVE * SWEEP_PER_WRITE) as u64,
            "{examined} examined"
        );
        assert_eq!(map.held(), LIVE, "every expired entry was removed");
        assert_eq!(map.get("old-0", later), None);
        assert_eq!(map.get("new-0", later), Some(&0));
    }

    #[test]
    fn an_expired_entry_is_invisible_before_it_is_swept() {
        let t0 = Instant::now();
        let mut map = ExpiringMap::default();
        map.insert("k", 1, t0 + SECOND, t0);
        assert_eq!(map.get("k", t0), Some(&1));
        assert_eq!(map.get("k", t0 + SECOND), None);
        assert_eq!(map.held(), 1);
    }

    #[test]
    fn a_rewritten_key_lives_until_its_latest_deadline() {
        let t0 = Instant::now();
        let mut map = ExpiringMap::default();
        map.insert("k", 1, t0 + SECOND, t0);
        map.insert("k", 2, t0 + 10 * SECOND, t0);
        // The first write's deadline passed and is swept; the second value stays.
        map.insert("other", 3, t0 + 10 * SECOND, t0 + 5 * SECOND);
        assert_eq!(map.get("k", t0 + 5 * SECOND), Some(&2));
        assert_eq!(map.held(), 2);
    }

    #[test]
    fn a_removed_key_is_gone_and_its_deadline_harmless() {
        let t0 = Instant::now();
        let mut map = ExpiringMap::default();
        map.insert("k", 1, t0 + SECOND, t0);
        map.remove("k");
        assert_eq!(map.get("k", t0), None);
        map.insert("k", 2, t0 + 10 * SECOND, t0);
        map.insert("other", 3, t0 + 10 * SECOND, t0 + 2 * SECOND);
        assert_eq!(map.get("k", t0 + 2 * SECOND), Some(&2));
    }
}
