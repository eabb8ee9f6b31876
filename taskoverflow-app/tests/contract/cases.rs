//! The contract, one guarantee per function; `main.rs` runs each on every engine.

use chrono::{NaiveDateTime, TimeDelta, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use taskoverflow::todo::datetime;

use crate::fixture::Api;

// --- helpers ---------------------------------------------------------------------------

/// Asserts the contract's output form: `YYYY-MM-DDTHH:MM:SS`, then `.ffffff` only when the
/// fraction is not zero.
#[track_caller]
fn assert_contract_datetime(value: &Value) -> NaiveDateTime {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    let shape_ok = match text.len() {
        19 => true,
        26 => text.as_bytes()[19] == b'.' && !text.ends_with(".000000"),
        _ => false,
    };
    assert!(shape_ok, "not in the contract's form: {text:?}");
    assert_eq!(text.as_bytes()[10], b'T', "{text:?}");
    let parsed = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .unwrap_or_else(|error| panic!("{text:?}: {error}"));
    assert_eq!(datetime::format(parsed), text);
    parsed
}

fn utc_now() -> NaiveDateTime {
    Utc::now().naive_utc()
}

fn days_from_now(days: i64) -> String {
    datetime::format(utc_now() + TimeDelta::days(days))
}

/// Keeps the next server timestamp strictly after the previous one.
async fn let_the_clock_tick() {
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
}

// --- health and listing ----------------------------------------------------------------

pub(crate) async fn health_answers_ok(api: Api) {
    let reply = api.get("/health").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({"status": "ok"}));
}

pub(crate) async fn list_is_an_empty_array_before_any_todo(api: Api) {
    let reply = api.get("/todos").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.content_type().starts_with("application/json"));
    assert_eq!(reply.json(), json!([]));
}

pub(crate) async fn list_returns_every_todo_in_id_order(api: Api) {
    let mut created = Vec::new();
    for title in ["first", "second", "third"] {
        created.push(api.create(&json!({"title": title})).await);
    }
    let reply = api.get("/todos").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), Value::Array(created));
}

// --- create ----------------------------------------------------------------------------

pub(crate) async fn create_answers_201_with_defaults_and_server_fields(api: Api) {
    let before = utc_now() - TimeDelta::seconds(1);
    let reply = api.post("/todos", &json!({"title": "Buy milk"})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let todo = reply.json();
    let fields: Vec<_> = todo
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    let mut expected = [
        "completed",
        "created_at",
        "deadline_at",
        "description",
        "id",
        "title",
        "updated_at",
    ];
    expected.sort_unstable();
    let mut fields = fields;
    fields.sort_unstable();
    assert_eq!(fields, expected);
    assert!(todo["id"].is_i64());
    assert_eq!(todo["title"], "Buy milk");
    assert_eq!(todo["description"], Value::Null);
    assert_eq!(todo["completed"], false);
    assert_eq!(todo["deadline_at"], Value::Null);
    let created_at = assert_contract_datetime(&todo["created_at"]);
    assert_eq!(todo["updated_at"], todo["created_at"]);
    assert!(
        created_at >= before && created_at <= utc_now(),
        "{created_at}"
    );
}

pub(crate) async fn create_keeps_every_given_field(api: Api) {
    let todo = api
        .create(&json!({
            "title": "Write report",
            "description": "Chapter 3, with figures; see notes",
            "completed": true,
            "deadline_at": "2023-02-27T00:00:00",
        }))
        .await;
    assert_eq!(todo["title"], "Write report");
    assert_eq!(todo["description"], "Chapter 3, with figures; see notes");
    assert_eq!(todo["completed"], true);
    assert_eq!(todo["deadline_at"], "2023-02-27T00:00:00");
    let id = todo["id"].as_i64().expect("an id");
    assert_eq!(api.get(&format!("/todos/{id}")).await.json(), todo);
}

pub(crate) async fn create_refuses_extra_fields_before_anything_else(api: Api) {
    for field in ["id", "created_at", "updated_at", "priority"] {
        // No title and a bad type too: "extra fields" still comes first.
        let body = json!({ field: 1, "completed": "yes" });
        let reply = api.post("/todos", &body).await;
        assert_eq!(
            reply.assert_error(StatusCode::BAD_REQUEST),
            "extra fields",
            "{field}"
        );
        let body = json!({ "title": "ok", field: "2023-02-27T00:00:00" });
        let reply = api.post("/todos", &body).await;
        assert_eq!(
            reply.assert_error(StatusCode::BAD_REQUEST),
            "extra fields",
            "{field}"
        );
    }
    assert_eq!(api.list_ids("").await, Vec::<i64>::new());
}

pub(crate) async fn create_without_title_is_missing_title(api: Api) {
    for body in [
        json!({}),
        json!({"description": "no title"}),
        json!({"title": null}),
    ] {
        let reply = api.post("/todos", &body).await;
        assert_eq!(
            reply.assert_error(StatusCode::BAD_REQUEST),
            "missing title",
            "{body}"
        );
    }
}

pub(crate) async fn create_refuses_wrong_types_with_a_message(api: Api) {
    for body in [
        json!({"title": 42}),
        json!({"title": ["a"]}),
        json!({"title": "t", "description": 5}),
        json!({"title": "t", "completed": "true"}),
        json!({"title": "t", "completed": 1}),
        json!({"title": "t", "completed": null}),
        json!({"title": "t", "deadline_at": 1_700_000_000}),
        json!({"title": "t", "deadline_at": true}),
    ] {
        let reply = api.post("/todos", &body).await;
        let message = reply.assert_error(StatusCode::BAD_REQUEST);
        let field = body
            .as_object()
            .and_then(|fields| {
                fields
                    .keys()
                    .find(|key| key.as_str() != "title" || fields.len() == 1)
            })
            .expect("a field");
        assert!(message.contains(field.as_str()), "{body} gave {message:?}");
    }
    assert_eq!(api.list_ids("").await, Vec::<i64>::new());
}

pub(crate) async fn create_enforces_length_limits_in_characters(api: Api) {
    let longest_title = "ü".repeat(80);
    let longest_description = "ü".repeat(120);
    let todo = api
        .create(&json!({"title": longest_title, "description": longest_description}))
        .await;
    assert_eq!(todo["title"], longest_title);
    assert_eq!(todo["description"], longest_description);

    let reply = api.post("/todos", &json!({"title": "x".repeat(81)})).await;
    assert!(
        reply
            .assert_error(StatusCode::BAD_REQUEST)
            .contains("title")
    );
    let reply = api
        .post(
            "/todos",
            &json!({"title": "t", "description": "x".repeat(121)}),
        )
        .await;
    assert!(
        reply
            .assert_error(StatusCode::BAD_REQUEST)
            .contains("description")
    );
}

pub(crate) async fn create_refuses_bad_datetimes(api: Api) {
    for text in [
        "tomorrow",
        "2023-02-30T00:00:00",
        "2023-02-27T25:00:00",
        "27/02/2023",
        "",
    ] {
        let reply = api
            .post("/todos", &json!({"title": "t", "deadline_at": text}))
            .await;
        let message = reply.assert_error(StatusCode::BAD_REQUEST);
        assert!(message.contains("deadline_at"), "{text:?} gave {message:?}");
    }
}

pub(crate) async fn create_refuses_bodies_that_are_not_objects(api: Api) {
    for body in [json!([{"title": "t"}]), json!("t"), json!(3), json!(null)] {
        let reply = api.post("/todos", &body).await;
        reply.assert_error(StatusCode::BAD_REQUEST);
    }
}

pub(crate) async fn malformed_json_is_400(api: Api) {
    for body in [&b"{\"title\": "[..], b"{title: 'x'}", b"", b"\xff\xfe"] {
        for method in [Method::POST, Method::PUT] {
            let path = if method == Method::POST {
                "/todos"
            } else {
                "/todos/1"
            };
            let reply = api
                .raw(
                    method.clone(),
                    &api.url(path),
                    Some("application/json"),
                    Some(body.to_vec()),
                )
                .await;
            reply.assert_error(StatusCode::BAD_REQUEST);
        }
    }
}

pub(crate) async fn non_json_content_type_is_415(api: Api) {
    let todo = api.create(&json!({"title": "t"})).await;
    let id = todo["id"].as_i64().expect("an id");
    let body = br#"{"title": "t"}"#.to_vec();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let reply = api
            .raw(
                Method::POST,
                &api.url("/todos"),
                content_type,
                Some(body.clone()),
            )
            .await;
        reply.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let reply = api
            .raw(
                Method::PUT,
                &api.url(&format!("/todos/{id}")),
                content_type,
                Some(body.clone()),
            )
            .await;
        reply.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let reply = api
        .raw(
            Method::POST,
            &api.url("/todos"),
            Some("application/json; charset=utf-8"),
            Some(body),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
}

pub(crate) async fn oversized_body_is_413(api: Api) {
    let body = serde_json::to_vec(&json!({"title": "t", "description": "x".repeat(100_000)}))
        .expect("serializable");
    let reply = api
        .raw(
            Method::POST,
            &api.url("/todos"),
            Some("application/json"),
            Some(body),
        )
        .await;
    reply.assert_error(StatusCode::PAYLOAD_TOO_LARGE);
}

// --- read ------------------------------------------------------------------------------

pub(crate) async fn get_returns_the_todo(api: Api) {
    let todo = api.create(&json!({"title": "t", "description": "d"})).await;
    let reply = api.get(&format!("/todos/{}", todo["id"])).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), todo);
}

pub(crate) async fn get_unknown_id_is_404_todo_not_found(api: Api) {
    let reply = api.get("/todos/12345").await;
    assert_eq!(reply.assert_error(StatusCode::NOT_FOUND), "Todo not found");
}

pub(crate) async fn non_integer_ids_are_404_todo_not_found(api: Api) {
    for id in ["abc", "-1", "1.5", "%20", "99999999999999999999999"] {
        let reply = api.get(&format!("/todos/{id}")).await;
        assert_eq!(
            reply.assert_error(StatusCode::NOT_FOUND),
            "Todo not found",
            "{id}"
        );
        let reply = api
            .put(&format!("/todos/{id}"), &json!({"title": "x"}))
            .await;
        assert_eq!(
            reply.assert_error(StatusCode::NOT_FOUND),
            "Todo not found",
            "{id}"
        );
        let reply = api.delete(&format!("/todos/{id}")).await;
        assert_eq!(
            reply.assert_error(StatusCode::NOT_FOUND),
            "Todo not found",
            "{id}"
        );
    }
}

// --- update ----------------------------------------------------------------------------

pub(crate) async fn put_updates_given_fields_and_bumps_updated_at(api: Api) {
    let todo = api
        .create(
            &json!({"title": "old", "description": "keep", "deadline_at": "2030-01-01T00:00:00"}),
        )
        .await;
    let_the_clock_tick().await;
    let reply = api
        .put(
            &format!("/todos/{}", todo["id"]),
            &json!({"title": "new", "completed": true}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let updated = reply.json();
    assert_eq!(updated["id"], todo["id"]);
    assert_eq!(updated["title"], "new");
    assert_eq!(updated["completed"], true);
    assert_eq!(updated["description"], "keep");
    assert_eq!(updated["deadline_at"], "2030-01-01T00:00:00");
    assert_eq!(updated["created_at"], todo["created_at"]);
    assert!(
        assert_contract_datetime(&updated["updated_at"])
            > assert_contract_datetime(&todo["updated_at"])
    );
    assert_eq!(
        api.get(&format!("/todos/{}", todo["id"])).await.json(),
        updated
    );
}

pub(crate) async fn put_empty_object_changes_nothing_but_updated_at(api: Api) {
    let todo = api.create(&json!({"title": "t", "description": "d"})).await;
    let_the_clock_tick().await;
    let reply = api.put(&format!("/todos/{}", todo["id"]), &json!({})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let mut updated = reply.json();
    assert!(
        assert_contract_datetime(&updated["updated_at"])
            > assert_contract_datetime(&todo["updated_at"])
    );
    updated["updated_at"] = todo["updated_at"].clone();
    assert_eq!(updated, todo);
}

pub(crate) async fn put_extra_fields_are_400_even_for_a_missing_id(api: Api) {
    let reply = api.put("/todos/999", &json!({"id": 2})).await;
    assert_eq!(reply.assert_error(StatusCode::BAD_REQUEST), "extra fields");
    let todo = api.create(&json!({"title": "t"})).await;
    let reply = api
        .put(
            &format!("/todos/{}", todo["id"]),
            &json!({"title": "x", "created_at": "2023-02-27T00:00:00"}),
        )
        .await;
    assert_eq!(reply.assert_error(StatusCode::BAD_REQUEST), "extra fields");
    assert_eq!(
        api.get(&format!("/todos/{}", todo["id"])).await.json(),
        todo
    );
}

pub(crate) async fn put_unknown_id_is_404(api: Api) {
    let reply = api.put("/todos/999", &json!({"title": "x"})).await;
    assert_eq!(reply.assert_error(StatusCode::NOT_FOUND), "Todo not found");
    let reply = api.put("/todos/999", &json!({})).await;
    assert_eq!(reply.assert_error(StatusCode::NOT_FOUND), "Todo not found");
}

pub(crate) async fn put_bad_values_are_400_and_change_nothing(api: Api) {
    let todo = api.create(&json!({"title": "t"})).await;
    let path = format!("/todos/{}", todo["id"]);
    for body in [
        json!({"title": null}),
        json!({"title": ""}),
        json!({"title": "x".repeat(81)}),
        json!({"description": "x".repeat(121)}),
        json!({"completed": "false"}),
        json!({"deadline_at": "soon"}),
        json!([]),
    ] {
        let reply = api.put(&path, &body).await;
        reply.assert_error(StatusCode::BAD_REQUEST);
    }
    assert_eq!(api.get(&path).await.json(), todo);
}

pub(crate) async fn put_can_clear_nullable_fields(api: Api) {
    let todo = api
        .create(&json!({"title": "t", "description": "d", "deadline_at": "2030-01-01T00:00:00"}))
        .await;
    let reply = api
        .put(
            &format!("/todos/{}", todo["id"]),
            &json!({"description": null, "deadline_at": null}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let updated = reply.json();
    assert_eq!(updated["description"], Value::Null);
    assert_eq!(updated["deadline_at"], Value::Null);
    assert_eq!(updated["title"], "t");
}

// --- delete ----------------------------------------------------------------------------

pub(crate) async fn delete_returns_the_deleted_todo_and_removes_it(api: Api) {
    let todo = api.create(&json!({"title": "t"})).await;
    let other = api.create(&json!({"title": "other"})).await;
    let path = format!("/todos/{}", todo["id"]);
    let reply = api.delete(&path).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), todo);
    api.get(&path).await.assert_error(StatusCode::NOT_FOUND);
    assert_eq!(
        api.list_ids("").await,
        vec![other["id"].as_i64().expect("an id")]
    );
}

pub(crate) async fn delete_unknown_id_is_200_empty_object(api: Api) {
    let reply = api.delete("/todos/999").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({}));
    let todo = api.create(&json!({"title": "t"})).await;
    let path = format!("/todos/{}", todo["id"]);
    assert_eq!(api.delete(&path).await.json(), todo);
    let again = api.delete(&path).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json(), json!({}));
}

// --- filters ---------------------------------------------------------------------------

pub(crate) async fn completed_filter_selects_by_state(api: Api) {
    let open = api.create(&json!({"title": "open"})).await["id"].as_i64();
    let done = api
        .create(&json!({"title": "done", "completed": true}))
        .await["id"]
        .as_i64();
    let open_too = api.create(&json!({"title": "open too"})).await["id"].as_i64();
    let ids = |ids: &[Option<i64>]| ids.iter().map(|id| id.expect("an id")).collect::<Vec<_>>();
    assert_eq!(api.list_ids("?completed=true").await, ids(&[done]));
    assert_eq!(
        api.list_ids("?completed=false").await,
        ids(&[open, open_too])
    );
    assert_eq!(api.list_ids("").await, ids(&[open, done, open_too]));
}

pub(crate) async fn completed_filter_refuses_other_values(api: Api) {
    for query in ["TRUE", "1", "yes", "", "none", "true&completed=false"] {
        let reply = api.get(&format!("/todos?completed={query}")).await;
        let message = reply.assert_error(StatusCode::BAD_REQUEST);
        assert!(message.contains("completed"), "{query:?} gave {message:?}");
    }
}

pub(crate) async fn window_filter_includes_past_due_and_excludes_no_deadline(api: Api) {
    let id = |todo: Value| todo["id"].as_i64().expect("an id");
    let past_due = id(api
        .create(&json!({"title": "late", "deadline_at": days_from_now(-3)}))
        .await);
    let soon = id(api
        .create(&json!({"title": "soon", "deadline_at": days_from_now(2)}))
        .await);
    let _later = id(api
        .create(&json!({"title": "later", "deadline_at": days_from_now(30)}))
        .await);
    let _undated = id(api.create(&json!({"title": "someday"})).await);
    let ancient = id(api
        .create(&json!({"title": "ancient", "deadline_at": "0001-01-01T00:00:00"}))
        .await);

    assert_eq!(
        api.list_ids("?window=7").await,
        vec![past_due, soon, ancient]
    );
    assert_eq!(api.list_ids("?window=0").await, vec![past_due, ancient]);
    assert_eq!(
        api.list_ids("?window=99999999999999999999").await,
        vec![past_due, soon, _later, ancient]
    );
}

pub(crate) async fn window_filter_refuses_non_integers(api: Api) {
    for query in ["-1", "1.5", "abc", "", "+3", "7days", "1e3"] {
        let reply = api.get(&format!("/todos?window={query}")).await;
        let message = reply.assert_error(StatusCode::BAD_REQUEST);
        assert!(message.contains("window"), "{query:?} gave {message:?}");
    }
}

pub(crate) async fn filters_combine(api: Api) {
    let id = |todo: Value| todo["id"].as_i64().expect("an id");
    let due_open = id(api
        .create(&json!({"title": "a", "deadline_at": days_from_now(1)}))
        .await);
    let due_done = id(api
        .create(&json!({"title": "b", "deadline_at": days_from_now(-1), "completed": true}))
        .await);
    let _far_open = id(api
        .create(&json!({"title": "c", "deadline_at": days_from_now(40)}))
        .await);
    let _undated_done = id(api.create(&json!({"title": "d", "completed": true})).await);

    assert_eq!(
        api.list_ids("?completed=false&window=7").await,
        vec![due_open]
    );
    assert_eq!(
        api.list_ids("?window=7&completed=true").await,
        vec![due_done]
    );
    assert_eq!(api.list_ids("?window=7").await, vec![due_open, due_done]);
}

// --- datetimes -------------------------------------------------------------------------

pub(crate) async fn accepted_datetime_inputs_are_stored_as_naive_utc(api: Api) {
    for (input, output) in [
        ("2023-02-27T00:00:00", "2023-02-27T00:00:00"),
        ("2026-11-22T07:22:49.903009", "2026-11-22T07:22:49.903009"),
        ("2030-01-02 03:04:05.678", "2030-01-02T03:04:05.678000"),
        ("2030-01-02T03:04:05Z", "2030-01-02T03:04:05"),
        ("2030-01-02T05:04:05+02:00", "2030-01-02T03:04:05"),
        ("2030-01-01T23:04:05.5-04:00", "2030-01-02T03:04:05.500000"),
        ("2030-01-02T03:04:05.000000", "2030-01-02T03:04:05"),
        ("2030-01-02T03:04", "2030-01-02T03:04:00"),
    ] {
        let todo = api
            .create(&json!({"title": "t", "deadline_at": input}))
            .await;
        assert_eq!(todo["deadline_at"], output, "{input}");
        let fetched = api.get(&format!("/todos/{}", todo["id"])).await.json();
        assert_eq!(fetched["deadline_at"], output, "{input} after a read");
    }
}

pub(crate) async fn datetime_output_reads_back_unchanged(api: Api) {
    let todo = api
        .create(&json!({"title": "t", "deadline_at": "2026-11-22T07:22:49.903009"}))
        .await;
    let path = format!("/todos/{}", todo["id"]);
    let reply = api
        .put(&path, &json!({"deadline_at": todo["created_at"].clone()}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json()["deadline_at"], todo["created_at"]);
    let reply = api
        .put(&path, &json!({"deadline_at": "2030-01-02 03:04:05"}))
        .await;
    assert_eq!(reply.json()["deadline_at"], "2030-01-02T03:04:05");
    for field in ["created_at", "updated_at"] {
        assert_contract_datetime(&todo[field]);
    }
}

// --- routing ---------------------------------------------------------------------------

pub(crate) async fn unknown_api_routes_are_json_404(api: Api) {
    for path in ["/nope", "/todos/1/extra", "/todos/", "/v2/todos"] {
        let reply = api.get(path).await;
        reply.assert_error(StatusCode::NOT_FOUND);
    }
    let reply = api
        .raw(Method::GET, &api.root_url("/api/v2/todos"), None, None)
        .await;
    reply.assert_error(StatusCode::NOT_FOUND);
}

pub(crate) async fn wrong_methods_are_json_405(api: Api) {
    let todo = api.create(&json!({"title": "t"})).await;
    for (method, path) in [
        (Method::POST, format!("/todos/{}", todo["id"])),
        (Method::PATCH, format!("/todos/{}", todo["id"])),
        (Method::DELETE, "/todos".to_owned()),
        (Method::PUT, "/todos".to_owned()),
        (Method::POST, "/health".to_owned()),
    ] {
        let reply = api
            .raw(
                method.clone(),
                &api.url(&path),
                Some("application/json"),
                Some(b"{}".to_vec()),
            )
            .await;
        reply.assert_error(StatusCode::METHOD_NOT_ALLOWED);
        assert!(
            reply.headers.contains_key("allow"),
            "{method} {path}: no Allow header"
        );
    }
}

pub(crate) async fn ical_path_is_not_a_todo_id(api: Api) {
    api.create(&json!({"title": "t"})).await;
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let reply = api
            .raw(
                method.clone(),
                &api.url("/todos/ical"),
                Some("application/json"),
                Some(br#"{"title": "x"}"#.to_vec()),
            )
            .await;
        assert!(
            [StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED].contains(&reply.status),
            "{method} /todos/ical gave {}: {}",
            reply.status,
            reply.text
        );
        reply.assert_error(reply.status);
    }
}
