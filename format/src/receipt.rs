//! Receipts: the server's signed statement that it has stored a record (and its segment).
//!
//! The server signs a receipt only after the ciphertext and the record are fsynced and
//! the matching entry is in its custody log; the receipt names that entry's index and the
//! tree head it was appended under, so a receipt is checkable against the log.

use crate::encoding::{DecodeError, Field, FieldReader, FieldWriter};
use crate::ids::{PublicKey, RecordingId};
use crate::primitives::DOMAIN_RECEIPT_SIGNATURE;
use crate::record::{kind, Hash};
use crate::signed::{read_key, Object};

const fn f(tag: u8, name: &'static str) -> Field {
    Field { tag, name }
}

const RECORDING_ID: Field = f(1, "recording_id");
const SEQ: Field = f(2, "seq");
const RECORD_HASH: Field = f(3, "record_hash");
const CIPHERTEXT_SHA256: Field = f(4, "ciphertext_sha256");
const DEVICE_KEY: Field = f(5, "device_key");
const RECEIVED_AT: Field = f(6, "received_at_us");
const LOG_INDEX: Field = f(7, "log_index");
const TREE_SIZE: Field = f(8, "tree_size");
const TREE_ROOT: Field = f(9, "tree_root");

/// What the server signs when it has durably stored a record.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Receipt {
    /// The recording.
    pub recording_id: RecordingId,
    /// The record's chain position.
    pub seq: u64,
    /// The record hash of what was stored.
    #[serde(with = "crate::record::hex_bytes")]
    pub record_hash: Hash,
    /// SHA-256 of the sealed segment stored with it (segment records only).
    #[serde(serialize_with = "opt_hex")]
    pub ciphertext_sha256: Option<Hash>,
    /// The device that uploaded it.
    pub device_key: PublicKey,
    /// Server time of storage, µs since the epoch: the record existed by then.
    pub received_at_us: i64,
    /// Index of the custody-log entry recording its receipt.
    pub log_index: u64,
    /// Size of the log tree the entry was appended under (greater than `log_index`).
    pub tree_size: u64,
    /// Root hash of that tree.
    #[serde(with = "crate::record::hex_bytes")]
    pub tree_root: Hash,
}

fn opt_hex<S: serde::Serializer>(v: &Option<Hash>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(h) => s.serialize_str(&hex::encode(h)),
        None => s.serialize_none(),
    }
}

impl Object for Receipt {
    const KIND: u8 = kind::RECEIPT;
    const NAME: &'static str = "receipt";
    const DOMAIN: &'static [u8] = DOMAIN_RECEIPT_SIGNATURE;

    fn write(&self, w: &mut FieldWriter) {
        w.raw(RECORDING_ID, &self.recording_id.0)
            .u64(SEQ, self.seq)
            .raw(RECORD_HASH, &self.record_hash);
        if let Some(c) = &self.ciphertext_sha256 {
            w.raw(CIPHERTEXT_SHA256, c);
        }
        w.raw(DEVICE_KEY, &self.device_key.to_bytes())
            .i64(RECEIVED_AT, self.received_at_us)
            .u64(LOG_INDEX, self.log_index)
            .u64(TREE_SIZE, self.tree_size)
            .raw(TREE_ROOT, &self.tree_root);
    }

    fn read(r: &mut FieldReader<'_>) -> Result<Self, DecodeError> {
        let v = Receipt {
            recording_id: RecordingId(r.array(RECORDING_ID)?),
            seq: r.u64(SEQ)?,
            record_hash: r.array(RECORD_HASH)?,
            ciphertext_sha256: r.optional_array(CIPHERTEXT_SHA256)?,
            device_key: read_key(r, DEVICE_KEY)?,
            received_at_us: r.i64(RECEIVED_AT)?,
            log_index: r.u64(LOG_INDEX)?,
            tree_size: r.u64(TREE_SIZE)?,
            tree_root: r.array(TREE_ROOT)?,
        };
        if v.log_index >= v.tree_size {
            return Err(DecodeError::InvalidValue {
                field: "log_index",
                reason: "the entry must lie inside the tree it was appended under",
            });
        }
        Ok(v)
    }
}
