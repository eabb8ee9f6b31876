//! A connection that cannot be opened says where and why, at once, in one line, and never
//! with the password.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use broker_core::ErrorKind;
use broker_redis::{RedisBroker, RedisConfig};

/// A port nothing listens on: bound, then freed.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A private `redis-server` that requires a password, stopped on drop.
struct PasswordServer {
    child: Child,
    port: u16,
}

impl PasswordServer {
    fn start(password: &str) -> Self {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--requirepass",
                password,
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }
}

impl Drop for PasswordServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn refusal(url: &str) -> (broker_core::Error, Duration) {
    let started = Instant::now();
    let err = RedisBroker::connect(RedisConfig::from_url(url).expect("the URL parses"))
        .await
        .expect_err("the connection cannot be opened");
    (err, started.elapsed())
}

#[tokio::test]
async fn a_closed_port_is_connection_refused_at_once() {
    let port = free_port();
    let (err, took) = refusal(&format!("redis://:pw@127.0.0.1:{port}")).await;
    assert_eq!(
        err.to_string(),
        format!("redis: connect failed: connection failed: 127.0.0.1:{port}: connection refused")
    );
    assert!(err.is_retryable());
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn tls_to_a_server_that_does_not_answer_tls_is_a_failed_handshake_within_seconds() {
    // Like redis-server on its plain port, this server reads a TLS hello and answers nothing.
    let silent = TcpListener::bind("127.0.0.1:0").expect("a listener");
    let port = silent.local_addr().expect("its address").port();
    let (err, took) = refusal(&format!("rediss://127.0.0.1:{port}")).await;
    assert_eq!(err.kind(), ErrorKind::Configuration, "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "redis: connect failed: configuration error: 127.0.0.1:{port}: TLS handshake failed"
        )),
        "{err}"
    );
    assert!(took < Duration::from_secs(8), "{took:?}");
    drop(silent);
}

#[tokio::test]
async fn a_wrong_password_is_an_authentication_failure_that_hides_the_password() {
    let server = PasswordServer::start("right-one");
    let (err, _) = refusal(&format!("redis://:wrong-one@127.0.0.1:{}", server.port)).await;
    assert_eq!(
        err.to_string(),
        format!(
            "redis: connect failed: configuration error: 127.0.0.1:{}: authentication failed \
             (check the user name and password)",
            server.port
        )
    );
    assert!(!format!("{err:?}").contains("wrong-one"));
    let right = RedisConfig::from_url(&format!("redis://:right-one@127.0.0.1:{}", server.port))
        .expect("the URL parses");
    RedisBroker::connect(right)
        .await
        .expect("the right password opens the connection");
}
