//! `custody import` of damaged files: a truncated file and one corrupt in the middle end
//! with the error reason and say how much was imported, in the end record, the listings and
//! the verifier's report; an empty file and a text file named .mp4 say what they are.

#[path = "../../verifier/tests/common/mod.rs"]
mod bundles;
mod common;
mod real;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{events, make_clip, recording_id, segment_records, Env};
use custody_format::record::{EndReason, EndRecord, Record, SignedRecord};
use real::ffmpeg;

const SAID: &str = "imported up to 0:06 of 0:12: the rest of the file is damaged";

/// A 12 s H.264/AAC MP4 with its index first (as phones and `-movflags +faststart` write
/// it), so that a damaged copy still opens and is read up to the damage.
fn phone_like_clip(dir: &Path) -> PathBuf {
    let plain = dir.join("plain.mp4");
    make_clip(&plain, 12, 1);
    let fast = dir.join("clip.mp4");
    ffmpeg(&[
        "-i",
        plain.to_str().unwrap(),
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        fast.to_str().unwrap(),
    ]);
    fast
}

/// Imports `file`; returns the output and the recording's records, if one was started.
fn import(env: &Env, file: &Path) -> (std::process::Output, Vec<SignedRecord>) {
    let out =
        env.run(&["import", "--json", "--no-upload", "-r", &env.recipient, file.to_str().unwrap()]);
    let records = match recording_id(&events(&out.stdout)) {
        Some(id) => env.open_vault().records(&id).unwrap(),
        None => Vec::new(),
    };
    (out, records)
}

fn end_of(records: &[SignedRecord]) -> EndRecord {
    match records.last().map(SignedRecord::record) {
        Some(Record::End(e)) => e.clone(),
        other => panic!("no end record: {other:?}"),
    }
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What every damaged import must show: the end record's reason and message, the
/// listings' words, and the report's.
fn assert_ends_damaged(env: &Env, out: &std::process::Output, records: &[SignedRecord]) {
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let end = end_of(records);
    assert_eq!(end.reason, EndReason::Error, "{end:?}");
    let message = end.message.clone().unwrap();
    assert!(message.starts_with("the file is damaged"), "{message}");
    assert!(message.contains("at byte "), "where: {message}");
    assert!(message.contains("of the 12.00 s it declares"), "{message}");
    let declared = end.source_duration_us.unwrap();
    assert!((11_900_000..=12_100_000).contains(&declared), "{declared}");
    assert!((5_000_000..=6_500_000).contains(&end.media_duration_us), "{end:?}");

    let listing = stdout(&env.run(&["recordings"]));
    assert!(listing.contains(SAID) && listing.contains("partial"), "{listing}");
    assert!(!listing.contains("complete"), "{listing}");
    let json: serde_json::Value =
        serde_json::from_slice(&env.run(&["recordings", "--json"]).stdout).unwrap();
    assert_eq!(json[0]["import_damage"], SAID);
    let status = stdout(&env.run(&["status"]));
    assert!(status.contains(SAID) && status.contains("partial"), "{status}");

    // The verifier's report, on the bundle a server would make of it.
    let Record::Header(h) = records[0].record() else { panic!("no header") };
    let id = h.recording_id;
    let vault = env.open_vault();
    let sealed: BTreeMap<u64, Vec<u8>> = segment_records(records)
        .iter()
        .map(|s| (s.seq, std::fs::read(vault.segment_path(&id, s.seq)).unwrap()))
        .collect();
    let bundle = bundles::receipted(records.to_vec(), sealed, h.device_key, "server")
        .bundle_for(h.device_key, "server");
    let dir = env.dir.path().join("bundle");
    bundle.write(&dir);
    let out =
        env.run(&["verify", dir.to_str().unwrap(), "--json", "--trust", &real::Real::server()]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let summary = report["summary"].as_str().unwrap();
    assert!(
        summary.contains("Imported up to 0:06 of 0:12: the rest of the file is damaged"),
        "{summary}"
    );
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["code"] == "import.damaged")
        .unwrap_or_else(|| panic!("no import.damaged: {report}"));
    assert_eq!(check["state"], "warning");
    assert!(check["message"].as_str().unwrap().contains("at byte "), "{check}");
}

#[test]
fn a_truncated_file_ends_with_the_error_and_says_how_much_was_imported() {
    let env = Env::new();
    let clip = phone_like_clip(env.dir.path());
    let bytes = std::fs::read(&clip).unwrap();
    let cut = env.dir.path().join("truncated.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (out, records) = import(&env, &cut);
    assert_ends_damaged(&env, &out, &records);
}

/// Uploaded to a real server on loopback, the server's list says it too.
#[test]
fn the_server_lists_a_damaged_import_in_the_same_words() {
    let env = Env::new();
    let data = env.dir.path().join("server");
    let server = common::serve(&env, &data, "127.0.0.1:0");
    common::ok(&env.run(&["enroll", &server.url, &common::enroll_token(&data, "observer-3")]));
    let clip = phone_like_clip(env.dir.path());
    let bytes = std::fs::read(&clip).unwrap();
    let cut = env.dir.path().join("truncated.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = env.run(&["import", "--json", "-r", &env.recipient, cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let id = recording_id(&events(&out.stdout)).unwrap().to_string();
    common::ok(&env.run(&["upload", "--json", "--timeout", "60"]));

    let config = env.dir.path().join("lawyer-config");
    let token = common::add_member(&data, "Ana Ruiz", "member");
    let lawyer =
        |args: &[&str]| env.cmd().env("CUSTODY_CONFIG_DIR", &config).args(args).output().unwrap();
    common::ok(&lawyer(&["login", &server.url, "--token", &token]));
    let list: serde_json::Value =
        serde_json::from_str(&common::ok(&lawyer(&["recordings", "--server", "--json"]))).unwrap();
    let row = list["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["recording_id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["imported"]["damaged"], SAID, "{row}");
    let table = common::ok(&lawyer(&["recordings", "--server"]));
    let line = table.lines().find(|l| l.contains(&id)).unwrap();
    assert!(line.contains(SAID), "{table}");
}

#[test]
fn a_file_corrupt_in_the_middle_ends_at_the_damage() {
    let env = Env::new();
    let clip = phone_like_clip(env.dir.path());
    let mut bytes = std::fs::read(&clip).unwrap();
    // 64 KiB of noise (a fixed LCG, so every run damages the same bytes) from the middle.
    let mid = bytes.len() / 2;
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for b in &mut bytes[mid..mid + 65_536] {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        *b = (x >> 56) as u8;
    }
    let corrupt = env.dir.path().join("corrupt.mp4");
    std::fs::write(&corrupt, &bytes).unwrap();
    let (out, records) = import(&env, &corrupt);
    assert_ends_damaged(&env, &out, &records);

    // The whole file imports whole, and is listed complete.
    let (out, records) = import(&env, &clip);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let end = end_of(&records);
    assert_eq!((end.reason, end.message.as_deref()), (EndReason::InputEnded, None));
    assert!(end.source_duration_us.is_some());
}

#[test]
fn an_empty_file_and_a_text_file_say_what_they_are() {
    let env = Env::new();
    let empty = env.dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let text = env.dir.path().join("notes.mp4");
    std::fs::write(&text, b"Badge 4471, two officers, 14:05 at the corner.\n").unwrap();
    for (file, says) in [(&empty, "is empty"), (&text, "is not a video (no media streams found)")] {
        let (out, records) = import(&env, file);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(says), "{err}");
        assert!(!err.contains("Invalid data found"), "{err}");
        assert!(records.is_empty());
    }
}
