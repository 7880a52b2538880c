//! The lawyer's path through the real binary: `custody serve` on loopback with TLS, a device
//! that records and uploads, `admin member add`, `login` (pinning the server), `recordings
//! --server`, `fetch` as a directory (also as the README writes it, `-o bundle/`; an output
//! path that cannot take it refused before the server logs an access) and as a .tar (and
//! resumed from a partial download),
//! `verify` trusting the key saved at login, and `admin revoke` as member and as admin.

mod common;

use std::path::Path;
use std::process::Output;

use common::{add_member, enroll_token, events, ok, recording_id, serve, Env};

fn lawyer(env: &Env, config: &Path, args: &[&str]) -> Output {
    env.cmd().env("CUSTODY_CONFIG_DIR", config).args(args).output().unwrap()
}

#[test]
fn login_list_fetch_resume_verify_and_revoke_through_the_binary() {
    let env = Env::new();
    let data = env.dir.path().join("server");
    let server = serve(&env, &data, "127.0.0.1:0");
    let url = server.url.clone();

    // A device records and uploads.
    ok(&env.run(&["enroll", &url, &enroll_token(&data, "observer-9")]));
    let out = env.record_synthetic(4, &[]);
    let id = recording_id(&events(&ok(&out).into_bytes())).unwrap().to_string();
    ok(&env.run(&["upload", "--json", "--timeout", "60"]));

    // The lawyer logs in; the token and the pins are kept readable by the owner only.
    let member_token = add_member(&data, "Ana Ruiz", "member");
    let config = env.dir.path().join("lawyer-config");
    let out = ok(&lawyer(&env, &config, &["login", &url, "--token", &member_token]));
    assert!(out.contains("Logged in to") && out.contains("Ana Ruiz (member)"), "{out}");
    let saved = config.join("lawyer.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777, 0o600);
    let wrong = lawyer(&env, &config, &["login", &url, "--token", &"0".repeat(64)]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("auth.token"));

    let out = ok(&lawyer(&env, &config, &["recordings", "--server", "--json"]));
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let row = &list["recordings"][0];
    assert_eq!(row["recording_id"], id.as_str());
    assert_eq!(row["state"], "complete");
    assert_eq!(row["device_label"], "observer-9");
    let fingerprint = row["device_fingerprint"].as_str().unwrap().to_string();
    let table = ok(&lawyer(&env, &config, &["recordings", "--server"]));
    assert!(table.contains(&id) && table.contains("observer-9"), "{table}");

    // Fetched as a directory, it verifies trusted with the key saved at login, and every
    // real segment decrypts to what its record states.
    let dir = env.dir.path().join("bundle");
    let out = ok(&lawyer(&env, &config, &["fetch", &id, "-o", dir.to_str().unwrap()]));
    assert!(out.contains("custody log entry"), "{out}");
    let out = lawyer(
        &env,
        &config,
        &["verify", dir.to_str().unwrap(), "--identity", env.case_key.to_str().unwrap()],
    );
    let report = ok(&out);
    assert!(report.contains("INTACT AND COMPLETE") && report.contains("(trusted)"), "{report}");
    assert!(report.contains("segment.plaintext.match") || report.contains("decrypts"), "{report}");

    // `-o bundle/`, as the README writes it, is a new directory too; and an output path
    // that cannot take the bundle is refused before the server is asked anything, so it
    // logs no access: the next bundle holds exactly one more bundle retrieval, its own.
    let bundle_accesses = |dir: &Path| {
        let bytes = std::fs::read(dir.join("custody/log-proofs.bin")).unwrap();
        custody_format::bundle::LogProof::parse_all(&bytes)
            .unwrap()
            .iter()
            .map(|p| custody_format::log::LogEntry::decode(&p.entry).unwrap())
            .filter(|e| e.detail.as_deref() == Some("bundle"))
            .count()
    };
    let before = bundle_accesses(&dir);
    std::fs::write(env.dir.path().join("a-file"), b"x").unwrap();
    for (path, tar, why) in [
        (env.dir.path().join("missing/bundle/"), false, "cannot be used"),
        (env.dir.path().join("a-file/bundle"), false, "is not a directory"),
        (dir.clone(), false, "already holds an evidence bundle"),
        (env.dir.path().join("a-file"), true, "already exists"),
    ] {
        let out = lawyer(
            &env,
            &config,
            &["fetch", &id, "-o", path.to_str().unwrap()]
                .into_iter()
                .chain(tar.then_some("--tar"))
                .collect::<Vec<_>>(),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{path:?}: {stderr}");
        assert!(stderr.contains(why) && stderr.contains("nothing was fetched"), "{stderr}");
    }
    let slash = format!("{}/", env.dir.path().join("bundle-two").display());
    let out = ok(&lawyer(&env, &config, &["fetch", &id, "-o", &slash]));
    assert!(out.contains("custody log entry"), "{out}");
    let two = env.dir.path().join("bundle-two");
    assert!(two.join("BUNDLE").is_file() && !env.dir.path().join("bundle-two.tar.part").exists());
    let report = ok(&lawyer(&env, &config, &["verify", &slash]));
    assert!(report.contains("INTACT AND COMPLETE"), "{report}");
    assert_eq!(bundle_accesses(&two), before + 1);

    // As one .tar, with the URL given.
    let tar = env.dir.path().join("bundle.tar");
    let out = ok(&lawyer(
        &env,
        &config,
        &["fetch", &url, &id, "-o", tar.to_str().unwrap(), "--tar", "--json"],
    ));
    let fetched: serde_json::Value = serde_json::from_str(&out).unwrap();
    let whole = std::fs::read(&tar).unwrap();
    assert_eq!(fetched["bytes"].as_u64(), Some(whole.len() as u64));
    let report = ok(&lawyer(&env, &config, &["verify", tar.to_str().unwrap()]));
    assert!(report.contains("INTACT AND COMPLETE") && report.contains("(trusted)"), "{report}");

    // A download broken half-way resumes to the very same bytes.
    let again = env.dir.path().join("again.tar");
    let part = env.dir.path().join("again.tar.part");
    std::fs::write(&part, &whole[..whole.len() / 2]).unwrap();
    std::fs::write(
        env.dir.path().join("again.tar.part.access"),
        format!("{}\n", fetched["access_log_index"]),
    )
    .unwrap();
    let out = ok(&lawyer(
        &env,
        &config,
        &["fetch", &id, "-o", again.to_str().unwrap(), "--tar", "--json"],
    ));
    let resumed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(resumed["resumed_from"].as_u64(), Some(whole.len() as u64 / 2));
    assert_eq!(std::fs::read(&again).unwrap(), whole);
    assert!(!part.exists());
    // A partial the server does not recognise (log entry 0 is no retrieval) starts afresh.
    let third = env.dir.path().join("third.tar");
    std::fs::write(env.dir.path().join("third.tar.part"), &whole[..1000]).unwrap();
    std::fs::write(env.dir.path().join("third.tar.part.access"), "0\n").unwrap();
    let out = ok(&lawyer(
        &env,
        &config,
        &["fetch", &id, "-o", third.to_str().unwrap(), "--tar", "--json"],
    ));
    let fresh: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(fresh["resumed_from"].as_u64(), Some(0));
    let report = ok(&lawyer(&env, &config, &["verify", third.to_str().unwrap()]));
    assert!(report.contains("INTACT AND COMPLETE"), "{report}");

    // A member cannot revoke; an admin can, by fingerprint.
    let out = lawyer(&env, &config, &["admin", "revoke", &fingerprint, "--reason", "seized"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("auth.role"));
    let admin_token = add_member(&data, "counsel", "admin");
    ok(&lawyer(&env, &config, &["login", &url, "--token", &admin_token]));
    let out = ok(&lawyer(&env, &config, &["admin", "revoke", &fingerprint, "--reason", "seized"]));
    assert!(out.contains("Revoked device"), "{out}");
    let out = ok(&lawyer(&env, &config, &["recordings", "--server"]));
    assert!(out.contains("(revoked)"), "{out}");
}
