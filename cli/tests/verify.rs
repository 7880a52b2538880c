//! `custody verify` through the real binary, on bundles built as the format lays them out.

#[path = "../../verifier/tests/common/mod.rs"]
mod bundles;

use std::process::Command;

use custody_format::bundle;
use custody_format::testkit;

fn verify(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_custody")).arg("verify").args(args).arg(dir).output().unwrap()
}

#[test]
fn verdicts_exit_codes_and_trust() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good");
    bundles::parts(1, "device", "server", 4, true).bundle("device", "server").write(&good);
    let server = testkit::public("server").to_string();

    let out = verify(&good, &["--trust", &server]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("Verdict: INTACT AND COMPLETE") && text.contains("(trusted)"), "{text}");

    // The trust anchor can be a file.
    let key_file = tmp.path().join("server.pub");
    std::fs::write(&key_file, format!("{server}\n")).unwrap();
    assert_eq!(verify(&good, &["--trust", key_file.to_str().unwrap()]).status.code(), Some(0));

    // ... or the fingerprint the legal team reads out, in any case, with or without dashes.
    let fp = testkit::public("server").fingerprint().to_string();
    let out = verify(&good, &["--trust", &fp.to_lowercase().replace('-', "")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("(trusted)"), "{text}");
    // Another key than the one given to trust: the signer is not confirmed (exit 2), which
    // is not tampering.
    let out =
        verify(&good, &["--trust", &testkit::public("someone-else").fingerprint().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    let out = verify(&good, &["--trust", "not-a-key"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither a server key nor a fingerprint"));

    let out = verify(&good, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("UNCONFIRMED"));

    let out = verify(&good, &["--trust", &testkit::public("someone-else").to_string(), "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "signer-not-confirmed");
    assert_eq!(report["trust"]["trust"], "untrusted");

    let cut = tmp.path().join("cut");
    bundles::parts(2, "device", "server", 3, false).bundle("device", "server").write(&cut);
    let out = verify(&cut, &["--trust", &server]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("INTACT BUT CUT OFF"));

    let mut bad = bundles::parts(3, "device", "server", 3, true).bundle("device", "server");
    bad.files.get_mut(&bundle::segment_path(2)).unwrap()[7] ^= 1;
    let bad_dir = tmp.path().join("bad");
    bad.write(&bad_dir);
    let out = verify(&bad_dir, &["--trust", &server]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("TAMPERED") && text.contains("[FAILURE] segment.hash.mismatch"),
        "{text}"
    );

    // As one .tar.
    let tar = tmp.path().join("good.tar");
    bundles::parts(1, "device", "server", 4, true)
        .bundle("device", "server")
        .write_tar(&tar, &"01".repeat(16));
    assert_eq!(verify(&tar, &["--trust", &server]).status.code(), Some(0));
}

#[test]
fn could_not_run_and_could_not_check_exit_2_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let out = verify(&tmp.path().join("missing"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hint:"));

    std::fs::write(tmp.path().join("notes.txt"), "not a bundle").unwrap();
    let out = verify(tmp.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a custody bundle"));

    // An identity that opens nothing: the segments cannot be checked.
    let good = tmp.path().join("good");
    bundles::parts(1, "device", "server", 2, true).bundle("device", "server").write(&good);
    let (identity, _) = custody_vault::keys::new_recipient_identity();
    let id_file = tmp.path().join("case.agekey");
    use age::secrecy::ExposeSecret;
    std::fs::write(&id_file, identity.expose_secret()).unwrap();
    let out = verify(
        &good,
        &[
            "--trust",
            &testkit::public("server").to_string(),
            "--identity",
            id_file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("COULD NOT CHECK") && text.contains("segment.decrypt.failed"), "{text}");
}
