//! The custody log as the bundle carries it: each entry's inclusion proof against the
//! signed tree head, the rules on which entries are carried (`docs/format.md` 11.6), and
//! what the entries say about the device (revocation, 11.3).

use std::collections::{BTreeMap, BTreeSet};

use custody_format::bundle::{self, LogProof};
use custody_format::ids::{PublicKey, RecordingId};
use custody_format::log::{EntryType, LogEntry, TreeHead};
use custody_format::merkle;
use custody_format::record::Hash;
use custody_format::report::{code, Check};

use crate::parts;
use crate::receipts::Received;
use crate::source::Source;

/// The log entries a bundle carries.
#[derive(Debug, Default)]
pub(crate) struct Carried {
    /// Every entry proven included in the head and readable: index, entry, leaf hash.
    pub proven: Vec<(u64, LogEntry, Hash)>,
    /// Every log proof the file holds (up to the first unreadable one), in the order
    /// carried: its index and the leaf hash of its entry bytes, proven or not.
    pub all: Vec<(u64, Hash)>,
}

/// Whether `e` is an entry a bundle of `recording`, made by `device`, must carry: it names
/// the recording, or names no recording and names the device, or it is a time-stamp token
/// (which names neither: a version-3 bundle carries those covering its records, and its
/// statement says which, `docs/format.md` §11.4).
pub(crate) fn concerns(
    e: &LogEntry,
    recording: Option<&RecordingId>,
    device: Option<&PublicKey>,
) -> bool {
    if e.entry_type == EntryType::TimeStampToken {
        return true;
    }
    match &e.recording_id {
        Some(id) => Some(id) == recording,
        None => e.device_key.is_some() && e.device_key.as_ref() == device,
    }
}

/// Reads `custody/log-proofs.bin` and checks each proof against `head`; `None` when the
/// file is absent.
pub(crate) fn check_log(
    source: &dyn Source,
    head: Option<&TreeHead>,
    recording: Option<RecordingId>,
    device: Option<PublicKey>,
    checks: &mut Vec<Check>,
) -> Option<Carried> {
    let proofs = parts::many(source, bundle::LOG_PROOFS, checks, LogProof::read)?;
    let mut out = Carried::default();
    let mut included = true;
    let mut seen = BTreeSet::new();
    let mut highest: Option<u64> = None;
    for p in &proofs {
        let leaf = merkle::leaf_hash(&p.entry);
        out.all.push((p.log_index, leaf));
        if !seen.insert(p.log_index) {
            checks.push(Check::new(
                code::LOG_PROOF_DUPLICATE,
                format!("log entry {} is carried more than once", p.log_index),
            ));
        } else if let Some(i) = highest.filter(|&i| p.log_index < i) {
            checks.push(Check::new(
                code::LOG_PROOF_REORDERED,
                format!("log entry {} is carried after entry {i}", p.log_index),
            ));
        }
        highest = highest.max(Some(p.log_index));
        let decoded = LogEntry::decode(&p.entry);
        // Which recording the entries must concern is known only from its header.
        if let (Ok(e), Some(_)) = (&decoded, recording) {
            if !concerns(e, recording.as_ref(), device.as_ref()) {
                checks.push(Check::new(
                    code::LOG_PROOF_UNRELATED,
                    format!(
                        "log entry {} concerns neither this recording nor its device",
                        p.log_index
                    ),
                ));
            }
        }
        // Without a head nothing can be proven; the head's absence is reported already.
        let Some(h) = head else { continue };
        let proven =
            merkle::verify_inclusion(&leaf, p.log_index, h.tree_size, &p.path, &h.root_hash);
        match (proven, decoded) {
            (Ok(()), Ok(e)) => out.proven.push((p.log_index, e, leaf)),
            (proven, decoded) => {
                included = false;
                let why = match (proven, decoded) {
                    (Err(m), _) => format!("its proof fails ({m})"),
                    (_, Err(d)) => format!("its entry cannot be read ({}: {d})", d.code()),
                    _ => String::new(),
                };
                checks.push(Check::new(
                    code::LOG_INCLUSION_INVALID,
                    format!(
                        "log entry {} is not proven included in the signed head: {why}",
                        p.log_index
                    ),
                ));
            }
        }
    }
    if included && head.is_some() && !proofs.is_empty() {
        checks.push(Check::new(
            code::LOG_INCLUSION_VALID,
            format!("all {} log entries are included in the signed head", proofs.len()),
        ));
    }
    Some(out)
}

/// The device's revocation, and every record the server logged after it. "After" is log
/// order: a receipt's log entry appended after the first entry revoking the device's key
/// (`docs/format.md` 11.3), whatever either's clock says.
pub(crate) fn check_revocation(
    device: Option<&PublicKey>,
    entries: &[(u64, LogEntry, Hash)],
    received: &BTreeMap<u64, Received>,
    checks: &mut Vec<Check>,
) {
    let Some(device) = device else { return };
    let revoked = entries
        .iter()
        .filter(|(_, e, _)| {
            e.entry_type == EntryType::DeviceRevoked && e.device_key.as_ref() == Some(device)
        })
        .min_by_key(|(i, _, _)| *i);
    let Some((index, entry, _)) = revoked else { return };
    checks.push(Check::new(
        code::DEVICE_REVOKED,
        format!(
            "the device key was revoked at {} µs, log entry {index} (reason: {})",
            entry.at_us,
            entry.detail.as_deref().unwrap_or_default()
        ),
    ));
    for (seq, r) in received {
        if r.log_index > *index {
            checks.push(
                Check::new(
                    code::SEGMENT_AFTER_REVOCATION,
                    format!(
                        "record {seq} was logged (entry {}) after the revocation (entry {index})",
                        r.log_index
                    ),
                )
                .at(*seq),
            );
        }
    }
}
