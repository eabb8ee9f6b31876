//! Queue names: how a portable queue name becomes an SQS queue name, as kombu spells it.
//!
//! kombu's SQS transport puts its `queue_name_prefix` in front of the name, then turns every
//! ASCII punctuation character except `-` and `_` into `_`, and `.` into `-`, leaving a `.fifo`
//! suffix as it is. A Python Celery worker configured with the same prefix therefore finds the
//! queue this backend names: Celery's `ical.probe` is SQS queue `ical-probe`.
//!
//! Dead-letter queues follow the core's one rule ([`broker_core::dead_letter_queue`]), except
//! that a FIFO queue's dead-letter queue must itself be a FIFO queue: the dead-letter queue of
//! `jobs.fifo` is `jobs.dlq.fifo`.

/// The suffix that makes an SQS queue a FIFO queue.
pub const FIFO_SUFFIX: &str = ".fifo";

/// Whether `queue` names a FIFO queue.
#[must_use]
pub fn is_fifo(queue: &str) -> bool {
    queue.ends_with(FIFO_SUFFIX)
}

/// The SQS name of `queue` under `prefix`, spelled as kombu's `entity_name` spells it.
#[must_use]
pub fn sqs_queue_name(prefix: &str, queue: &str) -> String {
    let full = format!("{prefix}{queue}");
    match full.strip_suffix(FIFO_SUFFIX) {
        Some(base) => format!("{}{FIFO_SUFFIX}", kombu_entity_name(base)),
        None => kombu_entity_name(&full),
    }
}

fn kombu_entity_name(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '.' => '-',
            '-' | '_' => c,
            c if c.is_ascii_punctuation() => '_',
            c => c,
        })
        .collect()
}

/// The dead-letter queue of `queue` by the core's rule, kept a FIFO queue when `queue` is one;
/// `None` when `queue` is itself a dead-letter queue.
#[must_use]
pub fn dead_letter_queue(queue: &str) -> Option<String> {
    match queue.strip_suffix(FIFO_SUFFIX) {
        Some(base) => broker_core::dead_letter_queue(base).map(|dlq| format!("{dlq}{FIFO_SUFFIX}")),
        None => broker_core::dead_letter_queue(queue),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_spelled_as_kombu_spells_them() {
        assert_eq!(sqs_queue_name("", "ical.probe"), "ical-probe");
        assert_eq!(sqs_queue_name("", "celery"), "celery");
        assert_eq!(sqs_queue_name("", "a:b/c@d-e_f"), "a_b_c_d-e_f");
        assert_eq!(sqs_queue_name("dev-", "jobs.dlq.fifo"), "dev-jobs-dlq.fifo");
        assert_eq!(sqs_queue_name("p.", "x"), "p-x");
    }

    #[test]
    fn a_fifo_queue_dead_letters_to_a_fifo_queue() {
        assert_eq!(
            dead_letter_queue("jobs.fifo").as_deref(),
            Some("jobs.dlq.fifo")
        );
        assert_eq!(dead_letter_queue("jobs.dlq.fifo"), None);
        assert_eq!(dead_letter_queue("jobs").as_deref(), Some("jobs.dlq"));
        assert_eq!(dead_letter_queue("jobs.dlq"), None);
    }
}
