//! The retrieval statement: what the server held of a recording when it made a bundle.
//!
//! A bundle is only as complete as whoever last handled it left it: records can be dropped
//! from its end together with their receipts, proofs and segments, and the manifest made
//! again, with no key at all. So the custody-log entry that the server appends for a bundle
//! retrieval (type 8, `detail` starting `bundle`) states, in six fields, the recording's
//! chain as the server had stored and receipted it and the log entries the bundle must
//! carry ([`Statement`], `docs/format.md` §9.2). That entry is the last leaf under the
//! bundle's signed tree head, so it cannot be changed or dropped without the server's key,
//! and a verifier recomputes both hashes from what the bundle holds.
//!
//! The server computes the statement under its log's append lock, from exactly the
//! records and entries logged before the access entry; the verifier computes the same
//! functions over the bundle's records and log proofs. Both use the functions here.

use sha2::{Digest, Sha256};

use crate::log::LogEntry;
use crate::primitives::{DOMAIN_CHAIN_STATEMENT, DOMAIN_ENTRY_STATEMENT};
use crate::record::Hash;

/// `SHA-256("custody/v1/chain-statement\0" || seq_1 || hash_1 || seq_2 || hash_2 || …)`
/// over `(seq, record hash)` pairs given in position order, each `seq` a u64 big-endian and
/// each record hash the 32-byte hash of `docs/format.md` §5. Positions may have gaps (0,
/// 1, 3), which a count alone would not show; the hash does.
pub fn chain_hash(records: impl IntoIterator<Item = (u64, Hash)>) -> Hash {
    framed_hash(DOMAIN_CHAIN_STATEMENT, records)
}

/// `SHA-256("custody/v1/entry-statement\0" || index_1 || leaf_1 || index_2 || leaf_2 || …)`
/// over `(log index, leaf hash)` pairs given in log order, each index a u64 big-endian and
/// each leaf hash RFC 9162's `SHA-256(0x00 || entry bytes)` ([`crate::merkle::leaf_hash`]).
pub fn entries_hash(entries: impl IntoIterator<Item = (u64, Hash)>) -> Hash {
    framed_hash(DOMAIN_ENTRY_STATEMENT, entries)
}

fn framed_hash(domain: &[u8], pairs: impl IntoIterator<Item = (u64, Hash)>) -> Hash {
    let mut h = Sha256::new();
    h.update(domain);
    for (n, hash) in pairs {
        h.update(n.to_be_bytes());
        h.update(hash);
    }
    h.finalize().into()
}

/// One record as a statement counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatedRecord {
    /// Its chain position.
    pub seq: u64,
    /// Its record hash (`docs/format.md` §5).
    pub hash: Hash,
    /// Whether it is the end record.
    pub end: bool,
}

/// The six statement fields of a bundle retrieval's access entry (log-entry tags 12–17).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Statement {
    /// How many of the recording's records the server had stored and receipted.
    pub chain_count: u64,
    /// The highest of their positions (0 when there are none).
    pub chain_last_seq: u64,
    /// Whether one of them is the end record.
    pub chain_ended: bool,
    /// [`chain_hash`] over them, in position order.
    #[serde(with = "crate::record::hex_bytes")]
    pub chain_hash: Hash,
    /// How many log entries before this one the bundle must carry: those concerning the
    /// recording or naming only its device.
    pub entries_count: u64,
    /// [`entries_hash`] over them, in log order.
    #[serde(with = "crate::record::hex_bytes")]
    pub entries_hash: Hash,
}

impl Statement {
    /// The statement of `records` (in position order) and `entries` (`(log index, leaf
    /// hash)`, in log order).
    pub fn new(
        records: impl IntoIterator<Item = StatedRecord>,
        entries: impl IntoIterator<Item = (u64, Hash)>,
    ) -> Statement {
        let (mut count, mut last, mut ended) = (0u64, 0u64, false);
        let hash = chain_hash(
            records
                .into_iter()
                .inspect(|r| {
                    count += 1;
                    last = last.max(r.seq);
                    ended |= r.end;
                })
                .map(|r| (r.seq, r.hash)),
        );
        let mut entries_count = 0u64;
        let entries_hash = entries_hash(entries.into_iter().inspect(|_| entries_count += 1));
        Statement {
            chain_count: count,
            chain_last_seq: last,
            chain_ended: ended,
            chain_hash: hash,
            entries_count,
            entries_hash,
        }
    }

    /// The statement `entry` carries, if it has all six fields (a log entry may carry
    /// none: only a bundle retrieval's does, and only from `custody-bundle 2` on).
    pub fn of(entry: &LogEntry) -> Option<Statement> {
        Some(Statement {
            chain_count: entry.chain_count?,
            chain_last_seq: entry.chain_last_seq?,
            chain_ended: entry.chain_ended?,
            chain_hash: entry.chain_hash?,
            entries_count: entry.entries_count?,
            entries_hash: entry.entries_hash?,
        })
    }

    /// Sets the six fields of `entry` to this statement.
    pub fn write_to(&self, entry: &mut LogEntry) {
        entry.chain_count = Some(self.chain_count);
        entry.chain_last_seq = Some(self.chain_last_seq);
        entry.chain_ended = Some(self.chain_ended);
        entry.chain_hash = Some(self.chain_hash);
        entry.entries_count = Some(self.entries_count);
        entry.entries_hash = Some(self.entries_hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::EntryType;
    use crate::primitives::sha256;

    #[test]
    fn the_hashes_frame_each_pair_after_their_domain() {
        let pairs = [(0u64, [1u8; 32]), (1, [2; 32]), (3, [3; 32])];
        let mut input = b"custody/v1/chain-statement\0".to_vec();
        for (n, h) in pairs {
            input.extend_from_slice(&n.to_be_bytes());
            input.extend_from_slice(&h);
        }
        assert_eq!(chain_hash(pairs), sha256(&[&input]));
        let mut input = b"custody/v1/entry-statement\0".to_vec();
        for (n, h) in pairs {
            input.extend_from_slice(&n.to_be_bytes());
            input.extend_from_slice(&h);
        }
        assert_eq!(entries_hash(pairs), sha256(&[&input]));
        assert_eq!(chain_hash([]), sha256(&[b"custody/v1/chain-statement\0"]));
        // Same pairs, other domain: other hash.
        assert_ne!(chain_hash(pairs), entries_hash(pairs));
    }

    #[test]
    fn fixed_vectors() {
        // Fixed inputs, so that another implementation can check itself against these.
        assert_eq!(
            hex::encode(chain_hash([(0, [0x11; 32]), (1, [0x22; 32]), (3, [0x33; 32])])),
            CHAIN_VECTOR
        );
        assert_eq!(hex::encode(entries_hash([(0, [0xaa; 32]), (7, [0xbb; 32])])), ENTRIES_VECTOR);
    }

    // Computed independently (Python's hashlib) from the definitions in docs/format.md 9.2.
    const CHAIN_VECTOR: &str = "0ae18bc556d32123d034ebdbb630c47bbea54d04b5a70af8c2a4a838d0c9277c";
    const ENTRIES_VECTOR: &str = "8ed8f0a244faa9f33f33943ef47ab7bec5edd1064e04f8a56a01f98a9ce9533f";

    #[test]
    fn a_gap_a_reorder_or_a_dropped_record_changes_the_chain_hash() {
        let full = [(0u64, [1u8; 32]), (1, [2; 32]), (2, [3; 32])];
        let h = chain_hash(full);
        assert_ne!(h, chain_hash([(0, [1; 32]), (1, [2; 32]), (3, [3; 32])]));
        assert_ne!(h, chain_hash([(0, [1; 32]), (2, [3; 32]), (1, [2; 32])]));
        assert_ne!(h, chain_hash([(0, [1; 32]), (1, [2; 32])]));
    }

    #[test]
    fn a_statement_counts_and_round_trips_through_a_log_entry() {
        let records = [
            StatedRecord { seq: 0, hash: [1; 32], end: false },
            StatedRecord { seq: 1, hash: [2; 32], end: false },
            StatedRecord { seq: 3, hash: [3; 32], end: true },
        ];
        let entries = [(0u64, [9u8; 32]), (4, [8; 32])];
        let s = Statement::new(records, entries);
        assert_eq!((s.chain_count, s.chain_last_seq, s.chain_ended), (3, 3, true));
        assert_eq!(s.chain_hash, chain_hash(records.iter().map(|r| (r.seq, r.hash))));
        assert_eq!((s.entries_count, s.entries_hash), (2, entries_hash(entries)));

        let mut e = LogEntry::new(EntryType::Access, 1_700_000_000_000_000);
        e.actor = Some("Ana".into());
        e.detail = Some("bundle".into());
        assert_eq!(Statement::of(&e), None);
        s.write_to(&mut e);
        let back = LogEntry::decode(&e.encode()).unwrap();
        assert_eq!(Statement::of(&back), Some(s));
        // Five of six is no statement.
        let mut partial = back.clone();
        partial.entries_hash = None;
        assert_eq!(Statement::of(&partial), None);

        let empty = Statement::new([], []);
        assert_eq!((empty.chain_count, empty.chain_last_seq, empty.chain_ended), (0, 0, false));
    }
}
