//! Completeness (issue 15 section 1, `docs/format.md` 11.4): a forger with no key takes
//! records or log entries out of a bundle and makes everything else consistent again
//! (records, receipts, log proofs, receipt proofs, segments, the manifest). The retrieval
//! statement under the signed head catches each, with its own code; a bundle without the
//! statement is never intact.

mod common;

use common::{parts, Bundle};
use custody_format::log::{EntryType, LogEntry};
use custody_format::report::{CheckState, Verdict};
use custody_format::testkit;
use custody_verifier::{verify, Options, Report};

fn check(b: &Bundle) -> Report {
    let dir = tempfile::tempdir().unwrap();
    b.write(dir.path());
    let source = custody_verifier::Dir::open(dir.path()).unwrap();
    let options = Options { trust: Some(testkit::public("server")), ..Default::default() };
    verify(&source, &options).unwrap()
}

fn codes(r: &Report, state: CheckState) -> Vec<&'static str> {
    let mut v: Vec<_> = r.checks.iter().filter(|c| c.state == state).map(|c| c.code).collect();
    v.sort();
    v.dedup();
    v
}

fn assert_tampered(b: &Bundle, expected: &[&str]) -> Report {
    let r = check(b);
    assert_eq!(codes(&r, CheckState::Failure), expected, "{:#?}", r.checks);
    assert_eq!(r.verdict, Verdict::Tampered);
    r
}

/// A recording of 5 segments, ended, whose device was later revoked (so the bundle must
/// carry the revocation entry).
fn revoked() -> common::Parts {
    let mut p = parts(1, "device", "server", 5, true);
    let mut e = LogEntry::new(EntryType::DeviceRevoked, testkit::T0_US + 3_000_000_000);
    e.device_key = Some(testkit::public("device"));
    e.actor = Some("admin".into());
    e.detail = Some("device seized".into());
    p.entries.push(e);
    p
}

#[test]
fn a_complete_bundle_states_and_holds_its_chain() {
    let r = check(&revoked().bundle("device", "server"));
    assert_eq!(codes(&r, CheckState::Failure), Vec::<&str>::new(), "{:#?}", r.checks);
    assert_eq!(r.verdict, Verdict::IntactComplete);
    let ok = r.checks.iter().find(|c| c.code == "bundle.statement.ok").unwrap();
    assert!(ok.message.contains("7 records"), "{}", ok.message);
}

#[test]
fn a_bundle_cut_off_on_the_server_is_cut_off_with_the_statement_holding() {
    let r = check(&parts(1, "device", "server", 4, false).bundle("device", "server"));
    assert_eq!(codes(&r, CheckState::Failure), Vec::<&str>::new(), "{:#?}", r.checks);
    assert!(matches!(r.verdict, Verdict::IntactCutOff { last_seq: 4, .. }));
    assert!(r.checks.iter().any(|c| c.code == "bundle.statement.ok"
        && c.message.contains("the server itself held no more than this")));
}

#[test]
fn dropping_a_suffix_is_caught() {
    let mut b = revoked().bundle("device", "server");
    b.drop_records(&[4, 5, 6]);
    let r = assert_tampered(&b, &["bundle.statement.chain", "bundle.statement.entries"]);
    let chain = r.checks.iter().find(|c| c.code == "bundle.statement.chain").unwrap();
    assert!(chain.message.contains("3 fewer records"), "{}", chain.message);
    assert!(chain.message.contains("the end record missing"), "{}", chain.message);
}

#[test]
fn dropping_a_suffix_of_a_cut_off_recording_is_caught() {
    let mut b = parts(1, "device", "server", 5, false).bundle("device", "server");
    b.drop_records(&[5]);
    assert_tampered(&b, &["bundle.statement.chain", "bundle.statement.entries"]);
}

#[test]
fn dropping_a_middle_run_is_caught() {
    let mut b = revoked().bundle("device", "server");
    b.drop_records(&[2, 3]);
    assert_tampered(
        &b,
        &[
            "bundle.statement.chain",
            "bundle.statement.entries",
            "chain.end.totals.mismatch",
            "chain.gap",
        ],
    );
}

#[test]
fn dropping_the_end_record_alone_is_caught() {
    let mut b = revoked().bundle("device", "server");
    b.drop_records(&[6]);
    let r = assert_tampered(&b, &["bundle.statement.chain", "bundle.statement.entries"]);
    let chain = r.checks.iter().find(|c| c.code == "bundle.statement.chain").unwrap();
    assert!(chain.message.contains("the end record missing"), "{}", chain.message);
}

#[test]
fn dropping_the_revocation_entry_is_caught() {
    let mut b = revoked().bundle("device", "server");
    b.drop_entries(|e| e.entry_type == EntryType::DeviceRevoked);
    let r = assert_tampered(&b, &["bundle.statement.entries"]);
    assert!(!r.checks.iter().any(|c| c.code == "device.revoked"));
}

#[test]
fn dropping_the_enrollment_entry_is_caught() {
    let mut b = revoked().bundle("device", "server");
    b.drop_entries(|e| e.entry_type == EntryType::DeviceEnrolled);
    assert_tampered(&b, &["bundle.statement.entries"]);
}

#[test]
fn dropping_the_retrieval_entry_is_caught() {
    let mut b = revoked().bundle("device", "server");
    b.drop_entries(|e| e.entry_type == EntryType::Access);
    assert_tampered(&b, &["bundle.statement.missing"]);
}

#[test]
fn rewriting_the_marker_to_version_1_can_never_be_intact() {
    let mut b = revoked().bundle("device", "server");
    b.downgrade();
    let r = check(&b);
    assert_eq!(codes(&r, CheckState::Failure), Vec::<&str>::new(), "{:#?}", r.checks);
    assert_eq!(codes(&r, CheckState::NotChecked), vec!["bundle.statement.absent"]);
    assert_eq!(r.verdict, Verdict::CouldNotCheck);
    // ... and so a suffix dropped from the downgraded bundle is not passed off as cut off.
    b.drop_records(&[5, 6]);
    assert_eq!(check(&b).verdict, Verdict::CouldNotCheck);
}

#[test]
fn a_version_1_bundle_verifies_but_its_completeness_is_not_checked() {
    let r = check(&parts(1, "device", "server", 3, true).bundle_v1("device", "server"));
    assert_eq!(codes(&r, CheckState::Failure), Vec::<&str>::new(), "{:#?}", r.checks);
    assert_eq!(codes(&r, CheckState::NotChecked), vec!["bundle.statement.absent"]);
    assert_eq!(r.verdict, Verdict::CouldNotCheck);
    let absent = r.checks.iter().find(|c| c.code == "bundle.statement.absent").unwrap();
    assert!(absent.message.contains("before completeness statements"));
}

#[test]
fn a_version_2_bundle_whose_retrieval_entry_states_nothing_is_tampered() {
    // A server that logged the retrieval without a statement: the head's last leaf is a
    // plain access entry.
    let b = parts(1, "device", "server", 3, true).bundle_unstated("device", "server");
    let r = assert_tampered(&b, &["bundle.statement.missing"]);
    let m = r.checks.iter().find(|c| c.code == "bundle.statement.missing").unwrap();
    assert!(m.message.contains("states no chain"), "{}", m.message);
}
