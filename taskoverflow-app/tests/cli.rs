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
