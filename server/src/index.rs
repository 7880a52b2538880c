//! The server's index: a sled database of stored records, their receipts and owners.
//!
//! It is never the only copy of anything. Every value is derived from the stored records
//! and the custody log (a receipt is a pure function of its log entry and the tree under
//! it), and [`crate::Server::open`] rebuilds the index whenever it will not open or does
//! not cover the whole log. (sled 0.34 has open reports of corruption after a kill.)

use std::path::Path;

use custody_format::ids::RecordingId;
use serde::{Deserialize, Serialize};

/// What the index holds for one stored record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// 1 header, 2 segment, 3 end (the object kind).
    pub kind: u8,
    /// Its record hash, hex.
    pub record_hash: String,
    /// The record hash it links to (not for the header), hex.
    pub prev: Option<String>,
    /// Its log index, once the log entry is appended.
    pub log_index: Option<u64>,
    /// Its signed receipt, hex, once made.
    pub receipt: Option<String>,
}

/// Errors of the index. Any of them at start leads to a rebuild.
pub type IndexError = sled::Error;

/// The sled database.
#[derive(Clone, Debug)]
pub struct Index {
    db: sled::Db,
    records: sled::Tree,
    owners: sled::Tree,
}

const LOG_SIZE: &[u8] = b"log_size";

fn key(id: &RecordingId, seq: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..16].copy_from_slice(&id.0);
    k[16..].copy_from_slice(&seq.to_be_bytes());
    k
}

impl Index {
    /// Opens (or creates) the index at `path`.
    pub fn open(path: &Path) -> Result<Index, IndexError> {
        let db = sled::Config::new().path(path).mode(sled::Mode::HighThroughput).open()?;
        let records = db.open_tree("records")?;
        let owners = db.open_tree("owners")?;
        Ok(Index { db, records, owners })
    }

    /// The stored record at `seq`.
    pub fn get(&self, id: &RecordingId, seq: u64) -> Result<Option<Stored>, IndexError> {
        Ok(self.records.get(key(id, seq))?.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Records what is stored at `seq`.
    pub fn put(&self, id: &RecordingId, seq: u64, s: &Stored) -> Result<(), IndexError> {
        self.records.insert(key(id, seq), serde_json::to_vec(s).unwrap_or_default())?;
        Ok(())
    }

    /// Every stored record of a recording, by position.
    pub fn positions(&self, id: &RecordingId) -> Result<Vec<(u64, Stored)>, IndexError> {
        let mut out = Vec::new();
        for item in self.records.scan_prefix(id.0) {
            let (k, v) = item?;
            let Some(seq) = k.get(16..24).and_then(|b| <[u8; 8]>::try_from(b).ok()) else {
                continue;
            };
            if let Ok(s) = serde_json::from_slice(&v) {
                out.push((u64::from_be_bytes(seq), s));
            }
        }
        Ok(out)
    }

    /// The device that opened a recording.
    pub fn owner(&self, id: &RecordingId) -> Result<Option<[u8; 32]>, IndexError> {
        Ok(self.owners.get(id.0)?.and_then(|v| <[u8; 32]>::try_from(v.as_ref()).ok()))
    }

    /// Records the device that opened a recording.
    pub fn set_owner(&self, id: &RecordingId, device: &[u8; 32]) -> Result<(), IndexError> {
        self.owners.insert(id.0, device.as_slice())?;
        Ok(())
    }

    /// The log size the index was last brought up to date with.
    pub fn log_size(&self) -> Result<Option<u64>, IndexError> {
        Ok(self
            .db
            .get(LOG_SIZE)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes))
    }

    /// Notes that the index covers the first `size` log entries.
    pub fn set_log_size(&self, size: u64) -> Result<(), IndexError> {
        self.db.insert(LOG_SIZE, &size.to_be_bytes())?;
        Ok(())
    }

    /// Empties the index (before a rebuild).
    pub fn clear(&self) -> Result<(), IndexError> {
        self.records.clear()?;
        self.owners.clear()?;
        self.db.remove(LOG_SIZE)?;
        Ok(())
    }

    /// Writes everything to disk.
    pub fn flush(&self) -> Result<(), IndexError> {
        self.db.flush()?;
        Ok(())
    }
}
