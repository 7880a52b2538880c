//! A reserve of disk space for the custody log, and what the server does on a full disk.
//!
//! Evidence comes in faster than anything else grows, so on a full disk it is the sealed
//! segments that stop fitting first — and then the custody log could not take the access
//! entry a retrieval must append before it reads anything, nor the entries that log
//! members or revocations. So the server keeps a file of [`RESERVE_BYTES`] in its data
//! directory (`<data>/reserve.bin`, made when there is room). When an append to the log
//! finds the disk full, the reserve is deleted and the append tried again: the log goes on
//! for thousands of entries (an entry and its tree head take about 0.5 KiB) while the
//! legal team frees space. From then on, and while the reserve cannot be made again, the
//! server refuses uploads with `storage.full` (507) before reading their bodies, so that
//! evidence arriving does not eat the space kept for the log; the log head, proofs and
//! retrievals go on. A server that starts on a full disk says so in its log, and keeps its
//! index in memory if the index cannot be opened on the disk (the index is a cache,
//! rebuilt from the records and the log).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use custody_durable::fsutil::{parent_dir, sync_dir};
use custody_format::log::LogEntry;

use crate::custody_log::{Appended, LogError};
use crate::error::{ApiError, Code};
use crate::server::{lock, Server};
use crate::storage::StorageError;

/// Bytes kept in reserve for the custody log.
pub const RESERVE_BYTES: u64 = 4 << 20;
/// How often a missing reserve is tried again (each try writes up to [`RESERVE_BYTES`]).
const RETRY_EVERY: Duration = Duration::from_secs(10);
const NAME: &str = "reserve.bin";

/// Whether `e`, or an error it wraps, is a full disk (`ENOSPC`, `EDQUOT`).
pub fn is_no_space(e: &(dyn std::error::Error + 'static)) -> bool {
    let full = |io: &std::io::Error| {
        matches!(io.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
    };
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if full(io) {
                return true;
            }
        }
        if let Some(sled::Error::Io(io)) = err.downcast_ref::<sled::Error>() {
            if full(io) {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// The refusal of something that needs the disk while it is full (and the server's log
/// line saying so).
pub(crate) fn disk_full(what: &str, e: &dyn std::fmt::Display) -> ApiError {
    eprintln!("custody-server: {what}: the disk is full ({e})");
    ApiError::new(
        Code::StorageFull,
        format!("the server's disk is full: {what} failed, so nothing was done; retry later"),
    )
}

#[derive(Debug)]
struct State {
    /// Whether the whole reserve file is on the disk.
    held: bool,
    /// When a missing reserve was last tried again.
    last_try: Option<Instant>,
    /// When a write last found the disk full.
    full_at: Option<Instant>,
}

/// The reserve file of a data directory.
#[derive(Debug)]
pub(crate) struct Reserve {
    path: PathBuf,
    state: Mutex<State>,
}

impl Reserve {
    /// The reserve of `data_dir`, made now if missing, and whether the disk has room: `Err`
    /// says why not (the disk is full), and the server then starts refusing uploads.
    pub(crate) fn open(data_dir: &Path) -> (Reserve, Result<(), String>) {
        let r = Reserve {
            path: data_dir.join(NAME),
            state: Mutex::new(State { held: false, last_try: None, full_at: None }),
        };
        let made = r.make();
        // The reserve may be whole on a disk that is full: a small write tells.
        let room = made.and_then(|()| probe(data_dir));
        let mut st = lock(&r.state);
        st.held = r.whole();
        if room.is_err() {
            st.full_at = Some(Instant::now());
        }
        drop(st);
        (r, room.map_err(|e| e.to_string()))
    }

    /// Whether the reserve file is there whole.
    pub(crate) fn whole(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|m| m.len() == RESERVE_BYTES)
    }

    /// Makes the reserve file unless it is there whole: written under a temporary name,
    /// fsynced, renamed into place, so a file of the wrong size is never taken for it.
    fn make(&self) -> std::io::Result<()> {
        if self.whole() {
            return Ok(());
        }
        let tmp = self.path.with_file_name(format!(".{NAME}.tmp"));
        let result = write_zeros(&tmp, RESERVE_BYTES).and_then(|()| {
            std::fs::rename(&tmp, &self.path)?;
            sync_dir(parent_dir(&self.path))
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Notes that a write found the disk full: uploads are refused for a while.
    pub(crate) fn note_full(&self) {
        lock(&self.state).full_at = Some(Instant::now());
    }

    /// Whether uploads may be taken: the reserve is in place (tried again at most every
    /// [`RETRY_EVERY`] if not, so that uploads resume by themselves once space is freed)
    /// and no write found the disk full within the last [`RETRY_EVERY`].
    pub(crate) fn uploads_allowed(&self) -> bool {
        let mut st = lock(&self.state);
        if st.full_at.is_some_and(|t| t.elapsed() < RETRY_EVERY) {
            return false;
        }
        if !st.held && st.last_try.is_none_or(|t| t.elapsed() >= RETRY_EVERY) {
            st.last_try = Some(Instant::now());
            st.held = self.make().is_ok();
            if st.held {
                eprintln!(
                    "custody-server: the disk has room again: {} MiB are kept in reserve for \
                     the custody log, and uploads are taken again",
                    RESERVE_BYTES >> 20
                );
            }
        }
        st.held
    }

    /// Frees the reserve for the custody log; `true` if there was one to free.
    pub(crate) fn release(&self) -> bool {
        let mut st = lock(&self.state);
        let freed = std::fs::remove_file(&self.path).is_ok();
        if freed {
            let _ = sync_dir(parent_dir(&self.path));
            eprintln!(
                "custody-server: the disk is full: the {} MiB kept in reserve were freed for \
                 the custody log; uploads are refused (storage.full) until there is room \
                 again; the log head, proofs and retrievals go on",
                RESERVE_BYTES >> 20
            );
        }
        st.held = false;
        st.last_try = Some(Instant::now());
        st.full_at = Some(Instant::now());
        freed
    }
}

/// Whether a small file can be written in `dir` (a full disk refuses it).
fn probe(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(".space-probe");
    let result = write_zeros(&path, 64 << 10);
    let _ = std::fs::remove_file(&path);
    result
}

/// Writes a new file of `len` zero bytes at `path` and fsyncs it.
fn write_zeros(path: &Path, len: u64) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    let zeros = vec![0u8; 64 << 10];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    f.sync_all()
}

impl Server {
    /// Appends `entry` to the custody log through its group commit
    /// ([`crate::custody_log::GroupCommit`]); the caller holds the commit's order
    /// ([`GroupCommit::ordered`](crate::custody_log::GroupCommit::ordered) or `exclusive`)
    /// and not the log's lock. `tracked` marks an ingest entry, whose index entry the
    /// caller writes next. On a full disk, the batch's leader frees the reserve kept for
    /// the log and tries the batch once more (a failed append leaves nothing of itself
    /// behind: the journal cuts the partial frames back). Every entry appended is an event
    /// of the operations log (`crate::events`).
    pub(crate) fn append_to(&self, entry: &LogEntry, tracked: bool) -> Result<Appended, LogError> {
        let free_reserve = |e: &crate::store::StoreError| {
            is_no_space(e) && self.inner.reserve.as_ref().is_some_and(Reserve::release)
        };
        let appended = self.inner.commit.append(&self.inner.log, entry, tracked, &free_reserve)?;
        if let Some(event) = crate::events::Event::of_entry(entry, appended.index) {
            crate::events::emit(&self.config().events, &event);
        }
        Ok(appended)
    }

    /// Refuses an upload, before its body is read, while the disk is full.
    pub(crate) fn check_disk(&self) -> Result<(), ApiError> {
        match &self.inner.reserve {
            Some(r) if !r.uploads_allowed() => Err(ApiError::new(
                Code::StorageFull,
                "the server's disk is full: uploads are refused until the legal team frees \
                 space; nothing was stored or receipted, retry later",
            )),
            _ => Ok(()),
        }
    }

    /// A storage failure as a refusal: `storage.full` when the disk is full (which holds
    /// uploads off for a while), else `internal`.
    pub(crate) fn storage_failed(
        &self,
        what: &'static str,
    ) -> impl FnOnce(StorageError) -> ApiError + '_ {
        move |e| {
            if is_no_space(&e) {
                if let Some(r) = &self.inner.reserve {
                    r.note_full();
                }
                disk_full(what, &e)
            } else {
                ApiError::internal(what, e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_is_made_whole_and_released() {
        let dir = tempfile::tempdir().unwrap();
        let (r, made) = Reserve::open(dir.path());
        assert!(made.is_ok());
        assert_eq!(std::fs::metadata(dir.path().join(NAME)).unwrap().len(), RESERVE_BYTES);
        assert!(r.uploads_allowed());
        assert!(r.release());
        assert!(!dir.path().join(NAME).exists());
        assert!(!r.uploads_allowed(), "uploads wait after the reserve is used");
        assert!(!r.release(), "nothing more to free");
    }

    #[test]
    fn no_space_is_recognised_through_wrapping() {
        let io = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let e = crate::store::StoreError::backend("writing x", io);
        assert!(is_no_space(&e));
        let logged = crate::custody_log::LogError::Store(e);
        assert!(is_no_space(&logged));
        let other = crate::store::StoreError::backend("writing x", std::io::Error::other("no"));
        assert!(!is_no_space(&other));
    }
}
