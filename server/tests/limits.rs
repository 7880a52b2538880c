//! The server's limits over real HTTP on loopback: an upload is held to what its signed
//! record says before its segment is read, large segments are streamed to storage, the
//! bytes of uploads in progress are bounded, a recording id is only its lower-case form, a
//! right credential is never refused for other requests' failures, and a server started on
//! a full disk serves its log and retrievals and refuses uploads. Also, run with
//! `--ignored`, the benchmark of hostile devices (`cargo xtask bench hostile`).

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;
use custody_format::chain::ChainBuilder;
use custody_format::ids::RecordingId;
use custody_format::log::EntryType;
use custody_format::primitives::sha256;
use custody_server::{Config, Limits, Role, Server};
use reqwest::Method;

/// The largest signed record (an object of at most 64 KiB and its signature).
const MAX_RECORD: u64 = (64 << 10) + 64;

/// A chain by `device` whose segments carry ciphertexts of `sizes` bytes.
fn chain_of(device: &Device, recording: u8, sizes: &[usize]) -> Chain {
    let header = custody_format::testkit::header(recording, &device.key);
    let id = header.recording_id;
    let (mut b, h) = ChainBuilder::start(header, device.key.clone()).unwrap();
    let mut records = vec![h];
    let mut ciphertexts = vec![Vec::new()];
    for (i, &len) in sizes.iter().enumerate() {
        let n = i as u64 + 1;
        let ct = bytes(&[&[recording][..], &n.to_be_bytes()].concat(), len);
        let mut f = custody_format::testkit::segment(recording, n);
        f.ciphertext_len = ct.len() as u64;
        f.ciphertext_sha256 = sha256(&[&ct]);
        records.push(b.segment(f));
        ciphertexts.push(ct);
    }
    Chain { id, records, ciphertexts }
}

/// A request head (request line and headers, signed by `d` over `body`), declaring
/// `content_length` (or chunked transfer if `None`).
fn head(
    d: &Device,
    ts: &TestServer,
    path: &str,
    content_length: Option<u64>,
    body: &[u8],
) -> String {
    let key = ts.server.public_key();
    let mut h = format!("PUT {path} HTTP/1.1\r\nhost: custody\r\n");
    match content_length {
        Some(n) => h.push_str(&format!("content-length: {n}\r\n")),
        None => h.push_str("transfer-encoding: chunked\r\n"),
    }
    for (k, v) in d.headers(&d.key, &key, "PUT", path, now_us(), fresh_nonce(), body) {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h.push_str("\r\n");
    h
}

/// An answer read off a raw connection.
struct Answer {
    status: u16,
    body: String,
}

/// Reads one HTTP answer from `s` (at most 10 s).
fn read_answer(s: &mut std::net::TcpStream) -> Answer {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, len) = loop {
        let n = s.read(&mut chunk).expect("an answer within 10 s");
        assert!(n > 0, "closed without an answer: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            break (i + 4, len);
        }
    };
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
    Answer { status, body }
}

/// Sends `head` and `sent` of the body on a new connection, then sends nothing more and
/// waits for the answer. The connection is returned open.
async fn send_then_wait(
    ts: &TestServer,
    head: String,
    sent: Vec<u8>,
) -> (Answer, std::net::TcpStream) {
    let addr = ts.base.strip_prefix("http://").unwrap().to_string();
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&sent).unwrap();
        (read_answer(&mut s), s)
    })
    .await
    .unwrap()
}

fn code_of(a: &Answer) -> String {
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    v["error"]["code"].as_str().unwrap().to_string()
}

/// Regression (issue 16 §4): an upload declaring more than the maximum, or more than its
/// record says, was read (256 MiB before a 413) before it was refused. Now the first is
/// refused on its headers alone and the second once its record is read, by a client that
/// sends no more and waits; the count of body bytes the server read shows it.
#[tokio::test]
async fn an_upload_declaring_too_much_is_refused_before_its_body_is_read() {
    let ts = start(test_limits()).await;
    let c = client();
    let d = enrolled(&ts, &c, "hostile").await;
    let key = ts.server.public_key();
    let chain = chain_of(&d, 1, &[300_000]);
    assert_eq!(d.put(&c, &ts.base, &key, chain.id, 0, chain.body(0)).await.status, 200);
    let path = format!("/v1/recordings/{}/records/1", chain.id);
    let body = chain.body(1);
    let record_len = chain.records[1].to_bytes().len();

    // 1 GiB declared, nothing sent: refused on the headers.
    let before = ts.server.upload_bytes_read();
    let (a, _) = send_then_wait(&ts, head(&d, &ts, &path, Some(1 << 30), &body), Vec::new()).await;
    assert_eq!((a.status, code_of(&a).as_str()), (413, "body.too_large"), "{}", a.body);
    assert_eq!(ts.server.upload_bytes_read(), before, "not a byte of the body was read");

    // 1000 bytes more than the record's length and ciphertext_len: only the record is sent,
    // and the refusal comes without the rest.
    let declared = body.len() as u64 + 1000;
    let (a, _) = send_then_wait(
        &ts,
        head(&d, &ts, &path, Some(declared), &body),
        body[..record_len].to_vec(),
    )
    .await;
    assert_eq!((a.status, code_of(&a).as_str()), (422, "segment.length"), "{}", a.body);
    let read = ts.server.upload_bytes_read() - before;
    assert!(read <= MAX_RECORD, "{read} bytes read for a refusal that needed the record only");
    assert!(read >= record_len as u64);

    // No declared length at all.
    let (a, _) = send_then_wait(&ts, head(&d, &ts, &path, None, &body), Vec::new()).await;
    assert_eq!((a.status, code_of(&a).as_str()), (411, "body.length"), "{}", a.body);

    assert!(ts.server.storage().segment(&chain.id, 1).unwrap().is_none());
    // And the honest body goes in.
    let s = d.put(&c, &ts.base, &key, chain.id, 1, body).await;
    assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
}

/// Segments larger than a record are streamed to storage while hashed: the stored bytes
/// are the sent ones, sending again gives the same receipt, and a body whose hash or
/// request signature is wrong leaves nothing behind (no temporary file either).
async fn large_segments_are_streamed_to_storage(back: Back) {
    let ts = start_on(back, test_limits()).await;
    let c = client();
    let d = enrolled(&ts, &c, "observer").await;
    let key = ts.server.public_key();
    let chain = chain_of(&d, 2, &[900_000, 70_000, 400_000]);
    let mut receipt = Vec::new();
    for seq in 0..2 {
        let s = d.put(&c, &ts.base, &key, chain.id, seq, chain.body(seq as usize)).await;
        assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
        receipt = s.body;
    }
    assert_eq!(ts.server.storage().segment(&chain.id, 1).unwrap().unwrap(), chain.ciphertexts[1]);
    let again = d.put(&c, &ts.base, &key, chain.id, 1, chain.body(1)).await;
    assert_eq!((again.status, &again.body), (200, &receipt), "the same receipt again");

    // The last byte changed: the hash is wrong once the whole segment has passed.
    let mut bad = chain.body(3);
    *bad.last_mut().unwrap() ^= 1;
    let s = d.put(&c, &ts.base, &key, chain.id, 3, bad).await;
    assert_eq!((s.status, s.code().as_str()), (422, "segment.hash"));
    // A request signed by another key, over the right body.
    let path = format!("/v1/recordings/{}/records/3", chain.id);
    let forger = custody_format::testkit::key("forger");
    let h = d.headers(&forger, &key, "PUT", &path, now_us(), fresh_nonce(), &chain.body(3));
    let s = d.send(&c, &ts.base, Method::PUT, &path, h, chain.body(3)).await;
    assert_eq!((s.status, s.code().as_str()), (401, "auth.signature"));
    assert!(ts.server.storage().segment(&chain.id, 3).unwrap().is_none());
    if back == Back::Fs {
        let dir = ts.dir.path().join("recordings").join(chain.id.to_string());
        let left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }
    let s = d.put(&c, &ts.base, &key, chain.id, 2, chain.body(2)).await;
    assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
    let s = d.put(&c, &ts.base, &key, chain.id, 3, chain.body(3)).await;
    assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
    assert_eq!(ts.server.storage().segment(&chain.id, 3).unwrap().unwrap(), chain.ciphertexts[3]);
}

on_every_backend!(large_segments_are_streamed_to_storage);

/// The bytes of uploads in progress draw on one budget: past it an upload is told to
/// retry (`server.busy`, 503, `Retry-After`) before its body is read, and it goes in once
/// the budget is free again.
#[tokio::test]
async fn uploads_over_the_in_flight_budget_are_told_to_retry() {
    let limits = Limits { max_inflight_bytes: 1 << 20, ..test_limits() };
    let ts = start(limits).await;
    let c = client();
    let (a, b) = (enrolled(&ts, &c, "a").await, enrolled(&ts, &c, "b").await);
    let key = ts.server.public_key();
    let (ca, cb) = (chain_of(&a, 3, &[700_000]), chain_of(&b, 4, &[700_000]));
    for (d, ch) in [(&a, &ca), (&b, &cb)] {
        assert_eq!(d.put(&c, &ts.base, &key, ch.id, 0, ch.body(0)).await.status, 200);
    }
    // `a` sends its record and the start of its segment, then stalls.
    let path = format!("/v1/recordings/{}/records/1", ca.id);
    let body = ca.body(1);
    let before = ts.server.upload_bytes_read();
    let addr = ts.base.strip_prefix("http://").unwrap().to_string();
    let head = head(&a, &ts, &path, Some(body.len() as u64), &body);
    let mut stalled = std::net::TcpStream::connect(addr).unwrap();
    stalled.write_all(head.as_bytes()).unwrap();
    stalled.write_all(&body[..100_000]).unwrap();
    let t = Instant::now();
    while ts.server.upload_bytes_read() < before + 100_000 {
        assert!(t.elapsed() < Duration::from_secs(10), "the server never read the start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let path_b = format!("/v1/recordings/{}/records/1", cb.id);
    let h = b.headers(&b.key, &key, "PUT", &path_b, now_us(), fresh_nonce(), &cb.body(1));
    let mut req = c.put(format!("{}{path_b}", ts.base)).body(cb.body(1));
    for (k, v) in h {
        req = req.header(k, v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "server.busy");
    assert!(ts.server.storage().segment(&cb.id, 1).unwrap().is_none());

    // `a` goes away: its budget is given back, and `b`'s retry goes in.
    drop(stalled);
    let t = Instant::now();
    loop {
        let s = b.put(&c, &ts.base, &key, cb.id, 1, cb.body(1)).await;
        if s.status == 200 {
            break;
        }
        assert_eq!(s.code(), "server.busy");
        assert!(t.elapsed() < Duration::from_secs(10), "the budget was never given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ts.server.storage().segment(&ca.id, 1).unwrap().is_none());
}

/// Regression (issue 16 §5): an upper-case recording id was taken for its lower-case
/// form. The spec writes ids in lower-case hex; any other spelling is refused, saying so.
#[tokio::test]
async fn an_upper_case_recording_id_is_refused() {
    let ts = start(test_limits()).await;
    let c = client();
    let d = enrolled(&ts, &c, "observer").await;
    // A recording id with letters in it (0xab…), so that its upper-case form differs.
    let chain = Chain::new(0xab, &d, 1, false, b"a");
    let upper = chain.id.to_string().to_uppercase();
    assert_ne!(upper, chain.id.to_string());
    assert!(RecordingId::parse(&upper).is_err());
    let path = format!("/v1/recordings/{upper}/records/0");
    let key = ts.server.public_key();
    let h = d.headers(&d.key, &key, "PUT", &path, now_us(), fresh_nonce(), &chain.body(0));
    let s = d.send(&c, &ts.base, Method::PUT, &path, h, chain.body(0)).await;
    assert_eq!((s.status, s.code().as_str()), (404, "not_found"));
    assert!(String::from_utf8_lossy(&s.body).contains("lower-case"));
    assert!(ts.server.storage().record(&chain.id, 0).unwrap().is_none());
    let path = format!("/v1/recordings/{upper}");
    let h = d.headers(&d.key, &key, "GET", &path, now_us(), fresh_nonce(), b"");
    let s = d.send(&c, &ts.base, Method::GET, &path, h, Vec::new()).await;
    assert_eq!((s.status, s.code().as_str()), (404, "not_found"));
}

/// Regression (issue 16 §5): ten bad requests a minute from one address locked every
/// member and enrollment behind it out. Now only failures are held off: a right member
/// token and a right enrollment are taken from an address that keeps failing, while the
/// failing requests are refused (and log nothing).
#[tokio::test]
async fn a_right_token_is_never_refused_for_other_requests_failures() {
    let ts = start(test_limits()).await;
    let c = client();
    let token = custody_server::add_member(ts.dir.path(), "lawyer", Role::Member).unwrap();
    let whoami = |t: String| {
        let c = c.clone();
        let url = format!("{}/v1/whoami", ts.base);
        async move {
            let r = c.get(url).header("authorization", format!("Bearer {t}")).send().await.unwrap();
            let status = r.status().as_u16();
            let v: serde_json::Value = r.json().await.unwrap();
            (status, v)
        }
    };
    for i in 0..custody_server::members::MAX_FAILURES {
        let (status, _) = whoami(format!("{i:064x}")).await;
        assert_eq!(status, 401, "attempt {i}");
    }
    let (status, v) = whoami("ab".repeat(32)).await;
    assert_eq!((status, v["error"]["code"].as_str()), (429, Some("auth.rate_limited")));
    let (status, v) = whoami(token.clone()).await;
    assert_eq!(status, 200, "{v}");

    let log = ts.server.log_len();
    let s = Device::new("thief").enroll(&c, &ts.base, &"00".repeat(32)).await;
    assert_eq!((s.status, s.code().as_str()), (429, "auth.rate_limited"), "shared with logins");
    let spent = custody_server::issue_token(ts.dir.path(), "one", Duration::from_secs(60)).unwrap();
    let s = Device::new("observer").enroll(&c, &ts.base, &spent).await;
    assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
    let log = log + 1;
    assert_eq!(ts.server.log_len(), log, "one enrollment");
    for _ in 0..3 {
        let s = Device::new("thief").enroll(&c, &ts.base, &spent).await;
        assert_eq!((s.status, s.code().as_str()), (429, "auth.rate_limited"));
    }
    assert_eq!(ts.server.log_len(), log, "the held-off refusals of a spent token log nothing");
}

/// A mounted tmpfs, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("--lazy").arg(&self.0).status();
    }
}

/// Writes `path` until the disk is full.
fn fill(path: &std::path::Path) {
    let mut f = std::fs::File::create(path).unwrap();
    for block in [1 << 20, 4 << 10, 512] {
        let zeros = vec![0u8; block];
        for _ in 0..100_000 {
            if f.write_all(&zeros).and_then(|_| f.flush()).is_err() {
                break;
            }
        }
    }
    let _ = f.sync_all();
}

/// Regression (issue 16 §3): a server restarted on a full disk did not start ("IO error:
/// No space left on device" opening its index). Now it starts, says why it refuses
/// uploads, serves the log head and proofs, and retrievals go on (their access entries
/// written into the space it kept in reserve for the log), on a real filled filesystem.
#[tokio::test]
async fn a_server_restarted_on_a_full_disk_serves_its_log_and_retrievals_and_refuses_uploads() {
    let mount = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=48m", "tmpfs"])
        .arg(mount.path())
        .status()
        .unwrap();
    assert!(status.success(), "this test mounts a small tmpfs to fill it, which needs root");
    let _guard = Tmpfs(mount.path().to_path_buf());
    let mut ts = start_in(tempfile::tempdir_in(mount.path()).unwrap(), test_limits()).await;
    let first = client();
    let c = first.clone();
    let d = enrolled(&ts, &c, "observer").await;
    let key = ts.server.public_key();
    let chain = Chain::new(6, &d, 2, false, b"a");
    for seq in 0..2 {
        assert_eq!(
            d.put(&c, &ts.base, &key, chain.id, seq, chain.body(seq as usize)).await.status,
            200
        );
    }
    let token = custody_server::add_member(ts.dir.path(), "lawyer", Role::Member).unwrap();
    let bundle = |base: String| {
        let c = c.clone();
        let token = token.clone();
        let url = format!("{base}/v1/recordings/{}/bundle", chain.id);
        async move {
            let r =
                c.get(url).header("authorization", format!("Bearer {token}")).send().await.unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
        }
    };
    assert_eq!(bundle(ts.base.clone()).await.0, 200);
    drop((c, first));

    // Stop, fill the disk, start again on it.
    let dir = std::mem::replace(&mut ts.dir, tempfile::tempdir().unwrap());
    drop(ts);
    assert!(dir.path().join("reserve.bin").exists(), "a reserve is kept while there is room");
    fill(&mount.path().join("filler"));
    let mut config = Config::new(dir.path());
    config.insecure_http = true;
    config.limits = test_limits();
    let (server, opened) = Server::open(config).expect("the server starts on a full disk");
    let why = opened.disk_full.clone().expect("the start says the disk is full");
    assert!(why.contains("full") && why.contains("storage.full"), "{why}");
    let (addr, task) =
        custody_server::serve::spawn(server.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let ts = TestServer {
        server,
        base: format!("http://{addr}"),
        dir,
        task,
        backend: custody_server::store::Backend::Fs,
    };
    let size = ts.server.log_len();
    assert!(ts.dir.path().join("reserve.bin").exists(), "the reserve is still there");
    let c = client();
    let bundle = |base: String| {
        let c = c.clone();
        let token = token.clone();
        let url = format!("{base}/v1/recordings/{}/bundle", chain.id);
        async move {
            let r =
                c.get(url).header("authorization", format!("Bearer {token}")).send().await.unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
        }
    };

    // The log head and an inclusion proof are served.
    for path in ["/v1/log/head".to_string(), format!("/v1/log/inclusion?index=0&size={size}")] {
        let h = d.headers(&d.key, &key, "GET", &path, now_us(), fresh_nonce(), b"");
        let s = d.send(&c, &ts.base, Method::GET, &path, h, Vec::new()).await;
        assert_eq!(s.status, 200, "{path}: {}", String::from_utf8_lossy(&s.body));
    }
    // An upload is refused with its own code, and nothing of it is stored.
    let s = d.put(&c, &ts.base, &key, chain.id, 2, chain.body(2)).await;
    assert_eq!(
        (s.status, s.code().as_str()),
        (507, "storage.full"),
        "{}",
        String::from_utf8_lossy(&s.body)
    );
    assert!(ts.server.storage().record(&chain.id, 2).unwrap().is_none());
    // Retrievals go on, each access logged first: once the log's last page is full, in the
    // space kept in reserve.
    let reserve = ts.dir.path().join("reserve.bin");
    let retrievals = |ts: &TestServer| {
        ts.logged_entries()
            .iter()
            .filter(|e| e.entry_type == EntryType::Access && e.detail.as_deref() == Some("bundle"))
            .count() as u64
    };
    let before = retrievals(&ts);
    let mut n = 0;
    while reserve.exists() {
        assert!(n < 200, "200 retrievals fitted without the reserve: the disk was not full");
        let (status, got) = bundle(ts.base.clone()).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&got));
        n += 1;
        assert_eq!(retrievals(&ts), before + n, "each retrieval is logged before it is served");
    }
    let (status, got) = bundle(ts.base.clone()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&got));
    assert_eq!(retrievals(&ts), before + n + 1);
    // Uploads are still refused: the reserve is the log's.
    let s = d.put(&c, &ts.base, &key, chain.id, 2, chain.body(2)).await;
    assert_eq!((s.status, s.code().as_str()), (507, "storage.full"));
    // The device still sees its recording's state.
    assert_eq!(
        d.state(&c, &ts.base, &key, chain.id).await["stored"].as_array().map(Vec::len),
        Some(2)
    );
}

/// The child process of [`hostile_devices_benchmark`]: a server with the default limits
/// on plain HTTP, in `CUSTODY_HOSTILE_DATA`, its address written to `CUSTODY_HOSTILE_ADDR`,
/// serving until its standard input closes. Does nothing without those variables.
#[test]
#[ignore = "the benchmark's server process"]
fn hostile_server_process() {
    let (Ok(data), Ok(addr_file)) =
        (std::env::var("CUSTODY_HOSTILE_DATA"), std::env::var("CUSTODY_HOSTILE_ADDR"))
    else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let mut config = Config::new(std::path::Path::new(&data));
        config.insecure_http = true;
        let (server, _) = Server::open(config).unwrap();
        let (addr, _task) =
            custody_server::serve::spawn(server, "127.0.0.1:0".parse().unwrap()).await.unwrap();
        std::fs::write(&addr_file, addr.to_string()).unwrap();
        // Until the parent closes our standard input (or dies), at most 10 minutes.
        let _ = tokio::time::timeout(
            Duration::from_secs(600),
            tokio::task::spawn_blocking(|| {
                let mut sink = Vec::new();
                let _ = std::io::stdin().read_to_end(&mut sink);
            }),
        )
        .await;
    });
}

/// The server process's resident memory, MiB (`VmRSS`, or `VmHWM` for its peak).
fn rss_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// One hostile upload on a raw connection: a signed head declaring `declared` bytes, then
/// body bytes as fast as the server takes them, until it answers. Returns the status.
async fn hostile_upload(
    addr: std::net::SocketAddr,
    head: String,
    chunk: &[u8],
    declared: u64,
) -> u16 {
    let Ok(s) = tokio::net::TcpStream::connect(addr).await else { return 0 };
    let out = head.into_bytes();
    let mut sent_body = 0u64;
    let mut off = 0usize;
    let mut answer = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if Instant::now() > deadline {
            return 0;
        }
        // The head first, then the body: the same bytes again and again, as fast as the
        // server takes them.
        let pending: &[u8] = if off < out.len() {
            &out[off..]
        } else if sent_body < declared {
            &chunk[..(declared - sent_body).min(chunk.len() as u64) as usize]
        } else {
            &[]
        };
        let want_write = !pending.is_empty();
        let ready = if want_write {
            s.ready(tokio::io::Interest::READABLE | tokio::io::Interest::WRITABLE).await
        } else {
            s.ready(tokio::io::Interest::READABLE).await
        };
        let Ok(ready) = ready else { return 0 };
        if ready.is_readable() {
            let mut buf = [0u8; 4096];
            match s.try_read(&mut buf) {
                Ok(0) => return parse_status(&answer),
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        return parse_status(&answer);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return parse_status(&answer),
            }
        }
        if want_write && ready.is_writable() {
            match s.try_write(pending) {
                Ok(n) if off < out.len() => off += n,
                Ok(n) => sent_body += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return parse_status(&answer),
            }
        }
    }
}

fn parse_status(answer: &[u8]) -> u16 {
    String::from_utf8_lossy(answer).split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Benchmark (run by `cargo xtask bench hostile`; not a timed test): a server in its own
/// process with the default limits; 50 enrolled devices each keep 8 oversized uploads
/// going at once (half declaring 1 GiB, over the 64 MiB maximum; half declaring 32 MiB
/// behind a record whose segment is 1 MiB), sending body bytes as fast as the server takes
/// them, for `CUSTODY_HOSTILE_SECONDS` (default 20); meanwhile an honest device uploads a
/// 2 MB segment every 500 ms. Prints the server's resident memory (from /proc) and the
/// honest device's receipt latency. Targets: RSS under 256 MiB, p99 under 1 s.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark"]
async fn hostile_devices_benchmark() {
    let seconds: u64 =
        std::env::var("CUSTODY_HOSTILE_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let (devices, per_device) = (50usize, 8usize);
    let dir = tempfile::tempdir().unwrap();
    let addr_file = dir.path().join("addr");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "hostile_server_process", "--nocapture"])
        .env("CUSTODY_HOSTILE_DATA", &data)
        .env("CUSTODY_HOSTILE_ADDR", &addr_file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let t = Instant::now();
    let addr: std::net::SocketAddr = loop {
        if let Ok(a) = std::fs::read_to_string(&addr_file) {
            if let Ok(a) = a.trim().parse() {
                break a;
            }
        }
        assert!(t.elapsed() < Duration::from_secs(60), "the server process did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let base = format!("http://{addr}");
    let c = client();
    let server_key = custody_format::ids::PublicKey::parse(
        std::fs::read_to_string(data.join("server.pub")).unwrap().trim(),
    )
    .unwrap();
    let enroll = |label: String| {
        let (c, base, data) = (c.clone(), base.clone(), data.clone());
        async move {
            let d = Device::new(&label);
            let token =
                custody_server::issue_token(&data, &label, Duration::from_secs(600)).unwrap();
            let s = d.enroll(&c, &base, &token).await;
            assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
            d
        }
    };
    let idle_rss = rss_mib(pid, "VmRSS:");

    // The honest device's recording: 2 MB segments (the same ciphertext under each record).
    let honest = enroll("honest".into()).await;
    let ct = bytes(b"honest", 2_000_000);
    let segments = (seconds * 2 + 4) as usize;
    let header = custody_format::testkit::header(200, &honest.key);
    let hid = header.recording_id;
    let (mut builder, h0) = ChainBuilder::start(header, honest.key.clone()).unwrap();
    let mut bodies = vec![h0.to_bytes()];
    for n in 1..=segments as u64 {
        let mut f = custody_format::testkit::segment(200, n);
        f.ciphertext_len = ct.len() as u64;
        f.ciphertext_sha256 = sha256(&[&ct]);
        let mut b = builder.segment(f).to_bytes();
        b.extend_from_slice(&ct);
        bodies.push(b);
    }

    // The hostile devices, each with a header stored and the bodies it lies about.
    let mut hostile = Vec::new();
    for i in 0..devices {
        let d = enroll(format!("hostile-{i}")).await;
        let header = custody_format::testkit::header(i as u8, &d.key);
        let id = header.recording_id;
        let (mut b, h) = ChainBuilder::start(header, d.key.clone()).unwrap();
        let s = d.put(&c, &base, &server_key, id, 0, h.to_bytes()).await;
        assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
        let mut f = custody_format::testkit::segment(i as u8, 1);
        f.ciphertext_len = 1 << 20;
        let record = b.segment(f).to_bytes();
        hostile.push((d, id, record));
    }

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let refused =
        std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<u16, u64>::new()));
    let mut tasks = Vec::new();
    for (i, (d, id, record)) in hostile.into_iter().enumerate() {
        for w in 0..per_device {
            let (d, record, stop, refused) =
                (d.clone(), record.clone(), stop.clone(), refused.clone());
            let key = server_key;
            // The record, then filler: what a device lying about its segment sends.
            let mut chunk = record.clone();
            chunk.resize(64 << 10, 0);
            tasks.push(tokio::spawn(async move {
                let path = format!("/v1/recordings/{id}/records/1");
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let declared: u64 = if (i + w) % 2 == 0 { 1 << 30 } else { 32 << 20 };
                    let h = d.headers(&d.key, &key, "PUT", &path, now_us(), fresh_nonce(), &record);
                    let mut head = format!(
                        "PUT {path} HTTP/1.1\r\nhost: custody\r\ncontent-length: {declared}\r\n"
                    );
                    for (k, v) in h {
                        head.push_str(&format!("{k}: {v}\r\n"));
                    }
                    head.push_str("\r\n");
                    let status = hostile_upload(addr, head, &chunk, declared).await;
                    *refused.lock().unwrap().entry(status).or_default() += 1;
                }
            }));
        }
    }
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut peak = 0f64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_mib(pid, "VmRSS:"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peak
        })
    };

    // Meanwhile the honest device, on a thread and runtime of its own (so that the hostile
    // clients' tasks do not delay it here): header, then a segment every 500 ms, each timed.
    let honest_base = base.clone();
    let (mut lat, failed) = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let c = client();
            let s = honest.put(&c, &honest_base, &server_key, hid, 0, bodies[0].clone()).await;
            assert_eq!(s.status, 200);
            let mut lat = Vec::new();
            let mut failed = 0u64;
            let started = Instant::now();
            let mut n = 1usize;
            while started.elapsed() < Duration::from_secs(seconds) && n < bodies.len() {
                let at = Instant::now();
                let body = bodies[n].clone();
                let s = honest.put(&c, &honest_base, &server_key, hid, n as u64, body).await;
                if s.status == 200 {
                    lat.push(at.elapsed().as_secs_f64() * 1000.0);
                    n += 1;
                } else {
                    failed += 1;
                }
                tokio::time::sleep_until((at + Duration::from_millis(500)).into()).await;
            }
            (lat, failed)
        })
    })
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.await.unwrap();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(40), t).await;
    }
    let hwm = rss_mib(pid, "VmHWM:");
    drop(child.stdin.take());
    let _ = child.wait();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN)
    };
    let refused = refused.lock().unwrap().clone();
    let v = serde_json::json!({
        "devices": devices, "per_device": per_device, "seconds": seconds,
        "hostile_requests": refused.values().sum::<u64>(),
        "answers": refused.iter().map(|(k, v)| (k.to_string(), *v)).collect::<std::collections::BTreeMap<_, _>>(),
        "honest_receipts": lat.len(), "honest_refused": failed,
        "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": lat.last().copied().unwrap_or(f64::NAN),
        "rss_idle_mib": idle_rss, "rss_peak_mib": peak, "hwm_mib": hwm,
    });
    println!("HOSTILE_BENCH_JSON {v}");
    assert!(hwm < 256.0, "server RSS peaked at {hwm:.0} MiB");
    assert!(pct(0.99) < 1000.0, "honest p99 {:.0} ms", pct(0.99));
}
