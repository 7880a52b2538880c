//! The device's watch on the server's custody log.
//!
//! Every receipt names the tree (size and root) its log entry was appended under. The vault
//! keeps the largest tree head it has seen from its server, durably, and whenever a receipt
//! (or the server's latest head) names another tree, it asks the server for an RFC 9162
//! consistency proof between the two and checks it. A server that removed, changed or
//! forked its log after the device saw a head cannot produce one. A failed check is
//! written down in the vault with the evidence (both signed statements and the proof), is
//! reported with the stable code [`CODE`], and the uploader stops sending to that server;
//! nothing is deleted and every record stays in the outbox.
//!
//! ```text
//! <vault>/log-head.json          the largest head seen: size, root, and the signed object naming it
//! <vault>/log-inconsistent.json  written once a check fails; the uploader refuses to run while it exists
//! ```

use std::path::Path;

use custody_durable::fsutil::{sync_dir, write_durable};
use custody_format::merkle;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// The stable code of a failed consistency check.
pub const CODE: &str = "log.inconsistent";

const HEAD_FILE: &str = "log-head.json";
const INCONSISTENT_FILE: &str = "log-inconsistent.json";

/// A tree of the server's log, as a signed statement named it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadRef {
    /// Entries in the tree.
    pub tree_size: u64,
    /// Its RFC 9162 root, hex.
    pub root_hash: String,
    /// What named it: `receipt` or `tree-head`.
    pub source: String,
    /// That signed object's bytes, hex (the server's own signature over size and root).
    pub signed: String,
}

impl HeadRef {
    /// The root as bytes (`None` if the stored hex is damaged).
    pub fn root(&self) -> Option<[u8; 32]> {
        hex::decode(&self.root_hash).ok()?.try_into().ok()
    }
}

/// The head the vault holds for its server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldHead {
    /// The server key it belongs to (`ed25519:…`).
    pub server_key: String,
    /// The tree.
    #[serde(flatten)]
    pub head: HeadRef,
    /// Device time it was stored, µs since the epoch.
    pub stored_at_us: i64,
}

/// What the vault writes when a consistency check fails.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inconsistency {
    /// Always [`CODE`].
    pub code: String,
    /// What failed, for a person.
    pub message: String,
    /// The server key.
    pub server_key: String,
    /// The head the vault held.
    pub held: HeadRef,
    /// The head the server offered that does not extend (or is not extended by) it.
    pub offered: HeadRef,
    /// The proof the server gave, hex (empty if it gave none).
    pub proof: Vec<String>,
    /// Device time of the check, µs since the epoch.
    pub detected_at_us: i64,
}

/// Why a check did not pass.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The two heads are not consistent: the evidence.
    Inconsistent(Box<Inconsistency>),
    /// The check could not be made now (network, server busy); try again.
    Retry(String),
}

fn load<T: DeserializeOwned>(path: &Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn save<T: Serialize>(dir: &Path, name: &str, value: &T) -> std::io::Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.new"));
    let _ = std::fs::remove_file(&tmp);
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    write_durable(&tmp, &bytes, false)?;
    std::fs::rename(&tmp, &path)?;
    sync_dir(dir)
}

/// The head held in `vault_dir`, if any.
pub fn held(vault_dir: &Path) -> std::io::Result<Option<HeldHead>> {
    load(&vault_dir.join(HEAD_FILE))
}

/// Stores `head` as the held head (fsynced, renamed into place).
pub fn store_held(vault_dir: &Path, head: &HeldHead) -> std::io::Result<()> {
    save(vault_dir, HEAD_FILE, head)
}

/// The recorded inconsistency, if a check ever failed.
pub fn inconsistency(vault_dir: &Path) -> std::io::Result<Option<Inconsistency>> {
    load(&vault_dir.join(INCONSISTENT_FILE))
}

/// Records a failed check (fsynced). An earlier record is kept: the first evidence counts.
pub fn record_inconsistency(vault_dir: &Path, i: &Inconsistency) -> std::io::Result<()> {
    if vault_dir.join(INCONSISTENT_FILE).exists() {
        return Ok(());
    }
    save(vault_dir, INCONSISTENT_FILE, i)
}

/// Checks that the tree `newer` extends the tree `older` with `proof` (RFC 9162 §2.1.4.2).
pub fn verify(older: &HeadRef, newer: &HeadRef, proof: &[[u8; 32]]) -> Result<(), String> {
    let (Some(old_root), Some(new_root)) = (older.root(), newer.root()) else {
        return Err("a stored root is not 32 bytes of hex".into());
    };
    merkle::verify_consistency(older.tree_size, newer.tree_size, &old_root, &new_root, proof)
        .map_err(|e| {
            format!(
                "the log of {} entries (root {}) does not extend the log of {} entries (root {}): {e}",
                newer.tree_size, newer.root_hash, older.tree_size, older.root_hash
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(leaves: &[[u8; 32]], n: usize) -> HeadRef {
        HeadRef {
            tree_size: n as u64,
            root_hash: hex::encode(merkle::root(&leaves[..n])),
            source: "test".into(),
            signed: String::new(),
        }
    }

    #[test]
    fn a_proof_from_the_same_log_verifies_and_a_rewritten_log_does_not() {
        let leaves: Vec<[u8; 32]> = (0u8..13).map(|i| merkle::leaf_hash(&[i])).collect();
        let proof = merkle::consistency_proof(&leaves, 5, 13).unwrap();
        assert!(verify(&head(&leaves, 5), &head(&leaves, 13), &proof).is_ok());
        // Entry 2 changed after the device saw the head of 5.
        let mut changed = leaves.clone();
        changed[2] = merkle::leaf_hash(b"changed");
        let proof = merkle::consistency_proof(&changed, 5, 13).unwrap();
        let err = verify(&head(&leaves, 5), &head(&changed, 13), &proof).unwrap_err();
        assert!(err.contains("does not extend"), "{err}");
    }

    #[test]
    fn the_held_head_survives_a_reopen_and_the_first_inconsistency_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(held(dir.path()).unwrap(), None);
        let leaves: Vec<[u8; 32]> = (0u8..3).map(|i| merkle::leaf_hash(&[i])).collect();
        let h = HeldHead { server_key: "k".into(), head: head(&leaves, 3), stored_at_us: 1 };
        store_held(dir.path(), &h).unwrap();
        assert_eq!(held(dir.path()).unwrap(), Some(h.clone()));
        let i = |m: &str| Inconsistency {
            code: CODE.into(),
            message: m.into(),
            server_key: "k".into(),
            held: h.head.clone(),
            offered: h.head.clone(),
            proof: vec![],
            detected_at_us: 2,
        };
        record_inconsistency(dir.path(), &i("first")).unwrap();
        record_inconsistency(dir.path(), &i("second")).unwrap();
        assert_eq!(inconsistency(dir.path()).unwrap().unwrap().message, "first");
    }
}
