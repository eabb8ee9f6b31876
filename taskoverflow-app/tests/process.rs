//! The `taskoverflow` binary as a user runs it: the calendar flow over HTTP on the embedded
//! default, graceful shutdown, start-up errors and the queue demo.

mod support;

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use conformance_tests::{endpoint, private_postgres::PrivatePostgres, skip};
use serde_json::{Value, json};
use support::{
    Schema, Server, celery_database_url, celery_results, external, interrupt, poll_until_done,
    sigterm, taskoverflow, with_option, worker,
};

#[tokio::test]
async fn embedded_default_serves_the_whole_calendar_flow_over_http() {
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let todos = format!("{}/todos", server.base);
    let with_deadline = json!({"title": "Hand in report", "description": "Chapter 3; final, really", "deadline_at": "2030-01-02T03:04:05"});
    let without = json!({"title": "Someday"});
    for body in [with_deadline, without] {
        let response = client.post(&todos).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 201);
    }

    let accepted = client.post(format!("{todos}/ical")).send().await.unwrap();
    assert_eq!(accepted.status(), 202);
    let accepted: Value = accepted.json().await.unwrap();
    let task_id = accepted["task_id"].as_str().expect("task_id");
    let task_url = accepted["task_url"].as_str().expect("task_url");
    assert_eq!(
        task_url,
        format!("{todos}/ical/{task_id}/status"),
        "task_url is the absolute status URL"
    );

    let status = poll_until_done(&client, task_url).await;
    assert_eq!(status["task_id"], task_id);
    let result_url = status["result_url"].as_str().expect("result_url");
    let calendar = client.get(result_url).send().await.unwrap();
    assert_eq!(calendar.status(), 200);
    assert!(
        calendar.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/calendar")
    );
    let text = calendar.text().await.unwrap();
    assert!(
        text.starts_with(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Taskoverflow Calendar//mxm.dk//\r\n"
        ),
        "{text}"
    );
    assert_eq!(
        text.matches("BEGIN:VEVENT").count(),
        1,
        "only todos with a deadline become events"
    );
    assert!(text.contains("SUMMARY:Hand in report\r\n"));
    assert!(text.contains("DESCRIPTION:Chapter 3\\; final\\, really\r\n"));
    assert!(text.contains("DTSTART:20300102T030405\r\n"));
    assert!(text.contains("UID:1\r\n"));

    let unknown: Value = client
        .get(format!("{todos}/ical/no-such-task/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(unknown["task_status"], "PENDING");
    let early = client
        .get(format!("{todos}/ical/no-such-task/result"))
        .send()
        .await
        .unwrap();
    assert_eq!(early.status(), 404);
    assert_eq!(
        early.json::<Value>().await.unwrap(),
        json!({"error": "Task not finished"})
    );
    let (clean, _) = server.terminate();
    assert!(clean, "serve exits cleanly on SIGTERM");
}

#[tokio::test]
async fn serve_finishes_queued_calendar_jobs_before_it_exits_on_sigterm() {
    const JOBS: usize = 60;
    let server = Server::start(&[("WORKER_CONCURRENCY", "1")]);
    let client = reqwest::Client::new();
    let todos = format!("{}/todos", server.base);
    for n in 0..100 {
        let body = json!({"title": format!("todo {n}"), "deadline_at": "2030-01-02T03:04:05"});
        client.post(&todos).json(&body).send().await.unwrap();
    }
    let requests = (0..JOBS).map(|_| client.post(format!("{todos}/ical")).send());
    for response in futures::future::join_all(requests).await {
        assert_eq!(response.unwrap().status(), 202);
    }

    let (clean, log) = server.terminate();
    assert!(clean, "serve exits cleanly on SIGTERM:\n{log}");
    let report = log
        .lines()
        .find(|l| l.contains("in-process worker stopped"))
        .unwrap_or_else(|| panic!("no worker report in:\n{log}"));
    let count = |field: &str| -> u64 {
        report
            .split(&format!("{field}: "))
            .nth(1)
            .and_then(|r| r.split([',', ' ']).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in {report}"))
    };
    // Whether jobs were still queued at the signal depends on timing; the worker's own tests
    // prove the drain deterministically. Here: whatever the timing, nothing accepted is lost.
    assert_eq!(
        count("succeeded"),
        JOBS as u64,
        "every accepted job ran before the process ended: {report}"
    );
    assert_eq!(count("released"), 0, "{report}");
}

#[test]
fn a_broker_without_result_store_stops_start_up_saying_what_to_set() {
    let output = taskoverflow(&["serve", "--port", "0", "--memory"])
        .env("CELERY_BROKER_URL", "sqs://")
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("set CELERY_RESULT_BACKEND"), "{stderr}");
}

#[test]
fn malformed_broker_url_is_a_clear_error_without_the_password() {
    let output = taskoverflow(&["worker"])
        .env("CELERY_BROKER_URL", "redis://:hunter2@host:notaport")
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CELERY_BROKER_URL"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
}

#[test]
fn a_separate_worker_refuses_the_in_process_broker() {
    let output = taskoverflow(&["worker"]).output().expect("runs");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("needs CELERY_BROKER_URL naming a shared broker")
    );
}

#[test]
fn queue_demo_sends_and_receives_the_hundred_messages_in_order() {
    let output = taskoverflow(&[
        "queue",
        "--name",
        "demo",
        "--client-name",
        "alice",
        "--create",
        "--send",
        "--receive",
        "--limit",
        "100",
        "--prepend",
        "hi ",
    ])
    .output()
    .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut expected: Vec<String> = (0..100).map(|n| format!("alice: hi Message {n}")).collect();
    expected.push("received 100, out of order 0, duplicates 0".to_owned());
    assert_eq!(stdout.lines().collect::<Vec<_>>(), expected);
}

#[test]
fn queue_demo_reports_a_missing_queue_by_name() {
    let output = taskoverflow(&[
        "queue",
        "--name",
        "nowhere",
        "--client-name",
        "bob",
        "--send",
    ])
    .output()
    .expect("runs");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("Unable to find a Queue by this name nowhere")
    );
}

/// The calendar flow with `serve` and separate workers on a shared broker and result store;
/// a worker stopped by SIGTERM while jobs are queued and running loses none of them.
async fn calendar_flow_with_separate_workers(env: Vec<(&'static str, String)>) {
    let borrowed: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Server::start(&borrowed);
    let client = reqwest::Client::new();
    let todos = format!("{}/todos", server.base);
    let body = json!({"title": "Hand in report", "deadline_at": "2030-01-02T03:04:05"});
    assert_eq!(
        client
            .post(&todos)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        201
    );

    let mut status_urls = Vec::new();
    for _ in 0..40 {
        let accepted: Value = client
            .post(format!("{todos}/ical"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        status_urls.push(accepted["task_url"].as_str().expect("task_url").to_owned());
    }
    let first: Value = client
        .get(&status_urls[0])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        first["task_status"], "PENDING",
        "no worker has run yet: serve runs none for a shared broker"
    );

    let mut early = worker(&env);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        sigterm(&mut early),
        "the first worker exits cleanly on SIGTERM"
    );
    let mut late = worker(&env);
    for url in &status_urls {
        let done = poll_until_done(&client, url).await;
        let calendar = client
            .get(done["result_url"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(calendar.status(), 200);
        assert!(
            calendar
                .text()
                .await
                .unwrap()
                .contains("SUMMARY:Hand in report")
        );
    }
    assert!(sigterm(&mut late));
    let (clean, _) = server.terminate();
    assert!(clean);
}

#[tokio::test]
async fn calendar_flow_runs_on_redis_with_separate_workers() {
    let Some(url) = external("redis") else {
        return;
    };
    let prefix = format!("to-{}:", fastrand::u64(..));
    let url = with_option(&url, "key_prefix", &prefix);
    let queue = format!("ical-{}", fastrand::u32(..));
    calendar_flow_with_separate_workers(vec![
        ("CELERY_BROKER_URL", url.clone()),
        ("CELERY_RESULT_BACKEND", url),
        ("CELERY_DEFAULT_QUEUE", queue),
    ])
    .await;
}

#[tokio::test]
async fn calendar_flow_runs_on_postgres_as_broker_and_result_store() {
    let Some(url) = external("postgres") else {
        return;
    };
    let schema = Schema::new(&url);
    let url = with_option(&url, "schema", &schema.name);
    let url = with_option(&url, "result_schema", &schema.name);
    calendar_flow_with_separate_workers(vec![
        ("CELERY_BROKER_URL", url.clone()),
        ("CELERY_RESULT_BACKEND", url),
    ])
    .await;
}

#[tokio::test]
async fn calendar_flow_runs_in_the_seed_deployment_shape_with_results_in_postgres() {
    // The seed deploys the broker elsewhere (SQS there; Redis here) and keeps results in
    // PostgreSQL through Celery's db+postgresql:// scheme.
    let (Some(redis), Some(postgres)) = (external("redis"), external("postgres")) else {
        return;
    };
    let schema = Schema::new(&postgres);
    let broker = with_option(&redis, "key_prefix", &format!("to-{}:", fastrand::u64(..)));
    let results = celery_results(&postgres, &schema);
    calendar_flow_with_separate_workers(vec![
        ("CELERY_BROKER_URL", broker),
        ("CELERY_RESULT_BACKEND", results),
    ])
    .await;
}

#[tokio::test]
async fn calendar_flow_runs_on_kafka_with_results_in_postgres() {
    // The docker-compose alternative: a Kafka topic per queue, results in PostgreSQL.
    let (Some(kafka), Some(postgres)) = (external("kafka"), external("postgres")) else {
        return;
    };
    let schema = Schema::new(&postgres);
    let results = celery_results(&postgres, &schema);
    // The test broker (tansu) forms a group only after about the session timeout, and keeps
    // the first worker, stopped while it joins, in the group that long: a short one keeps the
    // test in seconds.
    let kafka = with_option(&kafka, "session_timeout", "1");
    calendar_flow_with_separate_workers(vec![
        ("CELERY_BROKER_URL", kafka),
        ("CELERY_RESULT_BACKEND", results),
        (
            "CELERY_DEFAULT_QUEUE",
            format!("ical-{}", fastrand::u32(..)),
        ),
    ])
    .await;
}

#[tokio::test]
async fn calendar_flow_runs_on_sqs_with_results_in_postgres() {
    // The course's AWS deployment: CELERY_BROKER_URL=sqs://..., results through Celery's
    // db+postgresql:// scheme; here the SQS emulator stands in for AWS.
    let (Some(sqs), Some(postgres)) = (external("sqs"), external("postgres")) else {
        return;
    };
    let schema = Schema::new(&postgres);
    let results = celery_results(&postgres, &schema);
    calendar_flow_with_separate_workers(vec![
        (
            "CELERY_BROKER_URL",
            with_option(&sqs, "visibility_timeout", "30"),
        ),
        ("CELERY_RESULT_BACKEND", results),
        (
            "CELERY_DEFAULT_QUEUE",
            format!("ical-{:x}", fastrand::u64(..)),
        ),
    ])
    .await;
}

#[tokio::test]
async fn calendar_flow_runs_on_rabbitmq_with_results_in_redis() {
    // docker-compose's RabbitMQ alternative: RabbitMQ keeps no results, Redis does.
    let (Some(amqp), Some(redis)) = (external("amqp"), external("redis")) else {
        return;
    };
    let results = with_option(&redis, "key_prefix", &format!("to-{}:", fastrand::u64(..)));
    let queue = format!("ical-{:x}", fastrand::u64(..));
    calendar_flow_with_separate_workers(vec![
        ("CELERY_BROKER_URL", amqp.clone()),
        ("CELERY_RESULT_BACKEND", results),
        ("CELERY_DEFAULT_QUEUE", queue.clone()),
    ])
    .await;
    delete_queue(&amqp, &queue).await;
}

#[tokio::test]
async fn calendar_flow_runs_on_rabbitmq_with_results_in_postgres() {
    let (Some(amqp), Some(postgres)) = (external("amqp"), external("postgres")) else {
        return;
    };
    let schema = Schema::new(&postgres);
    let results = celery_results(&postgres, &schema);
    let queue = format!("ical-{:x}", fastrand::u64(..));
    calendar_flow_with_separate_workers(vec![
        ("CELERY_BROKER_URL", amqp.clone()),
        ("CELERY_RESULT_BACKEND", results),
        ("CELERY_DEFAULT_QUEUE", queue.clone()),
    ])
    .await;
    delete_queue(&amqp, &queue).await;
}

/// Deletes `queue` from the shared broker at `url` once a test is done with it.
async fn delete_queue(url: &str, queue: &str) {
    let broker = taskoverflow::backends::compiled_in()
        .broker(url)
        .await
        .expect("the broker opens");
    broker
        .delete_queue(queue)
        .await
        .expect("the queue is deleted");
}

/// The queue demo against `url`: the hundred messages come back in publish order.
fn queue_demo_round_trip(url: &str) {
    let name = format!("demo-{:x}", fastrand::u64(..));
    let output = taskoverflow(&[
        "queue",
        "--name",
        &name,
        "--client-name",
        "carol",
        "--create",
        "--send",
        "--receive",
        "--limit",
        "100",
    ])
    .env("CELERY_BROKER_URL", url)
    .output()
    .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut expected: Vec<String> = (0..100).map(|n| format!("carol: Message {n}")).collect();
    expected.push("received 100, out of order 0, duplicates 0".to_owned());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .collect::<Vec<_>>(),
        expected
    );
}

#[test]
fn queue_demo_runs_on_redis() {
    let Some(url) = external("redis") else {
        return;
    };
    queue_demo_round_trip(&with_option(
        &url,
        "key_prefix",
        &format!("demo-{}:", fastrand::u64(..)),
    ));
}

#[test]
fn queue_demo_runs_on_postgres() {
    let Some(url) = external("postgres") else {
        return;
    };
    let schema = Schema::new(&url);
    queue_demo_round_trip(&with_option(&url, "schema", &schema.name));
}

/// A receiver with neither `--limit` nor `--idle` runs until Ctrl-C, and then prints its
/// summary and exits cleanly.
#[test]
fn queue_demo_receiver_prints_its_summary_on_ctrl_c() {
    use std::io::{BufRead as _, BufReader};
    let Some(url) = external("redis") else {
        return;
    };
    let url = with_option(&url, "key_prefix", &format!("demo-{}:", fastrand::u64(..)));
    queue_demo(
        &url,
        &[
            "--name",
            "ctrl-c",
            "--client-name",
            "dave",
            "--create",
            "--send",
        ],
    );
    let receiving = [
        "queue",
        "--name",
        "ctrl-c",
        "--client-name",
        "erin",
        "--receive",
    ];
    let mut receiver = taskoverflow(&receiving)
        .env("CELERY_BROKER_URL", &url)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the receiver starts");
    let mut lines = BufReader::new(receiver.stdout.take().expect("stdout")).lines();
    let printed: Vec<String> = lines
        .by_ref()
        .take(100)
        .map(|l| l.expect("a line"))
        .collect();
    assert_eq!(printed.last().map(String::as_str), Some("dave: Message 99"));
    interrupt(&receiver);
    let rest: Vec<String> = lines.map(|l| l.expect("a line")).collect();
    assert!(receiver.wait().expect("it exits").success(), "{rest:?}");
    assert_eq!(rest, ["received 100, out of order 0, duplicates 0"]);
}

/// Runs the queue demo with `args` against `url`; returns its summary line.
fn queue_demo(url: &str, args: &[&str]) -> String {
    let output = taskoverflow(&[&["queue"], args].concat())
        .env("CELERY_BROKER_URL", url)
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout.lines().last().unwrap_or_default().to_owned()
}

/// The practical's SQS demo: two senders send the same hundred bodies; a standard queue
/// delivers both copies, a FIFO queue (content-based deduplication) one, unless `--prepend`
/// makes the bodies differ. Order and duplicates on a standard queue are the emulator's, not
/// SQS's promise, so only the counts of messages are checked there.
#[test]
fn queue_demo_on_sqs_delivers_the_same_bodies_twice_on_standard_and_once_on_fifo() {
    let Some(url) = external("sqs") else {
        return;
    };
    let fifo_url = with_option(&url, "fifo", "true");
    let id = fastrand::u64(..);
    let standard = format!("csse6400_prac-{id:x}");
    let fifo = format!("csse6400_prac-{id:x}.fifo");
    for (url, name) in [(&url, &standard), (&fifo_url, &fifo)] {
        for (client, extra) in [("alice", &["--create"][..]), ("bob", &[][..])] {
            let args = [
                &["--name", name, "--client-name", client, "--send"][..],
                extra,
            ]
            .concat();
            queue_demo(url, &args);
        }
    }
    let receive = |url: &str, name: &str| {
        queue_demo(
            url,
            &[
                "--name",
                name,
                "--client-name",
                "carol",
                "--receive",
                "--idle",
                "2",
            ],
        )
    };
    assert!(
        receive(&url, &standard).starts_with("received 200, "),
        "both copies arrive on a standard queue"
    );
    assert_eq!(
        receive(&fifo_url, &fifo),
        "received 100, out of order 0, duplicates 0",
        "a FIFO queue delivers the repeat once, in order"
    );
    let args = [
        "--name",
        fifo.as_str(),
        "--client-name",
        "dave",
        "--send",
        "--prepend",
        "again ",
    ];
    queue_demo(&fifo_url, &args);
    assert_eq!(
        receive(&fifo_url, &fifo),
        "received 100, out of order 0, duplicates 0",
        "bodies that differ are not duplicates"
    );
}

#[test]
fn a_worker_stopped_while_it_starts_exits_cleanly() {
    let Some(url) = external("postgres") else {
        return;
    };
    let schema = Schema::new(&url);
    let url = with_option(&url, "schema", &schema.name);
    let mut child = worker(&[
        ("CELERY_BROKER_URL", url.clone()),
        ("CELERY_RESULT_BACKEND", url),
    ]);
    std::thread::sleep(Duration::from_millis(250));
    assert!(
        sigterm(&mut child),
        "SIGTERM while connecting or running is a clean stop"
    );
}

#[test]
fn serve_stopped_while_it_starts_exits_cleanly() {
    let Some(url) = external("postgres") else {
        return;
    };
    let schema = Schema::new(&url);
    let url = with_option(&url, "schema", &schema.name);
    let mut child = taskoverflow(&["serve", "--port", "0", "--memory"])
        .env("CELERY_BROKER_URL", &url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    std::thread::sleep(Duration::from_millis(250));
    assert!(
        sigterm(&mut child),
        "SIGTERM while connecting or serving is a clean stop"
    );
}

/// A private `redis-server` without persistence on a fixed port, so that it can be stopped and
/// started again empty, as `redis:7-alpine` without a volume restarts. Never the shared one.
struct EphemeralRedis {
    port: u16,
    child: Option<Child>,
}

impl EphemeralRedis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut redis = Self { port, child: None };
        redis.start_again();
        redis
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn start_again(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for EphemeralRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `POST /todos/ical`: the status and body of the answer, and how long it took.
async fn request_calendar(client: &reqwest::Client, base: &str) -> (u16, Value, Duration) {
    let started = Instant::now();
    let response = client
        .post(format!("{base}/todos/ical"))
        .send()
        .await
        .expect("serve answers");
    let status = response.status().as_u16();
    (
        status,
        response.json().await.expect("a JSON body"),
        started.elapsed(),
    )
}

/// A broker (and result store) of the test's own that it may stop and start again.
trait PrivateBroker {
    fn url(&self) -> String;
    fn stop(&mut self);
    fn start_again(&mut self);
    /// Whether what was stored survives the restart.
    fn keeps_data(&self) -> bool;
}

impl PrivateBroker for EphemeralRedis {
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        Self::stop(self);
    }

    fn start_again(&mut self) {
        Self::start_again(self);
    }

    fn keeps_data(&self) -> bool {
        false
    }
}

impl PrivateBroker for PrivatePostgres {
    fn url(&self) -> String {
        Self::url(self)
    }

    fn stop(&mut self) {
        Self::stop(self).expect("the private PostgreSQL stops");
    }

    fn start_again(&mut self) {
        Self::start_again(self).expect("the private PostgreSQL starts again");
    }

    fn keeps_data(&self) -> bool {
        true
    }
}

/// `serve` and a worker on `broker` for queue and results: while it is stopped, requests are
/// 503 within a few seconds and name it; once it is back, `/ready` says so and new jobs
/// succeed without restarting either process.
async fn outage_is_503_at_once_and_recovers_by_itself(broker: &mut impl PrivateBroker) {
    let env = vec![
        ("CELERY_BROKER_URL", broker.url()),
        ("CELERY_RESULT_BACKEND", broker.url()),
    ];
    let borrowed: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Server::start(&borrowed);
    let mut worker = worker(&env);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let ready = format!("{}/ready", server.base);
    assert_eq!(client.get(&ready).send().await.unwrap().status(), 200);
    let (status, accepted, _) = request_calendar(&client, &server.base).await;
    assert_eq!(status, 202, "{accepted}");
    let before = accepted["task_url"].as_str().unwrap().to_owned();
    poll_until_done(&client, &before).await;

    broker.stop();
    let (status, refused, took) = request_calendar(&client, &server.base).await;
    assert_eq!(status, 503, "{refused}");
    assert!(took < Duration::from_secs(4), "the refusal took {took:?}");
    let message = refused["error"].as_str().unwrap();
    assert!(
        message.contains(&broker.url()),
        "names the broker: {message}"
    );
    let status_while_down = client.get(&before).send().await.unwrap();
    assert_eq!(
        status_while_down.status(),
        503,
        "a status read is 503, not 500"
    );
    assert_eq!(client.get(&ready).send().await.unwrap().status(), 503);

    broker.start_again();
    let deadline = Instant::now() + Duration::from_secs(15);
    while client.get(&ready).send().await.unwrap().status() != 200 {
        assert!(
            Instant::now() < deadline,
            "/ready never answered 200 after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let earlier: Value = client
        .get(&before)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let expected = if broker.keeps_data() {
        "SUCCESS"
    } else {
        "PENDING"
    };
    assert_eq!(
        earlier["task_status"], expected,
        "the earlier job after the restart"
    );
    let (status, accepted, _) = request_calendar(&client, &server.base).await;
    assert_eq!(
        status, 202,
        "the API publishes again after the restart: {accepted}"
    );
    poll_until_done(&client, accepted["task_url"].as_str().unwrap()).await;

    assert!(
        sigterm(&mut worker),
        "the worker kept running through the outage"
    );
    let (clean, _) = server.terminate();
    assert!(clean);
}

#[tokio::test]
async fn a_redis_outage_is_503_at_once_and_an_empty_restart_recovers_by_itself() {
    outage_is_503_at_once_and_recovers_by_itself(&mut EphemeralRedis::start()).await;
}

#[tokio::test]
async fn a_postgres_outage_is_503_at_once_and_a_restart_recovers_by_itself() {
    let Some(mut postgres) = skip::or_skip(
        tokio::task::spawn_blocking(PrivatePostgres::start)
            .await
            .unwrap()
            .map_err(|why| conformance_tests::Unavailable::new("postgres", why)),
    ) else {
        return;
    };
    outage_is_503_at_once_and_recovers_by_itself(&mut postgres).await;
}

/// Python Celery beside TaskOverflow: one Redis queue (under a key prefix of their own) and
/// Celery's result tables in PostgreSQL (in a schema of their own), as a team running Python
/// and Rust workers next to each other would configure them.
struct CeleryBeside {
    python: String,
    ours: Vec<(&'static str, String)>,
    theirs: Vec<(&'static str, String)>,
    _schema: Schema,
}

impl CeleryBeside {
    fn new() -> Option<Self> {
        let python = skip::or_skip(endpoint::celery_python())?;
        let (redis, postgres) = (external("redis")?, external("postgres")?);
        let schema = Schema::new(&postgres);
        let prefix = format!("py-{:x}:", fastrand::u64(..));
        let queue = format!("ical-{:x}", fastrand::u32(..));
        let results = celery_database_url(&postgres);
        let ours = vec![
            (
                "CELERY_BROKER_URL",
                with_option(&redis, "key_prefix", &prefix),
            ),
            (
                "CELERY_RESULT_BACKEND",
                with_option(&results, "result_schema", &schema.name),
            ),
            ("CELERY_DEFAULT_QUEUE", queue.clone()),
        ];
        let theirs = vec![
            ("CELERY_BROKER_URL", redis),
            ("CELERY_KEY_PREFIX", prefix),
            ("CELERY_RESULT_BACKEND", results),
            ("CELERY_RESULT_SCHEMA", schema.name.clone()),
            ("CELERY_DEFAULT_QUEUE", queue),
        ];
        Some(Self {
            python,
            ours,
            theirs,
            _schema: schema,
        })
    }

    fn python(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.python);
        command
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/celery_interop.py"
            ))
            .args(args)
            .envs(self.theirs.iter().map(|(k, v)| (*k, v.as_str())));
        command
    }
}

/// A child process killed when the test ends, however it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_python_celery_worker_runs_the_job_our_api_enqueued() {
    let Some(beside) = CeleryBeside::new() else {
        return;
    };
    let borrowed: Vec<(&str, &str)> = beside.ours.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Server::start(&borrowed);
    let _python_worker = KillOnDrop(
        beside
            .python(&["worker"])
            .stdout(Stdio::null())
            .spawn()
            .expect("the Python worker starts"),
    );
    let client = reqwest::Client::new();
    let todos = format!("{}/todos", server.base);
    let todo = json!({"title": "Hand in report", "deadline_at": "2030-01-02T03:04:05"});
    assert_eq!(
        client
            .post(&todos)
            .json(&todo)
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    let (status, accepted, _) = request_calendar(&client, &server.base).await;
    assert_eq!(status, 202, "{accepted}");
    let done = poll_until_done(&client, accepted["task_url"].as_str().unwrap()).await;
    let calendar = client
        .get(done["result_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(calendar.status(), 200);
    let text = calendar.text().await.unwrap();
    assert!(
        text.contains("PRODID:-//Python Celery//interop//"),
        "{text}"
    );
    assert!(text.contains("SUMMARY:Hand in report"), "{text}");
    let (clean, _) = server.terminate();
    assert!(clean);
}

#[tokio::test]
async fn our_worker_runs_the_job_python_celery_sent_and_python_reads_its_result() {
    let Some(beside) = CeleryBeside::new() else {
        return;
    };
    let mut our_worker = worker(&beside.ours);
    let todos = json!([{"id": 7, "title": "Sent from Python", "description": "",
        "completed": false, "deadline_at": "2030-01-02T03:04:05",
        "created_at": "2030-01-01T00:00:00", "updated_at": "2030-01-01T00:00:00"}]);
    let sent = beside
        .python(&["send", &todos.to_string()])
        .output()
        .expect("python runs");
    assert!(
        sent.status.success(),
        "AsyncResult.get() failed: {}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let answer: Value = serde_json::from_slice(&sent.stdout).expect("the script prints JSON");
    let calendar = answer["result"]
        .as_str()
        .expect("the result is the calendar text");
    assert!(
        calendar.contains("PRODID:-//Taskoverflow Calendar//mxm.dk//"),
        "{calendar}"
    );
    assert!(calendar.contains("SUMMARY:Sent from Python"), "{calendar}");
    assert!(sigterm(&mut our_worker));
}
