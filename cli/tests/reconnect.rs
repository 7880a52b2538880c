//! `custody record` from an SRT listener whose sender (the `ffmpeg` CLI as the phone app)
//! drops and comes back: one recording with a gap per drop, whose chain verifies with the
//! gaps reported as gaps; and a sender that comes back as another stream: two linked
//! recordings, each of which verifies.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use custody_format::chain::verify_chain;
use custody_format::ids::RecordingId;
use custody_format::record::{EndReason, Record};
use custody_format::report::{code, CheckState};

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits (bounded) until something listens on UDP `port`, as an SRT listener does.
fn wait_udp_listener(port: u16) {
    let needle = format!(":{port:04X} ");
    for _ in 0..1000 {
        let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
        if table.lines().any(|l| {
            l.split_whitespace().nth(1).is_some_and(|a| format!("{a} ").ends_with(&needle))
        }) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("nothing listens on UDP port {port}");
}

fn clip(env: &Env, name: &str, size: &str) -> std::path::PathBuf {
    let path = env.dir.path().join(name);
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate=25:duration=2"))
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-f", "mpegts"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    path
}

fn send(file: &std::path::Path, port: u16) -> Child {
    wait_udp_listener(port);
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-i"])
        .arg(file)
        .args(["-c", "copy", "-f", "mpegts"])
        .arg(format!("srt://127.0.0.1:{port}?mode=caller&linger=2"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Starts `custody record --json` on an SRT listener; its events arrive on the channel.
fn record(env: &Env, port: u16) -> (Killed, mpsc::Receiver<serde_json::Value>) {
    let mut child = env
        .cmd()
        .args(["record", "--json", "--no-upload", "--segment-seconds", "1"])
        .args(["--reconnect-wait", "4", "-r", &env.recipient, "--input"])
        .arg(format!("srt://127.0.0.1:{port}?mode=listener"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    (Killed(child), rx)
}

/// Every event until the recorder exits, starting the next sender at each loss.
fn drive(
    rx: &mpsc::Receiver<serde_json::Value>,
    port: u16,
    mut senders: Vec<std::path::PathBuf>,
) -> Vec<serde_json::Value> {
    senders.reverse();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut events = Vec::new();
    let mut running = Vec::new();
    while let Ok(ev) = rx.recv_timeout(Duration::from_secs(30)) {
        assert!(Instant::now() < deadline, "the recorder did not end: {events:?}");
        if ev["event"] == "sender-lost" {
            if let Some(next) = senders.pop() {
                running.push(send(&next, port));
            }
        }
        events.push(ev);
    }
    for mut s in running {
        let _ = s.kill();
        let _ = s.wait();
    }
    events
}

fn chain_of(
    env: &Env,
    id: &str,
) -> (Vec<custody_format::record::SignedRecord>, Vec<custody_format::report::Check>) {
    let id = RecordingId::parse(id).unwrap();
    let records = env.open_vault().records(&id).unwrap();
    let bytes: Vec<u8> = records.iter().flat_map(|r| r.to_bytes()).collect();
    let report = verify_chain(&bytes, None);
    assert!(report.cut_off.is_none(), "the recording has its end record");
    (records, report.checks)
}

#[test]
fn a_sender_that_drops_twice_is_one_recording_with_two_gaps() {
    let env = Env::new();
    let a = clip(&env, "a.ts", "320x240");
    let port = free_udp_port();
    let (_recorder, rx) = record(&env, port);
    let mut first = send(&a, port);
    let events = drive(&rx, port, vec![a.clone(), a.clone()]);
    let _ = first.kill();
    let _ = first.wait();
    let started: Vec<_> = events.iter().filter(|e| e["event"] == "started").collect();
    assert_eq!(started.len(), 1, "one recording: {events:?}");
    assert_eq!(events.iter().filter(|e| e["event"] == "sender-back").count(), 2, "{events:?}");
    let ended = events.iter().find(|e| e["event"] == "ended").unwrap();
    assert_eq!(ended["ended"], "input ended", "{ended}");
    let message = ended["message"].as_str().unwrap();
    assert!(message.contains("no sender connected again within 4 s"), "{message}");

    let (records, checks) = chain_of(&env, started[0]["recording"].as_str().unwrap());
    let failed: Vec<_> = checks.iter().filter(|c| c.state == CheckState::Failure).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert!(checks.iter().any(|c| c.code == code::MEDIA_CONTINUOUS), "{checks:?}");
    let gaps: Vec<_> = checks.iter().filter(|c| c.code == code::MEDIA_GAP).collect();
    assert_eq!(gaps.len(), 2, "{checks:?}");
    for g in gaps {
        assert!(
            g.message.starts_with("gap ")
                && g.message.contains(
                    "the stream's sender disconnected and a sender connected again — stream senders are not authenticated"
                ),
            "{}",
            g.message
        );
    }
    let segments = segment_records(&records);
    assert_eq!(segments.iter().filter(|s| s.gap.is_some()).count(), 2);
    let frames: u64 = segments.iter().map(|s| s.video_frames).sum();
    // Media from all three sends is in the one recording (more than two sends' worth; a
    // sender's last frames in flight when it exits may not arrive, as over any network).
    assert!(frames > 2 * 50 && frames <= 3 * 50, "{frames} frames");
}

#[test]
fn a_sender_that_comes_back_as_another_stream_makes_two_linked_recordings() {
    let env = Env::new();
    let a = clip(&env, "a.ts", "320x240");
    let b = clip(&env, "b.ts", "160x120");
    let port = free_udp_port();
    let (_recorder, rx) = record(&env, port);
    let mut first = send(&a, port);
    let events = drive(&rx, port, vec![b]);
    let _ = first.kill();
    let _ = first.wait();
    let started: Vec<String> = events
        .iter()
        .filter(|e| e["event"] == "started")
        .map(|e| e["recording"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(started.len(), 2, "{events:?}");
    let ends: Vec<_> = events.iter().filter(|e| e["event"] == "ended").collect();
    assert_eq!(ends[0]["ended"], "sender changed", "{events:?}");
    assert_eq!(ends[0]["continued_in"], started[1].as_str());

    let (first_records, first_checks) = chain_of(&env, &started[0]);
    let (second_records, second_checks) = chain_of(&env, &started[1]);
    for checks in [&first_checks, &second_checks] {
        let failed: Vec<_> = checks.iter().filter(|c| c.state == CheckState::Failure).collect();
        assert!(failed.is_empty(), "{failed:?}");
    }
    let Record::End(end) = first_records.last().unwrap().record() else { panic!("no end") };
    assert_eq!(end.reason, EndReason::SenderChanged);
    assert_eq!(end.continued_in.map(|i| i.to_string()).as_deref(), Some(started[1].as_str()));
    let Record::Header(h) = second_records[0].record() else { panic!("no header") };
    let follows = h.follows.expect("the second recording names the first");
    assert_eq!(follows.recording.to_string(), started[0]);
    assert_eq!(follows.end, first_records.last().unwrap().hash());
    let said = |checks: &[custody_format::report::Check], c: &str, id: &str| {
        checks.iter().any(|k| k.code == c && k.message.contains(id))
    };
    assert!(said(&first_checks, code::CHAIN_CONTINUED_IN, &started[1]), "{first_checks:?}");
    assert!(said(&second_checks, code::CHAIN_FOLLOWS, &started[0]), "{second_checks:?}");
}
