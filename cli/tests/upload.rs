//! The observer-to-legal-team path through the real binary: `custody serve` on loopback,
//! `admin enroll-token`, `enroll` over pinned TLS, `record`, `upload`, and a re-enrollment
//! with the same token refused.

mod common;

use common::{enroll_token, events, recording_id, Env};

#[test]
fn record_then_upload_gets_every_record_receipted() {
    let env = Env::new();
    let data = env.dir.path().join("server");
    let server = common::serve(&env, &data, "127.0.0.1:0");
    // It says where it listens (port 0: the kernel chose).
    let url = server.url.clone();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let token = enroll_token(&data, "observer-7");

    let out = env.run(&["enroll", &url, &token]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("TLS: key pinned, spki-sha256:"));

    // The case recipient came with the enrollment: no --recipient needed. Not uploaded
    // live (cli/tests/live_upload.rs does that), so that `custody upload` has it to send.
    let out = env.run(&[
        "record",
        "--no-upload",
        "--json",
        "--format",
        "lavfi",
        "--input",
        "testsrc2=size=320x240:rate=25:duration=4",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = recording_id(&events(&out.stdout)).unwrap();
    let records = env.open_vault().records(&id).unwrap().len();

    let out = env.run(&["upload", "--json", "--timeout", "60"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["receipted"].as_u64(), Some(records as u64), "{summary}");
    assert_eq!(summary["pending"].as_u64(), Some(0));
    let out = env.run(&["recordings", "--json"]);
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["pending_upload"], 0);

    // A second upload finds nothing to do; the same token cannot enroll again.
    let out = env.run(&["upload", "--json"]);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["receipted"].as_u64(), Some(0));
    let other = Env::new();
    let out = other.run(&["enroll", &url, &token]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("token"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(server);
}
