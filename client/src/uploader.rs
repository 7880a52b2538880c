//! The uploader: sends every saved record (and its sealed segment) to the enrolled server
//! and keeps the receipts.
//!
//! The uploader runs beside the recorder and never holds it up: it reads the journals and
//! segment files the recorder has already made durable, and the upload queue in the index.
//! It sends oldest recording first, in chain order, a few requests in flight. A receipt is
//! checked (the server's signature, and that it names exactly the record and ciphertext
//! sent) and appended, fsynced, to the recording's `receipts.bin` journal *before* the
//! record leaves the queue, so a kill at any moment loses no receipt and at worst sends a
//! record again (the server answers a repeat with the same receipt).
//!
//! A record must reach the server within seconds of the server being reachable again, not
//! tens of seconds later (`docs/api.md`, "What the device does"):
//! - when a request gets no answer (refused, reset, stalled), sending stops and the server
//!   is probed with a cheap `GET /v1/server`, at once and then with a backoff doubling from
//!   [`Options::base_backoff`] to [`Options::probe_max`] (a few seconds); the first answer
//!   resumes sending, the oldest record first, after the head check and the receipts asked
//!   for again, as at the start of a run;
//! - when the server answers with a failure worth retrying (busy, failing, a proxy's 5xx),
//!   every upload waits one backoff, doubling up to [`Options::max_backoff`];
//! - one success (a receipt, or a probe answered) resets every record's backoff;
//! - a stalled request is found by its progress (`progress.rs`): no byte of its body
//!   taken for [`Options::stall`], or no answer [`Options::answer`] after its last byte.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use custody_format::ids::{PublicKey, RecordingId};
use custody_format::receipt::Receipt;
use custody_format::record::{Record, SignedRecord};
use custody_format::signed::Signed;
use custody_protocol::Code;
use custody_vault::index::Index;
use custody_vault::outbox::{self, read_receipts, Enrollment, HeadRef, HeldHead};
use custody_vault::store::Vault;
use ed25519_dalek::SigningKey;
use rand_core::{OsRng, RngCore};
use serde::de::DeserializeOwned;

use crate::error::{io_err, with_causes, UploadError};
use crate::log_check::{self, Failure};
use crate::progress::{watched, Progress, TrackedBody};
use crate::receipts::{check_receipt, ReceiptBook};
use crate::records::RecordCache;
use crate::request::{json_answer, refusal, Signer};
use crate::tls;

/// How the uploader behaves.
#[derive(Clone, Debug)]
pub struct Options {
    /// Requests in flight at once.
    pub concurrency: usize,
    /// First retry delay (of a record, of a server that answered with a failure, and
    /// between probes); doubles per failure, with jitter.
    pub base_backoff: Duration,
    /// Longest retry delay of a record, and of a server that answered with a failure: a
    /// few seconds, so that no record waits long once the server is back.
    pub max_backoff: Duration,
    /// Longest delay between two probes (`GET /v1/server`) of a server that did not answer.
    pub probe_max: Duration,
    /// An upload is abandoned, and the server probed, when the connection has taken no
    /// byte of its body for this long.
    pub stall: Duration,
    /// A request is abandoned, and the server probed, when no answer has come this long
    /// after its last byte was sent (a probe or another request without a body: after it
    /// was sent).
    pub answer: Duration,
    /// A backstop only: the longest any one request may take even while it keeps making
    /// progress (stalls are found by [`Options::stall`] and [`Options::answer`]).
    pub request_timeout: Duration,
    /// How often the queue is looked at when nobody calls [`Uploader::nudge`].
    pub poll: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            concurrency: 4,
            base_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(4),
            probe_max: Duration::from_secs(2),
            stall: Duration::from_secs(3),
            answer: Duration::from_secs(3),
            request_timeout: Duration::from_secs(600),
            poll: Duration::from_millis(250),
        }
    }
}

/// A record receipted and its receipt stored.
#[derive(Clone, Debug)]
pub struct Receipted {
    /// The recording.
    pub recording: RecordingId,
    /// The record's position.
    pub seq: u64,
    /// When the receipt was stored.
    pub at: Instant,
}

/// What a flush did.
#[derive(Clone, Debug, Default)]
pub struct Flushed {
    /// Records receipted.
    pub receipted: u64,
    /// Records still queued (the server unreachable, or refusing them).
    pub pending: u64,
    /// Records the server refused for good (equivocation, bad record), with the refusal.
    pub refused: Vec<(RecordingId, u64, String)>,
    /// The last failure that will be retried (server unreachable, busy, failing), if any.
    pub last_error: Option<String>,
    /// Set when the server's log failed a consistency check (now or before): why. Nothing
    /// is sent to that server any more.
    pub log_inconsistent: Option<String>,
    /// Receipts the server gave back for records it already held whose receipts this vault
    /// had lost (`GET /v1/recordings/{id}/receipts`); none of those records was sent again.
    pub recovered: u64,
    /// Probes (`GET /v1/server`) sent while the server did not answer.
    pub probes: u64,
}

#[derive(Debug, Default)]
struct Shared {
    records: RecordCache,
    receipts: ReceiptBook,
    retry: HashMap<(RecordingId, u64), (u32, Instant)>,
    refused: HashMap<(RecordingId, u64), String>,
}

/// The uploader. Cheap to clone; clones share state.
#[derive(Clone, Debug)]
pub struct Uploader {
    pub(crate) dir: PathBuf,
    pub(crate) index: Index,
    pub(crate) signer: Signer,
    pub(crate) server_key: PublicKey,
    url: String,
    client: reqwest::Client,
    opts: Options,
    shared: Arc<Mutex<Shared>>,
    wake: Arc<tokio::sync::Notify>,
    events: Option<tokio::sync::mpsc::UnboundedSender<Receipted>>,
    /// The largest log head seen; held across a check so heads advance one at a time.
    pub(crate) held: Arc<tokio::sync::Mutex<Option<HeldHead>>>,
    /// Why the server is no longer trusted, once its log failed a check.
    pub(crate) distrust: Arc<Mutex<Option<String>>>,
}

fn locked(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

enum Outcome {
    /// Receipted by this upload.
    Done,
    /// Its receipt was already held (asked for again through the receipts route while the
    /// record waited): dequeued, not counted again as receipted.
    Held,
    /// This record's own trouble (its receipt does not check, the log proof could not be
    /// had, a local failure): it waits its own backoff.
    Retry(String),
    /// The server answered with a failure worth retrying: every upload waits a backoff.
    ServerFailed(String),
    /// No answer (refused, reset, stalled): sending stops until a probe is answered.
    Unreachable(String),
    Refused(String),
    Distrust(String),
}

/// Whether the server answers, as the uploads and probes found.
#[derive(Clone, Copy, Debug)]
enum Link {
    Up,
    /// Nothing is sent; the next probe goes at `probe_at`, the one after `delay` later.
    Down {
        probe_at: Instant,
        delay: Duration,
    },
}

impl Uploader {
    /// An uploader for `vault`, which must be enrolled, signing with `device_key`.
    pub fn new(vault: &Vault, device_key: SigningKey, opts: Options) -> Result<Self, UploadError> {
        let e = Enrollment::load(vault.dir())?.ok_or(UploadError::NotEnrolled)?;
        let pin = tls::enrollment_pin(&e.url, e.tls_pin.as_deref(), e.tls_sha256.as_deref())
            .map_err(UploadError::BadAnswer)?;
        // A vault enrolled before key pins keeps the key of the certificate it pinned (or
        // the authorities, if publicly trusted) once it has met that certificate again.
        let dir = vault.dir().to_path_buf();
        let migrate: tls::OnNewPin = Arc::new(move |new: tls::TlsPin| {
            if let Ok(Some(mut e)) = Enrollment::load(&dir) {
                if e.tls_pin.is_none() {
                    e.tls_pin = new.to_stored();
                    // If this cannot be saved, the next uploader tries again; the
                    // certificate pin still holds meanwhile.
                    let _ = e.save(&dir);
                }
            }
        });
        let (client, _) =
            tls::client(pin, opts.request_timeout, Some(migrate)).map_err(UploadError::Network)?;
        let dir = vault.dir();
        let held = outbox::held(dir)?.filter(|h| h.server_key == e.server_key);
        let distrust =
            outbox::inconsistency(dir)?.filter(|i| i.server_key == e.server_key).map(|i| i.message);
        let server_key = e.server_key()?;
        Ok(Uploader {
            dir: vault.dir().to_path_buf(),
            index: vault.index().clone(),
            signer: Signer {
                public: PublicKey::from(device_key.verifying_key()),
                key: device_key,
                server_key,
            },
            server_key,
            url: e.url,
            client,
            opts,
            shared: Arc::default(),
            wake: Arc::default(),
            events: None,
            held: Arc::new(tokio::sync::Mutex::new(held)),
            distrust: Arc::new(Mutex::new(distrust)),
        })
    }

    /// Why this server is no longer trusted, if its log failed a consistency check.
    pub fn distrusted(&self) -> Option<String> {
        self.distrust.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A signed `GET` answered with the JSON body `T`.
    pub(crate) async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, UploadError> {
        // No body: the answer is due within the answer period of the request.
        let req = self.client.get(format!("{}{path}", self.url)).timeout(self.opts.answer);
        json_answer(self.signer.sign(req, "GET", path, b"")).await
    }

    /// The cheap probe of a server that did not answer: `GET /v1/server` (unsigned, small).
    /// Any HTTP answer, even a refusal, shows the server (or the way to it) is back.
    async fn probe(&self) -> Result<(), String> {
        let req = self.client.get(format!("{}/v1/server", self.url)).timeout(self.opts.answer);
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) => Err(UploadError::Network(with_causes(&e)).to_string()),
        }
    }

    /// Sends a [`Receipted`] event for every receipt stored (for status lines and tests).
    pub fn events(&mut self) -> tokio::sync::mpsc::UnboundedReceiver<Receipted> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.events = Some(tx);
        rx
    }

    /// Tells the uploader a record was just saved, so it need not wait for its next poll.
    pub fn nudge(&self) {
        self.wake.notify_one();
    }

    pub(crate) fn rec_dir(&self, id: &RecordingId) -> PathBuf {
        self.dir.join("recordings").join(id.to_string())
    }

    /// The receipts stored for a recording.
    pub fn receipts(&self, id: &RecordingId) -> Result<Vec<Signed<Receipt>>, UploadError> {
        Ok(read_receipts(&self.rec_dir(id))?)
    }

    /// The queue, oldest recording first, each in chain order, without what is in flight,
    /// waiting out a backoff, or refused for good.
    fn due(
        &self,
        in_flight: &HashSet<(RecordingId, u64)>,
    ) -> Result<Vec<(RecordingId, u64)>, UploadError> {
        let mut pending = self.index.pending()?;
        let started: HashMap<[u8; 16], i64> = pending
            .iter()
            .map(|(id, _)| {
                let t = self.index.summary(id).ok().flatten().map_or(i64::MAX, |s| s.started_at_us);
                (*id, t)
            })
            .collect();
        pending.sort_by_key(|(id, seq)| (started.get(id).copied().unwrap_or(i64::MAX), *id, *seq));
        let now = Instant::now();
        let sh = locked(&self.shared);
        Ok(pending
            .into_iter()
            .map(|(id, seq)| (RecordingId(id), seq))
            .filter(|k| {
                !in_flight.contains(k)
                    && !sh.refused.contains_key(k)
                    && sh.retry.get(k).is_none_or(|(_, at)| *at <= now)
            })
            .collect())
    }

    /// The record at `seq`, from the journal: only what was appended since the last read
    /// is read and parsed ([`RecordCache`]), so a recording costs the same per record at
    /// its end as at its start.
    pub(crate) fn record(
        &self,
        id: &RecordingId,
        seq: u64,
    ) -> Result<Option<SignedRecord>, UploadError> {
        let path = self.rec_dir(id).join("journal.bin");
        locked(&self.shared).records.get(id, &path, seq).map_err(io_err("reading", &path))
    }

    /// Whether a receipt for `seq` is already stored (after an index rebuild re-queues it).
    pub(crate) fn has_receipt(&self, id: &RecordingId, seq: u64) -> Result<bool, UploadError> {
        let dir = self.rec_dir(id);
        locked(&self.shared).receipts.has(id, &dir, seq)
    }

    /// Appends a receipt to the recording's journal (fsynced), then dequeues the record.
    /// Returns whether the receipt was new (false: one was already held).
    pub(crate) fn store_receipt(
        &self,
        id: &RecordingId,
        seq: u64,
        receipt: &Signed<Receipt>,
    ) -> Result<bool, UploadError> {
        self.store_receipt_counted(id, seq, receipt, None)
    }

    /// [`Uploader::store_receipt`], adding one to `counter` when the receipt is new, before
    /// the [`Receipted`] event goes out: whoever stops a run on that event then finds it
    /// counted.
    fn store_receipt_counted(
        &self,
        id: &RecordingId,
        seq: u64,
        receipt: &Signed<Receipt>,
        counter: Option<&AtomicU64>,
    ) -> Result<bool, UploadError> {
        let dir = self.rec_dir(id);
        let mut sh = locked(&self.shared);
        // The receipts asked for again after the server came back may have brought this one
        // while its upload was in flight: keep one.
        let new = !sh.receipts.has(id, &dir, seq)?;
        if new {
            sh.receipts.append(id, &dir, receipt)?;
        }
        sh.records.forget(id, seq);
        sh.retry.remove(&(*id, seq));
        drop(sh);
        self.index.dequeue(&id.0, seq)?;
        if let (true, Some(c)) = (new, counter) {
            c.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(tx) = &self.events {
            let _ = tx.send(Receipted { recording: *id, seq, at: Instant::now() });
        }
        Ok(new)
    }

    /// Uploads one record and, for a segment, its sealed file. `stored` counts the receipt
    /// when this upload stores it, at the moment it is stored: the run that spawned the
    /// upload may stop (and abort it) between the store and its outcome being read, and a
    /// receipt stored must be counted all the same.
    async fn upload_one(&self, id: RecordingId, seq: u64, stored: Arc<AtomicU64>) -> Outcome {
        match self.has_receipt(&id, seq) {
            Ok(true) => {
                let _ = self.index.dequeue(&id.0, seq);
                return Outcome::Held;
            }
            Ok(false) => {}
            Err(e) => return Outcome::Retry(e.to_string()),
        }
        let record = match self.record(&id, seq) {
            Ok(Some(r)) => r,
            Ok(None) => return Outcome::Refused("no such record in the journal".into()),
            Err(e) => return Outcome::Retry(e.to_string()),
        };
        let mut body = record.to_bytes();
        if let Record::Segment(_) = record.record() {
            let path = self.rec_dir(&id).join("segments").join(format!("{seq:08}.age"));
            match tokio::task::spawn_blocking(move || std::fs::read(path)).await {
                Ok(Ok(ct)) => body.extend_from_slice(&ct),
                Ok(Err(e)) => return Outcome::Retry(format!("reading the segment: {e}")),
                Err(e) => return Outcome::Retry(e.to_string()),
            }
        }
        let path = format!("/v1/recordings/{id}/records/{seq}");
        let req = self.client.put(format!("{}{path}", self.url));
        let req = self.signer.sign(req, "PUT", &path, &body);
        let progress = Progress::new();
        let req = req
            .header(reqwest::header::CONTENT_LENGTH, body.len())
            .body(reqwest::Body::wrap(TrackedBody::new(body, progress.clone())));
        let exchange = async {
            let resp = req.send().await.map_err(|e| with_causes(&e))?;
            if resp.status().as_u16() != 200 {
                return Ok(Err(refusal(resp).await));
            }
            resp.bytes().await.map(Ok).map_err(|e| with_causes(&e))
        };
        let bytes = match watched(&progress, self.opts.stall, self.opts.answer, exchange).await {
            Ok(Ok(Ok(bytes))) => bytes,
            Ok(Ok(Err(err))) => {
                // The record itself is refused: sending it again cannot help. Everything
                // else (server trouble, limits, clock, a stalled body) is worth retrying.
                let permanent = err.code().is_some_and(Code::rejects_record);
                return if permanent {
                    Outcome::Refused(err.to_string())
                } else {
                    Outcome::ServerFailed(err.to_string())
                };
            }
            Ok(Err(e)) => return Outcome::Unreachable(UploadError::Network(e).to_string()),
            Err(stalled) => {
                return Outcome::Unreachable(UploadError::Network(stalled.to_string()).to_string())
            }
        };
        let receipt = match check_receipt(&bytes, &record, &self.server_key, &self.signer.public) {
            Ok(r) => r,
            Err(e) => return Outcome::Retry(e),
        };
        // The receipt's tree must extend (or be extended by) the log head already held;
        // until that is shown the receipt is not stored and the record stays queued.
        let offered = HeadRef {
            tree_size: receipt.value().tree_size,
            root_hash: hex::encode(receipt.value().tree_root),
            source: "receipt".into(),
            signed: hex::encode(&bytes),
        };
        match self.check_log(offered).await {
            Ok(()) => {}
            Err(Failure::Retry(why)) => return Outcome::Retry(why),
            Err(Failure::Inconsistent(i)) => return Outcome::Distrust(i.message),
        }
        let this = self.clone();
        let stored_here = move || this.store_receipt_counted(&id, seq, &receipt, Some(&stored));
        match tokio::task::spawn_blocking(stored_here).await {
            Ok(Ok(true)) => Outcome::Done,
            Ok(Ok(false)) => Outcome::Held,
            Ok(Err(e)) => Outcome::Retry(e.to_string()),
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let exp = self.opts.base_backoff.saturating_mul(1u32 << attempts.min(16));
        let capped = exp.min(self.opts.max_backoff);
        // Full jitter over the upper half, so devices knocked off together do not return
        // together.
        let r = (OsRng.next_u32() % 1000) as f64 / 1000.0;
        capped.mul_f64(0.5 + r / 2.0)
    }

    /// The delay before the next probe after one that was not answered: doubling, with
    /// jitter, up to [`Options::probe_max`].
    fn next_probe(&self, delay: Duration) -> (Instant, Duration) {
        let r = (OsRng.next_u32() % 1000) as f64 / 1000.0;
        let at = Instant::now() + delay.mul_f64(0.5 + r / 2.0);
        (at, delay.saturating_mul(2).min(self.opts.probe_max.max(self.opts.base_backoff)))
    }

    /// The head check and the receipts asked for again: at the start of a run, and each
    /// time the server answers again after it did not (a record whose answer was lost on
    /// the way is then not sent again).
    async fn start_of_run(&self, out: &mut Flushed) {
        if self.distrusted().is_none() {
            match self.check_head().await {
                Ok(()) | Err(UploadError::LogInconsistent(_)) => {}
                Err(e) => out.last_error = Some(e.to_string()),
            }
        }
        if self.distrusted().is_none() {
            out.recovered += self.recover_receipts().await;
        }
    }

    /// Runs the queue until it is empty or `deadline` passes (`flush`), or, with `stop`,
    /// until `stop` names a grace period, and from then on as a flush bounded by it
    /// (`run`, `run_then_flush`).
    async fn drive(
        &self,
        mut until_empty: bool,
        mut deadline: Option<Instant>,
        mut stop: Option<tokio::sync::watch::Receiver<Option<Duration>>>,
    ) -> Result<Flushed, UploadError> {
        let mut set = tokio::task::JoinSet::new();
        let mut in_flight = HashSet::new();
        let mut out = Flushed::default();
        // Receipts this run's uploads stored (see `upload_one`): `out.receipted` at the end.
        let stored = Arc::new(AtomicU64::new(0));
        let mut link = Link::Up;
        let mut probing: Option<tokio::task::JoinHandle<Result<(), String>>> = None;
        // The server answered with failures: how many in a row, and nothing is sent before.
        let mut gate: Option<(u32, Instant)> = None;
        self.start_of_run(&mut out).await;
        let mut fresh = false;
        loop {
            if let Some(grace) = stop.as_ref().and_then(|s| *s.borrow()) {
                // Stopped: what is queued now gets the grace period to go out.
                until_empty = true;
                deadline = Some(Instant::now() + grace);
                stop = None;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                break;
            }
            let distrusted = self.distrusted().is_some();
            if distrusted && until_empty {
                break;
            }
            if fresh && matches!(link, Link::Up) {
                fresh = false;
                self.start_of_run(&mut out).await;
                continue;
            }
            // A server whose log failed a check is sent nothing more; the queue stays.
            let due = if distrusted { Vec::new() } else { self.due(&in_flight)? };
            let gate_open = gate.is_none_or(|(_, at)| at <= now);
            match link {
                Link::Up if gate_open => {
                    for k in due.iter().take(self.opts.concurrency.saturating_sub(in_flight.len()))
                    {
                        in_flight.insert(*k);
                        let this = self.clone();
                        let (id, seq) = *k;
                        let stored = Arc::clone(&stored);
                        set.spawn(
                            async move { ((id, seq), this.upload_one(id, seq, stored).await) },
                        );
                    }
                }
                Link::Up => {}
                Link::Down { probe_at, .. } => {
                    if probing.is_none() && probe_at <= now && !distrusted {
                        out.probes += 1;
                        let this = self.clone();
                        probing = Some(tokio::spawn(async move { this.probe().await }));
                    }
                }
            }
            if until_empty && in_flight.is_empty() && due.is_empty() {
                let waiting = locked(&self.shared).retry.len();
                if waiting == 0 {
                    break;
                }
            }
            // Wake for the next poll, probe, open gate or record due, whichever is first.
            let mut wake = now + self.opts.poll;
            if let Link::Down { probe_at, .. } = link {
                if probing.is_none() {
                    wake = wake.min(probe_at);
                }
            }
            if let Some((_, at)) = gate.filter(|(_, at)| *at > now) {
                wake = wake.min(at);
            }
            let next_due =
                locked(&self.shared).retry.values().map(|(_, at)| *at).filter(|at| *at > now).min();
            if let Some(at) = next_due {
                wake = wake.min(at);
            }
            if let Some(d) = deadline {
                wake = wake.min(d);
            }
            let tick = tokio::time::sleep_until(tokio::time::Instant::from_std(wake));
            tokio::select! {
                Some(done) = set.join_next(), if !set.is_empty() => {
                    let Ok((k, outcome)) = done else { continue };
                    in_flight.remove(&k);
                    match outcome {
                        Outcome::Held => {}
                        Outcome::Done => {
                            // One success resets every record's backoff, and the server's.
                            locked(&self.shared).retry.clear();
                            gate = None;
                            link = Link::Up;
                        }
                        Outcome::Retry(why) => {
                            out.last_error = Some(why);
                            let mut sh = locked(&self.shared);
                            let attempts = sh.retry.get(&k).map_or(0, |(a, _)| *a);
                            let at = Instant::now() + self.backoff(attempts);
                            sh.retry.insert(k, (attempts + 1, at));
                        }
                        Outcome::ServerFailed(why) => {
                            // It answered: it is there, but every upload waits a little.
                            out.last_error = Some(why);
                            link = Link::Up;
                            let failures = gate.map_or(0, |(f, _)| f);
                            gate = Some((failures + 1, Instant::now() + self.backoff(failures)));
                        }
                        Outcome::Unreachable(why) => {
                            out.last_error = Some(why);
                            if matches!(link, Link::Up) {
                                // Probe at once: a connection that broke says little about
                                // the next one.
                                link = Link::Down {
                                    probe_at: Instant::now(),
                                    delay: self.opts.base_backoff,
                                };
                            }
                        }
                        Outcome::Distrust(why) => {
                            out.last_error = Some(format!("{}: {why}", log_check::CODE));
                        }
                        Outcome::Refused(why) => {
                            out.refused.push((k.0, k.1, why.clone()));
                            let mut sh = locked(&self.shared);
                            sh.retry.remove(&k);
                            sh.refused.insert(k, why);
                        }
                    }
                }
                answered = async {
                    match probing.as_mut() {
                        Some(p) => p.await,
                        None => std::future::pending().await,
                    }
                } => {
                    probing = None;
                    match answered.unwrap_or_else(|e| Err(e.to_string())) {
                        Ok(()) => {
                            if matches!(link, Link::Down { .. }) {
                                // Back: every record goes now, oldest first, after the
                                // head check and the receipts asked for again.
                                locked(&self.shared).retry.clear();
                                gate = None;
                                link = Link::Up;
                                fresh = true;
                            }
                        }
                        Err(why) => {
                            out.last_error = Some(why);
                            if let Link::Down { delay, .. } = link {
                                let (probe_at, delay) = self.next_probe(delay);
                                link = Link::Down { probe_at, delay };
                            }
                        }
                    }
                }
                _ = self.wake.notified() => {}
                _ = tick => {}
                _ = async {
                    // A dropped sender changes nothing more: wait forever, not in a loop.
                    let changed = match stop.as_mut() {
                        Some(s) => s.changed().await.is_ok(),
                        None => false,
                    };
                    if !changed {
                        std::future::pending::<()>().await;
                    }
                } => {}
            }
        }
        set.abort_all();
        if let Some(p) = probing {
            p.abort();
        }
        // An upload aborted above may still be storing its receipt on a blocking worker;
        // what was stored by now is counted (one stored after is in the receipts book and
        // dequeued, and the next run finds it held).
        out.receipted = stored.load(Ordering::SeqCst);
        out.pending = self.index.pending()?.len() as u64;
        out.log_inconsistent = self.distrusted();
        Ok(out)
    }

    /// Uploads everything queued, retrying with backoff, until the queue is empty (except
    /// records refused for good) or `timeout` passes.
    pub async fn flush(&self, timeout: Duration) -> Result<Flushed, UploadError> {
        self.drive(true, Some(Instant::now() + timeout), None).await
    }

    /// Uploads records as they are saved until `stop` turns true. Recording never waits
    /// for this: it only reads what the recorder has already made durable.
    pub async fn run(
        &self,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Flushed, UploadError> {
        let (tx, rx) = tokio::sync::watch::channel(None);
        let relay = tokio::spawn(async move {
            let _ = stop.wait_for(|s| *s).await;
            let _ = tx.send(Some(Duration::ZERO));
        });
        let out = self.drive(false, None, Some(rx)).await;
        relay.abort();
        out
    }

    /// Uploads records as they are saved until `finish` names a grace period, then keeps
    /// going until the queue is empty or the grace period has passed, without interrupting
    /// the uploads in flight (`custody record` at the end of a recording).
    pub async fn run_then_flush(
        &self,
        finish: tokio::sync::watch::Receiver<Option<Duration>>,
    ) -> Result<Flushed, UploadError> {
        self.drive(false, None, Some(finish)).await
    }
}
