//! Browser segments (containers 3, 4, 5): with an opener, each hash-checked plaintext is
//! handed to the opener's demuxer and what it finds must equal the record; an opener that
//! cannot demux leaves the check not done, never passed.

mod common;

use std::collections::BTreeMap;

use custody_format::chain::{ChainBuilder, SegmentFields};
use custody_format::primitives::sha256;
use custody_format::record::{Container, EndReason};
use custody_format::report::{code, CheckState, Verdict};
use custody_format::testkit;
use custody_verifier::{verify, MediaFacts, Opener, Options, Report};

/// "Decrypts" by returning the bytes as they are (the bundle holds plaintext here), and
/// "demuxes" by looking the plaintext up in a table of what each segment holds.
struct Table {
    facts: Option<BTreeMap<Vec<u8>, Result<MediaFacts, String>>>,
}

impl Opener for Table {
    fn open(&self, ciphertext: &[u8]) -> Result<Vec<u8>, String> {
        Ok(ciphertext.to_vec())
    }

    fn media(&self, _: Container, plaintext: &[u8]) -> Option<Result<MediaFacts, String>> {
        let facts = self.facts.as_ref()?;
        Some(facts.get(plaintext).cloned().unwrap_or_else(|| Err("not a WebM file".into())))
    }
}

fn plaintext(n: u64) -> Vec<u8> {
    common::sealed(14, n, 5_000 + n as usize)
}

/// What testkit's segment `n` states about its packets.
fn stated(n: u64) -> MediaFacts {
    let s = testkit::segment(14, n);
    MediaFacts {
        stream_packets: s.stream_packets,
        video_frames: s.video_frames,
        packet_digest: s.packet_digest,
        picture: None,
    }
}

fn bundle(container: Container) -> common::Bundle {
    let dkey = testkit::key("phone");
    let mut header = testkit::header(14, &dkey);
    header.container = container;
    let (mut b, h) = ChainBuilder::start(header, dkey).unwrap();
    let mut records = vec![h];
    let mut sealed = BTreeMap::new();
    for n in 1..=3u64 {
        let p = plaintext(n);
        records.push(b.segment(SegmentFields {
            plaintext_len: p.len() as u64,
            plaintext_sha256: sha256(&[&p]),
            ciphertext_len: p.len() as u64,
            ciphertext_sha256: sha256(&[&p]),
            ..testkit::segment(14, n)
        }));
        sealed.insert(n, p);
    }
    records.push(b.end(testkit::T0_US + 6_100_000, EndReason::Stopped, None));
    common::receipted(records, sealed, testkit::public("phone"), "server").bundle("phone", "server")
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

fn with(code: &str, r: &Report) -> Vec<Option<u64>> {
    r.checks.iter().filter(|c| c.code == code).map(|c| c.seq).collect()
}

fn table(change: impl Fn(u64, &mut MediaFacts)) -> Table {
    let mut facts = BTreeMap::new();
    for n in 1..=3 {
        let mut f = stated(n);
        change(n, &mut f);
        facts.insert(plaintext(n), Ok(f));
    }
    Table { facts: Some(facts) }
}

#[test]
fn segments_whose_demuxed_packets_equal_their_records_pass() {
    let r = check(&bundle(Container::Webm), &table(|_, _| {}));
    assert_eq!(r.verdict, Verdict::IntactComplete, "{:#?}", r.checks);
    assert_eq!(with(code::SEGMENT_MEDIA_MATCH, &r), vec![None]);
    assert_eq!(r.container, Some(Container::Webm));
    assert_eq!(r.photo, None);
}

#[test]
fn each_disagreement_with_the_record_is_tampering_at_its_segment() {
    let digest = table(|n, f| {
        if n == 2 {
            f.packet_digest[0] ^= 1;
        }
    });
    let counts = table(|n, f| {
        if n == 3 {
            f.stream_packets[1] += 1;
        }
    });
    let frames = table(|n, f| {
        if n == 1 {
            f.video_frames -= 1;
        }
    });
    for (t, at) in [(digest, 2), (counts, 3), (frames, 1)] {
        let r = check(&bundle(Container::SelfContainedMp4), &t);
        assert_eq!(r.verdict, Verdict::Tampered, "{:#?}", r.checks);
        assert_eq!(with(code::SEGMENT_MEDIA_MISMATCH, &r), vec![Some(at)]);
        assert!(with(code::SEGMENT_MEDIA_MATCH, &r).is_empty());
    }
    // A plaintext that does not demux at all is not what the record says it is.
    let mut t = table(|_, _| {});
    t.facts.as_mut().unwrap().remove(&plaintext(2));
    let r = check(&bundle(Container::Webm), &t);
    assert_eq!(r.verdict, Verdict::Tampered);
    assert_eq!(with(code::SEGMENT_MEDIA_MISMATCH, &r), vec![Some(2)]);
}

#[test]
fn without_a_demuxer_browser_segments_are_not_checked_and_others_need_none() {
    let r = check(&bundle(Container::Webm), &Table { facts: None });
    assert_eq!(r.verdict, Verdict::CouldNotCheck, "{:#?}", r.checks);
    assert_eq!(with(code::SEGMENT_MEDIA_NOT_CHECKED, &r), vec![Some(1), Some(2), Some(3)]);
    assert!(r.checks.iter().all(|c| c.state != CheckState::Failure));
    // MPEG-TS segments are checked by their hashes alone, as before.
    let r = check(&bundle(Container::MpegTs), &Table { facts: None });
    assert_eq!(r.verdict, Verdict::IntactComplete, "{:#?}", r.checks);
    assert!(with(code::SEGMENT_MEDIA_NOT_CHECKED, &r).is_empty());
}

#[test]
fn a_photo_is_described_with_its_size_and_times() {
    let r = check(&bundle(Container::Photo), &table(|_, f| f.picture = Some((320, 240))));
    let p = r.photo.clone().expect("a photo");
    assert_eq!((p.width, p.height), (320, 240));
    assert_eq!(p.taken_at_us, testkit::segment(14, 1).wall_first_us);
    assert!(p.received_at_us.is_some());
    let line = custody_verifier::html::photo_line(&p);
    assert!(
        line.starts_with(
            "Photo, 320×240, taken 2024-05-01 12:00:00.050 UTC by the device clock, received "
        ),
        "{line}"
    );
    // A JPEG of another size than the header's is caught.
    let r = check(&bundle(Container::Photo), &table(|_, f| f.picture = Some((640, 480))));
    assert_eq!(r.verdict, Verdict::Tampered);
    assert_eq!(with(code::SEGMENT_MEDIA_MISMATCH, &r).len(), 3);
}
