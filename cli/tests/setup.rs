//! The legal team's set-up, through the real binary: `custody serve` refuses to run with no
//! case recipient or a malformed one; admin commands refuse a directory that is not a
//! server's data directory and absurd token lifetimes; the token's print-out names the
//! server's real address and fingerprint, and `custody enroll --expect-fingerprint` refuses
//! another server before pinning anything; a clean stop (SIGTERM) leaves nothing for the
//! next start to rebuild.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn serve_args(data: &Path, extra: &[&str]) -> Output {
    Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(extra)
        .output()
        .unwrap()
}

/// `custody serve` with its stderr in `log`, once it has printed its fingerprint; returns
/// the process, its URL and the fingerprint.
fn start(env: &Env, data: &Path, log: &Path) -> (Killed, String, String) {
    start_with(env, data, log, &[])
}

fn start_with(env: &Env, data: &Path, log: &Path, extra: &[&str]) -> (Killed, String, String) {
    let mut child = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--recipient", &env.recipient, "--data"])
        .arg(data)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Killed(child);
    let (mut url, mut fp) = (String::new(), String::new());
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(u) = line.strip_prefix("Listening on ") {
            url = u.to_string();
        }
        if let Some(f) = line.strip_prefix("Fingerprint: ") {
            fp = f.to_string();
            break;
        }
    }
    assert!(!url.is_empty() && !fp.is_empty(), "{}", std::fs::read_to_string(log).unwrap());
    (child, url, fp)
}

#[test]
fn serve_refuses_no_case_recipient_and_a_malformed_one() {
    let env = Env::new();
    let data = env.dir.path().join("server");

    let out = serve_args(&data, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no case recipient"), "{err}");
    assert!(err.contains("custody keygen --recipient-key --output"), "{err}");
    assert!(err.contains("--without-case-recipient"), "{err}");
    assert!(!data.exists(), "nothing is made before the refusal");

    // A typo in a recipient is caught now, naming it.
    let typo = format!("{}x", &env.recipient[..env.recipient.len() - 1]);
    let out = serve_args(&data, &["--recipient", &env.recipient, "--recipient", &typo]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&typo) && err.contains("not an age recipient"), "{err}");

    // And in the data directory's recipients.txt, naming the file.
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("recipients.txt"), "# the case key\nage1notarecipient\n").unwrap();
    let out = serve_args(&data, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("recipients.txt lists `age1notarecipient`"), "{err}");

    // A good one in the file is enough.
    std::fs::write(data.join("recipients.txt"), format!("{}\n", env.recipient)).unwrap();
    let mut child = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = BufReader::new(child.stdout.take().unwrap()).lines().next().unwrap().unwrap();
    drop(Killed(child));
    assert!(first.starts_with("Listening on https://"), "{first}");
}

#[test]
fn admin_commands_refuse_what_is_not_a_servers_data_directory() {
    let env = Env::new();
    let data = env.dir.path().join("server");
    let log = env.dir.path().join("serve.stderr");
    let (served, _, _) = start(&env, &data, &log);
    drop(served);

    let nosuch = env.dir.path().join("nosuch");
    let admin = |args: &[&str]| Command::new(bin()).arg("admin").args(args).output().unwrap();
    let out = admin(&["enroll-token", "--label", "obs", "--data", nosuch.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("does not exist: it is not a custody server's data directory"), "{err}");
    assert!(err.contains(&format!("probably {}", data.display())), "where it is: {err}");
    assert!(!nosuch.exists(), "no directory is made");

    // A directory that exists but holds no server.
    let empty = env.dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out =
        admin(&["member", "add", "--role", "member", "Ana", "--data", empty.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("it has no server.key, server.pub, log"), "{err}");
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0, "nothing written");

    for ttl in ["0", "100000"] {
        let out = Command::new(bin())
            .args(["admin", "enroll-token", "--label", "o", "--ttl-hours", ttl, "--data"])
            .arg(&data)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--ttl-hours {ttl}: {}", stderr(&out));
        assert!(stderr(&out).contains("1..=720"), "{}", stderr(&out));
    }
}

#[test]
fn the_token_names_the_real_server_and_enroll_holds_it_to_its_fingerprint() {
    let env = Env::new();
    let data = env.dir.path().join("server");
    let log = env.dir.path().join("serve.stderr");
    let (_served, url, fp) = start(&env, &data, &log);

    let out = Command::new(bin())
        .args(["admin", "enroll-token", "--label", "obs-3", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    let text = ok(&out);
    let token = text.lines().nth(1).unwrap().to_string();
    assert!(text.contains(&format!("Server key fingerprint: {fp}")), "{text}");
    let command = format!("custody enroll --expect-fingerprint {fp} {url} {token}");
    assert!(text.contains(&command), "{text}\nwants: {command}");

    // A server with another key (a fingerprint one character off) is refused, before the
    // token is spent or anything is pinned.
    let last = fp.chars().last().unwrap();
    let other = format!("{}{}", &fp[..fp.len() - 1], if last == '0' { '1' } else { '0' });
    let out = env.run(&["enroll", "--expect-fingerprint", &other, &url, &token]);
    let err = stderr(&out);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains(&other) && err.contains(&fp), "{err}");
    assert!(!env.vault.join("enrollment.json").exists(), "nothing pinned");

    // A member's print-out names the server too.
    let out = Command::new(bin())
        .args(["admin", "member", "add", "--role", "member", "Ana", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    let text = ok(&out);
    assert!(text.contains(&format!("custody login {url} --token ")), "{text}");

    // The printed command, as printed, enrolls.
    let words: Vec<&str> = command.split(' ').skip(1).collect();
    let text = ok(&env.run(&words));
    assert!(text.contains("Enrolled as \"obs-3\""), "{text}");
    assert!(text.contains(&fp), "{text}");
}

#[test]
fn a_clean_stop_leaves_nothing_to_rebuild() {
    let env = Env::new();
    let data = env.dir.path().join("server");
    let log = env.dir.path().join("serve.stderr");
    let (served, url, _) = start(&env, &data, &log);
    ok(&env.run(&["enroll", &url, &enroll_token(&data, "observer-1")]));
    ok(&env.run(&["login", &url, "--token", &add_member(&data, "lawyer", "member")]));
    let out = env.record_synthetic(3, &["--upload-wait", "30"]);
    let id = recording_id(&events(ok(&out).as_bytes())).unwrap().to_string();
    // Logged after the last upload: the index has nothing for it, yet must cover it.
    let before: serde_json::Value =
        serde_json::from_str(&ok(&env.run(&["recordings", "--server", "--json"]))).unwrap();

    // SIGTERM, as systemd stops a service.
    let mut served = served;
    let pid = served.0.id() as libc::pid_t;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = served.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status:?}: {said}");
    assert!(said.contains("custody: stopped; the index is saved"), "{said}");

    let log2 = env.dir.path().join("serve2.stderr");
    let (_again, url2, _) = start(&env, &data, &log2);
    let said = std::fs::read_to_string(&log2).unwrap();
    assert!(!said.contains("rebuilt") && !said.contains("the index covers"), "{said}");
    // The index agrees: the same recording, segments and receipts as before the stop.
    ok(&env.run(&["login", &url2, "--token", &add_member(&data, "lawyer-2", "member")]));
    let after: serde_json::Value =
        serde_json::from_str(&ok(&env.run(&["recordings", "--server", "--json"]))).unwrap();
    let pick = |v: &serde_json::Value| {
        v["recordings"].as_array().unwrap().iter().find(|r| r["recording_id"] == id).cloned()
    };
    let (b, a) = (pick(&before).unwrap(), pick(&after).unwrap());
    assert_eq!(a["state"], "complete", "{a}");
    for field in ["segments", "records", "gaps", "last_receipt_at_us"] {
        assert_eq!(a[field], b[field], "{field}: {a} vs {b}");
    }
}

#[test]
fn a_recorder_killed_mid_recording_is_listed_stalled_not_live() {
    let env = Env::new();
    let data = env.dir.path().join("server");
    let log = env.dir.path().join("serve.stderr");
    let (_served, url, _) = start_with(&env, &data, &log, &["--stalled-after", "3"]);
    ok(&env.run(&["enroll", &url, &enroll_token(&data, "observer-9")]));
    ok(&env.run(&["login", &url, "--token", &add_member(&data, "lawyer", "member")]));

    // A camera recording live, paced in real time, killed outright after two segments.
    record_live_then_kill(&env, 2);

    // Polled, bounded: the listing says it stalled, and for how long.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = ok(&env.run(&["recordings", "--server"]));
        if text.contains("stalled (no segment for") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(text.contains("stalled (no segment for"), "{text}");
    assert!(!text.contains(" live "), "{text}");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&env.run(&["recordings", "--server", "--json"]))).unwrap();
    let r = &v["recordings"][0];
    assert_eq!(r["state"], "stalled", "{r}");
    assert!(r["silent_for_us"].as_i64().unwrap() >= 3_000_000, "{r}");
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains(" recording opened ") && said.contains(" segment stored "), "{said}");
}
