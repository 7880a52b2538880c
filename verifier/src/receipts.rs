//! Receipts (`docs/format.md` 7 and 11.3): each signed by the server key, in chain order and
//! none repeated, matching its record and its log entry in every field they share; and, by
//! the consistency proofs of `custody/receipt-proofs.bin`, each receipt's tree a prefix of
//! the bundle's head (11.5).

use std::collections::{BTreeMap, BTreeSet};

use custody_format::bundle::ConsistencyProof;
use custody_format::ids::PublicKey;
use custody_format::log::{EntryType, LogEntry, TreeHead};
use custody_format::merkle;
use custody_format::receipt::Receipt;
use custody_format::record::{Hash, Record, SignedRecord};
use custody_format::report::{code, Check};
use custody_format::signed::Signed;

/// What a genuine, matching receipt says about its record.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Received {
    /// The server's time of storage, µs since the epoch.
    pub at_us: i64,
    /// The index of the log entry that records it.
    pub log_index: u64,
}

/// The fields of `v` that differ from its record `rec` of a chain signed by `device`.
fn record_differences(
    v: &Receipt,
    rec: &SignedRecord,
    device: Option<&PublicKey>,
) -> Vec<&'static str> {
    let cipher = match rec.record() {
        Record::Segment(s) => Some(s.ciphertext_sha256),
        _ => None,
    };
    let mut wrong = Vec::new();
    if v.record_hash != rec.hash() {
        wrong.push("record_hash");
    }
    if v.recording_id != rec.record().recording_id() {
        wrong.push("recording_id");
    }
    if v.ciphertext_sha256 != cipher {
        wrong.push("ciphertext_sha256");
    }
    if device.is_some_and(|d| *d != v.device_key) {
        wrong.push("device_key");
    }
    wrong
}

/// The fields of `v` that differ from the log entry `e` it names.
fn entry_differences(v: &Receipt, rec: &SignedRecord, e: &LogEntry) -> Vec<&'static str> {
    let expected_type = match rec.record() {
        Record::Header(_) => EntryType::RecordingOpened,
        Record::Segment(_) => EntryType::SegmentReceived,
        Record::End(_) => EntryType::RecordingEnded,
    };
    let mut wrong = Vec::new();
    if e.entry_type != expected_type {
        wrong.push("type");
    }
    if e.at_us != v.received_at_us {
        wrong.push("at_us");
    }
    if e.device_key != Some(v.device_key) {
        wrong.push("device_key");
    }
    if e.recording_id != Some(v.recording_id) {
        wrong.push("recording_id");
    }
    if e.seq != Some(v.seq) {
        wrong.push("seq");
    }
    if e.record_hash != Some(v.record_hash) {
        wrong.push("record_hash");
    }
    if e.ciphertext_sha256 != v.ciphertext_sha256 {
        wrong.push("ciphertext_sha256");
    }
    wrong
}

/// Checks the receipts against the records, the key and the proven log entries; returns
/// what each genuine, matching receipt says, by chain position. `entries` is `None` when
/// the bundle carries no readable head or log proofs: the receipts' log entries are then
/// not compared (that part's absence is reported already).
pub(crate) fn check_receipts(
    receipts: &[Signed<Receipt>],
    records: &BTreeMap<u64, &SignedRecord>,
    server_key: Option<&PublicKey>,
    device: Option<&PublicKey>,
    head: Option<&TreeHead>,
    entries: Option<&[(u64, LogEntry, Hash)]>,
    checks: &mut Vec<Check>,
) -> BTreeMap<u64, Received> {
    let mut received = BTreeMap::new();
    let mut ok = true;
    let mut seen = BTreeSet::new();
    let mut highest: Option<u64> = None;
    let entries = if head.is_some() { entries } else { None };
    for r in receipts {
        let v = r.value();
        if !seen.insert(v.seq) {
            ok = false;
            checks.push(
                Check::new(
                    code::RECEIPT_DUPLICATE,
                    format!("the bundle holds more than one receipt for record {}", v.seq),
                )
                .at(v.seq),
            );
            continue;
        }
        if let Some(h) = highest.filter(|&h| v.seq < h) {
            ok = false;
            checks.push(
                Check::new(
                    code::RECEIPT_REORDERED,
                    format!("the receipt for record {} comes after the one for record {h}", v.seq),
                )
                .at(v.seq),
            );
        }
        highest = highest.max(Some(v.seq));
        if let Some(k) = server_key {
            if !r.verify(k) {
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
        let wrong = record_differences(v, rec, device);
        if !wrong.is_empty() {
            ok = false;
            checks.push(
                Check::new(
                    code::RECEIPT_MISMATCH,
                    format!(
                        "the receipt for record {} does not match it: {} differ",
                        v.seq,
                        wrong.join(", ")
                    ),
                )
                .at(v.seq),
            );
            continue;
        }
        if let Some(entries) = entries {
            let logged = entries.iter().find(|(i, _, _)| *i == v.log_index);
            let problem = match logged {
                None => Some(format!(
                    "record {}'s receipt names log entry {}, which the bundle does not prove",
                    v.seq, v.log_index
                )),
                Some((_, e, _)) => {
                    let wrong = entry_differences(v, rec, e);
                    (!wrong.is_empty()).then(|| {
                        format!(
                            "record {}'s receipt and its log entry {} differ in {}",
                            v.seq,
                            v.log_index,
                            wrong.join(", ")
                        )
                    })
                }
            };
            if let Some(message) = problem {
                ok = false;
                checks.push(Check::new(code::LOG_ENTRY_MISSING, message).at(v.seq));
                continue;
            }
        }
        received.insert(v.seq, Received { at_us: v.received_at_us, log_index: v.log_index });
    }
    for seq in records.keys() {
        if !seen.contains(seq) {
            checks.push(
                Check::new(code::RECEIPT_MISSING, format!("record {seq} has no receipt")).at(*seq),
            );
        }
    }
    if ok && !receipts.is_empty() {
        checks.push(Check::new(
            code::RECEIPT_VALID,
            format!("all {} receipts are genuine and match their records", receipts.len()),
        ));
    }
    received
}

/// The signed heads a version-3 bundle's time-stamp token entries stamped, by the entry's
/// log index (`docs/format.md` §10.5): each must be proven a prefix of the bundle's head,
/// like a receipt's tree. A head that cannot be read is left out here (the token check,
/// `verifier/src/tsa.rs`, reports it).
pub(crate) fn stamped_heads(entries: &[(u64, LogEntry, Hash)]) -> Vec<(u64, TreeHead)> {
    entries
        .iter()
        .filter(|(_, e, _)| e.entry_type == EntryType::TimeStampToken)
        .filter_map(|(i, e, _)| {
            let head = Signed::<TreeHead>::parse(e.tree_head.as_deref()?).ok()?;
            Some((*i, head.value().clone()))
        })
        .collect()
}

/// Checks that the tree each receipt was signed under, and each head a carried time-stamp
/// token stamped (`stamped`, from [`stamped_heads`]; none before bundle version 3), is a
/// prefix of the bundle's head, with the consistency proofs of `custody/receipt-proofs.bin`
/// (one per distinct such tree size below the head's, ascending, none repeated).
/// `receipts` are all the bundle's, each with whether its signature verifies: every
/// receipt's size makes its proof needed, but only a genuine receipt's tree is checked.
pub(crate) fn check_consistency(
    receipts: &[(&Receipt, bool)],
    stamped: &[(u64, TreeHead)],
    head: &TreeHead,
    proofs: &[ConsistencyProof],
    checks: &mut Vec<Check>,
) {
    let mut ok = true;
    let mut by_size: BTreeMap<u64, &ConsistencyProof> = BTreeMap::new();
    let mut last: Option<u64> = None;
    for p in proofs {
        let needed = p.tree_size < head.tree_size
            && (receipts.iter().any(|(r, _)| r.tree_size == p.tree_size)
                || stamped.iter().any(|(_, h)| h.tree_size == p.tree_size));
        let problem = if by_size.contains_key(&p.tree_size) {
            Some("is repeated")
        } else if last.is_some_and(|l| p.tree_size < l) {
            Some("is out of ascending order")
        } else if !needed {
            Some("is for a tree size no receipt or time-stamped head needs")
        } else {
            None
        };
        last = last.max(Some(p.tree_size));
        if let Some(why) = problem {
            ok = false;
            checks.push(Check::new(
                code::RECEIPT_CONSISTENCY_EXTRA,
                format!("the consistency proof from tree size {} {why}", p.tree_size),
            ));
        }
        by_size.entry(p.tree_size).or_insert(p);
    }
    for (r, _) in receipts.iter().filter(|(_, genuine)| *genuine) {
        let result = if r.tree_size >= head.tree_size {
            merkle::verify_consistency(
                r.tree_size,
                head.tree_size,
                &r.tree_root,
                &head.root_hash,
                &[],
            )
        } else {
            match by_size.get(&r.tree_size) {
                Some(p) => merkle::verify_consistency(
                    r.tree_size,
                    head.tree_size,
                    &r.tree_root,
                    &head.root_hash,
                    &p.path,
                ),
                None => {
                    ok = false;
                    checks.push(
                        Check::new(
                            code::RECEIPT_CONSISTENCY_MISSING,
                            format!(
                                "record {}'s receipt names a tree of {} entries, and the bundle carries no consistency proof from it",
                                r.seq, r.tree_size
                            ),
                        )
                        .at(r.seq),
                    );
                    continue;
                }
            }
        };
        if let Err(e) = result {
            ok = false;
            checks.push(
                Check::new(
                    code::RECEIPT_CONSISTENCY_FAILED,
                    format!(
                        "record {}'s receipt names a tree of {} entries that the bundle's head of {} does not extend ({e}): the server's log forked between the receipt and the retrieval",
                        r.seq, r.tree_size, head.tree_size
                    ),
                )
                .at(r.seq),
            );
        }
    }
    for (index, th) in stamped {
        let what = format!("the head time-stamped in log entry {index}");
        let result = if th.tree_size >= head.tree_size {
            merkle::verify_consistency(
                th.tree_size,
                head.tree_size,
                &th.root_hash,
                &head.root_hash,
                &[],
            )
        } else {
            match by_size.get(&th.tree_size) {
                Some(p) => merkle::verify_consistency(
                    th.tree_size,
                    head.tree_size,
                    &th.root_hash,
                    &head.root_hash,
                    &p.path,
                ),
                None => {
                    ok = false;
                    checks.push(Check::new(
                        code::RECEIPT_CONSISTENCY_MISSING,
                        format!(
                            "{what} names a tree of {} entries, and the bundle carries no consistency proof from it",
                            th.tree_size
                        ),
                    ));
                    continue;
                }
            }
        };
        if let Err(e) = result {
            ok = false;
            checks.push(Check::new(
                code::RECEIPT_CONSISTENCY_FAILED,
                format!(
                    "{what} names a tree of {} entries that the bundle's head of {} does not extend ({e}): the token is over another log",
                    th.tree_size, head.tree_size
                ),
            ));
        }
    }
    if ok && (receipts.iter().any(|(_, genuine)| *genuine) || !stamped.is_empty()) {
        let also = if stamped.is_empty() {
            String::new()
        } else {
            format!(
                ", and so is every head the {} carried time-stamp tokens stamped",
                stamped.len()
            )
        };
        checks.push(Check::new(
            code::RECEIPT_CONSISTENCY_OK,
            format!(
                "the tree every receipt was signed under is a prefix of the bundle's head of {} entries{also}",
                head.tree_size
            ),
        ));
    }
}
