//! The Redis backend's envelope decoder on anything stored in a list: kombu's JSON envelope,
//! seeded by `fuzz/seeds/redis_envelope`. Decoding returns an error or a message, never
//! panics; a message it returns, written again as an envelope, decodes to the same message.

#![no_main]

use broker_core::Message;
use broker_redis::envelope::{decode, encode_tail};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(first) = decode("tag", data) else {
        return;
    };
    let message = Message {
        payload: first.payload.clone(),
        headers: first.headers.clone(),
        properties: first.properties.clone(),
        ordering_key: first.ordering_key.clone(),
        ..Message::default()
    };
    let tail = encode_tail(&message, "tag", "queue").expect("a decoded message encodes");
    // The publish script's part: the opening brace and the two counters.
    let mut envelope = br#"{"x-seq":1,"x-receives":0,"#.to_vec();
    envelope.extend_from_slice(&tail);
    let again = decode("tag", &envelope).expect("an encoded message decodes");
    assert_eq!(again.payload, first.payload);
    assert_eq!(again.headers, first.headers);
    assert_eq!(again.properties, first.properties);
    assert_eq!(again.ordering_key, first.ordering_key);
});
