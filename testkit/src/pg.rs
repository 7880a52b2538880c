//! A real PostgreSQL for tests: one cluster per test binary, made with Debian's `initdb`
//! and `pg_ctl` in a temporary directory and listening on a loopback port, and a fresh
//! database for each test ([`fresh_database`]).
//!
//! The cluster starts on first use (a second or two) and is stopped, and its directory
//! removed, when the test binary exits: a small watcher process started beside it waits for
//! the binary's process to end (however it ends, a panic or an abort included) and then
//! runs `pg_ctl stop -m immediate`. Static values are never dropped, so no destructor could.
//!
//! PostgreSQL refuses to run as root. Tests here (and CI) run as root, so the cluster is
//! then made and run as the unprivileged `nobody`, through `runuser`.
//!
//! The binaries are looked for in `pg_config --bindir`, then `/usr/lib/postgresql/*/bin`
//! (newest first), then `PATH`; xtask installs Debian's `postgresql` where it is missing.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// What went wrong starting the test PostgreSQL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// No PostgreSQL server binaries were found.
    #[error(
        "testkit: no PostgreSQL binaries (initdb, pg_ctl) found in `pg_config --bindir`, \
         /usr/lib/postgresql/*/bin or PATH: install Debian's postgresql (cargo xtask install)"
    )]
    NotInstalled,
    /// A command could not be started, or the temporary directory not made.
    #[error("testkit: {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A PostgreSQL command exited unsuccessfully (its output kept: the only way to tell
    /// why).
    #[error("testkit: `{command}` failed: {output}")]
    Failed {
        /// The command.
        command: String,
        /// What it printed (and the server log's tail, for a start).
        output: String,
    },
}

/// The running test cluster.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    port: u16,
    /// Whether commands run as `nobody` (the tests run as root).
    as_nobody: bool,
    dir: PathBuf,
}

/// The cluster's superuser.
const USER: &str = "custody";

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// The test binary's cluster, started on first call.
pub fn cluster() -> Result<&'static Cluster, PgError> {
    match CLUSTER.get_or_init(|| Cluster::start().map_err(|e| e.to_string())) {
        Ok(c) => Ok(c),
        Err(e) => {
            Err(PgError::Failed { command: "starting the test cluster".into(), output: e.clone() })
        }
    }
}

/// A new, empty database on the test binary's cluster; its URL
/// (`postgres://custody@127.0.0.1:PORT/test_N`). Each call makes another, so tests running
/// at once never share one (unless they pass the URL along, as a replica test does).
pub fn fresh_database() -> Result<String, PgError> {
    cluster()?.create_database()
}

fn bindir() -> Option<PathBuf> {
    let has = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has(&d) {
            return Some(d);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let d = e.path().join("bin");
            has(&d).then_some((v, d))
        })
        .collect();
    versions.sort();
    if let Some((_, d)) = versions.pop() {
        return Some(d);
    }
    std::env::var_os("PATH")?.to_str()?.split(':').map(PathBuf::from).find(|d| has(d))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> PgError {
    let what = what.into();
    move |source| PgError::Io { what, source }
}

impl Cluster {
    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name` on it.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// A command for a server binary, run as `nobody` when the tests run as root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_nobody {
            let mut c = Command::new("runuser");
            c.args(["-u", "nobody", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, mut cmd: Command, what: &str) -> Result<(), PgError> {
        let out = cmd.stdin(Stdio::null()).output().map_err(io(format!("running {what}")))?;
        if out.status.success() {
            return Ok(());
        }
        let mut output = String::from_utf8_lossy(&out.stderr).into_owned();
        output.push_str(&String::from_utf8_lossy(&out.stdout));
        if let Ok(log) = std::fs::read_to_string(self.dir.join("server.log")) {
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            output.push_str("\nserver.log: ");
            output.push_str(&tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
        Err(PgError::Failed { command: what.to_string(), output })
    }

    fn start() -> Result<Cluster, PgError> {
        let bin = bindir().ok_or(PgError::NotInstalled)?;
        let as_nobody = is_root();
        // Kept past this function: the watcher removes it once the test binary has exited.
        let dir = tempfile::Builder::new()
            .prefix("custody-pg-")
            .tempdir()
            .map_err(io("making the cluster's directory"))?
            .keep();
        if as_nobody {
            let chown = Command::new("chown")
                .args(["-R", "nobody"])
                .arg(&dir)
                .status()
                .map_err(io("chown of the cluster's directory"))?;
            if !chown.success() {
                return Err(PgError::Failed {
                    command: format!("chown -R nobody {}", dir.display()),
                    output: String::new(),
                });
            }
        }
        let mut cluster = Cluster { bin, port: 0, as_nobody, dir };
        let data = cluster.dir.join("data");
        let mut initdb = cluster.command("initdb");
        initdb.arg("-D").arg(&data).args([
            "-U",
            USER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        cluster.run(initdb, "initdb")?;
        // A port that was free a moment ago; another process may take it in between, so a
        // failed start is tried again on another.
        let mut last = None;
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(io("finding a free port"))?
                .port();
            let options = format!(
                "-c listen_addresses=127.0.0.1 -p {port} -k {} -c max_connections=200 \
                 -c shared_buffers=16MB",
                cluster.dir.display()
            );
            let mut start = cluster.command("pg_ctl");
            start
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(cluster.dir.join("server.log"))
                .args(["-o", &options, "-w", "-t", "60", "start"]);
            match cluster.run(start, "pg_ctl start") {
                Ok(()) => {
                    cluster.port = port;
                    cluster.watch()?;
                    return Ok(cluster);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(PgError::NotInstalled))
    }

    /// Starts the watcher that stops the cluster and removes its directory once this
    /// process has exited.
    fn watch(&self) -> Result<(), PgError> {
        let pid = std::process::id();
        let stop = {
            let c = self.command("pg_ctl");
            let mut words: Vec<String> = std::iter::once(c.get_program())
                .chain(c.get_args())
                .map(|s| shell_quote(&s.to_string_lossy()))
                .collect();
            words.extend(["-D".into(), shell_quote(&self.dir.join("data").to_string_lossy())]);
            words.extend(["-m".into(), "immediate".into(), "stop".into()]);
            words.join(" ")
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf {}",
            shell_quote(&self.dir.to_string_lossy())
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io("starting the cluster's watcher"))?;
        Ok(())
    }

    /// Makes database `test_N` (N counting up in this process) and returns its URL.
    pub fn create_database(&self) -> Result<String, PgError> {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!("test_{}", N.fetch_add(1, Ordering::Relaxed));
        let mut psql = Command::new(self.bin.join("psql"));
        psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", USER])
            .args(["-p", &self.port.to_string(), "-d", "postgres", "-c"])
            .arg(format!("CREATE DATABASE {name}"))
            .env("PGCONNECT_TIMEOUT", "10");
        self.run(psql, &format!("CREATE DATABASE {name}"))?;
        Ok(self.url(&name))
    }

    /// Runs `sql` in database `name` with psql (for what a test must do behind the
    /// server's back, such as dropping a table).
    pub fn psql(&self, name: &str, sql: &str) -> Result<(), PgError> {
        let mut psql = Command::new(self.bin.join("psql"));
        psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", USER]).args([
            "-p",
            &self.port.to_string(),
            "-d",
            name,
            "-c",
            sql,
        ]);
        self.run(psql, "psql")
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_starts_and_makes_databases() {
        let a = fresh_database().unwrap();
        let b = fresh_database().unwrap();
        assert_ne!(a, b);
        let c = cluster().unwrap();
        let name = a.rsplit('/').next().unwrap();
        c.psql(name, "CREATE TABLE t (x INT); INSERT INTO t VALUES (1);").unwrap();
        assert!(c.psql(name, "SELECT * FROM no_such_table").is_err());
    }
}
