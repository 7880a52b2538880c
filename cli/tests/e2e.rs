//! End to end through the real binary, as the three kinds of user would run it: a legal
//! team's `custody serve` on loopback with TLS, an observer's laptop recording a phone that
//! streams to it over SRT (the `ffmpeg` tool with `-re` plays the phone) while uploading
//! live, and a lawyer who logs in, fetches the evidence bundle as one `.tar`, unpacks it
//! with the system's `tar`, and verifies both forms offline against the pinned server key.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{add_member, enroll_token, events, make_clip, ok, serve, Env, Killed};

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits (bounded) until something listens on UDP `port`, as an SRT listener does.
fn wait_udp_listener(port: u16) {
    let needle = format!(":{port:04X}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
        if table.lines().any(|l| l.split_whitespace().nth(1).is_some_and(|a| a.ends_with(&needle)))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on UDP port {port}");
}

fn json_of(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn a_phone_streaming_srt_is_recorded_live_uploaded_fetched_as_tar_and_verified() {
    let env = Env::new();
    let data = env.dir.path().join("server");
    let server = serve(&env, &data, "127.0.0.1:0");
    let url = server.url.clone();

    // The legal team enrolls the observer's laptop and adds a lawyer.
    ok(&env.run(&["enroll", &url, &enroll_token(&data, "observer-12")]));
    ok(&env.run(&["login", &url, "--token", &add_member(&data, "lawyer-b", "member")]));

    // The phone's own file (6 s, a keyframe every second), streamed at its real pace.
    let phone_file = env.dir.path().join("phone.mp4");
    make_clip(&phone_file, 6, 1);
    let port = free_udp_port();
    let recorder = env
        .cmd()
        // The phone streams once: the recording ends when it stops, not after a wait for it.
        .args(["record", "--json", "--upload-wait", "30", "--reconnect-wait", "0", "--input"])
        .arg(format!("srt://127.0.0.1:{port}?mode=listener"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut recorder = Killed(recorder);
    wait_udp_listener(port);
    let sender = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-i"])
        .arg(&phone_file)
        .args(["-c", "copy", "-f", "mpegts"])
        .arg(format!("srt://127.0.0.1:{port}?mode=caller"))
        .status()
        .unwrap();
    assert!(sender.success(), "the phone could not stream");

    // The stream ended: the recorder ends the recording and flushes the upload (bounded).
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = recorder.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the recorder did not end after the stream did");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = Vec::new();
    std::io::Read::read_to_end(&mut recorder.0.stdout.take().unwrap(), &mut stdout).unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&stdout));
    let ev = events(&stdout);
    let started = ev.iter().find(|e| e["event"] == "started").expect("a started event");
    let id = started["recording"].as_str().unwrap().to_string();
    let ended = ev.iter().find(|e| e["event"] == "ended").expect("an ended event");
    assert_eq!(ended["ended"], "input ended", "{ended}");
    let segments = ended["segments"].as_u64().unwrap();
    assert!(segments >= 3, "6 s in 2 s segments: {ended}");
    let upload = ev.iter().find(|e| e["event"] == "upload").expect("an upload summary");
    assert_eq!(upload["waiting"], 0, "everything receipted before record exits: {upload}");
    let receipted = ev.iter().filter(|e| e["event"] == "receipted").count() as u64;
    assert_eq!(receipted, segments + 2, "header, segments and end record: {upload}");

    // The observer's status agrees.
    let status = json_of(&ok(&env.run(&["status", "--json"])));
    assert_eq!(status["waiting"], 0, "{status}");

    // The lawyer sees it on the server, fetches it as one .tar, and verifies it offline.
    let listing = json_of(&ok(&env.run(&["recordings", "--server", "--json"])));
    assert!(listing.to_string().contains(&id), "{listing}");
    let tar = env.dir.path().join("evidence.tar");
    ok(&env.run(&["fetch", &id, "-o", tar.to_str().unwrap(), "--tar"]));
    let report = json_of(&ok(&env.run(&["verify", "--json", tar.to_str().unwrap()])));
    assert_eq!(report["verdict"], "intact-complete", "{report}");
    assert_eq!(report["trust"]["trust"], "trusted", "the key saved at login is the anchor");

    // The .tar survives the system's own tar: unpacked, the directory verifies the same,
    // and its manifest checks with sha256sum alone.
    let unpacked = env.dir.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    let st = Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(&unpacked).status().unwrap();
    assert!(st.success());
    let dir = unpacked.join(format!("custody-bundle-{id}"));
    let st = Command::new("sha256sum")
        .args(["--quiet", "-c", "MANIFEST.sha256"])
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(st.success(), "sha256sum -c MANIFEST.sha256 failed");
    let out =
        env.run(&["verify", "--identity", env.case_key.to_str().unwrap(), dir.to_str().unwrap()]);
    let text = ok(&out);
    assert!(text.contains("INTACT AND COMPLETE") && text.contains("(trusted)"), "{text}");

    // Damage in transit is caught: one flipped byte in the unpacked copy.
    let seg = dir.join("recording/segments/00000001.age");
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&seg, bytes).unwrap();
    let out = env.run(&["verify", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("TAMPERED"));
}
