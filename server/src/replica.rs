//! What a replica learns from the entries other replicas logged.
//!
//! Several `custody serve` replicas may share one custody log (a database, issue 19). Each
//! keeps in memory what it read from the log when it opened: which devices are enrolled and
//! which revoked, which members the log already names. A device enrolled through one
//! replica must be accepted by the others, and a revocation made through one must be
//! honoured by the others, so a replica reads the entries appended since it last looked
//! ([`crate::store::LogStore::entries_after`]) before it answers a device it does not know
//! (at most every [`LOOK_UNKNOWN`]) and, for a device it knows, when its last look is older
//! than [`LOOK_EVERY`]: a revocation through one replica is honoured by every other within
//! that long. A store with one writer (the data directory, memory) has nothing to read, so
//! a lone server does no more than take an uncontended lock.

use std::time::{Duration, Instant};

use custody_format::ids::PublicKey;
use custody_format::log::{EntryType, LogEntry};

use crate::server::{lock, Device, Server};
use crate::store::StoreError;

/// How old a look may be before a request from an unknown device makes another: short,
/// since a device usually uploads right after it enrolled through another replica.
pub(crate) const LOOK_UNKNOWN: Duration = Duration::from_millis(100);

/// How old a look may be before a request from a known device makes another: how long a
/// revocation through another replica may take to be honoured here.
pub(crate) const LOOK_EVERY: Duration = Duration::from_secs(1);

/// How far this replica has read the shared log for its devices and members.
#[derive(Debug)]
pub(crate) struct Replica {
    seen: tokio::sync::Mutex<Seen>,
}

#[derive(Debug)]
struct Seen {
    /// Entries read (from the start of the log).
    entries: u64,
    /// When the last look was made.
    at: Option<Instant>,
}

impl Replica {
    /// A replica that opened a log of `entries` entries (and read every one of them).
    pub(crate) fn new(entries: u64) -> Replica {
        Replica { seen: tokio::sync::Mutex::new(Seen { entries, at: None }) }
    }
}

impl Server {
    /// The enrolled device `key`, after reading what other replicas logged if this
    /// replica's last look is older than [`LOOK_UNKNOWN`] (an unknown device) or
    /// [`LOOK_EVERY`] (a known one). A store that cannot be read leaves what this replica
    /// knew.
    pub(crate) async fn device_now(&self, key: &PublicKey) -> Option<Device> {
        let known = self.device(key);
        let older_than = if known.is_some() { LOOK_EVERY } else { LOOK_UNKNOWN };
        match self.look(older_than).await {
            Ok(0) => known,
            Ok(_) => self.device(key),
            Err(e) => {
                eprintln!("custody-server: reading what other replicas logged: {e}");
                known
            }
        }
    }

    /// Reads the entries appended since the last look, unless it was made less than
    /// `older_than` ago, and applies the enrollments, revocations and member additions
    /// among them. Returns how many entries were read.
    pub(crate) async fn look(&self, older_than: Duration) -> Result<u64, StoreError> {
        let mut seen = self.inner.replica.seen.lock().await;
        if seen.at.is_some_and(|t| t.elapsed() < older_than) {
            return Ok(0);
        }
        let store = lock(&self.inner.log).store();
        let new = store.entries_after(seen.entries).await?;
        for (i, bytes) in new.iter().enumerate() {
            let entry = LogEntry::decode(bytes).map_err(|e| {
                StoreError::Damaged(format!(
                    "custody log entry {} does not parse: {e}",
                    seen.entries + i as u64
                ))
            })?;
            self.apply(&entry);
        }
        seen.entries += new.len() as u64;
        seen.at = Some(Instant::now());
        Ok(new.len() as u64)
    }

    /// Applies one entry of the shared log to what this replica holds in memory. Every
    /// entry this replica appended itself comes back here too: applying it again changes
    /// nothing (an enrollment already known is kept as it is, so a later revocation is
    /// never undone; the log's order is kept).
    fn apply(&self, e: &LogEntry) {
        match (e.entry_type, &e.device_key) {
            (EntryType::DeviceEnrolled, Some(k)) => {
                let mut devices = self.inner.devices.write().unwrap_or_else(|p| p.into_inner());
                devices.entry(k.to_bytes()).or_insert_with(|| Device {
                    label: e.label.clone().unwrap_or_default(),
                    enrolled_at_us: e.at_us,
                    revoked: false,
                });
            }
            (EntryType::DeviceRevoked, Some(k)) => {
                let mut devices = self.inner.devices.write().unwrap_or_else(|p| p.into_inner());
                if let Some(d) = devices.get_mut(&k.to_bytes()) {
                    d.revoked = true;
                }
            }
            (EntryType::MemberAdded, _) => {
                if let Some(label) = &e.label {
                    self.note_member_logged(label);
                }
            }
            _ => {}
        }
    }
}

impl Server {
    /// The receipt of `record`, stored before (`stored`, whose receipt the index lacks), if
    /// the custody log already logs it: a replica killed between its log append and its
    /// index write leaves exactly that, and on a shared store no restart rebuilds the index
    /// (`Server::open`), so the record's retry, wherever it lands, must be answered from
    /// its one entry rather than logged a second time. The receipt is a pure function of
    /// the entry and the tree under it, so it is the very receipt the killed replica would
    /// have given. `None` on the data directory's store (its restart rebuilds the index) or
    /// when the log has no such entry.
    pub(crate) fn receipt_from_log(
        &self,
        device: &PublicKey,
        record: &custody_format::record::SignedRecord,
        stored: &crate::index::Stored,
    ) -> Result<Option<Vec<u8>>, crate::ApiError> {
        use crate::ApiError;
        if !matches!(self.config().backend, crate::store::Backend::Custom(_)) {
            return Ok(None);
        }
        let failed = |what: &'static str| move |e: String| ApiError::internal(what, e);
        self.inner
            .commit
            .catch_up(&self.inner.log)
            .map_err(|e| failed("reading the custody log")(e.to_string()))?;
        let r = record.record();
        let (id, seq, hash) = (r.recording_id(), r.seq(), record.hash());
        let (indices, store) = {
            let log = lock(&self.inner.log);
            let Some(last) = log.len().checked_sub(1) else { return Ok(None) };
            (log.concerning(&id, device, last), log.store())
        };
        let entries = crate::store::block_on(store.entries(&indices))
            .map_err(|e| failed("reading the custody log")(e.to_string()))?;
        for (&index, bytes) in indices.iter().zip(&entries) {
            let Ok(e) = LogEntry::decode(bytes) else { continue };
            let logs_it = matches!(
                e.entry_type,
                EntryType::RecordingOpened | EntryType::SegmentReceived | EntryType::RecordingEnded
            ) && e.recording_id == Some(id)
                && e.seq == Some(seq)
                && e.record_hash == Some(hash)
                && e.device_key == Some(*device);
            if !logs_it {
                continue;
            }
            let Some(root) = lock(&self.inner.log).root_at(index + 1) else { continue };
            let Some(receipt) =
                crate::server::receipt_for(&e, index, root, &self.inner.identity.signing_key)
            else {
                continue;
            };
            let bytes = receipt.to_bytes();
            let mut s = stored.clone();
            s.log_index = Some(index);
            s.receipt = Some(hex::encode(&bytes));
            self.inner
                .index
                .put(&id, seq, &s)
                .map_err(|e| failed("writing the index")(e.to_string()))?;
            return Ok(Some(bytes));
        }
        Ok(None)
    }
}
