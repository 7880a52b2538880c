//! Uploading while recording, through the real binary and a real `custody serve` on
//! loopback: every record receipted by the time `custody record` exits; a recording made
//! while the server is down goes up once it is back; a recorder killed with SIGKILL leaves
//! a cut-off recording that `custody upload` completes; `custody status` says which.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{enroll_token, events, ok, record_live_then_kill, recording_id, serve, Env};
use custody_format::ids::{PublicKey, RecordingId};

fn now_us() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    i64::try_from(d.as_micros()).unwrap()
}

fn enroll(env: &Env, data: &Path, url: &str) {
    ok(&env.run(&["enroll", url, &enroll_token(data, "observer-3")]));
}

fn status(env: &Env) -> (Option<i32>, serde_json::Value) {
    let out = env.run(&["status", "--json"]);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), v)
}

fn record(
    env: &Env,
    input: &str,
    extra: &[&str],
) -> (std::process::Output, Vec<serde_json::Value>) {
    let mut args = vec!["record", "--json", "--format", "lavfi", "--input", input];
    args.extend_from_slice(extra);
    let out = env.run(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ev = events(&out.stdout);
    (out, ev)
}

fn of<'a>(ev: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    ev.iter().filter(|e| e["event"] == kind).collect()
}

/// The server's copy of every record of `id`, after the server has stopped.
fn server_positions(
    data: &Path,
    recipient: &str,
    device: &PublicKey,
    id: &RecordingId,
) -> serde_json::Value {
    let mut config = custody_server::Config::new(data);
    config.recipients = vec![recipient.to_string()];
    let (server, _) = custody_server::Server::open(config).unwrap();
    serde_json::to_value(server.recording_state(device, id).unwrap()).unwrap()
}

fn device_key(env: &Env) -> PublicKey {
    PublicKey::from(custody_vault::keys::load_device_key(&env.vault, None).unwrap().verifying_key())
}

#[test]
fn a_live_recording_is_receipted_segment_by_segment_before_record_exits() {
    let env = Env::new();
    let data = env.dir.path().join("server");
    let server = serve(&env, &data, "127.0.0.1:0");
    enroll(&env, &data, &server.url);

    // Paced like a camera (realtime), so segments are sealed seconds apart.
    let (_, ev) =
        record(&env, "testsrc2=size=320x240:rate=25:duration=7,realtime", &["--upload-wait", "30"]);
    let id = recording_id(&ev).unwrap();
    let saved = of(&ev, "saved").len() as u64;
    assert!(saved >= 3, "{ev:?}");
    // Live: the first segment's receipt came while the recording was still going.
    let pos = |pred: &dyn Fn(&serde_json::Value) -> bool| ev.iter().position(pred).unwrap();
    let first_receipt = pos(&|e| e["event"] == "receipted" && e["seq"] == 1);
    let last_saved = pos(&|e| e["event"] == "saved" && e["seq"] == saved);
    assert!(first_receipt < last_saved, "segment 1 was not receipted during the recording: {ev:?}");
    // Every record (header, segments, end) was receipted, each once, with its latency.
    let mut seqs: Vec<u64> =
        of(&ev, "receipted").iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    seqs.sort();
    assert_eq!(seqs, (0..=saved + 1).collect::<Vec<_>>());
    assert!(of(&ev, "receipted")
        .iter()
        .filter(|e| e["seq"] != 0)
        .all(|e| e["latency_ms"].as_f64().is_some()));
    let up = of(&ev, "upload");
    assert_eq!(up.len(), 1);
    assert_eq!(up[0]["waiting"], 0, "{}", up[0]);
    assert_eq!(up[0]["log_inconsistent"], serde_json::Value::Null);

    let (code, st) = status(&env);
    assert_eq!(code, Some(0), "{st}");
    assert_eq!(st["waiting"], 0);
    assert_eq!(st["enrollment"]["url"], server.url.as_str());
    assert_eq!(st["enrollment"]["label"], "observer-3");
    assert!(st["log_head"]["tree_size"].as_u64().unwrap() >= saved + 3, "{st}");
    let r = &st["recordings"][0];
    assert_eq!(r["id"], id.to_string().as_str());
    assert_eq!(r["state"], "complete");
    assert_eq!(
        (r["segments"].as_u64(), r["segments_receipted"].as_u64()),
        (Some(saved), Some(saved))
    );
    assert_eq!(r["records_receipted"].as_u64(), Some(saved + 2));
    assert!(r["last_receipt_at_us"].as_i64().is_some() && r["oldest_waiting_age_us"].is_null());
    let text = env.run(&["status"]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("Every record is receipted") && text.contains("complete"), "{text}");

    // Without --json and with stderr not a terminal, upload progress is plain lines.
    let out = env.run(&[
        "record",
        "--format",
        "lavfi",
        "--input",
        "testsrc2=size=320x240:rate=25:duration=3",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("upload: segment 1 of ") && err.contains("receipted"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Uploaded: every record"));
    // --no-upload leaves the records in the outbox, and status says so.
    let (_, ev) = record(&env, "testsrc2=size=320x240:rate=25:duration=2", &["--no-upload"]);
    assert!(of(&ev, "receipted").is_empty() && of(&ev, "upload").is_empty(), "{ev:?}");
    let (code, st) = status(&env);
    assert_eq!(code, Some(1), "{st}");
    assert_eq!(st["waiting"].as_u64(), Some(of(&ev, "saved").len() as u64 + 2));
    // Said in segments, the header and end record counted apart.
    let text = String::from_utf8_lossy(&env.run(&["status"]).stdout).into_owned();
    let waiting = match of(&ev, "saved").len() {
        1 => "1 segment and 2 header/end records wait".to_string(),
        n => format!("{n} segments and 2 header/end records wait"),
    };
    assert!(text.contains(&format!("{waiting} for a receipt")), "{text}");
    // An import uploads the same way, and takes the waiting records along.
    let clip = env.dir.path().join("clip.mp4");
    common::make_clip(&clip, 3, 1);
    let out = env.run(&["import", "--json", clip.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(of(&events(&out.stdout), "upload")[0]["waiting"], 0);
    assert_eq!(status(&env).0, Some(0));

    drop(server);
    let v = server_positions(&data, &env.recipient, &device_key(&env), &id);
    assert_eq!(v["stored"].as_array().unwrap().len() as u64, saved + 2, "{v}");
    assert_eq!(v["gaps"], serde_json::json!([]));
    let vault = env.open_vault();
    let mut config = custody_server::Config::new(&data);
    config.recipients = vec![env.recipient.clone()];
    let (srv, _) = custody_server::Server::open(config).unwrap();
    for seq in 1..=saved {
        let local = std::fs::read(vault.segment_path(&id, seq)).unwrap();
        assert_eq!(srv.storage().segment(&id, seq).unwrap().unwrap(), local, "segment {seq}");
    }
}

#[test]
fn a_recording_made_while_the_server_is_down_goes_up_when_it_returns() {
    let env = Env::new();
    let data = env.dir.path().join("server");
    let server = serve(&env, &data, "127.0.0.1:0");
    enroll(&env, &data, &server.url);
    let listen = server.url.trim_start_matches("https://").to_string();
    drop(server);

    // Recording is not held up by the dead server; everything waits in the outbox.
    let (_, ev) = record(&env, "testsrc2=size=320x240:rate=25:duration=4", &["--upload-wait", "1"]);
    let first = recording_id(&ev).unwrap();
    let records = of(&ev, "saved").len() as u64 + 2;
    let up = of(&ev, "upload");
    assert_eq!(up[0]["waiting"].as_u64(), Some(records), "{}", up[0]);
    assert!(up[0]["last_error"].is_string());
    // The lag is measured from the oldest waiting record's own time (the header's start)
    // to the moment `status` runs.
    let started = match env.open_vault().records(&first).unwrap()[0].record() {
        custody_format::record::Record::Header(h) => h.started_at_us,
        r => panic!("record 0 is not the header: {r:?}"),
    };
    let before = now_us();
    let (code, st) = status(&env);
    let after = now_us();
    assert_eq!(code, Some(1), "waiting records make status exit 1: {st}");
    assert_eq!(st["waiting"].as_u64(), Some(records));
    assert_eq!(st["recordings"][0]["oldest_waiting_seq"], 0);
    let age = st["recordings"][0]["oldest_waiting_age_us"].as_i64().unwrap();
    assert!(
        (before - started..=after - started).contains(&age),
        "the lag {age} µs is not the time since the header ({} to {} µs)",
        before - started,
        after - started
    );
    assert_eq!(st["recordings"][0]["segments_receipted"], 0);

    // The server comes back at the same address; the next recording's live uploader
    // sends the waiting recording first, then its own.
    let _server = serve(&env, &data, &listen);
    let (_, ev) =
        record(&env, "testsrc2=size=320x240:rate=25:duration=2", &["--upload-wait", "60"]);
    let second = recording_id(&ev).unwrap();
    assert_eq!(of(&ev, "upload")[0]["waiting"], 0);
    let (code, st) = status(&env);
    assert_eq!(code, Some(0), "{st}");
    for r in st["recordings"].as_array().unwrap() {
        assert_eq!(r["waiting"], 0, "{r}");
        assert_eq!(r["segments_receipted"], r["segments"], "{r}");
    }
    let ids: Vec<&str> =
        st["recordings"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [first.to_string(), second.to_string()]);
}

#[test]
fn a_recorder_killed_mid_recording_leaves_a_cut_off_recording_that_upload_completes() {
    let env = Env::new();
    let data = env.dir.path().join("server");
    let server = serve(&env, &data, "127.0.0.1:0");
    enroll(&env, &data, &server.url);

    // Two segments receipted live, then the recorder killed outright.
    record_live_then_kill(&env, 2);

    let vault = env.open_vault();
    let id = vault.recording_ids().unwrap()[0];
    let records = vault.records(&id).unwrap().len() as u64;
    drop(vault);
    let out = env.run(&["upload", "--json", "--timeout", "60"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (code, st) = status(&env);
    assert_eq!(code, Some(0), "{st}");
    let r = &st["recordings"][0];
    assert_eq!(r["state"], "cut-off");
    assert_eq!(r["records_receipted"].as_u64(), Some(records));

    // The server holds exactly the records the device saved: no gap, no end record.
    drop(server);
    let v = server_positions(&data, &env.recipient, &device_key(&env), &id);
    let stored: Vec<u64> =
        v["stored"].as_array().unwrap().iter().map(|s| s.as_u64().unwrap()).collect();
    assert_eq!(stored, (0..records).collect::<Vec<_>>(), "{v}");
    assert_eq!(v["gaps"], serde_json::json!([]));
}

/// Sealed → receipt-stored latency per segment, recording 30 s live (testsrc2 + sine at
/// real time, 2 s segments) through `custody serve` on loopback. Prints one line:
/// `UPLOAD_LATENCY_JSON {"p50_ms":…,"p99_ms":…,"max_ms":…,"segments":…,"mean_segment_bytes":…}`.
///
/// Run: `cargo test -p custody-cli --release --test live_upload -- --ignored --nocapture`
#[test]
#[ignore = "a 30 s benchmark; run explicitly"]
fn upload_latency_benchmark() {
    let env = Env::new();
    let data = env.dir.path().join("server");
    let server = serve(&env, &data, "127.0.0.1:0");
    enroll(&env, &data, &server.url);
    let graph = "testsrc2=size=1280x720:rate=25:duration=30,realtime[out0];\
                 sine=frequency=440:sample_rate=48000:duration=30,arealtime[out1]";
    let (_, ev) = record(&env, graph, &["--upload-wait", "60"]);
    let saved = of(&ev, "saved");
    let bytes: u64 = saved.iter().map(|e| e["ciphertext_len"].as_u64().unwrap()).sum();
    let segs: Vec<u64> = saved.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    let mut lat: Vec<f64> = of(&ev, "receipted")
        .iter()
        .filter(|e| segs.contains(&e["seq"].as_u64().unwrap()))
        .map(|e| e["latency_ms"].as_f64().unwrap())
        .collect();
    assert_eq!(lat.len(), segs.len(), "every segment receipted");
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "UPLOAD_LATENCY_JSON {}",
        serde_json::json!({
            "p50_ms": (pct(0.5) * 10.0).round() / 10.0,
            "p99_ms": (pct(0.99) * 10.0).round() / 10.0,
            "max_ms": (lat[lat.len() - 1] * 10.0).round() / 10.0,
            "segments": lat.len(),
            "mean_segment_bytes": bytes / lat.len().max(1) as u64,
        })
    );
    drop(server);
}

#[test]
fn a_server_refusing_every_upload_does_not_stop_the_recording() {
    let env = Env::new();
    let data = env.dir.path().join("server");
    // The server in this process, so that the device can be revoked under it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut config = custody_server::Config::new(&data);
    config.recipients = vec![env.recipient.clone()];
    let (server, _) = custody_server::Server::open(config).unwrap();
    let (addr, _task) = rt
        .block_on(custody_server::serve::spawn(server.clone(), "127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let token = custody_server::issue_token(&data, "observer-9", Duration::from_secs(60)).unwrap();
    let out = env.run(&["enroll", &format!("https://{addr}"), &token]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    server.revoke(&device_key(&env), "admin", "device seized").unwrap();
    let log_len = server.log_len();

    let (_, ev) = record(&env, "testsrc2=size=320x240:rate=25:duration=6", &["--upload-wait", "1"]);
    let saved = of(&ev, "saved").len() as u64;
    assert!(saved >= 3, "every segment is still saved: {ev:?}");
    assert_eq!(of(&ev, "ended")[0]["ended"], "input ended");
    let up = of(&ev, "upload")[0];
    assert_eq!(up["waiting"].as_u64(), Some(saved + 2), "{up}");
    assert!(up["last_error"].as_str().unwrap().contains("auth.revoked"), "{up}");
    assert_eq!(server.log_len(), log_len, "nothing was stored");
}

#[test]
fn a_server_whose_log_was_rewritten_is_reported_loudly_and_sent_nothing_more() {
    let env = Env::new();
    let data = env.dir.path().join("server");
    let server = serve(&env, &data, "127.0.0.1:0");
    enroll(&env, &data, &server.url);
    let listen = server.url.trim_start_matches("https://").to_string();
    record(&env, "testsrc2=size=320x240:rate=25:duration=2", &["--upload-wait", "30"]);
    assert_eq!(status(&env).0, Some(0));
    drop(server);

    // The legal team's server loses its last log entry (say, restored from a backup).
    let path = data.join("log/entries.bin");
    let mut payloads = custody_vault::journal::read(&path).unwrap().payloads;
    payloads.pop();
    std::fs::remove_file(&path).unwrap();
    let mut j = custody_vault::journal::Journal::create(&path).unwrap();
    for p in &payloads {
        j.append(p).unwrap();
    }
    drop(j);
    let _server = serve(&env, &data, &listen);

    let mut args = vec!["record", "--json", "--format", "lavfi", "--input"];
    args.extend(["testsrc2=size=320x240:rate=25:duration=2", "--upload-wait", "5"]);
    let out = env.run(&args);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("log.inconsistent"), "{err}");
    let ev = events(&out.stdout);
    assert!(of(&ev, "receipted").is_empty(), "{ev:?}");
    let up = of(&ev, "upload")[0];
    assert!(up["log_inconsistent"].is_string(), "{up}");
    let waiting = of(&ev, "saved").len() as u64 + 2;
    assert_eq!(up["waiting"].as_u64(), Some(waiting));

    let out = env.run(&["upload", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("log.inconsistent"));
    let out = env.run(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("LOG INCONSISTENT (log.inconsistent)"), "{text}");
    let (_, st) = status(&env);
    assert_eq!(st["log_inconsistent"]["code"], "log.inconsistent");
    assert_eq!(st["waiting"].as_u64(), Some(waiting), "the records stay in the outbox");
}
