//! The todo store: todos kept in PostgreSQL or SQLite through sqlx.
//!
//! [`TodoStore::open`] connects to a [`StoreLocation`] and applies the numbered migrations of
//! its engine (`migrations/postgres`, `migrations/sqlite`, embedded in the binary) before it
//! returns, so a store is always at the current schema. Several processes may open the same
//! PostgreSQL database at once: migrations take sqlx's advisory lock.
//!
//! Every operation is a single SQL statement, so it is atomic on both engines: concurrent
//! partial updates of different fields of one todo never undo each other.

mod error;
mod location;

use std::{str::FromStr, time::Duration};

use chrono::{NaiveDateTime, TimeDelta, Utc};
use sqlx::{
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPool, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions},
};

pub use self::{
    error::StoreError,
    location::{Engine, SQLITE_FILE_NAME, StoreLocation},
};
use crate::todo::{NewTodo, Todo, TodoPatch, datetime};

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");

/// How long an operation waits for a free connection before it fails (retryable).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The columns of a [`Todo`], in the order the queries return them.
const COLUMNS: &str = "id, title, description, completed, deadline_at, created_at, updated_at";

/// Which todos [`TodoStore::list`] returns. The default returns all of them; set conditions
/// combine (all must hold).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TodoFilter {
    /// Only todos with this completion state.
    pub completed: Option<bool>,
    /// Only todos with a deadline at most this many days from now, past-due ones included;
    /// todos without a deadline are left out. A window too large to represent means "any
    /// deadline".
    pub window_days: Option<u64>,
}

impl TodoFilter {
    /// The latest deadline the window admits, measured from `now`, or `None` without a window.
    fn deadline_cutoff(&self, now: NaiveDateTime) -> Option<NaiveDateTime> {
        let days = self.window_days?;
        let cutoff = i64::try_from(days)
            .ok()
            .and_then(TimeDelta::try_days)
            .and_then(|window| now.checked_add_signed(window))
            .map_or(datetime::max_supported(), |cutoff| {
                cutoff.min(datetime::max_supported())
            });
        Some(cutoff)
    }
}

/// The todos of the application, in one database.
///
/// Cloning is cheap and shares the connection pool. `Debug` shows the engine only, never
/// connection options.
#[derive(Clone)]
pub struct TodoStore {
    pool: Pool,
}

impl std::fmt::Debug for TodoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TodoStore")
            .field("engine", &self.engine())
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Runs the same code against whichever pool the store has; each arm is type-checked for its
/// own engine, so the SQL must be valid on both (`$N` placeholders are).
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            Pool::Postgres($pool) => $body,
            Pool::Sqlite($pool) => $body,
        }
    };
}

impl TodoStore {
    /// Opens the store at `location` and brings its schema up to date.
    ///
    /// An SQLite file and its directory are created when missing. An in-memory store lives on
    /// one connection held for the life of the store.
    ///
    /// # Errors
    /// [`StoreError::DataDir`], [`StoreError::Connect`] or [`StoreError::Migrate`]; none of
    /// them shows a password.
    pub async fn open(location: &StoreLocation) -> Result<Self, StoreError> {
        let pool = match location {
            StoreLocation::Memory => Pool::Sqlite(open_sqlite_memory(location).await?),
            StoreLocation::SqliteFile(path) => {
                Pool::Sqlite(open_sqlite_file(location, path).await?)
            }
            StoreLocation::Postgres(url) => Pool::Postgres(open_postgres(location, url).await?),
        };
        let store = Self { pool };
        store.migrate(location).await?;
        Ok(store)
    }

    async fn migrate(&self, location: &StoreLocation) -> Result<(), StoreError> {
        let result = match &self.pool {
            Pool::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
            Pool::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await,
        };
        result.map_err(|source| StoreError::Migrate {
            location: location.to_string(),
            source,
        })
    }

    /// The engine this store runs on.
    pub fn engine(&self) -> Engine {
        match self.pool {
            Pool::Postgres(_) => Engine::Postgres,
            Pool::Sqlite(_) => Engine::Sqlite,
        }
    }

    /// The todos that pass `filter`, in ascending id order.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the database fails.
    pub async fn list(&self, filter: &TodoFilter) -> Result<Vec<Todo>, StoreError> {
        let cutoff = filter.deadline_cutoff(now());
        let sql = format!(
            "SELECT {COLUMNS} FROM todos \
             WHERE ($1 IS NULL OR completed = $1) \
               AND ($2 IS NULL OR deadline_at <= $2) \
             ORDER BY id"
        );
        let result = on_pool!(self, |pool| {
            sqlx::query_as::<_, Todo>(&sql)
                .bind(filter.completed)
                .bind(cutoff)
                .fetch_all(pool)
                .await
        });
        result.map_err(|source| self.query_error("list todos", source))
    }

    /// The todo with this id, if there is one.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the database fails.
    pub async fn get(&self, id: i64) -> Result<Option<Todo>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM todos WHERE id = $1");
        let result = on_pool!(self, |pool| {
            sqlx::query_as::<_, Todo>(&sql)
                .bind(id)
                .fetch_optional(pool)
                .await
        });
        result.map_err(|source| self.query_error("get todo", source))
    }

    /// Stores a new todo and returns it with its id; `created_at` and `updated_at` are now.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the database fails.
    pub async fn create(&self, todo: &NewTodo) -> Result<Todo, StoreError> {
        let sql = format!(
            "INSERT INTO todos (title, description, completed, deadline_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) \
             RETURNING {COLUMNS}"
        );
        let now = now();
        let result = on_pool!(self, |pool| {
            sqlx::query_as::<_, Todo>(&sql)
                .bind(&todo.title)
                .bind(&todo.description)
                .bind(todo.completed)
                .bind(todo.deadline_at.map(datetime::truncate_to_micros))
                .bind(now)
                .fetch_one(pool)
                .await
        });
        result.map_err(|source| self.query_error("create todo", source))
    }

    /// Applies `patch` to the todo with this id and sets its `updated_at` to now, even when
    /// the patch is empty; returns the updated todo, or `None` when there is no such todo.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the database fails.
    pub async fn update(&self, id: i64, patch: &TodoPatch) -> Result<Option<Todo>, StoreError> {
        let sql = format!(
            "UPDATE todos SET \
                 title = CASE WHEN $1 THEN $2 ELSE title END, \
                 description = CASE WHEN $3 THEN $4 ELSE description END, \
                 completed = CASE WHEN $5 THEN $6 ELSE completed END, \
                 deadline_at = CASE WHEN $7 THEN $8 ELSE deadline_at END, \
                 updated_at = $9 \
             WHERE id = $10 \
             RETURNING {COLUMNS}"
        );
        let now = now();
        let description = patch.description.clone().flatten();
        let deadline_at = patch
            .deadline_at
            .flatten()
            .map(datetime::truncate_to_micros);
        let result = on_pool!(self, |pool| {
            sqlx::query_as::<_, Todo>(&sql)
                .bind(patch.title.is_some())
                .bind(&patch.title)
                .bind(patch.description.is_some())
                .bind(&description)
                .bind(patch.completed.is_some())
                .bind(patch.completed)
                .bind(patch.deadline_at.is_some())
                .bind(deadline_at)
                .bind(now)
                .bind(id)
                .fetch_optional(pool)
                .await
        });
        result.map_err(|source| self.query_error("update todo", source))
    }

    /// Deletes the todo with this id and returns it, or `None` when there was none.
    /// Deleting twice is harmless.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the database fails.
    pub async fn delete(&self, id: i64) -> Result<Option<Todo>, StoreError> {
        let sql = format!("DELETE FROM todos WHERE id = $1 RETURNING {COLUMNS}");
        let result = on_pool!(self, |pool| {
            sqlx::query_as::<_, Todo>(&sql)
                .bind(id)
                .fetch_optional(pool)
                .await
        });
        result.map_err(|source| self.query_error("delete todo", source))
    }

    /// Closes every connection, waiting for operations in progress; later operations fail.
    /// An in-memory store loses its todos.
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await);
    }

    fn query_error(&self, operation: &'static str, source: sqlx::Error) -> StoreError {
        StoreError::Query {
            operation,
            engine: self.engine(),
            source,
        }
    }
}

/// Now, as the store writes it: naive UTC truncated to microseconds.
fn now() -> NaiveDateTime {
    datetime::truncate_to_micros(Utc::now().naive_utc())
}

async fn open_postgres(location: &StoreLocation, url: &str) -> Result<PgPool, StoreError> {
    let connect_error = |source| StoreError::Connect {
        location: location.to_string(),
        source,
    };
    let options = PgConnectOptions::from_str(url)
        .map_err(connect_error)?
        .application_name("taskoverflow");
    PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(connect_error)
}

async fn open_sqlite_file(
    location: &StoreLocation,
    path: &std::path::Path,
) -> Result<SqlitePool, StoreError> {
    if let Some(directory) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(directory).map_err(|source| StoreError::DataDir {
            path: directory.to_owned(),
            source,
        })?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5));
    SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Connect {
            location: location.to_string(),
            source,
        })
}

async fn open_sqlite_memory(location: &StoreLocation) -> Result<SqlitePool, StoreError> {
    // Each SQLite connection to ":memory:" has its own database, so the pool keeps exactly one
    // connection and never retires it.
    let options = SqliteConnectOptions::new().in_memory(true);
    SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Connect {
            location: location.to_string(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        datetime::parse(text).expect("valid test input")
    }

    #[test]
    fn window_cutoff_is_now_plus_whole_days() {
        let filter = TodoFilter {
            window_days: Some(7),
            ..TodoFilter::default()
        };
        assert_eq!(
            filter.deadline_cutoff(at("2030-01-01T12:00:00.5")),
            Some(at("2030-01-08T12:00:00.5"))
        );
    }

    #[test]
    fn huge_windows_admit_every_representable_deadline() {
        for days in [3_000_000, u64::MAX] {
            let filter = TodoFilter {
                window_days: Some(days),
                ..TodoFilter::default()
            };
            assert_eq!(
                filter.deadline_cutoff(at("2030-01-01T00:00:00")),
                Some(datetime::max_supported())
            );
        }
    }

    #[test]
    fn no_window_means_no_cutoff() {
        assert_eq!(
            TodoFilter::default().deadline_cutoff(at("2030-01-01T00:00:00")),
            None
        );
    }

    fn new_todo(title: &str, deadline_at: Option<&str>) -> NewTodo {
        NewTodo {
            title: title.to_owned(),
            description: None,
            completed: false,
            deadline_at: deadline_at.map(at),
        }
    }

    #[tokio::test]
    async fn memory_store_keeps_todos_across_operations() {
        let store = TodoStore::open(&StoreLocation::Memory)
            .await
            .expect("opens");
        let first = store.create(&new_todo("one", None)).await.expect("creates");
        let second = store
            .create(&new_todo("two", Some("2030-01-02T03:04:05.678")))
            .await
            .expect("creates");
        assert!(second.id > first.id);
        assert_eq!(
            store.get(second.id).await.expect("reads"),
            Some(second.clone())
        );
        let all = store.list(&TodoFilter::default()).await.expect("lists");
        assert_eq!(all, vec![first, second]);
    }

    #[tokio::test]
    async fn patch_changes_only_the_fields_it_names() {
        let store = TodoStore::open(&StoreLocation::Memory)
            .await
            .expect("opens");
        let mut todo = new_todo("title", Some("2030-01-02T03:04:05"));
        todo.description = Some("keep me".to_owned());
        let created = store.create(&todo).await.expect("creates");
        let patch = TodoPatch {
            completed: Some(true),
            deadline_at: Some(None),
            ..TodoPatch::default()
        };
        let updated = store
            .update(created.id, &patch)
            .await
            .expect("updates")
            .expect("exists");
        assert_eq!(updated.title, "title");
        assert_eq!(updated.description.as_deref(), Some("keep me"));
        assert!(updated.completed);
        assert_eq!(updated.deadline_at, None);
        assert!(updated.updated_at >= created.updated_at);
        assert_eq!(updated.created_at, created.created_at);
    }

    #[tokio::test]
    async fn ids_are_not_reused_after_delete() {
        let store = TodoStore::open(&StoreLocation::Memory)
            .await
            .expect("opens");
        let first = store.create(&new_todo("one", None)).await.expect("creates");
        assert_eq!(
            store.delete(first.id).await.expect("deletes"),
            Some(first.clone())
        );
        assert_eq!(store.delete(first.id).await.expect("deletes"), None);
        let second = store.create(&new_todo("two", None)).await.expect("creates");
        assert!(second.id > first.id);
    }
}
