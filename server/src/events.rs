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

use std::cell::Cell;
use std::io::Write;
use std::net::IpAddr;

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
            _ => "logged",
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
/// served if there is one. One write per line, so lines from several workers never mix.
pub(crate) fn emit(log: &EventLog, event: &Event) {
    if !log.enabled {
        return;
    }
    let mut line = event.line(log, crate::now_us(), current_peer());
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
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
}
