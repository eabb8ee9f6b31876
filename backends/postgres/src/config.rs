//! Settings shared by the broker and the result store, and their URL form.

use std::{fmt, time::Duration};

use broker_core::urls::{PostgresUrl, ResultBackendUrl};
use broker_core::{ErrorKind, Operation, Result};
use sqlx::{
    ConnectOptions,
    postgres::{PgConnectOptions, PgPool, PgPoolOptions},
};
use url::Url;

use crate::error::{error, from_sqlx, redact};

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
    /// ASCII letters, digits and `_`, not starting with a digit, at most 48 characters.
    /// Default `broker`.
    pub schema: String,
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
}

impl PostgresConfig {
    /// The defaults, connecting to `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: "broker".to_owned(),
            visibility_timeout: Duration::from_secs(30),
            max_receives: 5,
            poll_interval: Duration::from_secs(1),
            dedup_window: Duration::from_secs(300),
            result_expires: Duration::from_secs(24 * 3600),
            pool_size: 10,
            acquire_timeout: Duration::from_secs(10),
        }
    }

    /// Reads a broker or result-backend URL (`postgres://`, `postgresql://` or Celery's
    /// `db+postgresql://` / `db+postgres://`) with the core's parser: `schema`,
    /// `visibility_timeout`, `max_receives`, `dedup_window`, `poll_interval` and
    /// `result_expires` set the fields of the same name; libpq options (`sslmode`,
    /// `application_name`, ...) go to the driver; any other option is an error.
    ///
    /// # Errors
    /// [`ErrorKind::Configuration`] for another scheme, an unreadable URL or a bad value; the
    /// message never contains the password.
    pub fn from_url(url: &str) -> Result<Self> {
        let bad = |detail: String| error(ErrorKind::Configuration, Operation::ParseUrl, detail);
        match ResultBackendUrl::parse(url) {
            Ok(ResultBackendUrl::Postgres(parsed)) => Self::from_parsed(&parsed),
            Ok(other) => Err(bad(format!(
                "a {} URL is not a PostgreSQL URL; use postgres://, postgresql:// or db+postgresql://",
                other.backend_name()
            ))),
            Err(e) => Err(bad(e.to_string())),
        }
    }

    /// The settings a URL parsed by the core asks for; the rest stay at their defaults.
    ///
    /// # Errors
    /// [`ErrorKind::Configuration`] for a value out of range (see the field docs).
    pub fn from_parsed(url: &PostgresUrl) -> Result<Self> {
        let defaults = Self::new(url.connection_string());
        let config = Self {
            schema: url
                .schema
                .clone()
                .unwrap_or_else(|| defaults.schema.clone()),
            visibility_timeout: url
                .queue
                .visibility_timeout
                .unwrap_or(defaults.visibility_timeout),
            max_receives: url.queue.max_receives.unwrap_or(defaults.max_receives),
            dedup_window: url.queue.dedup_window.unwrap_or(defaults.dedup_window),
            poll_interval: url.poll_interval.unwrap_or(defaults.poll_interval),
            result_expires: url.result_expires.unwrap_or(defaults.result_expires),
            ..defaults
        };
        config.validate(Operation::ParseUrl)?;
        Ok(config)
    }

    /// The URL with its password replaced by `***`, for logs.
    #[must_use]
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }

    /// Checks the values a connection relies on.
    pub(crate) fn validate(&self, operation: Operation) -> Result<()> {
        let bad = |detail: String| error(ErrorKind::Configuration, operation, detail);
        let schema_ok = !self.schema.is_empty()
            && self.schema.len() <= 48
            && self
                .schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !self.schema.starts_with(|c: char| c.is_ascii_digit());
        if !schema_ok {
            return Err(bad(format!(
                "schema `{}` must be 1 to 48 ASCII letters, digits or `_`, not starting with a digit",
                self.schema
            )));
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

    /// Opens a pool of [`pool_size`](Self::pool_size) connections and checks that one opens.
    pub(crate) async fn open_pool(&self, operation: Operation) -> Result<PgPool> {
        let options = self.connect_options(operation)?;
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
            .field("visibility_timeout", &self.visibility_timeout)
            .field("max_receives", &self.max_receives)
            .field("poll_interval", &self.poll_interval)
            .field("dedup_window", &self.dedup_window)
            .field("result_expires", &self.result_expires)
            .field("pool_size", &self.pool_size)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn celery_url_with_options_sets_fields_and_keeps_driver_parameters() {
        let config = PostgresConfig::from_url(
            "db+postgresql://app:s3cret@db.internal:6543/tasks?schema=celery_results\
             &result_expires=60&visibility_timeout=2.5&max_receives=7&sslmode=prefer",
        )
        .expect("valid");
        assert_eq!(config.schema, "celery_results");
        assert_eq!(config.result_expires, Duration::from_secs(60));
        assert_eq!(config.visibility_timeout, Duration::from_millis(2500));
        assert_eq!(config.max_receives, 7);
        assert!(
            config
                .url
                .ends_with("@db.internal:6543/tasks?sslmode=prefer"),
            "{}",
            config.url
        );
        let options = config.connect_options(Operation::Connect).expect("options");
        assert_eq!(options.get_host(), "db.internal");
        assert_eq!(options.get_port(), 6543);
        assert_eq!(options.get_database(), Some("tasks"));
    }

    #[test]
    fn debug_and_errors_never_show_the_password() {
        let config = PostgresConfig::from_url("postgres://app:s3cret@db/tasks").expect("valid");
        assert!(!format!("{config:?}").contains("s3cret"));
        assert!(format!("{config:?}").contains("app:***@db"));
        let err = PostgresConfig::from_url("postgres://app:s3cret@db/tasks?max_receives=many")
            .expect_err("bad value");
        assert_eq!(err.kind(), ErrorKind::Configuration);
        assert!(!err.to_string().contains("s3cret"), "{err}");
        let err = PostgresConfig::from_url("mysql://app:s3cret@db/tasks").expect_err("scheme");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn schema_names_that_could_escape_the_identifier_are_refused() {
        for schema in ["", "a\"b", "9lives", "has space", &"x".repeat(49)] {
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
