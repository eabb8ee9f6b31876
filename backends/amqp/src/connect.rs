//! One connection to RabbitMQ at a time, opened again with backoff after it drops.
//!
//! A [`Link`] hands out the current [`Session`] (connection, confirmed publish channel and the
//! consumers opened on it). When a call finds the connection gone, it opens a new one; when
//! opening fails, calls fail fast with a retryable error until the backoff (100 ms doubling
//! up to 10 s) has passed, so a broker restart is ridden out by the callers' own retries
//! without a storm of connection attempts. Nothing here retries an operation.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use broker_core::{Error, ErrorKind, Operation, Result};
use lapin::{
    Channel, Connection, ConnectionProperties,
    options::ConfirmSelectOptions,
    tcp::OwnedTLSConfig,
    uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo},
};
use tokio::time::Instant;

use crate::{
    AmqpConfig, BACKEND,
    consumer::Consumer,
    error::{closed, connect_error, connect_timeout, from_lapin},
    window::ConfirmWindow,
};

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// One open connection and what lives on it.
pub(crate) struct Session {
    /// Distinguishes this connection's delivery tags from an earlier one's.
    pub(crate) id: u64,
    pub(crate) connection: Connection,
    /// In confirm mode; shared by every publish.
    pub(crate) publisher: Channel,
    /// Publishes on `publisher` whose confirm is outstanding, at most
    /// [`AmqpConfig::confirm_window`].
    pub(crate) window: ConfirmWindow,
    /// One consumer per queue received from, each on its own channel.
    pub(crate) consumers: tokio::sync::Mutex<HashMap<String, Arc<Consumer>>>,
}

impl Session {
    fn usable(&self) -> bool {
        self.connection.status().connected() && self.publisher.status().connected()
    }
}

struct Backoff {
    failures: u32,
    next_attempt: Option<Instant>,
    last_error: Option<String>,
}

/// The broker's way to RabbitMQ: the current session, reconnection and closing.
pub(crate) struct Link {
    config: AmqpConfig,
    current: Mutex<Option<Arc<Session>>>,
    connecting: tokio::sync::Mutex<Backoff>,
    closed: AtomicBool,
    sessions: AtomicU64,
}

impl Link {
    /// Connects now, so that a wrong URL or an unreachable server fails at start-up.
    pub(crate) async fn open(config: AmqpConfig) -> Result<Self> {
        let link = Self {
            config,
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(Backoff {
                failures: 0,
                next_attempt: None,
                last_error: None,
            }),
            closed: AtomicBool::new(false),
            sessions: AtomicU64::new(0),
        };
        let session = link.connect().await?;
        *link.current.lock().expect("session slot") = Some(session);
        Ok(link)
    }

    pub(crate) fn config(&self) -> &AmqpConfig {
        &self.config
    }

    /// The session that is open now, if any, without connecting. After
    /// [`close`](Self::close): [`ErrorKind::Closed`].
    pub(crate) fn current(&self, operation: Operation) -> Result<Option<Arc<Session>>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed(operation));
        }
        Ok(self.current.lock().expect("session slot").clone())
    }

    /// The open session, connecting again if the last one dropped.
    ///
    /// # Errors
    /// [`ErrorKind::Closed`] after [`close`](Self::close); a retryable connection error while
    /// the server cannot be reached (at once, without an attempt, during the backoff).
    pub(crate) async fn session(&self, operation: Operation) -> Result<Arc<Session>> {
        if let Some(session) = self.current(operation)?
            && session.usable()
        {
            return Ok(session);
        }
        let mut backoff = self.connecting.lock().await;
        if let Some(session) = self.current(operation)?
            && session.usable()
        {
            return Ok(session);
        }
        if let Some(at) = backoff.next_attempt
            && Instant::now() < at
        {
            let cause = backoff
                .last_error
                .as_ref()
                .map_or_else(String::new, |e| format!(": {e}"));
            return Err(Error::new(
                ErrorKind::Connection,
                BACKEND,
                operation,
                format!(
                    "reconnecting to {} in {:.1}s{cause}",
                    self.config.endpoint,
                    (at - Instant::now()).as_secs_f64()
                ),
            ));
        }
        match self.connect().await {
            Ok(session) => {
                tracing::info!(endpoint = %self.config.endpoint, "connected to RabbitMQ");
                *backoff = Backoff {
                    failures: 0,
                    next_attempt: None,
                    last_error: None,
                };
                let old = self
                    .current
                    .lock()
                    .expect("session slot")
                    .replace(session.clone());
                if let Some(old) = old {
                    tokio::spawn(async move {
                        let _ = old.connection.close(320, "replaced".into()).await;
                    });
                }
                Ok(session)
            }
            Err(err) => {
                let wait = FIRST_BACKOFF
                    .saturating_mul(1 << backoff.failures.min(10))
                    .min(MAX_BACKOFF);
                backoff.failures += 1;
                backoff.next_attempt = Some(Instant::now() + wait);
                backoff.last_error = Some(err.detail().to_owned());
                tracing::warn!(error = %err, ?wait, "cannot reach RabbitMQ; backing off");
                Err(err)
            }
        }
    }

    /// Forgets `session` after an error that may have ended it; the next call reconnects if
    /// it is really gone.
    pub(crate) fn check(&self, session: &Session) {
        if !session.usable() {
            let mut current = self.current.lock().expect("session slot");
            if current.as_ref().is_some_and(|s| s.id == session.id) {
                *current = None;
            }
        }
    }

    /// Closes the connection: its unacked deliveries go back to their queues. Later calls
    /// fail with [`ErrorKind::Closed`]. Idempotent.
    pub(crate) async fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        let session = self.current.lock().expect("session slot").take();
        if let Some(session) = session
            && session.connection.status().connected()
        {
            session
                .connection
                .close(200, "closing".into())
                .await
                .map_err(|e| from_lapin(Operation::Close, &e))?;
        }
        Ok(())
    }

    async fn connect(&self) -> Result<Arc<Session>> {
        let config = &self.config;
        let endpoint = config.endpoint.to_string();
        let uri = AMQPUri {
            scheme: if config.tls {
                AMQPScheme::AMQPS
            } else {
                AMQPScheme::AMQP
            },
            authority: AMQPAuthority {
                userinfo: AMQPUserInfo {
                    username: config.username.clone(),
                    password: config.password.expose().to_owned(),
                },
                host: config.endpoint.host.clone(),
                port: config.endpoint.port,
            },
            vhost: config.vhost.clone(),
            query: AMQPQueryString {
                heartbeat: config.heartbeat,
                ..AMQPQueryString::default()
            },
        };
        let mut properties = ConnectionProperties::default();
        if let Some(name) = &config.connection_name {
            properties = properties.with_connection_name(name.as_str().into());
        }
        let cert_chain = match &config.ca_certificates {
            None => None,
            Some(path) => {
                let refused = |why: String| {
                    Error::new(
                        ErrorKind::Configuration,
                        BACKEND,
                        Operation::Connect,
                        format!("ssl_ca_certs {}: {why}", path.display()),
                    )
                };
                let pem = std::fs::read_to_string(path)
                    .map_err(|e| refused(format!("cannot be read: {e}")))?;
                // The TLS client skips what it cannot parse: a file without a certificate
                // would otherwise trust nothing more, silently.
                if !pem.contains("-----BEGIN CERTIFICATE-----") {
                    return Err(refused("holds no PEM certificate".into()));
                }
                Some(pem)
            }
        };
        let tls = OwnedTLSConfig {
            identity: None,
            cert_chain,
        };
        let runtime =
            lapin::runtime::default_runtime().map_err(|e| connect_error(&endpoint, &e))?;
        let opening = Connection::connect_uri_with_config(uri, properties, tls, runtime);
        let connection = tokio::time::timeout(config.connect_timeout, opening)
            .await
            .map_err(|_| connect_timeout(&endpoint, config.connect_timeout.as_secs_f64()))?
            .map_err(|e| connect_error(&endpoint, &e))?;
        let publisher = connection
            .create_channel()
            .await
            .map_err(|e| connect_error(&endpoint, &e))?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| connect_error(&endpoint, &e))?;
        Ok(Arc::new(Session {
            id: self.sessions.fetch_add(1, Ordering::Relaxed) + 1,
            connection,
            publisher,
            window: ConfirmWindow::new(config.confirm_window),
            consumers: tokio::sync::Mutex::default(),
        }))
    }
}
