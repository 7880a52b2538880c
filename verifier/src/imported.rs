//! An import that stopped on damaged input: how much of the file the chain holds.
//!
//! A recorder that imports a file ends its chain with reason 3 (error) and a message that
//! opens with "the file is damaged" when the file's data fails part-way or ends well before
//! the duration the file declares (format 4.3, tag 11 `source_duration_us`). Everything up
//! to there is proven like any recording; the rest of the file was never sealed. That is
//! not tampering, but a reader must know it, so the report says it in one sentence and the
//! listings use the same words.

use custody_format::record::{EndReason, EndRecord, Origin, RecordingHeader};
use custody_format::report::{code, Check};

/// The words a recorder's end message opens with when the imported file was damaged.
const DAMAGED: &str = "the file is damaged";

/// A media time as a reader says it: `m:ss`, or `h:mm:ss` from an hour on (rounded to the
/// nearest second).
pub fn clock(us: u64) -> String {
    let s = (us + 500_000) / 1_000_000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// "imported up to 0:06 of 0:12: the rest of the file is damaged", for an import whose end
/// record says its file was damaged; `None` for anything else.
pub fn sentence(imported: bool, end: &EndRecord) -> Option<String> {
    let message = end.message.as_deref()?;
    if !imported || end.reason != EndReason::Error || !message.starts_with(DAMAGED) {
        return None;
    }
    let of = end.source_duration_us.map(|d| format!(" of {}", clock(d))).unwrap_or_default();
    Some(format!(
        "imported up to {}{of}: the rest of the file is damaged",
        clock(end.media_duration_us)
    ))
}

/// Adds `import.damaged` (a warning) when the chain is an import that stopped on damage.
pub(crate) fn check(header: Option<&RecordingHeader>, end: Option<&EndRecord>) -> Option<Check> {
    let (h, e) = (header?, end?);
    let said = sentence(h.origin == Origin::Imported, e)?;
    let mut first = said.chars();
    let said = first.next().map(|c| c.to_uppercase().chain(first).collect::<String>())?;
    let detail = e.message.as_deref().unwrap_or_default();
    Some(
        Check::new(code::IMPORT_DAMAGED, format!("{said} (the end record says: {detail})."))
            .at(e.seq),
    )
}

/// The report's summary with the damage said after the verdict's sentences.
pub(crate) fn amend_summary(summary: String, checks: &[Check]) -> String {
    match checks.iter().find(|c| c.code == code::IMPORT_DAMAGED) {
        Some(c) => format!("{summary} {}", c.message),
        None => summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_format::ids::RecordingId;

    fn end(reason: EndReason, message: Option<&str>, source: Option<u64>) -> EndRecord {
        EndRecord {
            recording_id: RecordingId([1; 16]),
            seq: 4,
            prev: [0; 32],
            ended_at_us: 0,
            reason,
            message: message.map(str::to_string),
            segments: 3,
            media_duration_us: 5_920_000,
            plaintext_bytes: 0,
            ciphertext_bytes: 0,
            source_duration_us: source,
            continued_in: None,
        }
    }

    #[test]
    fn clock_reads_as_people_say_it() {
        assert_eq!(clock(5_920_000), "0:06");
        assert_eq!(clock(12_000_000), "0:12");
        assert_eq!(clock(728_000_000), "12:08");
        assert_eq!(clock(1_200_000_000), "20:00");
        assert_eq!(clock(3_723_000_000), "1:02:03");
    }

    #[test]
    fn only_a_damaged_import_says_so() {
        let damaged = end(EndReason::Error, Some("the file is damaged: x"), Some(12_000_000));
        assert_eq!(
            sentence(true, &damaged).as_deref(),
            Some("imported up to 0:06 of 0:12: the rest of the file is damaged")
        );
        assert_eq!(sentence(false, &damaged), None);
        let unknown = end(EndReason::Error, Some("the file is damaged: x"), None);
        assert_eq!(
            sentence(true, &unknown).as_deref(),
            Some("imported up to 0:06: the rest of the file is damaged")
        );
        assert_eq!(sentence(true, &end(EndReason::Error, Some("disk full"), None)), None);
        assert_eq!(sentence(true, &end(EndReason::InputEnded, None, Some(6_000_000))), None);
    }
}
