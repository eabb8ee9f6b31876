//! Opening clients and self-healing connections.

use std::time::Duration;

use broker_core::{Operation, Result};
use redis::{
    Client, IntoConnectionInfo,
    aio::{ConnectionManager, ConnectionManagerConfig},
    io::tcp::TcpSettings,
};

use crate::{RedisConfig, error::from_redis};

/// A client for the configured URL (TLS for `rediss://`, trusting the configured roots when
/// given, else the system's).
///
/// Its sockets set `TCP_NODELAY`: a broker's commands are small and latency-bound, and with
/// Nagle's algorithm a command written while an earlier reply is unacknowledged can wait for
/// the server's delayed ACK (tens, sometimes hundreds of milliseconds).
pub(crate) fn client(config: &RedisConfig) -> Result<Client> {
    config.validate()?;
    let info = config
        .url
        .as_str()
        .into_connection_info()
        .map_err(|e| from_redis(Operation::Connect, &e))?
        .set_tcp_settings(TcpSettings::default().set_nodelay(true));
    if config.url.starts_with("rediss:") {
        // rustls needs a process-wide crypto provider; ring is the one this crate builds with.
        // Installing fails only when one is already installed, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let opened = match &config.tls_root_certificates {
        Some(pem) => Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            },
        ),
        None => Client::open(info),
    };
    opened.map_err(|e| from_redis(Operation::Connect, &e))
}

/// A multiplexed connection that reconnects by itself after the connection drops: five
/// attempts per reconnection, 100 ms doubling (capped at 5 s) between them. Commands in flight
/// when it dropped fail with a retryable error; later ones wait for the new connection, and a
/// command after a failed reconnection starts another. Opening fails after the same attempts.
pub(crate) async fn manager(client: Client, config: &RedisConfig) -> Result<ConnectionManager> {
    let settings = ConnectionManagerConfig::new()
        .set_response_timeout(Some(config.response_timeout))
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(5))
        .set_number_of_retries(5);
    ConnectionManager::new_with_config(client, settings)
        .await
        .map_err(|e| from_redis(Operation::Connect, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_disables_nagles_algorithm() {
        for url in [
            "redis://127.0.0.1:6379/2",
            "rediss://user:secret@example.com:6380",
        ] {
            let client = client(&RedisConfig::new(url)).expect("client");
            let info = client.get_connection_info();
            assert!(info.tcp_settings().nodelay(), "{url} leaves Nagle on");
            assert_eq!(
                info.redis_settings().db(),
                if url.ends_with("/2") { 2 } else { 0 }
            );
        }
    }
}
