//! What the tests of the `taskoverflow` binary share: the command with none of the user's
//! settings, a running `serve` with its log, separate workers, and the test brokers' URLs.
//!
//! Each test binary uses part of it.
#![allow(dead_code, unreachable_pub)]

use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use conformance_tests::{endpoint, skip};
use serde_json::Value;

pub const BINARY: &str = env!("CARGO_BIN_EXE_taskoverflow");

/// A `taskoverflow` command with none of the user's Celery or database settings.
pub fn taskoverflow(args: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    for var in [
        "CELERY_BROKER_URL",
        "CELERY_RESULT_BACKEND",
        "CELERY_DEFAULT_QUEUE",
        "DATABASE_URL",
        "SQLALCHEMY_DATABASE_URI",
        "PORT",
        "HOST",
    ] {
        command.env_remove(var);
    }
    command
}

/// A running `serve`, its address, and everything it printed (standard error and output).
pub struct Server {
    child: Child,
    /// The API's base URL, `http://host:port/api/v1`.
    pub base: String,
    log: mpsc::Receiver<String>,
}

impl Server {
    pub fn start(extra_env: &[(&str, &str)]) -> Self {
        let mut command = taskoverflow(&["serve", "--port", "0", "--memory"]);
        command
            .envs(extra_env.iter().copied())
            .stderr(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = command.spawn().expect("serve starts");
        let (tx, log) = mpsc::channel();
        forward_lines(child.stderr.take().expect("stderr"), tx.clone());
        forward_lines(child.stdout.take().expect("stdout"), tx);
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Ok(line) = log.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let address = rest.split('/').next().expect("address").to_owned();
                return Self {
                    child,
                    base: format!("http://{address}/api/v1"),
                    log,
                };
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("serve did not log its address within 30 s");
    }

    /// Sends SIGTERM and returns whether it exited successfully and what it logged.
    pub fn terminate(mut self) -> (bool, String) {
        signal(&self.child, "-TERM");
        let exited = self.child.wait().expect("serve exits");
        let mut logged = String::new();
        while let Ok(line) = self.log.recv_timeout(Duration::from_secs(2)) {
            logged.push_str(&line);
            logged.push('\n');
        }
        (exited.success(), logged)
    }
}

impl Drop for Server {
    /// A test that fails midway still leaves no server behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The JSON body of a GET of `url`.
pub async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let response = client.get(url).send().await.expect("the GET is answered");
    response.json().await.expect("a JSON body")
}

/// The status of the calendar job at `status_url` once it is `SUCCESS` (within 20 s).
pub async fn poll_until_done(client: &reqwest::Client, status_url: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = get_json(client, status_url).await;
        let state = status["task_status"].as_str().expect("a state").to_owned();
        assert!(
            ["PENDING", "STARTED", "SUCCESS"].contains(&state.as_str()),
            "unexpected state {state}"
        );
        if state == "SUCCESS" {
            return status;
        }
        assert!(Instant::now() < deadline, "the calendar job never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The URL of `service` (`BROKER_TEST_<SERVICE>_URL`), or `None` after printing why the test
/// is skipped (a failure when `BROKER_TEST_REQUIRE` requires the service).
pub fn external(service: &'static str) -> Option<String> {
    skip::or_skip(endpoint::broker_url(service))
}

/// `url` with `option=value` added to its query.
pub fn with_option(url: &str, option: &str, value: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{option}={value}")
}

/// A separate `taskoverflow worker` process with `env`.
pub fn worker(env: &[(&str, String)]) -> Child {
    let mut command = taskoverflow(&["worker", "--shutdown-grace", "30"]);
    command
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command.spawn().expect("the worker starts")
}

/// Sends SIGINT (Ctrl-C) to `child`.
pub fn interrupt(child: &Child) {
    signal(child, "-INT");
}

/// Sends SIGTERM to `child`; whether it then exited successfully.
pub fn sigterm(child: &mut Child) -> bool {
    signal(child, "-TERM");
    child.wait().expect("the worker exits").success()
}

/// Celery's `db+postgresql://` form of the test server's `postgres://` URL.
pub fn celery_database_url(postgres: &str) -> String {
    format!(
        "db+{}",
        postgres.replacen("postgres://", "postgresql://", 1)
    )
}

/// The result backend URL that keeps Celery's result tables in `schema` of the test server.
pub fn celery_results(postgres: &str, schema: &Schema) -> String {
    with_option(
        &celery_database_url(postgres),
        "result_schema",
        &schema.name,
    )
}

/// A fresh schema name on the test PostgreSQL, dropped when the guard goes.
pub struct Schema {
    admin: String,
    pub name: String,
}

impl Schema {
    pub fn new(admin: &str) -> Self {
        Self {
            admin: admin.to_owned(),
            name: format!("to_{:x}", fastrand::u64(..)),
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let statement = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                use sqlx::{Connection, Executor};
                let mut connection = sqlx::PgConnection::connect(&admin).await?;
                connection.execute(statement.as_str()).await.map(|_| ())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test schema {}", self.name);
        }
    }
}

/// Sends each line `from` prints to `to`, on a thread of its own.
fn forward_lines(from: impl Read + Send + 'static, to: mpsc::Sender<String>) {
    thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if to.send(line).is_err() {
                break;
            }
        }
    });
}

/// Runs `command` until it exits or `within` has passed, then stops it with SIGTERM (SIGKILL
/// ten seconds later); returns everything it printed, standard error and output.
pub fn output_within(mut command: Command, within: Duration) -> String {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let (tx, lines) = mpsc::channel();
    forward_lines(child.stderr.take().expect("stderr"), tx.clone());
    forward_lines(child.stdout.take().expect("stdout"), tx);
    let deadline = Instant::now() + within;
    while child.try_wait().expect("wait").is_none() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    if child.try_wait().expect("wait").is_none() {
        signal(&child, "-TERM");
        let killed_at = Instant::now() + Duration::from_secs(10);
        while child.try_wait().expect("wait").is_none() && Instant::now() < killed_at {
            thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
    }
    let _ = child.wait();
    lines.iter().collect::<Vec<_>>().join("\n")
}

/// Sends `which` (`-TERM`) to `child`.
fn signal(child: &Child, which: &str) {
    let sent = Command::new("kill")
        .args([which, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill {which} failed");
}
