//! The `taskoverflow` binary as a user runs it.

use std::process::{Command, Output};

fn taskoverflow(arguments: &[&str], environment: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_taskoverflow"));
    command
        .args(arguments)
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
