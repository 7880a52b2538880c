//! Rules on what the bundle holds beyond signatures and hashes (`docs/format.md` 11.6 and
//! 11.10): the layout is closed, a header's origin and imported file agree, there is a
//! recipient, only the last segment is cut as the final one, and a `.tar`'s top directory
//! names the recording.

use custody_format::bundle;
use custody_format::ids::RecordingId;
use custody_format::record::{CutReason, Origin, Record, RecordingHeader, SignedRecord};
use custody_format::report::{code, Check};

use crate::parts::Version;
use crate::source::Source;

/// The files a bundle of `version` may hold besides its sealed segments.
fn layout(version: Version) -> &'static [&'static str] {
    const V1: &[&str] = &[
        bundle::MARKER,
        bundle::README,
        bundle::MANIFEST,
        bundle::RECORDS,
        bundle::SERVER_KEY,
        bundle::DEVICE_CERT,
        bundle::RECEIPTS,
        bundle::TREE_HEAD,
        bundle::LOG_PROOFS,
    ];
    const V2: &[&str] = &[
        bundle::MARKER,
        bundle::README,
        bundle::MANIFEST,
        bundle::RECORDS,
        bundle::SERVER_KEY,
        bundle::DEVICE_CERT,
        bundle::RECEIPTS,
        bundle::TREE_HEAD,
        bundle::LOG_PROOFS,
        bundle::RECEIPT_PROOFS,
    ];
    const V3: &[&str] = &[
        bundle::MARKER,
        bundle::README,
        bundle::MANIFEST,
        bundle::RECORDS,
        bundle::SERVER_KEY,
        bundle::DEVICE_CERT,
        bundle::RECEIPTS,
        bundle::TREE_HEAD,
        bundle::LOG_PROOFS,
        bundle::RECEIPT_PROOFS,
        bundle::TSA_ROOTS,
    ];
    match version {
        Version::V1 => V1,
        Version::V2 => V2,
        Version::V3 => V3,
    }
}

/// Every file outside the layout is reported, listed in the manifest or not: nothing in a
/// bundle goes unchecked. (Files in the segments directory are checked against the records,
/// `segment.unexpected`.)
pub(crate) fn check_layout(source: &dyn Source, version: Version, checks: &mut Vec<Check>) {
    let allowed = layout(version);
    let segments = format!("{}/", bundle::SEGMENTS_DIR);
    for path in source.files().keys() {
        if !allowed.contains(&path.as_str()) && !path.starts_with(&segments) {
            checks.push(Check::new(
                code::BUNDLE_FILE_UNEXPECTED,
                format!("{path} is not part of a bundle's layout"),
            ));
        }
    }
}

/// The header's own rules: an imported recording names its file, a live one does not; the
/// segments are sealed to at least one recipient.
pub(crate) fn check_header(h: &RecordingHeader, checks: &mut Vec<Check>) {
    checks.extend(crate::orientation::checks(h));
    match (h.origin, &h.imported_file) {
        (Origin::Imported, None) => checks.push(
            Check::new(
                code::RECORD_ORIGIN_MISMATCH,
                "the header says the recording was imported (origin 2) but names no imported file (imported_sha256, imported_len)",
            )
            .at(0),
        ),
        (Origin::Live, Some(_)) => checks.push(
            Check::new(
                code::RECORD_ORIGIN_MISMATCH,
                "the header says the recording is live (origin 1) but names an imported file",
            )
            .at(0),
        ),
        _ => {}
    }
    if h.recipients.is_empty() {
        checks.push(
            Check::new(
                code::RECORD_RECIPIENTS_EMPTY,
                "the header lists no recipient: its segments are sealed to no one who could open them",
            )
            .at(0),
        );
    }
}

/// A segment cut as the final one (`cut` 3) must be the last segment of the chain.
pub(crate) fn check_cuts(records: &[SignedRecord], checks: &mut Vec<Check>) {
    let last = records
        .iter()
        .filter_map(|r| match r.record() {
            Record::Segment(s) => Some(s.seq),
            _ => None,
        })
        .max();
    for r in records {
        if let Record::Segment(s) = r.record() {
            if s.cut == CutReason::Final && Some(s.seq) != last {
                checks.push(
                    Check::new(
                        code::RECORD_CUT_FINAL_NOT_LAST,
                        format!(
                            "segment {} is cut as the final segment (cut 3), but segments follow it",
                            s.seq
                        ),
                    )
                    .at(s.seq),
                );
            }
        }
    }
}

/// A bundle read from a `.tar` lives under `custody-bundle-<recording id>/`.
pub(crate) fn check_tar_name(top: &str, recording: &RecordingId, checks: &mut Vec<Check>) {
    let expected = format!("custody-bundle-{recording}");
    if top != expected {
        checks.push(Check::new(
            code::BUNDLE_TAR_NAME_MISMATCH,
            format!("the archive's top directory is {top:?}, not {expected:?}"),
        ));
    }
}
