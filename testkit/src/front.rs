//! A TCP load-balancing front on loopback, std only: what a legal team puts before several
//! `custody serve` replicas (HAProxy `mode tcp`, nginx `stream`), small enough to start in a
//! test.
//!
//! Each accepted connection goes to the next backend in turn (round-robin); a backend that
//! refuses the connection (a replica killed, not yet restarted) is skipped and the next one
//! tried, so a client is turned away only when every backend refuses. The bytes are passed
//! through untouched in both directions, TLS included: the front never terminates TLS,
//! because every replica serves the same certificate and devices pin its key
//! (docs/deploy.md, "Several replicas"). A connection whose backend dies is closed on the
//! client's side too, as a real load balancer does, so the client sees a reset or an end of
//! stream, never a hang.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a backend may take to accept a connection before the next one is tried. On
/// loopback a dead backend refuses at once; this bounds a wedged one.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

struct Shared {
    backends: Mutex<Vec<SocketAddr>>,
    /// Connections passed to each backend so far.
    passed: Mutex<Vec<u64>>,
    /// Connections turned away because every backend refused.
    refused: AtomicUsize,
    next: AtomicUsize,
    stop: AtomicBool,
    /// The sockets of the connections in progress (client side and backend side), by
    /// connection number, so that [`Front::cut`] and the drop can close them.
    open: Mutex<Vec<(u64, usize, TcpStream)>>,
    serial: Mutex<u64>,
}

/// A round-robin TCP front on `127.0.0.1:PORT`, stopped (and every connection through it
/// closed) when dropped.
pub struct Front {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Front {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Front").field("addr", &self.addr).finish()
    }
}

impl Front {
    /// Binds an ephemeral port on 127.0.0.1 and passes its connections to `backends` in
    /// turn, from a thread of its own (and two threads per connection).
    pub fn start(backends: Vec<SocketAddr>) -> io::Result<Front> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            passed: Mutex::new(vec![0; backends.len()]),
            backends: Mutex::new(backends),
            refused: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
            serial: Mutex::new(0),
        });
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("custody-testkit-front".into())
            .spawn(move || accept(listener, &s))?;
        Ok(Front { addr, shared, thread: Some(thread) })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Points backend `i` at `addr` (a replica restarted elsewhere); connections already
    /// passed to it are left alone. Out of range: nothing happens.
    pub fn set_backend(&self, i: usize, addr: SocketAddr) {
        if let Ok(mut b) = self.shared.backends.lock() {
            if let Some(slot) = b.get_mut(i) {
                *slot = addr;
            }
        }
    }

    /// Connections passed to each backend so far, in the order the backends were given.
    pub fn passed(&self) -> Vec<u64> {
        self.shared.passed.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Connections turned away so far because every backend refused them.
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// Closes every connection in progress to backend `i`, both ways, as a load balancer
    /// does when it marks a backend down. Returns how many were closed.
    pub fn cut(&self, i: usize) -> usize {
        let Ok(open) = self.shared.open.lock() else { return 0 };
        let mut n = 0;
        for (_, b, s) in open.iter() {
            if *b == i {
                let _ = s.shutdown(Shutdown::Both);
                n += 1;
            }
        }
        n / 2
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Ok(open) = self.shared.open.lock() {
            for (_, _, s) in open.iter() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

fn accept(listener: TcpListener, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else {
            // Out of file descriptors and the like: wait a moment rather than spin.
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        match connect_next(shared) {
            Some((i, backend)) => {
                if let Err(e) = pass(shared, client, i, backend) {
                    eprintln!("custody-testkit front: passing a connection: {e}");
                }
            }
            None => {
                shared.refused.fetch_add(1, Ordering::SeqCst);
                // Every backend refused: close the client's connection, as a front with no
                // healthy backend does.
                let _ = client.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Connects to the next backend that accepts, starting after the last one used; each is
/// tried once.
fn connect_next(shared: &Shared) -> Option<(usize, TcpStream)> {
    let backends = shared.backends.lock().ok()?.clone();
    let n = backends.len();
    for _ in 0..n {
        let i = shared.next.fetch_add(1, Ordering::SeqCst) % n;
        if let Ok(s) = TcpStream::connect_timeout(&backends[i], CONNECT_TIMEOUT) {
            return Some((i, s));
        }
    }
    None
}

/// Copies the bytes both ways on two threads until either side ends.
fn pass(shared: &Arc<Shared>, client: TcpStream, i: usize, backend: TcpStream) -> io::Result<()> {
    let _ = client.set_nodelay(true);
    let _ = backend.set_nodelay(true);
    let serial = {
        let mut s = shared.serial.lock().map_err(|_| io::Error::other("poisoned"))?;
        *s += 1;
        *s
    };
    if let Ok(mut open) = shared.open.lock() {
        open.push((serial, i, client.try_clone()?));
        open.push((serial, i, backend.try_clone()?));
    }
    if let Ok(mut p) = shared.passed.lock() {
        if let Some(c) = p.get_mut(i) {
            *c += 1;
        }
    }
    let (c2, b2) = (client.try_clone()?, backend.try_clone()?);
    let s = Arc::clone(shared);
    std::thread::Builder::new().name("custody-testkit-front-up".into()).spawn(move || {
        copy(client, b2);
        forget(&s, serial);
    })?;
    std::thread::Builder::new()
        .name("custody-testkit-front-down".into())
        .spawn(move || copy(backend, c2))?;
    Ok(())
}

/// Copies `from` to `to` until `from` ends or fails, then closes both: a half-closed
/// connection is not worth keeping for HTTP/1.1 clients, and closing both wakes the other
/// direction's thread.
fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

fn forget(shared: &Shared, serial: u64) {
    if let Ok(mut open) = shared.open.lock() {
        open.retain(|(s, _, _)| *s != serial);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend that answers each connection with its name and the bytes it got.
    fn echo(name: &'static str) -> (SocketAddr, JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            for s in l.incoming().take(2) {
                let mut s = s.unwrap();
                let mut b = [0u8; 5];
                s.read_exact(&mut b).unwrap();
                s.write_all(name.as_bytes()).unwrap();
                s.write_all(&b).unwrap();
            }
        });
        (addr, t)
    }

    fn ask(front: &Front, what: &[u8; 5]) -> String {
        let mut s = TcpStream::connect(front.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(what).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn connections_go_round_robin_and_skip_a_backend_that_refuses() {
        let (a, ta) = echo("a:");
        let (b, tb) = echo("b:");
        // A port nobody listens on: bound, then let go.
        let dead = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let front = Front::start(vec![a, dead, b]).unwrap();
        let got: Vec<String> = (0..4).map(|_| ask(&front, b"hello")).collect();
        assert_eq!(got, ["a:hello", "b:hello", "a:hello", "b:hello"]);
        assert_eq!(front.passed(), vec![2, 0, 2]);
        ta.join().unwrap();
        tb.join().unwrap();
        // Now nobody answers: the client's connection is closed without a byte.
        front.set_backend(0, dead);
        front.set_backend(2, dead);
        assert_eq!(ask(&front, b"again"), "");
        assert_eq!(front.refused(), 1);
    }
}
