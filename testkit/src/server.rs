//! RFC 3161 §3.4 over HTTP/1.1 (RFC 9112) on loopback, std only, one thread.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::Tsa;

/// How the server answers, switchable while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// Answers every query with `openssl ts -reply`'s response.
    Up,
    /// Accepts each connection and closes it at once without a byte: a TSA that is down.
    Down,
    /// Reads the request and answers `503 Service Unavailable`.
    Unavailable,
    /// Answers as [`Mode::Up`] after waiting this long: a slow TSA (the one thread is busy
    /// meanwhile, so other connections wait too, as they would at an overloaded TSA).
    Slow(Duration),
}

struct Shared {
    mode: Mutex<Mode>,
    stop: AtomicBool,
    connections: AtomicU64,
    granted: AtomicU64,
}

/// A test TSA on `http://127.0.0.1:PORT/`, stopped when dropped. Start one per test binary
/// (a `OnceLock`), since each holds a thread and a [`crate::Pki`] takes time to make.
pub struct TsaServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TsaServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsaServer").field("addr", &self.addr).finish()
    }
}

/// Bounds on what one connection may send, so that a wrong test cannot wedge the thread.
const MAX_HEADERS: usize = 16 * 1024;
const MAX_BODY: usize = 64 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

impl TsaServer {
    /// Binds an ephemeral port on 127.0.0.1 and serves `tsa` from a thread of its own.
    pub fn start(tsa: Tsa) -> io::Result<TsaServer> {
        TsaServer::start_at(tsa, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves `tsa` at `addr`: a TSA started again where one was stopped (dropped), so
    /// that a server configured with its URL finds it back.
    pub fn start_at(tsa: Tsa, addr: SocketAddr) -> io::Result<TsaServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Up),
            stop: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            granted: AtomicU64::new(0),
        });
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("custody-testkit-tsa".into())
            .spawn(move || serve(listener, &tsa, &s))?;
        Ok(TsaServer { addr, shared, thread: Some(thread) })
    }

    /// The URL to give `custody serve --tsa`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The socket address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches how the following connections are answered.
    pub fn set_mode(&self, mode: Mode) {
        if let Ok(mut m) = self.shared.mode.lock() {
            *m = mode;
        }
    }

    /// How the server answers now.
    pub fn mode(&self) -> Mode {
        self.shared.mode.lock().map(|m| *m).unwrap_or(Mode::Up)
    }

    /// Connections accepted so far, whatever became of them.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Responses sent with status 200 and a time-stamp reply so far.
    pub fn granted(&self) -> u64 {
        self.shared.granted.load(Ordering::SeqCst)
    }
}

impl Drop for TsaServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: TcpListener, tsa: &Tsa, shared: &Shared) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let mode = shared.mode.lock().map(|m| *m).unwrap_or(Mode::Up);
        if mode == Mode::Down {
            drop(stream);
            continue;
        }
        if let Ok(true) = answer(stream, tsa, mode) {
            shared.granted.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Reads one request and writes one response, then closes (`Connection: close`, so one
/// thread never waits on an idle keep-alive connection). `Ok(true)` when a reply was sent.
fn answer(stream: TcpStream, tsa: &Tsa, mode: Mode) -> io::Result<bool> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut head = Vec::new();
    let mut line = Vec::new();
    let mut content_length: Option<usize> = None;
    let mut content_type = String::new();
    let mut request_line = String::new();
    loop {
        line.clear();
        let n = reader.by_ref().take(MAX_HEADERS as u64).read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(false);
        }
        head.extend_from_slice(&line);
        if head.len() > MAX_HEADERS {
            return respond(stream, "431 Request Header Fields Too Large", "text/plain", b"");
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if request_line.is_empty() {
            request_line = text.to_owned();
            continue;
        }
        if text.is_empty() {
            break;
        }
        if let Some((name, value)) = text.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.parse().ok();
            } else if name.eq_ignore_ascii_case("content-type") {
                content_type = value.to_ascii_lowercase();
            }
        }
    }
    if !request_line.starts_with("POST ") {
        return respond(stream, "405 Method Not Allowed", "text/plain", b"POST only\n");
    }
    let Some(len) = content_length.filter(|l| *l <= MAX_BODY) else {
        return respond(stream, "411 Length Required", "text/plain", b"Content-Length\n");
    };
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    if mode == Mode::Unavailable {
        return respond(stream, "503 Service Unavailable", "text/plain", b"down for a while\n");
    }
    if content_type != "application/timestamp-query" {
        return respond(
            stream,
            "415 Unsupported Media Type",
            "text/plain",
            b"application/timestamp-query\n",
        );
    }
    if let Mode::Slow(d) = mode {
        std::thread::sleep(d);
    }
    match tsa.reply(&body) {
        Ok(reply) => {
            respond(stream, "200 OK", "application/timestamp-reply", &reply)?;
            Ok(true)
        }
        Err(e) => respond(stream, "400 Bad Request", "text/plain", e.to_string().as_bytes()),
    }
}

fn respond(mut stream: TcpStream, status: &str, kind: &str, body: &[u8]) -> io::Result<bool> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    Ok(false)
}
