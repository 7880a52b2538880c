//! `custody verify --tsa-trust` through the real binary, on the custody-bundle 3 vector
//! that carries an RFC 3161 token (tests/vectors/bundles/tsa-clean).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use custody_format::testkit;

fn bundle() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/bundles/tsa-clean/bundle")
}

fn verify(args: &[&str]) -> Output {
    let server = testkit::public("server").to_string();
    Command::new(env!("CARGO_BIN_EXE_custody"))
        .args(["verify", "--trust", &server])
        .args(args)
        .arg(bundle())
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_report_says_by_when_the_segments_existed_and_whose_roots_vouch() {
    // The roots the bundle ships: a warning naming the legal team, exit 0 (intact).
    let out = verify(&[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("Time:      Segments 1\u{2013}"), "{text}");
    assert!(text.contains("according to time-stamp authority Custody Test TSA"), "{text}");
    assert!(text.contains("[WARNING] time.tsa.bundle_roots"), "{text}");
    assert!(text.contains("[not checked] time.tsa.revocation"), "{text}");

    // The same root given, PEM: ok.
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("tsa-root.pem");
    std::fs::copy(bundle().join("custody/tsa-roots.pem"), &pem).unwrap();
    let out = verify(&["--tsa-trust", pem.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("[ok] time.tsa.ok"), "{text}");
    assert!(!text.contains("time.tsa.bundle_roots"), "{text}");

    // JSON carries each segment's bound.
    let out = verify(&["--tsa-trust", pem.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let gen = v["time_stamps"][0]["gen_time_us"].as_i64().unwrap();
    assert!(v["segments"].as_array().unwrap().iter().all(|s| s["existed_by_us"] == gen));

    // HTML shows the bound beside the device and server times.
    let html = dir.path().join("report.html");
    let out = verify(&["--tsa-trust", pem.to_str().unwrap(), "--html", html.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("Existed by (time-stamp authority)"));
    assert!(page.contains("class=\"tsa-bound\""));
    assert!(page.contains("<strong>Independent time.</strong> Segments 1"));
}

#[test]
fn a_tsa_trust_file_that_is_not_a_certificate_is_refused_before_verifying() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let out = verify(&["--tsa-trust", junk.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--tsa-trust") && err.contains("holds no certificate"), "{err}");
    assert!(stdout(&out).is_empty());
}
