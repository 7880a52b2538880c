//! The custody log: an append-only sequence of log entries and of signed heads, kept in a
//! [`LogStore`] (two journals in `<data>/log/` by default, see [`crate::store::fs`]).
//!
//! An append is durable before the group commit's `append` returns, and receipts are signed only
//! after it. The tree is RFC 9162's: the log keeps a [`merkle::Tree`] of every complete
//! subtree's hash (about 64 bytes an entry, rebuilt from the entries when the log opens),
//! so an append costs O(1) hashing amortised and a root, inclusion or consistency proof at
//! any size costs O(log n), however long the log grows. Beside it the log keeps the
//! catalog of which entries concern which recording or device, so that a bundle finds
//! its entries without reading the others.
//!
//! **Group commit.** Appends go through [`GroupCommit`]: the entries that arrive while one
//! batch is being flushed are the next batch, written with one [`LogStore::append_batch`]
//! (one write and one fsync in the data directory) and covered by one signed tree head.
//! There is no timer: a lone append is flushed at once, and under load a batch is whatever
//! queued during the previous flush. Every caller still waits for its own entry's batch to
//! be durable before it gets its [`Appended`], so no receipt precedes its fsync. The first
//! caller to find no flush running leads the batch; when it is done it hands the lead to
//! the oldest waiting caller, so no thread flushes for others forever.
//!
//! **A shared log.** On a store several replicas append to (a database), a batch lands
//! after whatever the others appended; `append_batch` returns those entries and the log
//! pushes them into its tree and catalog before its own, so every replica holds the one
//! sequence. `GroupCommit::catch_up` reads newer entries the same way before a proof of
//! a size this replica has not seen, and now and then before a head is served.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use custody_format::ids::{PublicKey, RecordingId};
use custody_format::log::{LogEntry, TreeHead};
use custody_format::merkle::{self, MerkleError, Tree};
use custody_format::signed::Signed;
use ed25519_dalek::SigningKey;

use crate::catalog::Catalog;
use crate::server::lock;
use crate::store::{block_on, LogStore, StoreError};

/// Log failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The log's store failed.
    #[error("custody log: {0}")]
    Store(#[from] StoreError),
    /// A stored entry does not parse: the log is damaged and the server will not run on it.
    #[error("custody log entry {index} is damaged: {reason}")]
    Damaged {
        /// Its index.
        index: u64,
        /// The parse error.
        reason: String,
    },
    /// The stored log is damaged in the middle, so nothing is appended to it: an entry
    /// appended after the damage would take an index the damaged entry (or one after it)
    /// already had, forking a log the server signed.
    #[error("{0}")]
    ReadOnly(LogDamage),
}

/// Where the stored log is damaged: past a torn tail, an entry that cannot be read with
/// intact entries (or more than one unfinished entry) after it. The log is then served
/// read-only: the entries before the damage, their tree head and proofs; nothing is
/// appended until the log is restored from a backup (`docs/deploy.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogDamage {
    /// The index of the first entry that cannot be read: the entries before it are the
    /// ones served and proven.
    pub index: u64,
    /// Its byte offset in the store (`<data>/log/entries.bin`).
    pub offset: u64,
    /// Every damaged byte range, and what is known to follow, for the operator.
    pub detail: String,
}

impl std::fmt::Display for LogDamage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the custody log is damaged at entry {} (byte offset {}): {}; the server serves the {} entries \
             before it read-only and appends nothing until the log is restored from a backup",
            self.index, self.offset, self.detail, self.index
        )
    }
}

/// Where an entry went.
#[derive(Clone, Debug)]
pub struct Appended {
    /// Its index.
    pub index: u64,
    /// The tree size after it (`index + 1`).
    pub tree_size: u64,
    /// The root of that tree.
    pub root: [u8; 32],
}

/// The open log.
#[derive(Debug)]
pub struct CustodyLog {
    store: Arc<dyn LogStore>,
    tree: Tree,
    catalog: Catalog,
    key: SigningKey,
    head: Signed<TreeHead>,
    /// Set when the stored log is damaged: every append is refused.
    damage: Option<LogDamage>,
    /// Entries appended for ingest whose index entries are not written yet: the index
    /// covers the log only up to the first of them ([`CustodyLog::indexed`]).
    unindexed: BTreeSet<u64>,
    /// The covered size last handed out by [`CustodyLog::indexed`].
    marked: u64,
    /// When [`GroupCommit::catch_up`] last read what other writers appended.
    caught_up: Instant,
}

impl CustodyLog {
    /// Opens (or creates) the log in the directory `dir`; returns it and every entry.
    pub fn open(dir: &Path, key: SigningKey) -> Result<(CustodyLog, Vec<LogEntry>), LogError> {
        let store = crate::store::fs::FsLog::open(dir)?;
        CustodyLog::open_store(Arc::new(store), key)
    }

    /// Opens the log kept in `store`; returns it and every entry, in order. If the store
    /// reports damage ([`LogStore::damage`]) the log holds the entries before it and is
    /// read-only ([`CustodyLog::damage`]).
    pub fn open_store(
        store: Arc<dyn LogStore>,
        key: SigningKey,
    ) -> Result<(CustodyLog, Vec<LogEntry>), LogError> {
        let payloads = block_on(store.load())?;
        let damage = store.damage();
        let mut tree = Tree::new();
        let mut catalog = Catalog::default();
        let mut entries = Vec::with_capacity(payloads.len());
        for (i, p) in payloads.iter().enumerate() {
            let e = LogEntry::decode(p)
                .map_err(|e| LogError::Damaged { index: i as u64, reason: e.to_string() })?;
            tree.push(merkle::leaf_hash(p));
            catalog.note(i as u64, &e);
            entries.push(e);
        }
        let head = Signed::sign(
            TreeHead {
                tree_size: tree.len(),
                root_hash: tree.root(),
                timestamp_us: crate::now_us(),
            },
            &key,
        );
        let marked = tree.len();
        let log = CustodyLog {
            store,
            tree,
            catalog,
            key,
            head,
            damage,
            unindexed: BTreeSet::new(),
            marked,
            caught_up: Instant::now(),
        };
        Ok((log, entries))
    }

    /// Pushes an entry that is durable in the store (this writer's or another's) into the
    /// tree and the catalog; returns its index. An entry another writer stored that does
    /// not parse still takes its place in the tree (the tree is of the stored bytes), but
    /// the catalog cannot say what it concerns.
    fn push(&mut self, bytes: &[u8], entry: Option<&LogEntry>) -> u64 {
        let index = self.tree.len();
        self.tree.push(merkle::leaf_hash(bytes));
        match entry {
            Some(e) => self.catalog.note(index, e),
            None => match LogEntry::decode(bytes) {
                Ok(e) => self.catalog.note(index, &e),
                Err(reason) => eprintln!(
                    "custody-server: custody log entry {index}, from another writer, does not \
                     parse: {reason}"
                ),
            },
        }
        index
    }

    /// Signs a head for the whole tree and makes it the latest.
    fn sign_head(&mut self) -> Signed<TreeHead> {
        let head = Signed::sign(
            TreeHead {
                tree_size: self.tree.len(),
                root_hash: self.tree.root(),
                timestamp_us: crate::now_us(),
            },
            &self.key,
        );
        self.head = head.clone();
        head
    }

    /// Notes that the index entry of the ingest entry at `index` is written. Returns the
    /// size up to which every entry appended for ingest has its index entry, when that
    /// grew: what the index may now be marked as covering. (Entries of other kinds need no
    /// index entry.)
    pub(crate) fn indexed(&mut self, index: u64) -> Option<u64> {
        self.unindexed.remove(&index);
        let covered = self.indexed_prefix();
        (covered > self.marked).then(|| {
            self.marked = covered;
            covered
        })
    }

    /// The size up to which every entry appended for ingest has its index entry.
    pub(crate) fn indexed_prefix(&self) -> u64 {
        self.unindexed.first().copied().unwrap_or(self.tree.len())
    }

    /// Where the stored log is damaged, if it is: the log is then read-only.
    pub fn damage(&self) -> Option<&LogDamage> {
        self.damage.as_ref()
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.tree.len()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// The latest signed head.
    pub fn head(&self) -> &Signed<TreeHead> {
        &self.head
    }

    /// The root of the tree of the first `size` entries (O(log n)).
    pub fn root_at(&self, size: u64) -> Option<[u8; 32]> {
        self.tree.root_at(size).ok()
    }

    /// The subtree hashes, for proofs.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// The RFC 9162 consistency proof between the trees of the first `from` and the first
    /// `to` entries (O(log n)).
    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<[u8; 32]>, MerkleError> {
        self.tree.consistency_proof(from, to)
    }

    /// The leaf hash of entry `index` and its RFC 9162 inclusion proof in the tree of the
    /// first `size` entries (O(log n)).
    pub fn inclusion_proof(
        &self,
        index: u64,
        size: u64,
    ) -> Result<([u8; 32], Vec<[u8; 32]>), MerkleError> {
        let proof = self.tree.inclusion_proof(index, size)?;
        let leaf =
            self.tree.leaf(index).ok_or(MerkleError::IndexOutOfRange { index, tree_size: size })?;
        Ok((leaf, proof))
    }

    /// The indices of the entries about recording `id` and those naming only `device`, up
    /// to index `last`, in log order.
    pub(crate) fn concerning(&self, id: &RecordingId, device: &PublicKey, last: u64) -> Vec<u64> {
        self.catalog.concerning(id, device, last)
    }

    /// The time-stamp token entries before index `before`, in log order.
    pub(crate) fn tokens_before(&self, before: u64) -> &[crate::catalog::Token] {
        self.catalog.tokens_before(before)
    }

    /// The index of the latest entry that is not a time-stamp token: what time-stamping
    /// waits for before it asks again.
    pub(crate) fn last_untimed(&self) -> Option<u64> {
        self.catalog.last_untimed()
    }

    /// The store, to read entries back without holding the log.
    pub(crate) fn store(&self) -> Arc<dyn LogStore> {
        self.store.clone()
    }
}

/// How many entries one batch takes at most (the rest wait for the next flush).
const MAX_BATCH: usize = 1024;

/// How often a head request reads what other writers appended ([`GroupCommit::catch_up`]).
pub(crate) const CATCH_UP_EVERY: Duration = Duration::from_millis(250);

/// Group commit of the custody log (see the module documentation): the queue of appends
/// waiting for a flush, and the lock that orders appends against a statement of the log.
#[derive(Debug, Default)]
pub struct GroupCommit {
    queue: Mutex<Queue>,
    /// Held shared by every append and exclusively by whoever must see the log standing
    /// still from a reading to its own append (a bundle's retrieval statement).
    order: RwLock<()>,
    heads: Mutex<Heads>,
}

#[derive(Debug, Default)]
struct Queue {
    /// Appends (and catch-ups, with no entry) waiting for the next flush, oldest first.
    pending: Vec<Pending>,
    /// Whether a caller is leading a flush. While it is, `pending` fills; when it is done
    /// it hands the lead to `pending[0]`, or clears this if nothing waits.
    flushing: bool,
}

#[derive(Debug)]
struct Pending {
    /// The entry and its bytes; none for a catch-up.
    entry: Option<(LogEntry, Vec<u8>)>,
    /// Whether it is an ingest entry, whose index entry the caller writes next.
    tracked: bool,
    slot: Arc<Slot>,
}

/// What a caller of a batch gets: its place, or none for a catch-up.
type Outcome = Result<Option<Appended>, LogError>;

/// Where a waiting caller learns that its batch is done, or that it leads the next.
#[derive(Debug, Default)]
struct Slot {
    state: Mutex<SlotState>,
    wake: Condvar,
}

#[derive(Debug, Default)]
enum SlotState {
    #[default]
    Waiting,
    Lead,
    Done(Outcome),
}

impl Slot {
    fn set(&self, state: SlotState) {
        *lock(&self.state) = state;
        self.wake.notify_one();
    }
}

/// The newest signed head not yet stored, and whether a caller is storing one: heads are
/// stored one at a time, in order, off the path of the next batch.
#[derive(Debug, Default)]
struct Heads {
    newest: Option<Signed<TreeHead>>,
    stored_size: u64,
    storing: bool,
}

/// What a caller does when a batch's append fails: `true` if it freed room and the batch
/// should be tried once more (the disk-space reserve, `crate::reserve`).
pub(crate) type OnFailure<'a> = &'a (dyn Fn(&StoreError) -> bool + Sync);

impl GroupCommit {
    /// Holds appends in order with a statement of the log: shared by every append.
    pub(crate) fn ordered(&self) -> RwLockReadGuard<'_, ()> {
        self.order.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds every other append off, so that the log stands still from a reading of it
    /// to the holder's own append.
    pub(crate) fn exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        self.order.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `entry` to `log` durably, in the next batch; returns where it went once
    /// that batch is durable in the store. `tracked` marks an ingest entry, whose index
    /// entry the caller writes next and then notes with [`CustodyLog::indexed`]. The
    /// caller must not hold `log`'s lock (the batch's leader takes it).
    pub(crate) fn append(
        &self,
        log: &Mutex<CustodyLog>,
        entry: &LogEntry,
        tracked: bool,
        on_failure: OnFailure<'_>,
    ) -> Result<Appended, LogError> {
        if let Some(d) = lock(log).damage.clone() {
            return Err(LogError::ReadOnly(d));
        }
        let bytes = entry.encode();
        match self.submit(log, Some((entry.clone(), bytes)), tracked, on_failure)? {
            Some(a) => Ok(a),
            None => Err(LogError::Damaged {
                index: lock(log).len(),
                reason: "an append's batch returned no place for it".into(),
            }),
        }
    }

    /// Reads what other writers appended to the store since `log` last looked, and pushes
    /// it into the tree and catalog (signing a head for the new size): a replica does this
    /// before it proves a size it has not seen. Nothing to read on a store with one writer.
    pub(crate) fn catch_up(&self, log: &Mutex<CustodyLog>) -> Result<(), LogError> {
        let never = |_: &StoreError| false;
        self.submit(log, None, false, &never).map(drop)
    }

    /// [`GroupCommit::catch_up`] if the last look is older than `every` and no flush is
    /// running (a flush reads newer entries anyway): what a head request does, so that it
    /// never waits for an fsync.
    pub(crate) fn catch_up_if_stale(&self, log: &Mutex<CustodyLog>, every: Duration) {
        if lock(log).caught_up.elapsed() < every || lock(&self.queue).flushing {
            return;
        }
        if let Err(e) = self.catch_up(log) {
            eprintln!("custody-server: reading the custody log's newer entries: {e}");
        }
    }

    fn submit(
        &self,
        log: &Mutex<CustodyLog>,
        entry: Option<(LogEntry, Vec<u8>)>,
        tracked: bool,
        on_failure: OnFailure<'_>,
    ) -> Result<Option<Appended>, LogError> {
        let slot = Arc::new(Slot::default());
        let lead = {
            let mut q = lock(&self.queue);
            q.pending.push(Pending { entry, tracked, slot: slot.clone() });
            !std::mem::replace(&mut q.flushing, true)
        };
        if !lead {
            let mut st = lock(&slot.state);
            loop {
                match std::mem::take(&mut *st) {
                    SlotState::Waiting => {
                        st = slot.wake.wait(st).unwrap_or_else(|p| p.into_inner());
                    }
                    SlotState::Lead => break,
                    SlotState::Done(r) => return r,
                }
            }
        }
        // This caller leads: its own entry is the oldest pending (a new leader found the
        // queue empty; a handed lead goes to `pending[0]`), so the batch holds it.
        let batch: Vec<Pending> = {
            let mut q = lock(&self.queue);
            let n = q.pending.len().min(MAX_BATCH);
            q.pending.drain(..n).collect()
        };
        let (results, head) = self.flush(log, &batch, on_failure);
        let mut own = None;
        for (p, r) in batch.iter().zip(results) {
            if Arc::ptr_eq(&p.slot, &slot) {
                own = Some(r);
            } else {
                p.slot.set(SlotState::Done(r));
            }
        }
        {
            let mut q = lock(&self.queue);
            match q.pending.first() {
                Some(next) => next.slot.set(SlotState::Lead),
                None => q.flushing = false,
            }
        }
        if let Some(head) = head {
            self.store_head(log, head);
        }
        own.unwrap_or_else(|| {
            Err(LogError::Damaged { index: 0, reason: "the leader's entry left its batch".into() })
        })
    }

    /// Writes `batch` as one store append and pushes it (after what others appended)
    /// into the tree; returns each one's outcome, in order, and the head signed for the
    /// batch, to store.
    fn flush(
        &self,
        log: &Mutex<CustodyLog>,
        batch: &[Pending],
        on_failure: OnFailure<'_>,
    ) -> (Vec<Outcome>, Option<Signed<TreeHead>>) {
        let (store, known) = {
            let l = lock(log);
            (l.store.clone(), l.tree.len())
        };
        let bytes: Vec<Vec<u8>> =
            batch.iter().filter_map(|p| p.entry.as_ref().map(|(_, b)| b.clone())).collect();
        let appended = if bytes.is_empty() {
            block_on(store.entries_after(known))
        } else {
            match block_on(store.append_batch(known, &bytes)) {
                Err(e) if on_failure(&e) => block_on(store.append_batch(known, &bytes)),
                other => other,
            }
        };
        let others = match appended {
            Ok(o) => o,
            Err(e) => {
                let e = LogError::Store(e);
                let results = batch.iter().map(|_| Err(copy_error(&e))).collect();
                return (results, None);
            }
        };
        let mut l = lock(log);
        if l.tree.len() != known {
            // Only a leader pushes, and one leads at a time: this cannot happen, and a tree
            // that moved would misplace the batch, so nothing is answered.
            let e = LogError::Damaged {
                index: known,
                reason: format!("the tree grew from {known} to {} during a flush", l.tree.len()),
            };
            return (batch.iter().map(|_| Err(copy_error(&e))).collect(), None);
        }
        for o in &others {
            l.push(o, None);
        }
        let mut results = Vec::with_capacity(batch.len());
        for p in batch {
            let r = p.entry.as_ref().map(|(entry, bytes)| {
                let index = l.push(bytes, Some(entry));
                if p.tracked {
                    l.unindexed.insert(index);
                }
                Appended { index, tree_size: index + 1, root: l.tree.root() }
            });
            results.push(Ok(r));
        }
        l.caught_up = Instant::now();
        let head = (!bytes.is_empty() || !others.is_empty()).then(|| l.sign_head());
        (results, head)
    }

    /// Stores `head` unless a newer one is stored already. One caller stores at a time;
    /// a head that arrives meanwhile is left for it, so nobody waits for another's fsync.
    fn store_head(&self, log: &Mutex<CustodyLog>, head: Signed<TreeHead>) {
        {
            let mut h = lock(&self.heads);
            let size = head.value().tree_size;
            if h.newest.as_ref().is_none_or(|n| n.value().tree_size < size) {
                h.newest = Some(head);
            }
            if std::mem::replace(&mut h.storing, true) {
                return;
            }
        }
        let store = lock(log).store.clone();
        loop {
            let next = {
                let mut h = lock(&self.heads);
                match h.newest.take().filter(|n| n.value().tree_size > h.stored_size) {
                    Some(n) => {
                        h.stored_size = n.value().tree_size;
                        n
                    }
                    None => {
                        h.storing = false;
                        return;
                    }
                }
            };
            // The entries are already durable; a failure to store a head only loses a
            // head, which the next batch replaces, so it fails no append.
            if let Err(e) = block_on(store.append_head(&next.to_bytes())) {
                eprintln!("custody-server: storing the tree head: {e}");
            }
        }
    }
}

/// The same failure again, for another caller of the batch that failed: what a caller
/// tests it for (a full disk, damage) survives the copy.
fn copy_error(e: &LogError) -> LogError {
    match e {
        LogError::ReadOnly(d) => LogError::ReadOnly(d.clone()),
        LogError::Damaged { index, reason } => {
            LogError::Damaged { index: *index, reason: reason.clone() }
        }
        LogError::Store(s) => LogError::Store(match s {
            StoreError::Conflict { id, seq } => StoreError::Conflict { id: *id, seq: *seq },
            StoreError::Damaged(m) => StoreError::Damaged(m.clone()),
            StoreError::Backend { context, source } => {
                StoreError::backend(context.clone(), io_copy(source.as_ref()))
            }
            other => StoreError::backend("the custody log's batch", io_copy(other)),
        }),
    }
}

/// An error's message as an I/O error, a full disk still recognisable as one.
fn io_copy(e: &(dyn std::error::Error + 'static)) -> std::io::Error {
    let kind = if crate::reserve::is_no_space(e) {
        std::io::ErrorKind::StorageFull
    } else {
        std::io::ErrorKind::Other
    };
    std::io::Error::new(kind, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryLog;
    use crate::store::{BoxFuture, StoreResult};
    use custody_format::log::EntryType;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn entry(n: u64) -> LogEntry {
        let mut e = LogEntry::new(EntryType::Access, n as i64);
        e.actor = Some("tester".into());
        e.detail = Some(format!("entry {n}"));
        e
    }

    fn never(_: &StoreError) -> bool {
        false
    }

    /// One writer's log on `store`: the state and its group commit.
    fn open(store: Arc<dyn LogStore>) -> (Mutex<CustodyLog>, GroupCommit) {
        let (log, _) = CustodyLog::open_store(store, key()).unwrap();
        (Mutex::new(log), GroupCommit::default())
    }

    /// Checks that `log` proves every entry of `store` and is consistent from every size.
    fn check_proofs(log: &CustodyLog, store: &MemoryLog) {
        let all = block_on(store.load()).unwrap();
        let size = log.len();
        assert_eq!(size, all.len() as u64);
        let root = log.root_at(size).unwrap();
        for (i, bytes) in all.iter().enumerate() {
            let (leaf, proof) = log.inclusion_proof(i as u64, size).unwrap();
            assert_eq!(leaf, merkle::leaf_hash(bytes), "entry {i}'s leaf");
            merkle::verify_inclusion(&leaf, i as u64, size, &proof, &root).unwrap();
            let old = log.root_at(i as u64).unwrap();
            let c = log.consistency_proof(i as u64, size).unwrap();
            merkle::verify_consistency(i as u64, size, &old, &root, &c).unwrap();
        }
    }

    #[test]
    fn two_writers_on_one_shared_store_hold_one_tree() {
        // Two replicas' logs on one store that several writers share (the memory store
        // behaves as a database would): their appends interleave, each batch landing
        // after the other's.
        let shared = Arc::new(MemoryLog::default());
        let (a, ca) = open(shared.clone());
        let (b, cb) = open(shared.clone());
        let mut places = Vec::new();
        for n in 0..40u64 {
            let (log, commit) = if n % 3 == 1 { (&b, &cb) } else { (&a, &ca) };
            let got = commit.append(log, &entry(n), false, &never).unwrap();
            places.push(got.index);
            // The receipt's root is the root of the tree that ends at the entry.
            assert_eq!(Some(got.root), lock(log).root_at(got.tree_size));
        }
        let mut sorted = places.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), places.len(), "a position was used twice: {places:?}");
        assert_eq!(sorted, (0..40).collect::<Vec<_>>(), "every position once, in order");
        // `a` appended last; `b` catches up before it proves a size it has not seen.
        assert!(lock(&b).len() < 40);
        cb.catch_up(&b).unwrap();
        let (a, b) = (lock(&a), lock(&b));
        assert_eq!(a.len(), 40);
        assert_eq!(a.tree().root(), b.tree().root(), "one tree");
        assert_eq!(a.head().value().tree_size, 40);
        assert_eq!(b.head().value().root_hash, a.tree().root(), "b signed a head for it");
        check_proofs(&a, &shared);
        check_proofs(&b, &shared);
        // The catalog learnt the other writer's entries too.
        assert_eq!(a.last_untimed(), Some(39));
        assert_eq!(b.last_untimed(), Some(39));
    }

    #[test]
    fn two_writers_appending_at_once_from_threads_hold_one_tree() {
        let shared = Arc::new(MemoryLog::default());
        let (a, ca) = open(shared.clone());
        let (b, cb) = open(shared.clone());
        let places = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let (log, commit) = if t % 2 == 0 { (&a, &ca) } else { (&b, &cb) };
                let places = &places;
                s.spawn(move || {
                    for n in 0..25 {
                        let got = commit.append(log, &entry(t * 100 + n), false, &never).unwrap();
                        lock(places).push(got.index);
                    }
                });
            }
        });
        let mut places = places.into_inner().unwrap();
        places.sort_unstable();
        assert_eq!(places, (0..200).collect::<Vec<_>>(), "no position used twice or skipped");
        ca.catch_up(&a).unwrap();
        cb.catch_up(&b).unwrap();
        let (a, b) = (lock(&a), lock(&b));
        assert_eq!(a.tree().root(), b.tree().root());
        check_proofs(&a, &shared);
        check_proofs(&b, &shared);
    }

    /// A fake log store: the memory store, with each batch's flush noted in a shared
    /// record of events (and the first batch held until the test lets it go), so that a
    /// test sees whether an answer ever came before its batch was durable.
    #[derive(Debug)]
    struct NotingLog {
        inner: MemoryLog,
        events: Arc<Mutex<Vec<Event>>>,
        hold_first: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    }

    #[derive(Debug, Clone, PartialEq)]
    enum Event {
        /// A batch of these indices is durable.
        Durable(std::ops::Range<u64>),
        /// An append returned this index to its caller.
        Answered(u64),
    }

    impl LogStore for NotingLog {
        fn load(&self) -> BoxFuture<'_, StoreResult<Vec<Vec<u8>>>> {
            self.inner.load()
        }
        fn append<'a>(&'a self, entry: &'a [u8]) -> BoxFuture<'a, StoreResult<()>> {
            let _ = entry;
            Box::pin(async { Err(StoreError::Damaged("append one at a time: not batched".into())) })
        }
        fn append_batch<'a>(
            &'a self,
            known: u64,
            entries: &'a [Vec<u8>],
        ) -> BoxFuture<'a, StoreResult<Vec<Vec<u8>>>> {
            Box::pin(async move {
                if let Some(rx) = lock(&self.hold_first).take() {
                    let _ = rx.recv_timeout(Duration::from_secs(10));
                }
                let others = self.inner.append_batch(known, entries).await?;
                let from = known + others.len() as u64;
                lock(&self.events).push(Event::Durable(from..from + entries.len() as u64));
                Ok(others)
            })
        }
        fn append_head<'a>(&'a self, head: &'a [u8]) -> BoxFuture<'a, StoreResult<()>> {
            self.inner.append_head(head)
        }
        fn entries<'a>(&'a self, i: &'a [u64]) -> BoxFuture<'a, StoreResult<Vec<Vec<u8>>>> {
            self.inner.entries(i)
        }
    }

    impl GroupCommit {
        fn queued(&self) -> usize {
            lock(&self.queue).pending.len()
        }
    }

    #[test]
    fn appends_queued_during_a_flush_share_the_next_and_none_is_answered_before_it() {
        let events = Arc::new(Mutex::new(Vec::new()));
        let (release, held) = std::sync::mpsc::channel();
        let store = Arc::new(NotingLog {
            inner: MemoryLog::default(),
            events: events.clone(),
            hold_first: Mutex::new(Some(held)),
        });
        let (log, commit) = open(store);
        const WAITING: usize = 15;
        std::thread::scope(|s| {
            let (log, commit, events) = (&log, &commit, &events);
            let answer = move |n: u64| {
                let got = commit.append(log, &entry(n), false, &never).unwrap();
                lock(events).push(Event::Answered(got.index));
            };
            // The first append leads and its flush is held; the others queue behind it.
            s.spawn(move || answer(0));
            let until = Instant::now() + Duration::from_secs(10);
            let leading = || lock(&commit.queue).flushing && commit.queued() == 0;
            while !leading() && Instant::now() < until {
                std::thread::yield_now();
            }
            for n in 1..=WAITING as u64 {
                s.spawn(move || answer(n));
            }
            while commit.queued() < WAITING && Instant::now() < until {
                std::thread::yield_now();
            }
            assert_eq!(commit.queued(), WAITING, "the appends queue while a flush runs");
            release.send(()).unwrap();
        });
        let events = lock(&events).clone();
        let durable: Vec<_> = events
            .iter()
            .filter_map(|e| if let Event::Durable(r) = e { Some(r.clone()) } else { None })
            .collect();
        assert_eq!(durable, [0..1, 1..1 + WAITING as u64], "one batch for all that queued");
        for (at, e) in events.iter().enumerate() {
            if let Event::Answered(i) = e {
                let flushed =
                    events[..at].iter().any(|d| matches!(d, Event::Durable(r) if r.contains(i)));
                assert!(flushed, "entry {i} was answered before its batch was durable: {events:?}");
            }
        }
        let l = lock(&log);
        assert_eq!(l.len(), 1 + WAITING as u64);
        assert_eq!(l.head().value().tree_size, l.len(), "one head signed for the last batch");
    }

    #[test]
    fn a_failed_batch_fails_every_append_in_it_and_a_full_disk_stays_recognisable() {
        #[derive(Debug, Default)]
        struct Full;
        impl LogStore for Full {
            fn load(&self) -> BoxFuture<'_, StoreResult<Vec<Vec<u8>>>> {
                Box::pin(async { Ok(Vec::new()) })
            }
            fn append<'a>(&'a self, _: &'a [u8]) -> BoxFuture<'a, StoreResult<()>> {
                Box::pin(async {
                    Err(StoreError::backend(
                        "appending",
                        std::io::Error::from(std::io::ErrorKind::StorageFull),
                    ))
                })
            }
            fn append_head<'a>(&'a self, _: &'a [u8]) -> BoxFuture<'a, StoreResult<()>> {
                Box::pin(async { Ok(()) })
            }
            fn entries<'a>(&'a self, _: &'a [u64]) -> BoxFuture<'a, StoreResult<Vec<Vec<u8>>>> {
                Box::pin(async { Ok(Vec::new()) })
            }
        }
        let (log, commit) = open(Arc::new(Full));
        let tries = Mutex::new(0);
        let free = |e: &StoreError| {
            *lock(&tries) += 1;
            crate::reserve::is_no_space(e)
        };
        let e = commit.append(&log, &entry(0), false, &free).unwrap_err();
        assert!(crate::reserve::is_no_space(&e), "{e}");
        assert_eq!(*lock(&tries), 1, "tried once more after freeing room, then gave up");
        assert_eq!(lock(&log).len(), 0, "nothing pushed for a batch that failed");
        let copied = copy_error(&e);
        assert!(crate::reserve::is_no_space(&copied), "{copied}");
    }

    #[test]
    fn the_index_is_marked_only_as_far_as_every_ingest_entry_is_indexed() {
        let (log, commit) = open(Arc::new(MemoryLog::default()));
        let a = commit.append(&log, &entry(0), true, &never).unwrap();
        let b = commit.append(&log, &entry(1), true, &never).unwrap();
        let _c = commit.append(&log, &entry(2), false, &never).unwrap();
        let mut l = lock(&log);
        assert_eq!(l.indexed_prefix(), 0);
        assert_eq!(l.indexed(b.index), None, "entry 0 is not indexed yet");
        assert_eq!(l.indexed(a.index), Some(3), "all three covered: 2 needs no index entry");
        assert_eq!(l.indexed_prefix(), 3);
    }
}
