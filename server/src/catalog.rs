//! Which custody-log entries concern which recording or device, so that a bundle can carry
//! them without the server keeping the log's entries in memory or reading all of them.
//!
//! For every entry naming a recording (opened, segments, ended, equivocations, accesses)
//! and every entry naming only a device (enrollment, revocation), the catalog keeps its
//! index (8 bytes an entry). The custody log notes each entry as it loads and as it
//! appends, so the catalog is always exactly as long as the log; the bytes are read back
//! through the log's store and checked against the Merkle leaves.

use std::collections::HashMap;

use custody_format::ids::{PublicKey, RecordingId};
use custody_format::log::{EntryType, LogEntry, TreeHead};
use custody_format::signed::Signed;

use crate::members::Members;

/// Entry indices by recording and by device.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    by_recording: HashMap<[u8; 16], Vec<u64>>,
    by_device: HashMap<[u8; 32], Vec<u64>>,
    /// The time-stamp token entries, in log order (`crate::tsa`).
    tokens: Vec<Token>,
    /// The index of the latest entry that is not a time-stamp token.
    last_untimed: Option<u64>,
}

/// A time-stamp token entry, as bundles and the time-stamping task look for them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    /// Its log index.
    pub index: u64,
    /// The stamped head's `tree_size`: the token covers the entries below it.
    pub covers: u64,
    /// The TSA's URL (its `label`).
    pub label: String,
}

impl Catalog {
    /// Notes `entry`, the one at `index` (appended in order).
    pub(crate) fn note(&mut self, index: u64, entry: &LogEntry) {
        if entry.entry_type == EntryType::TimeStampToken {
            // The server wrote the head itself; one that does not read covers nothing.
            let covers = entry
                .tree_head
                .as_deref()
                .and_then(|b| Signed::<TreeHead>::parse(b).ok())
                .map_or(0, |h| h.value().tree_size);
            let label = entry.label.clone().unwrap_or_default();
            self.tokens.push(Token { index, covers, label });
            return;
        }
        self.last_untimed = Some(index);
        match (&entry.recording_id, &entry.device_key) {
            (Some(id), _) => self.by_recording.entry(id.0).or_default().push(index),
            (None, Some(k)) => self.by_device.entry(k.to_bytes()).or_default().push(index),
            (None, None) => {}
        }
    }

    /// The entries of recording `id` and those naming only `device`, up to index `last`,
    /// in log order.
    pub(crate) fn concerning(&self, id: &RecordingId, device: &PublicKey, last: u64) -> Vec<u64> {
        let mut out: Vec<u64> = self
            .by_recording
            .get(&id.0)
            .into_iter()
            .chain(self.by_device.get(&device.to_bytes()))
            .flatten()
            .filter(|&&i| i <= last)
            .copied()
            .collect();
        out.sort_unstable();
        out
    }

    /// The time-stamp token entries before index `before`, in log order.
    pub(crate) fn tokens_before(&self, before: u64) -> &[Token] {
        &self.tokens[..self.tokens.partition_point(|t| t.index < before)]
    }

    /// The index of the latest entry that is not a time-stamp token.
    pub(crate) fn last_untimed(&self) -> Option<u64> {
        self.last_untimed
    }
}

/// For each log index in `records` (ascending), the EARLIEST of `tokens` (in log order)
/// whose stamped head covers it (`covers` > the index): the tokens a bundle of those
/// records carries, deduplicated, in log order (`docs/format.md` §11.4). O(records +
/// tokens): the first covering token moves only forward as the index grows.
pub(crate) fn covering(records: &[u64], tokens: &[Token]) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::new();
    let mut at = 0usize;
    let mut best = 0u64;
    for &li in records {
        while at < tokens.len() && best <= li {
            best = best.max(tokens[at].covers);
            at += 1;
        }
        if best > li {
            let index = tokens[at - 1].index;
            if out.last() != Some(&index) {
                out.push(index);
            }
        } else {
            break;
        }
    }
    out
}

/// The legal team's side of the server state: members and failed logins.
#[derive(Debug)]
pub(crate) struct Lawyer {
    pub(crate) members: Members,
}

impl Lawyer {
    /// The state for a log holding `entries`.
    pub(crate) fn new(entries: &[LogEntry]) -> Lawyer {
        Lawyer { members: Members::new(entries) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(index: u64, covers: u64) -> Token {
        Token { index, covers, label: String::new() }
    }

    #[test]
    fn each_record_is_covered_by_the_earliest_token_over_it() {
        // Tokens at 5 (covers 0..4), 9 (a slow TSA: covers 0..2 only), 12 (covers 0..10).
        let tokens = [t(5, 4), t(9, 2), t(12, 10)];
        assert_eq!(covering(&[0, 1, 3], &tokens), vec![5]);
        assert_eq!(covering(&[3, 4], &tokens), vec![5, 12]);
        assert_eq!(covering(&[6, 7, 8, 10], &tokens), vec![12], "10 is not covered");
        assert_eq!(covering(&[11], &tokens), Vec::<u64>::new());
        assert_eq!(covering(&[], &tokens), Vec::<u64>::new());
        assert_eq!(covering(&[0], &[]), Vec::<u64>::new());
    }
}
