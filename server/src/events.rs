//! The server's operations log: one line on stderr for each thing that happens (a device
//! enrolled or refused, a recording opened, a segment stored, a recording ended, a bundle
//! retrieved, a device revoked, a member added, the custody log found damaged), for the
//! people running the server and their log collectors.
//!
//! It is not evidence (the custody log is) and holds no secret: never a token, a key's
//! secret half or a segment's bytes; devices by fingerprint and label (a pseudonym).
//! Observers' network addresses are left out unless the operator asks for them
//! ([`EventLog::addresses`], `custody serve --log-addresses`): a server's logs are often
//! kept, shipped and subpoenaed, and who filmed an encounter must not be findable in them.
//!
//! **Never in ingest's way.** Events are caused while the custody log is being appended
//! to, and stderr may be a pipe that nobody reads fast enough (a stalled log collector). So
//! `emit` only formats the line and hands it to a bounded queue ([`LineWriter`]); one
//! thread writes the queue to stderr. When the queue is full the line is dropped and
//! counted, and the writer says how many were dropped before the next line it writes: an
//! event line is lost rather than a receipt delayed.

use std::cell::Cell;
use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use custody_format::ids::PublicKey;
use custody_format::log::{EntryType, LogEntry};

/// How each event line is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogFormat {
    /// `custody-server: <time> <event> key=value …`, for people.
    #[default]
    Text,
    /// One JSON object per line (`{"at": …, "event": …, …}`), for log collectors.
    Json,
}

/// What the server writes to its operations log.
#[derive(Clone, Debug, Default)]
pub struct EventLog {
    /// Whether events are written at all (`custody serve` writes them; a server embedded
    /// in tests or tools stays quiet unless asked).
    pub enabled: bool,
    /// The line format.
    pub format: LogFormat,
    /// Whether a request's source address is written (off by default: observers' privacy).
    pub addresses: bool,
}

tokio::task_local! {
    /// The address of the request being served (set by the router's middleware).
    static PEER: Option<IpAddr>;
}

thread_local! {
    /// The address of the request a blocking worker is doing work for.
    static BLOCKING_PEER: Cell<Option<IpAddr>> = const { Cell::new(None) };
}

/// Runs `fut` as the work of a request from `peer`, so that the events it causes can name
/// the address when the operator asked for addresses.
pub(crate) async fn serving_for<F: std::future::Future>(peer: Option<IpAddr>, fut: F) -> F::Output {
    PEER.scope(peer, fut).await
}

/// The address of the request this code runs for, if it is known.
pub(crate) fn current_peer() -> Option<IpAddr> {
    BLOCKING_PEER.with(Cell::get).or_else(|| PEER.try_with(|p| *p).ok().flatten())
}

/// Runs `f` on a blocking worker as the work of a request from `peer`.
pub(crate) fn blocking_for<T>(peer: Option<IpAddr>, f: impl FnOnce() -> T) -> T {
    let before = BLOCKING_PEER.with(|c| c.replace(peer));
    let out = f();
    BLOCKING_PEER.with(|c| c.set(before));
    out
}

/// One event: its name and its fields, in the order written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// What happened (`segment stored`, `enrollment refused`, …).
    pub name: &'static str,
    /// Its fields, `(key, value)`.
    pub fields: Vec<(&'static str, String)>,
}

impl Event {
    /// A new event with no fields.
    pub fn new(name: &'static str) -> Event {
        Event { name, fields: Vec::new() }
    }

    /// Adds a field.
    pub fn with(mut self, key: &'static str, value: impl ToString) -> Event {
        self.fields.push((key, value.to_string()));
        self
    }

    fn device(self, key: &PublicKey) -> Event {
        self.with("device", key.fingerprint())
    }

    /// The event a custody-log entry at `index` stands for, if one is written for it
    /// (refused enrollments are written where they are refused, with their reason, since
    /// most of them are not logged in the custody log).
    pub fn of_entry(entry: &LogEntry, index: u64) -> Option<Event> {
        let name = match entry.entry_type {
            EntryType::DeviceEnrolled => "device enrolled",
            EntryType::RecordingOpened => "recording opened",
            EntryType::SegmentReceived => "segment stored",
            EntryType::RecordingEnded => "recording ended",
            EntryType::EquivocationRefused => "equivocation refused",
            EntryType::DeviceRevoked => "device revoked",
            EntryType::MemberAdded => "member added",
            EntryType::Access
                if entry.detail.as_deref().is_some_and(|d| d.starts_with("bundle")) =>
            {
                "bundle retrieved"
            }
            EntryType::Access => "evidence accessed",
            EntryType::EnrollmentRefused => return None,
            EntryType::TimeStampToken => "time-stamp token logged",
        };
        let mut e = Event::new(name);
        if let Some(id) = &entry.recording_id {
            e = e.with("recording", id);
        }
        if let Some(seq) = entry.seq {
            e = e.with("seq", seq);
        }
        if let Some(k) = &entry.device_key {
            e = e.device(k);
        }
        if let Some(l) = &entry.label {
            e = e.with("label", l);
        }
        if let Some(a) = &entry.actor {
            e = e.with("by", a);
        }
        if let Some(d) = &entry.detail {
            e = e.with("detail", d);
        }
        Some(e.with("log_index", index))
    }

    /// The line for this event at server time `at_us`, from `from` (written only if
    /// `log.addresses`), without its newline.
    pub fn line(&self, log: &EventLog, at_us: i64, from: Option<IpAddr>) -> String {
        // RFC 3339 (`2026-12-01T20:15:00Z`): one token in a text line.
        let at = custody_format::time::utc_seconds(at_us).replacen(' ', "T", 1);
        let from = from.filter(|_| log.addresses);
        match log.format {
            LogFormat::Text => {
                let mut s = format!("custody-server: {at} {}", self.name);
                for (k, v) in &self.fields {
                    s.push_str(&format!(" {k}={}", quoted(v)));
                }
                if let Some(a) = from {
                    s.push_str(&format!(" from={a}"));
                }
                s
            }
            LogFormat::Json => {
                let mut m = serde_json::Map::new();
                m.insert("at".into(), at.into());
                m.insert("event".into(), self.name.into());
                for (k, v) in &self.fields {
                    m.insert((*k).into(), v.clone().into());
                }
                if let Some(a) = from {
                    m.insert("from".into(), a.to_string().into());
                }
                serde_json::Value::Object(m).to_string()
            }
        }
    }
}

/// A value as a text line shows it: bare if it is one plain word, else JSON-quoted (so a
/// label cannot forge a field or a line).
fn quoted(v: &str) -> String {
    if !v.is_empty() && v.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '=') {
        v.to_string()
    } else {
        serde_json::Value::from(v).to_string()
    }
}

/// Writes `event` to stderr as `log` says, naming the address of the request being
/// served if there is one: queued for the writer thread, never waiting for stderr (see the
/// module documentation). One write per line, so lines never mix.
pub(crate) fn emit(log: &EventLog, event: &Event) {
    if !log.enabled {
        return;
    }
    let mut line = event.line(log, crate::now_us(), current_peer());
    line.push('\n');
    match stderr_writer() {
        Some(w) => w.send(log.format, line),
        // No thread could be started: written here, as before there was a queue.
        None => {
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }
}

/// Waits (at most `timeout`) until the event lines queued so far are written to stderr;
/// false if they were not by then. For a server that is about to exit.
pub fn flush(timeout: Duration) -> bool {
    stderr_writer().is_none_or(|w| w.flush(timeout))
}

/// Event lines that may wait for stderr; beyond it they are dropped and counted.
pub const QUEUE_LINES: usize = 4096;

/// The process's one stderr writer, started by the first event.
fn stderr_writer() -> Option<&'static LineWriter> {
    static WRITER: OnceLock<Option<LineWriter>> = OnceLock::new();
    WRITER.get_or_init(|| LineWriter::spawn(std::io::stderr(), QUEUE_LINES).ok()).as_ref()
}

enum Message {
    Line(LogFormat, String),
    Flush(SyncSender<()>),
}

/// A bounded queue of lines and the thread that writes them to a sink, in order. Sending
/// never blocks: a line that finds the queue full is dropped and counted, and the count is
/// written (as an `event lines dropped` event) before the next line that is written.
#[derive(Debug)]
pub struct LineWriter {
    tx: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

impl LineWriter {
    /// Starts the thread writing to `sink`, with room for `capacity` lines.
    pub fn spawn(mut sink: impl Write + Send + 'static, capacity: usize) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Message>(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&dropped);
        std::thread::Builder::new().name("custody-events".into()).spawn(move || {
            for message in rx {
                match message {
                    Message::Line(format, line) => {
                        let lost = counted.swap(0, Ordering::SeqCst);
                        if lost > 0 {
                            let log = EventLog { enabled: true, format, addresses: false };
                            let mut note = Event::new("event lines dropped")
                                .with("count", lost)
                                .with("why", "stderr did not keep up")
                                .line(&log, crate::now_us(), None);
                            note.push('\n');
                            let _ = sink.write_all(note.as_bytes());
                        }
                        let _ = sink.write_all(line.as_bytes());
                    }
                    Message::Flush(done) => {
                        let _ = sink.flush();
                        let _ = done.send(());
                    }
                }
            }
        })?;
        Ok(LineWriter { tx, dropped })
    }

    /// Queues `line` (with its newline), or drops and counts it if the queue is full.
    pub fn send(&self, format: LogFormat, line: String) {
        match self.tx.try_send(Message::Line(format, line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// Lines dropped and not yet reported.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::SeqCst)
    }

    /// Waits (at most `timeout`) until everything queued before is written.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (done, wait) = mpsc::sync_channel(1);
        let deadline = std::time::Instant::now() + timeout;
        let mut message = Message::Flush(done);
        // The queue may be full: retry until there is room or the time is up.
        loop {
            match self.tx.try_send(message) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(m)) => {
                    if std::time::Instant::now() >= deadline {
                        return false;
                    }
                    message = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        wait.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> LogEntry {
        let mut e = LogEntry::new(EntryType::SegmentReceived, 1_700_000_000_000_000);
        e.recording_id = Some(custody_format::ids::RecordingId([7; 16]));
        e.seq = Some(3);
        e.device_key = Some(custody_format::testkit::public("device"));
        e
    }

    #[test]
    fn a_segment_is_one_line_in_either_format_and_its_address_only_when_asked() {
        let ev = Event::of_entry(&entry(), 12).unwrap();
        let addr: IpAddr = "192.0.2.7".parse().unwrap();
        let mut log = EventLog { enabled: true, format: LogFormat::Text, addresses: false };
        let text = ev.line(&log, 1_700_000_000_000_000, Some(addr));
        assert!(text.starts_with("custody-server: 2023-11-14"), "{text}");
        assert!(text.contains(" segment stored recording=07070707"), "{text}");
        assert!(text.contains(" seq=3 ") && text.contains(" log_index=12"), "{text}");
        assert!(!text.contains("192.0.2.7") && !text.contains('\n'), "{text}");
        log.addresses = true;
        assert!(ev.line(&log, 0, Some(addr)).ends_with(" from=192.0.2.7"));
        log.format = LogFormat::Json;
        let v: serde_json::Value = serde_json::from_str(&ev.line(&log, 0, Some(addr))).unwrap();
        assert_eq!(v["event"], "segment stored");
        assert_eq!(v["seq"], "3");
        assert_eq!(v["from"], "192.0.2.7");
    }

    #[test]
    fn a_label_cannot_forge_a_field_or_a_line() {
        let mut e = LogEntry::new(EntryType::DeviceEnrolled, 0);
        e.device_key = Some(custody_format::testkit::public("device"));
        e.label = Some("obs 7\ncustody-server: x device revoked".into());
        let log = EventLog { enabled: true, ..EventLog::default() };
        let line = Event::of_entry(&e, 0).unwrap().line(&log, 0, None);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains(r#"label="obs 7\ncustody-server"#), "{line}");
    }

    #[test]
    fn the_address_of_a_blocking_workers_request() {
        let addr: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(current_peer(), None);
        assert_eq!(blocking_for(Some(addr), current_peer), Some(addr));
        assert_eq!(current_peer(), None);
    }
    /// A sink that takes nothing until the gate opens: a stderr pipe nobody reads.
    struct Stuck {
        gate: std::sync::mpsc::Receiver<()>,
        open: bool,
        out: Arc<std::sync::Mutex<Vec<u8>>>,
    }

    impl Write for Stuck {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if !self.open {
                let _ = self.gate.recv();
                self.open = true;
            }
            self.out.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_stderr_never_blocks_the_sender_and_the_lines_it_lost_are_counted() {
        let (open, gate) = std::sync::mpsc::channel();
        let out = Arc::new(std::sync::Mutex::new(Vec::new()));
        let w = LineWriter::spawn(Stuck { gate, open: false, out: Arc::clone(&out) }, 8).unwrap();
        // Sent from another thread, so that a send that blocked would show as a timeout
        // here instead of hanging the test.
        let (sent, all_sent) = std::sync::mpsc::channel();
        let sender = std::thread::spawn(move || {
            for i in 0..100 {
                w.send(LogFormat::Text, format!("line {i}\n"));
            }
            sent.send(()).unwrap();
            w
        });
        assert!(
            all_sent.recv_timeout(Duration::from_secs(30)).is_ok(),
            "a send waited for the stuck sink"
        );
        let w = sender.join().unwrap();
        open.send(()).unwrap();
        // Once what was queued is written, there is room again.
        assert!(w.flush(Duration::from_secs(30)));
        w.send(LogFormat::Text, "after\n".into());
        assert!(w.flush(Duration::from_secs(30)));
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // At most one line in the writer's hands and 8 queued got through; the rest were
        // dropped, and said so where they are missing: once, or twice when the writer took
        // the first line only after the queue had already overflowed once.
        let notes: Vec<&str> =
            lines.iter().copied().filter(|l| l.contains(" event lines dropped ")).collect();
        assert!((1..=2).contains(&notes.len()), "{text}");
        let count: usize = notes
            .iter()
            .map(|n| {
                n.split_once("count=")
                    .and_then(|(_, r)| r.split(' ').next())
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap()
            })
            .sum();
        let delivered = lines.iter().filter(|l| l.starts_with("line ")).count();
        assert!((8..=9).contains(&delivered), "{text}");
        assert_eq!(delivered + count, 100, "{text}");
        assert!(notes[0].contains("why=\"stderr did not keep up\""), "{}", notes[0]);
        assert_eq!(lines[lines.len() - 1], "after");
        assert_eq!(w.dropped(), 0, "reported once");
    }
}
