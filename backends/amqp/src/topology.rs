//! What the broker declares on RabbitMQ, and the headers it adds to messages.
//!
//! | name | kind | arguments | holds |
//! |---|---|---|---|
//! | `<queue>` | durable classic queue | none (kombu's default) | the queue's messages |
//! | `<queue>` | durable direct exchange, bound to the queue with routing key `<queue>` | none | Celery's default routing; publishes by Python Celery arrive through it |
//! | `<queue>.dlq` | durable classic queue | none | dead letters of `<queue>`, each with header `x-dead-letter-reason` |
//! | `<queue>.delay.<ms>` | durable classic queue | `x-message-ttl` = ms, `x-dead-letter-exchange` = `""`, `x-dead-letter-routing-key` = `<queue>`, `x-expires` = ms + 60 s | messages delayed by ms milliseconds; each moves to `<queue>` when its TTL ends; the queue deletes itself once unused |
//!
//! Our publishes go through the default exchange (routing key = queue name) with the
//! `mandatory` flag, so a publish to a missing queue comes back as an error instead of being
//! dropped. The main queue carries no argument, so a Python Celery worker that declares it
//! with kombu's defaults finds it equivalent.

use std::time::Duration;

use lapin::types::{AMQPValue, FieldTable, ShortString};

/// Header in which a requeued, delayed or dead-lettered copy records how many times the
/// message had been received. Absent on a first publish.
pub const RECEIVES_HEADER: &str = "x-switchyard-receives";

/// How long an unused delay queue outlives its delay before RabbitMQ deletes it.
const DELAY_QUEUE_SPARE: Duration = Duration::from_secs(60);

/// Headers RabbitMQ or this crate add in transit, not part of what the publisher sent: they
/// are not handed to consumers as headers.
#[must_use]
pub fn is_transit_header(name: &str) -> bool {
    name == RECEIVES_HEADER
        || name == "x-death"
        || name.starts_with("x-first-death-")
        || name.starts_with("x-last-death-")
}

/// The queue whose messages wait `delay` before they move to `queue`.
#[must_use]
pub fn delay_queue(queue: &str, delay: Duration) -> String {
    format!("{queue}.delay.{}", delay.as_millis())
}

/// The arguments of [`delay_queue`]`(queue, delay)`.
#[must_use]
pub fn delay_queue_arguments(queue: &str, delay: Duration) -> FieldTable {
    let millis = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    let spare = i64::try_from(DELAY_QUEUE_SPARE.as_millis()).unwrap_or(i64::MAX);
    let mut arguments = FieldTable::default();
    arguments.insert("x-message-ttl".into(), AMQPValue::LongLongInt(millis));
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    arguments.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(queue.into()),
    );
    arguments.insert(
        "x-expires".into(),
        AMQPValue::LongLongInt(millis.saturating_add(spare)),
    );
    arguments
}

/// `name` as an AMQP short string, or why it cannot be one (longer than 255 bytes).
pub(crate) fn short(name: &str) -> Result<ShortString, String> {
    ShortString::try_new(name).map_err(|_| {
        format!(
            "name `{}...` is {} bytes; AMQP names are at most 255",
            name.chars().take(32).collect::<String>(),
            name.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delay_queue_is_named_by_its_queue_and_delay_in_milliseconds() {
        assert_eq!(
            delay_queue("ical", Duration::from_millis(2500)),
            "ical.delay.2500"
        );
    }

    #[test]
    fn a_delay_queue_dead_letters_back_to_its_queue_after_its_ttl() {
        let arguments = delay_queue_arguments("ical", Duration::from_secs(2));
        let get = |name: &str| arguments.inner().get(name).cloned();
        assert_eq!(get("x-message-ttl"), Some(AMQPValue::LongLongInt(2000)));
        assert_eq!(
            get("x-dead-letter-routing-key"),
            Some(AMQPValue::LongString("ical".into()))
        );
        assert_eq!(get("x-expires"), Some(AMQPValue::LongLongInt(62_000)));
    }

    #[test]
    fn death_records_and_the_receive_count_are_transit_headers() {
        for name in [RECEIVES_HEADER, "x-death", "x-first-death-reason"] {
            assert!(is_transit_header(name), "{name}");
        }
        assert!(!is_transit_header("x-dead-letter-reason"));
        assert!(!is_transit_header("task"));
    }
}
