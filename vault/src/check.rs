//! `custody vault check`: every recording's chain and sealed files, checked on the device.
//!
//! The check reads only what the vault keeps (journals and segment files) and changes
//! nothing. Each recording's records are checked as the verifier checks a chain
//! (signatures, links, sequence, end), and each sealed segment file against the length and
//! ciphertext hash its record states. Files in a recording's `segments/` directory that no
//! record names (a segment whose record was never saved) are listed, not removed: nothing
//! on the device is ever thrown away. The repair is [`Vault::rebuild_index`] and the torn-
//! tail repair [`Vault::open`] does on its own.
//!
//! A journal that was damaged (not merely torn by a crash) is reported on every check, from
//! the damaged copy [`Vault::open`] kept when it recovered the intact records: the byte
//! ranges that hold no intact record, the positions lost and the positions kept
//! ([`JournalDamage`]). Each is a problem, so `custody vault check` exits non-zero.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use custody_format::chain::verify_chain;
use custody_format::ids::RecordingId;
use custody_format::record::{ImportedFile, Record};
use custody_format::report::{CheckState, Verdict};
use sha2::{Digest, Sha256};

use crate::damage::JournalDamage;
use crate::store::{Vault, VaultError};

/// What the check found a recording to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Condition {
    /// A running process is recording it now.
    Recording,
    /// Intact and ended with an end record.
    Complete,
    /// Intact, without an end record: cut off after the record at `last_seq`.
    CutOff {
        /// The last record's position.
        last_seq: u64,
    },
    /// The chain does not hold (a bad signature, a broken link, a gap), or its journal was
    /// damaged and records were lost.
    Damaged,
    /// The records could not be checked at all.
    Unreadable,
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Recording => f.write_str("recording"),
            Condition::Complete => f.write_str("complete"),
            Condition::CutOff { last_seq } => write!(f, "cut off after record {last_seq}"),
            Condition::Damaged => f.write_str("damaged"),
            Condition::Unreadable => f.write_str("unreadable"),
        }
    }
}

/// The check of one recording.
#[derive(Clone, Debug)]
pub struct RecordingCheck {
    /// The recording.
    pub id: RecordingId,
    /// Whole records in its journal.
    pub records: usize,
    /// What it is.
    pub condition: Condition,
    /// Every problem found, one sentence each (a failed chain check with its code, a sealed
    /// file that is missing or does not match its record).
    pub problems: Vec<String>,
    /// Files in `segments/` that no record names; kept, not part of the chain (in a
    /// damaged recording, most likely the segments of the records lost).
    pub files_without_record: Vec<PathBuf>,
    /// What damage to its journal cost it (empty if its journal was never damaged).
    pub damage: Vec<JournalDamage>,
}

/// Checks every recording in the vault, in id order.
pub fn check(vault: &Vault) -> Result<Vec<RecordingCheck>, VaultError> {
    vault.recording_ids()?.into_iter().map(|id| check_recording(vault, id)).collect()
}

/// Checks one recording.
pub fn check_recording(vault: &Vault, id: RecordingId) -> Result<RecordingCheck, VaultError> {
    let records = vault.records(&id)?;
    let bytes: Vec<u8> = records.iter().flat_map(|r| r.to_bytes()).collect();
    let report = verify_chain(&bytes, None);
    let damage = vault.journal_damage(&id)?;
    let mut problems: Vec<String> = damage.iter().flat_map(JournalDamage::sentences).collect();
    problems.extend(
        report
            .checks
            .iter()
            .filter(|c| c.state == CheckState::Failure)
            .map(|c| format!("{}: {}", c.code, c.message)),
    );
    let mut listed = BTreeSet::new();
    for r in &records {
        if let Record::Segment(s) = r.record() {
            let path = vault.segment_path(&id, s.seq);
            match hash_file(&path) {
                Ok(f) if f.len == s.ciphertext_len && f.sha256 == s.ciphertext_sha256 => {}
                Ok(_) => problems
                    .push(format!("segment {}: the sealed file does not match its record", s.seq)),
                Err(e) => {
                    problems.push(format!("segment {}: reading {}: {e}", s.seq, path.display()))
                }
            }
            listed.insert(path);
        }
    }
    let mut files_without_record = Vec::new();
    if let Ok(entries) = std::fs::read_dir(vault.recording_dir(&id).join("segments")) {
        for e in entries.flatten() {
            if !listed.contains(&e.path()) {
                files_without_record.push(e.path());
            }
        }
    }
    files_without_record.sort();
    let condition =
        match (Verdict::from_checks(&report.checks, report.cut_off), vault.is_recording(&id)) {
            (_, true) => Condition::Recording,
            _ if !damage.is_empty() => Condition::Damaged,
            (Verdict::IntactComplete, _) => Condition::Complete,
            (Verdict::IntactCutOff { last_seq, .. }, _) => Condition::CutOff { last_seq },
            (Verdict::Tampered, _) => Condition::Damaged,
            // Never from a chain's checks alone (no server key is involved).
            (Verdict::SignerNotConfirmed { .. } | Verdict::CouldNotCheck, _) => {
                Condition::Unreadable
            }
        };
    Ok(RecordingCheck {
        id,
        records: records.len(),
        condition,
        problems,
        files_without_record,
        damage,
    })
}

/// SHA-256 and length of a file, read in 1 MiB blocks (a sealed segment, or a file to
/// import, whose hash its header records).
pub fn hash_file(path: &Path) -> std::io::Result<ImportedFile> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok(ImportedFile { sha256: hasher.finalize().into(), len })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::Sealer;
    use crate::store::SegmentInput;
    use custody_format::record::EndReason;
    use custody_format::testkit;

    fn recording(vault: &Vault, segments: u64, ended: bool) -> RecordingId {
        let device = testkit::key("device");
        let sealer = Sealer::new(vec![age::x25519::Identity::generate().to_public()]).unwrap();
        let mut w = vault.begin(testkit::header(1, &device), device, sealer).unwrap();
        for n in 1..=segments {
            let input = SegmentInput {
                plaintext: b"segment bytes",
                plaintext_sha256: [0; 32],
                fields: testkit::segment(1, n),
            };
            w.add_segment(input).unwrap();
        }
        let id = w.id();
        if ended {
            w.end(testkit::T0_US + 10_000_000, EndReason::Stopped, None).unwrap();
        }
        id
    }

    #[test]
    fn an_intact_recording_is_complete_and_a_cut_off_one_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let (vault, _) = Vault::open(dir.path()).unwrap();
        let id = recording(&vault, 2, true);
        let c = check_recording(&vault, id).unwrap();
        assert_eq!((c.records, c.condition), (4, Condition::Complete));
        assert!(c.problems.is_empty() && c.files_without_record.is_empty(), "{c:?}");

        let dir = tempfile::tempdir().unwrap();
        let (vault, _) = Vault::open(dir.path()).unwrap();
        let id = recording(&vault, 2, false);
        let c = check_recording(&vault, id).unwrap();
        assert_eq!(c.condition, Condition::CutOff { last_seq: 2 });
        assert_eq!(c.condition.to_string(), "cut off after record 2");
        assert!(c.problems.is_empty(), "{c:?}");
    }

    #[test]
    fn a_changed_or_missing_sealed_file_and_a_stray_one_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let (vault, _) = Vault::open(dir.path()).unwrap();
        let id = recording(&vault, 3, true);
        let mut sealed = std::fs::read(vault.segment_path(&id, 1)).unwrap();
        sealed[40] ^= 0x01;
        std::fs::write(vault.segment_path(&id, 1), &sealed).unwrap();
        std::fs::remove_file(vault.segment_path(&id, 2)).unwrap();
        let stray = vault.recording_dir(&id).join("segments").join("00000009.age");
        std::fs::write(&stray, b"no record names me").unwrap();

        let checks = check(&vault).unwrap();
        assert_eq!(checks.len(), 1);
        let c = &checks[0];
        assert_eq!(c.problems.len(), 2, "{c:?}");
        assert_eq!(c.problems[0], "segment 1: the sealed file does not match its record");
        assert!(c.problems[1].starts_with("segment 2: reading "), "{c:?}");
        assert_eq!(c.files_without_record, vec![stray]);
        // The chain itself (records and signatures) is intact.
        assert_eq!(c.condition, Condition::Complete);
    }
}
