//! The custody log: an append-only sequence of log entries and of signed heads, kept in a
//! [`LogStore`] (two journals in `<data>/log/` by default, see [`crate::store::fs`]).
//!
//! An append is durable before [`CustodyLog::append`] returns, and receipts are signed only
//! after it. The tree is RFC 9162's: the log keeps a [`merkle::Tree`] of every complete
//! subtree's hash (about 64 bytes an entry, rebuilt from the entries when the log opens),
//! so an append costs O(1) hashing amortised and a root, inclusion or consistency proof at
//! any size costs O(log n), however long the log grows. Beside it the log keeps the
//! catalog of which entries concern which recording or device, so that a bundle finds
//! its entries without reading the others.

use std::path::Path;
use std::sync::Arc;

use custody_format::ids::{PublicKey, RecordingId};
use custody_format::log::{LogEntry, TreeHead};
use custody_format::merkle::{self, MerkleError, Tree};
use custody_format::signed::Signed;
use ed25519_dalek::SigningKey;

use crate::catalog::Catalog;
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
        Ok((CustodyLog { store, tree, catalog, key, head, damage }, entries))
    }

    /// Appends `entry` durably, signs and stores the new tree head.
    pub fn append(&mut self, entry: &LogEntry) -> Result<Appended, LogError> {
        if let Some(d) = &self.damage {
            return Err(LogError::ReadOnly(d.clone()));
        }
        let bytes = entry.encode();
        block_on(self.store.append(&bytes))?;
        let index = self.tree.len();
        self.tree.push(merkle::leaf_hash(&bytes));
        self.catalog.note(index, entry);
        let tree_size = self.tree.len();
        let root = self.tree.root();
        let head = Signed::sign(
            TreeHead { tree_size, root_hash: root, timestamp_us: crate::now_us() },
            &self.key,
        );
        // The entry is already durable; a failure to store the head only loses a head,
        // which the next append replaces, so it does not fail the append.
        if let Err(e) = block_on(self.store.append_head(&head.to_bytes())) {
            eprintln!("custody-server: storing the tree head: {e}");
        }
        self.head = head;
        Ok(Appended { index, tree_size, root })
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
