//! What a backend promises, declared up front and checked at start-up.
//!
//! Each backend returns one [`Capabilities`] value describing the guarantees it keeps. The
//! conformance suite tests exactly what is declared, so a value here is a tested promise, not a
//! hope. Applications state what they rely on with [`Requirement`]s and call
//! [`Capabilities::require`] before they start; a backend that cannot keep a requirement is an
//! error at start-up rather than a surprise in production.

use std::{fmt, time::Duration};

use crate::error::{Error, ErrorKind, Operation, Result};

/// How often a published message is handed to a consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryGuarantee {
    /// At most once: a message may be lost (for example when a consumer dies), never repeated.
    AtMostOnce,
    /// At least once: a message is never lost once `publish` returned `Ok`, but a consumer may
    /// see it again (after a crash, a lease expiry or a publish retry). Handlers must be
    /// idempotent.
    AtLeastOnce,
}

/// In which order deliveries leave the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ordering {
    /// No promise: messages may be delivered in any order (SQS standard).
    None,
    /// Messages with the same ordering key are handed out in publish order: each consumer sees
    /// a key's messages in increasing order. No order between keys. (Some backends, SQS FIFO
    /// among them, also hold a key's next message while one is in flight; that is not part of
    /// this promise.)
    PerKey,
    /// The queue hands messages out in publish order (first in, first out), ordering key or
    /// not. A message that comes back (nack, lease expiry) takes its original place. With
    /// several consumers each one sees an increasing sequence; processing may interleave.
    PerQueue,
}

/// Whether a repeated publish is delivered once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deduplication {
    /// Every publish is a delivery.
    None,
    /// Messages published with the same [`deduplication_id`](crate::Message::deduplication_id)
    /// within `window` of the first are dropped (the publish still returns `Ok`).
    ById {
        /// How long a deduplication id is remembered after its first publish.
        window: Duration,
    },
}

/// What makes a delivery that was never acknowledged come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redelivery {
    /// A delivery is leased for `default_lease` from the moment it is received; if it is not
    /// acked or nacked by then it becomes visible again, marked redelivered with its receive
    /// count increased.
    Lease {
        /// The lease given at receipt.
        default_lease: Duration,
        /// Whether [`Delivery::extend_lease`](crate::Delivery::extend_lease) works.
        extension: LeaseExtension,
    },
    /// A delivery comes back when the consumer's connection or channel closes without acking
    /// it (AMQP). There is no time limit while the connection lives.
    OnDisconnect,
}

/// Whether and how far a lease can be extended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseExtension {
    /// Extension is not available.
    Unsupported,
    /// The lease can be set to any duration up to `max` from now, as often as needed.
    UpTo {
        /// The longest lease one extension may set.
        max: Duration,
    },
}

/// What the token of a lease that ended can still do: the case of a slow consumer that
/// settles a message after its lease ran out.
///
/// Ordered from no promise to the strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StaleTokens {
    /// No promise: an old token may still settle the message, even after another consumer
    /// received it (an SQS receipt handle can outlive its visibility timeout).
    MaySettle,
    /// Once the message was handed out again, the old token settles nothing: ack, nack and
    /// extension give [`ErrorKind::LeaseLost`] and the new holder keeps the message. Until
    /// then the old token still settles it (nobody else holds it).
    RejectedOnceRedelivered,
    /// Once its lease ended, a token settles nothing ([`ErrorKind::LeaseLost`]), whether or
    /// not the message was handed out again; the message comes back for another consumer.
    Rejected,
}

/// Whether a message can be published with a delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delay {
    /// Delayed publishing and delayed nack are rejected with [`ErrorKind::Unsupported`].
    Unsupported,
    /// A message is never delivered before its delay has passed; delays up to `max` are
    /// accepted. Long delays never cause duplicates.
    UpTo {
        /// The longest delay accepted.
        max: Duration,
    },
}

/// Where messages that cannot be processed end up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetter {
    /// No dead-letter place: a poison message can only be dropped (acked) or requeued.
    Unsupported,
    /// A message received `max_receives` times without being acked, or nacked with
    /// [`NackAction::DeadLetter`](crate::NackAction::DeadLetter), moves to the queue named by
    /// [`Broker::dead_letter_queue`](crate::Broker::dead_letter_queue), where it can be
    /// received like any other.
    Queue {
        /// Receives after which an unacked message is dead-lettered instead of redelivered.
        max_receives: u32,
    },
}

/// Whether messages survive a broker restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Lost when the broker process ends.
    Transient,
    /// Kept across broker restarts once `publish` returned `Ok`.
    Durable,
}

/// Whether the backend can say how many messages a queue holds
/// ([`Broker::count`](crate::Broker::count)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Counting {
    /// Counting is refused with [`ErrorKind::Unsupported`].
    Unsupported,
    /// Counts are estimates that settle within seconds of a change (SQS's approximate
    /// attributes): right for a dashboard, not for deciding whether a queue is empty.
    Approximate,
    /// Counts are exact at the moment the broker answers.
    Exact,
}

/// The guarantees and limits of one backend.
/// Backends build it from [`Capabilities::minimal`] with struct-update syntax.
///
/// # Limits
///
/// [`Queue`](crate::Queue) and [`Delivery`](crate::Delivery) run these checks before they call
/// a driver, so every backend refuses the same input with the same error, and drivers may
/// assume valid input (see [`Broker`](crate::Broker)). Each limit has one error kind and one
/// message:
///
/// | limit | broken by | kind |
/// |---|---|---|
/// | `max_payload` | a message whose [`encoded_size`](crate::Message::encoded_size) is larger | [`PayloadTooLarge`](ErrorKind::PayloadTooLarge) |
/// | [`Delay::Unsupported`] | a publish or nack asking for a delay | [`Unsupported`](ErrorKind::Unsupported) |
/// | [`Delay::UpTo`] | a publish or nack delay over `max` | [`InvalidInput`](ErrorKind::InvalidInput) |
/// | [`max_lease`](Capabilities::max_lease) `None` | any lease extension | [`Unsupported`](ErrorKind::Unsupported) |
/// | [`max_lease`](Capabilities::max_lease) | an extension over it | [`InvalidInput`](ErrorKind::InvalidInput) |
/// | [`DeadLetter::Unsupported`] | a dead-letter nack | [`Unsupported`](ErrorKind::Unsupported) |
/// | a dead-letter queue has none (see [`dead_letter_queue`](crate::dead_letter_queue)) | a dead-letter nack from it | [`Unsupported`](ErrorKind::Unsupported) |
/// | [`Counting::Unsupported`] | counting a queue | [`Unsupported`](ErrorKind::Unsupported) |
///
/// `max_batch` is never an error: publishes and acks are split into batches of at most
/// `max_batch`, and a receive asking for more is lowered to it (see
/// [`Queue::receive`](crate::Queue::receive)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The backend's short name (`memory`, `redis`, `sqs`, ...).
    pub backend: &'static str,
    /// How often a message is delivered.
    pub delivery: DeliveryGuarantee,
    /// In which order.
    pub ordering: Ordering,
    /// Whether repeated publishes collapse.
    pub deduplication: Deduplication,
    /// What brings unacknowledged work back.
    pub redelivery: Redelivery,
    /// What a token from a lease that ended can still do.
    pub stale_tokens: StaleTokens,
    /// Delayed delivery.
    pub delay: Delay,
    /// Dead-lettering.
    pub dead_letter: DeadLetter,
    /// Survives a broker restart or not.
    pub persistence: Persistence,
    /// Whether queues can be counted.
    pub counting: Counting,
    /// The most messages one publish or receive call handles.
    pub max_batch: usize,
    /// The largest [`Message::encoded_size`](crate::Message::encoded_size) accepted, in bytes.
    pub max_payload: usize,
    /// The longest a receive that is already waiting on an empty queue takes to return a
    /// message after it was published: the bound of a backend whose waiting receivers are
    /// woken (a notification, a long poll), or the poll interval of one that only polls.
    pub idle_pickup: Duration,
}

impl Capabilities {
    /// A starting point for a backend's declaration: at-least-once, nothing else promised,
    /// batches of one, 256 KiB payloads, and an idle receive that picks up new work within a
    /// second. Backends override what they keep.
    #[must_use]
    pub fn minimal(backend: &'static str) -> Self {
        Self {
            backend,
            delivery: DeliveryGuarantee::AtLeastOnce,
            ordering: Ordering::None,
            deduplication: Deduplication::None,
            redelivery: Redelivery::OnDisconnect,
            stale_tokens: StaleTokens::MaySettle,
            delay: Delay::Unsupported,
            dead_letter: DeadLetter::Unsupported,
            persistence: Persistence::Transient,
            counting: Counting::Unsupported,
            max_batch: 1,
            max_payload: 256 * 1024,
            idle_pickup: Duration::from_secs(1),
        }
    }

    /// The longest lease extension, when leases can be extended.
    #[must_use]
    pub fn max_lease(&self) -> Option<Duration> {
        match self.redelivery {
            Redelivery::Lease {
                extension: LeaseExtension::UpTo { max },
                ..
            } => Some(max),
            _ => None,
        }
    }

    /// Whether this backend keeps `requirement`.
    #[must_use]
    pub fn satisfies(&self, requirement: Requirement) -> bool {
        match requirement {
            Requirement::AtLeastOnce => self.delivery == DeliveryGuarantee::AtLeastOnce,
            Requirement::OrderingPerKey => self.ordering >= Ordering::PerKey,
            Requirement::OrderingPerQueue => self.ordering == Ordering::PerQueue,
            Requirement::Deduplication => self.deduplication != Deduplication::None,
            Requirement::Delay(wanted) => {
                matches!(self.delay, Delay::UpTo { max } if max >= wanted)
            }
            Requirement::DeadLetter => self.dead_letter != DeadLetter::Unsupported,
            Requirement::LeaseRedelivery => matches!(self.redelivery, Redelivery::Lease { .. }),
            Requirement::RedeliveryOnDisconnect => self.redelivery == Redelivery::OnDisconnect,
            Requirement::LeaseExtension => self.max_lease().is_some(),
            Requirement::StaleTokens(promise) => self.stale_tokens >= promise,
            Requirement::Durable => self.persistence == Persistence::Durable,
            Requirement::PayloadUpTo(bytes) => self.max_payload >= bytes,
            Requirement::Counting => self.counting != Counting::Unsupported,
        }
    }

    /// Checks every requirement; the error names the backend and each guarantee it lacks.
    ///
    /// # Errors
    /// [`ErrorKind::Requirement`] listing all unmet requirements.
    pub fn require(&self, requirements: &[Requirement]) -> Result<()> {
        let missing: Vec<String> = requirements
            .iter()
            .filter(|r| !self.satisfies(**r))
            .map(ToString::to_string)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Requirement,
            self.backend,
            Operation::Require,
            format!(
                "the {} backend does not guarantee {}",
                self.backend,
                missing.join(", ")
            ),
        ))
    }
}

/// A guarantee an application relies on; see [`Capabilities::require`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Nothing published is lost.
    AtLeastOnce,
    /// Messages with one ordering key arrive in publish order.
    OrderingPerKey,
    /// The whole queue arrives in publish order.
    OrderingPerQueue,
    /// Repeated publishes with one deduplication id collapse.
    Deduplication,
    /// Delays up to this long are accepted.
    Delay(Duration),
    /// Poison messages can be dead-lettered.
    DeadLetter,
    /// Unacknowledged work comes back once its lease (visibility timeout) ends, so a consumer
    /// that hangs or dies loses nothing.
    LeaseRedelivery,
    /// Unacknowledged work comes back when its consumer's connection closes.
    RedeliveryOnDisconnect,
    /// Leases can be extended while work runs.
    LeaseExtension,
    /// A token whose lease ended keeps at least this promise (see [`StaleTokens`]).
    StaleTokens(StaleTokens),
    /// Messages survive a broker restart.
    Durable,
    /// Payloads of this many bytes are accepted.
    PayloadUpTo(usize),
    /// Queues can be counted, exactly or approximately (see [`Counting`]).
    Counting,
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AtLeastOnce => f.write_str("at-least-once delivery"),
            Self::OrderingPerKey => f.write_str("ordering per key"),
            Self::OrderingPerQueue => f.write_str("ordering per queue"),
            Self::Deduplication => f.write_str("deduplication"),
            Self::Delay(d) => write!(f, "delays of {}s", d.as_secs_f64()),
            Self::DeadLetter => f.write_str("dead-lettering"),
            Self::LeaseRedelivery => f.write_str("redelivery after a lease"),
            Self::RedeliveryOnDisconnect => f.write_str("redelivery on disconnect"),
            Self::LeaseExtension => f.write_str("lease extension"),
            Self::StaleTokens(StaleTokens::MaySettle) => f.write_str("any stale-token behaviour"),
            Self::StaleTokens(StaleTokens::RejectedOnceRedelivered) => {
                f.write_str("stale tokens rejected once their message is redelivered")
            }
            Self::StaleTokens(StaleTokens::Rejected) => {
                f.write_str("stale tokens rejected once their lease ends")
            }
            Self::Durable => f.write_str("durable messages"),
            Self::PayloadUpTo(n) => write!(f, "payloads of {n} bytes"),
            Self::Counting => f.write_str("queue counts"),
        }
    }
}

/// A duration as an operator reads it: whole units where they fit (`5 min`, `24 h`), seconds
/// otherwise.
fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    if duration.subsec_nanos() != 0 || secs == 0 {
        return format!("{} s", duration.as_secs_f64());
    }
    match secs {
        s if s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s % 3_600 == 0 => format!("{} h", s / 3_600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

impl fmt::Display for DeliveryGuarantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AtMostOnce => "at most once",
            Self::AtLeastOnce => "at least once",
        })
    }
}

impl fmt::Display for Ordering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::PerKey => "per ordering key",
            Self::PerQueue => "per queue",
        })
    }
}

impl fmt::Display for Deduplication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::ById { window } => write!(f, "by id, within {}", human(*window)),
        }
    }
}

impl fmt::Display for Redelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OnDisconnect => f.write_str("when the consumer disconnects"),
            Self::Lease {
                default_lease,
                extension: LeaseExtension::Unsupported,
            } => write!(f, "after a lease of {}", human(*default_lease)),
            Self::Lease {
                default_lease,
                extension: LeaseExtension::UpTo { max },
            } => write!(
                f,
                "after a lease of {}, extendable to {}",
                human(*default_lease),
                human(*max)
            ),
        }
    }
}

impl fmt::Display for StaleTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MaySettle => "may still settle",
            Self::RejectedOnceRedelivered => "rejected once the message is handed out again",
            Self::Rejected => "rejected once the lease ends",
        })
    }
}

impl fmt::Display for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsupported => f.write_str("unsupported"),
            Self::UpTo { max } => write!(f, "up to {}", human(*max)),
        }
    }
}

impl fmt::Display for DeadLetter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsupported => f.write_str("unsupported"),
            Self::Queue { max_receives } => {
                write!(f, "to the dead-letter queue after {max_receives} receives")
            }
        }
    }
}

impl fmt::Display for Persistence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Transient => "transient",
            Self::Durable => "durable",
        })
    }
}

impl fmt::Display for Counting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unsupported => "unsupported",
            Self::Approximate => "approximate",
            Self::Exact => "exact",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fifo() -> Capabilities {
        Capabilities {
            ordering: Ordering::PerQueue,
            ..Capabilities::minimal("memory")
        }
    }

    #[test]
    fn queue_order_implies_key_order() {
        assert!(fifo().satisfies(Requirement::OrderingPerKey));
        assert!(!Capabilities::minimal("sqs").satisfies(Requirement::OrderingPerKey));
    }

    #[test]
    fn require_names_the_backend_and_every_missing_guarantee() {
        let err = Capabilities::minimal("sqs")
            .require(&[
                Requirement::OrderingPerKey,
                Requirement::AtLeastOnce,
                Requirement::Durable,
            ])
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Requirement);
        let text = err.to_string();
        assert!(
            text.contains("sqs backend does not guarantee ordering per key, durable messages"),
            "{text}"
        );
    }

    #[test]
    fn redelivery_requirements_follow_the_declared_redelivery() {
        let leased = Capabilities {
            redelivery: Redelivery::Lease {
                default_lease: Duration::from_secs(30),
                extension: LeaseExtension::Unsupported,
            },
            ..Capabilities::minimal("sqs")
        };
        assert!(leased.satisfies(Requirement::LeaseRedelivery));
        assert!(!leased.satisfies(Requirement::RedeliveryOnDisconnect));
        assert!(!leased.satisfies(Requirement::LeaseExtension));
        let amqp = Capabilities::minimal("amqp");
        assert!(amqp.satisfies(Requirement::RedeliveryOnDisconnect));
        assert!(!amqp.satisfies(Requirement::LeaseRedelivery));
    }

    #[test]
    fn stale_token_requirement_is_met_by_the_same_or_a_stronger_promise() {
        let with = |stale_tokens| Capabilities {
            stale_tokens,
            ..Capabilities::minimal("redis")
        };
        let once_redelivered = Requirement::StaleTokens(StaleTokens::RejectedOnceRedelivered);
        assert!(!with(StaleTokens::MaySettle).satisfies(once_redelivered));
        assert!(with(StaleTokens::RejectedOnceRedelivered).satisfies(once_redelivered));
        assert!(with(StaleTokens::Rejected).satisfies(once_redelivered));
        let rejected = Requirement::StaleTokens(StaleTokens::Rejected);
        assert!(!with(StaleTokens::RejectedOnceRedelivered).satisfies(rejected));
        assert!(with(StaleTokens::Rejected).satisfies(rejected));
    }

    #[test]
    fn capabilities_read_as_an_operator_would_say_them() {
        let redis_like = Capabilities {
            deduplication: Deduplication::ById {
                window: Duration::from_secs(300),
            },
            redelivery: Redelivery::Lease {
                default_lease: Duration::from_secs(3600),
                extension: LeaseExtension::UpTo {
                    max: Duration::from_secs(24 * 3600),
                },
            },
            delay: Delay::UpTo {
                max: Duration::from_millis(1500),
            },
            ..Capabilities::minimal("redis")
        };
        assert_eq!(redis_like.deduplication.to_string(), "by id, within 5 min");
        assert_eq!(
            redis_like.redelivery.to_string(),
            "after a lease of 1 h, extendable to 1 d"
        );
        assert_eq!(redis_like.delay.to_string(), "up to 1.5 s");
        assert_eq!(
            Redelivery::OnDisconnect.to_string(),
            "when the consumer disconnects"
        );
        assert_eq!(
            DeadLetter::Queue { max_receives: 5 }.to_string(),
            "to the dead-letter queue after 5 receives"
        );
    }

    #[test]
    fn delay_requirement_compares_with_the_maximum() {
        let caps = Capabilities {
            delay: Delay::UpTo {
                max: Duration::from_secs(900),
            },
            ..Capabilities::minimal("sqs")
        };
        assert!(caps.satisfies(Requirement::Delay(Duration::from_secs(900))));
        assert!(!caps.satisfies(Requirement::Delay(Duration::from_secs(901))));
    }
}
