//! What can go wrong in the todo store.

use std::{io, path::PathBuf};

use super::Engine;

/// A failure of the todo store.
///
/// Messages name the operation and the engine, and never contain a password: URLs are
/// redacted before they are stored here. The underlying cause is kept as
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database URL names an engine the store does not support.
    #[error(
        "unsupported database URL {url}: expected postgres://, postgresql://, \
         postgresql+DRIVER:// or sqlite://"
    )]
    UnsupportedUrl {
        /// The URL, redacted.
        url: String,
    },
    /// The database URL names a supported engine but is malformed for it.
    #[error("invalid database URL {url}: {reason}")]
    InvalidUrl {
        /// The URL, redacted.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The directory for an SQLite file could not be created.
    #[error("could not create the directory {path}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The database could not be reached or opened.
    #[error("could not open the {location}")]
    Connect {
        /// The store location, redacted.
        location: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// The schema migrations could not be applied.
    #[error("could not migrate the {location}")]
    Migrate {
        /// The store location, redacted.
        location: String,
        /// Why.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed.
    #[error("{operation} on {engine} failed")]
    Query {
        /// What the store was doing, such as `"list todos"`.
        operation: &'static str,
        /// Which engine.
        engine: Engine,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
}

impl StoreError {
    /// Whether trying the same operation again later may succeed (the database was
    /// unreachable, busy, or a connection was lost), as opposed to a configuration or
    /// schema problem that will fail again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { source, .. } => is_transient_connection_error(source),
            Self::Query { source, engine, .. } => {
                is_transient_connection_error(source)
                    || is_transient_database_error(source, *engine)
            }
            _ => false,
        }
    }
}

fn is_transient_connection_error(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
    )
}

fn is_transient_database_error(error: &sqlx::Error, engine: Engine) -> bool {
    let sqlx::Error::Database(error) = error else {
        return false;
    };
    let Some(code) = error.code() else {
        return false;
    };
    match engine {
        // SQLSTATE classes 08 (connection), 40 (serialization failure, deadlock),
        // 53 (insufficient resources) and 57P01..57P03 (server shutting down or starting).
        Engine::Postgres => {
            ["08", "40", "53"]
                .iter()
                .any(|class| code.starts_with(class))
                || code.starts_with("57P0")
        }
        // Primary result codes SQLITE_BUSY (5) and SQLITE_LOCKED (6), extended codes included.
        Engine::Sqlite => code
            .parse::<i32>()
            .is_ok_and(|code| matches!(code & 0xff, 5 | 6)),
    }
}
