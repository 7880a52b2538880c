//! The server's index of stored records, their receipts and owners (sled by default:
//! [`crate::store::fs::SledIndex`]; any [`IndexStore`]).
//!
//! It is never the only copy of anything. Every value is derived from the stored records
//! and the custody log (a receipt is a pure function of its log entry and the tree under
//! it), and [`crate::Server::open`] rebuilds the index whenever it will not open or does
//! not cover the whole log. (sled 0.34 has open reports of corruption after a kill.)

use std::sync::Arc;

use custody_format::ids::RecordingId;
use serde::{Deserialize, Serialize};

use crate::store::{block_on, IndexStore};

/// What the index holds for one stored record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// The record's object kind: `custody_format::record::kind::{HEADER, SEGMENT, END}`.
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
pub type IndexError = crate::store::StoreError;

/// The index as the server's blocking code paths use it: a synchronous view of the
/// configured [`IndexStore`], each call driven with [`block_on`] (see [`crate::store`]).
#[derive(Clone, Debug)]
pub struct Index {
    store: Arc<dyn IndexStore>,
}

impl Index {
    /// The view of `store`.
    pub fn new(store: Arc<dyn IndexStore>) -> Index {
        Index { store }
    }

    /// The stored record at `seq`.
    pub fn get(&self, id: &RecordingId, seq: u64) -> Result<Option<Stored>, IndexError> {
        block_on(self.store.get(*id, seq))
    }

    /// Records what is stored at `seq`.
    pub fn put(&self, id: &RecordingId, seq: u64, s: &Stored) -> Result<(), IndexError> {
        block_on(self.store.put(*id, seq, s))
    }

    /// Every stored record of a recording, by position.
    pub fn positions(&self, id: &RecordingId) -> Result<Vec<(u64, Stored)>, IndexError> {
        block_on(self.store.positions(*id))
    }

    /// The highest stored position of a recording and what is there.
    pub fn last(&self, id: &RecordingId) -> Result<Option<(u64, Stored)>, IndexError> {
        block_on(self.store.last(*id))
    }

    /// The device that opened a recording.
    pub fn owner(&self, id: &RecordingId) -> Result<Option<[u8; 32]>, IndexError> {
        block_on(self.store.owner(*id))
    }

    /// Records the device that opened a recording.
    pub fn set_owner(&self, id: &RecordingId, device: &[u8; 32]) -> Result<(), IndexError> {
        block_on(self.store.set_owner(*id, *device))
    }

    /// The log size the index was last brought up to date with.
    pub fn log_size(&self) -> Result<Option<u64>, IndexError> {
        block_on(self.store.log_size())
    }

    /// Notes that the index covers the first `size` log entries.
    pub fn set_log_size(&self, size: u64) -> Result<(), IndexError> {
        block_on(self.store.set_log_size(size))
    }

    /// Empties the index (before a rebuild).
    pub fn clear(&self) -> Result<(), IndexError> {
        block_on(self.store.clear())
    }

    /// Makes everything noted durable.
    pub fn flush(&self) -> Result<(), IndexError> {
        block_on(self.store.flush())
    }
}

impl crate::Server {
    /// Makes the index durable and marks it as covering the whole custody log, so that the
    /// next start finds nothing to rebuild: what a clean stop (SIGTERM, Ctrl-C) does.
    /// Returns the number of log entries it covers. (Only ingest moves the mark as it
    /// goes; enrollments, accesses and the rest need no index entry, so without this a
    /// stop after any of them left the mark behind the log and the index was rebuilt.)
    /// A damaged log's index is flushed but not marked: it is never rebuilt from the
    /// damaged log, and keeps the mark it had.
    pub fn flush_index(&self) -> Result<u64, IndexError> {
        let log = crate::server::lock(&self.inner.log);
        if self.inner.log_damage.is_none() {
            // Only as far as every ingest entry has its index entry (all of them, on a
            // server that has stopped taking uploads).
            self.inner.index.set_log_size(log.indexed_prefix())?;
        }
        self.inner.index.flush()?;
        Ok(log.len())
    }
}
