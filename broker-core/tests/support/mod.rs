//! The golden Celery fixtures (`fixtures/celery/*.json`, published by real Celery; see
//! `generate.py` there) and helpers to read them through the public codec.

// Each test binary uses the helpers it needs.
#![allow(dead_code, unreachable_pub)]

use broker_core::{
    Headers,
    celery::{EncodedTask, TaskMessage},
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Every fixture published by Celery: (file name, contents).
pub const FIXTURES: [(&str, &str); 10] = [
    ("plain", include_str!("../fixtures/celery/plain.json")),
    (
        "send_task",
        include_str!("../fixtures/celery/send_task.json"),
    ),
    (
        "eta_expires",
        include_str!("../fixtures/celery/eta_expires.json"),
    ),
    (
        "eta_naive",
        include_str!("../fixtures/celery/eta_naive.json"),
    ),
    ("retry", include_str!("../fixtures/celery/retry.json")),
    ("chain", include_str!("../fixtures/celery/chain.json")),
    (
        "callbacks",
        include_str!("../fixtures/celery/callbacks.json"),
    ),
    ("stamped", include_str!("../fixtures/celery/stamped.json")),
    ("unicode", include_str!("../fixtures/celery/unicode.json")),
    (
        "timelimits",
        include_str!("../fixtures/celery/timelimits.json"),
    ),
];

/// The fixture `name` as JSON: `headers`, `properties`, `body` and the versions that made it.
pub fn fixture_json(name: &str) -> Value {
    let (_, text) = FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fixture {name}"));
    serde_json::from_str(text).expect("fixture is JSON")
}

/// A fixture's message in its wire form, headers held as a map.
pub fn encoded_from_json(fixture: &Value) -> EncodedTask {
    EncodedTask {
        headers: fixture["headers"]
            .as_object()
            .expect("headers")
            .clone()
            .into(),
        properties: serde_json::from_value(fixture["properties"].clone()).expect("properties"),
        body: fixture["body"].as_str().expect("body").as_bytes().to_vec(),
    }
}

/// The fixture `name` in its wire form, headers held as a map.
pub fn encoded(name: &str) -> EncodedTask {
    encoded_from_json(&fixture_json(name))
}

/// The fixture's task, decoded from its headers as a map and, as a backend reads them,
/// from the headers' text as Celery wrote it; the two must agree.
pub fn decoded(name: &str) -> TaskMessage {
    let mut e = encoded(name);
    let from_map =
        TaskMessage::decode(&e).unwrap_or_else(|e| panic!("fixture {name} does not decode: {e}"));
    #[derive(Deserialize)]
    struct Text {
        headers: Box<serde_json::value::RawValue>,
    }
    let (_, fixture) = FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .expect("a fixture");
    let text: Text = serde_json::from_str(fixture).unwrap();
    e.headers = Headers::from_json(text.headers).unwrap();
    assert!(e.headers.json_text().is_some());
    let from_text = TaskMessage::decode(&e)
        .unwrap_or_else(|e| panic!("fixture {name} does not decode from text: {e}"));
    assert_eq!(from_map, from_text, "fixture {name}");
    from_map
}

/// An RFC 3339 date in UTC.
pub fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// The object `value` as a map.
pub fn obj(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// The pinned task id number `n` that `generate.py` gives the fixtures.
pub fn tid(n: u32) -> String {
    format!("00000000-0000-0000-0000-{n:012x}")
}
