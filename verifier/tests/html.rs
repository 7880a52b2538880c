//! The HTML court report, rendered from real verification reports of built bundles.

mod common;

use std::collections::BTreeMap;

use common::{parts, Bundle};
use custody_format::chain::{ChainBuilder, SegmentFields};
use custody_format::record::{EndReason, ImportedFile, Origin};
use custody_format::report::{code, Check, Verdict};
use custody_format::testkit;
use custody_verifier::html::{render, HtmlExtras, Section};
use custody_verifier::{verify, Opener, Options, Report, Zone};

fn report_of(b: &Bundle) -> Report {
    let dir = tempfile::tempdir().unwrap();
    b.write(dir.path());
    let source = custody_verifier::Dir::open(dir.path()).unwrap();
    verify(&source, &Options { trust: Some(testkit::public("server")), ..Options::default() })
        .unwrap()
}

fn marks(html: &str) -> usize {
    html.matches("<rect class=\"segment").count()
}

#[test]
fn verdict_comes_first_with_one_mark_per_segment() {
    let report = report_of(&parts(1, "device", "server", 7, true).bundle("device", "server"));
    let html = render(&report, &HtmlExtras::default());
    let verdict = html.find("Verdict: <strong>Intact and complete</strong>").unwrap();
    assert!(verdict < html.find("<svg").unwrap() && verdict < html.find("Every check").unwrap());
    assert!(html.contains(&report.summary));
    assert_eq!(marks(&html), 7);
    assert_eq!(html.matches("<circle class=\"receipt\"").count(), 7);
    assert!(!html.contains("class=\"cutoff\""));
    // Every check is listed with its code.
    for c in &report.checks {
        assert!(html.contains(&format!("data-code=\"{}\"", c.code)), "{}", c.code);
    }
    // Self-contained: nothing is fetched from elsewhere, and no script is needed.
    assert!(!html.contains("<script") && !html.contains("src=\"http") && !html.contains("url("));
}

#[test]
fn cut_off_point_is_marked() {
    let report = report_of(&parts(2, "device", "server", 4, false).bundle("device", "server"));
    let html = render(&report, &HtmlExtras::default());
    assert!(html.contains("Verdict: <strong>Intact but cut off</strong>"));
    assert!(html.contains("class=\"cutoff\"") && html.contains("cut off after segment 4"));
    assert_eq!(marks(&html), 4);
}

#[test]
fn hostile_bundle_text_is_escaped() {
    let mut p = parts(3, "device", "server", 2, true);
    // A label in the custody log, carried by the bundle and proven by the server's log.
    p.entries[0].label = Some("<script>alert('x')</script>".into());
    let mut report = report_of(&p.bundle("device", "server"));
    assert!(report
        .custody_log
        .iter()
        .any(|(_, e)| e.label.as_deref().is_some_and(|l| l.contains("<script>"))));
    report.device = Some(("F".into(), "\"><img src=x onerror=alert(1)>".into()));
    let extras = HtmlExtras {
        thumbnails: [(1, b"\x89PNG\r\n\x1a\nxyz".to_vec()), (2, b"<svg onload=alert(1)>".to_vec())]
            .into_iter()
            .collect(),
        sections: vec![Section {
            title: "<b>Export</b>".into(),
            summary: "s<".into(),
            checks: vec![Check::new(code::SEGMENT_HASH_MATCH, "</td><script>x</script>")],
        }],
    };
    let html = render(&report, &extras);
    assert!(!html.contains("<script"), "unescaped script tag");
    assert!(!html.contains("<img src=x"));
    assert!(!html.contains("<b>Export"));
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    // A PNG thumbnail is inlined; bytes that are no image are not shown at all.
    assert_eq!(html.matches("src=\"data:image/png;base64,iVBORw0KGgp4eXo=\"").count(), 1);
    assert!(!html.contains("onload"));
}

#[test]
fn tampered_verdict_lists_the_failure() {
    let mut b = parts(4, "device", "server", 3, true).bundle("device", "server");
    b.files.get_mut(&custody_format::bundle::segment_path(2)).unwrap()[5] ^= 1;
    b.remanifest();
    let html = render(&report_of(&b), &HtmlExtras::default());
    assert!(html.contains("Verdict: <strong>Tampered or invalid</strong>"));
    assert!(html.contains("class=\"verdict tampered\""));
    assert!(html.contains("<tr class=\"check failure\" data-code=\"segment.hash.mismatch\">"));
}

#[test]
fn gaps_in_device_time_are_marked() {
    let mut report = report_of(&parts(5, "device", "server", 4, true).bundle("device", "server"));
    let html = render(&report, &HtmlExtras::default());
    assert!(!html.contains("<rect class=\"gap\""));
    // Segments 3 and 4 captured 30 s after segment 2 ended.
    for s in report.segments.iter_mut().filter(|s| s.seq >= 3) {
        s.wall_first_us += 30_000_000;
        s.wall_last_us += 30_000_000;
    }
    let html = render(&report, &HtmlExtras::default());
    assert_eq!(html.matches("<rect class=\"gap\" data-after=\"2\"").count(), 1);
    assert_eq!(html.matches("<tr class=\"after-gap\" data-seq=\"3\">").count(), 1);
}

#[test]
fn an_unconfirmed_signer_is_not_shown_as_settled() {
    let b = parts(6, "device", "server", 2, true).bundle("device", "server");
    let dir = tempfile::tempdir().unwrap();
    b.write(dir.path());
    let source = custody_verifier::Dir::open(dir.path()).unwrap();
    let report = verify(&source, &Options::default()).unwrap();
    let html = render(&report, &HtmlExtras::default());
    assert!(html.contains("Verdict: <strong>Intact and complete</strong>"));
    assert!(html.contains("class=\"verdict cutoff\"") && html.contains("UNCONFIRMED"));
}

/// A fixed zone for the tests (Chicago in May): the CLI looks real ones up with `--tz`.
struct Chicago;

impl Zone for Chicago {
    fn name(&self) -> &str {
        "America/Chicago"
    }
    fn offset_at(&self, _us: i64) -> (i32, String) {
        (-5 * 3600, "CDT".into())
    }
}

fn report_with(
    b: &Bundle,
    trust: &str,
    zone: Option<&dyn Zone>,
    opener: Option<&dyn Opener>,
) -> Report {
    let dir = tempfile::tempdir().unwrap();
    b.write(dir.path());
    let source = custody_verifier::Dir::open(dir.path()).unwrap();
    let options =
        Options { trust: Some(testkit::public(trust)), zone, opener, ..Options::default() };
    verify(&source, &options).unwrap()
}

#[test]
fn the_verdict_says_what_and_when() {
    let b = parts(11, "device", "server", 7, true).bundle("device", "server");
    let report = report_of(&b);
    // Live, by the device's label, from the header's device time to the end record's, and
    // the media's length.
    assert!(
        report.summary.starts_with(
            "Intact and complete: the live recording by “observer-7”, 2024-05-01 12:00:00 to \
             12:00:14 UTC by the device clock (14.0 s), is proven present and unaltered"
        ),
        "{}",
        report.summary
    );
    let facts = report.recording.as_ref().unwrap();
    assert_eq!(facts.origin, custody_format::record::Origin::Live);
    assert_eq!(facts.duration_us, 14_000_000);
    assert_eq!(facts.started.local, None);
    let html = render(&report, &HtmlExtras::default());
    let what = html.find("<section id=\"what-and-when\">").unwrap();
    assert!(
        html.find("<section id=\"verdict\"").unwrap() < what && what < html.find("<svg").unwrap()
    );
    assert!(html.contains("<tr><th>Recording</th><td>Live, captured by “observer-7”</td></tr>"));
    assert!(html.contains("<tr><th>Duration</th><td>14.0 s of media in 7 segments</td></tr>"));

    // The report says when it was made, by which verifier, over which bundle: a directory
    // by its manifest's SHA-256, said to be that.
    assert!(report.about.verifier.starts_with("custody-verifier "));
    let manifest =
        custody_format::primitives::sha256(&[&b.files[custody_format::bundle::MANIFEST]]);
    let manifest = manifest.iter().map(|x| format!("{x:02x}")).collect::<String>();
    assert_eq!(report.about.manifest_sha256.as_deref(), Some(manifest.as_str()));
    assert!(report.about.archive.is_none());
    let now = custody_format::time::now_us();
    assert!((now - report.about.made_at.us).abs() < 600_000_000, "{:?}", report.about.made_at);
    assert!(html.contains(&format!(
        "whose MANIFEST.sha256 (the SHA-256 of every file) has SHA-256 {manifest}"
    )));
    assert!(html.contains(&format!("by {}", report.about.verifier)));
}

#[test]
fn a_time_zone_adds_local_times_and_nothing_else() {
    let b = parts(12, "device", "server", 3, true).bundle("device", "server");
    let utc_only = report_of(&b);
    let report = report_with(&b, "server", Some(&Chicago), None);
    assert!(
        report.summary.contains(
            "2024-05-01 12:00:00 to 12:00:06 UTC (07:00:00 to 07:00:06 CDT, America/Chicago) by \
             the device clock"
        ),
        "{}",
        report.summary
    );
    assert_eq!(report.about.time_zone.as_deref(), Some("America/Chicago"));
    assert_eq!(report.verdict, utc_only.verdict);
    assert_eq!(report.checks, utc_only.checks);
    let html = render(&report, &HtmlExtras::default());
    assert!(html.contains("2024-05-01 07:00:00 -05:00 CDT, America/Chicago"));
    assert!(html.contains("<tr><th>Local time</th><td>shown in America/Chicago"));
}

#[test]
fn a_cut_off_names_its_last_proven_second_and_what_proves_it() {
    let report = report_of(&parts(13, "device", "server", 4, false).bundle("device", "server"));
    assert!(
        matches!(report.verdict, Verdict::IntactCutOff { last_seq: 4, .. }),
        "{:#?}",
        report.checks
    );
    // Segment 4's last packet, by the device clock, and its receipt by the server's.
    assert!(
        report.summary.contains(
            "Intact but cut off after record 4: the live recording by “observer-7”, started \
             2024-05-01 12:00:00 UTC by the device clock (8.0 s), is proven unaltered up to \
             there; its last proven second is 2024-05-01 12:00:08 UTC by the device clock, \
             received by the server 2024-05-01 12:00:08 UTC."
        ),
        "{}",
        report.summary
    );
    assert!(report.summary.contains("held no more than this when the bundle was made"));
    assert!(!report.summary.contains("not a sign of tampering"));
    let html = render(&report, &HtmlExtras::default());
    assert!(html.contains(
        "<tr><th>Last proven second</th><td>2024-05-01 12:00:08 UTC<br><span class=\"note\">record 4, by the device clock</span>"
    ));
}

#[test]
fn a_tampered_verdict_says_what_and_where_first_and_marks_it() {
    let mut b = parts(14, "device", "server", 3, true).bundle("device", "server");
    b.files.get_mut(&custody_format::bundle::segment_path(2)).unwrap()[5] ^= 1;
    // Damaged in transit: the manifest is not rewritten.
    let report = report_of(&b);
    assert_eq!(report.verdict, Verdict::Tampered);
    assert!(
        report.summary.starts_with(
            "Tampered: segment 2's sealed file differs from its record (segment.hash.mismatch), \
             and 1 more check failed."
        ),
        "{}",
        report.summary
    );
    assert!(report.summary.contains("Damage in transit is possible: fetch the bundle again"));
    assert!(report.summary.contains("`sha256sum -c MANIFEST.sha256`"));
    assert!(!report.summary.contains("trusted server key"), "{}", report.summary);
    assert_eq!(report.failed_positions, vec![2]);

    // The intact segments keep their thumbnails; the failed one is marked in the table and
    // on the timeline.
    let png = b"\x89PNG\r\n\x1a\nthumb".to_vec();
    let extras = HtmlExtras {
        thumbnails: [(1, png.clone()), (3, png)].into_iter().collect(),
        sections: Vec::new(),
    };
    let html = render(&report, &extras);
    assert!(html.contains("Verdict: <strong>Tampered or invalid</strong>"));
    assert!(html.contains("<tr class=\"failed\" data-seq=\"2\">"));
    assert_eq!(html.matches("<tr class=\"failed").count(), 1);
    assert!(
        html.contains("<tr class=\"\" data-seq=\"1\">")
            && html.contains("<tr class=\"\" data-seq=\"3\">")
    );
    assert_eq!(html.matches("<rect class=\"segment failed\"").count(), 1);
    assert!(html.contains("<rect class=\"segment failed\" data-seq=\"2\""));
    assert_eq!(html.matches("<rect class=\"segment\" ").count(), 2);
    assert!(
        html.contains("alt=\"first frame of segment 1\"")
            && html.contains("alt=\"first frame of segment 3\"")
    );
    assert!(html.contains("Failed a check: position 2. Every other segment below verified."));
    assert!(html.contains("<code>sha256sum -c MANIFEST.sha256</code>"));
}

#[test]
fn a_trust_anchor_that_does_not_match_is_signer_not_confirmed() {
    let b = parts(15, "device", "server", 3, true).bundle("device", "server");
    let report = report_with(&b, "someone-else", None, None);
    let found = testkit::public("server").fingerprint().to_string();
    let expected = testkit::public("someone-else").fingerprint().to_string();
    assert_eq!(
        report.verdict,
        Verdict::SignerNotConfirmed {
            found_fingerprint: found.clone(),
            expected_fingerprint: expected.clone()
        }
    );
    assert!(
        report.summary.starts_with(&format!(
            "Signer not confirmed: the bundle is signed by server key {found}, not by the key given to trust ({expected})."
        )),
        "{}",
        report.summary
    );
    assert!(!report.summary.contains("Tampered"));
    let html = render(&report, &HtmlExtras::default());
    assert!(html.contains("Verdict: <strong>Signer not confirmed</strong>"));
    assert!(html.contains("class=\"verdict signer\""));
    assert!(!html.contains("Tampered or invalid"));

    // A real failure besides still makes it tampered.
    let mut bad = b.clone();
    bad.files.get_mut(&custody_format::bundle::segment_path(1)).unwrap()[5] ^= 1;
    bad.remanifest();
    assert_eq!(report_with(&bad, "someone-else", None, None).verdict, Verdict::Tampered);
}

/// An imported recording: a file sealed as fast as it could be read, so its device times
/// span the sealing, not the media.
fn imported() -> Bundle {
    let dkey = testkit::key("device");
    let mut header = testkit::header(16, &dkey);
    header.origin = Origin::Imported;
    header.input = "phone-video.mp4".into();
    header.imported_file = Some(ImportedFile { sha256: [7; 32], len: 1_234_567 });
    let (mut b, first) = ChainBuilder::start(header, dkey.clone()).unwrap();
    let mut records = vec![first];
    let mut sealed = BTreeMap::new();
    for n in 1..=3u64 {
        let ct = common::sealed(16, n, 3000);
        let at = testkit::T0_US + n as i64 * 1_000;
        let fields = SegmentFields {
            wall_first_us: at,
            wall_last_us: at + 500,
            ciphertext_len: ct.len() as u64,
            ciphertext_sha256: custody_format::primitives::sha256(&[&ct]),
            ..testkit::segment(16, n)
        };
        records.push(b.segment(fields));
        sealed.insert(n, ct);
    }
    records.push(b.end(testkit::T0_US + 10_000, EndReason::InputEnded, None));
    common::receipted(records, sealed, testkit::public("device"), "server")
        .bundle("device", "server")
}

#[test]
fn an_imported_recording_says_so_with_its_file_and_length() {
    let report = report_of(&imported());
    assert_eq!(report.verdict, Verdict::IntactComplete, "{:#?}", report.checks);
    let sha = "07".repeat(32);
    assert!(
        report.summary.starts_with(&format!(
            "Intact and complete: the recording imported by “observer-7” from the file “phone-video.mp4” \
             (SHA-256 {sha}, 1234567 bytes; 6.0 s of media), sealed 2024-05-01 12:00:00 UTC by the device clock"
        )),
        "{}",
        report.summary
    );
    assert!(report.summary.contains("Its times are claims"));
    assert!(!report.summary.contains("live"));
    let f = report.recording.as_ref().unwrap();
    assert_eq!(f.imported.as_ref().unwrap().name, "phone-video.mp4");
    assert_eq!(f.duration_us, 6_000_000);
    let html = render(&report, &HtmlExtras::default());
    assert!(
        html.contains("<strong>Imported</strong> from a file by “observer-7”, not captured live")
    );
    assert!(html.contains(&sha) && html.contains("1234567 bytes"));
    assert!(html.contains("Sealed at import (device clock)"));
    assert!(!html.contains("Captured (device clock)") && !html.contains(">Captured<"));
    assert!(html.contains("6.0 s of media in 3 segments"));
}

/// An identity that opens nothing, as the wrong case key does.
struct WrongKey;

impl Opener for WrongKey {
    fn open(&self, _ciphertext: &[u8]) -> Result<Vec<u8>, String> {
        Err("no identity matched any of the recipients".into())
    }
    fn recipients(&self) -> Vec<String> {
        vec!["age1wrongkey".into()]
    }
}

#[test]
fn a_wrong_identity_is_said_once_with_the_key_the_bundle_is_sealed_to() {
    let b = parts(17, "device", "server", 4, true).bundle("device", "server");
    let report = report_with(&b, "server", None, Some(&WrongKey));
    let failed: Vec<&Check> =
        report.checks.iter().filter(|c| c.code == code::SEGMENT_DECRYPT_FAILED).collect();
    assert_eq!(failed.len(), 1, "{:#?}", report.checks);
    let m = &failed[0].message;
    assert!(m.starts_with("none of the 4 segments decrypts with the given identity"), "{m}");
    // The recipient testkit's header seals to, and the one the identity is for.
    assert!(m.contains("sealed to age1examplerecipient") && m.contains("age1wrongkey"), "{m}");
    assert_eq!(report.verdict, Verdict::CouldNotCheck);
    assert!(
        report.summary.starts_with("Could not check: none of the 4 segments"),
        "{}",
        report.summary
    );
}

#[test]
fn a_bundle_from_before_completeness_statements_says_so_first() {
    let b = parts(18, "device", "server", 3, true).bundle_v1("device", "server");
    let report = report_of(&b);
    assert_eq!(report.verdict, Verdict::CouldNotCheck, "{:#?}", report.checks);
    assert!(
        report.summary.starts_with(
            "Could not check: this bundle (custody-bundle 1) was made by a server before \
             completeness statements: records or log entries may have been left out of it \
             without trace (bundle.statement.absent)"
        ),
        "{}",
        report.summary
    );
    assert!(report.summary.contains("It holds the live recording by “observer-7”"));
}
