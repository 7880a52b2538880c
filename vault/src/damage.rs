//! Damage in a recording's journal: how it is read past, and what it cost.
//!
//! A journal's frames carry a length and a CRC-32 but no magic number, so after a bad
//! frame (a flipped bit, a zeroed block, a disk that lied) the next record is found by
//! trying every later offset ([`journal::scan`]). What tells a record of this recording
//! from bytes that merely pass a CRC-32 (a zeroed stretch is a run of valid empty frames)
//! is [`record_filter`]: the payload parses as a signed record of this recording, and one
//! found by searching past damage carries its device's signature.
//!
//! [`crate::Vault::open`] keeps every intact record after damage: it copies the damaged
//! journal to `journal.damaged-<time>` and writes the intact records durably in its place
//! ([`journal::recover`]), so they are uploaded. That copy is how [`JournalDamage`] still
//! says, on every later check, exactly which bytes and which positions were lost.

use std::path::{Path, PathBuf};

use custody_durable::journal::{self, Damage, Found, Scan};
use custody_format::ids::{PublicKey, RecordingId};
use custody_format::record::{Record, SignedRecord};

/// The prefix of the copies [`journal::recover`] keeps of a damaged `journal.bin`.
pub const DAMAGED_PREFIX: &str = "journal.damaged-";

/// The filter a recording's journal is scanned with (see the module documentation): a
/// frame is one of recording `id`'s records if it parses as a signed record of it; one
/// found by searching past damage must also verify with the device key, the header's
/// once the header is read, else `device` (the vault's own key), else it is taken on its
/// recording id alone.
pub fn record_filter(
    id: RecordingId,
    device: Option<PublicKey>,
) -> impl FnMut(&[u8], Found) -> bool {
    let mut key = device;
    let mut header_read = false;
    move |payload, found| {
        let searched = found == Found::BySearch;
        let Ok(r) = SignedRecord::parse(payload) else { return false };
        if r.record().recording_id() != id {
            return false;
        }
        if let Record::Header(h) = r.record() {
            if header_read || (searched && !r.verify(&h.device_key)) {
                return false;
            }
            header_read = true;
            key = Some(h.device_key);
            return true;
        }
        !searched || key.as_ref().is_none_or(|k| r.verify(k))
    }
}

/// What a journal's damage cost one recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalDamage {
    /// The damaged journal these ranges are of: the copy kept beside the recovered
    /// journal, or the journal itself if nothing in it could be recovered.
    pub file: PathBuf,
    /// Its length.
    pub file_len: u64,
    /// The byte ranges in it that hold no intact record of this recording.
    pub ranges: Vec<Damage>,
    /// Positions of the intact records kept, in order.
    pub kept: Vec<u64>,
    /// Positions that are missing between the kept ones (and before the first): the
    /// records lost in the damaged ranges.
    pub lost: Vec<u64>,
    /// Whether damage follows the last kept record, so records after it may be lost too
    /// (how many, nothing says).
    pub lost_after_last: bool,
}

impl JournalDamage {
    /// Reads the damage of the journal copy (or journal) at `file`, scanned with the
    /// recording's filter. `None` if it is intact after all.
    pub fn of_file(
        file: &Path,
        id: RecordingId,
        device: Option<PublicKey>,
    ) -> std::io::Result<Option<JournalDamage>> {
        let scan = journal::scan(file, record_filter(id, device))?;
        Ok(JournalDamage::of_scan(file, &scan))
    }

    /// The damage `scan` found in `file`; `None` if it found none, or only a torn tail (a
    /// crash while saving, which loses nothing that was reported saved).
    pub fn of_scan(file: &Path, scan: &Scan) -> Option<JournalDamage> {
        if !scan.is_damaged() {
            return None;
        }
        let kept: Vec<u64> = scan
            .payloads()
            .filter_map(|p| SignedRecord::parse(p).ok())
            .map(|r| r.record().seq())
            .collect();
        let mut lost = Vec::new();
        let mut expect = 0u64;
        for &seq in &kept {
            // Bounded: a gap of more than a million positions is not listed one by one.
            if seq > expect && seq - expect <= 1 << 20 {
                lost.extend(expect..seq);
            }
            expect = expect.max(seq.saturating_add(1));
        }
        let ends = scan
            .payloads()
            .filter_map(|p| SignedRecord::parse(p).ok())
            .any(|r| matches!(r.record(), Record::End(_)));
        Some(JournalDamage {
            file: file.to_path_buf(),
            file_len: scan.file_len,
            ranges: scan.gaps(),
            kept,
            lost,
            lost_after_last: scan.tail.is_some() && !ends,
        })
    }

    /// One sentence per fact, for `vault check` and the notices.
    pub fn sentences(&self) -> Vec<String> {
        let mut out = Vec::new();
        let ranges: Vec<String> = self.ranges.iter().map(ToString::to_string).collect();
        out.push(format!(
            "journal damaged: {} of {} hold no intact record ({})",
            plural(self.ranges.iter().map(|d| d.len).sum::<u64>(), "byte"),
            self.file_len,
            ranges.join(", ")
        ));
        if !self.lost.is_empty() {
            out.push(format!("records lost at positions {}", list(&self.lost)));
        }
        if self.lost_after_last {
            match self.kept.last() {
                Some(last) => out.push(format!(
                    "the damage follows the last intact record (position {last}): any record after it is lost"
                )),
                None => out.push("no record of this recording could be read from it".to_string()),
            }
        }
        out.push(match self.kept.len() {
            0 => "no record kept".to_string(),
            n => format!(
                "{} kept at positions {}",
                plural(n as u64, "intact record"),
                list(&self.kept)
            ),
        });
        out.push(format!("the damaged journal is kept as {}", self.file.display()));
        out
    }
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// `0-2, 4, 6-9`: positions as ranges.
fn list(seqs: &[u64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < seqs.len() {
        let start = seqs[i];
        let mut end = start;
        while i + 1 < seqs.len() && seqs[i + 1] == end + 1 {
            i += 1;
            end = seqs[i];
        }
        out.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    out.join(", ")
}

/// The copies of damaged journals kept in `recording_dir`, oldest first.
pub fn damaged_copies(recording_dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(recording_dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(DAMAGED_PREFIX))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_format::testkit;

    #[test]
    fn a_record_found_past_damage_must_carry_the_header_devices_signature() {
        let chain = testkit::recording(1, "device", 2, false).unwrap();
        let other = testkit::recording(1, "another device", 2, false).unwrap();
        let id = chain[0].record().recording_id();
        let mut filter = record_filter(id, None);
        assert!(filter(&chain[0].to_bytes(), Found::InSequence));
        // Same recording id and position, signed by another key: found by search, refused.
        assert_eq!(other[1].record().recording_id(), id);
        assert!(!filter(&other[1].to_bytes(), Found::BySearch));
        assert!(filter(&chain[1].to_bytes(), Found::BySearch));
        // A second header, and bytes that are not a record, are never one of its records.
        assert!(!filter(&chain[0].to_bytes(), Found::InSequence));
        assert!(!filter(b"", Found::InSequence));
        let mut f = record_filter(RecordingId([9; 16]), None);
        assert!(!f(&chain[0].to_bytes(), Found::InSequence), "another recording");
    }
}
