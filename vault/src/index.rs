//! The vault's index: a sled database of recording summaries and the upload queue.
//!
//! The index is a convenience, never the only copy of anything: every value in it is
//! derived from the journals and segment files, and it is rebuilt from them whenever it
//! cannot be opened or disagrees with them. (sled 0.34 has open reports of corruption
//! after a kill; the vault expects that and recovers.)

use std::path::Path;

use custody_format::ids::RecordingId;
use custody_format::record::{EndReason, Origin, Record, SignedRecord};
use serde::{Deserialize, Serialize};

/// What the index knows of one recording, all of it derived from its journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Recording id, hex.
    pub id: String,
    /// Live or imported.
    pub imported: bool,
    /// What was recorded.
    pub input: String,
    /// Device time recording started, µs since the epoch.
    pub started_at_us: i64,
    /// Segment records saved.
    pub segments: u64,
    /// Position of the last record saved.
    pub last_seq: u64,
    /// Media time covered, µs.
    pub media_duration_us: u64,
    /// Sealed bytes saved.
    pub ciphertext_bytes: u64,
    /// How it ended, if it has an end record: `stopped`, `input-ended` or `error`.
    pub ended: Option<String>,
    /// Length of the journal's whole frames when this summary was made.
    pub journal_len: u64,
}

impl Summary {
    /// The summary of a journal's records (which must start with a header).
    pub fn from_records(records: &[SignedRecord], journal_len: u64) -> Option<Summary> {
        let Record::Header(h) = records.first()?.record() else { return None };
        let mut s = Summary {
            id: h.recording_id.to_string(),
            imported: h.origin == Origin::Imported,
            input: h.input.clone(),
            started_at_us: h.started_at_us,
            segments: 0,
            last_seq: 0,
            media_duration_us: 0,
            ciphertext_bytes: 0,
            ended: None,
            journal_len,
        };
        let mut first_start = None;
        for r in &records[1..] {
            s.apply(r.record(), &mut first_start);
        }
        Some(s)
    }

    /// The summary of a recording whose journal lost its header (damaged): what its other
    /// records say. It reads as a live recording of unknown input, started at its first
    /// segment's device time (0 if none is left).
    pub fn recovered(id: &RecordingId, records: &[SignedRecord], journal_len: u64) -> Summary {
        let started_at_us = records
            .iter()
            .find_map(|r| match r.record() {
                Record::Segment(s) => Some(s.wall_first_us),
                _ => None,
            })
            .unwrap_or(0);
        let mut s = Summary {
            id: id.to_string(),
            imported: false,
            input: "(header lost: journal damaged)".to_string(),
            started_at_us,
            segments: 0,
            last_seq: 0,
            media_duration_us: 0,
            ciphertext_bytes: 0,
            ended: None,
            journal_len,
        };
        let mut first_start = None;
        for r in records.iter().filter(|r| !matches!(r.record(), Record::Header(_))) {
            s.apply(r.record(), &mut first_start);
        }
        s
    }

    /// Updates the summary with one more record.
    pub fn apply(&mut self, record: &Record, first_start: &mut Option<i64>) {
        self.last_seq = record.seq();
        match record {
            Record::Header(_) => {}
            Record::Segment(seg) => {
                self.segments += 1;
                self.ciphertext_bytes += seg.ciphertext_len;
                let start = *first_start.get_or_insert(seg.media_start_us);
                self.media_duration_us = u64::try_from(seg.media_end_us - start).unwrap_or(0);
            }
            Record::End(e) => {
                self.ended = Some(
                    match e.reason {
                        EndReason::Stopped => "stopped",
                        EndReason::InputEnded => "input-ended",
                        EndReason::SenderChanged => "sender-changed",
                        EndReason::Error => "error",
                    }
                    .to_string(),
                )
            }
        }
    }
}

/// The sled database.
#[derive(Clone, Debug)]
pub struct Index {
    db: sled::Db,
    recordings: sled::Tree,
    outbox: sled::Tree,
}

/// Errors of the index. Any of them leads the vault to rebuild it.
pub type IndexError = sled::Error;

impl Index {
    /// Opens (or creates) the index at `path`.
    pub fn open(path: &Path) -> Result<Index, IndexError> {
        let db = sled::Config::new().path(path).mode(sled::Mode::LowSpace).open()?;
        let recordings = db.open_tree("recordings")?;
        let outbox = db.open_tree("outbox")?;
        Ok(Index { db, recordings, outbox })
    }

    /// A temporary index (in a temporary file, removed on close), for when the real one
    /// cannot be written, e.g. on a full disk: the vault keeps working from its files.
    pub fn temporary() -> Result<Index, IndexError> {
        let db = sled::Config::new().temporary(true).mode(sled::Mode::LowSpace).open()?;
        let recordings = db.open_tree("recordings")?;
        let outbox = db.open_tree("outbox")?;
        Ok(Index { db, recordings, outbox })
    }

    /// The summary of a recording, if indexed and readable.
    pub fn summary(&self, id: &[u8; 16]) -> Result<Option<Summary>, IndexError> {
        Ok(self.recordings.get(id)?.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Every indexed summary, unreadable ones skipped.
    pub fn summaries(&self) -> Result<Vec<Summary>, IndexError> {
        let mut out = Vec::new();
        for item in self.recordings.iter() {
            let (_, v) = item?;
            if let Ok(s) = serde_json::from_slice::<Summary>(&v) {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Stores a recording's summary.
    pub fn put_summary(&self, id: &[u8; 16], s: &Summary) -> Result<(), IndexError> {
        let bytes = serde_json::to_vec(s).unwrap_or_default();
        self.recordings.insert(id, bytes)?;
        Ok(())
    }

    /// Forgets a recording's summary (its journal no longer says what it held).
    pub fn remove_summary(&self, id: &[u8; 16]) -> Result<(), IndexError> {
        self.recordings.remove(id)?;
        Ok(())
    }

    /// Queues a record (and its segment) for upload.
    pub fn enqueue(&self, id: &[u8; 16], seq: u64) -> Result<(), IndexError> {
        self.outbox.insert(outbox_key(id, seq), &[])?;
        Ok(())
    }

    /// Removes a record from the upload queue (its receipt is stored).
    pub fn dequeue(&self, id: &[u8; 16], seq: u64) -> Result<(), IndexError> {
        self.outbox.remove(outbox_key(id, seq))?;
        Ok(())
    }

    /// The upload queue, oldest recording and position first.
    pub fn pending(&self) -> Result<Vec<([u8; 16], u64)>, IndexError> {
        let mut out = Vec::new();
        for item in self.outbox.iter() {
            let (k, _) = item?;
            if k.len() == 24 {
                let mut id = [0u8; 16];
                id.copy_from_slice(&k[..16]);
                let mut seq = [0u8; 8];
                seq.copy_from_slice(&k[16..]);
                out.push((id, u64::from_be_bytes(seq)));
            }
        }
        Ok(out)
    }

    /// Empties both trees (before a rebuild).
    pub fn clear(&self) -> Result<(), IndexError> {
        self.recordings.clear()?;
        self.outbox.clear()?;
        Ok(())
    }

    /// Writes everything to disk.
    pub fn flush(&self) -> Result<(), IndexError> {
        self.db.flush()?;
        Ok(())
    }
}

fn outbox_key(id: &[u8; 16], seq: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..16].copy_from_slice(id);
    k[16..].copy_from_slice(&seq.to_be_bytes());
    k
}
