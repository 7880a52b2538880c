//! The device's watch on the server's custody log.
//!
//! Every receipt names the tree (size and root) its log entry was appended under. The vault
//! keeps the largest tree head it has seen from its server, durably
//! ([`custody_vault::outbox::held`]), and whenever a receipt (or the server's latest head)
//! names another tree, the uploader asks the server for an RFC 9162 consistency proof
//! between the two and checks it. A server that removed, changed or forked its log after
//! the device saw a head cannot produce one. A failed check is written down in the vault
//! with the evidence (both signed statements and the proof), is reported with the stable
//! code [`CODE`], and the uploader stops sending to that server; nothing is deleted and
//! every record stays in the outbox.

use custody_format::merkle;
use custody_protocol::body::{ConsistencyProof, LogHead};
use custody_protocol::Code;
use custody_vault::outbox::{self, HeadRef, HeldHead, Inconsistency};

use crate::error::UploadError;
use crate::request::now_us;
use crate::uploader::Uploader;

/// The stable code of a failed consistency check.
pub const CODE: &str = outbox::LOG_INCONSISTENT;

/// Why a check did not pass.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The two heads are not consistent: the evidence.
    Inconsistent(Box<Inconsistency>),
    /// The check could not be made now (network, server busy); try again.
    Retry(String),
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

/// Why no consistency proof came.
enum ProofError {
    /// The server says it has no tree of a size it signed or the device holds.
    Missing(String),
    /// The request failed; try again later.
    Retry(String),
}

impl Uploader {
    /// The consistency proof between the trees of `from` and `to` entries.
    async fn proof(&self, from: u64, to: u64) -> Result<Vec<[u8; 32]>, ProofError> {
        let path = format!("/v1/log/consistency?from={from}&to={to}");
        match self.get_json::<ConsistencyProof>(&path).await {
            Ok(p) if p.from == from && p.to == to => Ok(p.proof),
            Ok(p) => Err(ProofError::Retry(format!(
                "asked for the proof from {from} to {to}, the server answered from {} to {}",
                p.from, p.to
            ))),
            // The server says it has no such tree, yet it signed one of that size (or the
            // device holds a head of it): its log lost entries.
            Err(e) if e.code() == Some(Code::LogRange) => Err(ProofError::Missing(format!(
                "the server has no consistency proof from {from} to {to} entries: {e}"
            ))),
            Err(e) => Err(ProofError::Retry(e.to_string())),
        }
    }

    /// Checks that the tree `offered` and the held head are consistent (one extends the
    /// other), asking the server for the proof, and holds `offered` if it is larger. The
    /// first head seen is held as it is. A failure is recorded in the vault and the server
    /// is no longer trusted.
    pub(crate) async fn check_log(&self, offered: HeadRef) -> Result<(), Failure> {
        let mut held = self.held.lock().await;
        let result = match held.as_ref().map(|h| h.head.clone()) {
            None => Ok(()),
            Some(h) if h.tree_size == offered.tree_size => {
                if h.root_hash == offered.root_hash {
                    Ok(())
                } else {
                    Err(Failure::Inconsistent(Box::new(self.evidence(
                        format!("two different roots for the log of {} entries", h.tree_size),
                        &h,
                        &offered,
                        &[],
                    ))))
                }
            }
            Some(h) => {
                let (older, newer) =
                    if h.tree_size < offered.tree_size { (&h, &offered) } else { (&offered, &h) };
                match self.proof(older.tree_size, newer.tree_size).await {
                    Ok(proof) => verify(older, newer, &proof).map_err(|m| {
                        Failure::Inconsistent(Box::new(self.evidence(m, &h, &offered, &proof)))
                    }),
                    Err(ProofError::Missing(m)) => {
                        Err(Failure::Inconsistent(Box::new(self.evidence(m, &h, &offered, &[]))))
                    }
                    Err(ProofError::Retry(m)) => Err(Failure::Retry(m)),
                }
            }
        };
        match result {
            Ok(()) => {
                if held.as_ref().is_none_or(|h| h.head.tree_size < offered.tree_size) {
                    let new = HeldHead {
                        server_key: self.server_key.to_string(),
                        head: offered,
                        stored_at_us: now_us(),
                    };
                    outbox::store_held(&self.dir, &new)
                        .map_err(|e| Failure::Retry(format!("storing the log head: {e}")))?;
                    *held = Some(new);
                }
                Ok(())
            }
            Err(Failure::Inconsistent(i)) => {
                if let Err(e) = outbox::record_inconsistency(&self.dir, &i) {
                    eprintln!("custody: recording the log inconsistency: {e}");
                }
                *self.distrust.lock().unwrap_or_else(|p| p.into_inner()) = Some(i.message.clone());
                Err(Failure::Inconsistent(i))
            }
            Err(e) => Err(e),
        }
    }

    fn evidence(
        &self,
        message: String,
        held: &HeadRef,
        offered: &HeadRef,
        proof: &[[u8; 32]],
    ) -> Inconsistency {
        Inconsistency {
            code: CODE.into(),
            message,
            server_key: self.server_key.to_string(),
            held: held.clone(),
            offered: offered.clone(),
            proof: proof.iter().map(hex::encode).collect(),
            detected_at_us: now_us(),
        }
    }

    /// Fetches the server's latest signed head and checks it against the held one. A
    /// server that cannot be reached is not an error here (the uploads will retry).
    pub async fn check_head(&self) -> Result<(), UploadError> {
        let answer: LogHead = match self.get_json("/v1/log/head").await {
            Ok(v) => v,
            Err(UploadError::Network(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let head = answer
            .signed()
            .map_err(|e| UploadError::BadAnswer(format!("the log head answer: {e}")))?;
        if !head.verify(&self.server_key) {
            return Err(UploadError::BadAnswer(
                "the tree head is not signed by the enrolled server".into(),
            ));
        }
        let offered = HeadRef {
            tree_size: head.value().tree_size,
            root_hash: hex::encode(head.value().root_hash),
            source: "tree-head".into(),
            signed: hex::encode(head.to_bytes()),
        };
        match self.check_log(offered).await {
            Ok(()) | Err(Failure::Retry(_)) => Ok(()),
            Err(Failure::Inconsistent(i)) => Err(UploadError::LogInconsistent(i.message)),
        }
    }
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
}
