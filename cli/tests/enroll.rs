//! `custody enroll LINK` through the real binary: the link the legal team's
//! `custody admin enroll-token --link` prints enrolls a device; a link whose fingerprint is
//! not the server's key is refused and nothing is enrolled.

mod common;

use std::path::Path;
use std::process::Command;

use common::{ok, serve, Env};
use custody_protocol::EnrollLink;

fn link(data: &Path, url: &str) -> EnrollLink {
    let out = Command::new(env!("CARGO_BIN_EXE_custody"))
        .args(["admin", "enroll-token", "--json", "--label", "phone-2", "--link", url, "--data"])
        .arg(data)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    EnrollLink::parse(v["link"].as_str().unwrap()).unwrap()
}

fn enrollment(env: &Env) -> serde_json::Value {
    let out = env.run(&["status", "--json"]);
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["enrollment"].clone()
}

#[test]
fn a_link_enrolls_and_a_link_naming_another_key_is_refused() {
    let env = Env::new();
    let data = env.dir.path().join("server");
    let server = serve(&env, &data, "127.0.0.1:0");
    let good = link(&data, &server.url);

    // The same URL and token, but the fingerprint of another key.
    let mut wrong = good.clone();
    wrong.fingerprint = custody_format::testkit::public("another server").fingerprint();
    let out = env.run(&["enroll", &wrong.to_string()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("not {} as the enrollment link says", wrong.fingerprint)),
        "{err}"
    );
    assert!(err.contains("custody: hint: this is not the legal team's server"), "{err}");
    assert!(enrollment(&env).is_null(), "nothing was enrolled");

    // The real link enrolls (its token was not spent by the refused attempt).
    let out = env.run(&["enroll", &good.to_string(), "--json"]);
    let e: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(e["label"], "phone-2");
    assert_eq!(enrollment(&env)["url"], server.url.as_str());

    // Text that is neither a link nor a URL and token says what is expected.
    let out = env.run(&["enroll", "https://example.invalid/enroll"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not an enrollment link"));
}
