//! Receipts: each signed by the server key, matching its record and its log entry.

use std::collections::BTreeMap;

use custody_format::ids::{PublicKey, RecordingId};
use custody_format::log::{EntryType, LogEntry};
use custody_format::receipt::Receipt;
use custody_format::record::{Hash, Record, SignedRecord};
use custody_format::report::{code, Check};
use custody_format::signed::Signed;

/// Checks receipts; returns the receipt time per chain position.
pub(crate) fn check_receipts(
    receipts: &[Signed<Receipt>],
    records: &BTreeMap<u64, &SignedRecord>,
    server_key: Option<&PublicKey>,
    entries: &[(u64, LogEntry, Hash)],
    checks: &mut Vec<Check>,
) -> BTreeMap<u64, i64> {
    let mut received = BTreeMap::new();
    let mut ok = true;
    let recording: Option<RecordingId> = records.values().next().map(|r| r.record().recording_id());
    for r in receipts {
        let v = r.value();
        if !server_key.is_some_and(|k| r.verify(k)) {
            ok = false;
            checks.push(
                Check::new(
                    code::RECEIPT_SIGNATURE_INVALID,
                    format!("the receipt for record {} is not signed by the server key", v.seq),
                )
                .at(v.seq),
            );
            continue;
        }
        let Some(rec) = records.get(&v.seq) else {
            ok = false;
            checks.push(
                Check::new(
                    code::RECEIPT_UNMATCHED,
                    format!("a receipt is for record {}, which the bundle does not hold", v.seq),
                )
                .at(v.seq),
            );
            continue;
        };
        let cipher = match rec.record() {
            Record::Segment(s) => Some(s.ciphertext_sha256),
            _ => None,
        };
        if v.record_hash != rec.hash()
            || v.ciphertext_sha256 != cipher
            || Some(v.recording_id) != recording
        {
            ok = false;
            checks.push(
                Check::new(
                    code::RECEIPT_MISMATCH,
                    format!("the receipt for record {} does not match it", v.seq),
                )
                .at(v.seq),
            );
            continue;
        }
        let expected_type = match rec.record() {
            Record::Header(_) => EntryType::RecordingOpened,
            Record::Segment(_) => EntryType::SegmentReceived,
            Record::End(_) => EntryType::RecordingEnded,
        };
        let logged = entries.iter().any(|(i, e, _)| {
            *i == v.log_index
                && e.entry_type == expected_type
                && e.record_hash == Some(v.record_hash)
                && e.seq == Some(v.seq)
                && e.recording_id == Some(v.recording_id)
                && e.ciphertext_sha256 == v.ciphertext_sha256
        });
        if !logged {
            ok = false;
            checks.push(
                Check::new(
                    code::LOG_ENTRY_MISSING,
                    format!(
                        "record {}'s receipt names log entry {}, which the bundle does not prove",
                        v.seq, v.log_index
                    ),
                )
                .at(v.seq),
            );
            continue;
        }
        received.insert(v.seq, v.received_at_us);
    }
    for seq in records.keys() {
        if !received.contains_key(seq) && !receipts.iter().any(|r| r.value().seq == *seq) {
            ok = false;
            checks.push(
                Check::new(code::RECEIPT_MISSING, format!("record {seq} has no receipt")).at(*seq),
            );
        }
    }
    if ok && !receipts.is_empty() {
        checks.push(Check::new(
            code::RECEIPT_VALID,
            format!("all {} records carry a matching server receipt", receipts.len()),
        ));
    }
    received
}
