//! The tamper matrix: a known-good bundle, then one kind of tampering per test, each
//! asserting the exact failure codes the verifier reports. Unless a test says otherwise the
//! forger also rewrites the manifest, so the deeper checks are what catch it.

mod common;

use common::{parts, sealed, Bundle};
use custody_format::bundle::{self, LogProof};
use custody_format::ids::PublicKey;
use custody_format::log::{EntryType, LogEntry};
use custody_format::receipt::Receipt;
use custody_format::record::{Record, SignedRecord};
use custody_format::report::{CheckState, Verdict};
use custody_format::signed::Signed;
use custody_format::testkit;
use custody_verifier::{verify, Options, Report, Trust};

fn check(b: &Bundle, trust: Option<PublicKey>) -> Report {
    let dir = tempfile::tempdir().unwrap();
    b.write(dir.path());
    let source = custody_verifier::Dir::open(dir.path()).unwrap();
    verify(
        &source,
        &Options {
            trust,
            trust_fingerprint: None,
            opener: None,
            zone: None,
            tsa_trust: Vec::new(),
        },
    )
    .unwrap()
}

fn failures(r: &Report) -> Vec<&'static str> {
    let mut v: Vec<_> =
        r.checks.iter().filter(|c| c.state == CheckState::Failure).map(|c| c.code).collect();
    v.sort();
    v.dedup();
    v
}

fn trusted() -> Option<PublicKey> {
    Some(testkit::public("server"))
}

fn good() -> Bundle {
    parts(1, "device", "server", 5, true).bundle("device", "server")
}

fn records_of(b: &Bundle) -> Vec<SignedRecord> {
    SignedRecord::parse_all(&b.files[bundle::RECORDS]).unwrap()
}

fn set_records(b: &mut Bundle, recs: &[SignedRecord]) {
    b.files.insert(bundle::RECORDS.into(), testkit::concat(recs));
}

fn receipts_of(b: &Bundle) -> Vec<Signed<Receipt>> {
    Signed::<Receipt>::parse_all(&b.files[bundle::RECEIPTS]).unwrap()
}

fn set_receipts(b: &mut Bundle, r: &[Signed<Receipt>]) {
    b.files.insert(bundle::RECEIPTS.into(), r.iter().flat_map(|x| x.to_bytes()).collect());
}

fn assert_fails(b: &Bundle, expected: &[&str]) -> Report {
    let r = check(b, trusted());
    assert_eq!(failures(&r), expected, "{:#?}", r.checks);
    assert_eq!(r.verdict, Verdict::Tampered);
    r
}

#[test]
fn untouched_bundles_of_varied_length_verify_cleanly() {
    for (i, n) in
        [0u64, 1, 2, 3, 5, 8, 13, 21, 1, 4, 6, 7, 9, 10, 12, 15, 17, 30, 44, 60].iter().enumerate()
    {
        let b = parts(i as u8, "device", "server", *n, true).bundle("device", "server");
        let r = check(&b, trusted());
        let noisy: Vec<_> = r.checks.iter().filter(|c| c.state != CheckState::Ok).collect();
        assert!(noisy.is_empty(), "recording of {n} segments: {noisy:#?}");
        assert_eq!(r.verdict, Verdict::IntactComplete);
        assert!(matches!(r.trust, Trust::Trusted { .. }));
        assert_eq!(r.segments.len() as u64, *n);
        assert!(r.segments.iter().all(|s| s.upload_lag_us == Some(300_000)));
    }
}

#[test]
fn the_same_bundle_as_a_tar_verifies_the_same() {
    let b = good();
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("bundle.tar");
    b.write_tar(&tar, &custody_format::ids::RecordingId([1; 16]).to_string());
    let source = custody_verifier::Tar::open(&tar).unwrap();
    let r = verify(
        &source,
        &Options {
            trust: trusted(),
            trust_fingerprint: None,
            opener: None,
            zone: None,
            tsa_trust: Vec::new(),
        },
    )
    .unwrap();
    assert_eq!(r.verdict, Verdict::IntactComplete);
    assert_eq!(r.count(CheckState::Failure) + r.count(CheckState::Warning), 0);
}

#[test]
fn without_a_trust_anchor_it_is_consistent_but_unconfirmed() {
    let r = check(&good(), None);
    assert_eq!(r.verdict, Verdict::IntactComplete);
    assert!(matches!(r.trust, Trust::Unconfirmed { .. }));
    assert!(r.summary.contains("confirm the server key fingerprint"));
    assert_eq!(failures(&r), Vec::<&str>::new());
}

#[test]
fn a_cut_off_recording_is_not_tampering() {
    let b = parts(1, "device", "server", 4, false).bundle("device", "server");
    let r = check(&b, trusted());
    assert!(failures(&r).is_empty(), "{:#?}", r.checks);
    assert!(matches!(r.verdict, Verdict::IntactCutOff { last_seq: 4, .. }));
    assert!(r.summary.contains("cut off after record 4"));
}

#[test]
fn flipped_byte_in_a_segment() {
    let mut b = good();
    b.files.get_mut(&bundle::segment_path(2)).unwrap()[100] ^= 1;
    b.remanifest();
    assert_fails(&b, &["segment.hash.mismatch"]);
}

#[test]
fn flipped_byte_in_a_segment_without_updating_the_manifest() {
    let mut b = good();
    b.files.get_mut(&bundle::segment_path(2)).unwrap()[100] ^= 1;
    assert_fails(&b, &["bundle.file.mismatch", "segment.hash.mismatch"]);
}

#[test]
fn flipped_byte_in_a_record() {
    let mut b = good();
    let recs = records_of(&b);
    // Inside segment 2's record body (a byte of its packet digest), not its signature.
    let Record::Segment(s) = recs[2].record() else { panic!() };
    let within = recs[2].bytes().windows(32).position(|w| w == s.packet_digest).unwrap();
    let offset = recs[0].to_bytes().len() + recs[1].to_bytes().len() + within + 3;
    b.files.get_mut(bundle::RECORDS).unwrap()[offset] ^= 1;
    b.remanifest();
    assert_fails(
        &b,
        &[
            "bundle.statement.chain",
            "chain.link.broken",
            "receipt.mismatch",
            "record.signature.invalid",
        ],
    );
}

#[test]
fn flipped_byte_in_a_signature() {
    let mut b = good();
    let recs = records_of(&b);
    let offset = recs[0].to_bytes().len() + recs[1].to_bytes().len() - 5;
    b.files.get_mut(bundle::RECORDS).unwrap()[offset] ^= 1;
    b.remanifest();
    assert_fails(&b, &["record.signature.invalid"]);
}

#[test]
fn flipped_byte_in_a_receipt() {
    let mut b = good();
    let len = receipts_of(&b)[0].to_bytes().len();
    b.files.get_mut(bundle::RECEIPTS).unwrap()[len + 30] ^= 1;
    b.remanifest();
    assert_fails(&b, &["receipt.signature.invalid"]);
}

#[test]
fn flipped_byte_in_a_proof() {
    let mut b = good();
    let proofs = LogProof::parse_all(&b.files[bundle::LOG_PROOFS]).unwrap();
    let mut p = proofs.clone();
    p[3].path[0][5] ^= 1;
    b.files.insert(bundle::LOG_PROOFS.into(), p.iter().flat_map(LogProof::encode).collect());
    b.remanifest();
    assert_fails(&b, &["log.entry.missing", "log.inclusion.invalid"]);
}

#[test]
fn a_segment_removed() {
    let mut b = good();
    let mut recs = records_of(&b);
    recs.remove(3);
    set_records(&mut b, &recs);
    b.files.remove(&bundle::segment_path(3));
    b.remanifest();
    assert_fails(
        &b,
        &["bundle.statement.chain", "chain.end.totals.mismatch", "chain.gap", "receipt.unmatched"],
    );
}

#[test]
fn a_segment_file_deleted() {
    let mut b = good();
    b.files.remove(&bundle::segment_path(3));
    b.remanifest();
    assert_fails(&b, &["segment.missing"]);
}

#[test]
fn a_segment_duplicated() {
    let mut b = good();
    let mut recs = records_of(&b);
    recs.insert(3, recs[3].clone());
    set_records(&mut b, &recs);
    b.remanifest();
    assert_fails(&b, &["chain.duplicate"]);
}

#[test]
fn a_segment_swapped_with_its_neighbour() {
    let mut b = good();
    let mut recs = records_of(&b);
    recs.swap(2, 3);
    set_records(&mut b, &recs);
    b.remanifest();
    assert_fails(&b, &["chain.reordered"]);
}

#[test]
fn a_segment_replaced_by_one_from_another_recording_of_the_same_device() {
    let mut b = good();
    let other = parts(2, "device", "server", 5, true);
    let mut recs = records_of(&b);
    recs[2] = other.records[2].clone();
    set_records(&mut b, &recs);
    b.files.insert(bundle::segment_path(2), other.segments[&2].clone());
    b.remanifest();
    assert_fails(
        &b,
        &[
            "bundle.statement.chain",
            "chain.link.broken",
            "receipt.mismatch",
            "record.recording_id.mismatch",
        ],
    );
}

#[test]
fn a_records_times_edited_and_re_signed_with_another_key() {
    let mut b = good();
    let mut recs = records_of(&b);
    let Record::Segment(mut s) = recs[2].record().clone() else { panic!() };
    s.wall_first_us -= 3_600_000_000;
    s.wall_last_us -= 3_600_000_000;
    recs[2] = SignedRecord::sign(Record::Segment(s), &testkit::key("forger"));
    set_records(&mut b, &recs);
    b.remanifest();
    assert_fails(
        &b,
        &[
            "bundle.statement.chain",
            "chain.link.broken",
            "receipt.mismatch",
            "record.signature.invalid",
        ],
    );
}

#[test]
fn the_end_record_removed_reads_as_cut_off() {
    // Removed with its receipt and log entry: what a device that died before sending it
    // would leave. Everything up to the cut is proven; it is not tampering.
    let p = parts(1, "device", "server", 5, true);
    let cut = common::Parts {
        records: p.records[..6].to_vec(),
        receipts: p.receipts[..6].to_vec(),
        entries: p.entries[..7].to_vec(),
        segments: p.segments.clone(),
    };
    let b = cut.bundle("device", "server");
    let r = check(&b, trusted());
    assert!(failures(&r).is_empty(), "{:#?}", r.checks);
    assert!(matches!(r.verdict, Verdict::IntactCutOff { last_seq: 5, .. }));
}

#[test]
fn the_end_record_removed_but_its_receipt_kept_is_caught() {
    let mut b = good();
    let mut recs = records_of(&b);
    recs.pop();
    set_records(&mut b, &recs);
    b.remanifest();
    assert_fails(&b, &["bundle.statement.chain", "receipt.unmatched"]);
}

#[test]
fn a_forged_end_record() {
    let mut b = good();
    let mut recs = records_of(&b);
    let Record::End(mut e) = recs[6].record().clone() else { panic!() };
    e.reason = custody_format::record::EndReason::Error;
    e.message = Some("camera failed".into());
    recs[6] = SignedRecord::sign(Record::End(e), &testkit::key("forger"));
    set_records(&mut b, &recs);
    b.remanifest();
    assert_fails(&b, &["bundle.statement.chain", "receipt.mismatch", "record.signature.invalid"]);
}

#[test]
fn a_receipt_from_another_server() {
    let mut b = good();
    let mut receipts = receipts_of(&b);
    receipts[2] = Signed::sign(receipts[2].value().clone(), &testkit::key("other-server"));
    set_receipts(&mut b, &receipts);
    b.remanifest();
    assert_fails(&b, &["receipt.signature.invalid"]);
}

#[test]
fn a_log_entry_removed_from_the_proofs() {
    let mut b = good();
    let mut proofs = LogProof::parse_all(&b.files[bundle::LOG_PROOFS]).unwrap();
    proofs.remove(4);
    b.files.insert(bundle::LOG_PROOFS.into(), proofs.iter().flat_map(LogProof::encode).collect());
    b.remanifest();
    assert_fails(&b, &["bundle.statement.entries", "log.entry.missing"]);
}

#[test]
fn the_device_certificate_swapped() {
    let p = parts(1, "device", "server", 3, true);
    let mut b = p.bundle("device", "server");
    let other = parts(1, "another-device", "server", 3, true).bundle("another-device", "server");
    b.files.insert(bundle::DEVICE_CERT.into(), other.files[bundle::DEVICE_CERT].clone());
    b.remanifest();
    // The receipts and the enrollment entry name the device that really recorded it.
    assert_fails(
        &b,
        &[
            "log.proof.unrelated",
            "receipt.mismatch",
            "record.device_key.mismatch",
            "record.signature.invalid",
        ],
    );
}

#[test]
fn the_manifest_edited() {
    let mut b = good();
    let text = String::from_utf8(b.files[bundle::MANIFEST].clone()).unwrap();
    let edited = text.replacen(&text[..8], "00000000", 1);
    b.files.insert(bundle::MANIFEST.into(), edited.into_bytes());
    assert_fails(&b, &["bundle.file.mismatch"]);
}

#[test]
fn an_unlisted_file_added() {
    let mut b = good();
    b.files.insert("recording/extra.txt".into(), b"planted".to_vec());
    assert_fails(&b, &["bundle.file.unexpected", "bundle.file.unlisted"]);
}

#[test]
fn a_planted_segment_file() {
    let mut b = good();
    b.files.insert(bundle::segment_path(99), sealed(1, 99, 2000));
    b.remanifest();
    assert_fails(&b, &["segment.unexpected"]);
}

#[test]
fn the_whole_bundle_re_signed_with_fresh_keys_is_never_trusted() {
    let b =
        parts(1, "fresh-device", "fresh-server", 5, true).bundle("fresh-device", "fresh-server");
    // Consistent with itself ...
    let r = check(&b, None);
    assert!(failures(&r).is_empty());
    assert!(matches!(r.trust, Trust::Unconfirmed { .. }));
    // ... and never trusted against the real server key: its signer is not confirmed.
    let r = check(&b, trusted());
    assert!(failures(&r).is_empty());
    assert!(r.checks.iter().any(|c| c.code == "trust.server_key.untrusted"));
    assert!(matches!(r.trust, Trust::Untrusted { .. }));
    assert!(matches!(r.verdict, Verdict::SignerNotConfirmed { .. }), "{:?}", r.verdict);
}

/// Trusting by fingerprint (as read out over the phone) is as strict as trusting the key.
#[test]
fn a_fingerprint_as_trust_anchor_trusts_only_its_key() {
    let by_fingerprint = |b: &Bundle, text: &str| {
        let dir = tempfile::tempdir().unwrap();
        b.write(dir.path());
        let source = custody_verifier::Dir::open(dir.path()).unwrap();
        let fp = custody_format::ids::Fingerprint::parse(text).unwrap();
        verify(
            &source,
            &Options {
                trust: None,
                trust_fingerprint: Some(fp),
                opener: None,
                zone: None,
                tsa_trust: Vec::new(),
            },
        )
        .unwrap()
    };
    let server_fp = testkit::public("server").fingerprint().to_string();
    let r = by_fingerprint(&good(), &server_fp.to_lowercase());
    assert!(failures(&r).is_empty(), "{:?}", failures(&r));
    assert!(matches!(r.trust, Trust::Trusted { .. }), "{:?}", r.trust);
    assert_eq!(r.verdict, Verdict::IntactComplete);

    let other_fp = testkit::public("someone-else").fingerprint().to_string();
    let r = by_fingerprint(&good(), &other_fp);
    assert!(failures(&r).is_empty());
    assert!(r.checks.iter().any(|c| c.code == "trust.server_key.untrusted"));
    assert!(matches!(&r.trust, Trust::Untrusted { trusted, .. } if *trusted == other_fp));

    let resigned =
        parts(1, "fresh-device", "fresh-server", 5, true).bundle("fresh-device", "fresh-server");
    let r = by_fingerprint(&resigned, &server_fp);
    assert!(r.checks.iter().any(|c| c.code == "trust.server_key.untrusted"));
    assert!(matches!(r.verdict, Verdict::SignerNotConfirmed { .. }), "{:?}", r.verdict);
}

#[test]
fn the_server_key_file_replaced() {
    let mut b = good();
    b.files.insert(
        bundle::SERVER_KEY.into(),
        format!("{}\n", testkit::public("other-server")).into_bytes(),
    );
    b.remanifest();
    assert_fails(
        &b,
        &["cert.signature.invalid", "log.tree_head.invalid", "receipt.signature.invalid"],
    );
}

#[test]
fn a_flipped_tree_head() {
    let mut b = good();
    b.files.get_mut(bundle::TREE_HEAD).unwrap()[20] ^= 1;
    b.remanifest();
    let r = check(&b, trusted());
    assert!(failures(&r).contains(&"log.tree_head.invalid"), "{:#?}", r.checks);
    assert_eq!(r.verdict, Verdict::Tampered);
}

#[test]
fn a_receipt_removed_is_a_warning_not_silence() {
    let mut b = good();
    let mut receipts = receipts_of(&b);
    let removed = receipts.remove(2);
    set_receipts(&mut b, &receipts);
    // A forger takes its consistency proof out too.
    let proofs: Vec<_> = b
        .receipt_proofs()
        .into_iter()
        .filter(|p| p.tree_size != removed.value().tree_size)
        .collect();
    b.set_receipt_proofs(&proofs);
    b.remanifest();
    let r = check(&b, trusted());
    assert!(failures(&r).is_empty(), "{:#?}", r.checks);
    assert!(r.checks.iter().any(|c| c.code == "receipt.missing" && c.seq == Some(2)));
}

#[test]
fn records_received_after_a_revocation_are_flagged() {
    let p = parts(1, "device", "server", 4, true);
    // Revoked between segment 2's receipt and segment 3's, in log order.
    let mut e = LogEntry::new(EntryType::DeviceRevoked, p.entries[3].at_us + 1);
    e.device_key = Some(testkit::public("device"));
    e.actor = Some("admin".into());
    e.detail = Some("device seized".into());
    let p = common::receipted_with(
        p.records,
        p.segments,
        testkit::public("device"),
        "server",
        300_000,
        &[(2, e)],
    );
    let b = p.bundle("device", "server");
    let r = check(&b, trusted());
    assert_eq!(failures(&r), vec!["segment.after_revocation"]);
    assert!(r
        .checks
        .iter()
        .any(|c| c.code == "device.revoked" && c.message.contains("device seized")));
    let after: Vec<u64> = r
        .checks
        .iter()
        .filter(|c| c.code == "segment.after_revocation")
        .filter_map(|c| c.seq)
        .collect();
    assert_eq!(after, vec![3, 4, 5]);
}

#[test]
fn a_revocation_logged_after_every_record_flags_none_whatever_its_time() {
    // "After" is log order: a revocation entry appended after all the records' entries
    // flags none of them, even if the server's clock then read earlier.
    let mut p = parts(1, "device", "server", 4, true);
    let mut e = LogEntry::new(EntryType::DeviceRevoked, p.entries[3].at_us + 1);
    e.device_key = Some(testkit::public("device"));
    e.actor = Some("admin".into());
    e.detail = Some("device seized".into());
    p.entries.push(e);
    let r = check(&p.bundle("device", "server"), trusted());
    assert_eq!(failures(&r), Vec::<&str>::new(), "{:#?}", r.checks);
    assert!(r.checks.iter().any(|c| c.code == "device.revoked"));
}

#[test]
fn a_device_clock_ahead_of_the_server_is_stated() {
    let p = parts(1, "device", "server", 3, true);
    // Everything receipted 10 s earlier than the device's clock says it captured it.
    let p = common::receipted_with(
        p.records,
        p.segments,
        testkit::public("device"),
        "server",
        300_000 - 10_300_000,
        &[],
    );
    let b = p.bundle("device", "server");
    let r = check(&b, trusted());
    assert!(failures(&r).is_empty(), "{:#?}", r.checks);
    assert_eq!(r.clock_skew_us, Some(10_000_000));
    assert!(r.checks.iter().any(|c| c.code == "time.clock.skew"));
}

#[test]
fn not_a_bundle_is_an_error_not_a_verdict() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), "hi").unwrap();
    let source = custody_verifier::Dir::open(dir.path()).unwrap();
    assert!(verify(&source, &Options::default()).is_err());
}

#[test]
fn hostile_archives_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = good();
    b.files.insert("../escape".into(), b"x".to_vec());
    let tar = dir.path().join("evil.tar");
    b.write_tar(&tar, "x");
    let err = custody_verifier::Tar::open(&tar).unwrap_err().to_string();
    assert!(err.contains("unsafe path"), "{err}");
    std::fs::write(&tar, vec![0x41u8; 3000]).unwrap();
    assert!(custody_verifier::Tar::open(&tar).is_err());
}
