//! Test support: the shared Redis from `BROKER_TEST_REDIS_URL`, private `redis-server`
//! processes for restart and reconnect tests, and key clean-up.

#![allow(dead_code, unreachable_pub)]

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use broker_redis::RedisConfig;
use conformance_tests::{Unavailable, endpoint::broker_url};

/// The service these tests need, as `BROKER_TEST_REQUIRE` names it.
pub const SERVICE: &str = "redis";

/// The shared Redis's URL (`BROKER_TEST_REDIS_URL`), or why there is none.
///
/// # Errors
/// [`Unavailable`] when it is not configured.
pub fn shared() -> Result<String, Unavailable> {
    broker_url(SERVICE)
}

/// The shared Redis's URL; `None` (with the calling test's skip printed) when it is not
/// configured.
///
/// # Panics
/// When it is not configured and `BROKER_TEST_REQUIRE` requires Redis (CI).
pub fn shared_url() -> Option<String> {
    conformance_tests::skip::or_skip(shared())
}

/// A random key prefix, so that concurrent tests never share keys.
pub fn random_prefix() -> String {
    format!("ct:{}:", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A configuration for `url` with a fresh key prefix.
pub fn config(url: &str) -> RedisConfig {
    RedisConfig {
        key_prefix: random_prefix(),
        ..RedisConfig::new(url)
    }
}

/// A configuration on the shared Redis under a fresh key prefix; every key under it is
/// deleted when this is dropped.
pub struct SharedPrefix {
    pub url: String,
    pub config: RedisConfig,
}

impl SharedPrefix {
    /// `None` (after printing why) when no shared Redis is configured; `adjust` sets what the
    /// test needs on top of the fresh configuration.
    pub fn new(adjust: impl FnOnce(RedisConfig) -> RedisConfig) -> Option<Self> {
        let url = shared_url()?;
        let config = adjust(config(&url));
        Some(Self { url, config })
    }
}

impl Drop for SharedPrefix {
    fn drop(&mut self) {
        delete_prefix(&self.url, &self.config.key_prefix);
    }
}

/// Deletes every key under `prefix` (SCAN + DEL, never FLUSH).
pub fn delete_prefix(url: &str, prefix: &str) {
    if prefix.is_empty() {
        return;
    }
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
        return;
    };
    let pattern = format!("{prefix}*");
    let keys: Vec<String> = match redis::cmd("SCAN")
        .cursor_arg(0)
        .arg("MATCH")
        .arg(&pattern)
        .arg("COUNT")
        .arg(1000)
        .clone()
        .iter(&mut conn)
    {
        Ok(iter) => iter.filter_map(Result::ok).collect(),
        Err(_) => return,
    };
    for chunk in keys.chunks(500) {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(chunk).query(&mut conn);
    }
}

/// Sends one inline command and reads the first reply line.
fn inline(port: u16, command: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(format!("{command}\r\n").as_bytes())?;
    let mut buf = [0u8; 256];
    let n = stream.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// A `redis-server` this test process started, on its own port and directory; killed and its
/// directory removed on drop.
#[derive(Debug)]
pub struct PrivateServer {
    port: u16,
    dir: PathBuf,
    durable: bool,
    child: Mutex<Option<Child>>,
}

impl PrivateServer {
    /// Starts a server; `durable` turns on an append-only file fsynced at every write.
    pub fn start(durable: bool) -> Result<Self, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let dir = std::env::temp_dir().join(format!(
            "broker-redis-test-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("temp dir: {e}"))?;
        let server = Self {
            port,
            dir,
            durable,
            child: Mutex::new(None),
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&self) -> Result<(), String> {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--daemonize", "no", "--logfile", ""])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.durable {
            command.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            command.args(["--appendonly", "no"]);
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start redis-server (is it installed?): {e}"))?;
        *self.child.lock().expect("child") = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if inline(self.port, "PING").is_ok_and(|r| r.starts_with("+PONG")) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("redis-server on port {} did not answer", self.port))
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server with SHUTDOWN (waiting for the process to exit).
    pub fn stop(&self) -> Result<(), String> {
        let _ = inline(self.port, "SHUTDOWN");
        let mut guard = self.child.lock().expect("child");
        if let Some(mut child) = guard.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err("redis-server did not stop on SHUTDOWN".into());
                    }
                }
            }
        }
        Ok(())
    }

    /// Stops the server and starts it again on the same port and directory.
    pub fn restart(&self) -> Result<(), String> {
        self.stop()?;
        self.spawn()
    }

    /// Kills every client connection but the killer's own (`CLIENT KILL TYPE normal`): only
    /// this test's clients are connected to a private server.
    pub fn kill_clients(&self) -> Result<String, String> {
        inline(self.port, "CLIENT KILL TYPE normal SKIPME yes").map_err(|e| e.to_string())
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().map(|mut c| c.take()).unwrap_or(None) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
