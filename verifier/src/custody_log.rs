//! The custody log as the bundle carries it: each entry's inclusion proof against the
//! signed tree head, and what the entries say about the device (revocation).

use std::collections::BTreeMap;

use custody_format::bundle::{self, LogProof};
use custody_format::ids::PublicKey;
use custody_format::log::{EntryType, LogEntry, TreeHead};
use custody_format::merkle;
use custody_format::record::Hash;
use custody_format::report::{code, Check};

use crate::source::Source;
use crate::verify::read_part;

/// Log entries with their index and leaf hash, each proven against the head.
pub(crate) fn check_log(
    source: &dyn Source,
    head: Option<&TreeHead>,
    checks: &mut Vec<Check>,
) -> Vec<(u64, LogEntry, Hash)> {
    let Some(bytes) = read_part(source, bundle::LOG_PROOFS, checks) else { return Vec::new() };
    let proofs = match LogProof::parse_all(&bytes) {
        Ok(p) => p,
        Err((i, e)) => {
            checks.push(Check::new(
                code::LOG_INCLUSION_INVALID,
                format!("log proof {i} cannot be read: {e}"),
            ));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    let mut ok = true;
    for p in &proofs {
        let leaf = merkle::leaf_hash(&p.entry);
        let proven = head.is_some_and(|h| {
            merkle::verify_inclusion(&leaf, p.log_index, h.tree_size, &p.path, &h.root_hash).is_ok()
        });
        match (proven, LogEntry::decode(&p.entry)) {
            (true, Ok(e)) => out.push((p.log_index, e, leaf)),
            (_, decoded) => {
                ok = false;
                let what = decoded.err().map(|e| format!(" ({e})")).unwrap_or_default();
                checks.push(Check::new(
                    code::LOG_INCLUSION_INVALID,
                    format!(
                        "log entry {} is not proven included in the signed head{what}",
                        p.log_index
                    ),
                ));
            }
        }
    }
    if ok && !proofs.is_empty() {
        checks.push(Check::new(
            code::LOG_INCLUSION_VALID,
            format!("all {} log entries are included in the signed head", proofs.len()),
        ));
    }
    out
}

pub(crate) fn check_revocation(
    device: Option<&PublicKey>,
    entries: &[(u64, LogEntry, Hash)],
    received: &BTreeMap<u64, i64>,
    checks: &mut Vec<Check>,
) {
    let Some(device) = device else { return };
    let revoked = entries
        .iter()
        .filter(|(_, e, _)| {
            e.entry_type == EntryType::DeviceRevoked && e.device_key.as_ref() == Some(device)
        })
        .map(|(_, e, _)| (e.at_us, e.detail.clone().unwrap_or_default()))
        .min_by_key(|(at, _)| *at);
    let Some((at, reason)) = revoked else { return };
    checks.push(Check::new(
        code::DEVICE_REVOKED,
        format!("the device key was revoked at {at} µs (reason: {reason})"),
    ));
    for (seq, t) in received {
        if *t > at {
            checks.push(
                Check::new(
                    code::SEGMENT_AFTER_REVOCATION,
                    format!("record {seq} was received after the revocation"),
                )
                .at(*seq),
            );
        }
    }
}
