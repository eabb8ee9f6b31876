//! What a delivery's [`AckToken`] holds: the receipt handle, and what a dead-letter nack needs
//! to copy the message (SQS cannot move a message to another queue on request).

use broker_core::AckToken;

/// The parts of a token this crate made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Held<'a> {
    /// The receipt handle of this receive.
    pub(crate) receipt: &'a str,
    /// The SQS message id.
    pub(crate) message_id: &'a str,
    /// The FIFO message group; empty on a standard queue.
    pub(crate) group: &'a str,
    /// The SQS body as received.
    pub(crate) body: &'a str,
}

/// A token for `held`. Receipt handles, message ids and group ids hold no line breaks, so the
/// parts are separated by them and the body, last, may hold anything.
pub(crate) fn make(held: &Held<'_>) -> AckToken {
    AckToken::new(format!(
        "{}\n{}\n{}\n{}",
        held.receipt, held.message_id, held.group, held.body
    ))
}

/// The parts of `token`; `None` when this crate did not make it.
pub(crate) fn read(token: &AckToken) -> Option<Held<'_>> {
    let mut parts = token.as_str().splitn(4, '\n');
    Some(Held {
        receipt: parts.next().filter(|r| !r.is_empty())?,
        message_id: parts.next()?,
        group: parts.next()?,
        body: parts.next()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_gives_back_its_parts_whatever_the_body_holds() {
        let held = Held {
            receipt: "AQEB+abc/==",
            message_id: "m-1",
            group: "",
            body: "line one\nline two\n",
        };
        assert_eq!(read(&make(&held)), Some(held));
        assert_eq!(read(&AckToken::new("foreign")), None);
    }
}
