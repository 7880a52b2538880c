//! The timeline: each segment's device times beside its receipt time and the time by which
//! a time-stamp authority says it existed, and the device clock's lead over the server's
//! estimated from them.

use std::collections::BTreeMap;

use custody_format::record::{Record, SignedRecord};
use custody_format::report::{code, Check};

use crate::tsa::Stamp;
use crate::verify::SegmentRow;

/// The segments' rows and the device clock's estimated lead; `bounds` are the verified
/// time-stamp tokens that cover each receipted record (by chain position).
pub(crate) fn timeline(
    records: &BTreeMap<u64, &SignedRecord>,
    received: &BTreeMap<u64, i64>,
    bounds: &BTreeMap<u64, &Stamp>,
    checks: &mut Vec<Check>,
) -> (Vec<SegmentRow>, Option<i64>) {
    let mut rows = Vec::new();
    let mut min_lag: Option<i64> = None;
    for r in records.values() {
        let Record::Segment(s) = r.record() else { continue };
        let rec_at = received.get(&s.seq).copied();
        let lag = rec_at.map(|t| t - s.wall_last_us);
        if let Some(l) = lag {
            min_lag = Some(min_lag.map_or(l, |m| m.min(l)));
        }
        rows.push(SegmentRow {
            seq: s.seq,
            wall_first_us: s.wall_first_us,
            wall_last_us: s.wall_last_us,
            media_start_us: s.media_start_us,
            media_end_us: s.media_end_us,
            ciphertext_len: s.ciphertext_len,
            received_at_us: rec_at,
            upload_lag_us: lag,
            existed_by_us: bounds.get(&s.seq).map(|b| b.gen_time_us),
            existed_by_tsa: bounds.get(&s.seq).map(|b| b.tsa.clone()),
        });
    }
    // Receipts come after capture; the smallest lag bounds how far ahead the device clock
    // can be. A negative smallest lag means the device clock runs ahead by at least that.
    let skew = min_lag.map(|l| (-l).max(0));
    match min_lag {
        Some(l) if l < 0 => checks.push(Check::new(
            code::TIME_CLOCK_SKEW,
            format!("the device clock is ahead of the server's by at least {:.3} s (a receipt precedes the device time of its capture)", -l as f64 / 1e6),
        )),
        Some(l) => checks.push(Check::new(
            code::TIME_RECEIPT_CONSISTENT,
            format!("every segment was receipted after its capture; the shortest upload lag is {:.3} s", l as f64 / 1e6),
        )),
        None => {}
    }
    (rows, skew)
}
