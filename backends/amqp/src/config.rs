//! Settings of the RabbitMQ broker.

use std::{fmt, path::PathBuf, time::Duration};

use broker_core::urls::{HostPort, Secret};

/// Where the broker connects and how it behaves. Built by
/// [`AmqpConfig::from_url`](crate::AmqpConfig::from_url) or by hand; `Debug` prints no
/// password.
#[derive(Clone, PartialEq, Eq)]
pub struct AmqpConfig {
    /// The server. Default `localhost:5672` (`5671` for TLS).
    pub endpoint: HostPort,
    /// Whether the connection uses TLS (`amqps://`), checking the server's certificate against
    /// the system's roots and [`AmqpConfig::ca_certificates`].
    pub tls: bool,
    /// Default `guest`, RabbitMQ's (and kombu's) default user.
    pub username: String,
    /// Default `guest`.
    pub password: Secret,
    /// The virtual host. Default `/`.
    pub vhost: String,
    /// Heartbeat interval in seconds proposed to the server; `Some(0)` disables heartbeats,
    /// `None` accepts the server's (60 s on RabbitMQ). A dead peer is noticed after about two
    /// intervals.
    pub heartbeat: Option<u16>,
    /// The name the connection shows in RabbitMQ's management UI. Default none.
    pub connection_name: Option<String>,
    /// How long opening a connection may take before it fails. Default 5 s.
    pub connect_timeout: Duration,
    /// Publishes whose confirm may be outstanding at once on one connection. Default 1000:
    /// on a persistent queue an awaited confirm per message caps publishing near 1,000/s,
    /// while a window of 1,000 reaches the broker's disk rate.
    pub confirm_window: usize,
    /// Receives after which a message that keeps coming back is dead-lettered. Default 5.
    pub max_receives: u32,
    /// PEM file of certificate authorities to trust for `amqps://` besides the system's roots
    /// (a private CA). A file without a PEM certificate fails the connection.
    pub ca_certificates: Option<PathBuf>,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        Self {
            endpoint: HostPort {
                host: "localhost".into(),
                port: 5672,
            },
            tls: false,
            username: "guest".into(),
            password: Secret::new("guest"),
            vhost: "/".into(),
            heartbeat: None,
            connection_name: None,
            connect_timeout: Duration::from_secs(5),
            confirm_window: 1000,
            max_receives: 5,
            ca_certificates: None,
        }
    }
}

impl fmt::Debug for AmqpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpConfig")
            .field("endpoint", &self.endpoint.to_string())
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("vhost", &self.vhost)
            .field("heartbeat", &self.heartbeat)
            .field("connection_name", &self.connection_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("confirm_window", &self.confirm_window)
            .field("max_receives", &self.max_receives)
            .field("ca_certificates", &self.ca_certificates)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_password() {
        let config = AmqpConfig {
            password: Secret::new("hunter2"),
            ..AmqpConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
}
