//! Uploading while `custody record` (or `custody import`) runs.
//!
//! When the vault is enrolled, the uploader runs on its own thread with its own runtime for
//! the whole recording. The recording loop only records when each record became durable
//! and nudges the uploader; it never waits for it, so a dead server just leaves records
//! in the outbox. When recording ends the uploader gets a bounded grace period to send the
//! rest, and what is still waiting is reported.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use custody_client::{Enrollment, Flushed, Options, Uploader};
use custody_format::ids::RecordingId;
use custody_vault::Vault;
use ed25519_dalek::SigningKey;

use crate::common::print;

type SavedAt = Arc<Mutex<HashMap<(RecordingId, u64), Instant>>>;

/// The uploader running beside a recording.
pub struct LiveUpload {
    uploader: Uploader,
    finish: tokio::sync::watch::Sender<Option<Duration>>,
    thread: JoinHandle<Result<Flushed, String>>,
    saved_at: SavedAt,
    receipted: Arc<AtomicU64>,
    /// End records saved, so that a receipt for one is not counted or named as a segment's.
    ends: Ends,
}

type Ends = Arc<Mutex<std::collections::HashSet<(RecordingId, u64)>>>;

/// What the uploader did over the whole recording.
pub struct Report {
    /// Its counts and failures.
    pub flushed: Flushed,
}

impl LiveUpload {
    /// Starts uploading if the vault is enrolled; `None` if it is not. A failure to start
    /// is reported and recording goes on without uploading.
    pub fn start(vault: &Vault, key: SigningKey, json: bool) -> Option<LiveUpload> {
        match Enrollment::load(vault.dir()) {
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(e) => {
                eprintln!("custody: not uploading while recording: {e}");
                return None;
            }
        }
        let mut uploader = match Uploader::new(vault, key, Options::default()) {
            Ok(u) => u,
            Err(e) => {
                eprintln!("custody: not uploading while recording: {e}");
                return None;
            }
        };
        let mut events = uploader.events();
        let (finish, finish_rx) = tokio::sync::watch::channel(None);
        let saved_at: SavedAt = Arc::default();
        let receipted = Arc::new(AtomicU64::new(0));
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("custody: not uploading while recording: starting the runtime: {e}");
                return None;
            }
        };
        let plain_lines = !json && !std::io::stderr().is_terminal();
        let ends: Ends = Arc::default();
        let (u, at, count) = (uploader.clone(), saved_at.clone(), receipted.clone());
        let is_end = ends.clone();
        let thread = std::thread::spawn(move || {
            let handle = |ev: custody_client::Receipted| {
                let end = is_end.lock().is_ok_and(|e| e.contains(&(ev.recording, ev.seq)));
                let what = match ev.seq {
                    0 => "the header".to_string(),
                    _ if end => "the end record".to_string(),
                    seq => {
                        count.fetch_add(1, Ordering::Relaxed);
                        format!("segment {seq}")
                    }
                };
                let sealed = at.lock().ok().and_then(|m| m.get(&(ev.recording, ev.seq)).copied());
                let latency_ms =
                    sealed.map(|s| ev.at.saturating_duration_since(s).as_secs_f64() * 1e3);
                if json {
                    print(&format!(
                        "{}\n",
                        serde_json::json!({
                            "event": "receipted", "recording": ev.recording.to_string(),
                            "seq": ev.seq, "latency_ms": latency_ms,
                        })
                    ));
                } else if plain_lines {
                    let lag = latency_ms
                        .map(|l| format!(", {l:.0} ms after it was saved"))
                        .unwrap_or_default();
                    eprintln!("upload: {what} of {} receipted{lag}", ev.recording);
                }
            };
            runtime.block_on(async move {
                let drive = u.run_then_flush(finish_rx);
                tokio::pin!(drive);
                let out = loop {
                    tokio::select! {
                        Some(ev) = events.recv() => handle(ev),
                        out = &mut drive => break out,
                    }
                };
                while let Ok(ev) = events.try_recv() {
                    handle(ev);
                }
                out.map_err(|e| e.to_string())
            })
        });
        Some(LiveUpload { uploader, finish, thread, saved_at, receipted, ends })
    }

    /// A record is durable: note when, and wake the uploader.
    pub fn saved(&self, id: RecordingId, seq: u64) {
        if let Ok(mut m) = self.saved_at.lock() {
            m.insert((id, seq), Instant::now());
        }
        self.uploader.nudge();
    }

    /// The end record is durable: as [`LiveUpload::saved`], and its receipt is not a
    /// segment's.
    pub fn saved_end(&self, id: RecordingId, seq: u64) {
        if let Ok(mut e) = self.ends.lock() {
            e.insert((id, seq));
        }
        self.saved(id, seq);
    }

    /// Segments receipted so far (not the header or end record).
    pub fn receipted(&self) -> u64 {
        self.receipted.load(Ordering::Relaxed)
    }

    /// Gives the uploader `grace` to send what is still queued, then stops it.
    pub fn finish(self, grace: Duration) -> Result<Report, String> {
        let _ = self.finish.send(Some(grace));
        self.uploader.nudge();
        let flushed = self.thread.join().map_err(|_| "the upload thread failed".to_string())??;
        Ok(Report { flushed })
    }
}

/// Prints what the uploader did for recording `id`; returns the log inconsistency, if the
/// server's log failed a check.
pub fn report(
    vault: &Vault,
    id: &RecordingId,
    result: Result<Report, String>,
    json: bool,
) -> Option<String> {
    let r = match result {
        Ok(r) => r.flushed,
        Err(e) => {
            eprintln!("custody: the uploader failed: {e}; the records wait in the outbox for `custody upload`");
            return None;
        }
    };
    let pending: Option<Vec<u64>> = vault
        .index()
        .pending()
        .ok()
        .map(|p| p.iter().filter(|(r, _)| *r == id.0).map(|(_, seq)| *seq).collect());
    let waiting = pending.as_ref().map_or(r.pending, |p| p.len() as u64);
    // Segments are positions 1 to the recording's segment count (0 is the header, one past
    // the last segment the end record).
    let segments = vault
        .listings()
        .ok()
        .and_then(|l| l.into_iter().find(|l| l.summary.id == id.to_string()))
        .map_or(0, |l| l.summary.segments);
    let waiting_segments = pending
        .as_ref()
        .map_or(0, |p| p.iter().filter(|s| (1..=segments).contains(*s)).count() as u64);
    if json {
        let refused = crate::upload::refused_json(&r.refused);
        print(&format!(
            "{}\n",
            serde_json::json!({
                "event": "upload", "recording": id.to_string(), "receipted": r.receipted,
                "waiting": waiting, "outbox": r.pending, "refused": refused,
                "last_error": r.last_error, "log_inconsistent": r.log_inconsistent,
            })
        ));
    } else if waiting == 0 {
        print(&format!("Uploaded: every record of recording {id} is receipted by the server.\n"));
    } else {
        print(&format!(
            "Upload: recording {id}: {} for a receipt{}; \
             they stay in the outbox: run `custody upload` when the server is reachable.\n",
            crate::status::waiting_phrase(waiting_segments, waiting),
            r.last_error.as_deref().map(|e| format!(" (last failure: {e})")).unwrap_or_default()
        ));
    }
    if !json {
        for (rid, seq, why) in &r.refused {
            print(&format!("refused: recording {rid} position {seq}: {why}\n"));
        }
    }
    r.log_inconsistent
}
