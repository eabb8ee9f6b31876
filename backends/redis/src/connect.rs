//! Opening clients and self-healing connections, and saying exactly why one did not open.

use std::time::Duration;

use broker_core::{Error, ErrorKind, Operation, Result};
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, IntoConnectionInfo, RedisError,
    aio::{ConnectionManager, ConnectionManagerConfig},
    io::tcp::TcpSettings,
};

use crate::{BACKEND, RedisConfig, error::from_redis};

/// How long opening one connection (TCP, TLS handshake, `AUTH`/`HELLO`) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client for the configured URL (TLS for `rediss://`, trusting the configured roots when
/// given, else the system's; checking no certificate when `verify_certificate` is off).
///
/// Its sockets set `TCP_NODELAY`: a broker's commands are small and latency-bound, and with
/// Nagle's algorithm a command written while an earlier reply is unacknowledged can wait for
/// the server's delayed ACK (tens, sometimes hundreds of milliseconds).
pub(crate) fn client(config: &RedisConfig) -> Result<Client> {
    config.validate()?;
    let mut info = config
        .url
        .as_str()
        .into_connection_info()
        .map_err(|e| from_redis(Operation::Connect, &e))?
        .set_tcp_settings(TcpSettings::default().set_nodelay(true));
    if let ConnectionAddr::TcpTls {
        host,
        port,
        tls_params,
        ..
    } = info.addr().clone()
    {
        // rustls needs a process-wide crypto provider; ring is the one this crate builds with.
        // Installing fails only when one is already installed, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        info = info.set_addr(ConnectionAddr::TcpTls {
            host,
            port,
            insecure: !config.verify_certificate,
            tls_params,
        });
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
/// command after a failed reconnection starts another.
///
/// Opening tries once, within 5 s, and fails with one line that names the endpoint and the
/// root cause (connection refused, TLS handshake failed, authentication failed, ...): a
/// first connection that fails for such a cause would fail the same way on every retry.
pub(crate) async fn manager(client: Client, config: &RedisConfig) -> Result<ConnectionManager> {
    let first = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(CONNECT_TIMEOUT));
    if let Err(err) = client
        .get_multiplexed_async_connection_with_config(&first)
        .await
    {
        return Err(connect_error(&client, &err));
    }
    let settings = ConnectionManagerConfig::new()
        .set_response_timeout(Some(config.response_timeout))
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(5))
        .set_number_of_retries(5);
    ConnectionManager::new_with_config(client.clone(), settings)
        .await
        .map_err(|e| connect_error(&client, &e))
}

/// `<host:port>: <root cause>`, as a `Connection` error (retryable) when the server may come
/// back and a `Configuration` error when only a change of settings helps.
fn connect_error(client: &Client, err: &RedisError) -> Error {
    let addr = client.get_connection_info().addr();
    let endpoint = addr.to_string();
    let tls = matches!(addr, ConnectionAddr::TcpTls { .. });
    let text = err.to_string().to_ascii_lowercase();
    let (kind, cause) = if err.is_connection_refusal() && text.contains("refused") {
        (ErrorKind::Connection, "connection refused".to_owned())
    } else if tls && err.is_timeout() {
        (
            ErrorKind::Configuration,
            format!(
                "TLS handshake failed: no TLS answer within {}s (does the server speak TLS on \
                 this port? use redis:// if not)",
                CONNECT_TIMEOUT.as_secs()
            ),
        )
    } else if tls && (text.contains("corrupt message") || text.contains("invalidcontenttype")) {
        (
            ErrorKind::Configuration,
            "TLS handshake failed: the server does not speak TLS (use redis://)".to_owned(),
        )
    } else if tls && text.contains("certificate") {
        (
            ErrorKind::Configuration,
            format!(
                "TLS handshake failed: {}",
                from_redis(Operation::Connect, err).detail()
            ),
        )
    } else if err.is_timeout() {
        (
            ErrorKind::Timeout,
            format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
        )
    } else if err.kind() == redis::ErrorKind::AuthenticationFailed
        || text.contains("wrongpass")
        || text.contains("noauth")
    {
        (
            ErrorKind::Configuration,
            "authentication failed (check the user name and password)".to_owned(),
        )
    } else if text.contains("failed to lookup address") || text.contains("name or service") {
        (
            ErrorKind::Connection,
            "cannot resolve the host name".to_owned(),
        )
    } else {
        let mapped = from_redis(Operation::Connect, err);
        (mapped.kind(), mapped.detail().to_owned())
    };
    Error::new(
        kind,
        BACKEND,
        Operation::Connect,
        format!("{endpoint}: {cause}"),
    )
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

    #[test]
    fn certificate_checks_follow_the_setting() {
        for verify in [true, false] {
            let config = RedisConfig {
                verify_certificate: verify,
                ..RedisConfig::new("rediss://example.com:6380")
            };
            let client = client(&config).expect("client");
            assert!(
                matches!(client.get_connection_info().addr(), ConnectionAddr::TcpTls { insecure, .. } if *insecure != verify)
            );
        }
    }
}
