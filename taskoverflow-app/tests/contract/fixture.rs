//! A fresh database and a real server per test.
//!
//! [`run_case`] makes a fresh store (an in-memory SQLite database, or a new PostgreSQL
//! database created for the test and dropped after it), serves the application on
//! `127.0.0.1:0`, hands an [`Api`] client to the case, and cleans up even when the case fails.
//!
//! PostgreSQL is found through `TASKOVERFLOW_TEST_DATABASE_URL`, else `DATABASE_URL` (when it
//! names PostgreSQL), else `postgres://postgres@127.0.0.1:5432/postgres`. When it cannot be
//! reached the case prints `SKIPPED <test>: <reason>` and passes, unless `BROKER_TEST_REQUIRE` is
//! `all` (or lists `postgres`), which makes it fail.

use std::{future::Future, time::Duration};

use conformance_tests::{Unavailable, skip};
use reqwest::{Client, Method, StatusCode, header::HeaderMap};
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};
use taskoverflow::{
    api::{self, AppState},
    jobs::CalendarJobs,
    store::{Engine, StoreLocation, TodoStore},
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `case` against a fresh store on `engine` behind a real server.
pub(crate) async fn run_case<F, Fut>(engine: Engine, case: F)
where
    F: FnOnce(Api) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(database) = TestDatabase::create(engine).await else {
        return;
    };
    let store = TodoStore::open(&database.location)
        .await
        .expect("the test store opens and migrates");
    let server = TestServer::start(store.clone()).await;
    let outcome = tokio::spawn(case(server.api())).await;
    server.stop().await;
    store.close().await;
    database.drop().await;
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("the case did not finish: {error}"),
        }
    }
}

/// A database that exists for one test.
pub(crate) struct TestDatabase {
    /// Where the store is.
    pub(crate) location: StoreLocation,
    /// For PostgreSQL: the admin URL and the name of the database to drop afterwards.
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    /// A fresh, empty database, or `None` (after printing why) when the engine is unavailable
    /// and not required.
    pub(crate) async fn create(engine: Engine) -> Option<Self> {
        match engine {
            Engine::Sqlite => Some(Self {
                location: StoreLocation::Memory,
                postgres: None,
            }),
            Engine::Postgres => Self::create_postgres().await,
        }
    }

    async fn create_postgres() -> Option<Self> {
        let admin_url = postgres_admin_url();
        let mut admin = match connect(&admin_url).await {
            Ok(connection) => connection,
            Err(reason) => {
                let reason = format!("PostgreSQL is not reachable: {reason}");
                return skip::or_skip(Err(Unavailable::new("postgres", reason)));
            }
        };
        let name = format!("taskoverflow_test_{:016x}", fastrand::u64(..));
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("the test database is created");
        let _ = admin.close().await;
        let mut url = url::Url::parse(&admin_url).expect("the admin URL parses");
        url.set_path(&name);
        Some(Self {
            location: StoreLocation::Postgres(url.into()),
            postgres: Some((admin_url, name)),
        })
    }

    /// Removes the database, if it is one that was created.
    pub(crate) async fn drop(self) {
        let Some((admin_url, name)) = self.postgres else {
            return;
        };
        match connect(&admin_url).await {
            Ok(mut admin) => {
                let statement = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                if let Err(error) = admin.execute(statement.as_str()).await {
                    eprintln!("could not drop the test database {name}: {error}");
                }
                let _ = admin.close().await;
            }
            Err(reason) => eprintln!("could not drop the test database {name}: {reason}"),
        }
    }
}

fn postgres_admin_url() -> String {
    if let Ok(url) = std::env::var("TASKOVERFLOW_TEST_DATABASE_URL") {
        return normalized_postgres_url(&url)
            .expect("TASKOVERFLOW_TEST_DATABASE_URL must name a PostgreSQL database");
    }
    std::env::var("DATABASE_URL")
        .ok()
        .and_then(|url| normalized_postgres_url(&url))
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned())
}

fn normalized_postgres_url(url: &str) -> Option<String> {
    match StoreLocation::from_url(url) {
        Ok(StoreLocation::Postgres(url)) => Some(url),
        _ => None,
    }
}

async fn connect(url: &str) -> Result<PgConnection, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(url)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
    }
}

/// The application served on a free loopback port.
pub(crate) struct TestServer {
    base_url: String,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    /// Serves the application over `store`.
    pub(crate) async fn start(store: TodoStore) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port is free");
        let address = listener.local_addr().expect("the listener has an address");
        let (shutdown, stopped) = oneshot::channel::<()>();
        let jobs = CalendarJobs::in_process("ical")
            .await
            .expect("in-process jobs");
        let app = api::router(AppState::new(store, jobs));
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Self {
            base_url: format!("http://{address}"),
            shutdown,
            task,
        }
    }

    /// A client for this server.
    pub(crate) fn api(&self) -> Api {
        Api {
            client: Client::new(),
            base_url: self.base_url.clone(),
        }
    }

    /// Stops the server after the requests in flight.
    pub(crate) async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.task.await;
    }
}

/// A client of one test server.
#[derive(Clone)]
pub(crate) struct Api {
    client: Client,
    base_url: String,
}

/// A response, read whole.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) text: String,
}

impl Reply {
    /// The body as JSON; fails the test when it is not JSON.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|error| panic!("body is not JSON ({error}): {:?}", self.text))
    }

    /// The `Content-Type` header, or `""`.
    pub(crate) fn content_type(&self) -> &str {
        self.headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }

    /// Asserts an error response: this status, a JSON content type and `{"error": <text>}`;
    /// returns the message.
    #[track_caller]
    pub(crate) fn assert_error(&self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "body: {}", self.text);
        assert!(
            self.content_type().starts_with("application/json"),
            "content type {:?} for {}",
            self.content_type(),
            self.text
        );
        let body = self.json();
        let message = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message in {body}"));
        assert!(!message.is_empty());
        assert_eq!(
            body.as_object().map(serde_json::Map::len),
            Some(1),
            "{body}"
        );
        message.to_owned()
    }
}

impl Api {
    /// The absolute URL of a path under the server root (`/`, `/static/app.js`).
    pub(crate) fn root_url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The absolute URL of a path under `/api/v1`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}{path}", self.base_url, api::API_BASE)
    }

    /// Sends a request to an absolute URL with an optional raw body and content type.
    pub(crate) async fn raw(
        &self,
        method: Method,
        url: &str,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Reply {
        let mut request = self.client.request(method, url);
        if let Some(content_type) = content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("the body is readable");
        Reply {
            status,
            headers,
            text,
        }
    }

    /// `GET /api/v1{path}`.
    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.raw(Method::GET, &self.url(path), None, None).await
    }

    /// `DELETE /api/v1{path}`.
    pub(crate) async fn delete(&self, path: &str) -> Reply {
        self.raw(Method::DELETE, &self.url(path), None, None).await
    }

    /// `POST /api/v1{path}` with a JSON body.
    pub(crate) async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send_json(Method::POST, path, body).await
    }

    /// `PUT /api/v1{path}` with a JSON body.
    pub(crate) async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send_json(Method::PUT, path, body).await
    }

    async fn send_json(&self, method: Method, path: &str, body: &Value) -> Reply {
        let bytes = serde_json::to_vec(body).expect("serializable");
        self.raw(
            method,
            &self.url(path),
            Some("application/json"),
            Some(bytes),
        )
        .await
    }

    /// Creates a todo and returns it; fails the test unless the answer is 201.
    pub(crate) async fn create(&self, body: &Value) -> Value {
        let reply = self.post("/todos", body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "body: {}", reply.text);
        reply.json()
    }

    /// `GET /api/v1/todos{query}` and the ids it lists, in order.
    pub(crate) async fn list_ids(&self, query: &str) -> Vec<i64> {
        let reply = self.get(&format!("/todos{query}")).await;
        assert_eq!(reply.status, StatusCode::OK, "body: {}", reply.text);
        reply
            .json()
            .as_array()
            .expect("an array")
            .iter()
            .map(|todo| todo["id"].as_i64().expect("an integer id"))
            .collect()
    }
}
