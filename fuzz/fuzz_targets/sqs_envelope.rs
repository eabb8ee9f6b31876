//! The SQS backend's envelope decoder on any message body: kombu's (often base64-wrapped)
//! JSON envelope or anything a foreign producer sent, seeded by `fuzz/seeds/sqs_envelope`.
//! Opening returns an error or a message, never panics; a message it returns, sealed again,
//! opens to the same message.

#![no_main]

use broker_core::Message;
use broker_sqs::envelope::{open, seal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(first) = open(body) else {
        return;
    };
    let message = Message {
        payload: first.payload.clone(),
        headers: first.headers.clone(),
        properties: first.properties.clone(),
        ordering_key: first.ordering_key.clone(),
        ..Message::default()
    };
    let sealed = seal(&message, "queue").expect("an opened message seals");
    let again = open(&sealed).expect("a sealed message opens");
    assert_eq!(again, first);
});
