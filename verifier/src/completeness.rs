//! Completeness (`docs/format.md` 11.4): the server's retrieval statement, in the access
//! entry that is the last leaf of the bundle's head, says which records it held and which
//! log entries the bundle must carry; the bundle must hold exactly those. Without it,
//! removing the last records (with their receipts, entries and segments) and regenerating
//! the manifest would leave a bundle that reads as cut off, with no key needed at all.

use std::collections::BTreeMap;

use custody_format::ids::RecordingId;
use custody_format::log::{EntryType, TreeHead};
use custody_format::record::{Record, SignedRecord};
use custody_format::report::{code, Check};
use custody_format::statement::{self, Statement};

use crate::custody_log::Carried;

/// A `custody-bundle 1` bundle carries no statement: completeness cannot be proven.
pub(crate) fn absent(checks: &mut Vec<Check>) {
    checks.push(Check::new(
        code::BUNDLE_STATEMENT_ABSENT,
        "this bundle (custody-bundle 1) was made by a server before completeness statements: \
         records or log entries may have been left out of it without trace",
    ));
}

/// Finds the statement and compares the bundle with it; returns it when it holds.
pub(crate) fn check(
    head: &TreeHead,
    log: &Carried,
    records: &BTreeMap<u64, &SignedRecord>,
    recording: Option<&RecordingId>,
    checks: &mut Vec<Check>,
) -> Option<Statement> {
    let missing = |checks: &mut Vec<Check>, why: String| {
        checks.push(Check::new(
            code::BUNDLE_STATEMENT_MISSING,
            format!("the bundle carries no valid retrieval statement: {why}"),
        ));
        None
    };
    let Some(at) = head.tree_size.checked_sub(1) else {
        return missing(checks, "the log head is empty".into());
    };
    let mut found = log.proven.iter().filter(|(i, _, _)| *i == at);
    let Some((_, entry, _)) = found.next() else {
        return missing(
            checks,
            format!("the head's last entry ({at}) is not among its proven log entries"),
        );
    };
    if entry.entry_type != EntryType::Access
        || entry.recording_id.as_ref() != recording
        || !entry.detail.as_deref().is_some_and(|d| d.starts_with("bundle"))
    {
        return missing(
            checks,
            format!("the head's last entry ({at}) is not a retrieval of this recording's bundle"),
        );
    }
    let Some(stated) = Statement::of(entry) else {
        return missing(checks, format!("the retrieval entry ({at}) states no chain and entries"));
    };

    let mut holds = true;
    // The chain: every record the bundle holds, in position order.
    let held: Vec<(u64, [u8; 32])> = records.iter().map(|(s, r)| (*s, r.hash())).collect();
    let count = held.len() as u64;
    let last = held.last().map(|(s, _)| *s);
    let ended = records.values().any(|r| matches!(r.record(), Record::End(_)));
    let hash = statement::chain_hash(held.iter().copied());
    if count != stated.chain_count
        || (count > 0 && last != Some(stated.chain_last_seq))
        || ended != stated.chain_ended
        || hash != stated.chain_hash
    {
        holds = false;
        let mut how = Vec::new();
        if count < stated.chain_count {
            how.push(format!("{} fewer records", stated.chain_count - count));
        } else if count > stated.chain_count {
            how.push(format!("{} more records", count - stated.chain_count));
        }
        if stated.chain_ended && !ended {
            how.push("the end record missing".to_string());
        }
        if last != Some(stated.chain_last_seq) {
            how.push(format!(
                "{} as the last position, not {}",
                last.map_or("none".to_string(), |l| l.to_string()),
                stated.chain_last_seq
            ));
        }
        if how.is_empty() {
            how.push("other positions or records".to_string());
        }
        checks.push(Check::new(
            code::BUNDLE_STATEMENT_CHAIN,
            format!(
                "when it made this bundle the server held {} records of this recording up to position {}{}; the bundle holds {}",
                stated.chain_count,
                stated.chain_last_seq,
                if stated.chain_ended { ", the end record among them" } else { "" },
                how.join(", ")
            ),
        ));
    }
    // The entries: every log proof but the retrieval entry's own, in the order carried.
    let carried: Vec<(u64, [u8; 32])> = log.all.iter().copied().filter(|(i, _)| *i != at).collect();
    let entries_hash = statement::entries_hash(carried.iter().copied());
    if carried.len() as u64 != stated.entries_count || entries_hash != stated.entries_hash {
        holds = false;
        let how = match (carried.len() as u64).cmp(&stated.entries_count) {
            std::cmp::Ordering::Less => {
                format!("{} fewer", stated.entries_count - carried.len() as u64)
            }
            std::cmp::Ordering::Greater => {
                format!("{} more", carried.len() as u64 - stated.entries_count)
            }
            std::cmp::Ordering::Equal => "as many, but not the same ones in log order".to_string(),
        };
        checks.push(Check::new(
            code::BUNDLE_STATEMENT_ENTRIES,
            format!(
                "the server stated {} log entries this bundle must carry besides the retrieval; it carries {how}",
                stated.entries_count
            ),
        ));
    }
    if !holds {
        return None;
    }
    checks.push(Check::new(
        code::BUNDLE_STATEMENT_OK,
        format!(
            "the bundle holds exactly the {} records the server held when it made it (up to position {}, {}) and the {} log entries it stated",
            stated.chain_count,
            stated.chain_last_seq,
            if stated.chain_ended { "with the end record" } else { "with no end record: the server itself held no more than this" },
            stated.entries_count
        ),
    ));
    Some(stated)
}
