//! A real S3-compatible server for tests: `s3s-fs` (crates.io; the object store of the s3s
//! project over a local directory), started on 127.0.0.1 in a temporary directory, and a
//! named fake for the one thing it must not be: a store that ignores `If-None-Match`.
//!
//! [`S3Server::start`] runs `s3s-fs` with SigV4 authentication, on an ephemeral port it
//! reads back from the server's own start-up line. The server is run under a small `sh`
//! that holds the read end of a pipe from this process: when the [`S3Server`] is dropped,
//! or the test process exits however it exits (a `OnceLock` is never dropped), the pipe
//! closes and the shell stops the server and removes its directory. A test binary starts
//! one and takes a fresh bucket per test ([`S3Server::bucket`]).
//!
//! `s3s-fs` answers a `PUT` with `If-None-Match: *` on an existing key with `412
//! Precondition Failed` (it checks and then writes, which is not atomic against a concurrent
//! writer; enough for tests, not for evidence). [`IgnoresIfNoneMatch`] is a tiny HTTP/1.1
//! front that drops that header (and the request's signature, which covers it) before
//! forwarding to an unauthenticated `s3s-fs` ([`S3Server::start_unauthenticated`]): a store
//! that overwrites silently, which the server's start-up probe must refuse.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The `s3s-fs` release the tests are written against (xtask installs exactly this one).
pub const S3S_FS_VERSION: &str = "0.14.1";

/// How long the server may take to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The test credentials (SigV4): loopback only, never a secret.
const ACCESS_KEY: &str = "custody-test";
const SECRET_KEY: &str = "custody-test-secret";

/// A running `s3s-fs` on 127.0.0.1, stopped (and its directory removed) when dropped or when
/// the test process exits.
pub struct S3Server {
    addr: SocketAddr,
    root: PathBuf,
    authenticated: bool,
    buckets: AtomicU64,
    /// Closing this stops the server (see the module documentation).
    stdin: Option<ChildStdin>,
    child: Child,
}

impl std::fmt::Debug for S3Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Server").field("addr", &self.addr).field("root", &self.root).finish()
    }
}

/// Where `s3s-fs` is: `$S3S_FS`, else `~/.cargo/bin/s3s-fs`, else `s3s-fs` on `PATH`.
fn binary() -> io::Result<PathBuf> {
    if let Some(p) = std::env::var_os("S3S_FS") {
        return Ok(PathBuf::from(p));
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(p) = cargo_home.map(|h| h.join("bin/s3s-fs")).filter(|p| p.is_file()) {
        return Ok(p);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("s3s-fs"))
        .find(|p| p.is_file());
    on_path.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "s3s-fs is not installed: run `cargo xtask install` (or `cargo install s3s-fs \
                 --version {S3S_FS_VERSION} --features binary --locked`)"
            ),
        )
    })
}

impl S3Server {
    /// Starts `s3s-fs` with SigV4 authentication (see [`S3Server::config`]).
    pub fn start() -> io::Result<S3Server> {
        S3Server::spawn(true)
    }

    /// Starts `s3s-fs` accepting unsigned requests only: the back of
    /// [`IgnoresIfNoneMatch`], which strips the signature with the header it drops.
    pub fn start_unauthenticated() -> io::Result<S3Server> {
        S3Server::spawn(false)
    }

    fn spawn(authenticated: bool) -> io::Result<S3Server> {
        let bin = binary()?;
        // Kept (not a TempDir): the shell removes it when the server stops.
        let root = tempfile::Builder::new().prefix("custody-s3-").tempdir()?.keep();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            // `read` returns when this process closes the pipe (drop, exit or a kill);
            // a background job of a non-interactive shell reads /dev/null, not the pipe.
            .arg(r#"root=$1; shift; "$@" & pid=$!; read _; kill $pid; wait $pid; rm -rf "$root""#)
            .arg("sh")
            .arg(&root)
            .arg(&bin)
            .args(["--host", "127.0.0.1", "--port", "0"]);
        if authenticated {
            cmd.args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY]);
        }
        cmd.arg(&root)
            .env("RUST_LOG", "s3s_fs=info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or_else(|| io::Error::other("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the start-up line, then drains the log so the server never blocks on it.
        std::thread::Builder::new().name("custody-testkit-s3-log".into()).spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(addr) = listening_on(&line) {
                        let _ = tx.send(addr);
                        sent = true;
                    }
                }
            }
        })?;
        let mut server = S3Server {
            addr: ([127, 0, 0, 1], 0).into(),
            root,
            authenticated,
            buckets: AtomicU64::new(0),
            stdin,
            child,
        };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => server.addr = addr,
            Err(_) => {
                let status = server.child.try_wait()?;
                return Err(io::Error::other(format!(
                    "{} did not say where it listens within {START_TIMEOUT:?} (shell: {status:?})",
                    bin.display()
                )));
            }
        }
        Ok(server)
    }

    /// The endpoint URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What a client needs besides the bucket, as object_store's configuration keys (the
    /// lower-case forms of the AWS environment variables): endpoint, region, credentials
    /// and plain HTTP on loopback. For an unauthenticated server, unsigned requests.
    pub fn config(&self) -> Vec<(String, String)> {
        endpoint_config(&self.endpoint(), self.authenticated)
    }

    /// A fresh, empty bucket's name. `s3s-fs` keeps a bucket as a directory under its
    /// root, so the bucket is made there directly (what its `CreateBucket` does).
    pub fn bucket(&self) -> io::Result<String> {
        let n = self.buckets.fetch_add(1, Ordering::Relaxed);
        let name = format!("test-{}-{n}", std::process::id());
        std::fs::create_dir(self.root.join(&name))?;
        Ok(name)
    }

    /// The directory the objects are kept in (for a test that looks at what was stored).
    pub fn root(&self) -> &Path {
        &self.root
    }
}

fn endpoint_config(endpoint: &str, signed: bool) -> Vec<(String, String)> {
    let mut c = vec![
        ("aws_endpoint".to_owned(), endpoint.to_owned()),
        ("aws_region".to_owned(), "us-east-1".to_owned()),
        ("aws_allow_http".to_owned(), "true".to_owned()),
    ];
    if signed {
        c.push(("aws_access_key_id".to_owned(), ACCESS_KEY.to_owned()));
        c.push(("aws_secret_access_key".to_owned(), SECRET_KEY.to_owned()));
    } else {
        c.push(("aws_skip_signature".to_owned(), "true".to_owned()));
    }
    c
}

/// The address in `s3s-fs`'s "server is running at http://ADDR" line.
fn listening_on(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once("server is running at http://")?;
    rest.split_whitespace().next()?.parse().ok()
}

impl Drop for S3Server {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// Bounds on one request through the front, so that a wrong test cannot wedge it.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 64 << 20;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A fake S3 store that ignores `If-None-Match` and so overwrites existing objects
/// silently: an HTTP/1.1 front on 127.0.0.1 that drops the header (and the signature) from
/// every request before forwarding it to an unauthenticated [`S3Server`]. One thread per
/// connection; each answer closes its connection. Stopped when dropped.
pub struct IgnoresIfNoneMatch {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Requests that carried the header it dropped.
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for IgnoresIfNoneMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IgnoresIfNoneMatch").field("addr", &self.addr).finish()
    }
}

impl IgnoresIfNoneMatch {
    /// Listens on an ephemeral port of 127.0.0.1 and forwards to `back` (started with
    /// [`S3Server::start_unauthenticated`]).
    pub fn start(back: &S3Server) -> io::Result<IgnoresIfNoneMatch> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let upstream = back.addr();
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let (s, d) = (Arc::clone(&stop), Arc::clone(&dropped));
        let thread = std::thread::Builder::new().name("custody-testkit-s3-front".into()).spawn(
            move || {
                for conn in listener.incoming() {
                    if s.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let d = Arc::clone(&d);
                    let _ = std::thread::Builder::new()
                        .name("custody-testkit-s3-front-conn".into())
                        .spawn(move || {
                            let _ = forward(conn, upstream, &d);
                        });
                }
            },
        )?;
        Ok(IgnoresIfNoneMatch { addr, stop, thread: Some(thread), dropped })
    }

    /// The endpoint URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What a client needs besides the bucket (see [`S3Server::config`]); requests are
    /// signed as for a real store, since the front drops the signature anyway.
    pub fn config(&self) -> Vec<(String, String)> {
        endpoint_config(&self.endpoint(), true)
    }

    /// How many requests carried an `If-None-Match` header that it dropped.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::SeqCst)
    }
}

impl Drop for IgnoresIfNoneMatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Forwards one request: its head less `If-None-Match`, `Authorization` and `Connection`,
/// its body (by `Content-Length`), and the answer back until the back closes.
fn forward(client: TcpStream, upstream: SocketAddr, dropped: &AtomicU64) -> io::Result<()> {
    client.set_read_timeout(Some(IO_TIMEOUT))?;
    client.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    let mut length = 0usize;
    let mut had_header = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if head.len() + line.len() > MAX_HEAD {
            return Err(io::Error::other("request head too large"));
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        let name = line.split(':').next().unwrap_or("").trim().to_ascii_lowercase();
        match name.as_str() {
            "if-none-match" => {
                had_header = true;
                continue;
            }
            "authorization" | "connection" => continue,
            "content-length" => {
                length = line
                    .split_once(':')
                    .and_then(|(_, v)| v.trim().parse().ok())
                    .ok_or_else(|| io::Error::other("bad content-length"))?;
            }
            "transfer-encoding" => return Err(io::Error::other("chunked bodies not supported")),
            _ => {}
        }
        head.extend_from_slice(line.as_bytes());
    }
    if length > MAX_BODY {
        return Err(io::Error::other("request body too large"));
    }
    if had_header {
        dropped.fetch_add(1, Ordering::SeqCst);
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    let mut back = TcpStream::connect_timeout(&upstream, IO_TIMEOUT)?;
    back.set_read_timeout(Some(IO_TIMEOUT))?;
    back.set_write_timeout(Some(IO_TIMEOUT))?;
    head.extend_from_slice(b"connection: close\r\n\r\n");
    back.write_all(&head)?;
    back.write_all(&body)?;
    // The back closes after its answer (connection: close), which then goes to the client
    // as it is; the client's connection closes with it.
    let mut answer = Vec::new();
    back.take(MAX_BODY as u64).read_to_end(&mut answer)?;
    // Says so to the client too, so it never reuses the connection.
    if let Some(eol) = answer.windows(2).position(|w| w == b"\r\n") {
        answer.splice(eol + 2..eol + 2, b"connection: close\r\n".iter().copied());
    }
    let mut client = client;
    client.write_all(&answer)?;
    client.flush()?;
    let _ = client.shutdown(std::net::Shutdown::Both);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_up_line_names_the_address() {
        let line =
            "  2026-12-01T23:00:00Z  INFO s3s_fs: server is running at http://127.0.0.1:40123";
        assert_eq!(listening_on(line), Some("127.0.0.1:40123".parse().unwrap()));
        assert_eq!(listening_on("INFO s3s_fs: authentication is enabled"), None);
    }
}
