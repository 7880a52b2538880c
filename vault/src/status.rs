//! The upload state of the vault, as `custody status` shows it: per recording, what is
//! saved, what the server has receipted and what still waits (and since when), plus the
//! enrollment and the custody-log head the device holds. Nothing is asked of the server.
//!
//! What waits is counted from the files themselves, never from the index's queue: every
//! record in the journal (read past damage) without a receipt in `receipts.bin` waits,
//! whatever the queue says (a rebuilt or stale queue once made every record look
//! waiting, and a lost `receipts.bin` made none). Sealed segment files that no record
//! names, and records lost to a damaged journal, can never be receipted; they are counted
//! apart so that nothing reads as "every record is receipted" while they exist.

use std::collections::BTreeSet;

use custody_format::ids::PublicKey;
use custody_format::record::Record;
use serde::Serialize;

use crate::outbox::{self, read_receipts, Enrollment, Inconsistency, OutboxError};
use crate::store::{State, Vault};

/// The enrollment, as shown.
#[derive(Clone, Debug, Serialize)]
pub struct EnrollmentStatus {
    /// The server's URL.
    pub url: String,
    /// The label the legal team gave this device.
    pub label: String,
    /// The server's key.
    pub server_key: String,
    /// Its fingerprint, to compare with the legal team's.
    pub server_fingerprint: String,
    /// The TLS certificate's SHA-256 at enrollment, as the server named it (none for plain
    /// HTTP or behind a reverse proxy).
    pub tls_sha256: Option<String>,
    /// What is accepted of the server's TLS: `webpki` or `spki-sha256:<hex>`; none for an
    /// enrollment that still pins the certificate by `tls_sha256`.
    pub tls_pin: Option<String>,
}

/// The custody-log head the device holds.
#[derive(Clone, Debug, Serialize)]
pub struct LogHeadStatus {
    /// Entries in the tree.
    pub tree_size: u64,
    /// Its root, hex.
    pub root_hash: String,
    /// What named it: `receipt` or `tree-head`.
    pub source: String,
    /// Device time it was stored, µs since the epoch.
    pub stored_at_us: i64,
}

/// One recording's upload state.
#[derive(Clone, Debug, Serialize)]
pub struct RecordingStatus {
    /// Recording id, hex.
    pub id: String,
    /// Recording, complete or cut off.
    pub state: State,
    /// Device time recording started, µs since the epoch.
    pub started_at_us: i64,
    /// Records saved (header, segments, end).
    pub records: u64,
    /// Segments saved.
    pub segments: u64,
    /// Records with a stored receipt.
    pub records_receipted: u64,
    /// Segments with a stored receipt.
    pub segments_receipted: u64,
    /// Records waiting for a receipt: those in the journal without one in `receipts.bin`.
    pub waiting: u64,
    /// Sealed segment files in `segments/` that no record in the journal names (their
    /// records lost to damage, or never saved): kept, but they cannot be uploaded.
    pub segment_files_without_record: u64,
    /// Whether the journal was damaged (`custody vault check` says what was lost).
    pub damaged: bool,
    /// Positions known lost to that damage.
    pub records_lost: u64,
    /// Position of the oldest record waiting.
    pub oldest_waiting_seq: Option<u64>,
    /// How long the oldest waiting record has existed (device clock: now minus the
    /// record's own time), µs: the upload lag.
    pub oldest_waiting_age_us: Option<i64>,
    /// Server time of the latest receipt, µs since the epoch.
    pub last_receipt_at_us: Option<i64>,
}

/// The whole upload state.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// The enrollment, if the vault is enrolled.
    pub enrollment: Option<EnrollmentStatus>,
    /// The log head held, if any receipt came yet.
    pub log_head: Option<LogHeadStatus>,
    /// The evidence of a failed log consistency check, if one ever failed.
    pub log_inconsistent: Option<Inconsistency>,
    /// Every recording, oldest first.
    pub recordings: Vec<RecordingStatus>,
    /// Records waiting in the whole vault.
    pub waiting: u64,
    /// Sealed segment files without a record, in the whole vault.
    pub segment_files_without_record: u64,
    /// Recordings whose journal was damaged.
    pub damaged: u64,
}

fn record_time(r: &Record) -> i64 {
    match r {
        Record::Header(h) => h.started_at_us,
        Record::Segment(s) => s.wall_last_us,
        Record::End(e) => e.ended_at_us,
    }
}

/// The upload state of `vault` at device time `now_us`.
pub fn status(vault: &Vault, now_us: i64) -> Result<Status, OutboxError> {
    let dir = vault.dir();
    let enrollment = Enrollment::load(dir)?.map(|e| EnrollmentStatus {
        server_fingerprint: PublicKey::parse(&e.server_key)
            .map(|k| k.fingerprint().to_string())
            .unwrap_or_default(),
        url: e.url,
        label: e.label,
        server_key: e.server_key,
        tls_sha256: e.tls_sha256,
        tls_pin: e.tls_pin,
    });
    let log_head = outbox::held(dir)?.map(|h| LogHeadStatus {
        tree_size: h.head.tree_size,
        root_hash: h.head.root_hash,
        source: h.head.source,
        stored_at_us: h.stored_at_us,
    });
    let log_inconsistent = outbox::inconsistency(dir)?;
    let mut recordings = Vec::new();
    for l in vault.listings()? {
        let Ok(id) = custody_format::ids::RecordingId::parse(&l.summary.id) else { continue };
        let rec_dir = vault.recording_dir(&id);
        let receipts = read_receipts(&rec_dir)?;
        let receipted: BTreeSet<u64> = receipts.iter().map(|r| r.value().seq).collect();
        let records = vault.records(&id)?;
        let segments = records.iter().filter(|r| matches!(r.record(), Record::Segment(_)));
        let segments_receipted = segments
            .clone()
            .filter(|r| {
                receipts.iter().any(|x| {
                    x.value().seq == r.record().seq() && x.value().ciphertext_sha256.is_some()
                })
            })
            .count() as u64;
        let waiting: Vec<&custody_format::record::SignedRecord> =
            records.iter().filter(|r| !receipted.contains(&r.record().seq())).collect();
        let oldest = waiting.iter().map(|r| r.record().seq()).min();
        let age = waiting
            .iter()
            .find(|r| Some(r.record().seq()) == oldest)
            .map(|r| now_us.saturating_sub(record_time(r.record())));
        let named: BTreeSet<std::path::PathBuf> =
            segments.clone().map(|r| vault.segment_path(&id, r.record().seq())).collect();
        let without_record = std::fs::read_dir(rec_dir.join("segments"))
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        name.ends_with(".age")
                            && !name.starts_with('.')
                            && !named.contains(&e.path())
                    })
                    .count() as u64
            })
            .unwrap_or(0);
        let damage = vault.journal_damage(&id)?;
        let lost: BTreeSet<u64> = damage.iter().flat_map(|d| d.lost.iter().copied()).collect();
        let lost = lost.iter().filter(|s| !records.iter().any(|r| r.record().seq() == **s)).count();
        recordings.push(RecordingStatus {
            id: l.summary.id.clone(),
            state: l.state,
            started_at_us: l.summary.started_at_us,
            records: records.len() as u64,
            segments: segments.count() as u64,
            records_receipted: records
                .iter()
                .filter(|r| receipted.contains(&r.record().seq()))
                .count() as u64,
            segments_receipted,
            waiting: waiting.len() as u64,
            oldest_waiting_seq: oldest,
            oldest_waiting_age_us: age,
            last_receipt_at_us: receipts.iter().map(|r| r.value().received_at_us).max(),
            segment_files_without_record: without_record,
            damaged: !damage.is_empty(),
            records_lost: lost as u64,
        });
    }
    let sum = |f: fn(&RecordingStatus) -> u64| recordings.iter().map(f).sum::<u64>();
    Ok(Status {
        enrollment,
        log_head,
        log_inconsistent,
        waiting: sum(|r| r.waiting),
        segment_files_without_record: sum(|r| r.segment_files_without_record),
        damaged: sum(|r| u64::from(r.damaged)),
        recordings,
    })
}
