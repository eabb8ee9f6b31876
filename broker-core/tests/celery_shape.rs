//! What we encode has the shape of what Celery publishes, header by header and property by
//! property, and a message we encode can be exported for a real Celery worker to run.

mod support;

use std::time::Duration;

use broker_core::celery::{EncodedTask, TaskMessage};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value, json};
use support::{encoded, obj, tid};

/// The JSON type of a value, to compare shapes.
fn shape(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Compares our encoding with Celery's key by key: same header names, same JSON types
/// wherever Celery's value is not null, and the same property names and types.
fn assert_same_shape(ours: &EncodedTask, celery: &EncodedTask, what: &str) {
    let ours_keys: Vec<_> = ours.headers.keys().collect();
    let celery_keys: Vec<_> = celery.headers.keys().collect();
    assert_eq!(ours_keys, celery_keys, "{what}: header names differ");
    for (key, celery_value) in &celery.headers {
        let ours_value = &ours.headers[key];
        if !celery_value.is_null() {
            assert_eq!(
                shape(ours_value),
                shape(celery_value),
                "{what}: header {key}: ours {ours_value}, Celery's {celery_value}"
            );
        }
    }
    let ours_props = obj(serde_json::to_value(&ours.properties).unwrap());
    let celery_props = obj(serde_json::to_value(&celery.properties).unwrap());
    // kombu's per-message TTL derived from `expires` is the broker's business.
    let celery_props: Map<String, Value> = celery_props
        .into_iter()
        .filter(|(k, _)| k != "expiration")
        .collect();
    assert_eq!(
        ours_props.keys().collect::<Vec<_>>(),
        celery_props.keys().collect::<Vec<_>>(),
        "{what}: property names differ"
    );
    for (key, celery_value) in &celery_props {
        assert_eq!(
            shape(&ours_props[key]),
            shape(celery_value),
            "{what}: property {key}"
        );
    }
}

#[test]
fn our_message_has_celerys_shape() {
    let celery = encoded("send_task");
    let ours = TaskMessage::new(
        "tasks.remote",
        vec![json!(1), json!("a")],
        obj(json!({"k": [1, 2]})),
    )
    .encode()
    .unwrap();
    assert_same_shape(&ours, &celery, "send_task");

    // Field by field, everything but ids, origin and lang equals Celery's.
    let ignored = ["id", "root_id", "origin", "lang"];
    for (key, value) in &celery.headers {
        if !ignored.contains(&key.as_str()) {
            assert_eq!(&ours.headers[key], value, "header {key}");
        }
    }
    assert_eq!(ours.headers["lang"], json!("rust"));
    assert_eq!(ours.headers["root_id"], ours.headers["id"]);
    assert_eq!(
        ours.properties.correlation_id.as_ref(),
        ours.headers["id"].as_str().map(str::to_owned).as_ref()
    );
    let origin = ours.headers["origin"].as_str().unwrap();
    let (node, host) = origin.split_once('@').expect("gen<pid>@<host>");
    assert!(
        node.strip_prefix("gen")
            .is_some_and(|pid| pid.parse::<u32>().is_ok()),
        "{origin}"
    );
    assert!(!host.is_empty());
    let body: Value = serde_json::from_slice(&ours.body).unwrap();
    let celery_body: Value = serde_json::from_slice(&celery.body).unwrap();
    assert_eq!(body, celery_body);
}

#[test]
fn our_scheduled_retried_message_has_celerys_shape() {
    let ours = TaskMessage::new("tasks.add", vec![json!(1), json!(2)], Map::new())
        .with_countdown(Duration::from_secs(60))
        .with_expires_in(Duration::from_secs(3600))
        .with_timelimit(
            Some(Duration::from_secs(30)),
            Some(Duration::from_millis(20_500)),
        )
        .with_retries(3)
        .with_parent(tid(0x29), tid(0x28))
        .with_group(tid(0x2a), Some(3))
        .with_ignore_result(Some(false))
        .encode()
        .unwrap();
    for name in ["eta_expires", "timelimits", "retry"] {
        let mut celery = encoded(name);
        celery.headers.remove("x_custom");
        celery.properties.extra.remove("origin");
        assert_same_shape(&ours, &celery, name);
    }
    assert_eq!(ours.headers["timelimit"], json!([30, 20.5]));
    assert_eq!(ours.headers["retries"], json!(3));
    assert_eq!(ours.headers["parent_id"], json!(tid(0x29)));
    assert_eq!(ours.headers["root_id"], json!(tid(0x28)));
    let eta = ours.headers["eta"].as_str().unwrap();
    assert!(eta.ends_with("+00:00"), "{eta}");
    let eta = DateTime::parse_from_rfc3339(eta)
        .unwrap()
        .with_timezone(&Utc);
    let wait = eta - Utc::now();
    assert!(
        wait > TimeDelta::seconds(50) && wait <= TimeDelta::seconds(60),
        "{wait}"
    );
}

/// Writes a message we encoded, in the fixtures' JSON form, to the file named by
/// `CELERY_RUST_MESSAGE_OUT`, for `generate.py --check` to feed to a real Celery worker.
/// Does nothing when the variable is unset.
#[test]
fn export_message_for_celery_check() {
    let Some(path) = std::env::var_os("CELERY_RUST_MESSAGE_OUT") else {
        return;
    };
    let message = TaskMessage::new(
        "tasks.echo",
        vec![
            json!(1),
            json!("zwei ✓"),
            json!([3.5, null]),
            json!({"nested": {"deep": [true]}}),
        ],
        obj(json!({"user": {"name": "Zoë", "tags": ["a", "ß"]}, "n": 42})),
    )
    .with_countdown(Duration::from_secs(2))
    .with_expires_in(Duration::from_secs(600))
    .with_timelimit(
        Some(Duration::from_secs(30)),
        Some(Duration::from_millis(20_500)),
    )
    .with_retries(2)
    .with_parent(tid(0x29), tid(0x28))
    .with_header("x_custom", "from rust");
    let mut message = message;
    message.embed.errbacks = Some(vec![json!({
        "task": "tasks.on_error", "args": [], "kwargs": {}, "options": {},
        "subtask_type": null, "immutable": false
    })]);
    let encoded = message.encode().unwrap();
    let file = json!({
        "description": "written by broker_core::celery's export_message_for_celery_check test",
        "headers": encoded.headers,
        "properties": encoded.properties,
        "body": String::from_utf8(encoded.body).unwrap(),
    });
    std::fs::write(path, serde_json::to_string_pretty(&file).unwrap()).unwrap();
}
