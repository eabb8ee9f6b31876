//! A RabbitMQ node of a test's own, started from the installed `rabbitmq-server` with its own
//! port, node name and data directory, never the machine's shared one. Booting takes seconds.
//! Dropping the node stops it and removes its directory, also when the test failed.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::Duration,
};

use super::certificates::TestCertificates;

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// How long a node may take to listen.
const BOOT_WITHIN: Duration = Duration::from_secs(60);

/// How the node listens for clients.
#[derive(Debug)]
pub enum Listener {
    /// Plain AMQP.
    Plain,
    /// AMQP over TLS only, presenting the certificate of a CA made for the test; clients need
    /// no certificate of their own.
    Tls(TestCertificates),
}

/// A running private node.
#[derive(Debug)]
pub struct PrivateNode {
    dir: PathBuf,
    port: u16,
    dist_port: u16,
    name: String,
    listener: Listener,
    server: Mutex<Option<Child>>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn node_config(port: u16, listener: &Listener) -> String {
    let shared = "loopback_users = none\n";
    match listener {
        Listener::Plain => format!("listeners.tcp.default = 127.0.0.1:{port}\n{shared}"),
        Listener::Tls(certificates) => {
            let path = |p: &Path| p.display().to_string();
            format!(
                "listeners.tcp = none\n\
                 listeners.ssl.default = 127.0.0.1:{port}\n\
                 ssl_options.cacertfile = {}\n\
                 ssl_options.certfile = {}\n\
                 ssl_options.keyfile = {}\n\
                 ssl_options.verify = verify_none\n\
                 ssl_options.fail_if_no_peer_cert = false\n{shared}",
                path(&certificates.ca),
                path(&certificates.certificate),
                path(&certificates.key),
            )
        }
    }
}

impl PrivateNode {
    /// Boots a node listening for plain AMQP.
    ///
    /// # Errors
    /// Why there is none: `rabbitmq-server` missing, or the node did not listen in time.
    pub fn start() -> Result<Self, String> {
        Self::start_with(|_| Ok(Listener::Plain))
    }

    /// Boots a node listening for AMQP over TLS only, with certificates made for it.
    ///
    /// # Errors
    /// As [`PrivateNode::start`], or why the certificates could not be made.
    pub fn start_tls() -> Result<Self, String> {
        Self::start_with(|dir| TestCertificates::make(dir).map(Listener::Tls))
    }

    fn start_with(
        listener: impl FnOnce(&Path) -> Result<Listener, String>,
    ) -> Result<Self, String> {
        if !Path::new(SERVER).exists() {
            return Err(format!("{SERVER} is not installed"));
        }
        let id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        let dir = std::env::temp_dir().join(format!("ct-rabbit-{id}"));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        // From here on, dropping the node removes the directory.
        let mut node = Self {
            port: free_port(),
            dist_port: free_port(),
            name: format!("ct{id}@localhost"),
            dir,
            listener: Listener::Plain,
            server: Mutex::new(None),
        };
        node.listener = listener(&node.dir)?;
        std::fs::write(
            node.dir.join("rabbitmq.conf"),
            node_config(node.port, &node.listener),
        )
        .map_err(|e| e.to_string())?;
        node.boot()?;
        Ok(node)
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA that signed a TLS node's certificate.
    pub fn ca_certificate(&self) -> Option<&Path> {
        match &self.listener {
            Listener::Plain => None,
            Listener::Tls(certificates) => Some(&certificates.ca),
        }
    }

    /// A plain node's URL, with the default user.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Starts the node and waits (at most a minute) until it accepts connections.
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
        let deadline = std::time::Instant::now() + BOOT_WITHIN;
        while std::time::Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(Ok(Some(status))) =
                self.server.lock().unwrap().as_mut().map(Child::try_wait)
            {
                return Err(format!(
                    "the private RabbitMQ node exited ({status}); its log ends:\n{}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "the private RabbitMQ node did not listen within {}s; its log ends:\n{}",
            BOOT_WITHIN.as_secs(),
            self.log_tail()
        ))
    }

    /// The last lines the node logged (its directory goes when the node is dropped).
    fn log_tail(&self) -> String {
        let log = self.dir.join("log").join(format!("{}.log", self.name));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Stops the node the way its script expects (SIGTERM), waiting until it is gone.
    pub fn stop(&self) {
        if let Some(mut child) = self.server.lock().unwrap().take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Stops the node and boots it again on the same port, with the same data.
    ///
    /// # Errors
    /// As [`PrivateNode::start`].
    pub fn restart(&self) -> Result<(), String> {
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
