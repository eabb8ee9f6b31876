//! What is not a JSON protocol v2 task is rejected with an error that says why, whether the
//! headers are held as a map or as the text they travel as.

mod support;

use broker_core::{
    Headers,
    celery::{Embed, EncodedTask, ProtocolError, STANDARD_HEADERS, TaskMessage},
};
use serde_json::json;
use support::encoded;

/// The error decoding the `plain` fixture after `mutate`, which must be the same whether
/// the headers are held as a map or as text.
fn decode_error(mutate: impl FnOnce(&mut EncodedTask)) -> ProtocolError {
    let mut e = encoded("plain");
    mutate(&mut e);
    let from_map = TaskMessage::decode(&e).expect_err("should not decode");
    e.headers = as_text(&e.headers);
    let from_text = TaskMessage::decode(&e).expect_err("should not decode from text");
    assert_eq!(from_map.to_string(), from_text.to_string());
    from_map
}

/// The same headers, held as their JSON text.
fn as_text(headers: &Headers) -> Headers {
    Headers::from_json(serde_json::value::to_raw_value(&**headers).unwrap()).unwrap()
}

#[test]
fn decode_rejects_other_content_types() {
    let err = decode_error(|e| e.properties.content_type = "application/x-python-serialize".into());
    assert!(matches!(err, ProtocolError::UnsupportedContentType { .. }));
    assert_eq!(
        err.to_string(),
        "unsupported content type \"application/x-python-serialize\": \
         only application/json task messages are supported"
    );
    let err = decode_error(|e| e.properties.content_type = String::new());
    assert!(matches!(err, ProtocolError::UnsupportedContentType { .. }));
    // Case and surrounding spaces do not matter.
    let mut e = encoded("plain");
    e.properties.content_type = " Application/JSON".into();
    assert!(TaskMessage::decode(&e).is_ok());
}

#[test]
fn decode_rejects_other_encodings_and_compression() {
    let err = decode_error(|e| e.properties.content_encoding = "binary".into());
    assert_eq!(
        err.to_string(),
        "unsupported content encoding \"binary\": only utf-8 is supported"
    );
    let err = decode_error(|e| {
        e.headers
            .insert("compression".into(), json!("application/x-gzip"));
    });
    assert!(matches!(err, ProtocolError::UnsupportedCompression { .. }));
    assert_eq!(
        err.to_string(),
        "compressed task messages are not supported (compression \"application/x-gzip\")"
    );
}

#[test]
fn decode_rejects_invalid_json() {
    let err = decode_error(|e| e.body = b"[[1, 2], {}, {".to_vec());
    assert!(matches!(err, ProtocolError::InvalidJson(_)));
    assert!(
        err.to_string().starts_with("body is not valid JSON: "),
        "{err}"
    );
    let err = decode_error(|e| e.body = vec![b'"', 0xff, b'"']);
    assert!(matches!(err, ProtocolError::InvalidJson(_)), "{err}");
    let err = decode_error(|e| e.body.clear());
    assert!(matches!(err, ProtocolError::InvalidJson(_)), "{err}");
}

#[test]
fn decode_rejects_bodies_of_the_wrong_shape() {
    for (body, reason) in [
        (json!({"args": []}), "expected an array, got an object"),
        (json!("text"), "expected an array, got a string"),
        (json!([[], {}]), "expected 3 elements, got 2"),
        (json!([[], {}, null, 1]), "expected 3 elements, got 4"),
        (
            json!([{}, {}, null]),
            "args (first element) must be an array, got an object",
        ),
        (
            json!([[], [], null]),
            "kwargs (second element) must be an object, got an array",
        ),
        (
            json!([[], {}, 5]),
            "embed (third element) must be an object or null, got a number",
        ),
        (
            json!([[], {}, {"callbacks": {"task": "x"}}]),
            "embed.callbacks must be a list or null, got an object",
        ),
    ] {
        let err = decode_error(|e| e.body = body.to_string().into_bytes());
        assert!(
            matches!(err, ProtocolError::InvalidBody { .. }),
            "{body}: {err}"
        );
        assert_eq!(
            err.to_string(),
            format!("body is not a Celery v2 [args, kwargs, embed] array: {reason}"),
        );
    }
    // A null embed is what Celery's worker accepts too.
    let mut e = encoded("plain");
    e.body = b"[[1], {}, null]".to_vec();
    assert_eq!(TaskMessage::decode(&e).unwrap().embed, Embed::default());
}

#[test]
fn decode_rejects_protocol_v1() {
    let err = decode_error(|e| {
        e.headers.clear();
        e.body = json!({"task": "tasks.add", "id": "1", "args": [1, 2], "kwargs": {}, "utc": true})
            .to_string()
            .into_bytes();
    });
    assert!(matches!(err, ProtocolError::ProtocolV1));
    assert!(
        err.to_string()
            .starts_with("Celery protocol v1 is not supported"),
        "{err}"
    );
}

#[test]
fn decode_rejects_missing_task_or_id() {
    for (name, value) in [
        ("task", None),
        ("task", Some(json!(null))),
        ("id", None),
        ("id", Some(json!(""))),
    ] {
        let err = decode_error(|e| {
            match value.clone() {
                None => e.headers.remove(name),
                Some(v) => e.headers.insert(name.into(), v),
            };
        });
        assert!(matches!(err, ProtocolError::MissingHeader { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!("missing required header \"{name}\"")
        );
    }
}

#[test]
fn decode_rejects_invalid_standard_headers() {
    for (name, value, reason) in [
        (
            "eta",
            json!("next tuesday"),
            "\"next tuesday\" is not an ISO-8601 date and time",
        ),
        (
            "expires",
            json!(1_700_000_000),
            "expected an ISO-8601 string, got a number",
        ),
        (
            "retries",
            json!("3"),
            "expected a non-negative integer, got \"3\"",
        ),
        (
            "retries",
            json!(-1),
            "expected a non-negative integer, got -1",
        ),
        (
            "retries",
            json!(5_000_000_000_u64),
            "5000000000 is too large",
        ),
        ("timelimit", json!([1]), "expected [hard, soft], got [1]"),
        (
            "timelimit",
            json!(["1", null]),
            "expected seconds or null, got a string",
        ),
        ("task", json!(7), "expected a string, got a number"),
        (
            "ignore_result",
            json!("yes"),
            "expected a boolean, got a string",
        ),
        (
            "stamped_headers",
            json!([1]),
            "expected a list of strings, found a number",
        ),
        ("stamps", json!([]), "expected an object, got an array"),
    ] {
        let err = decode_error(|e| {
            e.headers.insert(name.into(), value.clone());
        });
        assert!(
            matches!(err, ProtocolError::InvalidHeader { .. }),
            "{name}: {err}"
        );
        assert_eq!(
            err.to_string(),
            format!("header \"{name}\" is invalid: {reason}")
        );
    }
}

#[test]
fn absent_optional_headers_take_celerys_defaults() {
    let mut e = encoded("plain");
    e.headers.retain(|k, _| k == "task" || k == "id");
    let m = TaskMessage::decode(&e).unwrap();
    assert_eq!(m.headers.lang, "");
    assert_eq!(m.headers.retries, 0);
    assert_eq!(m.headers.timelimit, (None, None));
    assert_eq!(m.headers.root_id, None);
    assert_eq!(m.headers.ignore_result, None);
    let again = m.encode().unwrap();
    assert_eq!(again.headers.len(), STANDARD_HEADERS.len());
}
