//! The stores in the data directory: the default back-end.
//!
//! ```text
//! <data>/recordings/<id>/NNNNNNNN.age       a sealed segment (age v1 file), as uploaded
//! <data>/recordings/<id>/NNNNNNNN.rec       the signed record at position NNNNNNNN
//! <data>/log/entries.bin                    every LogEntry's bytes, one journal frame each
//! <data>/log/heads.bin                      the signed TreeHead after each append
//! <data>/index/                             the sled index (a cache)
//! <data>/tokens/<sha256(token) hex>.json    {"label", "issued_at_us", "expires_at_us"}
//! <data>/tokens/<sha256(token) hex>.used    the enrolled device's key, once spent
//! <data>/members/<sha256(token) hex>.json   {"name", "role", "created_at_us"}
//! ```
//!
//! Every write goes through `custody_durable` (write to a temporary file, fsync, rename,
//! fsync the directory; or a fsynced journal append). The futures do their (blocking) file
//! work when first polled, on the blocking thread that drives them.

use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use custody_durable::fsutil::{sync_dir, write_durable};
use custody_durable::journal::{self, Found, Journal, Scan};
use custody_format::ids::{PublicKey, RecordingId};
use custody_format::log::{LogEntry, TreeHead};
use custody_format::signed::Signed;

use super::{
    BoxFuture, IndexStore, LogStore, MemberEntry, MemberStore, RecordStore, StoreError,
    StoreResult, Stores, TokenRecord, TokenStore,
};
use crate::custody_log::LogDamage;
use crate::index::Stored;
use crate::members::Member;
use crate::server::lock;

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |e| StoreError::backend(format!("{what} {}", path.display()), e)
}

fn read_opt(path: &Path) -> StoreResult<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("reading", path)(e)),
    }
}

/// The filesystem stores under `data_dir` (created as needed); nonces in memory. Also
/// says why the index was replaced, if it would not open (it must then be rebuilt).
pub fn open(data_dir: &Path) -> StoreResult<(Stores, Option<String>)> {
    let (index, replaced): (Arc<dyn IndexStore>, _) = match SledIndex::open(data_dir) {
        Ok(index) => {
            let replaced = index.replaced.clone();
            (Arc::new(index), replaced)
        }
        // The index is a cache: on a full disk the server runs on one in memory, rebuilt
        // from the records and the log (`crate::reserve`).
        Err(e) if crate::reserve::is_no_space(&e) => (
            Arc::new(super::memory::MemoryIndex::default()),
            Some(format!(
                "the index cannot be opened on the full disk ({e}), so it is kept in memory \
                 until the next start"
            )),
        ),
        Err(e) => return Err(e),
    };
    let stores = Stores {
        records: Arc::new(FsRecords::open(&data_dir.join("recordings"))?),
        log: Arc::new(FsLog::open(&data_dir.join("log"))?),
        index,
        tokens: Arc::new(FsTokens::new(data_dir)),
        members: Arc::new(FsMembers::new(data_dir)),
        nonces: Arc::new(super::memory::MemoryNonces::default()),
    };
    Ok((stores, replaced))
}

/// [`RecordStore`] in a local directory.
#[derive(Debug)]
pub struct FsRecords {
    root: PathBuf,
}

impl FsRecords {
    /// Storage under `root` (created if missing).
    pub fn open(root: &Path) -> StoreResult<FsRecords> {
        std::fs::create_dir_all(root).map_err(io_err("creating", root))?;
        Ok(FsRecords { root: root.to_path_buf() })
    }

    fn dir(&self, id: &RecordingId) -> PathBuf {
        self.root.join(id.to_string())
    }

    fn ensure_dir(&self, id: &RecordingId) -> StoreResult<PathBuf> {
        let dir = self.dir(id);
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
            // The new directory's entry must survive a crash like the files in it.
            sync_dir(&self.root).map_err(io_err("syncing", &self.root))?;
        }
        Ok(dir)
    }

    fn put_segment_now(&self, id: &RecordingId, seq: u64, bytes: &[u8]) -> StoreResult<()> {
        let dir = self.ensure_dir(id)?;
        let path = dir.join(format!("{seq:08}.age"));
        if let Some(existing) = read_opt(&path)? {
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

    fn put_record_now(&self, id: &RecordingId, seq: u64, bytes: &[u8]) -> StoreResult<()> {
        let dir = self.ensure_dir(id)?;
        let path = dir.join(format!("{seq:08}.rec"));
        if let Some(existing) = read_opt(&path)? {
            return if existing == bytes {
                Ok(())
            } else {
                Err(StoreError::Conflict { id: *id, seq })
            };
        }
        write_durable(&path, bytes, false).map_err(io_err("writing", &path))
    }

    fn segment_range_now(
        &self,
        id: &RecordingId,
        seq: u64,
        offset: u64,
        len: usize,
    ) -> StoreResult<Option<Vec<u8>>> {
        let path = self.dir(id).join(format!("{seq:08}.age"));
        let f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("reading", &path)(e)),
        };
        let mut buf = vec![0u8; len];
        let mut got = 0;
        while got < len {
            match f.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err("reading", &path)(e)),
            }
        }
        buf.truncate(got);
        Ok(Some(buf))
    }

    fn recordings_now(&self) -> StoreResult<Vec<RecordingId>> {
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

    fn positions_now(&self, id: &RecordingId) -> StoreResult<Vec<u64>> {
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

impl RecordStore for FsRecords {
    fn put_segment<'a>(
        &'a self,
        id: RecordingId,
        seq: u64,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move { self.put_segment_now(&id, seq, bytes) })
    }

    fn put_record<'a>(
        &'a self,
        id: RecordingId,
        seq: u64,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move { self.put_record_now(&id, seq, bytes) })
    }

    fn record(&self, id: RecordingId, seq: u64) -> BoxFuture<'_, StoreResult<Option<Vec<u8>>>> {
        Box::pin(async move { read_opt(&self.dir(&id).join(format!("{seq:08}.rec"))) })
    }

    fn segment(&self, id: RecordingId, seq: u64) -> BoxFuture<'_, StoreResult<Option<Vec<u8>>>> {
        Box::pin(async move { read_opt(&self.dir(&id).join(format!("{seq:08}.age"))) })
    }

    fn segment_range(
        &self,
        id: RecordingId,
        seq: u64,
        offset: u64,
        len: usize,
    ) -> BoxFuture<'_, StoreResult<Option<Vec<u8>>>> {
        Box::pin(async move { self.segment_range_now(&id, seq, offset, len) })
    }

    fn recordings(&self) -> BoxFuture<'_, StoreResult<Vec<RecordingId>>> {
        Box::pin(async move { self.recordings_now() })
    }

    fn record_positions(&self, id: RecordingId) -> BoxFuture<'_, StoreResult<Vec<u64>>> {
        Box::pin(async move { self.positions_now(&id) })
    }

    fn stage_segment(
        &self,
        id: RecordingId,
        seq: u64,
    ) -> BoxFuture<'_, StoreResult<Option<Box<dyn super::SegmentUpload>>>> {
        Box::pin(async move {
            let upload: Box<dyn super::SegmentUpload> = Box::new(self.stage_segment_now(&id, seq)?);
            Ok(Some(upload))
        })
    }
}

/// A sealed segment streamed into `<id>/.NNNNNNNN.age.part-<pid>-<n>` (a name that never
/// counts as a stored position) and renamed into place on commit.
#[derive(Debug)]
struct FsSegmentUpload {
    file: Option<std::fs::File>,
    tmp: PathBuf,
    path: PathBuf,
    dir: PathBuf,
    /// Whether the temporary file is gone (renamed into place, or found the same).
    done: bool,
}

impl FsRecords {
    fn stage_segment_now(&self, id: &RecordingId, seq: u64) -> StoreResult<FsSegmentUpload> {
        use std::os::unix::fs::OpenOptionsExt;
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = self.ensure_dir(id)?;
        let path = dir.join(format!("{seq:08}.age"));
        let n = N.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{seq:08}.age.part-{}-{n}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(io_err("creating", &tmp))?;
        Ok(FsSegmentUpload { file: Some(file), tmp, path, dir, done: false })
    }
}

/// Whether the files at `a` and `b` hold the same bytes (read a block at a time).
fn same_contents(a: &Path, b: &Path) -> StoreResult<bool> {
    use std::io::Read;
    let (ma, mb) = (
        std::fs::metadata(a).map_err(io_err("reading", a))?,
        std::fs::metadata(b).map_err(io_err("reading", b))?,
    );
    if ma.len() != mb.len() {
        return Ok(false);
    }
    let mut fa = std::fs::File::open(a).map_err(io_err("reading", a))?;
    let mut fb = std::fs::File::open(b).map_err(io_err("reading", b))?;
    let (mut ba, mut bb) = (vec![0u8; 64 << 10], vec![0u8; 64 << 10]);
    loop {
        let n = fa.read(&mut ba).map_err(io_err("reading", a))?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n]).map_err(io_err("reading", b))?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

impl FsSegmentUpload {
    fn commit_now(&mut self) -> StoreResult<()> {
        let file = self
            .file
            .take()
            .ok_or_else(|| StoreError::Damaged("a segment upload committed twice".into()))?;
        file.sync_all().map_err(io_err("syncing", &self.tmp))?;
        drop(file);
        if self.path.exists() {
            // As put_segment: the same bytes again is a no-op; other bytes (a segment
            // whose record never got stored) are kept aside, never deleted, and replaced.
            if same_contents(&self.path, &self.tmp)? {
                return Ok(());
            }
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned());
            let aside = self.dir.join(format!("{}.orphan-{stamp}", name.unwrap_or_default()));
            std::fs::rename(&self.path, &aside).map_err(io_err("moving aside", &self.path))?;
        }
        std::fs::rename(&self.tmp, &self.path).map_err(io_err("renaming", &self.tmp))?;
        self.done = true;
        sync_dir(&self.dir).map_err(io_err("syncing", &self.dir))
    }
}

impl super::SegmentUpload for FsSegmentUpload {
    fn write<'a>(&'a mut self, bytes: &'a [u8]) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            use std::io::Write;
            let tmp = &self.tmp;
            match self.file.as_mut() {
                Some(f) => f.write_all(bytes).map_err(io_err("writing", tmp)),
                None => {
                    Err(StoreError::Damaged("a segment upload written after its commit".into()))
                }
            }
        })
    }

    fn commit(mut self: Box<Self>) -> BoxFuture<'static, StoreResult<()>> {
        Box::pin(async move { self.commit_now() })
    }
}

impl Drop for FsSegmentUpload {
    fn drop(&mut self) {
        // Uncommitted (refused, the connection broke, or the same bytes were there
        // already): nothing of it is kept.
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// [`LogStore`] as two journals in a directory. It keeps each entry's place in
/// `entries.bin` (12 bytes an entry), so that entries are read back by index with one
/// positioned read each; a bundle checks what it reads against the Merkle leaf.
///
/// The entries and the heads have a lock each, so that a head's fsync never holds up the
/// next batch of entries.
#[derive(Debug)]
pub struct FsLog {
    dir: PathBuf,
    inner: Mutex<FsLogInner>,
    heads: Mutex<Option<Journal>>,
}

#[derive(Debug)]
struct FsLogInner {
    entries: Option<Journal>,
    /// (payload offset, payload length) of each entry.
    places: Vec<(u64, u32)>,
    /// Where `entries.bin` is damaged, if it is: then neither journal is open to append.
    damage: Option<LogDamage>,
}

impl FsLog {
    /// The log in `dir` (created if missing); its journals are opened by [`LogStore::load`].
    pub fn open(dir: &Path) -> StoreResult<FsLog> {
        std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
        let inner = FsLogInner { entries: None, places: Vec::new(), damage: None };
        Ok(FsLog { dir: dir.to_path_buf(), inner: Mutex::new(inner), heads: Mutex::new(None) })
    }

    /// Opens a journal of the log for appending (creating it if missing) after `scan`:
    /// a torn tail (a crash mid-append) is cut back and kept aside, as always.
    fn open_scanned(path: &Path, scan: Option<&Scan>) -> StoreResult<Journal> {
        match scan {
            Some(scan) => {
                Journal::open_scanned(path, scan).map(|(j, _)| j).map_err(io_err("opening", path))
            }
            None => Journal::create(path).map_err(io_err("creating", path)),
        }
    }

    /// Reads the log. A bad frame in the middle of `entries.bin` is never cut: the entries
    /// before it are returned, the damage is kept ([`LogStore::damage`]) and nothing is
    /// opened for appending, so no index is ever given twice. A torn tail is cut as
    /// before. `heads.bin` (signed heads, any of which the next append replaces) damaged
    /// in the middle is rewritten as its intact heads, the damaged file kept beside it.
    fn load_now(&self) -> StoreResult<Vec<Vec<u8>>> {
        let path = self.dir.join("entries.bin");
        let scan = if path.exists() {
            let is_entry = |p: &[u8], _: Found| LogEntry::decode(p).is_ok();
            Some(journal::scan(&path, is_entry).map_err(io_err("reading", &path))?)
        } else {
            None
        };
        if let Some(scan) = scan.as_ref().filter(|s| s.is_damaged()) {
            let first = scan.gaps().first().map_or(0, |d| d.offset);
            let before: Vec<&journal::Frame> =
                scan.frames.iter().take_while(|f| f.offset < first).collect();
            let gaps: Vec<String> = scan.gaps().iter().map(ToString::to_string).collect();
            let damage = LogDamage {
                index: before.len() as u64,
                offset: first,
                detail: format!(
                    "{} of {} {} no readable entry ({}), and {} intact entries follow",
                    if gaps.len() == 1 {
                        "one stretch".to_string()
                    } else {
                        format!("{} stretches", gaps.len())
                    },
                    path.display(),
                    if gaps.len() == 1 { "holds" } else { "hold" },
                    gaps.join(", "),
                    scan.frames.len() - before.len()
                ),
            };
            let places = before.iter().map(|f| (f.payload_offset(), f.payload.len() as u32));
            let payloads = before.iter().map(|f| f.payload.clone()).collect();
            *lock(&self.inner) =
                FsLogInner { entries: None, places: places.collect(), damage: Some(damage) };
            *lock(&self.heads) = None;
            return Ok(payloads);
        }
        let entries = Self::open_scanned(&path, scan.as_ref())?;
        let heads_path = self.dir.join("heads.bin");
        let heads_scan = if heads_path.exists() {
            let is_head = |p: &[u8], _: Found| Signed::<TreeHead>::parse(p).is_ok();
            let mut s =
                journal::scan(&heads_path, is_head).map_err(io_err("reading", &heads_path))?;
            if s.is_damaged() {
                let kept =
                    journal::recover(&heads_path, &s).map_err(io_err("recovering", &heads_path))?;
                eprintln!(
                    "custody-server: {} was damaged; its {} intact heads are kept, the damaged file as {}",
                    heads_path.display(),
                    s.frames.len(),
                    kept.display()
                );
                s = journal::scan(&heads_path, is_head).map_err(io_err("reading", &heads_path))?;
            }
            Some(s)
        } else {
            None
        };
        let heads = Self::open_scanned(&heads_path, heads_scan.as_ref())?;
        let frames = scan.map(|s| s.frames).unwrap_or_default();
        let places = frames.iter().map(|f| (f.payload_offset(), f.payload.len() as u32)).collect();
        let payloads = frames.into_iter().map(|f| f.payload).collect();
        *lock(&self.inner) = FsLogInner { entries: Some(entries), places, damage: None };
        *lock(&self.heads) = Some(heads);
        Ok(payloads)
    }

    fn append_now(&self, entry: &[u8]) -> StoreResult<()> {
        let known = lock(&self.inner).places.len() as u64;
        self.append_batch_now(known, std::slice::from_ref(&entry)).map(drop)
    }

    /// Appends `entries` as one journal write and one fsync. This store has one writer, so
    /// `known` must be its length: anything else is a caller that lost track of the log.
    fn append_batch_now<P: AsRef<[u8]>>(
        &self,
        known: u64,
        entries: &[P],
    ) -> StoreResult<Vec<Vec<u8>>> {
        let mut inner = lock(&self.inner);
        if let Some(d) = &inner.damage {
            return Err(StoreError::Damaged(d.to_string()));
        }
        let len = inner.places.len() as u64;
        if known != len {
            return Err(StoreError::Damaged(format!(
                "a batch for a log of {known} entries was appended to one of {len}: the \
                 filesystem log has a single writer"
            )));
        }
        let j = inner.entries.as_mut().ok_or_else(|| {
            StoreError::Damaged("the custody log was appended to before it was loaded".into())
        })?;
        let mut at = j.position();
        j.append_all(entries).map_err(io_err("appending to", &self.dir.join("entries.bin")))?;
        for e in entries {
            let n = e.as_ref().len() as u64;
            inner.places.push((at + journal::FRAME_HEADER, n as u32));
            at += journal::FRAME_HEADER + n;
        }
        Ok(Vec::new())
    }

    fn entries_now(&self, indices: &[u64]) -> StoreResult<Vec<Vec<u8>>> {
        let places: Vec<(u64, u32)> = {
            let inner = lock(&self.inner);
            indices
                .iter()
                .map(|&i| {
                    usize::try_from(i).ok().and_then(|i| inner.places.get(i).copied()).ok_or_else(
                        || StoreError::Damaged(format!("no custody log entry {i} to read")),
                    )
                })
                .collect::<StoreResult<_>>()?
        };
        let path = self.dir.join("entries.bin");
        let file = std::fs::File::open(&path).map_err(io_err("reading", &path))?;
        places
            .iter()
            .map(|&(offset, len)| {
                let mut buf = vec![0u8; len as usize];
                file.read_exact_at(&mut buf, offset).map_err(io_err("reading", &path))?;
                Ok(buf)
            })
            .collect()
    }
}

impl LogStore for FsLog {
    fn load(&self) -> BoxFuture<'_, StoreResult<Vec<Vec<u8>>>> {
        Box::pin(async move { self.load_now() })
    }

    fn append<'a>(&'a self, entry: &'a [u8]) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move { self.append_now(entry) })
    }

    fn append_batch<'a>(
        &'a self,
        known: u64,
        entries: &'a [Vec<u8>],
    ) -> BoxFuture<'a, StoreResult<Vec<Vec<u8>>>> {
        Box::pin(async move { self.append_batch_now(known, entries) })
    }

    fn append_head<'a>(&'a self, head: &'a [u8]) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            match lock(&self.heads).as_mut() {
                Some(j) => {
                    j.append(head).map_err(io_err("appending to", &self.dir.join("heads.bin")))
                }
                None => Err(StoreError::Damaged("the head journal is not open".into())),
            }
        })
    }

    fn entries<'a>(&'a self, indices: &'a [u64]) -> BoxFuture<'a, StoreResult<Vec<Vec<u8>>>> {
        Box::pin(async move { self.entries_now(indices) })
    }

    fn damage(&self) -> Option<LogDamage> {
        lock(&self.inner).damage.clone()
    }
}

/// [`IndexStore`] in a sled database at `<data>/index`. If it will not open, it is moved
/// aside (to `index.broken-<µs>`) and a new one made, which the server then rebuilds.
#[derive(Debug)]
pub struct SledIndex {
    db: sled::Db,
    records: sled::Tree,
    owners: sled::Tree,
    /// Why a new index replaced one that would not open, if it did.
    pub replaced: Option<String>,
}

const LOG_SIZE: &[u8] = b"log_size";

fn key(id: &RecordingId, seq: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..16].copy_from_slice(&id.0);
    k[16..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn sled_err(what: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
    move |e| StoreError::backend(format!("{what} the index"), e)
}

fn decode_stored(v: &[u8]) -> StoreResult<Stored> {
    serde_json::from_slice(v).map_err(|e| StoreError::Damaged(format!("an index entry: {e}")))
}

impl SledIndex {
    fn open_at(path: &Path) -> Result<SledIndex, sled::Error> {
        let db = sled::Config::new().path(path).mode(sled::Mode::HighThroughput).open()?;
        let records = db.open_tree("records")?;
        let owners = db.open_tree("owners")?;
        Ok(SledIndex { db, records, owners, replaced: None })
    }

    /// Opens (or creates) the index of the data directory `data_dir`.
    pub fn open(data_dir: &Path) -> StoreResult<SledIndex> {
        let path = data_dir.join("index");
        match Self::open_at(&path) {
            Ok(i) => Ok(i),
            // Not damage: nothing to move aside (see `open`).
            Err(e) if crate::reserve::is_no_space(&e) => {
                Err(StoreError::backend(format!("opening {}", path.display()), e))
            }
            Err(e) => {
                let aside = data_dir.join(format!("index.broken-{}", crate::now_us()));
                std::fs::rename(&path, &aside).map_err(io_err("moving aside", &path))?;
                let mut i = Self::open_at(&path)
                    .map_err(|e| StoreError::backend(format!("opening {}", path.display()), e))?;
                i.replaced = Some(format!("the index would not open ({e})"));
                Ok(i)
            }
        }
    }

    fn positions_now(&self, id: &RecordingId) -> StoreResult<Vec<(u64, Stored)>> {
        let mut out = Vec::new();
        for item in self.records.scan_prefix(id.0) {
            let (k, v) = item.map_err(sled_err("reading"))?;
            let Some(seq) = k.get(16..24).and_then(|b| <[u8; 8]>::try_from(b).ok()) else {
                continue;
            };
            out.push((u64::from_be_bytes(seq), decode_stored(&v)?));
        }
        Ok(out)
    }

    fn last_now(&self, id: &RecordingId) -> StoreResult<Option<(u64, Stored)>> {
        let Some(item) = self.records.scan_prefix(id.0).next_back() else { return Ok(None) };
        let (k, v) = item.map_err(sled_err("reading"))?;
        let seq = k
            .get(16..24)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .ok_or_else(|| StoreError::Damaged("an index key".into()))?;
        Ok(Some((u64::from_be_bytes(seq), decode_stored(&v)?)))
    }
}

impl IndexStore for SledIndex {
    fn get(&self, id: RecordingId, seq: u64) -> BoxFuture<'_, StoreResult<Option<Stored>>> {
        Box::pin(async move {
            match self.records.get(key(&id, seq)).map_err(sled_err("reading"))? {
                Some(v) => decode_stored(&v).map(Some),
                None => Ok(None),
            }
        })
    }

    fn put<'a>(
        &'a self,
        id: RecordingId,
        seq: u64,
        s: &'a Stored,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let v = serde_json::to_vec(s).map_err(|e| StoreError::backend("encoding", e))?;
            self.records.insert(key(&id, seq), v).map_err(sled_err("writing"))?;
            Ok(())
        })
    }

    fn positions(&self, id: RecordingId) -> BoxFuture<'_, StoreResult<Vec<(u64, Stored)>>> {
        Box::pin(async move { self.positions_now(&id) })
    }

    fn last(&self, id: RecordingId) -> BoxFuture<'_, StoreResult<Option<(u64, Stored)>>> {
        Box::pin(async move { self.last_now(&id) })
    }

    fn owner(&self, id: RecordingId) -> BoxFuture<'_, StoreResult<Option<[u8; 32]>>> {
        Box::pin(async move {
            Ok(self
                .owners
                .get(id.0)
                .map_err(sled_err("reading"))?
                .and_then(|v| <[u8; 32]>::try_from(v.as_ref()).ok()))
        })
    }

    fn set_owner(&self, id: RecordingId, device: [u8; 32]) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            self.owners.insert(id.0, device.as_slice()).map_err(sled_err("writing"))?;
            Ok(())
        })
    }

    fn log_size(&self) -> BoxFuture<'_, StoreResult<Option<u64>>> {
        Box::pin(async move {
            Ok(self
                .db
                .get(LOG_SIZE)
                .map_err(sled_err("reading"))?
                .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                .map(u64::from_be_bytes))
        })
    }

    fn set_log_size(&self, size: u64) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            self.db.insert(LOG_SIZE, &size.to_be_bytes()).map_err(sled_err("writing"))?;
            Ok(())
        })
    }

    fn clear(&self) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            self.records.clear().map_err(sled_err("clearing"))?;
            self.owners.clear().map_err(sled_err("clearing"))?;
            self.db.remove(LOG_SIZE).map_err(sled_err("clearing"))?;
            Ok(())
        })
    }

    fn flush(&self) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            self.db.flush().map_err(sled_err("flushing"))?;
            Ok(())
        })
    }
}

/// [`TokenStore`] in `<data>/tokens/`: beside a running server, so `custody admin
/// enroll-token` can issue tokens without it.
#[derive(Debug)]
pub struct FsTokens {
    dir: PathBuf,
}

impl FsTokens {
    /// The tokens of the data directory `data_dir`.
    pub fn new(data_dir: &Path) -> FsTokens {
        FsTokens { dir: data_dir.join("tokens") }
    }

    fn path(&self, hash: &[u8; 32], ext: &str) -> PathBuf {
        self.dir.join(format!("{}.{ext}", hex::encode(hash)))
    }
}

impl TokenStore for FsTokens {
    fn issue<'a>(
        &'a self,
        hash: [u8; 32],
        token: &'a TokenRecord,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            std::fs::create_dir_all(&self.dir).map_err(io_err("creating", &self.dir))?;
            let path = self.path(&hash, "json");
            let bytes =
                serde_json::to_vec(token).map_err(|e| StoreError::backend("encoding", e))?;
            write_durable(&path, &bytes, true).map_err(io_err("writing", &path))
        })
    }

    fn get(&self, hash: [u8; 32]) -> BoxFuture<'_, StoreResult<Option<TokenRecord>>> {
        Box::pin(async move {
            let path = self.path(&hash, "json");
            match read_opt(&path)? {
                None => Ok(None),
                Some(b) => serde_json::from_slice(&b)
                    .map(Some)
                    .map_err(|e| StoreError::Damaged(format!("{}: {e}", path.display()))),
            }
        })
    }

    fn is_spent(&self, hash: [u8; 32]) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move { Ok(self.path(&hash, "used").exists()) })
    }

    fn spend<'a>(
        &'a self,
        hash: [u8; 32],
        device: &'a PublicKey,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let path = self.path(&hash, "used");
            write_durable(&path, format!("{device}\n").as_bytes(), true)
                .map_err(io_err("writing", &path))
        })
    }
}

/// [`MemberStore`] in `<data>/members/`: beside a running server, so `custody admin member
/// add` can add members without it.
#[derive(Debug)]
pub struct FsMembers {
    dir: PathBuf,
}

impl FsMembers {
    /// The members of the data directory `data_dir`.
    pub fn new(data_dir: &Path) -> FsMembers {
        FsMembers { dir: data_dir.join("members") }
    }

    fn all_now(&self) -> StoreResult<Vec<MemberEntry>> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err("listing", &self.dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err("listing", &self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(hash) = name
                .strip_suffix(".json")
                .and_then(|h| hex::decode(h).ok())
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
            else {
                continue;
            };
            if let Some(m) = read_opt(&entry.path())?.and_then(|b| serde_json::from_slice(&b).ok())
            {
                out.push((hash, m));
            }
        }
        out.sort_by(|a: &MemberEntry, b| {
            a.1.created_at_us.cmp(&b.1.created_at_us).then(a.0.cmp(&b.0))
        });
        Ok(out)
    }
}

impl MemberStore for FsMembers {
    fn all(&self) -> BoxFuture<'_, StoreResult<Vec<MemberEntry>>> {
        Box::pin(async move { self.all_now() })
    }

    fn get(&self, hash: [u8; 32]) -> BoxFuture<'_, StoreResult<Option<Member>>> {
        Box::pin(async move {
            let path = self.dir.join(format!("{}.json", hex::encode(hash)));
            match read_opt(&path)? {
                None => Ok(None),
                Some(b) => serde_json::from_slice(&b)
                    .map(Some)
                    .map_err(|e| StoreError::Damaged(format!("{}: {e}", path.display()))),
            }
        })
    }

    fn add<'a>(&'a self, hash: [u8; 32], member: &'a Member) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            std::fs::create_dir_all(&self.dir).map_err(io_err("creating", &self.dir))?;
            let path = self.dir.join(format!("{}.json", hex::encode(hash)));
            let bytes =
                serde_json::to_vec(member).map_err(|e| StoreError::backend("encoding", e))?;
            write_durable(&path, &bytes, true).map_err(io_err("writing", &path))
        })
    }
}
