//! Where the todo store lives, and how a database URL names it.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use super::StoreError;
use broker_core::urls::redact;

/// The file name of the embedded SQLite store inside its data directory.
pub const SQLITE_FILE_NAME: &str = "taskoverflow.sqlite";

/// Where a [`TodoStore`](super::TodoStore) keeps its todos.
///
/// `Debug` and `Display` never show a password.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A throw-away SQLite database in memory, gone when the store is closed or dropped.
    Memory,
    /// An SQLite database file, created (with its parent directories) when missing.
    SqliteFile(PathBuf),
    /// A PostgreSQL database; the URL is normalized to the `postgres://` scheme.
    Postgres(String),
}

impl StoreLocation {
    /// The embedded default: `taskoverflow.sqlite` inside `data_dir`.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self::SqliteFile(data_dir.join(SQLITE_FILE_NAME))
    }

    /// Reads a database URL as `DATABASE_URL` or `SQLALCHEMY_DATABASE_URI` give it.
    ///
    /// - `postgres://`, `postgresql://`, SQLAlchemy's `postgresql+DRIVER://` (for example
    ///   `postgresql+psycopg2://`) and Celery's `db+postgresql://` name a PostgreSQL database.
    /// - `sqlite://PATH` names an SQLite file with SQLAlchemy's convention, which the
    ///   reference deployment's URLs follow: `sqlite:///todo.db` is the relative path
    ///   `todo.db`, `sqlite:////var/lib/todo.db` the absolute path `/var/lib/todo.db`
    ///   (one slash after `//` is dropped). `sqlite::memory:`, `sqlite://` and
    ///   `sqlite:///:memory:` name an in-memory database. The path is taken literally;
    ///   query options are not supported.
    ///
    /// # Errors
    /// [`StoreError::UnsupportedUrl`] for any other scheme and [`StoreError::InvalidUrl`] for
    /// an SQLite URL with options; both show the URL redacted.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let (scheme, rest) = url
            .split_once(':')
            .ok_or_else(|| StoreError::UnsupportedUrl { url: redact(url) })?;
        let scheme = scheme.to_ascii_lowercase();
        let engine = scheme.strip_prefix("db+").unwrap_or(&scheme);
        let engine = engine
            .split_once('+')
            .map_or(engine, |(engine, _driver)| engine);
        match engine {
            "postgres" | "postgresql" => match rest.strip_prefix("//") {
                Some(authority_and_path) => {
                    Ok(Self::Postgres(format!("postgres://{authority_and_path}")))
                }
                None => Err(StoreError::InvalidUrl {
                    url: redact(url),
                    reason: "a PostgreSQL URL starts with postgres://",
                }),
            },
            "sqlite" => Self::sqlite_from_url_rest(url, rest),
            _ => Err(StoreError::UnsupportedUrl { url: redact(url) }),
        }
    }

    fn sqlite_from_url_rest(url: &str, rest: &str) -> Result<Self, StoreError> {
        if rest.contains('?') {
            return Err(StoreError::InvalidUrl {
                url: redact(url),
                reason: "options in SQLite URLs are not supported",
            });
        }
        if rest == ":memory:" {
            return Ok(Self::Memory);
        }
        let Some(path) = rest.strip_prefix("//") else {
            return Err(StoreError::InvalidUrl {
                url: redact(url),
                reason: "an SQLite URL is sqlite:///RELATIVE/PATH, sqlite:////ABSOLUTE/PATH or sqlite::memory:",
            });
        };
        let path = path.strip_prefix('/').unwrap_or(path);
        if path.is_empty() || path == ":memory:" {
            Ok(Self::Memory)
        } else {
            Ok(Self::SqliteFile(PathBuf::from(path)))
        }
    }

    /// The database engine behind this location.
    pub fn engine(&self) -> Engine {
        match self {
            Self::Memory | Self::SqliteFile(_) => Engine::Sqlite,
            Self::Postgres(_) => Engine::Postgres,
        }
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("in-memory SQLite database"),
            Self::SqliteFile(path) => write!(f, "SQLite database {}", path.display()),
            Self::Postgres(url) => write!(f, "PostgreSQL database {}", redact(url)),
        }
    }
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("Memory"),
            Self::SqliteFile(path) => f.debug_tuple("SqliteFile").field(path).finish(),
            Self::Postgres(url) => f.debug_tuple("Postgres").field(&redact(url)).finish(),
        }
    }
}

/// A database engine the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    /// SQLite, embedded in the process.
    Sqlite,
    /// PostgreSQL, over the network.
    Postgres,
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(url: &str) -> StoreLocation {
        StoreLocation::from_url(url).expect("accepted URL")
    }

    #[test]
    fn postgres_urls_in_every_spelling_are_normalized() {
        let expected = StoreLocation::Postgres("postgres://u:p@db:5432/todo".to_owned());
        for url in [
            "postgres://u:p@db:5432/todo",
            "postgresql://u:p@db:5432/todo",
            "postgresql+psycopg2://u:p@db:5432/todo",
            "PostgreSQL+asyncpg://u:p@db:5432/todo",
            "db+postgresql://u:p@db:5432/todo",
        ] {
            assert_eq!(location(url), expected, "{url}");
        }
    }

    #[test]
    fn sqlite_urls_follow_sqlalchemy_paths() {
        assert_eq!(
            location("sqlite:///todo.db"),
            StoreLocation::SqliteFile("todo.db".into())
        );
        assert_eq!(
            location("sqlite:////var/lib/todo.db"),
            StoreLocation::SqliteFile("/var/lib/todo.db".into())
        );
        assert_eq!(
            location("sqlite://data/todo.db"),
            StoreLocation::SqliteFile("data/todo.db".into())
        );
    }

    #[test]
    fn sqlite_memory_urls_name_the_memory_store() {
        for url in [
            "sqlite::memory:",
            "sqlite://",
            "sqlite:///:memory:",
            "sqlite://:memory:",
        ] {
            assert_eq!(location(url), StoreLocation::Memory, "{url}");
        }
    }

    #[test]
    fn unknown_schemes_are_refused_without_showing_the_password() {
        let error = StoreLocation::from_url("mysql://root:hunter2@db/todo").expect_err("refused");
        let message = error.to_string();
        assert!(message.contains("mysql://root:***@db/todo"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn sqlite_options_are_refused() {
        assert!(StoreLocation::from_url("sqlite:///todo.db?mode=ro").is_err());
    }

    #[test]
    fn debug_and_display_hide_the_password() {
        let location = location("postgresql://u:hunter2@db/todo");
        assert!(!format!("{location:?}").contains("hunter2"));
        assert!(!location.to_string().contains("hunter2"));
    }
}
