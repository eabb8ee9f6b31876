//! The Celery message decoder on a captured message's parts (`headers`, `properties`, `body`:
//! the shape of `broker-core/tests/fixtures/celery/*.json`, which seed it). Decoding returns
//! an error or a task, never panics; a task it returns encodes, and decodes again to itself.

#![no_main]

use broker_core::{
    Headers,
    celery::{TaskMessage, TaskProperties},
};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;

#[derive(Deserialize)]
struct Captured {
    headers: Headers,
    #[serde(default)]
    properties: TaskProperties,
    body: String,
}

fuzz_target!(|data: &[u8]| {
    let Ok(captured) = serde_json::from_slice::<Captured>(data) else {
        return;
    };
    let Ok(task) = TaskMessage::decode_parts(
        &captured.headers,
        &captured.properties,
        captured.body.as_bytes(),
    ) else {
        return;
    };
    let _ = task.to_string();
    let encoded = task.encode().expect("a decoded task encodes");
    let again = TaskMessage::decode(&encoded).expect("an encoded task decodes");
    assert_eq!(again, task, "decode(encode(task)) is the task");
});
