//! Traces that cross the broker: the trace a task is sent in is the trace it runs in, on every
//! backend, and an HTTP request, its enqueue and the run on a separate worker are one trace.

mod support;

use std::{
    io::{BufRead as _, BufReader},
    process::Stdio,
    sync::mpsc,
    time::Duration,
};

use broker_core::{
    Queue,
    celery::TaskMessage,
    tasks::send_task,
    trace_context::TraceContext,
    worker::{TaskRegistry, TaskRequest, Worker},
};
use broker_memory::MemoryResultStore;
use conformance_tests::{endpoint, skip};
use serde_json::{Map, Value, json};
use support::{Server, external, poll_until_done, sigterm, taskoverflow, with_option};
use tokio_util::sync::CancellationToken;

/// The caller's trace, as a client would send it.
const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// Sends one task to a fresh queue on `url` inside the caller's trace, runs a worker whose
/// handler reports the trace context it runs in, and returns that context.
async fn context_a_task_runs_in(url: &str) -> TraceContext {
    let broker = taskoverflow::backends::compiled_in()
        .broker(url)
        .await
        .expect("the broker opens");
    let name = format!("trace-{:x}", fastrand::u64(..));
    let queue = Queue::declare(broker.clone(), name.clone())
        .await
        .expect("declare");
    let (seen, saw) = tokio::sync::mpsc::unbounded_channel();
    let tasks = TaskRegistry::new().register("traced", move |_: TaskRequest| {
        let seen = seen.clone();
        async move {
            let _ = seen.send(TraceContext::current());
            Ok(Value::Null)
        }
    });
    let caller = TraceContext::parse(CALLER).expect("valid");
    let task = TaskMessage::new("traced", Vec::new(), Map::new());
    caller
        .scope(send_task(&queue, &task))
        .await
        .expect("send the task");
    let results = std::sync::Arc::new(MemoryResultStore::new(Duration::from_secs(60)));
    let stop = CancellationToken::new();
    let worker = tokio::spawn(Worker::new(queue, results, tasks).run(stop.clone()));
    let mut saw = saw;
    let context = tokio::time::timeout(Duration::from_secs(30), saw.recv())
        .await
        .unwrap_or_else(|_| panic!("{url}: the task did not run within 30 s"))
        .expect("the handler reports")
        .unwrap_or_else(|| panic!("{url}: no trace context while the handler ran"));
    stop.cancel();
    worker.await.expect("the worker ends").expect("cleanly");
    broker.delete_queue(&name).await.expect("delete");
    context
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_runs_in_the_trace_it_was_sent_in_on_every_backend() {
    let mut urls = vec![("memory", format!("memory://traces-{}", fastrand::u64(..)))];
    for service in ["redis", "postgres", "amqp", "sqs", "kafka"] {
        if let Some(url) = skip::or_skip(endpoint::broker_url(service)) {
            urls.push((service, url));
        }
    }
    for (service, url) in urls {
        let context = context_a_task_runs_in(&url).await;
        assert_eq!(context.trace_id(), CALLER_TRACE, "{service}: one trace");
        let parent = context.parent_span_id();
        assert!(
            parent.is_some() && parent.as_deref() != Some("00f067aa0ba902b7"),
            "{service}: the run's parent is the enqueue, itself a child of the caller: {context:?}"
        );
    }
}

#[tokio::test]
async fn a_request_its_enqueue_and_the_run_on_a_worker_are_one_trace() {
    let Some(url) = external("redis") else {
        return;
    };
    let url = with_option(&url, "key_prefix", &format!("tr-{}:", fastrand::u64(..)));
    let env = [
        ("CELERY_BROKER_URL", url.clone()),
        ("CELERY_RESULT_BACKEND", url),
        (
            "CELERY_DEFAULT_QUEUE",
            format!("ical-{}", fastrand::u32(..)),
        ),
    ];
    let borrowed: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Server::start(&borrowed);
    let mut worker = taskoverflow(&["worker"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stderr(Stdio::piped())
        .spawn()
        .expect("the worker starts");
    let (lines, logged) = mpsc::channel();
    let stderr = worker.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });

    let client = reqwest::Client::new();
    let todos = format!("{}/todos", server.base);
    let body = json!({"title": "Trace me", "deadline_at": "2030-01-02T03:04:05"});
    client.post(&todos).json(&body).send().await.expect("POST");
    let response = client
        .post(format!("{todos}/ical"))
        .header("traceparent", CALLER)
        .send()
        .await
        .expect("POST ical");
    let answered = response
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse)
        .expect("the response names the request's span");
    assert_eq!(answered.trace_id(), CALLER_TRACE);
    let accepted: Value = response.json().await.expect("JSON");
    poll_until_done(&client, accepted["task_url"].as_str().expect("task_url")).await;

    let wanted = format!("trace_id={CALLER_TRACE}");
    let run = loop {
        let line = logged
            .recv_timeout(Duration::from_secs(20))
            .expect("the worker logs the run within 20 s");
        if line.contains("task succeeded") {
            break line;
        }
    };
    assert!(
        run.contains(&wanted),
        "the run is in the caller's trace: {run}"
    );
    assert!(sigterm(&mut worker));
    let (clean, served) = server.terminate();
    assert!(clean);
    let request = served
        .lines()
        .find(|l| l.contains("request{method=POST path=/api/v1/todos/ical "))
        .unwrap_or_else(|| panic!("no request line: {served}"));
    assert!(request.contains(&wanted), "{request}");
}
