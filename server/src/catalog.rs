//! Which custody-log entries concern which recording or device, so that a bundle can carry
//! them without the server keeping the log's entries in memory or reading all of them.
//!
//! For every entry naming a recording (opened, segments, ended, equivocations, accesses)
//! and every entry naming only a device (enrollment, revocation), the catalog keeps its
//! index (8 bytes an entry). The custody log notes each entry as it loads and as it
//! appends, so the catalog is always exactly as long as the log; the bytes are read back
//! through the log's store and checked against the Merkle leaves.

use std::collections::HashMap;

use custody_format::ids::{PublicKey, RecordingId};
use custody_format::log::LogEntry;

use crate::members::Members;

/// Entry indices by recording and by device.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    by_recording: HashMap<[u8; 16], Vec<u64>>,
    by_device: HashMap<[u8; 32], Vec<u64>>,
}

impl Catalog {
    /// Notes `entry`, the one at `index` (appended in order).
    pub(crate) fn note(&mut self, index: u64, entry: &LogEntry) {
        match (&entry.recording_id, &entry.device_key) {
            (Some(id), _) => self.by_recording.entry(id.0).or_default().push(index),
            (None, Some(k)) => self.by_device.entry(k.to_bytes()).or_default().push(index),
            (None, None) => {}
        }
    }

    /// The entries of recording `id` and those naming only `device`, up to index `last`,
    /// in log order.
    pub(crate) fn concerning(&self, id: &RecordingId, device: &PublicKey, last: u64) -> Vec<u64> {
        let mut out: Vec<u64> = self
            .by_recording
            .get(&id.0)
            .into_iter()
            .chain(self.by_device.get(&device.to_bytes()))
            .flatten()
            .filter(|&&i| i <= last)
            .copied()
            .collect();
        out.sort_unstable();
        out
    }
}

/// The legal team's side of the server state: members and failed logins.
#[derive(Debug)]
pub(crate) struct Lawyer {
    pub(crate) members: Members,
}

impl Lawyer {
    /// The state for a log holding `entries`.
    pub(crate) fn new(entries: &[LogEntry]) -> Lawyer {
        Lawyer { members: Members::new(entries) }
    }
}
