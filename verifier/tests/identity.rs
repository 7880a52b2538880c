//! Verification with the legal team's identity: every segment is decrypted (really, with
//! age) and its plaintext checked against what the device's record states.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};

use custody_format::chain::{ChainBuilder, SegmentFields};
use custody_format::primitives::sha256;
use custody_format::record::EndReason;
use custody_format::report::{CheckState, Verdict};
use custody_format::testkit;
use custody_verifier::{verify, Opener, Options, Report};

/// Decrypts with an age X25519 identity, as the CLI does.
struct Age(age::x25519::Identity);

impl Opener for Age {
    fn open(&self, ciphertext: &[u8]) -> Result<Vec<u8>, String> {
        let decryptor = age::Decryptor::new(ciphertext).map_err(|e| e.to_string())?;
        let mut reader = decryptor
            .decrypt(std::iter::once(&self.0 as &dyn age::Identity))
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        reader.read_to_end(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    fn recipients(&self) -> Vec<String> {
        vec![self.0.to_public().to_string()]
    }
}

fn seal(plaintext: &[u8], to: &age::x25519::Recipient) -> Vec<u8> {
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(to as &dyn age::Recipient)).unwrap();
    let mut out = Vec::new();
    let mut w = encryptor.wrap_output(&mut out).unwrap();
    w.write_all(plaintext).unwrap();
    w.finish().unwrap();
    out
}

/// Three segments sealed to `case`; the device's record of segment `lie_at` (if any) states
/// the plaintext hash of other bytes than the ones it sealed. Every record is signed by the
/// device and receipted by the server, so only decryption can tell.
fn bundle(case: &age::x25519::Identity, lie_at: Option<u64>) -> common::Bundle {
    let dkey = testkit::key("device");
    let (mut b, header) = ChainBuilder::start(testkit::header(3, &dkey), dkey.clone()).unwrap();
    let mut records = vec![header];
    let mut sealed = BTreeMap::new();
    for n in 1..=3u64 {
        let plaintext = common::sealed(3, n, 40_000 + n as usize);
        let ct = seal(&plaintext, &case.to_public());
        let stated =
            if lie_at == Some(n) { sha256(&[b"other bytes"]) } else { sha256(&[&plaintext]) };
        let fields = SegmentFields {
            plaintext_len: plaintext.len() as u64,
            plaintext_sha256: stated,
            ciphertext_len: ct.len() as u64,
            ciphertext_sha256: sha256(&[&ct]),
            ..testkit::segment(3, n)
        };
        records.push(b.segment(fields));
        sealed.insert(n, ct);
    }
    records.push(b.end(testkit::T0_US + 6_100_000, EndReason::Stopped, None));
    common::receipted(records, sealed, testkit::public("device"), "server")
        .bundle("device", "server")
}

fn check(b: &common::Bundle, opener: &dyn Opener) -> Report {
    let dir = tempfile::tempdir().unwrap();
    b.write(dir.path());
    let source = custody_verifier::Dir::open(dir.path()).unwrap();
    let options = Options {
        trust: Some(testkit::public("server")),
        trust_fingerprint: None,
        opener: Some(opener),
        zone: None,
        tsa_trust: Vec::new(),
    };
    verify(&source, &options).unwrap()
}

fn failures(r: &Report) -> Vec<(&'static str, Option<u64>)> {
    r.checks.iter().filter(|c| c.state == CheckState::Failure).map(|c| (c.code, c.seq)).collect()
}

#[test]
fn segments_that_decrypt_to_what_their_records_state_pass() {
    let case = age::x25519::Identity::generate();
    let r = check(&bundle(&case, None), &Age(case.clone()));
    assert_eq!(failures(&r), vec![], "{:#?}", r.checks);
    assert_eq!(r.verdict, Verdict::IntactComplete);
}

/// A device that sealed other bytes than it recorded (a fault or a lie at the source) is
/// caught only by decrypting: the signatures, receipts and ciphertext hashes all hold.
#[test]
fn a_segment_that_decrypts_to_other_bytes_than_its_record_states_is_caught() {
    let case = age::x25519::Identity::generate();
    let b = bundle(&case, Some(2));
    let r = check(&b, &Age(case.clone()));
    assert_eq!(failures(&r), vec![("segment.plaintext.mismatch", Some(2))], "{:#?}", r.checks);
    assert_eq!(r.verdict, Verdict::Tampered);

    // Without the identity the same bundle verifies: nothing else is wrong with it.
    let dir = tempfile::tempdir().unwrap();
    b.write(dir.path());
    let source = custody_verifier::Dir::open(dir.path()).unwrap();
    let options = Options {
        trust: Some(testkit::public("server")),
        trust_fingerprint: None,
        opener: None,
        zone: None,
        tsa_trust: Vec::new(),
    };
    let r = verify(&source, &options).unwrap();
    assert_eq!(r.verdict, Verdict::IntactComplete, "{:#?}", r.checks);
}

/// With the wrong identity nothing decrypts, and that is said once, naming the case key the
/// recording is sealed to and the one given.
#[test]
fn the_wrong_identity_decrypts_nothing_and_says_so() {
    let case = age::x25519::Identity::generate();
    let wrong = age::x25519::Identity::generate();
    let r = check(&bundle(&case, None), &Age(wrong.clone()));
    let failed: Vec<_> = r.checks.iter().filter(|c| c.code == "segment.decrypt.failed").collect();
    assert_eq!(failed.len(), 1, "{:#?}", r.checks);
    assert_eq!(failed[0].state, CheckState::NotChecked);
    assert!(failed[0].message.contains("none of the 3 segments"), "{}", failed[0].message);
    assert!(failed[0].message.contains("age1examplerecipient"), "{}", failed[0].message);
    assert!(failed[0].message.contains(&wrong.to_public().to_string()), "{}", failed[0].message);
    assert!(r.checks.iter().all(|c| c.code != "segment.plaintext.match"), "{:#?}", r.checks);
}
