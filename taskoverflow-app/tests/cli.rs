//! The `taskoverflow` binary as a user runs it.

use std::process::{Command, Output};

use conformance_tests::{endpoint, skip};

fn taskoverflow(arguments: &[&str], environment: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_taskoverflow"));
    command
        .args(arguments)
        .env_remove("CELERY_BROKER_URL")
        .env_remove("DATABASE_URL")
        .env_remove("SQLALCHEMY_DATABASE_URI")
        .env_remove("HOST")
        .env_remove("PORT");
    for (name, value) in environment {
        command.env(name, value);
    }
    command.output().expect("the binary runs")
}

fn all_output(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn help_never_shows_the_database_url_from_the_environment() {
    let output = taskoverflow(
        &["serve", "--help"],
        &[("DATABASE_URL", "postgres://admin:hunter2@db/todo")],
    );
    assert!(output.status.success());
    let text = all_output(&output);
    assert!(text.contains("--database-url"), "{text}");
    assert!(text.contains("--memory"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn unusable_database_url_fails_without_printing_its_password() {
    let output = taskoverflow(
        &["serve", "--port", "0"],
        &[("SQLALCHEMY_DATABASE_URI", "mysql://admin:hunter2@db/todo")],
    );
    assert!(!output.status.success());
    let text = all_output(&output);
    assert!(text.contains("mysql://admin:***@db/todo"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn unreachable_postgres_fails_without_printing_its_password() {
    // Port 1 on the loopback interface refuses connections at once.
    let output = taskoverflow(
        &["serve", "--port", "0"],
        &[
            (
                "DATABASE_URL",
                "postgresql://admin:hunter2@127.0.0.1:1/todo",
            ),
            ("RUST_LOG", "debug"),
        ],
    );
    assert!(!output.status.success());
    let text = all_output(&output);
    assert!(text.contains("admin:***@127.0.0.1:1/todo"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn broker_info_shows_the_embedded_brokers_capabilities() {
    let output = taskoverflow(&["broker", "info"], &[]);
    let text = all_output(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.starts_with("broker: memory://"), "{text}");
    let backend = text.lines().find(|l| l.starts_with("backend "));
    assert_eq!(
        backend.map(|l| l.split_whitespace().last()),
        Some(Some("memory")),
        "{text}"
    );
    for row in [
        "delivery",
        "ordering",
        "delay",
        "dead letter",
        "max payload",
        "idle pickup",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(row)),
            "no {row} row: {text}"
        );
    }
}

#[test]
fn broker_info_names_each_test_brokers_backend_and_masks_its_password() {
    for (service, backend) in [
        ("redis", "redis"),
        ("postgres", "postgres"),
        ("amqp", "amqp"),
        ("sqs", "sqs"),
        ("kafka", "kafka"),
    ] {
        let Some(url) = skip::or_skip(endpoint::broker_url(service)) else {
            continue;
        };
        let output = taskoverflow(&["broker", "info"], &[("CELERY_BROKER_URL", &url)]);
        let text = all_output(&output);
        assert!(output.status.success(), "{service}: {text}");
        let row = text.lines().find(|l| l.starts_with("backend "));
        assert_eq!(
            row.map(|l| l.split_whitespace().last()),
            Some(Some(backend)),
            "{text}"
        );
        if let Some(password) = broker_core::urls::UrlParts::parse(&url)
            .ok()
            .and_then(|parts| parts.password().map(|p| p.expose().to_owned()))
        {
            assert!(!text.contains(&format!(":{password}@")), "{text}");
        }
    }
}

#[test]
fn broker_info_on_an_unreachable_broker_fails_without_its_password() {
    let output = taskoverflow(
        &["broker", "info"],
        &[("CELERY_BROKER_URL", "redis://:hunter2@127.0.0.1:1/0")],
    );
    let text = all_output(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

/// The brokers the operator commands are tried on, with whether each can count.
const OPERATED: [(&str, bool); 5] = [
    ("redis", true),
    ("postgres", true),
    ("amqp", true),
    ("sqs", true),
    ("kafka", false),
];

/// A fresh queue on `url` holding `count` messages, then `dead` of them dead-lettered.
async fn queue_with_dead_letters(url: &str, count: usize, dead: usize) -> broker_core::Queue {
    use broker_core::{Message, NackAction, Queue};
    let broker = taskoverflow::backends::compiled_in()
        .broker(url)
        .await
        .expect("the broker opens");
    let name = format!("cli-{:012x}", fastrand::u64(..));
    let queue = Queue::declare(broker, name).await.expect("declare");
    let messages = (0..count)
        .map(|n| Message::new(format!("job {n}")).header("task", "ical"))
        .collect();
    queue.publish_batch(messages).await.expect("publish");
    // A consumer of its own, closed when done: RabbitMQ counts what it pushed to a consumer
    // that is still open as in flight, not ready.
    let consumer = taskoverflow::backends::compiled_in()
        .broker(url)
        .await
        .expect("the broker opens");
    let consuming = Queue::new(consumer.clone(), queue.name());
    let mut killed = 0;
    while killed < dead {
        let batch = consuming
            .receive(dead - killed, std::time::Duration::from_secs(10))
            .await
            .expect("receive");
        assert!(!batch.is_empty(), "the messages arrive");
        for delivery in batch {
            let reason = format!("poisoned {}", String::from_utf8_lossy(delivery.payload()));
            delivery
                .nack(NackAction::DeadLetter { reason })
                .await
                .expect("dead-letter");
            killed += 1;
        }
    }
    consumer.close().await.expect("close the consumer");
    queue
}

/// The whole output of `taskoverflow ARGS` on `url`, and whether it succeeded.
fn operate(url: &str, arguments: &[&str]) -> (bool, String) {
    let output = taskoverflow(arguments, &[("CELERY_BROKER_URL", url)]);
    (output.status.success(), all_output(&output))
}

/// The numbers of `queue`'s row in the `queues` table.
fn counts_row(table: &str, queue: &str) -> Vec<String> {
    let row = table
        .lines()
        .find(|l| l.starts_with(queue))
        .unwrap_or_else(|| panic!("no row for {queue}: {table}"));
    row.split_whitespace().skip(1).map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_counts_lists_redrives_and_purges_on_every_broker() {
    for (service, counts) in OPERATED {
        let Some(url) = skip::or_skip(endpoint::broker_url(service)) else {
            continue;
        };
        let queue = queue_with_dead_letters(&url, 5, 2).await;
        let name = queue.name().to_owned();
        // How long a walk waits for one more message: a Kafka consumer first joins its group.
        let wait = if service == "kafka" { "5" } else { "1" };

        let (ok, text) = operate(&url, &["queues", &name]);
        if counts {
            assert!(ok, "{service}: {text}");
            let row = counts_row(&text, &name);
            assert_eq!(row[0], "3", "{service}: three ready: {text}");
            assert_eq!(row[3], "2", "{service}: two dead letters: {text}");
        } else {
            assert!(!ok, "{service}: {text}");
            assert!(text.contains("cannot count"), "{service}: {text}");
        }

        let (ok, text) = operate(&url, &["dlq", "list", &name, "--wait", wait]);
        assert!(ok, "{service}: {text}");
        for n in [0, 1] {
            let reason = format!("poisoned job {n}");
            let row = text.lines().find(|l| l.ends_with(&reason));
            let row = row.unwrap_or_else(|| panic!("{service}: no `{reason}`: {text}"));
            assert!(
                row.contains(" ical "),
                "{service}: the task is named: {text}"
            );
        }

        let (ok, text) = operate(
            &url,
            &["dlq", "redrive", &name, "--limit", "1", "--wait", wait],
        );
        assert!(
            ok && text.contains("moved 1 dead letters"),
            "{service}: {text}"
        );
        let (ok, text) = operate(&url, &["dlq", "redrive", &name, "--wait", wait]);
        assert!(
            ok && text.contains("moved 1 dead letters"),
            "{service}: {text}"
        );

        let mut declined = Command::new(env!("CARGO_BIN_EXE_taskoverflow"));
        declined
            .args(["purge", &name])
            .env("CELERY_BROKER_URL", &url)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = declined.spawn().expect("the binary runs");
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(b"n\n").expect("answer");
        }
        let output = child.wait_with_output().expect("it ends");
        let text = all_output(&output);
        assert!(!output.status.success(), "{service}: {text}");
        assert!(text.contains("nothing was removed"), "{service}: {text}");

        let (ok, text) = operate(&url, &["purge", &name, "--yes", "--wait", wait]);
        assert!(ok, "{service}: {text}");
        assert!(
            text.contains(&format!("purged 5 messages from `{name}`")),
            "{service}: the three left and the two sent back: {text}"
        );
        if counts {
            let (ok, text) = operate(&url, &["queues", &name]);
            assert!(ok, "{service}: {text}");
            assert_eq!(counts_row(&text, &name)[..1], ["0"], "{service}: {text}");
        }
        let broker = queue.broker().clone();
        broker.delete_queue(&name).await.expect("delete");
        broker.close().await.expect("close");
    }
}

#[test]
fn operator_commands_on_the_embedded_broker_see_only_their_own_process() {
    let output = taskoverflow(&["queues"], &[]);
    let text = all_output(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("ical"), "{text}");
    assert!(text.contains("(no such queue)"), "{text}");
    let output = taskoverflow(&["purge", "ical", "--yes"], &[]);
    let text = all_output(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("no queue named `ical`"), "{text}");
}

#[test]
fn operator_commands_on_an_unreachable_broker_fail_without_its_password() {
    for arguments in [
        &["queues"][..],
        &["purge", "ical", "--yes"],
        &["dlq", "list", "ical"],
        &["dlq", "redrive", "ical"],
    ] {
        let output = taskoverflow(
            arguments,
            &[("CELERY_BROKER_URL", "redis://:hunter2@127.0.0.1:1/0")],
        );
        let text = all_output(&output);
        assert!(!output.status.success(), "{arguments:?}: {text}");
        assert!(text.contains("127.0.0.1:1"), "{arguments:?}: {text}");
        assert!(!text.contains("hunter2"), "{arguments:?}: {text}");
    }
}
