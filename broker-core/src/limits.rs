//! The declared limits, checked once above every driver (see [`Capabilities#limits`]).

use std::time::Duration;

use crate::{
    broker::NackAction,
    capabilities::{Capabilities, Counting, DeadLetter, Delay},
    error::{Error, ErrorKind, Operation, Result},
    message::Message,
};

impl Capabilities {
    /// Checks message `index` of a publish against `max_payload` and the delay limit.
    ///
    /// [`Queue::publish_batch`](crate::Queue::publish_batch) calls it for every message before
    /// it sends any; a driver entry point that bypasses [`Queue`](crate::Queue) (PostgreSQL's
    /// outbox publish) calls it itself.
    ///
    /// # Errors
    /// `PayloadTooLarge`, or `Unsupported`/`InvalidInput` for the delay (see
    /// [`Capabilities#limits`]).
    pub fn check_publish(&self, index: usize, message: &Message) -> Result<()> {
        let size = message.encoded_size();
        if size > self.max_payload {
            return Err(self.refused(
                ErrorKind::PayloadTooLarge,
                Operation::Publish,
                format!(
                    "message {index} is {size} bytes; the limit is {}",
                    self.max_payload
                ),
            ));
        }
        match message.delay {
            Some(delay) => self.check_delay(delay, Operation::Publish, &format!("message {index}")),
            None => Ok(()),
        }
    }

    /// Checks a nack: its delay against the delay limit, a dead-letter nack against
    /// [`DeadLetter`]. Whether the delivery's queue has a dead-letter queue is checked by
    /// [`Delivery::nack`](crate::Delivery::nack), which knows the queue.
    ///
    /// # Errors
    /// `Unsupported` or `InvalidInput` (see [`Capabilities#limits`]).
    pub fn check_nack(&self, action: &NackAction) -> Result<()> {
        match action {
            NackAction::Requeue => Ok(()),
            NackAction::RequeueAfter(delay) => self.check_delay(*delay, Operation::Nack, "nack"),
            NackAction::DeadLetter { .. } if self.dead_letter == DeadLetter::Unsupported => {
                Err(self.refused(
                    ErrorKind::Unsupported,
                    Operation::Nack,
                    format!("the {} backend has no dead-letter queues", self.backend),
                ))
            }
            NackAction::DeadLetter { .. } => Ok(()),
        }
    }

    /// Checks a lease extension to `lease` against [`max_lease`](Self::max_lease).
    ///
    /// # Errors
    /// `Unsupported` when leases cannot be extended, `InvalidInput` over the maximum.
    pub fn check_lease_extension(&self, lease: Duration) -> Result<()> {
        match self.max_lease() {
            None => Err(self.refused(
                ErrorKind::Unsupported,
                Operation::ExtendLease,
                format!("the {} backend cannot extend leases", self.backend),
            )),
            Some(max) if lease > max => Err(self.refused(
                ErrorKind::InvalidInput,
                Operation::ExtendLease,
                format!(
                    "a lease of {}s is over the maximum of {}s",
                    lease.as_secs_f64(),
                    max.as_secs_f64()
                ),
            )),
            Some(_) => Ok(()),
        }
    }

    /// Checks that queues can be counted.
    ///
    /// # Errors
    /// `Unsupported` when the backend declares [`Counting::Unsupported`].
    pub fn check_count(&self) -> Result<()> {
        match self.counting {
            Counting::Unsupported => Err(self.cannot_count()),
            Counting::Approximate | Counting::Exact => Ok(()),
        }
    }

    /// The error of a backend asked to count queues that cannot.
    pub(crate) fn cannot_count(&self) -> Error {
        self.refused(
            ErrorKind::Unsupported,
            Operation::Count,
            format!(
                "the {} backend cannot count the messages of a queue",
                self.backend
            ),
        )
    }

    /// The error for a dead-letter nack of a delivery from `queue`, a dead-letter queue.
    pub(crate) fn no_dead_letter_queue(&self, queue: &str) -> Error {
        self.refused(
            ErrorKind::Unsupported,
            Operation::Nack,
            format!("`{queue}` is a dead-letter queue and has none of its own"),
        )
    }

    /// `what` (a message, a nack) asking for `delay`. A zero delay is no delay.
    fn check_delay(&self, delay: Duration, operation: Operation, what: &str) -> Result<()> {
        match self.delay {
            _ if delay.is_zero() => Ok(()),
            Delay::Unsupported => Err(self.refused(
                ErrorKind::Unsupported,
                operation,
                format!(
                    "{what} asks for a delay; the {} backend cannot delay messages",
                    self.backend
                ),
            )),
            Delay::UpTo { max } if delay > max => Err(self.refused(
                ErrorKind::InvalidInput,
                operation,
                format!(
                    "{what} asks for a delay of {}s; the maximum is {}s",
                    delay.as_secs_f64(),
                    max.as_secs_f64()
                ),
            )),
            Delay::UpTo { .. } => Ok(()),
        }
    }

    fn refused(&self, kind: ErrorKind, operation: Operation, detail: String) -> Error {
        Error::new(kind, self.backend, operation, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::{LeaseExtension, Redelivery};

    const HOUR: Duration = Duration::from_secs(3600);

    fn limited() -> Capabilities {
        Capabilities {
            delay: Delay::UpTo { max: HOUR },
            redelivery: Redelivery::Lease {
                default_lease: Duration::from_secs(30),
                extension: LeaseExtension::UpTo { max: HOUR },
            },
            dead_letter: DeadLetter::Queue { max_receives: 5 },
            max_payload: 64,
            ..Capabilities::minimal("test")
        }
    }

    #[test]
    fn payload_over_the_limit_is_payload_too_large_naming_the_message() {
        let fits = Message::new(vec![0u8; 8]);
        let huge = Message::new(vec![0u8; 65]);
        assert!(limited().check_publish(0, &fits).is_ok());
        let err = limited().check_publish(3, &huge).expect_err("too large");
        assert_eq!(err.kind(), ErrorKind::PayloadTooLarge);
        assert_eq!(err.operation(), Operation::Publish);
        assert_eq!(err.backend(), Some("test"));
        assert!(err.detail().starts_with("message 3 is "), "{err}");
    }

    #[test]
    fn delay_up_to_the_maximum_is_accepted_and_over_it_is_invalid_input() {
        let at_max = Message::new("x").delay(HOUR);
        let over = Message::new("x").delay(HOUR + Duration::from_secs(1));
        assert!(limited().check_publish(0, &at_max).is_ok());
        let err = limited().check_publish(0, &over).expect_err("over");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(
            err.detail(),
            "message 0 asks for a delay of 3601s; the maximum is 3600s"
        );
        let err = limited()
            .check_nack(&NackAction::RequeueAfter(HOUR * 2))
            .expect_err("over");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(err.operation(), Operation::Nack);
        assert_eq!(
            err.detail(),
            "nack asks for a delay of 7200s; the maximum is 3600s"
        );
    }

    #[test]
    fn any_delay_is_unsupported_without_delay_support_except_zero() {
        let caps = Capabilities::minimal("test");
        let err = caps
            .check_publish(0, &Message::new("x").delay(Duration::from_secs(1)))
            .expect_err("no delays");
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        let err = caps
            .check_nack(&NackAction::RequeueAfter(Duration::from_millis(1)))
            .expect_err("no delays");
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(
            caps.check_nack(&NackAction::RequeueAfter(Duration::ZERO))
                .is_ok()
        );
        assert!(caps.check_nack(&NackAction::Requeue).is_ok());
    }

    #[test]
    fn lease_extension_is_checked_against_the_declared_maximum() {
        assert!(limited().check_lease_extension(HOUR).is_ok());
        let err = limited()
            .check_lease_extension(Duration::MAX)
            .expect_err("over");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(err.operation(), Operation::ExtendLease);
        let err = Capabilities::minimal("test")
            .check_lease_extension(Duration::from_secs(1))
            .expect_err("no extension");
        assert_eq!(err.kind(), ErrorKind::Unsupported);
    }

    #[test]
    fn dead_letter_nack_is_unsupported_without_dead_letter_queues() {
        let dead = NackAction::DeadLetter {
            reason: "poison".into(),
        };
        assert!(limited().check_nack(&dead).is_ok());
        let err = Capabilities::minimal("test")
            .check_nack(&dead)
            .expect_err("no dead-letter queues");
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert_eq!(err.detail(), "the test backend has no dead-letter queues");
    }
}
