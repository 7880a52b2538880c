//! Everything in the bundle is checked (issue 15 sections 2 and 3, `docs/format.md`
//! 11.2–11.7): receipt consistency, receipts against their log entries and records in
//! every shared field, which log proofs a bundle carries, duplicates and order, the header
//! and segment rules, the tar's directory name, and one rule for absent and unreadable
//! parts. Where a test re-signs something, it does so with the test server's or device's
//! own key: what a misbehaving server or device could do.

mod common;

use std::collections::BTreeMap;

use common::{parts, Bundle};
use custody_format::bundle;
use custody_format::chain::{ChainBuilder, SegmentFields};
use custody_format::log::{EntryType, LogEntry};
use custody_format::primitives::sha256;
use custody_format::record::{CutReason, EndReason, ImportedFile, Origin};
use custody_format::report::{CheckState, Verdict};
use custody_format::signed::Signed;
use custody_format::testkit;
use custody_verifier::{verify, Options, Report};

fn check(b: &Bundle) -> Report {
    let dir = tempfile::tempdir().unwrap();
    b.write(dir.path());
    let source = custody_verifier::Dir::open(dir.path()).unwrap();
    verify(&source, &Options { trust: Some(testkit::public("server")), ..Default::default() })
        .unwrap()
}

fn codes(r: &Report, state: CheckState) -> Vec<&'static str> {
    let mut v: Vec<_> = r.checks.iter().filter(|c| c.state == state).map(|c| c.code).collect();
    v.sort();
    v.dedup();
    v
}

fn assert_fails(b: &Bundle, expected: &[&str]) -> Report {
    let r = check(b);
    assert_eq!(codes(&r, CheckState::Failure), expected, "{:#?}", r.checks);
    assert_eq!(r.verdict, Verdict::Tampered);
    r
}

fn good() -> Bundle {
    parts(1, "device", "server", 4, true).bundle("device", "server")
}

/// Re-signs receipt `i` with the server's key after `edit`.
fn resign_receipt(
    b: &mut Bundle,
    i: usize,
    edit: impl FnOnce(&mut custody_format::receipt::Receipt),
) {
    let mut receipts = b.receipts();
    let mut v = receipts[i].value().clone();
    edit(&mut v);
    receipts[i] = Signed::sign(v, &testkit::key("server"));
    b.set_receipts(&receipts);
    b.remanifest();
}

/// A recording by `device` whose header and segments `edit` changes before they are signed.
fn chain_with(
    edit_header: impl FnOnce(&mut custody_format::record::RecordingHeader),
    cut: impl Fn(u64) -> CutReason,
) -> Bundle {
    let dkey = testkit::key("device");
    let mut h = testkit::header(9, &dkey);
    edit_header(&mut h);
    let (mut b, header) = ChainBuilder::start(h, dkey).unwrap();
    let mut records = vec![header];
    let mut segs = BTreeMap::new();
    for n in 1..=3u64 {
        let ct = common::sealed(9, n, 200);
        records.push(b.segment(SegmentFields {
            ciphertext_len: ct.len() as u64,
            ciphertext_sha256: sha256(&[&ct]),
            cut: cut(n),
            ..testkit::segment(9, n)
        }));
        segs.insert(n, ct);
    }
    records.push(b.end(testkit::T0_US + 7_000_000, EndReason::Stopped, None));
    common::receipted(records, segs, testkit::public("device"), "server").bundle("device", "server")
}

// --- receipts ---

#[test]
fn a_receipt_whose_tree_the_head_does_not_extend_is_a_fork() {
    let mut b = good();
    resign_receipt(&mut b, 2, |v| v.tree_root[0] ^= 1);
    let r = assert_fails(&b, &["receipt.consistency.failed"]);
    assert!(r.checks.iter().any(|c| c.code == "receipt.consistency.failed" && c.seq == Some(2)));
}

#[test]
fn a_receipt_whose_consistency_proof_is_missing_or_extra_is_caught() {
    let mut b = good();
    let mut proofs = b.receipt_proofs();
    let removed = proofs.remove(1);
    b.set_receipt_proofs(&proofs);
    b.remanifest();
    assert_fails(&b, &["receipt.consistency.missing"]);
    proofs.insert(1, removed.clone());
    proofs.insert(1, removed);
    b.set_receipt_proofs(&proofs);
    b.remanifest();
    assert_fails(&b, &["receipt.consistency.extra"]);
}

#[test]
fn a_consistency_proof_that_does_not_hold_is_caught() {
    let mut b = good();
    let mut proofs = b.receipt_proofs();
    proofs[0].path[0][3] ^= 1;
    b.set_receipt_proofs(&proofs);
    b.remanifest();
    assert_fails(&b, &["receipt.consistency.failed"]);
}

#[test]
fn a_receipt_naming_another_device_key_than_its_entry_is_caught() {
    // The server signed a receipt for the right record but another device: the receipt
    // no longer matches the chain's key, nor its log entry.
    let mut b = good();
    resign_receipt(&mut b, 1, |v| v.device_key = testkit::public("someone-else"));
    let r = assert_fails(&b, &["receipt.mismatch"]);
    let m = r.checks.iter().find(|c| c.code == "receipt.mismatch").unwrap();
    assert!(m.message.contains("device_key"), "{}", m.message);
}

#[test]
fn a_receipt_whose_time_differs_from_its_log_entry_is_caught() {
    let mut b = good();
    resign_receipt(&mut b, 2, |v| v.received_at_us += 1);
    let r = assert_fails(&b, &["log.entry.missing"]);
    let m = r.checks.iter().find(|c| c.code == "log.entry.missing").unwrap();
    assert!(m.message.contains("at_us"), "{}", m.message);
}

#[test]
fn duplicate_and_reordered_receipts_are_caught() {
    let mut b = good();
    let mut receipts = b.receipts();
    receipts.insert(2, receipts[2].clone());
    b.set_receipts(&receipts);
    b.remanifest();
    assert_fails(&b, &["receipt.duplicate"]);
    let mut receipts = good().receipts();
    receipts.swap(1, 2);
    b.set_receipts(&receipts);
    b.remanifest();
    let r = assert_fails(&b, &["receipt.reordered"]);
    assert!(r.checks.iter().any(|c| c.code == "receipt.reordered" && c.seq == Some(1)));
}

// --- log proofs ---

#[test]
fn duplicate_reordered_and_unrelated_log_proofs_are_caught() {
    let mut b = good();
    let mut proofs = b.log_proofs();
    proofs.insert(2, proofs[2].clone());
    b.set_log_proofs(&proofs);
    b.remanifest();
    assert_fails(&b, &["bundle.statement.entries", "log.proof.duplicate"]);

    let mut proofs = good().log_proofs();
    proofs.swap(1, 2);
    b.set_log_proofs(&proofs);
    b.remanifest();
    assert_fails(&b, &["bundle.statement.entries", "log.proof.reordered"]);

    // An entry about another recording, proven in the same log.
    let mut p = parts(1, "device", "server", 2, true);
    let mut other = LogEntry::new(EntryType::Access, testkit::T0_US);
    other.actor = Some("lawyer".into());
    other.recording_id = Some(custody_format::ids::RecordingId([7; 16]));
    other.detail = Some("list".into());
    p.entries.push(other);
    let b = p.bundle("device", "server");
    assert_fails(&b, &["log.proof.unrelated"]);
}

#[test]
fn a_record_logged_after_the_revocation_is_caught_by_log_order() {
    let mut e = LogEntry::new(EntryType::DeviceRevoked, testkit::T0_US + 4_500_000);
    e.device_key = Some(testkit::public("device"));
    e.actor = Some("admin".into());
    e.detail = Some("device seized".into());
    let p = parts(1, "device", "server", 4, true);
    let p = common::receipted_with(
        p.records,
        p.segments,
        testkit::public("device"),
        "server",
        300_000,
        &[(2, e)],
    );
    let r = assert_fails(&p.bundle("device", "server"), &["segment.after_revocation"]);
    let after: Vec<u64> = r
        .checks
        .iter()
        .filter(|c| c.code == "segment.after_revocation")
        .filter_map(|c| c.seq)
        .collect();
    assert_eq!(after, vec![3, 4, 5]);
}

// --- header and segments ---

#[test]
fn a_final_cut_before_the_last_segment_is_caught() {
    let b = chain_with(|_| {}, |n| if n == 2 { CutReason::Final } else { CutReason::Keyframe });
    let r = assert_fails(&b, &["record.cut.final_not_last"]);
    assert!(r.checks.iter().any(|c| c.code == "record.cut.final_not_last" && c.seq == Some(2)));
    // On the last segment it is what a recording that stopped has.
    let b = chain_with(|_| {}, |n| if n == 3 { CutReason::Final } else { CutReason::Keyframe });
    assert_eq!(check(&b).verdict, Verdict::IntactComplete);
}

#[test]
fn an_import_without_its_file_and_a_live_recording_with_one_are_caught() {
    let b = chain_with(|h| h.origin = Origin::Imported, |_| CutReason::Keyframe);
    assert_fails(&b, &["record.origin.mismatch"]);
    let file = ImportedFile { sha256: [5; 32], len: 1234 };
    let b = chain_with(|h| h.imported_file = Some(file.clone()), |_| CutReason::Keyframe);
    assert_fails(&b, &["record.origin.mismatch"]);
    let b = chain_with(
        |h| {
            h.origin = Origin::Imported;
            h.imported_file = Some(file);
        },
        |_| CutReason::Keyframe,
    );
    assert_eq!(check(&b).verdict, Verdict::IntactComplete);
}

#[test]
fn an_empty_recipient_list_is_caught() {
    let b = chain_with(|h| h.recipients.clear(), |_| CutReason::Keyframe);
    assert_fails(&b, &["record.recipients.empty"]);
}

#[test]
fn a_tar_whose_directory_names_another_recording_is_caught() {
    let b = good();
    let dir = tempfile::tempdir().unwrap();
    let verify_tar = |name: &str| {
        let tar = dir.path().join(format!("{name}.tar"));
        b.write_tar(&tar, name);
        let source = custody_verifier::Tar::open(&tar).unwrap();
        verify(&source, &Options { trust: Some(testkit::public("server")), ..Default::default() })
            .unwrap()
    };
    let id = custody_format::ids::RecordingId([1; 16]).to_string();
    let r = verify_tar(&id);
    assert_eq!(r.verdict, Verdict::IntactComplete, "{:#?}", r.checks);
    let r = verify_tar(&custody_format::ids::RecordingId([2; 16]).to_string());
    assert_eq!(codes(&r, CheckState::Failure), vec!["bundle.tar.name.mismatch"]);
}

// --- parts: absent, unreadable, partly readable ---

#[test]
fn a_file_outside_the_layout_is_refused_even_when_listed() {
    let mut b = good();
    b.files.insert("custody/notes.txt".into(), b"planted".to_vec());
    b.remanifest();
    assert_fails(&b, &["bundle.file.unexpected"]);
}

#[test]
fn a_wrong_marker_is_a_report_with_a_failure() {
    let mut b = good();
    b.files.insert(bundle::MARKER.into(), b"custody-bundle 4\n".to_vec());
    b.remanifest();
    assert_fails(&b, &["bundle.part.invalid"]);
    b.files.remove(bundle::MARKER);
    b.remanifest();
    let r = check(&b);
    assert_eq!(codes(&r, CheckState::NotChecked), vec!["bundle.part.missing"]);
    assert_eq!(r.verdict, Verdict::CouldNotCheck);
}

#[test]
fn every_part_absent_is_not_checked_and_unreadable_is_a_failure() {
    for path in [
        bundle::MANIFEST,
        bundle::SERVER_KEY,
        bundle::DEVICE_CERT,
        bundle::TREE_HEAD,
        bundle::RECEIPTS,
        bundle::LOG_PROOFS,
        bundle::RECEIPT_PROOFS,
        bundle::RECORDS,
    ] {
        // (The manifest is rewritten first, so that only the part itself is missing.)
        let mut b = good();
        b.files.remove(path);
        b.remanifest();
        if path == bundle::MANIFEST {
            b.files.remove(path);
        }
        let r = check(&b);
        assert_eq!(
            codes(&r, CheckState::Failure),
            Vec::<&str>::new(),
            "{path} absent: {:#?}",
            r.checks
        );
        assert!(codes(&r, CheckState::NotChecked).contains(&"bundle.part.missing"), "{path}");
        assert_eq!(r.verdict, Verdict::CouldNotCheck, "{path}");

        let mut b = good();
        b.files.insert(path.to_string(), b"CSTD garbage".to_vec());
        if path != bundle::MANIFEST {
            b.remanifest();
        }
        let r = check(&b);
        let expected = match path {
            bundle::MANIFEST => "bundle.manifest.invalid",
            bundle::TREE_HEAD => "log.tree_head.invalid",
            bundle::RECORDS => "record.parse.failed",
            _ => "bundle.part.invalid",
        };
        assert!(
            codes(&r, CheckState::Failure).contains(&expected),
            "{path} unreadable: {:#?}",
            r.checks
        );
        assert_eq!(r.verdict, Verdict::Tampered, "{path}");
    }
}

#[test]
fn partly_readable_files_keep_the_objects_before_the_bad_one() {
    // Receipts: the first three are checked, the rest not read.
    let mut b = good();
    let receipts = b.receipts();
    let mut bytes: Vec<u8> = receipts[..3].iter().flat_map(|r| r.to_bytes()).collect();
    bytes.extend_from_slice(b"CSTD\x01");
    b.files.insert(bundle::RECEIPTS.into(), bytes);
    b.remanifest();
    let r = check(&b);
    let invalid = r.checks.iter().find(|c| c.code == "bundle.part.invalid").unwrap();
    assert!(invalid.message.contains("object 3"), "{}", invalid.message);
    assert!(r.segments.iter().filter(|s| s.received_at_us.is_some()).count() == 2);

    // Log proofs: the entries before the bad one are still proven.
    let mut b = good();
    let proofs = b.log_proofs();
    let mut bytes: Vec<u8> = proofs[..4].iter().flat_map(|p| p.encode()).collect();
    bytes.extend_from_slice(&[0u8; 7]);
    b.files.insert(bundle::LOG_PROOFS.into(), bytes);
    b.remanifest();
    let r = check(&b);
    assert_eq!(r.custody_log.len(), 4);
    assert!(codes(&r, CheckState::Failure).contains(&"bundle.part.invalid"));
    assert!(codes(&r, CheckState::Failure).contains(&"bundle.statement.missing"));
}

#[test]
fn a_server_key_file_not_exactly_the_text_form_is_refused() {
    for text in [
        format!("{}", testkit::public("server")),
        format!("{}\n\n", testkit::public("server")),
        format!("{}\n", testkit::public("server")).to_uppercase(),
    ] {
        let mut b = good();
        b.files.insert(bundle::SERVER_KEY.into(), text.into_bytes());
        b.remanifest();
        let r = check(&b);
        assert!(codes(&r, CheckState::Failure).contains(&"bundle.part.invalid"), "{:#?}", r.checks);
    }
}
