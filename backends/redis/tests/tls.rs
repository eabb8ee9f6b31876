//! `rediss://` works end to end: a private `redis-server` listening with TLS only, its
//! certificate signed by a CA made for the test (with the `openssl` command) and trusted
//! through `RedisConfig::tls_root_certificates`, or not checked at all with `ssl_cert_reqs=none`.

use std::{
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use broker_core::{Message, Queue, ResultStore, ResultStoreExt, TaskResult, TaskState};
use broker_redis::{RedisBroker, RedisConfig, RedisResultStore};
use serde_json::json;

struct TlsServer {
    child: Child,
    dir: std::path::PathBuf,
    port: u16,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("the openssl command runs");
    assert!(status.success(), "openssl {args:?}");
}

fn start() -> TlsServer {
    let dir = std::env::temp_dir().join(format!(
        "broker-redis-tls-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=broker-redis test CA",
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--tls-cert-file",
            "server.crt",
            "--tls-key-file",
            "server.key",
        ])
        .args(["--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(&dir)
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server starts");
    let server = TlsServer { child, dir, port };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "redis-server with TLS did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

#[tokio::test]
async fn rediss_url_round_trips_messages_and_results_over_tls() {
    let server = start();
    let config = RedisConfig {
        tls_root_certificates: Some(std::fs::read(server.dir.join("ca.crt")).unwrap()),
        ..RedisConfig::new(format!("rediss://localhost:{}", server.port))
    };
    let broker = RedisBroker::connect(config.clone())
        .await
        .expect("TLS connect");
    let queue = Queue::declare(std::sync::Arc::new(broker), "secure")
        .await
        .unwrap();
    queue.publish(Message::new("over tls")).await.unwrap();
    let got = queue
        .receive_one(Duration::from_secs(5))
        .await
        .unwrap()
        .expect("delivered");
    assert_eq!(got.payload().as_ref(), b"over tls");
    got.ack().await.unwrap();

    let store = RedisResultStore::connect(config)
        .await
        .expect("TLS connect");
    store
        .store(&TaskResult::success("t", json!(1)))
        .await
        .unwrap();
    assert_eq!(store.state("t").await.unwrap().status, TaskState::Success);
}

#[tokio::test]
async fn rediss_refuses_a_server_it_does_not_trust() {
    let server = start();
    let err = RedisBroker::connect(RedisConfig::new(format!(
        "rediss://localhost:{}",
        server.port
    )))
    .await
    .expect_err("the test CA is not among the system's roots");
    assert!(
        err.to_string().contains(&format!(
            "localhost:{}: TLS handshake failed: ",
            server.port
        )),
        "{err}"
    );
}

#[tokio::test]
async fn ssl_cert_reqs_none_accepts_a_server_it_does_not_trust() {
    let server = start();
    let config = RedisConfig::from_url(&format!(
        "rediss://localhost:{}?ssl_cert_reqs=none",
        server.port
    ))
    .expect("the URL parses");
    let broker = RedisBroker::connect(config)
        .await
        .expect("no certificate check, so the untrusted server is accepted");
    let queue = Queue::declare(std::sync::Arc::new(broker), "unchecked")
        .await
        .unwrap();
    queue.publish(Message::new("unverified tls")).await.unwrap();
}
