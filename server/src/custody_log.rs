//! The custody log on disk: an append-only journal of log entries and one of signed heads.
//!
//! ```text
//! <data>/log/entries.bin   every LogEntry's bytes, one journal frame each (the Merkle leaves)
//! <data>/log/heads.bin     the signed TreeHead after each append
//! ```
//!
//! An append is durable (fsynced) before [`CustodyLog::append`] returns, and receipts are
//! signed only after it. The tree is RFC 9162's (`custody_format::merkle`); the log keeps
//! every leaf hash in memory, and the roots of its perfect subtrees (the "frontier"), so an
//! append costs O(log n) hashing however long the log grows.

use std::io;
use std::path::{Path, PathBuf};

use custody_durable::journal::Journal;
use custody_format::log::{LogEntry, TreeHead};
use custody_format::merkle;
use custody_format::signed::Signed;
use ed25519_dalek::SigningKey;

/// Log failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// A journal could not be read or written.
    #[error("custody log {path}: {source}")]
    Io {
        /// The journal.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A stored entry does not parse: the log is damaged and the server will not run on it.
    #[error("custody log entry {index} is damaged: {reason}")]
    Damaged {
        /// Its index.
        index: u64,
        /// The parse error.
        reason: String,
    },
}

/// The roots of the perfect subtrees covering the leaves so far, left to right, with
/// their sizes: enough to find the root after each append without rehashing everything.
#[derive(Debug, Default, Clone)]
pub struct Frontier {
    stack: Vec<([u8; 32], u64)>,
}

impl Frontier {
    /// Adds a leaf hash.
    pub fn push(&mut self, leaf: [u8; 32]) {
        self.stack.push((leaf, 1));
        while let [.., (l, ls), (r, rs)] = self.stack.as_slice() {
            if ls != rs {
                break;
            }
            let merged = (merkle::node_hash(l, r), ls + rs);
            self.stack.truncate(self.stack.len() - 2);
            self.stack.push(merged);
        }
    }

    /// The RFC 9162 root of the leaves pushed so far.
    pub fn root(&self) -> [u8; 32] {
        let mut rest = self.stack.iter().rev();
        match rest.next() {
            None => merkle::empty_root(),
            Some((last, _)) => rest.fold(*last, |acc, (l, _)| merkle::node_hash(l, &acc)),
        }
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
    entries: Journal,
    heads: Journal,
    leaves: Vec<[u8; 32]>,
    frontier: Frontier,
    key: SigningKey,
    head: Signed<TreeHead>,
}

fn now_us() -> i64 {
    crate::now_us()
}

impl CustodyLog {
    /// Opens (or creates) the log in `dir`; returns it and every entry, in order.
    pub fn open(dir: &Path, key: SigningKey) -> Result<(CustodyLog, Vec<LogEntry>), LogError> {
        let io_at = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LogError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io_at(dir))?;
        let open = |path: &Path| -> Result<(Journal, Vec<Vec<u8>>), LogError> {
            if path.exists() {
                let (j, contents) = Journal::open(path).map_err(io_at(path))?;
                Ok((j, contents.payloads))
            } else {
                Ok((Journal::create(path).map_err(io_at(path))?, Vec::new()))
            }
        };
        let (entries_j, payloads) = open(&dir.join("entries.bin"))?;
        let (heads, _) = open(&dir.join("heads.bin"))?;
        let mut leaves = Vec::with_capacity(payloads.len());
        let mut frontier = Frontier::default();
        let mut entries = Vec::with_capacity(payloads.len());
        for (i, p) in payloads.iter().enumerate() {
            let e = LogEntry::decode(p)
                .map_err(|e| LogError::Damaged { index: i as u64, reason: e.to_string() })?;
            let leaf = merkle::leaf_hash(p);
            leaves.push(leaf);
            frontier.push(leaf);
            entries.push(e);
        }
        let head = Signed::sign(
            TreeHead {
                tree_size: leaves.len() as u64,
                root_hash: frontier.root(),
                timestamp_us: now_us(),
            },
            &key,
        );
        Ok((CustodyLog { entries: entries_j, heads, leaves, frontier, key, head }, entries))
    }

    /// Appends `entry` durably, signs and stores the new tree head.
    pub fn append(&mut self, entry: &LogEntry) -> Result<Appended, LogError> {
        let bytes = entry.encode();
        self.entries
            .append(&bytes)
            .map_err(|source| LogError::Io { path: self.entries.path().to_path_buf(), source })?;
        let leaf = merkle::leaf_hash(&bytes);
        self.leaves.push(leaf);
        self.frontier.push(leaf);
        let tree_size = self.leaves.len() as u64;
        let root = self.frontier.root();
        let head = Signed::sign(
            TreeHead { tree_size, root_hash: root, timestamp_us: now_us() },
            &self.key,
        );
        // The entry is already durable; a failure to store the head only loses a head,
        // which the next append replaces, so it does not fail the append.
        if let Err(e) = self.heads.append(&head.to_bytes()) {
            eprintln!("custody-server: storing the tree head: {e}");
        }
        self.head = head;
        Ok(Appended { index: tree_size - 1, tree_size, root })
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// The latest signed head.
    pub fn head(&self) -> &Signed<TreeHead> {
        &self.head
    }

    /// The root of the tree of the first `size` entries (O(size)).
    pub fn root_at(&self, size: u64) -> Option<[u8; 32]> {
        let n = usize::try_from(size).ok()?;
        self.leaves.get(..n).map(merkle::root)
    }

    /// The leaf hashes, for proofs.
    pub fn leaves(&self) -> &[[u8; 32]] {
        &self.leaves
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frontier_root_is_the_merkle_root_at_every_size() {
        let leaves: Vec<[u8; 32]> = (0u8..40).map(|i| merkle::leaf_hash(&[i])).collect();
        let mut f = Frontier::default();
        assert_eq!(f.root(), merkle::root(&[]));
        for n in 1..=leaves.len() {
            f.push(leaves[n - 1]);
            assert_eq!(f.root(), merkle::root(&leaves[..n]), "size {n}");
        }
    }
}
