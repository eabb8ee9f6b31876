//! Python Celery on the same SQS queues, both ways: a Celery worker (`broker_url='sqs://...'`)
//! runs a task this backend enqueued, and a task Celery sent is received and decoded here.
//!
//! Needs `BROKER_TEST_SQS_URL` and `BROKER_TEST_CELERY_PYTHON`, a Python with `celery[sqs]`
//! (`scripts/services.sh` prints both); the service is called `celery` for
//! `BROKER_TEST_REQUIRE`.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use broker_core::{
    Broker, Queue,
    celery::TaskMessage,
    tasks::{send_task, task_from_delivery},
};
use broker_sqs::{SqsBroker, SqsConfig};
use conformance_tests::{endpoint, skip};
use serde_json::{Map, json};

/// The Celery app both directions use; the endpoint comes from the environment.
const PROBE_APP: &str = r#"
import os, sys
from celery import Celery

app = Celery("probe", broker="sqs://test:test@" + os.environ["PROBE_ENDPOINT"])
app.conf.broker_transport_options = {"region": "us-east-1", "is_secure": False}
app.conf.worker_hijack_root_logger = False

@app.task(name="probe.echo")
def echo(token, n):
    with open(os.environ["PROBE_OUT"], "w") as out:
        out.write(f"{token} {n * 2}")

if __name__ == "__main__" and sys.argv[1] == "send":
    app.send_task("rust.add", args=(2, 3), kwargs={"note": "from python"},
                  queue=sys.argv[2], task_id=sys.argv[3])
"#;

struct Setup {
    python: String,
    sqs_url: String,
    endpoint: String,
    dir: PathBuf,
}

fn setup() -> Option<Setup> {
    let sqs_url = skip::or_skip(endpoint::broker_url("sqs"))?;
    let python = skip::or_skip(endpoint::celery_python())?;
    let config = SqsConfig::from_url(&sqs_url).expect("BROKER_TEST_SQS_URL parses");
    let endpoint = config
        .endpoint
        .expect("the test URL names the emulator")
        .trim_start_matches("http://")
        .to_owned();
    let dir = std::env::temp_dir().join(format!("sqs-celery-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    std::fs::write(dir.join("probe.py"), PROBE_APP).expect("write the Celery app");
    Some(Setup {
        python,
        sqs_url,
        endpoint,
        dir,
    })
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn broker(url: &str) -> Arc<dyn Broker> {
    let config = SqsConfig::from_url(url).expect("parses");
    Arc::new(SqsBroker::connect(config).await.expect("connects"))
}

#[tokio::test]
async fn a_python_celery_worker_runs_a_task_enqueued_here() {
    let Some(setup) = setup() else {
        return;
    };
    let name = format!("py-worker.{}", uuid::Uuid::new_v4().simple());
    let queue = Queue::declare(broker(&setup.sqs_url).await, name.clone())
        .await
        .expect("declare");
    let token = uuid::Uuid::new_v4().simple().to_string();
    let task = TaskMessage::new("probe.echo", vec![json!(token), json!(21)], Map::new());
    send_task(&queue, &task).await.expect("enqueue");

    let out = setup.dir.join("out.txt");
    let mut worker = Command::new(&setup.python)
        .args([
            "-m", "celery", "-A", "probe", "worker", "--pool", "solo", "-Q", &name,
        ])
        .args([
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ])
        .current_dir(&setup.dir)
        .env("PROBE_ENDPOINT", &setup.endpoint)
        .env("PROBE_OUT", &out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the Celery worker starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    let ran = loop {
        if let Ok(text) = std::fs::read_to_string(&out) {
            break Some(text);
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = worker.kill();
    let _ = worker.wait();
    let _ = queue.broker().delete_queue(&name).await;
    assert_eq!(
        ran.as_deref(),
        Some(format!("{token} 42").as_str()),
        "the Python worker ran the task with its arguments within 60 s"
    );
}

#[tokio::test]
async fn a_task_python_celery_sent_is_received_and_decoded_here() {
    let Some(setup) = setup() else {
        return;
    };
    let name = format!("py-sender.{}", uuid::Uuid::new_v4().simple());
    let queue = Queue::declare(broker(&setup.sqs_url).await, name.clone())
        .await
        .expect("declare");
    let id = uuid::Uuid::new_v4().to_string();
    let sent = Command::new(&setup.python)
        .args(["probe.py", "send", &name, &id])
        .current_dir(&setup.dir)
        .env("PROBE_ENDPOINT", &setup.endpoint)
        .env("PROBE_OUT", setup.dir.join("unused"))
        .output()
        .expect("python runs");
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let delivery = queue
        .receive_one(Duration::from_secs(10))
        .await
        .expect("receive")
        .expect("Celery's message arrives");
    let task = task_from_delivery(&delivery).expect("a Celery v2 task");
    assert_eq!(task.headers.task, "rust.add");
    assert_eq!(task.headers.id, id);
    assert_eq!(task.headers.lang, "py");
    assert_eq!(task.args, vec![json!(2), json!(3)]);
    assert_eq!(task.kwargs["note"], "from python");
    delivery.ack().await.expect("ack");
    let _ = queue.broker().delete_queue(&name).await;
}
