//! A small client of the Chrome DevTools protocol: JSON messages over one WebSocket to
//! the browser's debugging port on loopback (<https://chromedevtools.github.io/devtools-protocol/>).
//!
//! One connection serves every page: pages are attached in "flat" mode
//! (`Target.attachToTarget` with `flatten: true`), so a command names its page by the
//! `sessionId` field and events carry it back. Several threads (tests in one binary) may
//! share a [`Connection`] behind a mutex: [`call`] holds the lock only to send and to read
//! for a short slice, parking replies and events that belong to others, so a long
//! `Runtime.evaluate` awaiting a promise does not stall another page.

use std::collections::{HashMap, VecDeque};
use std::io::ErrorKind;
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use crate::Error;

/// How long one read holds the connection before letting another thread in.
const SLICE: Duration = Duration::from_millis(40);
/// Events kept for `wait_event`; older ones are dropped (nothing reads them).
const MAX_EVENTS: usize = 10_000;
/// Console lines kept per page, for failure messages.
const MAX_CONSOLE: usize = 400;

/// An event the browser sent.
#[derive(Debug, Clone)]
pub struct Event {
    /// The method, e.g. `Page.loadEventFired`.
    pub method: String,
    /// The page session it belongs to (None: the browser itself).
    pub session_id: Option<String>,
    /// Its parameters.
    pub params: Value,
}

/// The DevTools WebSocket and what arrived on it that nobody has read yet.
pub struct Connection {
    ws: WebSocket<TcpStream>,
    next_id: u64,
    replies: HashMap<u64, Value>,
    events: VecDeque<Event>,
    console: HashMap<String, VecDeque<String>>,
    closed: bool,
}

/// A connection shared by the pages of one browser.
pub type Shared = Arc<Mutex<Connection>>;

/// Locks the shared connection, carrying on through a poisoned lock (a test that panicked
/// mid-call leaves at worst a reply nobody reads).
pub fn lock(shared: &Shared) -> MutexGuard<'_, Connection> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

impl Connection {
    /// Connects to `ws://127.0.0.1:{port}{path}` (the path from `DevToolsActivePort`).
    pub fn connect(port: u16, path: &str, timeout: Duration) -> Result<Connection, Error> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, timeout)
            .map_err(Error::io(format!("connecting to the DevTools port {port}")))?;
        stream.set_nodelay(true).map_err(Error::io("TCP_NODELAY"))?;
        stream.set_read_timeout(Some(timeout)).map_err(Error::io("read timeout"))?;
        stream.set_write_timeout(Some(timeout)).map_err(Error::io("write timeout"))?;
        // Screenshots arrive as one base64 message of a few MB.
        let config = WebSocketConfig::default()
            .max_message_size(Some(256 << 20))
            .max_frame_size(Some(256 << 20));
        let url = format!("ws://127.0.0.1:{port}{path}");
        let (ws, _) = tungstenite::client::client_with_config(url.as_str(), stream, Some(config))
            .map_err(|e| Error::WebSocket(format!("handshake with {url}: {e}")))?;
        Ok(Connection {
            ws,
            next_id: 1,
            replies: HashMap::new(),
            events: VecDeque::new(),
            console: HashMap::new(),
            closed: false,
        })
    }

    /// Sends a command; its reply is collected by [`call`] or [`Connection::take_reply`].
    pub fn send(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<u64, Error> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .map_err(|e| Error::WebSocket(format!("sending {method}: {e}")))?;
        Ok(id)
    }

    /// The reply to command `id`, if it has arrived.
    pub fn take_reply(&mut self, id: u64) -> Option<Value> {
        self.replies.remove(&id)
    }

    /// The oldest buffered event of `session` named `method` that `pred` accepts, removed.
    pub fn take_event(
        &mut self,
        session: Option<&str>,
        method: &str,
        pred: &dyn Fn(&Value) -> bool,
    ) -> Option<Event> {
        let at = self.events.iter().position(|e| {
            e.method == method && e.session_id.as_deref() == session && pred(&e.params)
        })?;
        self.events.remove(at)
    }

    /// Drops buffered events of `session` named `method` (before a navigation, so that an
    /// old page's load event is not taken for the new one's).
    pub fn clear_events(&mut self, session: Option<&str>, method: &str) {
        self.events.retain(|e| !(e.method == method && e.session_id.as_deref() == session));
    }

    /// What the page of `session` logged (console, exceptions, browser log), oldest first.
    pub fn console(&self, session: &str) -> Vec<String> {
        self.console.get(session).map(|c| c.iter().cloned().collect()).unwrap_or_default()
    }

    /// Whether the browser closed the connection.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Reads what arrives within `slice` (at least one message if one is there), filing
    /// replies and events. Returns whether anything arrived.
    pub fn pump(&mut self, slice: Duration) -> Result<bool, Error> {
        if self.closed {
            return Err(Error::WebSocket("the browser closed the DevTools connection".into()));
        }
        let slice = slice.max(Duration::from_millis(1));
        self.ws.get_mut().set_read_timeout(Some(slice)).map_err(Error::io("read timeout"))?;
        match self.ws.read() {
            Ok(Message::Text(text)) => {
                self.file(text.as_str());
                Ok(true)
            }
            Ok(Message::Close(_)) => {
                self.closed = true;
                Err(Error::WebSocket("the browser closed the DevTools connection".into()))
            }
            Ok(_) => Ok(true),
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                Ok(false)
            }
            Err(e) => {
                self.closed = true;
                Err(Error::WebSocket(e.to_string()))
            }
        }
    }

    fn file(&mut self, text: &str) {
        let Ok(v) = serde_json::from_str::<Value>(text) else { return };
        if let Some(id) = v.get("id").and_then(Value::as_u64) {
            self.replies.insert(id, v);
            return;
        }
        let Some(method) = v.get("method").and_then(Value::as_str) else { return };
        let session_id = v.get("sessionId").and_then(Value::as_str).map(String::from);
        let params = v.get("params").cloned().unwrap_or(Value::Null);
        if let (Some(s), Some(line)) = (&session_id, console_line(method, &params)) {
            let c = self.console.entry(s.clone()).or_default();
            if c.len() == MAX_CONSOLE {
                c.pop_front();
            }
            c.push_back(line);
        }
        if self.events.len() == MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(Event { method: method.to_string(), session_id, params });
    }
}

/// A console message, an uncaught exception or a browser log entry (CSP violations,
/// failed requests) as one line.
fn console_line(method: &str, p: &Value) -> Option<String> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    match method {
        "Runtime.consoleAPICalled" => {
            let args: Vec<String> = p["args"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| match x.get("value") {
                            Some(Value::String(t)) => t.clone(),
                            Some(v) => v.to_string(),
                            None => s(&x["description"]),
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(format!("console.{}: {}", s(&p["type"]), args.join(" ")))
        }
        "Runtime.exceptionThrown" => {
            let d = &p["exceptionDetails"];
            let desc = d["exception"]["description"].as_str().map(String::from);
            Some(format!("uncaught: {}", desc.unwrap_or_else(|| s(&d["text"]))))
        }
        "Log.entryAdded" => {
            let e = &p["entry"];
            Some(format!(
                "log.{} ({}): {} {}",
                s(&e["level"]),
                s(&e["source"]),
                s(&e["text"]),
                s(&e["url"])
            ))
        }
        _ => None,
    }
}

/// Sends `method` and waits up to `timeout` for its reply: its `result`, or
/// [`Error::Protocol`] with the browser's message.
pub fn call(
    shared: &Shared,
    session: Option<&str>,
    method: &str,
    params: Value,
    timeout: Duration,
) -> Result<Value, Error> {
    let started = Instant::now();
    let id = lock(shared).send(session, method, params)?;
    loop {
        {
            let mut c = lock(shared);
            if let Some(reply) = c.take_reply(id) {
                if let Some(err) = reply.get("error") {
                    let mut message = err["message"].as_str().unwrap_or("error").to_string();
                    if let Some(data) = err.get("data").and_then(Value::as_str) {
                        message = format!("{message} ({data})");
                    }
                    return Err(Error::Protocol { method: method.to_string(), message });
                }
                return Ok(reply.get("result").cloned().unwrap_or(Value::Null));
            }
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(Error::Timeout {
                    what: format!("the reply to {method}"),
                    seconds: timeout.as_secs_f64(),
                });
            }
            c.pump(left.min(SLICE))?;
        }
        // Let another thread at the connection between slices.
        std::thread::yield_now();
    }
}

/// Waits up to `timeout` for an event of `session` named `method` that `pred` accepts.
pub fn wait_event(
    shared: &Shared,
    session: Option<&str>,
    method: &str,
    pred: &dyn Fn(&Value) -> bool,
    timeout: Duration,
) -> Result<Event, Error> {
    let started = Instant::now();
    loop {
        {
            let mut c = lock(shared);
            if let Some(e) = c.take_event(session, method, pred) {
                return Ok(e);
            }
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(Error::Timeout {
                    what: format!("the event {method}"),
                    seconds: timeout.as_secs_f64(),
                });
            }
            c.pump(left.min(SLICE))?;
        }
        std::thread::yield_now();
    }
}
