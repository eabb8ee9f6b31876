//! A RabbitMQ restart loses nothing that was confirmed, and the broker reconnects by itself.
//! Runs against a private RabbitMQ node (its own port, data directory and node name) that the
//! test stops and starts again, never the machine's shared one. Needs `rabbitmq-server`
//! (installed with the machine's RabbitMQ); the shared server's URL gives the credentials.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use broker_amqp::{AmqpBroker, AmqpConfig};
use broker_core::{Broker, Message, Queue};
use conformance_tests::{Harness, HarnessFeature, Settings, Unavailable, endpoint, run_case, skip};
use tokio::time::Instant;

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// A RabbitMQ node of this test's own, with durable storage in its own directory.
struct PrivateNode {
    dir: PathBuf,
    port: u16,
    dist_port: u16,
    name: String,
    server: Mutex<Option<Child>>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl PrivateNode {
    fn start() -> Result<Self, String> {
        if !std::path::Path::new(SERVER).exists() {
            return Err(format!("{SERVER} is not installed"));
        }
        let id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        let dir = std::env::temp_dir().join(format!("ct-rabbit-{id}"));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let node = Self {
            port: free_port(),
            dist_port: free_port(),
            name: format!("ct{id}@localhost"),
            dir,
            server: Mutex::new(None),
        };
        let config = format!(
            "listeners.tcp.default = 127.0.0.1:{}\nloopback_users = none\n",
            node.port
        );
        std::fs::write(node.dir.join("rabbitmq.conf"), config).map_err(|e| e.to_string())?;
        node.boot()?;
        Ok(node)
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Starts the node and waits (at most 60 s) until it accepts connections.
    fn boot(&self) -> Result<(), String> {
        let dir = &self.dir;
        let child = Command::new(SERVER)
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("plugins"))
            .env("RABBITMQ_PID_FILE", dir.join("pid"))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{SERVER} does not start: {e}"))?;
        *self.server.lock().unwrap() = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err("the private RabbitMQ node did not answer within 60 s".into())
    }

    /// Stops the node the way its script expects (SIGTERM), waiting until it is gone.
    fn stop(&self) {
        if let Some(mut child) = self.server.lock().unwrap().take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    fn restart(&self) -> Result<(), String> {
        self.stop();
        self.boot()
    }
}

impl Drop for PrivateNode {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The node, or why there is none; `None` after a skip (a failure when `BROKER_TEST_REQUIRE`
/// asks for amqp).
fn private_node() -> Option<Arc<PrivateNode>> {
    skip::or_skip(endpoint::broker_url("amqp"))?;
    skip::or_skip(PrivateNode::start().map_err(|reason| Unavailable::new("amqp", reason)))
        .map(Arc::new)
}

struct Restartable {
    node: Arc<PrivateNode>,
}

#[async_trait]
impl Harness for Restartable {
    async fn broker(&self, settings: Settings) -> Result<Arc<dyn Broker>, Unavailable> {
        let config = AmqpConfig {
            max_receives: settings.max_receives,
            ..AmqpConfig::from_url(&self.node.url()).expect("the node's URL parses")
        };
        let broker = AmqpBroker::connect(config)
            .await
            .map_err(|e| Unavailable::new("amqp", e.to_string()))?;
        Ok(Arc::new(broker))
    }

    fn features(&self) -> Vec<HarnessFeature> {
        vec![HarnessFeature::Restart]
    }

    async fn restart(&self) -> Result<(), String> {
        let node = self.node.clone();
        tokio::task::spawn_blocking(move || node.restart())
            .await
            .map_err(|e| e.to_string())?
    }
}

#[test]
fn restart_loses_nothing() {
    let Some(node) = private_node() else {
        return;
    };
    run_case("restart", "restart_loses_nothing", || Restartable { node });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_reconnects_after_rabbitmq_restarts() {
    let Some(node) = tokio::task::spawn_blocking(private_node).await.unwrap() else {
        return;
    };
    let config = AmqpConfig::from_url(&node.url()).unwrap();
    let broker: Arc<dyn Broker> = Arc::new(AmqpBroker::connect(config).await.expect("connect"));
    let queue = Queue::declare(broker.clone(), "survivor")
        .await
        .expect("declare");
    queue
        .publish(Message::new("before"))
        .await
        .expect("publish");

    let restarting = node.clone();
    tokio::task::spawn_blocking(move || restarting.restart())
        .await
        .unwrap()
        .expect("restart");

    // The old connection is gone; calls fail as retryable until the new one opens.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match queue.publish(Message::new("after")).await {
            Ok(()) => break,
            Err(err) => {
                assert!(err.is_retryable(), "not worth retrying: {err}");
                assert!(Instant::now() < deadline, "never reconnected: {err}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let mut got = Vec::new();
    while got.len() < 2 && Instant::now() < deadline {
        if let Ok(more) = queue.receive(2, Duration::from_millis(500)).await {
            got.extend(more);
        }
    }
    let mut texts: Vec<String> = got
        .iter()
        .map(|d| String::from_utf8_lossy(d.payload()).into_owned())
        .collect();
    texts.sort();
    assert_eq!(texts, ["after", "before"], "a confirmed message was lost");
    queue.ack_all(got).await.expect("ack");
}
