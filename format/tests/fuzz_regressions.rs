//! Replays the inputs the fuzzers once failed on (tests/fuzz-regressions/<target>/, one file
//! each, named after what broke) through the very check its fuzz target runs
//! (fuzz/checks/<target>.rs), for the targets whose parsers live in this crate.

use std::path::Path;

mod bundle {
    include!("../../fuzz/checks/bundle.rs");
}
mod chain {
    include!("../../fuzz/checks/chain.rs");
}
mod packet_digest {
    include!("../../fuzz/checks/packet_digest.rs");
}
mod record {
    include!("../../fuzz/checks/record.rs");
}
mod server_objects {
    include!("../../fuzz/checks/server_objects.rs");
}

/// Runs `check` on every input kept for `target`, naming the input that fails; returns how
/// many there were.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz-regressions").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return 0 };
    let mut n = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("fuzz regression {} fails again", path.display());
        }
        n += 1;
    }
    n
}

#[test]
fn every_kept_input_passes_its_fuzz_check() {
    let n = replay("bundle", bundle::check)
        + replay("chain", chain::check)
        + replay("packet_digest", packet_digest::check)
        + replay("record", record::check)
        + replay("server_objects", server_objects::check);
    assert!(n > 0, "no inputs under tests/fuzz-regressions/ for this crate's targets");
}

/// The manifest path `D99..2.` is safe (§10.1 forbids `..` as a component, not as two
/// characters); the bundle target once asserted `!path.contains("..")` and stopped on it.
#[test]
fn a_name_with_two_dots_inside_is_a_safe_path() {
    assert!(bundle::follows_section_10_1("D99..2."));
    assert!(custody_format::bundle::is_safe_path("recording/D99..2."));
    assert!(!bundle::follows_section_10_1("recording/../BUNDLE"));
    assert!(!bundle::follows_section_10_1("/BUNDLE"));
    let data = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fuzz-regressions/bundle/dotdot-inside-a-name"),
    )
    .unwrap();
    let m = custody_format::bundle::Manifest::parse(&data).unwrap();
    assert_eq!(m.entries[0].path, "D99..2.");
}

/// A recording whose segments are changed by `edit` and signed again, still linked, so
/// that only what `edit` changed is wrong.
fn relinked(edit: impl Fn(&mut custody_format::record::SegmentRecord)) -> Vec<u8> {
    use custody_format::record::{Record, SignedRecord};
    let key = custody_format::testkit::key("device");
    let mut out: Vec<SignedRecord> = Vec::new();
    for r in custody_format::testkit::recording(1, "device", 2, true).unwrap() {
        let mut record = r.record().clone();
        match &mut record {
            Record::Header(_) => {}
            Record::Segment(s) => {
                edit(s);
                s.prev = out.last().unwrap().hash();
            }
            Record::End(e) => e.prev = out.last().unwrap().hash(),
        }
        out.push(SignedRecord::sign(record, &key));
    }
    custody_format::testkit::concat(&out)
}

fn codes(bytes: &[u8]) -> Vec<&'static str> {
    custody_format::chain::verify_chain(bytes, None).checks.iter().map(|c| c.code).collect()
}

/// Found by the chain fuzzer: a segment whose media start is i64::MIN µs away from the
/// previous segment's end overflowed `(start - end).abs()`; it is now a discontinuity.
#[test]
fn a_media_gap_beyond_i64_is_a_discontinuity_not_an_overflow() {
    let bytes = relinked(|s| {
        if s.seq == 2 {
            s.media_start_us = i64::MIN;
        }
    });
    let codes = codes(&bytes);
    assert!(codes.contains(&custody_format::report::code::MEDIA_DISCONTINUITY), "{codes:?}");
}

/// Beside it: the end record's totals were summed in a u64, so two segments stating
/// u64::MAX bytes each overflowed; the sum no longer overflows and the totals mismatch.
#[test]
fn segment_lengths_that_overflow_u64_are_a_totals_mismatch_not_an_overflow() {
    let bytes = relinked(|s| {
        s.plaintext_len = u64::MAX;
        s.ciphertext_len = u64::MAX;
    });
    let codes = codes(&bytes);
    assert!(codes.contains(&custody_format::report::code::CHAIN_END_TOTALS_MISMATCH), "{codes:?}");
    assert!(!codes.contains(&custody_format::report::code::CHAIN_LINK_BROKEN), "{codes:?}");
}
