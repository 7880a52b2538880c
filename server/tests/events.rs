//! The server's operations log, read from a real server process's stderr: one line per
//! event (enrolled, enrollment refused, recording opened, segment stored, recording
//! ended, member added, bundle retrieved, device revoked), no secrets, no addresses unless
//! asked for, text or JSON. And a recording whose device stopped sending: live, then
//! stalled, then cut off, in the legal team's listing.

mod common;

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use custody_format::ids::PublicKey;
use custody_server::{Config, Liveness, Role, Server};

struct Proc {
    child: Child,
    base: String,
    key: PublicKey,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_server(dir: &std::path::Path, extra: &[&str]) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_custody-server"))
        .args(["--data", dir.to_str().unwrap(), "--insecure-http", "--log-events"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(parts.first(), Some(&"listening"), "{line}");
    Proc { child, base: format!("http://{}", parts[1]), key: PublicKey::parse(parts[2]).unwrap() }
}

/// Returns what the server wrote on stderr, up to and including its line naming `last` (the
/// last event the test caused), then stops it. The server writes event lines from a queue
/// on a thread of its own, so a line may come a moment after the answer to the request that
/// caused it: it is waited for (at most 10 s), not assumed to be there already.
fn stderr_of(mut p: Proc, last: &str) -> String {
    let mut err = std::io::BufReader::new(p.child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut line = String::new();
        while err.read_line(&mut line).is_ok_and(|n| n > 0) {
            if tx.send(std::mem::take(&mut line)).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut s = String::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        s.push_str(&line);
        if line.contains(last) {
            break;
        }
    }
    let _ = p.child.kill();
    let _ = p.child.wait();
    // The rest, to the end of the pipe.
    s.extend(rx.iter());
    let _ = reader.join();
    s
}

/// Drives one of every event through a server started with `extra`, and returns its stderr
/// with the secrets that must not be in it (the tokens).
async fn every_event(extra: &[&str]) -> (String, Vec<String>, PublicKey) {
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let d = Device::new("events-device");
    let token = custody_server::issue_token(dir.path(), "obs-7", Duration::from_secs(600)).unwrap();
    let member = custody_server::add_member(dir.path(), "Ana Ruiz", Role::Admin).unwrap();
    let p = spawn_server(dir.path(), extra);
    assert_eq!(d.enroll(&c, &p.base, &token).await.status, 200);
    assert_eq!(d.enroll(&c, &p.base, &token).await.status, 403, "a spent token");
    let chain = Chain::new(1, &d, 2, true, b"e");
    for seq in 0..chain.records.len() {
        let s = d.put(&c, &p.base, &p.key, chain.id, seq as u64, chain.body(seq)).await;
        assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
    }
    let r = c
        .get(format!("{}/v1/recordings/{}/bundle", p.base, chain.id))
        .bearer_auth(&member)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = r.bytes().await.unwrap();
    let r = c
        .post(format!("{}/v1/devices/revoke", p.base))
        .bearer_auth(&member)
        .json(&serde_json::json!({ "device": d.public.to_string(), "reason": "seized" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    (stderr_of(p, "device revoked"), vec![token, member], d.public)
}

const EVENTS: [&str; 8] = [
    "device enrolled",
    "enrollment refused",
    "recording opened",
    "segment stored",
    "recording ended",
    "member added",
    "bundle retrieved",
    "device revoked",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_is_one_text_line_without_secrets_or_addresses() {
    let (err, secrets, device) = every_event(&[]).await;
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("custody-server: 20")).collect();
    for event in EVENTS {
        assert!(lines.iter().any(|l| l.contains(&format!("Z {event}"))), "{event}:\n{err}");
    }
    assert_eq!(lines.iter().filter(|l| l.contains("Z segment stored ")).count(), 2, "{err}");
    let refused = lines.iter().find(|l| l.contains("enrollment refused")).unwrap();
    assert!(refused.contains("reason=enroll.token_used"), "{refused}");
    let enrolled = lines.iter().find(|l| l.contains("device enrolled")).unwrap();
    assert!(enrolled.contains(&format!("device={}", device.fingerprint())), "{enrolled}");
    assert!(enrolled.contains("label=obs-7"), "{enrolled}");
    for s in &secrets {
        assert!(!err.contains(s.as_str()), "a token is in the log:\n{err}");
    }
    assert!(!err.contains("127.0.0.1") && !err.contains("from="), "an address:\n{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_for_log_collectors_with_addresses_when_asked() {
    let (err, secrets, _) = every_event(&["--log-json", "--log-addresses"]).await;
    let events: Vec<serde_json::Value> = err
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for event in EVENTS {
        let e = events.iter().find(|e| e["event"] == event);
        let e = e.unwrap_or_else(|| panic!("{event}:\n{err}"));
        assert!(e["at"].as_str().unwrap().ends_with('Z'), "{e}");
    }
    let stored = events.iter().find(|e| e["event"] == "segment stored").unwrap();
    assert_eq!(stored["from"], "127.0.0.1", "{stored}");
    assert_eq!(stored["seq"], "1");
    assert!(stored["log_index"].is_string());
    for s in &secrets {
        assert!(!err.contains(s.as_str()), "a token is in the log:\n{err}");
    }
}

/// The listing as the legal team's `custody recordings` reads it.
async fn listed(c: &reqwest::Client, base: &str, token: &str) -> serde_json::Value {
    let r = c.get(format!("{base}/v1/recordings")).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    v["recordings"][0].clone()
}

/// Polls the listing until `state`, for at most 30 s.
async fn until_state(
    c: &reqwest::Client,
    base: &str,
    token: &str,
    state: &str,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = listed(c, base, token).await;
        if r["state"] == state || Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_stops_sending_is_stalled_then_cut_off_not_live() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.insecure_http = true;
    config.recipients =
        vec!["age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq".into()];
    config.liveness = Liveness {
        stalled_after: Some(Duration::from_secs(2)),
        cut_off_after: Duration::from_secs(5),
    };
    let (server, _) = Server::open(config).unwrap();
    let (addr, _task) =
        custody_server::serve::spawn(server.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{addr}");
    let c = client();
    let d = Device::new("stops");
    let token = server.issue_token("obs", Duration::from_secs(600)).unwrap();
    assert_eq!(d.enroll(&c, &base, &token).await.status, 200);
    let member = custody_server::add_member(dir.path(), "Bea", Role::Member).unwrap();
    let key = server.public_key();

    // The device sends its header and two segments, and then nothing: it was killed.
    let chain = Chain::new(1, &d, 2, false, b"s");
    let sent = Instant::now();
    for seq in 0..3 {
        let s = d.put(&c, &base, &key, chain.id, seq, chain.body(seq as usize)).await;
        assert_eq!(s.status, 200);
    }
    let first = listed(&c, &base, &member).await;
    if sent.elapsed() < Duration::from_secs(2) {
        assert_eq!(first["state"], "live", "{first}");
        assert!(first.get("silent_for_us").is_none(), "{first}");
    }
    let stalled = until_state(&c, &base, &member, "stalled").await;
    assert_eq!(stalled["state"], "stalled", "{stalled}");
    let silent = stalled["silent_for_us"].as_i64().unwrap();
    assert!((2_000_000..5_000_000).contains(&silent), "{stalled}");
    let cut = until_state(&c, &base, &member, "cut off").await;
    assert_eq!(cut["state"], "cut off", "{cut}");
    assert!(cut["silent_for_us"].as_i64().unwrap() >= 5_000_000, "{cut}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_log_is_an_event_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let d = Device::new("damaged-log");
    let token = custody_server::issue_token(dir.path(), "obs", Duration::from_secs(600)).unwrap();
    let p = spawn_server(dir.path(), &["--log-json"]);
    assert_eq!(d.enroll(&c, &p.base, &token).await.status, 200);
    let chain = Chain::new(1, &d, 3, false, b"d");
    for seq in 0..4 {
        let s = d.put(&c, &p.base, &p.key, chain.id, seq as u64, chain.body(seq)).await;
        assert_eq!(s.status, 200);
    }
    let err = stderr_of(p, "recording opened");
    assert!(!err.contains("log damaged"), "{err}");
    // One bit flipped in the middle of entry 2.
    let path = dir.path().join("log/entries.bin");
    let frame = custody_durable::journal::frames_from(&path, 0).unwrap().nth(2).unwrap().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(frame.payload_offset() + 5) as usize] ^= 0x04;
    std::fs::write(&path, &bytes).unwrap();

    let err = stderr_of(spawn_server(dir.path(), &["--log-json"]), "log damaged");
    let damaged: Vec<serde_json::Value> = err
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["event"] == "log damaged")
        .collect();
    assert_eq!(damaged.len(), 1, "{err}");
    assert!(damaged[0]["detail"].as_str().unwrap().contains("entry 2"), "{err}");
}
