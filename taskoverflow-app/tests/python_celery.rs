//! TaskOverflow and real Python Celery on one queue (on RabbitMQ, and on Redis) and one Redis
//! result store, both ways: a Celery worker runs the calendar job our API enqueues (and our API reads the result
//! Celery stored), and our worker runs the job Celery sends (and Celery reads the result ours
//! stored). Both sides declare the queue, so this also proves the declarations are
//! equivalent (no `PRECONDITION_FAILED`).
//!
//! Celery comes from the virtualenv `scripts/services.sh` makes, which it names as
//! `BROKER_TEST_CELERY_PYTHON`.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use conformance_tests::{endpoint, skip};
use serde_json::{Value, json};

const BINARY: &str = env!("CARGO_BIN_EXE_taskoverflow");

/// The Celery app: the same task name, queue, broker and result store as TaskOverflow. Run as
/// a script, it sends one calendar job and prints the result our worker stored.
const CELERY_APP: &str = r#"
import json, os, sys
from celery import Celery

app = Celery("taskoverflow_py",
             broker=os.environ["CELERY_BROKER_URL"],
             backend=os.environ["CELERY_RESULT_BACKEND"])
app.conf.task_default_queue = os.environ["CELERY_DEFAULT_QUEUE"]
app.conf.broker_connection_retry_on_startup = True

@app.task(name="ical")
def ical(todos):
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Taskoverflow Calendar//mxm.dk//"]
    for todo in todos:
        lines += ["BEGIN:VEVENT", "UID:%s" % todo["id"], "SUMMARY:%s" % todo["title"],
                  "END:VEVENT"]
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines) + "\r\n"

if __name__ == "__main__":
    result = app.send_task("ical", args=[json.loads(sys.argv[1])])
    print(result.get(timeout=60))
"#;

/// What both sides need: Celery's python, the broker and result URLs, a fresh queue and a
/// folder holding the Celery app (removed when the test ends).
struct Setup {
    python: String,
    env: Vec<(&'static str, String)>,
    folder: PathBuf,
}

impl Setup {
    /// Celery and TaskOverflow on the broker of `service` (`amqp` or `redis`).
    fn new(service: &'static str) -> Option<Self> {
        let python = skip::or_skip(endpoint::celery_python())?;
        let broker = skip::or_skip(endpoint::broker_url(service))?;
        let redis = skip::or_skip(endpoint::broker_url("redis"))?;
        let folder = std::env::temp_dir().join(format!("to-celery-{:x}", fastrand::u64(..)));
        std::fs::create_dir_all(&folder).expect("a temporary folder");
        std::fs::write(folder.join("to_celery.py"), CELERY_APP).expect("write the Celery app");
        Some(Self {
            python,
            env: vec![
                ("CELERY_BROKER_URL", broker),
                ("CELERY_RESULT_BACKEND", redis),
                (
                    "CELERY_DEFAULT_QUEUE",
                    format!("ical-py-{:x}", fastrand::u64(..)),
                ),
            ],
            folder,
        })
    }

    fn taskoverflow(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BINARY);
        command
            .args(args)
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())));
        command
    }

    fn python(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.python);
        command
            .args(args)
            .current_dir(&self.folder)
            .env("PYTHONPATH", &self.folder)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())));
        command
    }
}

impl Setup {
    /// Deletes the test's queue (and its dead-letter queue) from the shared broker.
    async fn delete_queue(&self) {
        let backends = taskoverflow::backends::compiled_in();
        let broker = backends
            .broker(&self.env[0].1)
            .await
            .expect("the broker opens");
        broker
            .delete_queue(&self.env[2].1)
            .await
            .expect("the test queue is deleted");
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

/// Kills and reaps the child when the test ends, passed or not.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `serve` on a free port; its API base URL.
fn serve(setup: &Setup) -> (Reaped, String) {
    let mut child = setup
        .taskoverflow(&["serve", "--port", "0", "--memory"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("serve starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let child = Reaped(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let address = rest.split('/').next().expect("address").to_owned();
            // Keep draining the log so that serve never blocks on a full pipe.
            std::thread::spawn(move || while lines.recv().is_ok() {});
            return (child, format!("http://{address}/api/v1"));
        }
    }
    panic!("serve did not log its address within 30 s");
}

/// A Celery worker runs the job our API enqueued on `service`'s broker.
async fn celery_runs_our_job(service: &'static str) {
    let Some(setup) = Setup::new(service) else {
        return;
    };
    let (_server, base) = serve(&setup);
    let client = reqwest::Client::new();
    let todo = json!({"title": "Hand in report", "deadline_at": "2030-01-02T03:04:05"});
    let created = client
        .post(format!("{base}/todos"))
        .json(&todo)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let accepted: Value = client
        .post(format!("{base}/todos/ical"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let status_url = accepted["task_url"].as_str().expect("task_url").to_owned();

    let queue = setup.env[2].1.clone();
    let celery = Reaped(
        setup
            .python(&[
                "-m",
                "celery",
                "-A",
                "to_celery",
                "worker",
                "--pool",
                "solo",
                "-Q",
                &queue,
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "INFO",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the Celery worker starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let status: Value = client
            .get(&status_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["task_status"] == "SUCCESS" {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "Celery never finished the job: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let calendar = client
        .get(status["result_url"].as_str().expect("result_url"))
        .send()
        .await
        .unwrap();
    assert_eq!(calendar.status(), 200);
    let text = calendar.text().await.unwrap();
    assert!(text.contains("SUMMARY:Hand in report"), "{text}");
    assert!(
        text.contains("PRODID:-//Taskoverflow Calendar//mxm.dk//"),
        "{text}"
    );
    // The Python task writes no DTSTART (ours does): Celery built this calendar.
    assert!(!text.contains("DTSTART"), "not built by Celery: {text}");
    // A running Celery worker declares its queue again when it is deleted: stop it first.
    drop(celery);
    setup.delete_queue().await;
}

/// Our worker runs the job Celery sent on `service`'s broker.
async fn we_run_celerys_job(service: &'static str) {
    let Some(setup) = Setup::new(service) else {
        return;
    };
    let _worker = Reaped(
        setup
            .taskoverflow(&["worker"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("our worker starts"),
    );
    let todos = json!([{
        "id": 7,
        "title": "From Python",
        "description": "sent by Celery",
        "completed": false,
        "deadline_at": "2030-01-02T03:04:05",
        "created_at": "2030-01-01T00:00:00",
        "updated_at": "2030-01-01T00:00:00",
    }]);
    let sent = setup
        .python(&["to_celery.py", &todos.to_string()])
        .output()
        .expect("the Celery client runs");
    let printed = String::from_utf8_lossy(&sent.stdout);
    assert!(
        sent.status.success(),
        "Celery's send or get failed: {}",
        String::from_utf8_lossy(&sent.stderr)
    );
    assert!(printed.contains("BEGIN:VCALENDAR"), "{printed}");
    assert!(printed.contains("SUMMARY:From Python"), "{printed}");
    // Only our calendar carries the description and the deadline: our worker built it.
    assert!(printed.contains("DESCRIPTION:sent by Celery"), "{printed}");
    assert!(printed.contains("DTSTART"), "{printed}");
    setup.delete_queue().await;
}

#[tokio::test]
async fn a_python_celery_worker_runs_the_calendar_job_our_api_enqueued_on_rabbitmq() {
    celery_runs_our_job("amqp").await;
}

#[tokio::test]
async fn our_worker_runs_the_calendar_job_python_celery_sent_on_rabbitmq() {
    we_run_celerys_job("amqp").await;
}

#[tokio::test]
async fn a_python_celery_worker_runs_the_calendar_job_our_api_enqueued_on_redis() {
    celery_runs_our_job("redis").await;
}

#[tokio::test]
async fn our_worker_runs_the_calendar_job_python_celery_sent_on_redis() {
    we_run_celerys_job("redis").await;
}
