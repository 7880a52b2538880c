//! `custody admin enroll-token --qr` through the real binary: the QR code it prints decodes
//! (with rqrr, a decoder independent of the encoder) to the very link printed under it,
//! and that link enrolls a device.

mod common;

use std::process::Command;

use common::{decode_qr, ok, serve, Env};
use custody_protocol::EnrollLink;

#[test]
fn the_qr_code_is_the_link_printed_under_it_and_the_link_enrolls() {
    let env = Env::new();
    let data = env.dir.path().join("server");
    let server = serve(&env, &data, "127.0.0.1:0");
    let out = Command::new(env!("CARGO_BIN_EXE_custody"))
        .args(["admin", "enroll-token", "--label", "phone-3", "--qr", "--link", &server.url])
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    let text = ok(&out);
    // Piped, there are no colour codes: only the code's lines, and the link under them.
    assert!(!text.contains('\x1b'), "no escape codes when not on a terminal: {text}");
    let lines: Vec<&str> = text.lines().collect();
    let qr: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.is_empty() && l.chars().all(|c| " ▀▄█".contains(c)))
        .collect();
    assert!(qr.len() > 10, "{text}");
    // The quiet zone: the first and last lines, and both edges, are light.
    assert!(qr[0].trim().is_empty() && qr[qr.len() - 1].chars().all(|c| c == ' ' || c == '▀'));
    assert!(qr.iter().all(|l| l.starts_with("    ") && l.ends_with("    ")));
    let printed = lines.last().unwrap().trim();
    let link = EnrollLink::parse(printed).unwrap_or_else(|e| panic!("{printed}: {e}"));
    assert_eq!(decode_qr(&qr), printed, "the QR code holds the printed link");

    let out = env.run(&["enroll", &link.to_string(), "--json"]);
    let e: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(e["label"], "phone-3");

    // --qr without --link has no link to draw.
    let out = Command::new(env!("CARGO_BIN_EXE_custody"))
        .args(["admin", "enroll-token", "--label", "x", "--qr", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--link"));
}
