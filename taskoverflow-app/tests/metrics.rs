//! Prometheus metrics as an operator scrapes them: from `serve` at `/metrics`, and from a
//! separate worker at `--metrics-port`.

mod support;

use std::{process::Child, time::Duration};

use broker_core::{Message, Queue};
use prometheus_parse::{Sample, Scrape, Value as Metric};
use serde_json::{Value, json};
use support::{Schema, Server, external, poll_until_done, sigterm, taskoverflow, with_option};

/// A scrape of `url`, parsed: it must be valid Prometheus text.
async fn scrape(client: &reqwest::Client, url: &str) -> Scrape {
    let response = client
        .get(url)
        .send()
        .await
        .expect("the scrape is answered");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("a text body");
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    Scrape::parse(lines).unwrap_or_else(|e| panic!("not Prometheus text ({e}): {text}"))
}

/// The value of `metric` with these labels (a histogram's sample count), or 0 when absent.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let matches = |sample: &&Sample| {
        sample.metric == metric
            && labels
                .iter()
                .all(|(name, want)| sample.labels.get(name) == Some(*want))
    };
    scrape
        .samples
        .iter()
        .filter(matches)
        .map(|sample| match &sample.value {
            Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v) => *v,
            Metric::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Metric::Summary(_) => 0.0,
        })
        .sum()
}

/// Creates a todo and runs `jobs` calendar exports to the end through the API at `base`.
async fn run_calendar_jobs(client: &reqwest::Client, base: &str, jobs: usize) {
    let todos = format!("{base}/todos");
    let body = json!({"title": "Count me", "deadline_at": "2030-01-02T03:04:05"});
    let created = client.post(&todos).json(&body).send().await.expect("POST");
    assert_eq!(created.status(), 201);
    for _ in 0..jobs {
        let accepted: Value = client
            .post(format!("{todos}/ical"))
            .send()
            .await
            .expect("POST ical")
            .json()
            .await
            .expect("JSON");
        let status = accepted["task_url"].as_str().expect("task_url");
        poll_until_done(client, status).await;
    }
}

#[tokio::test]
async fn serve_exposes_task_broker_and_http_metrics_that_move() {
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let page = server.base.replace("/api/v1", "/metrics");
    let task = [("backend", "memory"), ("queue", "ical"), ("task", "ical")];

    run_calendar_jobs(&client, &server.base, 1).await;
    let before = scrape(&client, &page).await;
    run_calendar_jobs(&client, &server.base, 2).await;
    let after = scrape(&client, &page).await;

    for counter in [
        "switchyard_tasks_received_total",
        "switchyard_tasks_succeeded_total",
    ] {
        let moved = value(&after, counter, &task) - value(&before, counter, &task);
        assert!(moved >= 2.0, "{counter} moved by {moved}");
    }
    for histogram in [
        "switchyard_task_run_seconds",
        "switchyard_task_queue_wait_seconds",
    ] {
        assert!(value(&after, histogram, &task) >= 3.0, "{histogram}");
    }
    let publishes = [
        ("backend", "memory"),
        ("queue", "ical"),
        ("operation", "publish"),
    ];
    assert!(value(&after, "switchyard_broker_call_seconds", &publishes) >= 3.0);
    let acks = [("backend", "memory"), ("operation", "ack")];
    assert!(value(&after, "switchyard_broker_call_seconds", &acks) >= 1.0);
    assert_eq!(
        value(&after, "switchyard_tasks_in_flight", &task[..2]),
        0.0,
        "every task finished"
    );
    assert!(
        after
            .samples
            .iter()
            .any(|s| s.metric == "switchyard_queue_depth"),
        "the worker samples the depth of a queue it can count"
    );
    let created = [
        ("route", "/api/v1/todos"),
        ("method", "POST"),
        ("status", "201"),
    ];
    let moved = value(&after, "taskoverflow_http_requests_total", &created)
        - value(&before, "taskoverflow_http_requests_total", &created);
    assert_eq!(moved, 1.0, "one todo created between the scrapes");
    let status_route = [
        ("route", "/api/v1/todos/ical/:task_id/status"),
        ("status", "200"),
    ];
    assert!(value(&after, "taskoverflow_http_request_seconds", &status_route) >= 3.0);
    let (clean, _) = server.terminate();
    assert!(clean);
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

fn worker_with_metrics(env: &[(&str, String)], port: u16) -> Child {
    taskoverflow(&["worker", "--metrics-port", &port.to_string()])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .spawn()
        .expect("the worker starts")
}

/// Runs a worker with `--metrics-port` beside `serve` on `broker_url` (results in
/// `results_url`): two calendar jobs and a poison message later, its page shows them.
async fn a_worker_serves_its_metrics_on(backend: &str, broker_url: &str, results_url: &str) {
    let queue = format!("ical-{}", fastrand::u32(..));
    let env = [
        ("CELERY_BROKER_URL", broker_url.to_owned()),
        ("CELERY_RESULT_BACKEND", results_url.to_owned()),
        ("CELERY_DEFAULT_QUEUE", queue.clone()),
    ];
    let borrowed: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Server::start(&borrowed);
    let port = free_port();
    let mut worker = worker_with_metrics(&env, port);
    let client = reqwest::Client::new();
    run_calendar_jobs(&client, &server.base, 2).await;

    // A message no worker can decode: dead-lettered, counted, and the worker goes on.
    let broker = taskoverflow::backends::compiled_in()
        .broker(broker_url)
        .await
        .expect("the broker opens");
    Queue::new(broker.clone(), queue.clone())
        .publish(Message::new("{not a task").header("task", "ical"))
        .await
        .expect("publish poison");
    let page = format!("http://127.0.0.1:{port}/metrics");
    let labels = [
        ("backend", backend),
        ("queue", queue.as_str()),
        ("task", "ical"),
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let scraped = loop {
        let scraped = scrape(&client, &page).await;
        if value(&scraped, "switchyard_tasks_dead_lettered_total", &labels) >= 1.0 {
            break scraped;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{backend}: no dead letter counted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        value(&scraped, "switchyard_tasks_succeeded_total", &labels),
        2.0,
        "{backend}"
    );
    assert!(
        value(&scraped, "switchyard_broker_call_seconds", &labels[..2]) > 0.0,
        "{backend}"
    );
    for described in [
        "switchyard_tasks_received_total",
        "switchyard_task_run_seconds",
        "switchyard_tasks_in_flight",
    ] {
        assert!(
            scraped.docs.contains_key(described),
            "{backend}: no help text for {described}"
        );
    }
    assert!(sigterm(&mut worker), "{backend}: the worker exits cleanly");
    broker.delete_queue(&queue).await.expect("delete");
    let (clean, _) = server.terminate();
    assert!(clean);
}

#[tokio::test]
async fn a_worker_serves_its_metrics_on_its_own_port_on_redis() {
    let Some(url) = external("redis") else {
        return;
    };
    let url = with_option(&url, "key_prefix", &format!("m-{}:", fastrand::u64(..)));
    a_worker_serves_its_metrics_on("redis", &url, &url).await;
}

#[tokio::test]
async fn a_worker_serves_its_metrics_on_its_own_port_on_postgres() {
    let Some(url) = external("postgres") else {
        return;
    };
    let schema = Schema::new(&url);
    let url = with_option(&url, "schema", &schema.name);
    let url = with_option(&url, "result_schema", &schema.name);
    a_worker_serves_its_metrics_on("postgres", &url, &url).await;
}
