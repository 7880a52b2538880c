//! The bundle-level vectors in `tests/vectors/bundles/` (`docs/format.md` 12): each a small
//! bundle (`bundle/`, or `bundle.tar`) and `expected.txt` with the verdict and every code
//! that is not ok. `generate()` makes them from fixed keys and times; one test checks that
//! the files on disk are exactly what it makes, another runs the verifier over every vector
//! on disk, reading only the files, and compares.
//!
//! Regenerate after a deliberate change with:
//!
//! ```text
//! CUSTODY_REGENERATE_VECTORS=1 cargo test -p custody-verifier --test bundle_vectors
//! ```

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{parts_sized, Bundle, Parts};
use custody_format::bundle;
use custody_format::chain::{ChainBuilder, SegmentFields};
use custody_format::ids::{PublicKey, RecordingId};
use custody_format::log::{EntryType, LogEntry, TreeHead};
use custody_format::primitives::sha256;
use custody_format::record::{CutReason, EndReason, Origin};
use custody_format::report::{CheckState, Verdict};
use custody_format::signed::Signed;
use custody_format::testkit;
use custody_verifier::{verify, Options, Report};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/bundles")
}

/// One vector: what it is for, the bundle, and whether it travels as a `.tar` (and under
/// which top directory).
struct Vector {
    comment: &'static str,
    bundle: Bundle,
    tar: Option<String>,
}

/// Tiny recordings: `n` segments of 40-odd bytes.
fn small(recording: u8, n: u64, ended: bool) -> Parts {
    parts_sized(recording, "device", "server", n, ended, |i| 40 + i as usize)
}

fn good() -> Bundle {
    small(1, 2, true).bundle("device", "server")
}

fn revoked_later() -> Parts {
    let mut p = small(1, 3, true);
    let mut e = LogEntry::new(EntryType::DeviceRevoked, testkit::T0_US + 3_000_000_000);
    e.device_key = Some(testkit::public("device"));
    e.actor = Some("admin".into());
    e.detail = Some("device seized".into());
    p.entries.push(e);
    p
}

fn clock_ahead() -> Bundle {
    let p = small(1, 2, true);
    common::receipted_with(
        p.records,
        p.segments,
        testkit::public("device"),
        "server",
        -10_000_000,
        &[],
    )
    .bundle("device", "server")
}

fn edit(mut b: Bundle, f: impl FnOnce(&mut Bundle)) -> Bundle {
    f(&mut b);
    b.remanifest();
    b
}

fn resign_receipt(b: &mut Bundle, i: usize, f: impl FnOnce(&mut custody_format::receipt::Receipt)) {
    let mut receipts = b.receipts();
    let mut v = receipts[i].value().clone();
    f(&mut v);
    receipts[i] = Signed::sign(v, &testkit::key("server"));
    b.set_receipts(&receipts);
}

fn chain_with(
    header: impl FnOnce(&mut custody_format::record::RecordingHeader),
    cut: impl Fn(u64) -> CutReason,
) -> Bundle {
    let dkey = testkit::key("device");
    let mut h = testkit::header(2, &dkey);
    header(&mut h);
    let (mut b, first) = ChainBuilder::start(h, dkey).unwrap();
    let mut records = vec![first];
    let mut segs = BTreeMap::new();
    for n in 1..=2u64 {
        let ct = common::sealed(2, n, 40 + n as usize);
        records.push(b.segment(SegmentFields {
            ciphertext_len: ct.len() as u64,
            ciphertext_sha256: sha256(&[&ct]),
            cut: cut(n),
            ..testkit::segment(2, n)
        }));
        segs.insert(n, ct);
    }
    records.push(b.end(testkit::T0_US + 5_000_000, EndReason::Stopped, None));
    common::receipted(records, segs, testkit::public("device"), "server").bundle("device", "server")
}

/// The parts of [`good`] with a time-stamp token entry after the end record, over the
/// server's signed head of every entry before it (`head` may alter that head first).
fn stamped_with(head: impl FnOnce(&mut TreeHead)) -> StampedParts {
    let mut p = small(1, 2, true);
    let leaves: Vec<[u8; 32]> =
        p.entries.iter().map(|e| custody_format::merkle::leaf_hash(&e.encode())).collect();
    let mut th = TreeHead {
        tree_size: leaves.len() as u64,
        root_hash: custody_format::merkle::root(&leaves),
        timestamp_us: testkit::T0_US + 70_000_000,
    };
    head(&mut th);
    let head_bytes = Signed::sign(th, &testkit::key("server")).to_bytes();
    let (token, root) = tsa_token(&head_bytes);
    let mut e = LogEntry::new(EntryType::TimeStampToken, testkit::T0_US + 71_000_000);
    e.label = Some("http://tsa.test/".into());
    e.tree_head = Some(head_bytes);
    e.tsa_token = Some(token);
    p.entries.push(e);
    StampedParts { parts: p, root }
}

fn stamped() -> StampedParts {
    stamped_with(|_| {})
}

/// Parts with a token, and the TSA root to ship beside them.
struct StampedParts {
    parts: Parts,
    root: Vec<u8>,
}

impl StampedParts {
    fn bundle(&self, device: &str, server: &str) -> Bundle {
        let mut b = self.parts.bundle(device, server);
        b.files.insert(bundle::TSA_ROOTS.into(), self.root.clone());
        b.remanifest();
        b
    }
}

/// An RFC 3161 token over `head_bytes` and its TSA's root (PEM). A TSA's token holds its
/// own time and serial number, so the one a vector on disk already holds for these very
/// head bytes is reused (the vectors stay the same bytes); only for new head bytes is one
/// made, by the test TSA (`openssl ts -reply`).
fn tsa_token(head_bytes: &[u8]) -> (Vec<u8>, Vec<u8>) {
    for name in ["tsa-clean", "tsa-stamped-head-forked"] {
        let base = dir().join(name).join("bundle");
        let (Ok(proofs), Ok(root)) = (
            std::fs::read(base.join(bundle::LOG_PROOFS)),
            std::fs::read(base.join(bundle::TSA_ROOTS)),
        ) else {
            continue;
        };
        for p in custody_format::bundle::LogProof::parse_all(&proofs).unwrap_or_default() {
            if let Ok(e) = LogEntry::decode(&p.entry) {
                if e.tree_head.as_deref() == Some(head_bytes) {
                    return (e.tsa_token.unwrap(), root);
                }
            }
        }
    }
    // Made once per head in a run, so that the vectors made from one head share its token.
    type Made = std::sync::Mutex<BTreeMap<Vec<u8>, (Vec<u8>, Vec<u8>)>>;
    static PKI: std::sync::OnceLock<custody_testkit::Pki> = std::sync::OnceLock::new();
    static MADE: std::sync::OnceLock<Made> = std::sync::OnceLock::new();
    let made = MADE.get_or_init(Default::default);
    let mut made = made.lock().unwrap();
    made.entry(head_bytes.to_vec())
        .or_insert_with(|| {
            let pki = PKI.get_or_init(|| custody_testkit::Pki::new().unwrap());
            let tsa = pki.tsa(custody_testkit::Variant::Good);
            (tsa.token(&sha256(&[head_bytes])).unwrap(), pki.root_pem().unwrap())
        })
        .clone()
}

fn generate() -> Vec<(&'static str, Vector)> {
    let v = |comment, bundle| Vector { comment, bundle, tar: None };
    let id1 = RecordingId([1; 16]).to_string();
    vec![
        ("clean-complete", v("A recording of two segments with its end record, every part present and consistent.", good())),
        ("clean-cut-off", v("A recording of two segments without an end record, as the server held it: the statement says so.", small(1, 2, false).bundle("device", "server"))),
        ("clean-no-segments", v("A header and an end record, nothing recorded between.", small(1, 0, true).bundle("device", "server"))),
        ("clean-tar", Vector { comment: "The clean bundle as one ustar archive under custody-bundle-<recording id>/.", bundle: good(), tar: Some(id1.clone()) }),
        ("version-1", v("A custody-bundle 1 bundle, made before completeness statements: at best could not check.", small(1, 2, true).bundle_v1("device", "server"))),
        ("clock-ahead", v("Every receipt precedes the device time of its capture by 10 s: the device clock is ahead; a warning.", clock_ahead())),
        ("revoked-later", v("The device was revoked after the recording: a warning, the recording stays valid.", revoked_later().bundle("device", "server"))),
        // --- completeness ---
        ("statement-suffix-dropped", v("The last segment and the end record removed with their receipts, log entries, receipt proofs and segment, the manifest regenerated.", edit(good(), |b| b.drop_records(&[2, 3])))),
        ("statement-middle-dropped", v("Segment 1 removed with everything naming it.", edit(good(), |b| b.drop_records(&[1])))),
        ("statement-end-dropped", v("The end record alone removed with its receipt and log entry: not passed off as cut off.", edit(good(), |b| b.drop_records(&[3])))),
        ("statement-revocation-dropped", v("The device-revoked entry removed from the log proofs.", edit(revoked_later().bundle("device", "server"), |b| b.drop_entries(|e| e.entry_type == EntryType::DeviceRevoked)))),
        ("statement-access-dropped", v("The retrieval entry (the head's last leaf) removed from the log proofs.", edit(good(), |b| b.drop_entries(|e| e.entry_type == EntryType::Access)))),
        ("statement-unstated", v("A custody-bundle 2 bundle whose retrieval entry carries no statement.", small(1, 2, true).bundle_unstated("device", "server"))),
        ("statement-downgraded", v("A custody-bundle 2 bundle with its marker rewritten to 1 and its receipt proofs removed: could not check, never intact.", edit(good(), |b| b.downgrade()))),
        // --- damage ---
        ("segment-flipped", v("One bit of segment 1 flipped, the manifest regenerated.", edit(good(), |b| b.files.get_mut(&bundle::segment_path(1)).unwrap()[3] ^= 1))),
        ("segment-flipped-in-transit", v("One bit of segment 1 flipped, the manifest left as it was.", { let mut b = good(); b.files.get_mut(&bundle::segment_path(1)).unwrap()[3] ^= 1; b })),
        ("segment-file-removed", v("Segment 2's sealed file removed, its record kept.", edit(good(), |b| { b.files.remove(&bundle::segment_path(2)); }))),
        ("segment-over-padded", v("Segment 1's file renamed with nine digits.", edit(good(), |b| { let f = b.files.remove(&bundle::segment_path(1)).unwrap(); b.files.insert(format!("{}/000000001.age", bundle::SEGMENTS_DIR), f); }))),
        ("file-unexpected", v("A file outside the layout, listed in the manifest.", edit(good(), |b| { b.files.insert("custody/notes.txt".into(), b"planted\n".to_vec()); }))),
        ("file-unlisted", v("A file outside the layout that the manifest does not list.", { let mut b = good(); b.files.insert("custody/notes.txt".into(), b"planted\n".to_vec()); b })),
        ("tar-wrong-directory", Vector { comment: "The clean bundle as a ustar archive whose top directory names another recording.", bundle: good(), tar: Some(RecordingId([2; 16]).to_string()) }),
        // --- parts absent, unreadable, partly readable ---
        ("marker-absent", v("No BUNDLE file: checked as version 2, not checked.", edit(good(), |b| { b.files.remove(bundle::MARKER); }))),
        ("marker-unknown", v("BUNDLE reads custody-bundle 4: a failure, checked as version 2.", edit(good(), |b| { b.files.insert(bundle::MARKER.into(), b"custody-bundle 4\n".to_vec()); }))),
        ("manifest-absent", v("No MANIFEST.sha256.", { let mut b = good(); b.files.remove(bundle::MANIFEST); b })),
        ("manifest-malformed", v("A manifest line with one space instead of two.", { let mut b = good(); let t = String::from_utf8(b.files[bundle::MANIFEST].clone()).unwrap().replacen("  ", " ", 1); b.files.insert(bundle::MANIFEST.into(), t.into_bytes()); b })),
        ("server-key-absent", v("No custody/server-key.txt: no server signature can be checked.", edit(good(), |b| { b.files.remove(bundle::SERVER_KEY); }))),
        ("server-key-no-newline", v("custody/server-key.txt without its newline.", edit(good(), |b| { b.files.insert(bundle::SERVER_KEY.into(), testkit::public("server").to_string().into_bytes()); }))),
        ("certificate-absent", v("No device certificate: the chain is checked against the header's own key.", edit(good(), |b| { b.files.remove(bundle::DEVICE_CERT); }))),
        ("certificate-trailing-bytes", v("A device certificate followed by one stray byte.", edit(good(), |b| b.files.get_mut(bundle::DEVICE_CERT).unwrap().push(0)))),
        ("tree-head-absent", v("No tree head: nothing in the log can be proven.", edit(good(), |b| { b.files.remove(bundle::TREE_HEAD); }))),
        ("tree-head-truncated", v("The tree head cut short by one byte.", edit(good(), |b| { b.files.get_mut(bundle::TREE_HEAD).unwrap().pop(); }))),
        ("records-absent", v("No records.bin.", edit(good(), |b| { b.files.remove(bundle::RECORDS); }))),
        ("records-truncated", v("records.bin cut inside the end record: the records before it are checked.", edit(good(), |b| { let r = b.files.get_mut(bundle::RECORDS).unwrap(); r.truncate(r.len() - 30); }))),
        ("receipts-absent", v("No receipts.bin: receipts, times and consistency are not checked.", edit(good(), |b| { b.files.remove(bundle::RECEIPTS); }))),
        ("receipts-truncated", v("receipts.bin cut inside its third receipt.", edit(good(), |b| { let r = b.files.get_mut(bundle::RECEIPTS).unwrap(); let keep = b_len(&good().receipts()[..2]) + 20; r.truncate(keep); }))),
        ("log-proofs-absent", v("No log-proofs.bin.", edit(good(), |b| { b.files.remove(bundle::LOG_PROOFS); }))),
        ("log-proofs-garbage-tail", v("log-proofs.bin with seven zero bytes after its last proof.", edit(good(), |b| b.files.get_mut(bundle::LOG_PROOFS).unwrap().extend_from_slice(&[0; 7])))),
        ("receipt-proofs-absent", v("No receipt-proofs.bin.", edit(good(), |b| { b.files.remove(bundle::RECEIPT_PROOFS); }))),
        ("receipt-proofs-wrong-kind", v("receipt-proofs.bin holding a log proof.", edit(good(), |b| { let p = b.log_proofs()[0].encode(); b.files.insert(bundle::RECEIPT_PROOFS.into(), p); }))),
        // --- re-signed inconsistencies (by the test server's or device's own key) ---
        ("receipt-forked-root", v("A receipt re-signed by the server with another tree root: the log forked.", edit(good(), |b| resign_receipt(b, 1, |r| r.tree_root[0] ^= 1)))),
        ("receipt-other-device", v("A receipt re-signed by the server naming another device key.", edit(good(), |b| resign_receipt(b, 1, |r| r.device_key = testkit::public("someone-else"))))),
        ("receipt-time-differs", v("A receipt re-signed by the server one microsecond off its log entry's time.", edit(good(), |b| resign_receipt(b, 2, |r| r.received_at_us += 1)))),
        ("receipt-duplicated", v("A receipt repeated.", edit(good(), |b| { let mut r = b.receipts(); r.insert(1, r[1].clone()); b.set_receipts(&r); }))),
        ("receipts-reordered", v("Two receipts swapped.", edit(good(), |b| { let mut r = b.receipts(); r.swap(1, 2); b.set_receipts(&r); }))),
        ("consistency-proof-missing", v("A receipt's consistency proof removed.", edit(good(), |b| { let mut p = b.receipt_proofs(); p.remove(0); b.set_receipt_proofs(&p); }))),
        ("consistency-proof-repeated", v("A consistency proof repeated.", edit(good(), |b| { let mut p = b.receipt_proofs(); p.insert(0, p[0].clone()); b.set_receipt_proofs(&p); }))),
        ("log-proof-duplicated", v("A log proof repeated.", edit(good(), |b| { let mut p = b.log_proofs(); p.insert(1, p[1].clone()); b.set_log_proofs(&p); }))),
        ("cut-final-not-last", v("Segment 1 of 2 signed by the device as cut 3 (final).", chain_with(|_| {}, |n| if n == 1 { CutReason::Final } else { CutReason::Keyframe }))),
        ("import-without-file", v("A header signed by the device with origin 2 (imported) and no imported file.", chain_with(|h| h.origin = Origin::Imported, |_| CutReason::Keyframe))),
        ("no-recipients", v("A header signed by the device with an empty recipient list.", chain_with(|h| h.recipients.clear(), |_| CutReason::Keyframe))),
        // --- time-stamp tokens (custody-bundle 3) ---
        ("tsa-clean", v("A custody-bundle 3 bundle: an RFC 3161 token over the log head after the end record covers every record, its stamped head proven consistent, the TSA root shipped as custody/tsa-roots.pem (the test TSA stamped it when the vector was made, years after the vectors' fixed server times: a clock warning).", stamped().bundle("device", "server"))),
        ("tsa-token-dropped", v("The time-stamp token entry removed from the log proofs, the manifest regenerated: the statement counted it.", edit(stamped().bundle("device", "server"), |b| b.drop_entries(|e| e.entry_type == EntryType::TimeStampToken)))),
        ("tsa-downgraded", v("A custody-bundle 3 bundle relabelled custody-bundle 2, its token entry and TSA roots removed: the statement still counts the token.", edit(stamped().bundle("device", "server"), |b| { b.drop_entries(|e| e.entry_type == EntryType::TimeStampToken); b.files.insert(bundle::MARKER.into(), b"custody-bundle 2\n".to_vec()); b.files.remove(bundle::TSA_ROOTS); }))),
        ("tsa-stamped-head-forked", v("The token's stamped head re-signed by the server with another root (and a token over it): its tree is not a prefix of the bundle's head.", stamped_with(|h| h.root_hash[0] ^= 1).bundle("device", "server"))),
        ("other-server", v("A whole bundle consistent with itself but made by another server: the signer is not confirmed.", parts_sized(1, "device", "other-server", 2, true, |i| 40 + i as usize).bundle("device", "other-server"))),
    ]
}

fn b_len(r: &[Signed<custody_format::receipt::Receipt>]) -> usize {
    r.iter().map(|x| x.to_bytes().len()).sum()
}

/// A bundle's outcome as `expected.txt` states it.
fn outcome(r: &Report) -> (String, String) {
    let verdict = match &r.verdict {
        Verdict::IntactComplete => "intact-complete".to_string(),
        Verdict::IntactCutOff { last_seq, .. } => format!("intact-cut-off {last_seq}"),
        Verdict::Tampered => "tampered".to_string(),
        Verdict::CouldNotCheck => "could-not-check".to_string(),
        Verdict::SignerNotConfirmed { .. } => "signer-not-confirmed".to_string(),
        #[allow(unreachable_patterns)]
        other => format!("{other:?}"),
    };
    let mut codes: Vec<String> = r
        .checks
        .iter()
        .filter(|c| c.state != CheckState::Ok)
        .map(|c| {
            let state = match c.state {
                CheckState::Warning => "warning",
                CheckState::Failure => "failure",
                CheckState::NotChecked => "not-checked",
                CheckState::Ok => "ok",
            };
            format!("{state}:{}", c.code)
        })
        .collect();
    codes.sort();
    codes.dedup();
    (verdict, codes.join(" "))
}

fn run(path: &Path, trust: PublicKey) -> Report {
    let source = custody_verifier::source::open(path).unwrap();
    verify(source.as_ref(), &Options { trust: Some(trust), ..Default::default() }).unwrap()
}

/// Every file of the vectors, path relative to `dir()` → bytes.
fn render() -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let scratch = tempfile::tempdir().unwrap();
    let trust = testkit::public("server");
    for (name, v) in generate() {
        let base = PathBuf::from(name);
        let target = match &v.tar {
            Some(top) => {
                let tar = scratch.path().join(format!("{name}.tar"));
                v.bundle.write_tar(&tar, top);
                out.insert(base.join("bundle.tar"), std::fs::read(&tar).unwrap());
                tar
            }
            None => {
                let d = scratch.path().join(name);
                v.bundle.write(&d);
                for (p, b) in &v.bundle.files {
                    out.insert(base.join("bundle").join(p), b.clone());
                }
                d
            }
        };
        let (verdict, codes) = outcome(&run(&target, trust));
        let mut text = String::new();
        for line in v.comment.lines() {
            text.push_str(&format!("comment: {line}\n"));
        }
        text.push_str(&format!(
            "kind: bundle\ntrust: {trust}\nexpect: {verdict}\ncodes: {codes}\n"
        ));
        out.insert(base.join("expected.txt"), text.into_bytes());
    }
    out
}

fn on_disk(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(root).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// One test, so that regenerating comes before reading.
#[test]
fn the_bundle_vectors_are_what_the_generator_makes_and_each_holds() {
    generated_and_on_disk_agree();
    every_bundle_vector_gives_its_verdict_and_codes();
}

fn generated_and_on_disk_agree() {
    let made = render();
    assert!(made.keys().filter(|p| p.ends_with("expected.txt")).count() >= 25);
    if std::env::var_os("CUSTODY_REGENERATE_VECTORS").is_some() {
        let _ = std::fs::remove_dir_all(dir());
        for (p, b) in &made {
            let path = dir().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b).unwrap();
        }
    }
    let disk = on_disk(&dir());
    for (p, b) in &made {
        let found = disk
            .get(p)
            .unwrap_or_else(|| panic!("{} is missing; regenerate the vectors", p.display()));
        assert!(
            found == b,
            "{} differs from what the generator makes; regenerate the vectors",
            p.display()
        );
    }
    for p in disk.keys() {
        assert!(
            made.contains_key(p),
            "{} is not made by the generator (an unknown vector)",
            p.display()
        );
    }
}

/// Reads only the files: what an independent verifier would do with them.
fn every_bundle_vector_gives_its_verdict_and_codes() {
    let mut n = 0;
    for entry in std::fs::read_dir(dir()).unwrap() {
        let d = entry.unwrap().path();
        let text = std::fs::read_to_string(d.join("expected.txt"))
            .unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}:")))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("{}: no {k}", d.display()))
        };
        assert_eq!(field("kind"), "bundle");
        let trust = PublicKey::parse(&field("trust")).unwrap();
        let target =
            if d.join("bundle.tar").exists() { d.join("bundle.tar") } else { d.join("bundle") };
        let (verdict, codes) = outcome(&run(&target, trust));
        assert_eq!((verdict, codes), (field("expect"), field("codes")), "{}", d.display());
        n += 1;
    }
    assert!(n >= 25, "only {n} bundle vectors");
}
