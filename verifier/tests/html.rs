//! The HTML court report, rendered from real verification reports of built bundles.

mod common;

use common::{parts, Bundle};
use custody_format::report::{code, Check};
use custody_format::testkit;
use custody_verifier::html::{render, HtmlExtras, Section};
use custody_verifier::{verify, Options, Report};

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
    assert_eq!(html.matches("<tr class=\"after-gap\">").count(), 1);
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
