//! What the PostgreSQL tests share: where the server is, a schema of their own that is
//! dropped afterwards, and a private server they may stop and start.
#![allow(dead_code)]

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

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
    /// A new, unique schema name (the schema itself is created by the first broker).
    pub(crate) fn fresh() -> Self {
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let unique = uuid::Uuid::new_v4().simple().to_string();
        Self {
            name: format!("{SCHEMA_PREFIX}{created}_{}", &unique[..12]),
            url: url().ok(),
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

/// A PostgreSQL server of the test's own, in a temporary directory, on a free port: a test
/// may crash and restart it without disturbing anyone. Stopped and deleted on drop.
#[derive(Debug)]
pub(crate) struct PrivateServer {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres_user: bool,
}

impl PrivateServer {
    /// Initialises and starts a server (blocking; about a second).
    ///
    /// # Errors
    /// Why it could not be started (no PostgreSQL binaries, `initdb` failed, ...).
    pub(crate) fn start() -> Result<Self, String> {
        let bin = server_binaries()?;
        // initdb refuses to run as root; the packaged `postgres` user owns the cluster then.
        let as_postgres_user = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!(
            "broker-postgres-test-{}-{}",
            std::process::id(),
            &unique[..8]
        ));
        let mut server = Self {
            dir,
            bin,
            port: 0,
            as_postgres_user,
        };
        server.run("mkdir", &["-m", "700", &server.dir.display().to_string()])?;
        let data = server.data_dir();
        server.run(
            &server.tool("initdb"),
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        let mut last_error = String::new();
        for _ in 0..5 {
            server.port = free_port()?;
            match server.pg_ctl_start() {
                Ok(()) => return Ok(server),
                Err(err) => last_error = err,
            }
        }
        Err(last_error)
    }

    /// The server's URL.
    #[must_use]
    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Its port.
    #[must_use]
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server as a crash would (no shutdown checkpoint: the restart replays the
    /// write-ahead log) and starts it again on the same port.
    ///
    /// # Errors
    /// What `pg_ctl` reported.
    pub(crate) fn crash_and_restart(&self) -> Result<(), String> {
        self.pg_ctl_stop()?;
        self.pg_ctl_start()
    }

    fn data_dir(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn tool(&self, name: &str) -> String {
        self.bin.join(name).display().to_string()
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c shared_buffers=16MB -c max_connections=60",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log").display().to_string();
        self.run(
            &self.tool("pg_ctl"),
            &[
                "-D",
                &self.data_dir(),
                "-l",
                &log,
                "-w",
                "-t",
                "60",
                "-o",
                &options,
                "start",
            ],
        )
    }

    fn pg_ctl_stop(&self) -> Result<(), String> {
        self.run(
            &self.tool("pg_ctl"),
            &["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"],
        )
    }

    /// Runs `program` (as the `postgres` user when this process is root).
    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let mut command = if self.as_postgres_user {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--", program]);
            command
        } else {
            Command::new(program)
        };
        command.args(args).stdin(Stdio::null());
        let output = command
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        if self.dir.join("data").join("postmaster.pid").exists() {
            let _ = self.pg_ctl_stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where `initdb` and `pg_ctl` are: `BROKER_TEST_POSTGRES_BIN`, else the `PATH`, else the
/// newest version in the Debian and Ubuntu package layout.
fn server_binaries() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("BROKER_TEST_POSTGRES_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).find(|dir| dir.join("initdb").is_file()));
    if let Some(dir) = on_path {
        return Ok(dir);
    }
    let packaged = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(packaged)
        .map_err(|_| "no PostgreSQL server binaries (initdb) found; set BROKER_TEST_POSTGRES_BIN")?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "no PostgreSQL server binaries (initdb) found; set BROKER_TEST_POSTGRES_BIN".into()
    })
}

fn free_port() -> Result<u16, String> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| format!("no free port: {e}"))
}
