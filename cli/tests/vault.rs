//! The observer's vault through the real `custody` binary: keys, sealing, durable storage,
//! crash recovery, index rebuilds, full disks, imports.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{events, files_under, make_clip, recording_id, segment_records, Env};
use custody_format::chain::verify_chain;
use custody_format::record::{EndReason, Origin, Record};
use custody_format::report::{CheckState, Verdict};
use custody_vault::seal;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

#[test]
fn sealed_segments_open_with_stock_age_and_the_age_crate() {
    let env = Env::new();
    let out = env.record_synthetic(3, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = recording_id(&events(&out.stdout)).unwrap();
    let vault = env.open_vault();
    let segments = segment_records(&vault.records(&id).unwrap());
    assert!(!segments.is_empty());
    for s in segments.iter().take(3) {
        let path = vault.segment_path(&id, s.seq);
        let sealed = std::fs::read(&path).unwrap();
        assert!(sealed.starts_with(b"age-encryption.org/v1\n-> X25519 "));
        let by_crate = seal::open(&sealed, &env.identities()).unwrap();
        let by_tool = Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&env.case_key)
            .arg(&path)
            .output()
            .expect("the age tool (Debian package `age`) must be installed");
        assert!(by_tool.status.success(), "{}", String::from_utf8_lossy(&by_tool.stderr));
        assert_eq!(by_tool.stdout, by_crate);
        assert_eq!(<[u8; 32]>::from(Sha256::digest(&by_crate)), s.plaintext_sha256);
        assert_eq!(by_crate.len() as u64, s.plaintext_len);
        // MPEG-TS: sync byte every 188 bytes.
        assert!(by_crate.len().is_multiple_of(188) && by_crate[0] == 0x47);
    }
}

#[test]
fn plaintext_never_touches_the_disk() {
    let env = Env::new();
    let out = env.record_synthetic(4, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = recording_id(&events(&out.stdout)).unwrap();
    let vault = env.open_vault();
    let mut samples: Vec<Vec<u8>> = Vec::new();
    for s in segment_records(&vault.records(&id).unwrap()) {
        let plain =
            seal::open(&std::fs::read(vault.segment_path(&id, s.seq)).unwrap(), &env.identities())
                .unwrap();
        // 48-byte windows from the middle of TS packets (past the 4-byte header), skipping
        // stuffing: any of these on disk would mean plaintext reached it.
        for k in 0..plain.len() / 188 {
            let w = &plain[k * 188 + 40..k * 188 + 88];
            if w.iter().any(|&b| b != w[0]) && k % 7 == 0 {
                samples.push(w.to_vec());
            }
        }
    }
    assert!(samples.len() > 100, "too few samples: {}", samples.len());
    let finders: Vec<memchr::memmem::Finder<'_>> =
        samples.iter().map(memchr::memmem::Finder::new).collect();
    let files = files_under(env.dir.path());
    assert!(files.len() > 5);
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        for finder in &finders {
            assert!(finder.find(&bytes).is_none(), "plaintext media found in {}", f.display());
        }
    }
}

#[test]
fn without_self_recipient_the_device_cannot_decrypt() {
    let env = Env::new();
    let out = env.record_synthetic(2, &[]);
    assert!(out.status.success());
    let id = recording_id(&events(&out.stdout)).unwrap();
    let vault = env.open_vault();
    let sealed = std::fs::read(vault.segment_path(&id, 1)).unwrap();
    // Every age identity the vault holds (none by default) fails to open it.
    let held: Vec<_> = files_under(&env.vault)
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|t| custody_vault::keys::parse_identities(&t))
        .collect();
    assert!(held.is_empty());

    let out = env.record_synthetic(2, &["--self-recipient"]);
    assert!(out.status.success());
    let id = recording_id(&events(&out.stdout)).unwrap();
    let own = custody_vault::keys::parse_identities(
        &std::fs::read_to_string(env.vault.join(custody_vault::keys::SELF_IDENTITY_FILE)).unwrap(),
    );
    assert!(seal::open(&std::fs::read(vault.segment_path(&id, 1)).unwrap(), &own).is_ok());
    assert!(seal::open(&sealed, &own).is_err());
}

#[test]
fn import_says_imported_and_records_the_file_hash() {
    let env = Env::new();
    let clip = env.dir.path().join("phone.mp4");
    make_clip(&clip, 6, 2);
    let out = env.run(&["import", "--json", "-r", &env.recipient, clip.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ev = events(&out.stdout);
    let id = recording_id(&ev).unwrap();
    assert_eq!(ev.last().unwrap()["ended"], "input ended");
    let records = env.open_vault().records(&id).unwrap();
    let Record::Header(h) = records[0].record() else { panic!("no header") };
    assert_eq!(h.origin, Origin::Imported);
    let file = h.imported_file.as_ref().unwrap();
    let bytes = std::fs::read(&clip).unwrap();
    assert_eq!(file.sha256, <[u8; 32]>::from(Sha256::digest(&bytes)));
    assert_eq!(file.len, bytes.len() as u64);
    let report = verify_chain(&custody_format::testkit::concat(&records), None);
    assert_eq!(Verdict::from_checks(&report.checks, report.cut_off), Verdict::IntactComplete);
    let segs = segment_records(&records);
    assert_eq!(segs.len(), 3, "6 s with keyframes every 2 s");
    let Record::End(end) = records.last().unwrap().record() else { panic!("no end") };
    assert_eq!(end.reason, EndReason::InputEnded);
}

/// Kills a recording process with SIGKILL at a random moment, `runs` times, and checks
/// after each restart that everything it had reported as saved is there and verifies.
#[test]
fn sigkill_at_random_moments_loses_nothing_reported_saved() {
    let env = Env::new();
    let runs = 30;
    let mut cut_off_recordings = 0;
    for seed in 0..runs {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let delay = Duration::from_millis(rng.gen_range(150..1500));
        let mut child = env
            .cmd()
            .args(["record", "--json", "--format", "lavfi", "-r", &env.recipient])
            .args(["--segment-seconds", "0.5", "--input", "testsrc2=size=320x240:rate=25"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout).lines().map_while(Result::ok).collect::<Vec<String>>()
        });
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        let ev = events(lines.join("\n").as_bytes());
        let saved: Vec<u64> = ev
            .iter()
            .filter(|e| e["event"] == "saved")
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        let Some(id) = recording_id(&ev) else {
            assert!(saved.is_empty());
            continue;
        };

        // Restart: opening the vault repairs what the kill left.
        let out = env.run(&["vault", "check", "--json"]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["problems"], 0, "seed {seed}: {report}");
        assert!(out.status.success());

        let vault = env.open_vault();
        let records = vault.records(&id).unwrap();
        let chain = verify_chain(&custody_format::testkit::concat(&records), None);
        assert!(
            chain.checks.iter().all(|c| c.state != CheckState::Failure),
            "seed {seed}: {:?}",
            chain.checks
        );
        let stored: Vec<u64> = segment_records(&records).iter().map(|s| s.seq).collect();
        for seq in &saved {
            assert!(
                stored.contains(seq),
                "seed {seed}: segment {seq} was reported saved but is missing"
            );
        }
        match Verdict::from_checks(&chain.checks, chain.cut_off) {
            Verdict::IntactCutOff { .. } => cut_off_recordings += 1,
            other => panic!("seed {seed}: a killed recording must read as cut off, got {other:?}"),
        }
        let listing = vault.listings().unwrap();
        let this = listing.iter().find(|l| l.summary.id == id.to_string()).unwrap();
        assert_eq!(this.state, custody_vault::store::State::CutOff);
    }
    assert!(
        cut_off_recordings >= runs / 2,
        "only {cut_off_recordings} runs got as far as recording"
    );
    // And a new recording starts and completes normally.
    let out = env.record_synthetic(2, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_deleted_or_corrupted_index_is_rebuilt_without_loss() {
    let env = Env::new();
    for _ in 0..2 {
        assert!(env.record_synthetic(2, &[]).status.success());
    }
    // An index kept up to date while recording agrees with the journals: no rebuild.
    let (_, notices) = custody_vault::Vault::open(&env.vault).unwrap();
    assert!(notices.is_empty(), "{notices:?}");
    let before = serde_json::to_string(&env.open_vault().listings().unwrap()).unwrap();

    // Deleted.
    std::fs::remove_dir_all(env.vault.join("index")).unwrap();
    let (vault, notices) = custody_vault::Vault::open(&env.vault).unwrap();
    assert!(!notices.is_empty(), "a rebuild must be reported");
    assert_eq!(serde_json::to_string(&vault.listings().unwrap()).unwrap(), before);
    drop(vault);

    // Corrupted: every index file overwritten with garbage.
    for f in files_under(&env.vault.join("index")) {
        let len = std::fs::metadata(&f).unwrap().len().max(64) as usize;
        std::fs::write(&f, vec![0xa5u8; len]).unwrap();
    }
    let (vault, notices) = custody_vault::Vault::open(&env.vault).unwrap();
    assert!(!notices.is_empty(), "a rebuild must be reported");
    assert_eq!(serde_json::to_string(&vault.listings().unwrap()).unwrap(), before);
    drop(vault);

    // And the forced rebuild command.
    let out = env.run(&["vault", "rebuild-index"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 recordings"));
}

/// A mounted tmpfs, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_ends_the_recording_with_an_error_and_keeps_what_was_saved() {
    let mount = tempfile::tempdir().unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1600k", "tmpfs"])
        .arg(mount.path())
        .status()
        .unwrap();
    assert!(status.success(), "this test mounts a small tmpfs to fill it, which needs root");
    let _guard = Tmpfs(mount.path().to_path_buf());
    let env = Env::with_vault_in(Some(mount.path().join("vault")));
    let started = Instant::now();
    let out = env.record_synthetic(60, &[]);
    assert!(started.elapsed() < Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("No space left on device"), "{stderr}");
    let ev = events(&out.stdout);
    let id = recording_id(&ev).unwrap();
    let saved = ev.iter().filter(|e| e["event"] == "saved").count();
    assert!(saved >= 1, "some segments fit before the disk filled");
    // Regression (issue 16 §5): the full disk ended the recording without an `ended` event.
    let ended = ev.iter().find(|e| e["event"] == "ended").expect("an ended event");
    assert_eq!(
        (ended["ended"].as_str(), ended["segments"].as_u64()),
        (Some("error"), Some(saved as u64))
    );
    assert!(ended["message"].as_str().unwrap_or("").contains("No space left"), "{ended}");

    let vault = env.open_vault();
    let records = vault.records(&id).unwrap();
    let chain = verify_chain(&custody_format::testkit::concat(&records), None);
    assert!(chain.checks.iter().all(|c| c.state != CheckState::Failure), "{:?}", chain.checks);
    assert_eq!(segment_records(&records).len(), saved);
    match records.last().unwrap().record() {
        Record::End(e) => {
            assert_eq!(e.reason, EndReason::Error);
            assert!(e.message.as_deref().unwrap_or("").contains("No space left"));
        }
        _ => {
            assert!(chain.cut_off.is_some(), "without room for an end record, it reads as cut off")
        }
    }
    let check = env.run(&["vault", "check"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
}

/// An import onto a disk that fills part-way, with two segments sealed at once: every
/// `saved` event, in order, is a segment on record; the recording ends with an error record
/// after the last of them that says the disk is full; and no sealed file is left that no
/// record names (the one sealed beside the segment that failed is removed).
#[test]
fn an_import_onto_a_disk_that_fills_ends_after_the_last_saved_segment_and_leaves_no_stray_file() {
    let clips = tempfile::tempdir().unwrap();
    let clip = clips.path().join("clip.mp4");
    make_clip(&clip, 60, 1);
    let mount = tempfile::tempdir().unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1600k", "tmpfs"])
        .arg(mount.path())
        .status()
        .unwrap();
    assert!(status.success(), "this test mounts a small tmpfs to fill it, which needs root");
    let _guard = Tmpfs(mount.path().to_path_buf());
    let env = Env::with_vault_in(Some(mount.path().join("vault")));
    let out =
        env.run(&["import", "--json", "--no-upload", "-r", &env.recipient, clip.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    let ev = events(&out.stdout);
    let id = recording_id(&ev).unwrap();
    let saved: Vec<u64> =
        ev.iter().filter(|e| e["event"] == "saved").filter_map(|e| e["seq"].as_u64()).collect();
    assert!(!saved.is_empty(), "some segments fit before the disk filled");
    assert_eq!(saved, (1..=saved.len() as u64).collect::<Vec<_>>(), "saved in order");
    let ended = ev.iter().find(|e| e["event"] == "ended").expect("an ended event");
    assert_eq!(
        (ended["ended"].as_str(), ended["segments"].as_u64()),
        (Some("error"), Some(saved.len() as u64))
    );

    let vault = env.open_vault();
    let records = vault.records(&id).unwrap();
    let chain = verify_chain(&custody_format::testkit::concat(&records), None);
    assert!(chain.checks.iter().all(|c| c.state != CheckState::Failure), "{:?}", chain.checks);
    assert_eq!(segment_records(&records).len(), saved.len());
    match records.last().unwrap().record() {
        Record::End(e) => {
            assert_eq!(e.reason, EndReason::Error);
            assert!(e.message.as_deref().unwrap_or("").contains("No space left"), "{e:?}");
        }
        _ => {
            assert!(chain.cut_off.is_some(), "without room for an end record, it reads as cut off")
        }
    }
    let files = files_under(&vault.recording_dir(&id).join("segments"));
    assert_eq!(files.len(), saved.len(), "every sealed file has its record: {files:?}");
}

#[test]
fn clear_errors_for_missing_device_missing_key_and_no_recipient() {
    let env = Env::new();
    let out = env.run(&[
        "record",
        "--format",
        "video4linux2",
        "--input",
        "/dev/video-custody-none",
        "-r",
        &env.recipient,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing was recorded") && err.contains("hint:"), "{err}");

    // Nobody listens on the discard port: connection refused.
    let out = env.run(&["record", "--input", "rtsp://127.0.0.1:9/stream", "-r", &env.recipient]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing was recorded") && err.contains("hint:"), "{err}");

    let out = env.run(&["record", "--format", "lavfi", "--input", "testsrc2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no recipients"));

    let out = env.run(&["record", "--format", "lavfi", "--input", "testsrc2", "-r", "age1notakey"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an age X25519 recipient"));

    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(common::bin())
        .env("CUSTODY_VAULT", empty.path())
        .args(["record", "--format", "lavfi", "--input", "testsrc2", "-r", &env.recipient])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("custody keygen"));
}

#[test]
fn a_passphrase_protected_key_needs_its_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let vault = dir.path().join("v");
    let custody = |pass: Option<&str>, args: &[&str]| {
        let mut c = Command::new(common::bin());
        c.env("CUSTODY_VAULT", &vault).env_remove("CUSTODY_PASSPHRASE").stdin(Stdio::null());
        if let Some(p) = pass {
            c.env("CUSTODY_PASSPHRASE", p);
        }
        c.args(args).output().unwrap()
    };
    assert!(custody(Some("s3cret phrase"), &["keygen", "--passphrase"]).status.success());
    let (_, recipient) = custody_vault::keys::new_recipient_identity();
    let args = ["record", "--format", "lavfi", "--input", "testsrc2=duration=1", "-r", &recipient];
    let out = custody(None, &args);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CUSTODY_PASSPHRASE"));
    let out = custody(Some("wrong"), &args);
    assert!(String::from_utf8_lossy(&out.stderr).contains("passphrase does not open"));
    let out = custody(Some("s3cret phrase"), &args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn listings_show_complete_and_cut_off() {
    let env = Env::new();
    assert!(env.record_synthetic(2, &[]).status.success());
    let mut child = env
        .cmd()
        .args(["record", "--json", "--format", "lavfi", "-r", &env.recipient])
        .args(["--input", "testsrc2=size=320x240:rate=25"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the first saved segment, then kill.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match lines.next() {
            Some(Ok(l)) if l.contains("\"saved\"") => break,
            Some(Ok(_)) => continue,
            _ => break,
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let out = env.run(&["recordings", "--json"]);
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let states: Vec<&str> = list.iter().map(|l| l["state"].as_str().unwrap()).collect();
    assert_eq!(states, vec!["complete", "cut-off"]);
    let text = String::from_utf8_lossy(&env.run(&["recordings"]).stdout).to_string();
    assert!(text.contains("complete") && text.contains("cut off"), "{text}");
}
