//! `postgres://`, `postgresql://` and Celery's `db+postgresql://` URLs, read into a
//! [`PostgresConfig`].
//!
//! `postgres[ql]://[user[:password]@]host[:port][/database][?options]`, port 5432 by default.
//! As a result backend, Celery's `SQLAlchemy` forms work too: `db+postgresql://`,
//! `db+postgres://` and a driver suffix (`postgresql+psycopg2://`, `db+postgresql+psycopg://`),
//! all meaning the same. Options:
//!
//! | option | meaning | default |
//! |---|---|---|
//! | `schema` | schema holding the broker's tables, created when missing (see [`PostgresConfig::schema`]) | `broker` |
//! | `result_schema` | schema holding Celery's result tables (Celery's `database_table_schemas`), created when missing | the search path (`public`), as Celery |
//! | `visibility_timeout` | seconds a delivery stays leased | 30 |
//! | `max_receives` | receives after which a message is dead-lettered | 5 |
//! | `dedup_window` | seconds a deduplication id is remembered | 300 |
//! | `poll_interval` | seconds between looks at the table when no notification arrives | 1 |
//! | `result_expires` | seconds a task result is kept | 86400 |
//! | `connect_timeout` | whole seconds opening a connection may take; 0 waits forever (libpq's meaning) | 5 |
//! | `sslmode` | libpq's: `disable`, `allow`, `prefer`, `require`, `verify-ca`, `verify-full` | `prefer` |
//! | `sslrootcert`, `sslcert`, `sslkey` | libpq's: files of the CA, the client certificate and its key | none |
//! | `application_name` | shown in `pg_stat_activity` | none |
//! | `options` | libpq's: server settings such as `-c search_path=x` | none |

use std::time::Duration;

use broker_core::urls::{UrlError, UrlKind, UrlParts, encode};

use crate::{PostgresConfig, config::check_schema};

/// The schemes the PostgreSQL backend answers as a broker.
pub const BROKER_SCHEMES: &[&str] = &["postgres", "postgresql"];

/// The schemes the PostgreSQL backend answers as a result backend (a `+driver` suffix is
/// accepted on each, see [`answers`]).
pub const RESULT_SCHEMES: &[&str] = &["db+postgresql", "db+postgres", "postgresql", "postgres"];

/// The options a PostgreSQL URL may carry.
pub const OPTIONS: &[&str] = &[
    "schema",
    "result_schema",
    "visibility_timeout",
    "max_receives",
    "dedup_window",
    "poll_interval",
    "result_expires",
    "connect_timeout",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "application_name",
    "options",
];

/// The options handed to the driver as they are.
const DRIVER_OPTIONS: &[&str] = &[
    "sslrootcert",
    "sslcert",
    "sslkey",
    "application_name",
    "options",
];

const SSLMODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

/// Whether `scheme` is a PostgreSQL scheme for `kind`: `postgres` and `postgresql` for both;
/// as a result backend also with a `db+` prefix, and each with a `+driver` suffix.
#[must_use]
pub fn answers(kind: UrlKind, scheme: &str) -> bool {
    let rest = match (kind, scheme.strip_prefix("db+")) {
        (UrlKind::Broker, Some(_)) => return false,
        (_, Some(rest)) => rest,
        (_, None) => scheme,
    };
    let (base, driver) = match rest.split_once('+') {
        Some((base, driver)) => (base, Some(driver)),
        None => (rest, None),
    };
    let driver_ok = match driver {
        None => true,
        Some(driver) => {
            kind == UrlKind::ResultBackend
                && !driver.is_empty()
                && driver
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }
    };
    matches!(base, "postgres" | "postgresql") && driver_ok
}

impl PostgresConfig {
    /// The settings a PostgreSQL URL (any form of [`answers`]) asks for; what it does not
    /// say stays at its default.
    ///
    /// # Errors
    /// [`UrlError`] for another scheme, a malformed URL, an unknown option or an unusable
    /// value. The message never contains the password.
    pub fn from_url(url: &str) -> Result<Self, UrlError> {
        let parts = UrlParts::parse(url)?;
        if !answers(UrlKind::ResultBackend, parts.scheme()) {
            return Err(UrlError::malformed(format!(
                "`{}://` is not a PostgreSQL URL; use postgres://, postgresql:// or \
                 db+postgresql://",
                parts.scheme()
            )));
        }
        let endpoint = parts.host(5432)?;
        let database = parts.path("the database name")?;
        if database.as_deref().is_some_and(|db| db.contains('/')) {
            return Err(UrlError::malformed(
                "the database name in the path must be one segment (encode `/` as %2F)",
            ));
        }
        let options = parts.options(OPTIONS)?;
        let defaults = Self::default();
        let mut driver_options = Vec::new();
        if let Some(mode) = options.one_of("sslmode", SSLMODES)? {
            driver_options.push(("sslmode", mode.to_owned()));
        }
        for name in DRIVER_OPTIONS {
            if let Some(value) = options.text(name) {
                driver_options.push((name, value));
            }
        }
        let config = Self {
            url: driver_url(
                &parts,
                &endpoint.to_string(),
                database.as_deref(),
                &driver_options,
            ),
            schema: options
                .parsed("schema", |schema| {
                    check_schema(schema).map(|()| schema.to_owned())
                })?
                .unwrap_or(defaults.schema),
            result_schema: options.parsed("result_schema", |schema| {
                check_schema(schema).map(|()| schema.to_owned())
            })?,
            visibility_timeout: options
                .seconds("visibility_timeout")?
                .unwrap_or(defaults.visibility_timeout),
            max_receives: options
                .count("max_receives")?
                .unwrap_or(defaults.max_receives),
            dedup_window: options
                .seconds("dedup_window")?
                .unwrap_or(defaults.dedup_window),
            poll_interval: options
                .seconds("poll_interval")?
                .unwrap_or(defaults.poll_interval),
            result_expires: options
                .seconds("result_expires")?
                .unwrap_or(defaults.result_expires),
            connect_timeout: match options.number::<u32>("connect_timeout", 0..=u32::MAX)? {
                None => defaults.connect_timeout,
                Some(0) => None,
                Some(secs) => Some(Duration::from_secs(u64::from(secs))),
            },
            ..defaults
        };
        options.finish()?;
        Ok(config)
    }
}

/// `postgres://user:password@host:port/database?driver options`, for the driver.
fn driver_url(
    parts: &UrlParts,
    endpoint: &str,
    database: Option<&str>,
    driver_options: &[(&str, String)],
) -> String {
    let mut url = String::from("postgres://");
    if parts.username().is_some() || parts.password().is_some() {
        if let Some(user) = parts.username() {
            url.push_str(&encode(user));
        }
        if let Some(password) = parts.password() {
            url.push(':');
            url.push_str(&encode(password.expose()));
        }
        url.push('@');
    }
    url.push_str(endpoint);
    if let Some(database) = database {
        url.push('/');
        url.push_str(&encode(database));
    }
    for (index, (name, value)) in driver_options.iter().enumerate() {
        url.push(if index == 0 { '?' } else { '&' });
        url.push_str(name);
        url.push('=');
        url.push_str(&encode(value));
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_reaches_the_settings_or_the_driver() {
        let config = PostgresConfig::from_url(
            "db+postgresql://app:s3cr%40t@DB.internal:6543/tasks?schema=jobs&result_schema=celery_results\
             &result_expires=60&visibility_timeout=2.5&max_receives=7&dedup_window=9\
             &poll_interval=0.5&connect_timeout=3&sslmode=Prefer&application_name=api\
             &sslrootcert=/ca.pem&sslcert=/c.pem&sslkey=/c.key&options=-c%20x%3Dy",
        )
        .unwrap();
        assert_eq!(config.schema, "jobs");
        assert_eq!(config.result_schema.as_deref(), Some("celery_results"));
        assert_eq!(config.result_expires, Duration::from_secs(60));
        assert_eq!(config.visibility_timeout, Duration::from_millis(2500));
        assert_eq!(config.max_receives, 7);
        assert_eq!(config.dedup_window, Duration::from_secs(9));
        assert_eq!(config.poll_interval, Duration::from_millis(500));
        assert_eq!(config.connect_timeout, Some(Duration::from_secs(3)));
        assert_eq!(
            config.url,
            "postgres://app:s3cr%40t@db.internal:6543/tasks?sslmode=prefer\
             &sslrootcert=%2Fca.pem&sslcert=%2Fc.pem&sslkey=%2Fc.key\
             &application_name=api&options=-c%20x%3Dy"
        );
        let options = config
            .connect_options(broker_core::Operation::Connect)
            .unwrap();
        assert_eq!(options.get_host(), "db.internal");
        assert_eq!(options.get_port(), 6543);
        assert_eq!(options.get_database(), Some("tasks"));
        assert_eq!(options.get_application_name(), Some("api"));
        assert_eq!(
            options.get_options(),
            Some("-c x=y -c synchronous_commit=on")
        );
    }

    #[test]
    fn a_zero_connect_timeout_waits_forever() {
        let config = PostgresConfig::from_url("postgres://db?connect_timeout=0").unwrap();
        assert_eq!(config.connect_timeout, None);
    }

    #[test]
    fn celery_and_sqlalchemy_schemes_are_result_backends_only() {
        for scheme in [
            "db+postgresql",
            "db+postgres",
            "postgresql+psycopg2",
            "db+postgresql+psycopg",
        ] {
            assert!(answers(UrlKind::ResultBackend, scheme), "{scheme}");
            assert!(!answers(UrlKind::Broker, scheme), "{scheme}");
        }
        for scheme in ["postgres", "postgresql"] {
            assert!(answers(UrlKind::Broker, scheme) && answers(UrlKind::ResultBackend, scheme));
        }
        for scheme in ["postgresqlx", "db+mysql", "postgresql+", "db+"] {
            assert!(!answers(UrlKind::ResultBackend, scheme), "{scheme}");
        }
    }

    #[test]
    fn unusable_urls_are_rejected_with_the_reason() {
        for (url, expected) in [
            ("postgres://db?schema=9lives", "schema"),
            ("postgres://db?schema=has%20space", "schema"),
            ("postgres://db?result_schema=9lives", "result_schema"),
            ("postgres://db?sslmode=sometimes", "expected one of disable"),
            ("postgres://db?connect_timeout=soon", "whole number"),
            ("postgres://db/a/b", "one segment"),
            ("postgres://db?bogus=1", "known options: schema"),
            ("mysql://db", "not a PostgreSQL URL"),
        ] {
            let err = PostgresConfig::from_url(url).expect_err(url);
            assert!(err.to_string().contains(expected), "{url}: {err}");
        }
    }

    #[test]
    fn errors_and_debug_output_never_show_the_password() {
        let config = PostgresConfig::from_url("postgres://app:s3cret@db/tasks").unwrap();
        assert!(!format!("{config:?}").contains("s3cret"));
        assert!(format!("{config:?}").contains("app:***@db"));
        let err = PostgresConfig::from_url("postgres://app:s3cret@db/tasks?max_receives=many")
            .unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
