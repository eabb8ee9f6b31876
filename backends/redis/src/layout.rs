//! The key layout: kombu's keys for what Celery shares, `_broker.*` keys for what this crate
//! adds. Every name starts with the configured key prefix (kombu's `global_keyprefix`).

/// Key names under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

/// kombu's separator inside binding entries.
const SEP: &str = "\x06\x16";

impl Keys {
    /// The keys under `prefix` (may be empty).
    #[must_use]
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// List of waiting envelopes (kombu: LPUSH publishes, consumers take from the right).
    #[must_use]
    pub fn queue(&self, queue: &str) -> String {
        format!("{}{queue}", self.prefix)
    }

    /// Set that marks `queue` as declared: kombu's binding of the exchange named like the
    /// queue (Celery's default), holding `queue\x06\x16\x06\x16queue`.
    #[must_use]
    pub fn binding(&self, queue: &str) -> String {
        format!("{}_kombu.binding.{queue}", self.prefix)
    }

    /// The member [`binding`](Self::binding) holds: routing key, pattern, queue.
    #[must_use]
    pub fn binding_member(queue: &str) -> String {
        format!("{queue}{SEP}{SEP}{queue}")
    }

    /// Sorted set of delayed envelopes, scored by the server time (ms) they fall due.
    #[must_use]
    pub fn delayed(&self, queue: &str) -> String {
        format!("{}_broker.delayed.{queue}", self.prefix)
    }

    /// kombu's hash of leased deliveries: tag -> `[envelope, exchange, routing_key]`.
    #[must_use]
    pub fn unacked(&self) -> String {
        format!("{}unacked", self.prefix)
    }

    /// kombu's sorted set of leased tags, scored (in seconds) by the time the lease counts
    /// from: its end minus the visibility timeout.
    #[must_use]
    pub fn unacked_index(&self) -> String {
        format!("{}unacked_index", self.prefix)
    }

    /// Counter giving each envelope its place in publish order.
    #[must_use]
    pub fn sequence(&self) -> String {
        format!("{}_broker.seq", self.prefix)
    }

    /// Deduplication marker of `id` on `queue` (a string with the window as its expiry).
    #[must_use]
    pub fn dedup(&self, queue: &str, id: &str) -> String {
        format!("{}_broker.dedup.{queue}.{id}", self.prefix)
    }

    /// Pub/sub channel announcing, by queue name, that a queue has new work.
    #[must_use]
    pub fn wake_channel(&self) -> String {
        format!("{}_broker.wake", self.prefix)
    }

    /// Celery's result key of a task.
    #[must_use]
    pub fn result(&self, task_id: &str) -> String {
        format!("{}celery-task-meta-{task_id}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kombu_names_are_kept_under_the_prefix() {
        let keys = Keys::new("app:");
        assert_eq!(keys.queue("celery"), "app:celery");
        assert_eq!(keys.binding("celery"), "app:_kombu.binding.celery");
        assert_eq!(keys.unacked(), "app:unacked");
        assert_eq!(keys.unacked_index(), "app:unacked_index");
        assert_eq!(keys.result("t1"), "app:celery-task-meta-t1");
        assert_eq!(
            Keys::binding_member("celery"),
            "celery\x06\x16\x06\x16celery"
        );
        assert_eq!(Keys::new("").queue("celery"), "celery");
    }
}
