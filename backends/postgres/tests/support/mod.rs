//! What the PostgreSQL tests share: where the server is, and a schema of their own that is
//! dropped afterwards. A private server they may stop and start is
//! [`conformance_tests::private_postgres::PrivatePostgres`].
#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use broker_postgres::{PostgresBroker, PostgresConfig, PostgresResultStore};
use conformance_tests::Unavailable;
use sqlx::{Connection, PgConnection};

/// The service these tests need, as `BROKER_TEST_REQUIRE` names it.
pub(crate) const SERVICE: &str = "postgres";
/// Test schemas start with this, followed by their creation time in seconds.
const SCHEMA_PREFIX: &str = "bpg_test_";
/// Test schemas older than this are left over from killed runs and dropped.
const STALE_AFTER: Duration = Duration::from_secs(6 * 3600);

/// The shared server's URL (`BROKER_TEST_POSTGRES_URL`), or why there is none.
///
/// # Errors
/// [`Unavailable`] when it is not set.
pub(crate) fn url() -> Result<String, Unavailable> {
    conformance_tests::endpoint::broker_url(SERVICE)
}

/// The shared server's URL, or `None` after printing why `test` is skipped.
///
/// # Panics
/// When no server is configured and `BROKER_TEST_REQUIRE` requires PostgreSQL (CI).
pub(crate) fn url_or_skip(test: &str) -> Option<String> {
    url().inspect_err(|unavailable| unavailable.skip(test)).ok()
}

/// The settings tests use on `url` in `schema`: small pool, test-friendly timings.
pub(crate) fn config(url: &str, schema: &str) -> PostgresConfig {
    PostgresConfig {
        schema: schema.to_owned(),
        result_schema: Some(schema.to_owned()),
        pool_size: 4,
        ..PostgresConfig::new(url)
    }
}

/// A broker on the shared server in `schema`, or the reason the test cannot run.
///
/// # Panics
/// When the server answers but the broker cannot be opened (a bug, not a missing server).
pub(crate) async fn broker(config: PostgresConfig) -> PostgresBroker {
    PostgresBroker::connect(config)
        .await
        .expect("the broker opens on the test server")
}

/// A result store on the shared server.
///
/// # Panics
/// When it cannot be opened.
pub(crate) async fn result_store(config: PostgresConfig) -> PostgresResultStore {
    PostgresResultStore::connect(config)
        .await
        .expect("the result store opens on the test server")
}

/// Maps a connect error to a skip when the server is unreachable and to a panic otherwise.
///
/// # Panics
/// For any error but an unreachable server.
pub(crate) fn unavailable(err: &broker_core::Error) -> Unavailable {
    assert!(
        err.is_retryable(),
        "the server answered but opening failed: {err}"
    );
    Unavailable::new(SERVICE, format!("PostgreSQL is unreachable: {err}"))
}

/// A fresh schema name on the shared server, dropped (with everything in it) when this value
/// is dropped, unless it was only borrowed from another process.
#[derive(Debug)]
pub(crate) struct TestSchema {
    pub(crate) name: String,
    url: Option<String>,
}

impl TestSchema {
    /// A new, unique schema name on the shared server (the schema itself is created by the
    /// first broker).
    pub(crate) fn fresh() -> Self {
        Self::fresh_on(url().ok().as_ref())
    }

    /// A new, unique schema name on the server at `url`, where it is dropped (none: nothing to
    /// drop).
    pub(crate) fn fresh_on(url: Option<&String>) -> Self {
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let unique = uuid::Uuid::new_v4().simple().to_string();
        Self {
            name: format!("{SCHEMA_PREFIX}{created}_{}", &unique[..12]),
            url: url.cloned(),
        }
    }

    /// The schema another process made; never dropped by this one.
    pub(crate) fn borrowed(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            url: None,
        }
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let Some(url) = self.url.take() else {
            return;
        };
        let name = self.name.clone();
        // Drop may run inside a runtime; a thread of its own can block on one of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for cleanup");
            runtime.block_on(drop_schemas(&url, &name))
        })
        .join();
        if let Ok(Err(err)) = dropped {
            eprintln!("could not drop test schema {}: {err}", self.name);
        }
    }
}

/// Drops `name` and every test schema left over from runs that were killed.
async fn drop_schemas(url: &str, name: &str) -> Result<(), sqlx::Error> {
    let mut conn = PgConnection::connect(url).await?;
    sqlx::raw_sql("SET lock_timeout = '20s'")
        .execute(&mut conn)
        .await?;
    let pattern = format!("{SCHEMA_PREFIX}%");
    let candidates: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE $1")
            .bind(pattern)
            .fetch_all(&mut conn)
            .await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    for schema in candidates {
        let created = schema
            .strip_prefix(SCHEMA_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        let stale = created.is_some_and(|at| now.saturating_sub(at) > STALE_AFTER.as_secs());
        if schema == name || stale {
            sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .execute(&mut conn)
                .await?;
        }
    }
    conn.close().await
}
