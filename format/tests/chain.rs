//! Chain building and checking, end to end over encoded bytes.

use custody_format::chain::verify_chain;
use custody_format::record::{Record, SignedRecord};
use custody_format::report::{code, CheckState, Verdict};
use custody_format::testkit;

fn failures(bytes: &[u8]) -> Vec<&'static str> {
    let mut v: Vec<_> = verify_chain(bytes, None)
        .checks
        .into_iter()
        .filter(|c| c.state == CheckState::Failure)
        .map(|c| c.code)
        .collect();
    v.sort();
    v.dedup();
    v
}

fn verdict(bytes: &[u8]) -> Verdict {
    let r = verify_chain(bytes, None);
    Verdict::from_checks(&r.checks, r.cut_off)
}

#[test]
fn a_complete_recording_is_intact_with_no_warnings() {
    let recs = testkit::recording(1, "device", 5, true).unwrap();
    let report = verify_chain(&testkit::concat(&recs), None);
    assert!(report.checks.iter().all(|c| c.state == CheckState::Ok), "{:#?}", report.checks);
    assert_eq!(Verdict::from_checks(&report.checks, report.cut_off), Verdict::IntactComplete);
    assert_eq!(report.records.len(), 7);
}

#[test]
fn a_recording_without_end_is_cut_off_not_tampered() {
    let recs = testkit::recording(1, "device", 4, false).unwrap();
    let bytes = testkit::concat(&recs);
    assert!(failures(&bytes).is_empty());
    match verdict(&bytes) {
        Verdict::IntactCutOff { last_seq, last_wall_us } => {
            assert_eq!(last_seq, 4);
            assert_eq!(last_wall_us, testkit::T0_US + 50_000 + 6_000_000 + 1_960_000);
        }
        other => panic!("expected cut off, got {other:?}"),
    }
}

#[test]
fn removing_the_end_record_reads_as_cut_off() {
    let mut recs = testkit::recording(1, "device", 3, true).unwrap();
    recs.pop();
    assert!(matches!(verdict(&testkit::concat(&recs)), Verdict::IntactCutOff { last_seq: 3, .. }));
}

#[test]
fn each_kind_of_damage_has_its_own_code() {
    let recs = testkit::recording(1, "device", 4, true).unwrap();

    let mut gap = recs.clone();
    gap.remove(2);
    assert_eq!(
        failures(&testkit::concat(&gap)),
        vec![code::CHAIN_END_TOTALS_MISMATCH, code::CHAIN_GAP]
    );

    let mut dup = recs.clone();
    dup.insert(2, recs[2].clone());
    assert_eq!(failures(&testkit::concat(&dup)), vec![code::CHAIN_DUPLICATE]);

    let mut swapped = recs.clone();
    swapped.swap(2, 3);
    assert_eq!(failures(&testkit::concat(&swapped)), vec![code::CHAIN_REORDERED]);

    let other = testkit::recording(2, "device", 4, true).unwrap();
    let mut spliced = recs.clone();
    spliced[2] = other[2].clone();
    assert_eq!(
        failures(&testkit::concat(&spliced)),
        vec![code::CHAIN_LINK_BROKEN, code::RECORD_RECORDING_ID_MISMATCH]
    );

    let mut bytes = testkit::concat(&recs);
    let sig_of_first_segment = recs[0].to_bytes().len() + recs[1].bytes().len();
    bytes[sig_of_first_segment] ^= 1;
    assert_eq!(failures(&bytes), vec![code::RECORD_SIGNATURE_INVALID]);

    let mut truncated = testkit::concat(&recs);
    truncated.truncate(truncated.len() - 10);
    assert_eq!(failures(&truncated), vec![code::RECORD_PARSE_FAILED]);
}

#[test]
fn a_chain_signed_by_another_key_fails_against_the_expected_key() {
    let recs = testkit::recording(1, "impostor", 2, true).unwrap();
    let report = verify_chain(&testkit::concat(&recs), Some(&testkit::public("device")));
    let codes: Vec<_> =
        report.checks.iter().filter(|c| c.state == CheckState::Failure).map(|c| c.code).collect();
    assert!(codes.contains(&code::RECORD_DEVICE_KEY_MISMATCH));
    assert!(codes.contains(&code::RECORD_SIGNATURE_INVALID));
}

#[test]
fn records_survive_an_encode_parse_round_trip_byte_for_byte() {
    for rec in testkit::recording(3, "device", 2, true).unwrap() {
        let stored = rec.to_bytes();
        let parsed = SignedRecord::parse(&stored).unwrap();
        assert_eq!(parsed, rec);
        assert_eq!(parsed.record().encode(), parsed.bytes());
        assert_eq!(Record::decode(parsed.bytes()).unwrap(), *rec.record());
    }
}
