//! A fault-injecting HTTP/1.1 proxy on loopback, between a device and a plain-HTTP
//! `custody serve`: while a [`Fault`] is set it breaks what passes the way networks and
//! middleboxes do (resets, lost packets, pauses, 5xx answers); with [`Fault::Pass`] it
//! forwards every request and answer unchanged, keep-alive included.
//!
//! Shared, as this one file, by the uploader's tests (client/tests/faults.rs) and the fault
//! benchmark (`cargo xtask bench faults`, xtask/src/bench/faults.rs includes it by path),
//! so it uses the standard library only: a thread per connection, blocking sockets polled
//! every few milliseconds for the fault in force. Requests and answers are framed by
//! Content-Length (answers also by chunked encoding or by the connection closing), which is
//! all the device's side of the protocol uses.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does to the traffic, from the moment it is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Everything passes.
    Pass,
    /// Every connection, open or new, is closed at once (a network reset, a middlebox
    /// restart).
    Reset,
    /// Lost packets: bytes that arrive are thrown away and nothing is answered; a
    /// connection that lost bytes stays a black hole for good (nothing closes it), new
    /// ones too while the fault lasts. An idle connection that lost nothing is unharmed.
    Drop,
    /// Nothing moves: no byte is read or forwarded either way until the fault ends, then
    /// everything goes on where it was.
    Stall,
    /// Every request that starts is answered by the proxy itself, by turns `503`, `502`
    /// and `500`, without reaching the server.
    Error,
}

impl Fault {
    /// Its name, for reports.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Pass => "pass",
            Fault::Reset => "reset",
            Fault::Drop => "drop",
            Fault::Stall => "stall",
            Fault::Error => "5xx",
        }
    }
}

/// What the proxy did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests whose head arrived.
    pub requests: u64,
    /// Of those, probes (`GET /v1/server`).
    pub probes: u64,
    /// Connections closed by [`Fault::Reset`].
    pub resets: u64,
    /// Connections that became black holes ([`Fault::Drop`]).
    pub black_holed: u64,
    /// Requests answered `5xx` by the proxy ([`Fault::Error`]).
    pub errors: u64,
    /// Connections closed because the server could not be reached.
    pub upstream_refused: u64,
    /// Waits for bytes that [`Fault::Stall`] held (one per wait, on either side of any
    /// connection, idle keep-alive ones included).
    pub stalled: u64,
}

const REQUESTS: usize = 0;
const PROBES: usize = 1;
const RESETS: usize = 2;
const BLACK_HOLED: usize = 3;
const ERRORS: usize = 4;
const UPSTREAM_REFUSED: usize = 5;
const STALLED: usize = 6;

/// How often a blocked connection looks at the fault in force.
const TICK: Duration = Duration::from_millis(10);

struct Shared {
    fault: Mutex<Fault>,
    upstream: SocketAddr,
    stop: AtomicBool,
    counts: [AtomicU64; 7],
}

impl Shared {
    fn fault(&self) -> Fault {
        *self.fault.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, which: usize) -> u64 {
        self.counts[which].fetch_add(1, Ordering::Relaxed)
    }
}

/// A running proxy; it stops accepting when dropped (connections end on their own).
pub struct FaultProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// A proxy on a free loopback port forwarding to `upstream`, passing everything.
    pub fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            fault: Mutex::new(Fault::Pass),
            upstream,
            stop: AtomicBool::new(false),
            counts: Default::default(),
        });
        let sh = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sh.stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let sh = sh.clone();
                std::thread::spawn(move || connection(conn, &sh));
            }
        });
        Ok(FaultProxy { addr, shared })
    }

    /// Sets the fault in force from now on.
    pub fn set(&self, fault: Fault) {
        *self.shared.fault.lock().unwrap_or_else(|p| p.into_inner()) = fault;
    }

    /// The fault in force.
    pub fn fault(&self) -> Fault {
        self.shared.fault()
    }

    /// What it did so far.
    pub fn counts(&self) -> Counts {
        let c = |i: usize| self.shared.counts[i].load(Ordering::Relaxed);
        Counts {
            requests: c(REQUESTS),
            probes: c(PROBES),
            resets: c(RESETS),
            black_holed: c(BLACK_HOLED),
            errors: c(ERRORS),
            upstream_refused: c(UPSTREAM_REFUSED),
            stalled: c(STALLED),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Wakes the accepting thread so that it sees the stop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// What reading a little more from a connection came to.
enum Pull {
    Data,
    Closed,
    Reset,
    BlackHole,
}

/// Reads what `s` has into `buf`, honouring the fault in force: waits out a stall, gives
/// up on a reset, and reports bytes lost to a drop.
fn pull(s: &mut TcpStream, buf: &mut Vec<u8>, sh: &Shared) -> Pull {
    let mut chunk = [0u8; 16 * 1024];
    let mut held = false;
    loop {
        if sh.stop.load(Ordering::Relaxed) {
            return Pull::Closed;
        }
        let fault = sh.fault();
        match fault {
            Fault::Reset => return Pull::Reset,
            Fault::Stall => {
                if !held {
                    held = true;
                    sh.count(STALLED);
                }
                std::thread::sleep(TICK);
                continue;
            }
            _ => {}
        }
        match s.read(&mut chunk) {
            Ok(0) => return Pull::Closed,
            Ok(_) if fault == Fault::Drop => return Pull::BlackHole,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Pull::Data;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return Pull::Closed,
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A message head's first line and the values of the headers the framing needs.
struct Head {
    first: String,
    content_length: Option<usize>,
    chunked: bool,
    close: bool,
}

fn parse_head(bytes: &[u8]) -> Head {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or("").to_string();
    let mut head = Head { first, content_length: None, chunked: false, close: false };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_ascii_lowercase());
        match name.as_str() {
            "content-length" => head.content_length = value.parse().ok(),
            "transfer-encoding" => head.chunked = value.contains("chunked"),
            "connection" => head.close = value.contains("close"),
            _ => {}
        }
    }
    head
}

/// Reads from `from` until `buf` holds a whole head; its length.
fn read_head(from: &mut TcpStream, buf: &mut Vec<u8>, sh: &Shared) -> Result<usize, Pull> {
    loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            return Ok(i + 4);
        }
        match pull(from, buf, sh) {
            Pull::Data => {}
            other => return Err(other),
        }
    }
}

/// Moves `len` body bytes (some perhaps already in `buf`) from `from` to `to` (or nowhere);
/// leaves in `buf` what came after them.
fn pass_body(
    from: &mut TcpStream,
    to: Option<&mut TcpStream>,
    buf: &mut Vec<u8>,
    len: usize,
    sh: &Shared,
) -> Result<(), Pull> {
    let mut to = to;
    let mut left = len;
    loop {
        let take = left.min(buf.len());
        if take > 0 {
            if let Some(t) = to.as_mut() {
                t.write_all(&buf[..take]).map_err(|_| Pull::Closed)?;
            }
            buf.drain(..take);
            left -= take;
        }
        if left == 0 {
            return Ok(());
        }
        match pull(from, buf, sh) {
            Pull::Data => {}
            other => return Err(other),
        }
    }
}

/// Moves an answer's body, framed as `head` says, from `from` to `to`; whether the
/// connection must close after it.
fn pass_answer_body(
    from: &mut TcpStream,
    to: &mut TcpStream,
    buf: &mut Vec<u8>,
    head: &Head,
    sh: &Shared,
) -> Result<bool, Pull> {
    let status: u16 =
        head.first.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    if status / 100 == 1 || status == 204 || status == 304 {
        return Ok(head.close);
    }
    if let Some(len) = head.content_length {
        pass_body(from, Some(to), buf, len, sh)?;
        return Ok(head.close);
    }
    // Chunked, or delimited by the connection closing: pass until the last chunk, or the end.
    loop {
        if head.chunked && buf.ends_with(b"0\r\n\r\n") {
            to.write_all(buf).map_err(|_| Pull::Closed)?;
            buf.clear();
            return Ok(head.close);
        }
        match pull(from, buf, sh) {
            Pull::Data => {}
            Pull::Closed => {
                let _ = to.write_all(buf);
                return Ok(true);
            }
            other => return Err(other),
        }
        if !head.chunked || buf.len() > 64 * 1024 {
            let keep = if head.chunked { buf.len().saturating_sub(8) } else { buf.len() };
            to.write_all(&buf[..keep]).map_err(|_| Pull::Closed)?;
            buf.drain(..keep);
        }
    }
}

fn refusal(n: u64) -> Vec<u8> {
    let (status, code) = match n % 3 {
        0 => ("503 Service Unavailable", "proxy.503"),
        1 => ("502 Bad Gateway", "proxy.502"),
        _ => ("500 Internal Server Error", "proxy.500"),
    };
    let body = format!(r#"{{"error":{{"code":"{code}","message":"from the fault proxy"}}}}"#);
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads and throws away what `client` sends until it gives up, answering nothing.
fn black_hole(client: &mut TcpStream, sh: &Shared) {
    sh.count(BLACK_HOLED);
    let mut chunk = [0u8; 16 * 1024];
    while !sh.stop.load(Ordering::Relaxed) {
        match client.read(&mut chunk) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

fn end(client: &mut TcpStream, upstream: Option<&mut TcpStream>, how: Pull, sh: &Shared) {
    match how {
        Pull::BlackHole => {
            if let Some(u) = upstream {
                let _ = u.shutdown(Shutdown::Both);
            }
            black_hole(client, sh);
        }
        Pull::Reset => {
            sh.count(RESETS);
            let _ = client.shutdown(Shutdown::Both);
            if let Some(u) = upstream {
                let _ = u.shutdown(Shutdown::Both);
            }
        }
        Pull::Closed | Pull::Data => {
            let _ = client.shutdown(Shutdown::Both);
            if let Some(u) = upstream {
                let _ = u.shutdown(Shutdown::Both);
            }
        }
    }
}

/// One client connection: request by request, each passed on (or broken) as the fault in
/// force says when its head arrives, and its answer passed back likewise.
fn connection(mut client: TcpStream, sh: &Shared) {
    let _ = client.set_nodelay(true);
    let _ = client.set_read_timeout(Some(TICK));
    let _ = client.set_write_timeout(Some(Duration::from_secs(10)));
    let mut upstream: Option<TcpStream> = None;
    let mut buf = Vec::new();
    loop {
        let head_len = match read_head(&mut client, &mut buf, sh) {
            Ok(n) => n,
            Err(how) => return end(&mut client, upstream.as_mut(), how, sh),
        };
        let head_bytes: Vec<u8> = buf.drain(..head_len).collect();
        let head = parse_head(&head_bytes);
        let n = sh.count(REQUESTS);
        if head.first.starts_with("GET /v1/server ") {
            sh.count(PROBES);
        }
        let body_len = head.content_length.unwrap_or(0);
        if sh.fault() == Fault::Error {
            if let Err(how) = pass_body(&mut client, None, &mut buf, body_len, sh) {
                return end(&mut client, upstream.as_mut(), how, sh);
            }
            sh.count(ERRORS);
            if client.write_all(&refusal(n)).is_err() {
                return;
            }
            continue;
        }
        if upstream.is_none() {
            match TcpStream::connect_timeout(&sh.upstream, Duration::from_secs(2)) {
                Ok(u) => {
                    let _ = u.set_nodelay(true);
                    let _ = u.set_read_timeout(Some(TICK));
                    let _ = u.set_write_timeout(Some(Duration::from_secs(10)));
                    upstream = Some(u);
                }
                Err(_) => {
                    // As a device sees a server that is down: the connection ends unanswered.
                    sh.count(UPSTREAM_REFUSED);
                    return end(&mut client, None, Pull::Closed, sh);
                }
            }
        }
        let Some(up) = upstream.as_mut() else { return };
        if up.write_all(&head_bytes).is_err() {
            return end(&mut client, Some(up), Pull::Closed, sh);
        }
        if let Err(how) = pass_body(&mut client, Some(&mut *up), &mut buf, body_len, sh) {
            return end(&mut client, Some(up), how, sh);
        }
        // The answer.
        let mut answer = Vec::new();
        let answer_head = match read_head(up, &mut answer, sh) {
            Ok(n) => n,
            Err(how) => return end(&mut client, Some(up), how, sh),
        };
        let rhead = parse_head(&answer[..answer_head]);
        if client.write_all(&answer[..answer_head]).is_err() {
            return end(&mut client, Some(up), Pull::Closed, sh);
        }
        answer.drain(..answer_head);
        let close = match pass_answer_body(up, &mut client, &mut answer, &rhead, sh) {
            Ok(c) => c,
            Err(how) => return end(&mut client, Some(up), how, sh),
        };
        if close || head.close {
            return end(&mut client, Some(up), Pull::Closed, sh);
        }
    }
}
