//! The records the uploader sends, read from the recording's journal incrementally.
//!
//! The recorder appends one frame per record while the uploader runs. Reading the whole
//! journal again for every new record made a recording's upload cost grow with the square
//! of its length (3,600 segments in two hours); instead each recording remembers the byte
//! offset of the last whole frame it parsed and reads only what was appended since. A
//! frame half-written at the moment of reading is left for the next read. Records leave
//! the cache once receipted, so it holds only what is still queued.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use custody_durable::journal;
use custody_format::ids::RecordingId;
use custody_format::record::SignedRecord;

/// What has been read of one recording's journal.
#[derive(Debug, Default)]
struct Tail {
    /// Offset just after the last whole frame parsed.
    offset: u64,
    /// Records parsed and not yet receipted, by position.
    records: BTreeMap<u64, SignedRecord>,
}

/// The per-recording journal tails.
#[derive(Debug, Default)]
pub(crate) struct RecordCache {
    tails: HashMap<RecordingId, Tail>,
    /// Journal bytes parsed in all (whole frames), so a test can show each is read once.
    pub(crate) bytes_read: u64,
}

impl RecordCache {
    /// The record at `seq` of the recording whose journal is `journal`, reading what was
    /// appended since the last read if it is not already parsed.
    pub(crate) fn get(
        &mut self,
        id: &RecordingId,
        journal: &Path,
        seq: u64,
    ) -> std::io::Result<Option<SignedRecord>> {
        let tail = self.tails.entry(*id).or_default();
        if let Some(r) = tail.records.get(&seq) {
            return Ok(Some(r.clone()));
        }
        if std::fs::metadata(journal)?.len() < tail.offset {
            // The journal is shorter than what was read (replaced by a repair): read it
            // again from the start.
            *tail = Tail::default();
        }
        // A frame half-written at this moment ends the read; it is read whole next time.
        let mut frames = journal::frames_from(journal, tail.offset)?;
        for frame in frames.by_ref() {
            let frame = frame?;
            self.bytes_read += frame.end() - frame.offset;
            if let Ok(r) = SignedRecord::parse(&frame.payload) {
                tail.records.insert(r.record().seq(), r);
            }
        }
        tail.offset = frames.position();
        Ok(tail.records.get(&seq).cloned())
    }

    /// Drops the record at `seq` (it was receipted and will not be sent again).
    pub(crate) fn forget(&mut self, id: &RecordingId, seq: u64) {
        if let Some(t) = self.tails.get_mut(id) {
            t.records.remove(&seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_durable::journal::Journal;
    use custody_format::testkit;

    #[test]
    fn a_growing_journal_is_read_once_not_once_per_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.bin");
        let chain = testkit::recording(1, "d", 200, true).unwrap();
        let id = chain[0].record().recording_id();
        let mut j = Journal::create(&path).unwrap();
        let mut cache = RecordCache::default();
        for r in &chain {
            j.append(&r.to_bytes()).unwrap();
            let seq = r.record().seq();
            assert_eq!(cache.get(&id, &path, seq).unwrap().as_ref(), Some(r));
            cache.forget(&id, seq);
        }
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(cache.bytes_read, len, "every journal byte is read exactly once");
        // A record asked for again after it was forgotten is not there: nothing is re-read.
        assert_eq!(cache.get(&id, &path, 0).unwrap(), None);
        assert_eq!(cache.bytes_read, len);
    }

    #[test]
    fn a_half_written_frame_is_read_again_once_it_is_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.bin");
        let chain = testkit::recording(1, "d", 3, false).unwrap();
        let id = chain[0].record().recording_id();
        let mut j = Journal::create(&path).unwrap();
        j.append(&chain[0].to_bytes()).unwrap();
        let first = std::fs::metadata(&path).unwrap().len();
        j.append(&chain[1].to_bytes()).unwrap();
        let full = std::fs::read(&path).unwrap();
        // The second frame as a writer caught halfway would leave it.
        let half = first as usize + (full.len() - first as usize) / 2;
        std::fs::write(&path, &full[..half]).unwrap();
        let mut cache = RecordCache::default();
        assert_eq!(cache.get(&id, &path, 1).unwrap(), None);
        assert_eq!(cache.get(&id, &path, 0).unwrap().as_ref(), Some(&chain[0]));
        std::fs::write(&path, &full).unwrap();
        assert_eq!(cache.get(&id, &path, 1).unwrap().as_ref(), Some(&chain[1]));
        assert_eq!(cache.bytes_read, full.len() as u64);
    }

    #[test]
    fn a_frame_with_a_bad_crc_ends_the_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.bin");
        let chain = testkit::recording(1, "d", 2, false).unwrap();
        let id = chain[0].record().recording_id();
        let mut j = Journal::create(&path).unwrap();
        j.append(&chain[0].to_bytes()).unwrap();
        j.append(&chain[1].to_bytes()).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let mut cache = RecordCache::default();
        assert_eq!(cache.get(&id, &path, 1).unwrap(), None);
        assert!(cache.get(&id, &path, 0).unwrap().is_some());
    }
}
