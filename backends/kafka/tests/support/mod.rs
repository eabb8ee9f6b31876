//! A Kafka-protocol broker of a test's own: tansu on a free port, with memory storage, which
//! advertises the address the test chooses (a fault proxy's, say). Stopped on drop.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use conformance_tests::{Unavailable, endpoint};

/// A private tansu broker.
#[derive(Debug)]
pub(crate) struct PrivateTansu {
    process: Child,
    address: SocketAddr,
}

impl PrivateTansu {
    /// Starts tansu listening on a free port of 127.0.0.1 and advertising `advertised` to
    /// clients, and waits until it accepts connections (blocking; well under a second).
    ///
    /// # Errors
    /// [`Unavailable`] when `BROKER_TEST_TANSU` names no tansu, or it did not start.
    pub(crate) fn start(advertised: SocketAddr) -> Result<Self, Unavailable> {
        let tansu = endpoint::tansu()?;
        let address = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| Unavailable::new("kafka", format!("no free port: {e}")))?;
        let process = Command::new(&tansu)
            .args([
                "broker",
                "--listener-url",
                &format!("tcp://{address}"),
                "--advertised-listener-url",
                &format!("tcp://{advertised}"),
                "--storage-engine",
                "memory://tansu/",
            ])
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Unavailable::new("kafka", format!("cannot run {tansu}: {e}")))?;
        let server = Self { process, address };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(address).is_err() {
            if Instant::now() > deadline {
                return Err(Unavailable::new(
                    "kafka",
                    format!("tansu did not listen on {address} within 10 s"),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// Where it listens.
    #[must_use]
    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for PrivateTansu {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
