//! The vault on disk: recordings as journals and sealed segment files, and the index.
//!
//! ```text
//! <vault>/device.key, device.pub        the device identity (keys.rs)
//! <vault>/config.json                   recipients
//! <vault>/recordings/<id>/journal.bin   the signed records, append-only (journal.rs)
//! <vault>/recordings/<id>/segments/NNNNNNNN.age   sealed segments, one file each
//! <vault>/recordings/<id>/LOCK          held (flock) while the recording is being made
//! <vault>/index/                        sled: summaries and upload queue, rebuildable
//! ```
//!
//! A segment counts as saved when its sealed file has been fsynced and renamed into place
//! (directory fsynced) *and* its signed record has been appended to the journal and
//! fsynced, in that order: a record never names a segment file that is not there.
//!
//! A journal is read past damage ([`crate::damage`]): every intact record is kept,
//! wherever it lies, and uploaded.

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use custody_format::chain::{ChainBuilder, ChainError, SegmentFields};
use custody_format::ids::{PublicKey, RecordingId};
use custody_format::record::{EndReason, Gap, Record, RecordingHeader, SignedRecord};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::damage::{damaged_copies, record_filter, JournalDamage};
use crate::index::{Index, Summary};
use crate::outbox;
use crate::seal::{Sealed, Sealer};
use custody_durable::fsutil::{sync_dir, DurableFile};
use custody_durable::journal::{self, Journal, Scan};

/// Vault errors.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VaultError {
    /// A file operation failed.
    #[error("{what} ({path}): {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// The index failed even after a rebuild.
    #[error("the index at {path} failed: {source}")]
    Index {
        /// Its path.
        path: String,
        /// The cause.
        source: sled::Error,
    },
    /// The chain could not be started.
    #[error("{0}")]
    Chain(#[from] ChainError),
    /// No recording with this id.
    #[error("no recording {0} in this vault")]
    NoSuchRecording(String),
    /// The recording is being written by a running process.
    #[error("recording {0} is being recorded by another process")]
    Busy(String),
    /// A segment sealed for one position was given to be recorded at another (a bug in
    /// the caller: records follow positions).
    #[error("a segment sealed for position {sealed_for} cannot be recorded at position {next}")]
    OutOfOrder {
        /// The position it was sealed for.
        sealed_for: u64,
        /// The position the next record takes.
        next: u64,
    },
    /// The config file is not valid.
    #[error("{path} is not a valid vault config: {reason}")]
    Config {
        /// Its path.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> VaultError + 'a {
    move |source| VaultError::Io { what, path: path.display().to_string(), source }
}

/// The vault's configuration (`config.json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// age X25519 recipients (`age1…`) every new recording is encrypted to.
    #[serde(default)]
    pub recipients: Vec<String>,
}

/// Something the vault repaired or noticed while opening, to tell the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice(pub String);

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The state of a local recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Being recorded now by a running process.
    Recording,
    /// Ended with an end record.
    Complete,
    /// No end record and nobody recording: cut off (killed, crashed, seized).
    CutOff,
    /// Its journal was damaged: some records are lost (`custody vault check` says which);
    /// every intact one is kept and uploaded.
    Damaged,
}

/// A local recording as `custody recordings` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Listing {
    /// Its summary.
    #[serde(flatten)]
    pub summary: Summary,
    /// Its state.
    pub state: State,
    /// Records still waiting for a receipt.
    pub pending_upload: u64,
}

/// An open vault.
#[derive(Debug)]
pub struct Vault {
    dir: PathBuf,
    index: Index,
}

const INDEX_DIR: &str = "index";
const RECORDINGS_DIR: &str = "recordings";
const CONFIG_FILE: &str = "config.json";
const JOURNAL: &str = "journal.bin";
const LOCK: &str = "LOCK";
const SEGMENTS_DIR: &str = "segments";

/// The sealed file of the segment at position `seq` in a recording's `segments/`.
fn segment_file(segments: &Path, seq: u64) -> PathBuf {
    segments.join(format!("{seq:08}.age"))
}

impl Vault {
    /// Opens the vault at `dir` (creating its directories), repairing what a crash or a
    /// damaged disk left: torn journal tails are cut back (the cut bytes kept aside); a
    /// journal damaged elsewhere is rewritten as its intact records, the damaged file kept
    /// beside it; an index that will not open or disagrees with the
    /// journals is moved aside and rebuilt; and every record that has neither a stored
    /// receipt nor a place in the upload queue (a lost or cut-short `receipts.bin`, a kill
    /// before the index was written) is queued again, so that its receipt is asked of the
    /// server again. Each repair is a [`Notice`].
    pub fn open(dir: &Path) -> Result<(Vault, Vec<Notice>), VaultError> {
        let recordings = dir.join(RECORDINGS_DIR);
        std::fs::create_dir_all(&recordings).map_err(io_err("creating the vault", dir))?;
        let mut notices = Vec::new();
        let index_path = dir.join(INDEX_DIR);
        let temporary = |notices: &mut Vec<Notice>, why: String| {
            notices.push(Notice(format!(
                "{why}; working with a temporary index rebuilt from the journals"
            )));
            Index::temporary().map_err(|source| VaultError::Index {
                path: index_path.display().to_string(),
                source,
            })
        };
        let index = match Index::open(&index_path) {
            Ok(i) => i,
            // A full or failing disk is not a broken index: leave it where it is.
            Err(sled::Error::Io(e)) if e.kind() == io::ErrorKind::StorageFull => {
                temporary(&mut notices, format!("the index cannot be opened ({e})"))?
            }
            Err(e) => {
                let aside = move_aside(&index_path)?;
                match Index::open(&index_path) {
                    Ok(i) => {
                        notices.push(Notice(format!(
                            "the index would not open ({e}); it was moved to {} and is rebuilt from the journals",
                            aside.display()
                        )));
                        i
                    }
                    Err(again) => temporary(
                        &mut notices,
                        format!("the index would not open ({e}), nor a new one ({again})"),
                    )?,
                }
            }
        };
        let vault = Vault { dir: dir.to_path_buf(), index };
        vault.repair_journals(&mut notices)?;
        if let Some(reason) = vault.index_disagrees()? {
            notices.push(Notice(format!("{reason}; rebuilding the index from the journals")));
            vault.rebuild_index()?;
        }
        vault.requeue_unreceipted(&mut notices)?;
        Ok((vault, notices))
    }

    /// The vault's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Reads `config.json` (an absent file is the default config).
    pub fn config(&self) -> Result<Config, VaultError> {
        let path = self.dir.join(CONFIG_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| VaultError::Config {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(io_err("reading the config", &path)(e)),
        }
    }

    /// Replaces `config.json`, durably.
    pub fn set_config(&self, config: &Config) -> Result<(), VaultError> {
        let path = self.dir.join(CONFIG_FILE);
        let bytes = serde_json::to_vec_pretty(config).unwrap_or_default();
        custody_durable::fsutil::replace_durable(&path, &bytes, false)
            .map_err(io_err("writing the config", &path))
    }

    /// The directory of a recording.
    pub fn recording_dir(&self, id: &RecordingId) -> PathBuf {
        self.dir.join(RECORDINGS_DIR).join(id.to_string())
    }

    /// Ids of every recording directory with a journal, in directory order.
    pub fn recording_ids(&self) -> Result<Vec<RecordingId>, VaultError> {
        let root = self.dir.join(RECORDINGS_DIR);
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&root).map_err(io_err("listing recordings", &root))? {
            let entry = entry.map_err(io_err("listing recordings", &root))?;
            if let Ok(id) = RecordingId::parse(&entry.file_name().to_string_lossy()) {
                if entry.path().join(JOURNAL).exists() {
                    ids.push(id);
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// The signed records of a recording: every intact record in its journal, read past
    /// any damage ([`crate::damage`]).
    pub fn records(&self, id: &RecordingId) -> Result<Vec<SignedRecord>, VaultError> {
        let scan = self.scan_journal(id)?;
        Ok(scan.payloads().filter_map(|p| SignedRecord::parse(p).ok()).collect())
    }

    /// The device's public key (`device.pub`), if the vault has one.
    fn device_public(&self) -> Option<PublicKey> {
        let text = std::fs::read_to_string(self.dir.join(crate::keys::DEVICE_PUB_FILE)).ok()?;
        PublicKey::parse(text.trim()).ok()
    }

    /// Reads a recording's journal past any damage, with its records' filter.
    pub fn scan_journal(&self, id: &RecordingId) -> Result<Scan, VaultError> {
        let path = self.recording_dir(id).join(JOURNAL);
        if !path.exists() {
            return Err(VaultError::NoSuchRecording(id.to_string()));
        }
        journal::scan(&path, record_filter(*id, self.device_public()))
            .map_err(io_err("reading the journal", &path))
    }

    /// What damage to a recording's journal cost it, one entry per damaged journal found:
    /// the copies [`Vault::open`] kept when it recovered the journal, and the journal
    /// itself if it is damaged now (nothing in it could be recovered, or it is being
    /// recorded). Empty for a recording whose journal was never damaged; a torn tail (a
    /// crash while saving) is not damage.
    pub fn journal_damage(&self, id: &RecordingId) -> Result<Vec<JournalDamage>, VaultError> {
        let dir = self.recording_dir(id);
        let device = self.device_public();
        let mut out = Vec::new();
        let mut files = damaged_copies(&dir);
        files.push(dir.join(JOURNAL));
        for file in files {
            if let Some(d) = JournalDamage::of_file(&file, *id, device)
                .map_err(io_err("reading the journal", &file))?
            {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// The signed records in the journal of a recording from byte `offset` on (0 for all;
    /// otherwise an offset this returned before), and the offset after the last whole frame.
    /// A reader that keeps that offset and passes it back reads each record once, however
    /// long the recording grows. Every frame's CRC is checked; reading stops at the first
    /// frame that is not whole and intact (a record being appended right now, or a torn
    /// tail, where [`Vault::open`] would cut a crashed journal back to). It does not read
    /// past damage: [`Vault::open`] has already rewritten a damaged journal of a recording
    /// nobody is writing as its intact records, and [`Vault::records`] reads past it.
    pub fn records_from(
        &self,
        id: &RecordingId,
        offset: u64,
    ) -> Result<(Vec<SignedRecord>, u64), VaultError> {
        let path = self.recording_dir(id).join(JOURNAL);
        if !path.exists() {
            return Err(VaultError::NoSuchRecording(id.to_string()));
        }
        let mut frames =
            journal::frames_from(&path, offset).map_err(io_err("reading the journal", &path))?;
        let mut records = Vec::new();
        for frame in frames.by_ref() {
            let frame = frame.map_err(io_err("reading the journal", &path))?;
            if let Ok(r) = SignedRecord::parse(&frame.payload) {
                records.push(r);
            }
        }
        Ok((records, frames.position()))
    }

    /// The path of a sealed segment.
    pub fn segment_path(&self, id: &RecordingId, seq: u64) -> PathBuf {
        segment_file(&self.recording_dir(id).join(SEGMENTS_DIR), seq)
    }

    /// Whether a process is recording `id` now.
    pub fn is_recording(&self, id: &RecordingId) -> bool {
        let Ok(f) = File::open(self.recording_dir(id).join(LOCK)) else { return false };
        matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock))
    }

    /// Every local recording with its state, oldest first.
    pub fn listings(&self) -> Result<Vec<Listing>, VaultError> {
        let pending = self.index_result(self.index.pending())?;
        let mut out = Vec::new();
        for id in self.recording_ids()? {
            let (summary, headless) = match self.index_result(self.index.summary(&id.0))? {
                Some(s) => (s, false),
                None => {
                    let records = self.records(&id)?;
                    match Summary::from_records(&records, 0) {
                        Some(s) => (s, false),
                        // No readable header: a damaged journal, still listed.
                        None => (Summary::recovered(&id, &records, 0), true),
                    }
                }
            };
            let recording = self.is_recording(&id);
            let state = if (headless && !recording)
                || !damaged_copies(&self.recording_dir(&id)).is_empty()
            {
                State::Damaged
            } else if summary.ended.is_some() {
                State::Complete
            } else if recording {
                State::Recording
            } else {
                State::CutOff
            };
            let pending_upload = pending.iter().filter(|(p, _)| *p == id.0).count() as u64;
            out.push(Listing { summary, state, pending_upload });
        }
        out.sort_by_key(|l| l.summary.started_at_us);
        Ok(out)
    }

    fn index_result<T>(&self, r: Result<T, sled::Error>) -> Result<T, VaultError> {
        r.map_err(|source| VaultError::Index {
            path: self.dir.join(INDEX_DIR).display().to_string(),
            source,
        })
    }

    /// Repairs the journals of recordings nobody is writing: a torn tail is cut back (kept
    /// aside); damage elsewhere is recovered past, the damaged file kept beside the
    /// rewritten one ([`journal::recover`]); a journal in which nothing could be read is
    /// left as it is. A damaged `receipts.bin` is told of (the uploader repairs it).
    fn repair_journals(&self, notices: &mut Vec<Notice>) -> Result<(), VaultError> {
        for id in self.recording_ids()? {
            if self.is_recording(&id) {
                continue;
            }
            let path = self.recording_dir(&id).join(JOURNAL);
            let scan = self.scan_journal(&id)?;
            if let Some(damage) = JournalDamage::of_scan(&path, &scan) {
                if scan.frames.is_empty() {
                    // Listed from its journal (as damaged), not from a summary of before.
                    let _ = self.index.remove_summary(&id.0);
                    notices.push(Notice(format!(
                        "recording {id}: the journal is damaged and holds no readable record; it is left as it is \
                         (`custody vault check` says more)"
                    )));
                    continue;
                }
                let kept = journal::recover(&path, &scan)
                    .map_err(io_err("recovering the damaged journal", &path))?;
                let damage = JournalDamage { file: kept, ..damage };
                notices.push(Notice(format!(
                    "recording {id}: {}; the journal now holds the intact records, which are uploaded",
                    damage.sentences().join("; ")
                )));
            } else if scan.torn().is_some() {
                let (_, torn) = Journal::open_scanned(&path, &scan)
                    .map_err(io_err("repairing the journal", &path))?;
                if let Some(t) = torn {
                    notices.push(Notice(format!(
                        "recording {id}: the journal ended in {} bytes of an unfinished record (a crash while saving); \
                         they were moved to {} and the journal cut back to its {} whole records",
                        t.len,
                        t.kept_in.map(|p| p.display().to_string()).unwrap_or_default(),
                        scan.frames.len()
                    )));
                }
            }
            let dir = self.recording_dir(&id);
            let receipts = outbox::receipts_damage(&dir)
                .map_err(io_err("reading the receipts", &dir.join(outbox::RECEIPTS_FILE)))?;
            if let Some(n) = receipts {
                notices.push(Notice(format!("recording {id}: {n}")));
            }
        }
        Ok(())
    }

    /// Why the index disagrees with the journals, if it does.
    fn index_disagrees(&self) -> Result<Option<String>, VaultError> {
        for id in self.recording_ids()? {
            if self.is_recording(&id) {
                continue;
            }
            let scan = self.scan_journal(&id)?;
            if scan.frames.is_empty() {
                // Nothing readable to index (a damaged journal, listed without the index).
                continue;
            }
            match self.index.summary(&id.0) {
                Ok(Some(s)) if s.journal_len == indexed_len(&scan) => {}
                Ok(Some(_)) => {
                    return Ok(Some(format!("the index is behind the journal of recording {id}")))
                }
                Ok(None) => return Ok(Some(format!("the index does not know recording {id}"))),
                Err(e) => return Ok(Some(format!("the index failed to read recording {id}: {e}"))),
            }
        }
        Ok(None)
    }

    /// Rebuilds the index from the journals: summaries, and every record queued for upload
    /// unless `receipts.bin` holds its receipt.
    pub fn rebuild_index(&self) -> Result<usize, VaultError> {
        self.index_result(self.index.clear())?;
        let mut n = 0;
        for id in self.recording_ids()? {
            let scan = self.scan_journal(&id)?;
            let records: Vec<SignedRecord> =
                scan.payloads().filter_map(|p| SignedRecord::parse(p).ok()).collect();
            let summary = match Summary::from_records(&records, indexed_len(&scan)) {
                Some(s) => s,
                None if records.is_empty() => continue,
                None => Summary::recovered(&id, &records, indexed_len(&scan)),
            };
            self.index_result(self.index.put_summary(&id.0, &summary))?;
            let receipted = self.receipted(&id)?;
            for r in &records {
                let seq = r.record().seq();
                if !receipted.contains(&seq) {
                    self.index_result(self.index.enqueue(&id.0, seq))?;
                }
            }
            n += 1;
        }
        self.index_result(self.index.flush())?;
        Ok(n)
    }

    /// The positions of a recording that `receipts.bin` holds a receipt for.
    fn receipted(&self, id: &RecordingId) -> Result<BTreeSet<u64>, VaultError> {
        let path = self.recording_dir(id).join(outbox::RECEIPTS_FILE);
        let receipts = outbox::receipts_in(&path).map_err(io_err("reading the receipts", &path))?;
        Ok(receipts.iter().map(|r| r.value().seq).collect())
    }

    /// Queues again every record of a recording nobody is writing that has neither a
    /// stored receipt nor a place in the queue (its receipt was lost with a cut-short or
    /// missing `receipts.bin`, or a kill came before the index was written), and drops
    /// from the queue what has a receipt. The queue is read before the receipts, so a
    /// receipt an uploader stores meanwhile (before it dequeues) is seen.
    fn requeue_unreceipted(&self, notices: &mut Vec<Notice>) -> Result<(), VaultError> {
        let pending: BTreeSet<([u8; 16], u64)> =
            self.index_result(self.index.pending())?.into_iter().collect();
        for id in self.recording_ids()? {
            if self.is_recording(&id) {
                continue;
            }
            let receipted = self.receipted(&id)?;
            let mut requeued = Vec::new();
            for r in self.records(&id)? {
                let seq = r.record().seq();
                let queued = pending.contains(&(id.0, seq));
                if receipted.contains(&seq) {
                    if queued {
                        self.index_result(self.index.dequeue(&id.0, seq))?;
                    }
                } else if !queued {
                    self.index_result(self.index.enqueue(&id.0, seq))?;
                    requeued.push(seq);
                }
            }
            if !requeued.is_empty() {
                notices.push(Notice(format!(
                    "recording {id}: {} records had neither a stored receipt nor a place in the upload queue \
                     (receipts.bin lost or cut short, or a kill before the index was written); they are queued again, \
                     and the next upload asks the server for the receipts it already gave",
                    requeued.len()
                )));
            }
        }
        Ok(())
    }

    /// Starts a new recording: creates its directory and journal, saves the signed header.
    pub fn begin(
        &self,
        header: RecordingHeader,
        key: SigningKey,
        sealer: Sealer,
    ) -> Result<RecordingWriter<'_>, VaultError> {
        let id = header.recording_id;
        let dir = self.recording_dir(&id);
        let segments = dir.join(SEGMENTS_DIR);
        std::fs::create_dir_all(&segments).map_err(io_err("creating the recording", &segments))?;
        sync_dir(&self.dir.join(RECORDINGS_DIR)).map_err(io_err("creating the recording", &dir))?;
        let lock_path = dir.join(LOCK);
        let lock = File::create(&lock_path).map_err(io_err("locking the recording", &lock_path))?;
        lock.try_lock().map_err(|_| VaultError::Busy(id.to_string()))?;
        let journal_path = dir.join(JOURNAL);
        let mut journal = Journal::create(&journal_path)
            .map_err(io_err("creating the journal", &journal_path))?;
        let (chain, signed) = ChainBuilder::start(header, key)?;
        journal.append(&signed.to_bytes()).map_err(io_err("saving the header", &journal_path))?;
        let mut writer = RecordingWriter {
            vault: self,
            id,
            dir,
            journal,
            chain,
            sealer: SegmentSealer { sealer, segments },
            _lock: lock,
            summary: None,
            first_media_start: None,
        };
        writer.saved(&signed)?;
        Ok(writer)
    }
}

/// The journal length an up-to-date summary records: the whole file for an intact
/// journal (what the writer's position says), else the end of the last intact record.
fn indexed_len(scan: &Scan) -> u64 {
    if scan.is_intact() {
        scan.file_len
    } else {
        scan.frames.last().map_or(0, journal::Frame::end)
    }
}

fn move_aside(path: &Path) -> Result<PathBuf, VaultError> {
    let stamp = custody_format::time::now_us().div_euclid(1_000_000);
    let aside = path.with_file_name(format!("index.broken-{stamp}"));
    std::fs::rename(path, &aside).map_err(io_err("moving the broken index aside", path))?;
    Ok(aside)
}

/// One segment as the vault saves it: the plaintext from capture and the numbers its
/// record needs besides the ciphertext's.
#[derive(Debug)]
pub struct SegmentInput<'a> {
    /// The container bytes.
    pub plaintext: &'a [u8],
    /// Their SHA-256, as capture computed it while writing them.
    pub plaintext_sha256: [u8; 32],
    /// The rest of the record's fields; `ciphertext_len` and `ciphertext_sha256` are
    /// filled in here.
    pub fields: SegmentFields,
}

/// A saved segment.
#[derive(Clone, Debug)]
pub struct SavedSegment {
    /// Its signed record.
    pub record: SignedRecord,
    /// The sealed file.
    pub sealed: Sealed,
    /// Where it is.
    pub path: PathBuf,
}

/// A segment sealed into its file, not yet durable ([`RecordingWriter::seal_segment`]).
#[derive(Debug)]
pub struct UnsyncedSegment {
    seq: u64,
    file: DurableFile,
    sealed: Sealed,
    path: PathBuf,
}

impl UnsyncedSegment {
    /// fsyncs the sealed file, moves it to its name and fsyncs the directory. It touches
    /// nothing else of the vault, so it may run on another thread while the next segment
    /// is sealed.
    pub fn sync(self) -> Result<SyncedSegment, VaultError> {
        let UnsyncedSegment { seq, file, sealed, path } = self;
        if let Err(e) = file.commit() {
            // Renamed into place before its directory's fsync failed, the file would be one
            // no record names (none will: the segment is not saved).
            let _ = std::fs::remove_file(&path);
            return Err(io_err("saving the segment", &path)(e));
        }
        Ok(SyncedSegment { seq, sealed, path })
    }

    /// The position it was sealed for.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

/// A sealed segment whose file is durable, waiting for its record
/// ([`RecordingWriter::add_synced`]).
#[derive(Debug)]
pub struct SyncedSegment {
    seq: u64,
    sealed: Sealed,
    path: PathBuf,
}

impl SyncedSegment {
    /// The position it was sealed for.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Removes the sealed file of a segment that will not be recorded (the recording ended
    /// at an earlier segment that failed): a file no record names cannot be verified, and
    /// `custody vault check` would list it.
    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Seals a recording's segments into their files (not yet durable) apart from its
/// [`RecordingWriter`]: it holds only the sealer and the recording's `segments/`
/// directory, so it can be cloned onto other threads, where segments are sealed and
/// synced while the writer records those before them. Nothing it seals counts as saved
/// until the writer has recorded it ([`RecordingWriter::add_synced`]).
#[derive(Clone, Debug)]
pub struct SegmentSealer {
    sealer: Sealer,
    segments: PathBuf,
}

impl SegmentSealer {
    /// Seals the segment that will take position `seq` into its file, not yet durable
    /// ([`RecordingWriter::seal_segment`]). Dropped unsynced, the temporary file is removed.
    pub fn seal(&self, seq: u64, plaintext: &[u8]) -> Result<UnsyncedSegment, VaultError> {
        let path = segment_file(&self.segments, seq);
        let file = DurableFile::create(&path, false)
            .map_err(io_err("creating the segment file", &path))?;
        let (file, sealed) =
            self.sealer.seal(plaintext, file).map_err(io_err("sealing the segment", &path))?;
        Ok(UnsyncedSegment { seq, file, sealed, path })
    }

    /// Where the segment at position `seq` is sealed to ([`Vault::segment_path`]).
    pub fn path(&self, seq: u64) -> PathBuf {
        segment_file(&self.segments, seq)
    }
}

/// A recording being written. Dropped without [`RecordingWriter::end`], the recording is
/// left without an end record: cut off, exactly as after a crash.
#[derive(Debug)]
pub struct RecordingWriter<'v> {
    vault: &'v Vault,
    id: RecordingId,
    dir: PathBuf,
    journal: Journal,
    chain: ChainBuilder,
    sealer: SegmentSealer,
    _lock: File,
    summary: Option<Summary>,
    first_media_start: Option<i64>,
}

impl RecordingWriter<'_> {
    /// The recording's id.
    pub fn id(&self) -> RecordingId {
        self.id
    }

    /// Seals, signs and saves one segment. When this returns `Ok` the segment and its
    /// record are durable. On `Err` nothing of this segment counts as saved and the chain
    /// still ends at the last saved record, so the recording can still be ended.
    pub fn add_segment(&mut self, input: SegmentInput<'_>) -> Result<SavedSegment, VaultError> {
        let unsynced = self.seal_segment(self.chain.next_seq(), input.plaintext)?;
        let synced = unsynced.sync()?;
        self.add_synced(synced, input.plaintext.len() as u64, input.plaintext_sha256, input.fields)
    }

    /// The position the next saved segment takes.
    pub fn next_seq(&self) -> u64 {
        self.chain.next_seq()
    }

    /// Seals the segment that will take position `seq` into its file, not yet durable: the
    /// first step of [`Self::add_segment`]. It is split off so that a caller can seal the
    /// next segment while this one's fsync runs on another thread ([`UnsyncedSegment::sync`]),
    /// then record it with [`Self::add_synced`]; nothing counts as saved before that returns.
    /// Dropped unsynced, the temporary file is removed.
    pub fn seal_segment(&self, seq: u64, plaintext: &[u8]) -> Result<UnsyncedSegment, VaultError> {
        self.sealer.seal(seq, plaintext)
    }

    /// What seals this recording's segments, to be used on other threads: an import seals
    /// two segments at once, each on its own thread, and records them here in order.
    pub fn segment_sealer(&self) -> SegmentSealer {
        self.sealer.clone()
    }

    /// Signs and saves the record of a segment whose sealed file is durable, as the next
    /// record of the chain; `fields`' plaintext and ciphertext numbers are filled in here.
    /// A segment sealed for another position than the next is refused
    /// ([`VaultError::OutOfOrder`]) and its file removed: records follow positions.
    pub fn add_synced(
        &mut self,
        synced: SyncedSegment,
        plaintext_len: u64,
        plaintext_sha256: [u8; 32],
        fields: SegmentFields,
    ) -> Result<SavedSegment, VaultError> {
        let SyncedSegment { seq, sealed, path } = synced;
        if seq != self.chain.next_seq() {
            let _ = std::fs::remove_file(&path);
            return Err(VaultError::OutOfOrder { sealed_for: seq, next: self.chain.next_seq() });
        }
        let mut fields = fields;
        fields.plaintext_len = plaintext_len;
        fields.plaintext_sha256 = plaintext_sha256;
        fields.ciphertext_len = sealed.len;
        fields.ciphertext_sha256 = sealed.sha256;
        let before = self.chain.clone();
        let record = self.chain.segment(fields);
        if let Err(e) = self.journal.append(&record.to_bytes()) {
            // The record is not saved: the chain goes on from the last one that is, and the
            // sealed file without a record is removed (it cannot be verified anyway).
            self.chain = before;
            let _ = std::fs::remove_file(&path);
            return Err(io_err("saving the segment record", self.journal.path())(e));
        }
        self.saved(&record)?;
        Ok(SavedSegment { record, sealed, path })
    }

    /// Signs and saves the end record; the recording is complete.
    pub fn end(
        self,
        ended_at_us: i64,
        reason: EndReason,
        message: Option<String>,
    ) -> Result<SignedRecord, VaultError> {
        self.end_import(ended_at_us, reason, message, None)
    }

    /// Signs and saves the end record of an import, with the duration its source file
    /// declares (format 4.3 tag 11), so that how much of the file was sealed is on record.
    pub fn end_import(
        mut self,
        ended_at_us: i64,
        reason: EndReason,
        message: Option<String>,
        source_duration_us: Option<u64>,
    ) -> Result<SignedRecord, VaultError> {
        let chain = self.chain.clone();
        let record = chain.end_import(ended_at_us, reason, message, source_duration_us);
        self.journal
            .append(&record.to_bytes())
            .map_err(io_err("saving the end record", self.journal.path()))?;
        self.saved(&record)?;
        let _ = self.vault.index.flush();
        Ok(record)
    }

    /// Makes the next saved segment the first after a gap in a live input (its sender was
    /// lost and came back with the same streams): its record carries the gap (format §4.2
    /// tags 16–18). A failed save keeps it for the next attempt.
    pub fn gap_before_next(&mut self, gap: Gap) {
        self.chain.gap_before_next(gap);
    }

    /// Signs and saves the end record of a live recording whose sender came back with other
    /// streams (end reason `sender-changed`), naming the recording that continues it.
    pub fn end_sender_changed(
        mut self,
        ended_at_us: i64,
        message: Option<String>,
        continued_in: RecordingId,
    ) -> Result<SignedRecord, VaultError> {
        let chain = self.chain.clone();
        let record = chain.end_sender_changed(ended_at_us, message, continued_in);
        self.journal
            .append(&record.to_bytes())
            .map_err(io_err("saving the end record", self.journal.path()))?;
        self.saved(&record)?;
        let _ = self.vault.index.flush();
        Ok(record)
    }

    /// The recording's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Updates the index after a record is durable (failures only cost a later rebuild).
    fn saved(&mut self, record: &SignedRecord) -> Result<(), VaultError> {
        let journal_len = self.journal.position();
        match (&mut self.summary, record.record()) {
            (None, Record::Header(_)) => {
                self.summary = Summary::from_records(std::slice::from_ref(record), journal_len);
            }
            (Some(s), r) => {
                s.apply(r, &mut self.first_media_start);
                s.journal_len = journal_len;
            }
            _ => {}
        }
        if let Some(s) = &self.summary {
            let _ = self.vault.index.put_summary(&self.id.0, s);
        }
        let _ = self.vault.index.enqueue(&self.id.0, record.record().seq());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_format::testkit;

    fn segment(n: u64) -> SegmentInput<'static> {
        SegmentInput {
            plaintext: b"segment bytes",
            plaintext_sha256: [0; 32],
            fields: testkit::segment(1, n),
        }
    }

    /// The split save the recorder pipelines: the next segment is sealed while the one
    /// before is unsynced, neither file exists under its name before its fsync, each record
    /// follows its position, and a segment offered out of order is refused and removed.
    #[test]
    fn a_segment_sealed_ahead_is_recorded_only_after_its_fsync_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (vault, _) = Vault::open(dir.path()).unwrap();
        let device = testkit::key("device");
        let sealer = Sealer::new(vec![age::x25519::Identity::generate().to_public()]).unwrap();
        let mut w = vault.begin(testkit::header(1, &device), device, sealer).unwrap();
        let id = w.id();
        assert_eq!(w.next_seq(), 1);
        let first = w.seal_segment(1, b"first").unwrap();
        let second = w.seal_segment(2, b"second").unwrap();
        assert_eq!((first.seq(), second.seq()), (1, 2));
        // Sealed but not synced: not under its name, and nothing recorded.
        assert!(!vault.segment_path(&id, 1).exists());
        assert_eq!(vault.records(&id).unwrap().len(), 1);
        let second = second.sync().unwrap();
        assert!(vault.segment_path(&id, 2).exists());
        let err = w.add_synced(second, 6, [0; 32], testkit::segment(1, 2)).unwrap_err();
        assert!(matches!(err, VaultError::OutOfOrder { sealed_for: 2, next: 1 }), "{err}");
        assert!(!vault.segment_path(&id, 2).exists(), "a refused segment's file is removed");
        let saved =
            w.add_synced(first.sync().unwrap(), 5, [0; 32], testkit::segment(1, 1)).unwrap();
        assert_eq!(saved.record.record().seq(), 1);
        let again = w.seal_segment(2, b"second").unwrap().sync().unwrap();
        w.add_synced(again, 6, [0; 32], testkit::segment(1, 2)).unwrap();
        w.end(testkit::T0_US + 10_000_000, EndReason::Stopped, None).unwrap();
        let seqs: Vec<u64> = vault.records(&id).unwrap().iter().map(|r| r.record().seq()).collect();
        assert_eq!(seqs, vec![0, 1, 2, 3]);
    }

    /// A segment sealed by the writer's [`SegmentSealer`] on another thread is recorded by
    /// the writer like one it sealed itself; one discarded leaves no file behind.
    #[test]
    fn a_segment_sealed_on_another_thread_is_recorded_and_one_discarded_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (vault, _) = Vault::open(dir.path()).unwrap();
        let device = testkit::key("device");
        let sealer = Sealer::new(vec![age::x25519::Identity::generate().to_public()]).unwrap();
        let mut w = vault.begin(testkit::header(1, &device), device, sealer).unwrap();
        let id = w.id();
        let s = w.segment_sealer();
        assert_eq!(s.path(1), vault.segment_path(&id, 1));
        let (first, second) = std::thread::scope(|scope| {
            let one = scope.spawn(|| s.seal(1, b"first").and_then(UnsyncedSegment::sync));
            let two = scope.spawn(|| s.seal(2, b"second").and_then(UnsyncedSegment::sync));
            (one.join().unwrap().unwrap(), two.join().unwrap().unwrap())
        });
        assert_eq!((first.seq(), second.seq()), (1, 2));
        w.add_synced(first, 5, [0; 32], testkit::segment(1, 1)).unwrap();
        assert!(vault.segment_path(&id, 2).is_file());
        second.discard();
        assert!(!vault.segment_path(&id, 2).exists());
        w.end(testkit::T0_US + 10_000_000, EndReason::Stopped, None).unwrap();
        let seqs: Vec<u64> = vault.records(&id).unwrap().iter().map(|r| r.record().seq()).collect();
        assert_eq!(seqs, vec![0, 1, 2]);
        let names: Vec<_> = std::fs::read_dir(vault.recording_dir(&id).join(SEGMENTS_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["00000001.age"]);
    }

    #[test]
    fn records_from_an_offset_are_those_saved_since_and_a_bad_crc_ends_them() {
        let dir = tempfile::tempdir().unwrap();
        let (vault, _) = Vault::open(dir.path()).unwrap();
        let device = testkit::key("device");
        let sealer = Sealer::new(vec![age::x25519::Identity::generate().to_public()]).unwrap();
        let mut w = vault.begin(testkit::header(1, &device), device, sealer).unwrap();
        let id = w.id();
        w.add_segment(segment(1)).unwrap();
        let (first, offset) = vault.records_from(&id, 0).unwrap();
        assert_eq!(first.iter().map(|r| r.record().seq()).collect::<Vec<_>>(), vec![0, 1]);
        w.add_segment(segment(2)).unwrap();
        w.end(testkit::T0_US + 10_000_000, EndReason::Stopped, None).unwrap();
        let (later, end) = vault.records_from(&id, offset).unwrap();
        assert_eq!(later.iter().map(|r| r.record().seq()).collect::<Vec<_>>(), vec![2, 3]);
        let journal = vault.recording_dir(&id).join(JOURNAL);
        assert_eq!(end, std::fs::metadata(&journal).unwrap().len());
        assert_eq!(vault.records_from(&id, end).unwrap(), (vec![], end));
        assert_eq!(vault.index().summary(&id.0).unwrap().unwrap().journal_len, end);

        // One flipped bit in the third record's frame: it and everything after it are not
        // read, though its length field still says where the next frame would start.
        let mut bytes = std::fs::read(&journal).unwrap();
        let third = usize::try_from(offset).unwrap() + 20;
        bytes[third] ^= 0x01;
        std::fs::write(&journal, &bytes).unwrap();
        let (records, stopped_at) = vault.records_from(&id, 0).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(stopped_at, offset);
    }
    #[test]
    fn a_bit_flip_in_a_middle_record_is_read_past_and_the_damaged_journal_kept() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let (vault, _) = Vault::open(dir.path()).unwrap();
            let device = testkit::key("device");
            let sealer = Sealer::new(vec![age::x25519::Identity::generate().to_public()]).unwrap();
            let mut w = vault.begin(testkit::header(1, &device), device, sealer).unwrap();
            for n in 1..=5 {
                w.add_segment(segment(n)).unwrap();
            }
            let id = w.id();
            w.end(testkit::T0_US + 10_000_000, EndReason::Stopped, None).unwrap();
            id
        };
        let path = dir.path().join(RECORDINGS_DIR).join(id.to_string()).join(JOURNAL);
        let frames: Vec<journal::Frame> =
            journal::frames_from(&path, 0).unwrap().map(Result::unwrap).collect();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[frames[2].payload_offset() as usize + 30] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();

        let (vault, notices) = Vault::open(dir.path()).unwrap();
        assert!(notices.iter().any(|n| n.0.contains("records lost at positions 2")), "{notices:?}");
        let seqs: Vec<u64> = vault.records(&id).unwrap().iter().map(|r| r.record().seq()).collect();
        assert_eq!(seqs, vec![0, 1, 3, 4, 5, 6]);
        let damage = vault.journal_damage(&id).unwrap();
        assert_eq!(damage.len(), 1);
        assert_eq!(std::fs::read(&damage[0].file).unwrap(), bytes, "kept as it was");
        assert_eq!((damage[0].lost.clone(), damage[0].kept.len()), (vec![2], 6));
        let listed = vault.listings().unwrap();
        assert_eq!(listed[0].state, State::Damaged);
        assert_eq!(listed[0].summary.segments, 4);
        drop(vault);
        // Repaired once: a second open has nothing to repair, and still tells of the loss.
        let (vault, notices) = Vault::open(dir.path()).unwrap();
        assert!(notices.is_empty(), "{notices:?}");
        assert_eq!(vault.listings().unwrap()[0].state, State::Damaged);
    }
}
