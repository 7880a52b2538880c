//! Where in the custody log each recording's and each device's entries are, so that a
//! bundle can carry them without the server keeping the log's entries in memory.
//!
//! For every entry naming a recording (opened, segments, ended, equivocations, accesses)
//! and every entry naming only a device (enrollment, revocation), the catalog keeps its
//! index and where its bytes are in `<data>/log/entries.bin`. It is built from the log at
//! start and catches up by reading the frames appended since, when a bundle needs it, so
//! it depends on no particular code path appending to the log.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

use custody_format::ids::{PublicKey, RecordingId};
use custody_format::log::LogEntry;

use crate::members::Members;

/// One located entry: its log index, the offset of its bytes in the journal, their length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Located {
    pub index: u64,
    pub offset: u64,
    pub len: u32,
}

/// Journal frame overhead: length and CRC-32 before each payload.
const FRAME_HEADER: u64 = 8;

#[derive(Debug, Default)]
pub(crate) struct Catalog {
    next_offset: u64,
    next_index: u64,
    by_recording: HashMap<[u8; 16], Vec<Located>>,
    by_device: HashMap<[u8; 32], Vec<Located>>,
}

impl Catalog {
    /// Notes the entry at `index`, `len` bytes long, the next in the journal.
    fn note(&mut self, index: u64, len: u64, entry: &LogEntry) {
        let at = Located { index, offset: self.next_offset + FRAME_HEADER, len: len as u32 };
        self.next_offset += FRAME_HEADER + len;
        self.next_index = index + 1;
        match (&entry.recording_id, &entry.device_key) {
            (Some(id), _) => self.by_recording.entry(id.0).or_default().push(at),
            (None, Some(k)) => self.by_device.entry(k.to_bytes()).or_default().push(at),
            (None, None) => {}
        }
    }

    /// Reads the journal at `path` from where the catalog left off through entry
    /// `through` (which must be durable, e.g. already appended under the log's lock).
    pub(crate) fn catch_up(&mut self, path: &Path, through: u64) -> std::io::Result<()> {
        use std::io::{BufReader, Read, Seek, SeekFrom};
        if self.next_index > through {
            return Ok(());
        }
        let mut file = std::fs::File::open(path)?;
        file.seek(SeekFrom::Start(self.next_offset))?;
        let mut r = BufReader::new(file);
        while self.next_index <= through {
            let mut h = [0u8; FRAME_HEADER as usize];
            r.read_exact(&mut h)?;
            let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
            if len as usize > custody_durable::journal::MAX_PAYLOAD {
                return Err(std::io::Error::other("a log frame longer than the journal allows"));
            }
            let mut payload = vec![0u8; len as usize];
            r.read_exact(&mut payload)?;
            let e = LogEntry::decode(&payload).map_err(std::io::Error::other)?;
            self.note(self.next_index, u64::from(len), &e);
        }
        Ok(())
    }

    /// The entries of recording `id` and those naming only `device`, up to index `last`,
    /// in log order.
    pub(crate) fn concerning(
        &self,
        id: &RecordingId,
        device: &PublicKey,
        last: u64,
    ) -> Vec<Located> {
        let mut out: Vec<Located> = self
            .by_recording
            .get(&id.0)
            .into_iter()
            .chain(self.by_device.get(&device.to_bytes()))
            .flatten()
            .filter(|l| l.index <= last)
            .copied()
            .collect();
        out.sort_by_key(|l| l.index);
        out
    }
}

/// The legal team's side of the server state: members, failed logins, the catalog.
#[derive(Debug)]
pub(crate) struct Lawyer {
    pub(crate) members: Members,
    pub(crate) catalog: Mutex<Catalog>,
}

impl Lawyer {
    /// The state for a log holding `entries`.
    pub(crate) fn new(entries: &[LogEntry]) -> Lawyer {
        let mut catalog = Catalog::default();
        for (i, e) in entries.iter().enumerate() {
            catalog.note(i as u64, e.encode().len() as u64, e);
        }
        Lawyer { members: Members::new(entries), catalog: Mutex::new(catalog) }
    }
}

/// Reads the located entries' bytes from the journal at `path`.
pub(crate) fn read_entries(path: &Path, at: &[Located]) -> std::io::Result<Vec<Vec<u8>>> {
    let file = std::fs::File::open(path)?;
    at.iter()
        .map(|l| {
            let mut buf = vec![0u8; l.len as usize];
            file.read_exact_at(&mut buf, l.offset)?;
            Ok(buf)
        })
        .collect()
}
