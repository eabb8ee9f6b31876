//! Where dead letters go: one naming rule for every backend and for the worker.
//!
//! The dead-letter queue of `q` is `q.dlq`, and a queue whose name ends in `.dlq` is a
//! dead-letter queue: it has none of its own. Dead letters end there, so a queue `x.dlq` keeps
//! what it holds: a message received there too often is handed out again rather than moved
//! further, and nacking one to the dead-letter queue is refused
//! ([`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported)).
//!
//! Declaring `q` also declares `q.dlq`, and deleting `q` deletes it; declaring `x.dlq` declares
//! that queue alone. A backend whose broker needs another name (SQS FIFO's `.fifo` suffix) maps
//! it in [`Broker::dead_letter_queue`](crate::Broker::dead_letter_queue), which defaults to
//! [`dead_letter_queue`].

/// The suffix that names a dead-letter queue. Backends whose scripts name dead-letter queues on
/// the server (Redis) are handed this value rather than spelling it themselves.
pub const DEAD_LETTER_SUFFIX: &str = ".dlq";

/// Header under which a dead-lettered message keeps the reason it was dead-lettered.
pub const DEAD_LETTER_REASON_HEADER: &str = "x-dead-letter-reason";

/// The dead-letter queue of `queue`: `<queue>.dlq`, or `None` when `queue` is itself a
/// dead-letter queue (its name ends in `.dlq`).
#[must_use]
pub fn dead_letter_queue(queue: &str) -> Option<String> {
    (!is_dead_letter_queue(queue)).then(|| format!("{queue}{DEAD_LETTER_SUFFIX}"))
}

/// Whether `queue` is a dead-letter queue: the end of the line for dead letters.
#[must_use]
pub fn is_dead_letter_queue(queue: &str) -> bool {
    queue.ends_with(DEAD_LETTER_SUFFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_dead_letters_to_its_name_with_the_suffix() {
        assert_eq!(dead_letter_queue("ical").as_deref(), Some("ical.dlq"));
        assert_eq!(dead_letter_queue("a.dlqx").as_deref(), Some("a.dlqx.dlq"));
    }

    #[test]
    fn a_dead_letter_queue_has_no_dead_letter_queue() {
        assert!(is_dead_letter_queue("ical.dlq"));
        assert_eq!(dead_letter_queue("ical.dlq"), None);
        assert_eq!(dead_letter_queue(".dlq"), None);
    }
}
