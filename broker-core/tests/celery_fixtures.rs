//! Every golden fixture, published by real Celery, decodes to what Celery meant and survives
//! a decode → encode → decode round trip.

mod support;

use broker_core::celery::{CONTENT_ENCODING_UTF8, CONTENT_TYPE_JSON, Embed, TaskMessage};
use serde_json::{Value, json};
use support::{FIXTURES, decoded, encoded_from_json, fixture_json, obj, tid, utc};

#[test]
fn fixtures_record_the_celery_version() {
    for (name, _) in FIXTURES {
        let fixture = fixture_json(name);
        let version = fixture["celery_version"].as_str().expect("celery_version");
        assert!(
            version.starts_with("5."),
            "{name}: made with Celery {version}"
        );
    }
}

#[test]
fn plain_fixture_decodes() {
    let m = decoded("plain");
    assert_eq!(m.headers.lang, "py");
    assert_eq!(m.headers.task, "tasks.add");
    assert_eq!(m.headers.id, tid(1));
    assert_eq!(m.headers.root_id.as_deref(), Some(tid(1).as_str()));
    assert_eq!(m.headers.parent_id, None);
    assert_eq!(m.headers.group, None);
    assert_eq!(m.headers.retries, 0);
    assert_eq!(m.headers.eta, None);
    assert_eq!(m.headers.expires, None);
    assert_eq!(m.headers.timelimit, (None, None));
    assert_eq!(m.headers.ignore_result, Some(false));
    assert_eq!(m.headers.argsrepr, "(2, 3.5, 'x', None, True)");
    assert_eq!(m.headers.kwargsrepr, "{'verbose': False, 'n': 7}");
    assert_eq!(m.headers.origin.as_deref(), Some("gen4242@fixture-host"));
    assert_eq!(m.headers.stamped_headers, None);
    assert!(m.headers.stamps.is_empty());
    assert!(m.headers.extra.is_empty());
    assert_eq!(
        m.args,
        vec![json!(2), json!(3.5), json!("x"), Value::Null, json!(true)]
    );
    assert_eq!(m.kwargs, obj(json!({"verbose": false, "n": 7})));
    assert_eq!(m.embed, Embed::default());
    assert_eq!(
        m.properties.correlation_id.as_deref(),
        Some(tid(1).as_str())
    );
    assert_eq!(m.properties.content_type, CONTENT_TYPE_JSON);
    assert_eq!(m.properties.content_encoding, CONTENT_ENCODING_UTF8);
    assert_eq!(m.properties.priority, Some(0));
    assert_eq!(m.properties.delivery_mode, Some(2));
    assert!(m.properties.extra.is_empty());
}

#[test]
fn send_task_fixture_decodes() {
    let m = decoded("send_task");
    assert_eq!(m.headers.task, "tasks.remote");
    assert_eq!(m.headers.ignore_result, None);
    assert_eq!(m.headers.argsrepr, "[1, 'a']");
    assert_eq!(m.args, vec![json!(1), json!("a")]);
    assert_eq!(m.kwargs, obj(json!({"k": [1, 2]})));
}

#[test]
fn eta_and_expires_fixture_decodes() {
    let m = decoded("eta_expires");
    assert_eq!(m.headers.eta, Some(utc("2024-01-01T10:01:00Z")));
    assert_eq!(m.headers.expires, Some(utc("2024-01-01T11:00:00Z")));
    // Celery also sets kombu's per-message TTL; it is kept as an unknown property.
    assert_eq!(
        m.properties.extra.get("expiration"),
        Some(&json!("3600000"))
    );
}

#[test]
fn naive_eta_fixture_decodes_as_utc() {
    let m = decoded("eta_naive");
    assert_eq!(m.headers.eta, Some(utc("2030-01-01T10:00:00.25Z")));
    assert_eq!(m.headers.expires, Some(utc("2030-01-02T10:00:00Z")));
    let encoded = m.encode().unwrap();
    assert_eq!(
        encoded.headers["eta"],
        json!("2030-01-01T10:00:00.250000+00:00")
    );
    assert_eq!(
        encoded.headers["expires"],
        json!("2030-01-02T10:00:00+00:00")
    );
}

#[test]
fn retry_fixture_decodes() {
    let m = decoded("retry");
    assert_eq!(m.headers.id, tid(4));
    assert_eq!(m.headers.retries, 3);
    assert_eq!(m.headers.root_id.as_deref(), Some(tid(0x28).as_str()));
    assert_eq!(m.headers.parent_id.as_deref(), Some(tid(0x29).as_str()));
    assert_eq!(m.headers.group.as_deref(), Some(tid(0x2a).as_str()));
    assert_eq!(m.headers.group_index, Some(3));
    assert_eq!(m.headers.eta, Some(utc("2024-01-01T10:00:10Z")));
    assert_eq!(m.headers.extra, obj(json!({"x_custom": "kept"})));
    assert_eq!(m.properties.priority, Some(5));
    assert_eq!(m.properties.reply_to.as_deref(), Some("reply-queue-1"));
    // Celery's retry path puts a null `origin` among the properties.
    assert_eq!(m.properties.extra, obj(json!({"origin": null})));
}

#[test]
fn chain_fixture_decodes() {
    let m = decoded("chain");
    let chain = m.embed.chain.as_ref().expect("chain");
    assert_eq!(chain.len(), 2);
    // Reverse order: the next task to run is the last element.
    assert_eq!(chain[1]["task"], json!("tasks.mul"));
    assert_eq!(chain[1]["args"], json!([3]));
    assert_eq!(chain[0]["args"], json!([4]));
    let errbacks = m.embed.errbacks.as_ref().expect("errbacks");
    assert_eq!(errbacks.len(), 1);
    assert_eq!(errbacks[0]["task"], json!("tasks.on_error"));
    assert_eq!(m.embed.callbacks, None);
    assert_eq!(m.embed.chord, None);
}

#[test]
fn callbacks_fixture_decodes() {
    let m = decoded("callbacks");
    let callbacks = m.embed.callbacks.as_ref().expect("callbacks");
    assert_eq!(callbacks.len(), 2);
    assert_eq!(callbacks[0]["args"], json!([10]));
    assert_eq!(callbacks[1]["options"]["task_id"], json!(tid(11)));
    assert_eq!(m.embed.errbacks.as_ref().map(Vec::len), Some(1));
    assert_eq!(m.headers.shadow.as_deref(), Some("tasks.add[shadowed]"));
    assert_eq!(m.headers.ignore_result, Some(true));
}

#[test]
fn stamped_fixture_decodes() {
    let m = decoded("stamped");
    assert_eq!(m.headers.stamped_headers, Some(vec!["trace".to_owned()]));
    assert_eq!(m.headers.stamps, obj(json!({"trace": ["acme", 1]})));
}

#[test]
fn unicode_fixture_decodes() {
    let m = decoded("unicode");
    assert_eq!(
        m.args,
        vec![
            json!("héllo wörld ✓"),
            json!("日本語"),
            json!("emoji 🚀"),
            json!("quote's \"double\""),
            json!("tab\tnewline\n"),
        ]
    );
    assert_eq!(m.kwargs["user"]["name"], json!("Zoë"));
    assert_eq!(m.kwargs["user"]["tags"], json!(["a", "ß", ""]));
    assert_eq!(
        m.kwargs["user"]["meta"]["depth"]["x"],
        json!([1, {"y": null}])
    );
    assert_eq!(m.kwargs["float"], json!(1.5e-7));
    assert_eq!(m.kwargs["big"], json!(9_007_199_254_740_993_u64));
    assert_eq!(m.kwargs["negative"], json!(-42));
    // kombu's typed JSON markers travel as plain objects.
    assert_eq!(
        m.kwargs["when"],
        json!({"__type__": "datetime", "__value__": "2024-01-01T10:00:00+00:00"})
    );
    assert_eq!(
        m.kwargs["amount"],
        json!({"__type__": "decimal", "__value__": "12.50"})
    );
    // Our repr of the same args is Celery's.
    let mut ours = m.clone();
    ours.refresh_reprs();
    assert_eq!(ours.headers.argsrepr, m.headers.argsrepr);
}

#[test]
fn timelimits_fixture_decodes() {
    let m = decoded("timelimits");
    assert_eq!(m.headers.timelimit, (Some(30.0), Some(20.5)));
    assert_eq!(m.properties.priority, Some(7));
    let encoded = m.encode().unwrap();
    assert_eq!(encoded.headers["timelimit"], json!([30, 20.5]));
}

#[test]
fn every_fixture_round_trips_without_loss() {
    for (name, _) in FIXTURES {
        let fixture = fixture_json(name);
        let original = encoded_from_json(&fixture);
        let first = TaskMessage::decode(&original).unwrap();
        let again = first.encode().unwrap();
        let second = TaskMessage::decode(&again).unwrap();
        assert_eq!(first, second, "{name}: decode → encode → decode differs");

        // Headers: equal to Celery's, except that naive dates gain "+00:00".
        let mut expected_headers = original.headers.clone();
        for key in ["eta", "expires"] {
            if let Some(Value::String(s)) = expected_headers.get_mut(key) {
                if !s.ends_with("+00:00") {
                    s.push_str("+00:00");
                }
            }
        }
        assert_eq!(again.headers, expected_headers, "{name}: headers differ");

        // Properties: equal as JSON objects, unknown ones included.
        assert_eq!(
            serde_json::to_value(&again.properties).unwrap(),
            fixture["properties"],
            "{name}: properties differ"
        );

        // Body: equal as JSON (kombu's spacing and \u escapes differ from ours).
        let ours: Value = serde_json::from_slice(&again.body).unwrap();
        let celery: Value = serde_json::from_slice(&original.body).unwrap();
        assert_eq!(ours, celery, "{name}: body differs");
    }
}
