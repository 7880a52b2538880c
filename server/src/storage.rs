//! Where records and sealed segments are kept: a small trait, and the local filesystem.
//!
//! The trait is deliberately narrow — put a record, put a sealed segment, read them back,
//! list what is there — so that an object store can implement it later. Every `put`
//! returns only once the bytes are durable; the server receipts nothing before that.
//!
//! ```text
//! <data>/recordings/<id>/NNNNNNNN.age   a sealed segment (age v1 file), as uploaded
//! <data>/recordings/<id>/NNNNNNNN.rec   the signed record at position NNNNNNNN
//! ```

use std::io;
use std::path::{Path, PathBuf};

use custody_durable::fsutil::{sync_dir, write_durable};
use custody_format::ids::RecordingId;

/// Storage failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Different bytes are already stored under this name; nothing was overwritten.
    #[error("a different record is already stored at {0}")]
    Conflict(PathBuf),
}

/// A durable store of records and sealed segments.
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Stores the sealed segment at `seq`, durably. The same bytes again is a no-op. Other
    /// bytes already there (a segment whose record never got stored, from a crash) are
    /// moved aside, never deleted, and replaced.
    fn put_segment(&self, id: &RecordingId, seq: u64, bytes: &[u8]) -> Result<(), StorageError>;
    /// Stores the signed record at `seq`, durably. The same bytes again is a no-op; other
    /// bytes are [`StorageError::Conflict`].
    fn put_record(&self, id: &RecordingId, seq: u64, bytes: &[u8]) -> Result<(), StorageError>;
    /// The signed record at `seq`, if stored.
    fn record(&self, id: &RecordingId, seq: u64) -> Result<Option<Vec<u8>>, StorageError>;
    /// The sealed segment at `seq`, if stored (for the legal team; no device route reads it).
    fn segment(&self, id: &RecordingId, seq: u64) -> Result<Option<Vec<u8>>, StorageError>;
    /// The sealed segment at `seq` from byte `offset` on, for streaming it out without
    /// holding it in memory. The default reads it whole; [`FsStorage`] opens the file.
    fn segment_from(
        &self,
        id: &RecordingId,
        seq: u64,
        offset: u64,
    ) -> Result<Option<Box<dyn io::Read + Send>>, StorageError> {
        Ok(self.segment(id, seq)?.map(|b| {
            let mut c = io::Cursor::new(b);
            c.set_position(offset);
            Box::new(c) as Box<dyn io::Read + Send>
        }))
    }
    /// Every recording with at least one stored record.
    fn recordings(&self) -> Result<Vec<RecordingId>, StorageError>;
    /// The positions of a recording's stored records, ascending.
    fn record_positions(&self, id: &RecordingId) -> Result<Vec<u64>, StorageError>;
}

/// [`Storage`] in a local directory.
#[derive(Debug)]
pub struct FsStorage {
    root: PathBuf,
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StorageError + 'a {
    move |source| StorageError::Io { what, path: path.to_path_buf(), source }
}

impl FsStorage {
    /// Storage under `root` (created if missing).
    pub fn open(root: &Path) -> Result<FsStorage, StorageError> {
        std::fs::create_dir_all(root).map_err(io_err("creating", root))?;
        Ok(FsStorage { root: root.to_path_buf() })
    }

    fn dir(&self, id: &RecordingId) -> PathBuf {
        self.root.join(id.to_string())
    }

    fn ensure_dir(&self, id: &RecordingId) -> Result<PathBuf, StorageError> {
        let dir = self.dir(id);
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
            // The new directory's entry must survive a crash like the files in it.
            sync_dir(&self.root).map_err(io_err("syncing", &self.root))?;
        }
        Ok(dir)
    }

    fn read_opt(path: &Path) -> Result<Option<Vec<u8>>, StorageError> {
        match std::fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("reading", path)(e)),
        }
    }
}

impl Storage for FsStorage {
    fn put_segment(&self, id: &RecordingId, seq: u64, bytes: &[u8]) -> Result<(), StorageError> {
        let dir = self.ensure_dir(id)?;
        let path = dir.join(format!("{seq:08}.age"));
        if let Some(existing) = Self::read_opt(&path)? {
            if existing == bytes {
                return Ok(());
            }
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let aside = dir.join(format!("{seq:08}.age.orphan-{stamp}"));
            std::fs::rename(&path, &aside).map_err(io_err("moving aside", &path))?;
        }
        write_durable(&path, bytes, false).map_err(io_err("writing", &path))
    }

    fn put_record(&self, id: &RecordingId, seq: u64, bytes: &[u8]) -> Result<(), StorageError> {
        let dir = self.ensure_dir(id)?;
        let path = dir.join(format!("{seq:08}.rec"));
        if let Some(existing) = Self::read_opt(&path)? {
            return if existing == bytes { Ok(()) } else { Err(StorageError::Conflict(path)) };
        }
        write_durable(&path, bytes, false).map_err(io_err("writing", &path))
    }

    fn record(&self, id: &RecordingId, seq: u64) -> Result<Option<Vec<u8>>, StorageError> {
        Self::read_opt(&self.dir(id).join(format!("{seq:08}.rec")))
    }

    fn segment(&self, id: &RecordingId, seq: u64) -> Result<Option<Vec<u8>>, StorageError> {
        Self::read_opt(&self.dir(id).join(format!("{seq:08}.age")))
    }

    fn segment_from(
        &self,
        id: &RecordingId,
        seq: u64,
        offset: u64,
    ) -> Result<Option<Box<dyn io::Read + Send>>, StorageError> {
        use std::io::Seek;
        let path = self.dir(id).join(format!("{seq:08}.age"));
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("reading", &path)(e)),
        };
        f.seek(io::SeekFrom::Start(offset)).map_err(io_err("reading", &path))?;
        Ok(Some(Box::new(f)))
    }

    fn recordings(&self) -> Result<Vec<RecordingId>, StorageError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.root).map_err(io_err("listing", &self.root))? {
            let entry = entry.map_err(io_err("listing", &self.root))?;
            if let Ok(id) = RecordingId::parse(&entry.file_name().to_string_lossy()) {
                out.push(id);
            }
        }
        out.sort();
        Ok(out)
    }

    fn record_positions(&self, id: &RecordingId) -> Result<Vec<u64>, StorageError> {
        let dir = self.dir(id);
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err("listing", &dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err("listing", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // Temporary files of interrupted writes start with '.', so never match.
            if let Some(seq) = name.strip_suffix(".rec").and_then(|s| s.parse::<u64>().ok()) {
                out.push(seq);
            }
        }
        out.sort_unstable();
        Ok(out)
    }
}
