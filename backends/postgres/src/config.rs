//! Settings shared by the broker and the result store, and their URL form.

use std::{fmt, time::Duration};

use broker_core::{ErrorKind, Operation, Result, urls::redact};
use sqlx::{
    ConnectOptions, Connection,
    postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions},
};
use url::Url;

use crate::error::{connect_error, error, from_sqlx};

/// The longest schema name: derived names (the `LISTEN` channel) must still fit PostgreSQL's
/// 63-byte identifiers.
const MAX_SCHEMA_LEN: usize = 48;

/// Settings of a [`PostgresBroker`](crate::PostgresBroker) or
/// [`PostgresResultStore`](crate::PostgresResultStore).
///
/// Build it with [`PostgresConfig::new`] and struct-update syntax, or from a URL with
/// [`PostgresConfig::from_url`]. `Debug` prints the URL with its password replaced.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// The connection URL (`postgres://user:password@host:port/database?sslmode=...`), with
    /// credentials. Used by the driver only: never logged, never part of an error.
    pub url: String,
    /// The schema holding this crate's tables, created by the migrations when missing.
    /// ASCII letters, digits and `_`, not starting with a digit, at most 48 characters (the
    /// one rule, [`check_schema`]). Default `broker`.
    pub schema: String,
    /// The schema of Celery's result tables (Celery's `database_table_schemas`), created when
    /// missing; `None` (the default) puts them where Celery does by default, in the
    /// connection's search path (usually `public`). Same rule as [`schema`](Self::schema).
    pub result_schema: Option<String>,
    /// The lease a delivery gets at receipt. Default 30 s.
    pub visibility_timeout: Duration,
    /// Receives after which an unacked message is dead-lettered. Default 5.
    pub max_receives: u32,
    /// How often a waiting receive looks at the table when no notification arrives (the
    /// fallback if a `NOTIFY` is lost, for example while the listener reconnects). Default 1 s.
    pub poll_interval: Duration,
    /// How long a deduplication id is remembered after its first publish. Default 5 minutes.
    pub dedup_window: Duration,
    /// How long a task result is kept after it was written. Default 1 day.
    pub result_expires: Duration,
    /// The most connections the pool opens (the `LISTEN` connection of a broker comes on top).
    /// Default 10.
    pub pool_size: u32,
    /// How long a call waits for a free connection before failing with a retryable
    /// `Connection` error. Default 10 s.
    pub acquire_timeout: Duration,
    /// How long opening the first connection may take; `None` waits as long as the operating
    /// system does. Default 5 s.
    pub connect_timeout: Option<Duration>,
}

impl PostgresConfig {
    /// The defaults, connecting to `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: "broker".to_owned(),
            result_schema: None,
            visibility_timeout: Duration::from_secs(30),
            max_receives: 5,
            poll_interval: Duration::from_secs(1),
            dedup_window: Duration::from_secs(300),
            result_expires: Duration::from_secs(24 * 3600),
            pool_size: 10,
            acquire_timeout: Duration::from_secs(10),
            connect_timeout: Some(Duration::from_secs(5)),
        }
    }

    /// The URL with its password replaced by `***`, for logs.
    #[must_use]
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }

    /// Checks the values a connection relies on.
    pub(crate) fn validate(&self, operation: Operation) -> Result<()> {
        let bad = |detail: String| error(ErrorKind::Configuration, operation, detail);
        check_schema(&self.schema).map_err(|reason| bad(format!("schema: {reason}")))?;
        if let Some(schema) = &self.result_schema {
            check_schema(schema).map_err(|reason| bad(format!("result_schema: {reason}")))?;
        }
        if self.max_receives == 0 {
            return Err(bad("max_receives must be at least 1".into()));
        }
        if self.pool_size == 0 {
            return Err(bad("pool_size must be at least 1".into()));
        }
        if self.visibility_timeout.is_zero() || self.poll_interval.is_zero() {
            return Err(bad(
                "visibility_timeout and poll_interval must be longer than zero".into(),
            ));
        }
        Ok(())
    }

    /// The driver's connection options, parsed from [`url`](Self::url).
    pub(crate) fn connect_options(&self, operation: Operation) -> Result<PgConnectOptions> {
        let stripped = self.url.strip_prefix("db+").unwrap_or(&self.url);
        let parsed = Url::parse(stripped).map_err(|e| {
            error(
                ErrorKind::Configuration,
                operation,
                format!("`{}` is not a URL: {e}", self.redacted_url()),
            )
        })?;
        let options = PgConnectOptions::from_url(&parsed).map_err(|e| from_sqlx(operation, e))?;
        // A publish that returned Ok is on disk even if the server's default says otherwise.
        Ok(options.options([("synchronous_commit", "on")]))
    }

    /// Opens one connection within [`connect_timeout`](Self::connect_timeout), so that a
    /// server that cannot be used says why at once (connection refused, authentication
    /// failed, no such database), then a pool of [`pool_size`](Self::pool_size) connections.
    pub(crate) async fn open_pool(&self, operation: Operation) -> Result<PgPool> {
        let options = self.connect_options(operation)?;
        let endpoint = format!("{}:{}", options.get_host(), options.get_port());
        let first = PgConnection::connect_with(&options);
        let first = match self.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, first).await.map_err(|_| {
                error(
                    ErrorKind::Timeout,
                    operation,
                    format!("{endpoint}: no answer within {}s", limit.as_secs_f64()),
                )
            })?,
            None => first.await,
        };
        let first =
            first.map_err(|e| connect_error(operation, &endpoint, options.get_database(), e))?;
        // Closing is a courtesy to the server; the connection is gone either way.
        let _ = first.close().await;
        PgPoolOptions::new()
            .max_connections(self.pool_size)
            .acquire_timeout(self.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(|e| from_sqlx(operation, e))
    }
}

impl Default for PostgresConfig {
    /// The defaults, connecting to the local server's `postgres` database as `postgres`.
    fn default() -> Self {
        Self::new("postgres://postgres@127.0.0.1:5432/postgres")
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &self.redacted_url())
            .field("schema", &self.schema)
            .field("result_schema", &self.result_schema)
            .field("visibility_timeout", &self.visibility_timeout)
            .field("max_receives", &self.max_receives)
            .field("poll_interval", &self.poll_interval)
            .field("dedup_window", &self.dedup_window)
            .field("result_expires", &self.result_expires)
            .field("pool_size", &self.pool_size)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// The one rule for schema names: 1 to 48 ASCII letters, digits or `_`, not starting with a
/// digit, so that the name is safe inside a quoted identifier and derived names fit.
///
/// # Errors
/// What the name breaks, for a message.
pub(crate) fn check_schema(schema: &str) -> std::result::Result<(), String> {
    let valid = !schema.is_empty()
        && schema.len() <= MAX_SCHEMA_LEN
        && schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !schema.starts_with(|c: char| c.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(format!(
            "expected 1 to {MAX_SCHEMA_LEN} ASCII letters, digits or `_`, not starting with a digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_that_could_escape_the_identifier_are_refused() {
        for schema in [
            "",
            "a\"b",
            "9lives",
            "has space",
            &"x".repeat(MAX_SCHEMA_LEN + 1),
        ] {
            let config = PostgresConfig {
                schema: schema.to_owned(),
                ..PostgresConfig::default()
            };
            let err = config.validate(Operation::Connect).expect_err(schema);
            assert_eq!(err.kind(), ErrorKind::Configuration);
        }
        assert!(
            PostgresConfig::default()
                .validate(Operation::Connect)
                .is_ok()
        );
    }
}
