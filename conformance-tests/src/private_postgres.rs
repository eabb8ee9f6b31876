//! A PostgreSQL server of a test's own, which the test may crash, stop and start without
//! disturbing the machine's shared server.

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// A PostgreSQL server of the test's own, in a temporary directory, on a free port: a test
/// may crash and restart it without disturbing anyone. Stopped and deleted on drop.
#[derive(Debug)]
pub struct PrivatePostgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres_user: bool,
}

impl PrivatePostgres {
    /// Initialises and starts a server (blocking; about a second).
    ///
    /// # Errors
    /// Why it could not be started (no PostgreSQL binaries, `initdb` failed, ...).
    pub fn start() -> Result<Self, String> {
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
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Its port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server as a crash would (no shutdown checkpoint: the restart replays the
    /// write-ahead log) and starts it again on the same port.
    ///
    /// # Errors
    /// What `pg_ctl` reported.
    pub fn crash_and_restart(&self) -> Result<(), String> {
        self.stop()?;
        self.start_again()
    }

    /// Kills the server as a crash would, leaving its data; [`start_again`](Self::start_again)
    /// brings it back on the same port.
    ///
    /// # Errors
    /// What `pg_ctl` reported.
    pub fn stop(&self) -> Result<(), String> {
        self.pg_ctl_stop()
    }

    /// Starts a stopped server again on the same port, with its data.
    ///
    /// # Errors
    /// What `pg_ctl` reported.
    pub fn start_again(&self) -> Result<(), String> {
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

impl Drop for PrivatePostgres {
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
