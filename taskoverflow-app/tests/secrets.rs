//! Secrets never show. `serve` and `worker` run with passwords, AWS keys and a session token in
//! their URLs and environment, with every library logging at `debug`: while they cannot reach
//! a broker, while a broker refuses the credentials, and while a job runs. None of the values
//! appears in anything either process prints.

mod support;

use std::{
    process::Command,
    thread,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use support::{Schema, Server, celery_results, external, get_json, output_within, taskoverflow};

const PASSWORD: &str = "pw-7Hq2Zx9Lm";
const AWS_SECRET_KEY: &str = "aws-Wd3Kp8Tr5Ys";
const AWS_SESSION_TOKEN: &str = "tok-Vb5Nr1Qe4";
const SECRETS: [&str; 3] = [PASSWORD, AWS_SECRET_KEY, AWS_SESSION_TOKEN];

/// An address that refuses connections at once.
const NOBODY: &str = "127.0.0.1:1";

/// `taskoverflow ARGS` logging everything at `debug`, with `env`, and the AWS chain's
/// variables holding a secret key and a session token (read by an `sqs://` URL without keys).
fn logging_everything(args: &[&str], env: &[(&str, String)]) -> Command {
    let mut command = taskoverflow(args);
    command
        .env("RUST_LOG", "debug")
        .env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEYID")
        .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET_KEY)
        .env("AWS_SESSION_TOKEN", AWS_SESSION_TOKEN)
        .env("AWS_REGION", "us-east-1")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    command
}

fn assert_no_secret(printed: &str, run: &str) {
    for secret in SECRETS {
        assert!(
            !printed.contains(secret),
            "{run} printed the secret {secret}:\n{printed}"
        );
    }
}

/// `url` with its user information replaced by `userinfo` (`user:password`).
fn with_credentials(url: &str, userinfo: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host_start = rest[..authority_end].rfind('@').map_or(0, |at| at + 1);
    format!("{scheme}://{userinfo}@{}", &rest[host_start..])
}

/// Runs `serve` and `worker` with each `(broker, results)` pair at once, each for at most
/// `within`; returns what each run printed, named by its command and broker.
fn run_each(pairs: &[(String, String)], within: Duration) -> Vec<(String, String)> {
    thread::scope(|scope| {
        let runs: Vec<_> = pairs
            .iter()
            .flat_map(|(broker, results)| {
                [&["serve", "--port", "0", "--memory"][..], &["worker"][..]].map(|args| {
                    let env = [
                        ("CELERY_BROKER_URL", broker.clone()),
                        ("CELERY_RESULT_BACKEND", results.clone()),
                    ];
                    let name = format!("`{}` with broker {broker}", args[0]);
                    let command = logging_everything(args, &env);
                    (name, scope.spawn(move || output_within(command, within)))
                })
            })
            .collect();
        runs.into_iter()
            .map(|(name, run)| (name, run.join().expect("the run finishes")))
            .collect()
    })
}

#[test]
fn start_up_that_cannot_reach_its_brokers_prints_no_secret() {
    let redis = format!("redis://:{PASSWORD}@{NOBODY}/0");
    let postgres = format!("postgres://app:{PASSWORD}@{NOBODY}/todo");
    let pairs = [
        (redis.clone(), redis.clone()),
        (postgres.clone(), postgres),
        (format!("amqp://app:{PASSWORD}@{NOBODY}/%2f"), redis.clone()),
        (
            format!("kafka://app:{PASSWORD}@{NOBODY}"),
            format!("db+postgresql://app:{PASSWORD}@{NOBODY}/todo"),
        ),
        (
            format!("sqs://AKIAEXAMPLEKEYID:{AWS_SECRET_KEY}@{NOBODY}?is_secure=false"),
            redis.clone(),
        ),
        (
            format!("sqs://?endpoint_url=http://{NOBODY}&region=us-east-1"),
            redis,
        ),
    ];
    for (run, printed) in run_each(&pairs, Duration::from_secs(20)) {
        assert_no_secret(&printed, &run);
        assert!(
            printed.contains(NOBODY),
            "{run} did not name the endpoint it could not reach:\n{printed}"
        );
    }
}

#[test]
fn credentials_a_broker_refuses_print_no_secret() {
    let (Some(redis), Some(amqp)) = (external("redis"), external("amqp")) else {
        return;
    };
    // The test Redis has no password, so it refuses any; RabbitMQ knows guest by another.
    let redis = with_credentials(&redis, &format!(":{PASSWORD}"));
    let amqp = with_credentials(&amqp, &format!("guest:{PASSWORD}"));
    let pairs = [(redis.clone(), redis.clone()), (amqp, redis)];
    for (run, printed) in run_each(&pairs, Duration::from_secs(20)) {
        assert_no_secret(&printed, &run);
        assert!(!printed.is_empty(), "{run} printed nothing");
    }
}

/// The course's AWS shape, with every credential a secret: SQS keys in the broker URL, a
/// PostgreSQL password in the result backend's (the test server trusts any).
#[tokio::test]
async fn a_calendar_job_run_with_secrets_in_every_url_prints_none() {
    let (Some(sqs), Some(postgres)) = (external("sqs"), external("postgres")) else {
        return;
    };
    let schema = Schema::new(&postgres);
    let env = vec![
        (
            "CELERY_BROKER_URL",
            with_credentials(&sqs, &format!("AKIAEXAMPLEKEYID:{AWS_SECRET_KEY}")),
        ),
        (
            "CELERY_RESULT_BACKEND",
            celery_results(
                &with_credentials(&postgres, &format!("postgres:{PASSWORD}")),
                &schema,
            ),
        ),
        (
            "CELERY_DEFAULT_QUEUE",
            format!("secrets-{:x}", fastrand::u64(..)),
        ),
    ];
    let mut serve_env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    serve_env.push(("RUST_LOG", "debug"));
    let server = Server::start(&serve_env);
    let client = reqwest::Client::new();
    let todos = format!("{}/todos", server.base);
    let todo = json!({"title": "Rotate keys", "deadline_at": "2030-01-02T03:04:05"});
    let created = client.post(&todos).json(&todo).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let accepted = client.post(format!("{todos}/ical")).send().await.unwrap();
    let accepted: Value = accepted.json().await.unwrap();
    let status_url = accepted["task_url"].as_str().expect("task_url").to_owned();

    let worker = logging_everything(&["worker"], &env);
    let worker = thread::spawn(move || output_within(worker, Duration::from_secs(15)));
    let deadline = Instant::now() + Duration::from_secs(15);
    let state = loop {
        let status = get_json(&client, &status_url).await;
        let state = status["task_status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if state == "SUCCESS" || Instant::now() > deadline {
            break state;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let worker_printed = worker.join().expect("the worker run finishes");
    let (_, serve_printed) = server.terminate();
    assert_eq!(state, "SUCCESS", "the job ran:\n{worker_printed}");
    assert_no_secret(&worker_printed, "the worker");
    assert_no_secret(&serve_printed, "serve");
    assert!(
        worker_printed.contains("DEBUG"),
        "the worker logged at debug:\n{worker_printed}"
    );
}
