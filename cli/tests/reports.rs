//! What a judge reads, through the real binary: the verdict says what and when (with
//! `--tz`, in local time too), a tampered bundle names what failed and where first, a
//! trust anchor that does not match is "signer not confirmed", a wrong identity is said
//! once, every report names the bundle it was made over, and an imported recording says so
//! from the server's list to the report.

#[path = "../../verifier/tests/common/mod.rs"]
mod bundles;
mod common;

use std::path::Path;
use std::process::Output;

use common::{add_member, enroll_token, events, make_clip, ok, recording_id, serve, Env};
use custody_format::bundle;
use custody_format::testkit;

fn verify(bundle: &Path, args: &[&str]) -> Output {
    std::process::Command::new(common::bin())
        .arg("verify")
        .args(args)
        .arg(bundle)
        .env("CUSTODY_CONFIG_DIR", bundle.with_extension("no-config"))
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(custody_format::primitives::sha256(&[bytes]))
}

fn server() -> String {
    testkit::public("server").to_string()
}

#[test]
fn tz_shows_local_times_beside_utc_and_an_unknown_zone_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good");
    bundles::parts(1, "device", "server", 3, true).bundle("device", "server").write(&good);

    let out = verify(&good, &["--trust", &server(), "--tz", "America/Chicago"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    // 2024-05-01 12:00:00 UTC is 07:00 in Chicago, on daylight time then.
    assert!(
        text.contains(
            "Started:   2024-05-01 12:00:00 UTC = 2024-05-01 07:00:00 -05:00 CDT, America/Chicago (device clock)"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "2024-05-01 12:00:00 to 12:00:06 UTC (07:00:00 to 07:00:06 CDT, America/Chicago)"
        ),
        "{text}"
    );
    let json = verify(&good, &["--trust", &server(), "--tz", "Europe/Madrid", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        v["recording"]["started"]["local"],
        "2024-05-01 14:00:00 +02:00 CEST, Europe/Madrid"
    );
    assert_eq!(v["about"]["time_zone"], "Europe/Madrid");

    // Without --tz, UTC only.
    let text = stdout(&verify(&good, &["--trust", &server()]));
    assert!(text.contains("Started:   2024-05-01 12:00:00 UTC (device clock)"), "{text}");

    let out = verify(&good, &["--trust", &server(), "--tz", "Mars/Olympus_Mons"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tz") && err.contains("Mars/Olympus_Mons"), "{err}");
    assert!(err.contains("hint:") && err.contains("America/Chicago"), "{err}");
    assert!(out.stdout.is_empty(), "nothing is verified with a zone that does not exist");
}

#[test]
fn a_trust_anchor_that_does_not_match_is_signer_not_confirmed_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good");
    bundles::parts(2, "device", "server", 3, true).bundle("device", "server").write(&good);
    let found = testkit::public("server").fingerprint().to_string();
    let expected = testkit::public("someone-else").fingerprint().to_string();

    let out = verify(&good, &["--trust", &expected]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.starts_with("Verdict: SIGNER NOT CONFIRMED\nSigner not confirmed:"), "{text}");
    assert!(text.contains(&found) && text.contains(&expected), "{text}");
    assert!(!text.contains("TAMPERED") && !text.contains("Tampered"), "{text}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hint:"), "{err}");

    let out = verify(&good, &["--trust", &testkit::public("someone-else").to_string(), "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "signer-not-confirmed");
    assert_eq!(v["found_fingerprint"], found.as_str());
    assert_eq!(v["expected_fingerprint"], expected.as_str());
}

#[test]
fn a_tampered_bundle_says_what_and_where_first_and_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = bundles::parts(3, "device", "server", 4, true).bundle("device", "server");
    b.files.get_mut(&bundle::segment_path(3)).unwrap()[7] ^= 1;
    let dir = tmp.path().join("bad");
    b.write(&dir);
    let out = verify(&dir, &["--trust", &server()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let second = text.lines().nth(1).unwrap();
    assert!(
        second.starts_with(
            "Tampered: segment 3's sealed file differs from its record (segment.hash.mismatch)"
        ),
        "{text}"
    );
    assert!(second.contains("sha256sum -c MANIFEST.sha256") && second.contains("fetch"), "{text}");
    assert!(text.contains("Segments:  4 (FAILED: position 3; every other one verified)"), "{text}");
}

#[test]
fn a_wrong_identity_says_once_which_key_the_bundle_is_sealed_to() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good");
    bundles::parts(4, "device", "server", 5, true).bundle("device", "server").write(&good);
    let (identity, recipient) = custody_vault::keys::new_recipient_identity();
    let id_file = tmp.path().join("other.agekey");
    use age::secrecy::ExposeSecret;
    std::fs::write(&id_file, identity.expose_secret()).unwrap();
    let out = verify(&good, &["--trust", &server(), "--identity", id_file.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    // One check line (the verdict's sentence quotes it too).
    let lines: Vec<&str> =
        text.lines().filter(|l| l.starts_with("  [not checked] segment.decrypt.failed")).collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].contains("none of the 5 segments decrypts"), "{text}");
    assert!(lines[0].contains("sealed to age1examplerecipient"), "{text}");
    assert!(lines[0].contains(&recipient), "{text}");
}

#[test]
fn the_report_names_the_bundle_it_was_made_over() {
    let tmp = tempfile::tempdir().unwrap();
    let b = bundles::parts(5, "device", "server", 2, true).bundle("device", "server");
    let tar = tmp.path().join("evidence.tar");
    b.write_tar(&tar, "05");
    let text = stdout(&verify(&tar, &["--trust", &server()]));
    let sha = sha256_hex(&std::fs::read(&tar).unwrap());
    assert!(
        text.contains(&format!("Bundle:    the archive “evidence.tar”, SHA-256 {sha}")),
        "{text}"
    );
    assert!(text.contains("Report:    made 20") && text.contains("by custody-verifier "), "{text}");

    let dir = tmp.path().join("dir");
    b.write(&dir);
    let text = stdout(&verify(&dir, &["--trust", &server()]));
    let manifest = sha256_hex(&b.files[bundle::MANIFEST]);
    assert!(
        text.contains(&format!(
            "MANIFEST.sha256 (the SHA-256 of every file) has SHA-256 {manifest}"
        )),
        "{text}"
    );
}

fn lawyer(env: &Env, config: &Path, args: &[&str]) -> Output {
    env.cmd().env("CUSTODY_CONFIG_DIR", config).args(args).output().unwrap()
}

/// An import, uploaded to a real server on loopback, listed, fetched and verified: it says
/// it was imported everywhere, with its file's name, hash and length and its media's length.
#[test]
fn an_import_says_so_from_the_server_list_to_the_report() {
    let env = Env::new();
    let data = env.dir.path().join("server");
    let server = serve(&env, &data, "127.0.0.1:0");
    ok(&env.run(&["enroll", &server.url, &enroll_token(&data, "observer-3")]));
    let clip = env.dir.path().join("phone-clip.mp4");
    make_clip(&clip, 4, 1);
    let clip_bytes = std::fs::read(&clip).unwrap();
    let out = env.run(&["import", "--json", "-r", &env.recipient, clip.to_str().unwrap()]);
    let id = recording_id(&events(&ok(&out).into_bytes())).unwrap().to_string();
    ok(&env.run(&["upload", "--json", "--timeout", "60"]));

    let config = env.dir.path().join("lawyer-config");
    let token = add_member(&data, "Ana Ruiz", "member");
    ok(&lawyer(&env, &config, &["login", &server.url, "--token", &token]));
    let list: serde_json::Value =
        serde_json::from_str(&ok(&lawyer(&env, &config, &["recordings", "--server", "--json"])))
            .unwrap();
    let row = list["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["recording_id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["imported"]["file_name"], "phone-clip.mp4", "{row}");
    assert_eq!(row["imported"]["sha256"], sha256_hex(&clip_bytes));
    assert_eq!(row["imported"]["len"], clip_bytes.len() as u64);
    // Its duration is the media's, not the instant it took to seal.
    let duration = row["duration_us"].as_i64().unwrap();
    assert!((3_500_000..=4_500_000).contains(&duration), "{row}");
    let table = ok(&lawyer(&env, &config, &["recordings", "--server"]));
    let line = table.lines().find(|l| l.contains(&id)).unwrap();
    assert!(line.contains("imported from phone-clip.mp4") && !line.contains(" 0.0s"), "{table}");

    let dir = env.dir.path().join("fetched");
    ok(&lawyer(&env, &config, &["fetch", &id, "-o", dir.to_str().unwrap()]));
    let html = env.dir.path().join("report.html");
    let out = lawyer(
        &env,
        &config,
        &[
            "verify",
            dir.to_str().unwrap(),
            "--identity",
            env.case_key.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ],
    );
    let text = ok(&out);
    assert!(
        text.contains("Origin:    IMPORTED from a file by \"observer-3\", not captured live"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "File:      phone-clip.mp4 (SHA-256 {}, {} bytes); its own times are claims",
            sha256_hex(&clip_bytes),
            clip_bytes.len()
        )),
        "{text}"
    );
    assert!(text.contains("Sealed:    ") && !text.contains("Started:   "), "{text}");
    assert!(text.contains("Duration:  4.0 s of media"), "{text}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<strong>Imported</strong> from a file by “observer-3”"));
    assert!(
        page.contains("Sealed at import (device clock)")
            && !page.contains("Captured (device clock)")
    );
    let json = lawyer(&env, &config, &["verify", dir.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["recording"]["origin"], "imported");
    assert_eq!(v["recording"]["imported"]["name"], "phone-clip.mp4");
}
