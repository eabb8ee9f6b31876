//! What only the embedded default does: an SQLite file that outlives the process, and the UI.

use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use serde_json::json;
use taskoverflow::store::{StoreLocation, TodoStore};

use crate::fixture::TestServer;

/// A directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path =
            std::env::temp_dir().join(format!("taskoverflow-test-{:016x}", fastrand::u64(..)));
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn sqlite_data_dir_is_created_and_keeps_todos_across_restarts() {
    let data_dir = TempDir::new();
    let location = StoreLocation::in_data_dir(&data_dir.0.join("nested"));

    let store = TodoStore::open(&location).await.expect("opens");
    let server = TestServer::start(store.clone()).await;
    let created = server
        .api()
        .create(&json!({"title": "survive", "deadline_at": "2030-01-02 03:04:05.678"}))
        .await;
    server.stop().await;
    store.close().await;

    let store = TodoStore::open(&location).await.expect("opens again");
    let server = TestServer::start(store.clone()).await;
    let api = server.api();
    let reply = api.get(&format!("/todos/{}", created["id"])).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), created);
    let next = api.create(&json!({"title": "next"})).await;
    assert!(next["id"].as_i64() > created["id"].as_i64());
    server.stop().await;
    store.close().await;
}

#[tokio::test]
async fn web_ui_is_served_at_root_with_its_assets() {
    let store = TodoStore::open(&StoreLocation::Memory)
        .await
        .expect("opens");
    let server = TestServer::start(store.clone()).await;
    let api = server.api();

    let page = api.raw(Method::GET, &api.root_url("/"), None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.content_type().starts_with("text/html"),
        "{}",
        page.content_type()
    );
    for hook in [
        "id=\"new-title\"",
        "id=\"add-todo\"",
        "id=\"todo-list\"",
        "id=\"export-ical\"",
        "id=\"ical-status\"",
        "/static/app.js",
        "/static/app.css",
    ] {
        assert!(page.text.contains(hook), "the page lacks {hook}");
    }
    assert!(!page.text.contains("http://") && !page.text.contains("https://"));

    let script = api
        .raw(Method::GET, &api.root_url("/static/app.js"), None, None)
        .await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(script.content_type().starts_with("text/javascript"));
    for hook in [
        "todo-item",
        "todo-toggle",
        "ical-download",
        "todos.ics",
        "/todos/ical",
    ] {
        assert!(script.text.contains(hook), "the script lacks {hook}");
    }

    let style = api
        .raw(Method::GET, &api.root_url("/static/app.css"), None, None)
        .await;
    assert_eq!(style.status, StatusCode::OK);
    assert!(style.content_type().starts_with("text/css"));

    let missing = api
        .raw(Method::GET, &api.root_url("/static/nope.js"), None, None)
        .await;
    missing.assert_error(StatusCode::NOT_FOUND);

    server.stop().await;
    store.close().await;
}
