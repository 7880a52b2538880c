//! Live upload end to end on loopback: a recording made through the vault is uploaded to a
//! real server over TLS (certificate pinned at enrollment) and every record is receipted.

use std::time::{Duration, Instant};

use custody_client::{Options, Uploader};
use custody_format::chain::SegmentFields;
use custody_format::ids::{PublicKey, RecordingId};
use custody_format::primitives::sha256;
use custody_format::receipt::Receipt;
use custody_format::record::{EndReason, RecordingHeader};
use custody_format::signed::Signed;
use custody_format::testkit;
use custody_vault::keys::{new_recipient_identity, parse_recipients};
use custody_vault::seal::Sealer;
use custody_vault::store::SegmentInput;
use custody_vault::Vault;
use ed25519_dalek::SigningKey;

struct Server {
    server: custody_server::Server,
    url: String,
    dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

async fn server(recipient: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let (server, addr, task) = serve_at(dir.path(), recipient, "127.0.0.1:0", false).await;
    Server { server, url: format!("https://{addr}"), dir, task }
}

/// A custody server on the data in `dir` (made if new), serving at `addr` (TLS unless
/// `plain`); returns it, where it listens, and its task.
async fn serve_at(
    dir: &std::path::Path,
    recipient: &str,
    addr: &str,
    plain: bool,
) -> (custody_server::Server, std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let mut config = custody_server::Config::new(dir);
    config.recipients = vec![recipient.to_string()];
    config.insecure_http = plain;
    let (server, _) = custody_server::Server::open(config).unwrap();
    let (addr, task) =
        custody_server::serve::spawn(server.clone(), addr.parse().unwrap()).await.unwrap();
    (server, addr, task)
}

/// A vault in a new directory whose device key (from `seed`) is enrolled with `srv`.
async fn enrolled_vault(srv: &Server, seed: u8) -> (tempfile::TempDir, Vault, SigningKey) {
    let vdir = tempfile::tempdir().unwrap();
    let (vault, _) = Vault::open(vdir.path()).unwrap();
    let key = SigningKey::from_bytes(&[seed; 32]);
    let token = custody_server::issue_token(srv.dir.path(), "o", Duration::from_secs(60)).unwrap();
    custody_client::enroll(&vault, &key, &srv.url, &token).await.unwrap();
    (vdir, vault, key)
}

/// Stops `srv` and returns its data directory and the TLS configuration it served with.
async fn stop(srv: Server) -> (tempfile::TempDir, std::sync::Arc<rustls::ServerConfig>) {
    let Server { server, dir, task, .. } = srv;
    task.abort();
    let _ = task.await;
    (dir, server.tls_config().unwrap())
}

fn plaintext(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(&sha256(&[&seed.to_be_bytes(), &i.to_be_bytes()]));
        i += 1;
    }
    out.truncate(len);
    out
}

fn header(key: &SigningKey, recipients: Vec<String>) -> RecordingHeader {
    let mut h = testkit::header(1, key);
    h.recording_id = RecordingId::random(&mut rand_core::OsRng);
    h.recipients = recipients;
    h
}

fn fields(n: u64) -> SegmentFields {
    testkit::segment(1, n)
}

/// Seals a recording of `segments` segments of `len` bytes into `vault`, to `recipient`,
/// with an end record `ended_after` µs after the test epoch (none: cut off); its id.
fn record(
    vault: &Vault,
    key: &SigningKey,
    recipient: &str,
    segments: u64,
    len: usize,
    ended_after: Option<i64>,
) -> RecordingId {
    let sealer = Sealer::new(parse_recipients(&[recipient.to_string()]).unwrap()).unwrap();
    let h = header(key, vec![recipient.to_string()]);
    let id = h.recording_id;
    let mut w = vault.begin(h, key.clone(), sealer).unwrap();
    for n in 1..=segments {
        let p = plaintext(n, len);
        let input =
            SegmentInput { plaintext: &p, plaintext_sha256: sha256(&[&p]), fields: fields(n) };
        w.add_segment(input).unwrap();
    }
    if let Some(after) = ended_after {
        w.end(testkit::T0_US + after, EndReason::Stopped, None).unwrap();
    }
    id
}

/// Points the vault in `vdir` at `addr` (a proxy in front of the server it enrolled with).
fn point_at(vdir: &std::path::Path, addr: impl std::fmt::Display) {
    let mut e = custody_client::Enrollment::load(vdir).unwrap().unwrap();
    e.url = format!("https://{addr}");
    std::fs::write(vdir.join("enrollment.json"), serde_json::to_vec(&e).unwrap()).unwrap();
}

fn opts() -> Options {
    Options {
        poll: Duration::from_millis(20),
        base_backoff: Duration::from_millis(20),
        ..Options::default()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_is_receipted_live_segment_by_segment() {
    let (_identity, recipient) = new_recipient_identity();
    let srv = server(&recipient).await;
    let vdir = tempfile::tempdir().unwrap();
    let (vault, _) = Vault::open(vdir.path()).unwrap();
    let key = SigningKey::from_bytes(&[42; 32]);
    let token =
        custody_server::issue_token(srv.dir.path(), "observer-1", Duration::from_secs(60)).unwrap();
    let e = custody_client::enroll(&vault, &key, &srv.url, &token).await.unwrap();
    assert_eq!(e.tls_sha256.as_deref(), Some(srv.server.tls_sha256().as_str()));
    assert_eq!(vault.config().unwrap().recipients, vec![recipient.clone()]);
    // The token is spent.
    let spent = custody_client::enroll(&vault, &key, &srv.url, &token).await.unwrap_err();
    assert_eq!(spent.code(), Some(custody_protocol::Code::EnrollTokenUsed), "{spent}");

    let mut uploader = Uploader::new(&vault, key.clone(), opts()).unwrap();
    let mut events = uploader.events();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let runner = {
        let u = uploader.clone();
        tokio::spawn(async move { u.run(stop_rx).await })
    };

    // Record: 2 MB segments, sealed and saved by the vault, paced like a live capture.
    let segments = 12u64;
    let sealer =
        Sealer::new(parse_recipients(&vault.config().unwrap().recipients).unwrap()).unwrap();
    let h = header(&key, vec![recipient.clone()]);
    let id = h.recording_id;
    let mut sealed_at = vec![Instant::now()];
    {
        let mut w = vault.begin(h, key.clone(), sealer).unwrap();
        uploader.nudge();
        for n in 1..=segments {
            let p = plaintext(n, 2_000_000);
            let input =
                SegmentInput { plaintext: &p, plaintext_sha256: sha256(&[&p]), fields: fields(n) };
            w.add_segment(input).unwrap();
            sealed_at.push(Instant::now());
            uploader.nudge();
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        w.end(testkit::T0_US + 30_000_000, EndReason::Stopped, None).unwrap();
        sealed_at.push(Instant::now());
        uploader.nudge();
    }
    let total = segments as usize + 2;
    let mut receipted_at = vec![None; total];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = 0;
    while got < total {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = tokio::time::timeout(left, events.recv())
            .await
            .expect("every record receipted in time")
            .unwrap();
        assert_eq!(ev.recording, id);
        if receipted_at[ev.seq as usize].replace(ev.at).is_none() {
            got += 1;
        }
    }
    stop_tx.send(true).unwrap();
    runner.await.unwrap().unwrap();

    // Sealed → receipt stored, for the segments.
    let mut lat: Vec<Duration> = (1..=segments as usize)
        .map(|s| receipted_at[s].unwrap().saturating_duration_since(sealed_at[s]))
        .collect();
    lat.sort();
    eprintln!(
        "sealed→receipt over {} segments of 2 MB: p50 {:?}, p99 {:?}, max {:?}",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat[lat.len() - 1]
    );

    // Every record has a stored receipt that verifies and names it; nothing is queued.
    let records = vault.records(&id).unwrap();
    let receipts = uploader.receipts(&id).unwrap();
    assert_eq!(receipts.len(), records.len());
    let server_key = PublicKey::parse(&e.server_key).unwrap();
    for (r, rec) in receipts.iter().zip(&records) {
        assert!(r.verify(&server_key));
        assert_eq!(r.value().seq, rec.record().seq());
        assert_eq!(r.value().record_hash, rec.hash());
    }
    assert!(vault.index().pending().unwrap().is_empty());
    // And the server holds the sealed segments byte for byte.
    for seq in 1..=segments {
        let local = std::fs::read(vault.segment_path(&id, seq)).unwrap();
        assert_eq!(srv.server.storage().segment(&id, seq).unwrap().unwrap(), local);
    }
    srv.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_made_offline_is_flushed_completely_and_only_once() {
    let (_identity, recipient) = new_recipient_identity();
    let srv = server(&recipient).await;
    let vdir = tempfile::tempdir().unwrap();
    let key = SigningKey::from_bytes(&[7; 32]);
    let id;
    {
        let (vault, _) = Vault::open(vdir.path()).unwrap();
        let token =
            custody_server::issue_token(srv.dir.path(), "o", Duration::from_secs(60)).unwrap();
        custody_client::enroll(&vault, &key, &srv.url, &token).await.unwrap();
        // Cut off: no end record, as if the recorder was killed.
        id = record(&vault, &key, &recipient, 5, 100_000, None);
    }
    let (vault, _) = Vault::open(vdir.path()).unwrap();
    let up = Uploader::new(&vault, key.clone(), opts()).unwrap();
    let f = up.flush(Duration::from_secs(30)).await.unwrap();
    assert_eq!((f.receipted, f.pending), (6, 0), "{f:?}");
    assert_eq!(up.receipts(&id).unwrap().len(), 6);
    // An index rebuild queues only what has no receipt (issue 16 §5: it queued everything,
    // and status said every record waited); nothing is sent again.
    vault.rebuild_index().unwrap();
    assert_eq!(vault.index().pending().unwrap().len(), 0);
    let log_len = srv.server.log_len();
    let up = Uploader::new(&vault, key, opts()).unwrap();
    let f = up.flush(Duration::from_secs(30)).await.unwrap();
    assert_eq!(f.pending, 0);
    assert_eq!(up.receipts(&id).unwrap().len(), 6, "no duplicate receipts");
    assert_eq!(srv.server.log_len(), log_len);
    srv.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_that_lost_its_receipts_gets_them_back_without_sending_again() {
    let (_identity, recipient) = new_recipient_identity();
    let srv = server(&recipient).await;
    let (vdir, vault, key) = enrolled_vault(&srv, 9).await;
    let id = record(&vault, &key, &recipient, 4, 50_000, Some(9_000_000));
    let up = Uploader::new(&vault, key.clone(), opts()).unwrap();
    let f = up.flush(Duration::from_secs(30)).await.unwrap();
    assert_eq!((f.receipted, f.pending, f.recovered), (6, 0, 0), "{f:?}");
    let receipts_file = vault.recording_dir(&id).join("receipts.bin");
    // By position: uploads in flight together are receipted in any order.
    let by_seq = |up: &Uploader| {
        let mut r: Vec<Vec<u8>> = up.receipts(&id).unwrap().iter().map(|r| r.to_bytes()).collect();
        r.sort_by_key(|b| Signed::<Receipt>::parse(b).unwrap().value().seq);
        r
    };
    let kept = by_seq(&up);
    let log_len = srv.server.log_len();

    // receipts.bin deleted (a phone that cleared its copy): the records are not queued
    // any more, yet none has a receipt.
    std::fs::remove_file(&receipts_file).unwrap();
    let up = Uploader::new(&vault, key.clone(), opts()).unwrap();
    let f = up.flush(Duration::from_secs(30)).await.unwrap();
    assert_eq!((f.recovered, f.receipted, f.pending), (6, 0, 0), "{f:?}");
    assert_eq!(by_seq(&up), kept, "the very receipts the server gave before");
    assert_eq!(srv.server.log_len(), log_len, "nothing was sent again");

    // Deleted again and the index rebuilt, so every record is queued: asked for first,
    // still nothing sent.
    std::fs::remove_file(&receipts_file).unwrap();
    vault.rebuild_index().unwrap();
    assert_eq!(vault.index().pending().unwrap().len(), 6);
    let up = Uploader::new(&vault, key, opts()).unwrap();
    let f = up.flush(Duration::from_secs(30)).await.unwrap();
    assert_eq!((f.recovered, f.receipted, f.pending), (6, 0, 0), "{f:?}");
    assert_eq!(up.receipts(&id).unwrap().len(), 6);
    assert_eq!(srv.server.log_len(), log_len);
    drop(vdir);
    srv.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_wait_out_a_server_that_is_down_and_complete_when_it_returns() {
    let (_identity, recipient) = new_recipient_identity();
    let srv = server(&recipient).await;
    let addr = srv.url.trim_start_matches("https://").to_string();
    let (_vdir, vault, key) = enrolled_vault(&srv, 9).await;
    // The server goes away.
    let (dir, _) = stop(srv).await;

    let id = record(&vault, &key, &recipient, 3, 50_000, Some(10_000_000));

    let up = Uploader::new(&vault, key, opts()).unwrap();
    let f = up.flush(Duration::from_millis(500)).await.unwrap();
    assert_eq!((f.receipted, f.pending), (0, 5), "{f:?}");
    assert!(f.last_error.is_some());

    // The server comes back at the same address, with the same data.
    let (_server, _, task) = serve_at(dir.path(), &recipient, &addr, false).await;
    let f = up.flush(Duration::from_secs(30)).await.unwrap();
    assert_eq!((f.receipted, f.pending), (5, 0), "{f:?}");
    assert_eq!(up.receipts(&id).unwrap().len(), 5);
    task.abort();
}

/// A TCP proxy that breaks connections: by turns it resets a connection at once, cuts one
/// after part of a request body, delays one, and passes one through until 3 MB have gone
/// up it (then cuts it too, so keep-alive cannot dodge the faults).
async fn faulty_proxy(upstream: String) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        for n in 0u64.. {
            let Ok((mut client, _)) = listener.accept().await else { return };
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let (budget, delay) = match n % 4 {
                    0 => (0usize, 0u64),   // reset at once
                    1 => (20_000, 0),      // cut mid-body
                    2 => (3_000_000, 300), // slow start
                    _ => (3_000_000, 0),
                };
                if budget == 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(delay)).await;
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let up = async {
                    let mut sent = 0usize;
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let Ok(k) = cr.read(&mut buf).await else { return };
                        if k == 0 || sent >= budget {
                            return;
                        }
                        let k = k.min(budget - sent);
                        if sw.write_all(&buf[..k]).await.is_err() {
                            return;
                        }
                        sent += k;
                    }
                };
                let down = tokio::io::copy(&mut sr, &mut cw);
                tokio::select! {
                    _ = up => {}
                    _ = down => {}
                }
            });
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_proxy_that_breaks_connections_every_record_is_stored_once() {
    let (_identity, recipient) = new_recipient_identity();
    let srv = server(&recipient).await;
    let upstream = srv.url.trim_start_matches("https://").to_string();
    let (vdir, vault, key) = enrolled_vault(&srv, 5).await;
    // From now on the device reaches the server only through the faulty proxy (same TLS
    // certificate, so the pin holds).
    let (proxy, ptask) = faulty_proxy(upstream).await;
    point_at(vdir.path(), proxy);

    let id = record(&vault, &key, &recipient, 8, 400_000, Some(20_000_000));
    let log_before = srv.server.log_len();

    let up = Uploader::new(&vault, key, opts()).unwrap();
    let f = up.flush(Duration::from_secs(60)).await.unwrap();
    // A record whose answer the proxy broke after the server stored it is receipted through
    // the receipts route (recovered) rather than sent again.
    assert_eq!((f.receipted + f.recovered, f.pending), (10, 0), "{f:?}");
    assert!(f.last_error.is_some(), "the proxy broke no request");
    let receipts = up.receipts(&id).unwrap();
    assert_eq!(receipts.len(), 10);
    // Exactly once on the server: one log entry per record, however many attempts.
    assert_eq!(srv.server.log_len(), log_before + 10);
    for r in &receipts {
        let stored = srv.server.storage().record(&id, r.value().seq).unwrap().unwrap();
        let rec = custody_format::record::SignedRecord::parse(&stored).unwrap();
        assert_eq!(rec.hash(), r.value().record_hash);
        // No damaged receipt was kept: every receipt the device holds is the server's.
        assert!(r.verify(&srv.server.public_key()), "a receipt the server did not sign was kept");
    }
    ptask.abort();
    srv.task.abort();
}

/// Reads one HTTP/1.1 message (headers and a Content-Length body).
async fn message<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let end = loop {
        if let Some(i) = memchr::memmem::find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::io::AsyncReadExt::read(r, &mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().ok()))
        .flatten()
        .unwrap_or(0);
    let mut body = buf.split_off(end);
    while body.len() < len {
        let n = tokio::io::AsyncReadExt::read(r, &mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((buf, body))
}

/// A TLS-terminating HTTP proxy (it presents the server's own certificate, so the pin
/// holds) in front of a plain-HTTP server. By turns it answers `500` without passing the
/// request on, passes the request on and answers `503` in place of the server's answer
/// (the receipt is lost on the way back), and passes the rest through — but flips one byte
/// of every other one of the first kind (a damaged or forged receipt) and, in place of every
/// other one of the second, replays an earlier receipt (one the server really signed, for
/// another record). The device must refuse both. One request per connection. Returns its
/// address and the counts of 500s, 503s, damaged and replayed receipts given.
async fn http_fault_proxy(
    tls: std::sync::Arc<rustls::ServerConfig>,
    upstream: String,
) -> (String, std::sync::Arc<[std::sync::atomic::AtomicU64; 4]>, tokio::task::JoinHandle<()>) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::AsyncWriteExt;

    fn answer(status: &str, code: &str) -> Vec<u8> {
        let body = format!(r#"{{"error":{{"code":"{code}","message":"from the test proxy"}}}}"#);
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let counts = std::sync::Arc::new([0, 0, 0, 0].map(AtomicU64::new));
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let c = counts.clone();
    let earlier = std::sync::Arc::new(std::sync::Mutex::new(None::<Vec<u8>>));
    let task = tokio::spawn(async move {
        for n in 0u64.. {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, upstream, c) = (acceptor.clone(), upstream.clone(), c.clone());
            let earlier = earlier.clone();
            tokio::spawn(async move {
                let Ok(mut client) = acceptor.accept(tcp).await else { return };
                let Some((head, body)) = message(&mut client).await else { return };
                if n % 4 == 0 {
                    c[0].fetch_add(1, Ordering::Relaxed);
                    let _ =
                        client.write_all(&answer("500 Internal Server Error", "proxy.500")).await;
                    let _ = client.shutdown().await;
                    return;
                }
                let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                if server.write_all(&head).await.is_err() || server.write_all(&body).await.is_err()
                {
                    return;
                }
                let Some((rhead, rbody)) = message(&mut server).await else { return };
                let out = if n % 4 == 1 {
                    c[1].fetch_add(1, Ordering::Relaxed);
                    answer("503 Service Unavailable", "proxy.503")
                } else {
                    let mut rbody = rbody;
                    let receipt = head.starts_with(b"PUT ");
                    let ok = receipt && rhead.starts_with(b"HTTP/1.1 200") && !rbody.is_empty();
                    if n % 8 == 2 && ok {
                        c[2].fetch_add(1, Ordering::Relaxed);
                        let last = rbody.len() - 1;
                        rbody[last] ^= 0x01;
                    } else if n % 8 == 3 && ok {
                        let mut kept = earlier.lock().unwrap();
                        match kept.replace(rbody.clone()) {
                            // Same length: the header's Content-Length still holds.
                            Some(old) if old != rbody && old.len() == rbody.len() => {
                                c[3].fetch_add(1, Ordering::Relaxed);
                                rbody = old;
                            }
                            _ => {}
                        }
                    } else if ok {
                        *earlier.lock().unwrap() = Some(rbody.clone());
                    }
                    // The server's answer, on a connection that closes after it.
                    let i = memchr::memmem::find(&rhead, b"\r\n").unwrap() + 2;
                    let mut out = rhead[..i].to_vec();
                    out.extend_from_slice(b"connection: close\r\n");
                    out.extend_from_slice(&rhead[i..]);
                    out.extend_from_slice(&rbody);
                    out
                };
                let _ = client.write_all(&out).await;
                let _ = client.shutdown().await;
            });
        }
    });
    (addr, counts, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_proxy_answering_500_503_damaged_and_replayed_receipts_every_record_is_stored_once(
) {
    use std::sync::atomic::Ordering;
    let (_identity, recipient) = new_recipient_identity();
    let srv = server(&recipient).await;
    let (vdir, vault, key) = enrolled_vault(&srv, 6).await;
    // The same data served over plain HTTP behind the proxy, which presents the server's
    // certificate: to the device nothing changed but the address.
    let (dir, tls) = stop(srv).await;
    let (server, plain, task) = serve_at(dir.path(), &recipient, "127.0.0.1:0", true).await;
    let (proxy, counts, ptask) = http_fault_proxy(tls, plain.to_string()).await;
    point_at(vdir.path(), proxy);

    let id = record(&vault, &key, &recipient, 8, 300_000, Some(20_000_000));
    let log_before = server.log_len();

    // Many failures in a row are likely here: keep the retry delay short.
    let quick = Options { max_backoff: Duration::from_millis(200), ..opts() };
    let up = Uploader::new(&vault, key, quick).unwrap();
    let f = up.flush(Duration::from_secs(60)).await.unwrap();
    assert_eq!((f.receipted, f.pending, f.log_inconsistent.clone()), (10, 0, None), "{f:?}");
    assert!(counts[0].load(Ordering::Relaxed) > 0, "no 500 was answered");
    assert!(counts[1].load(Ordering::Relaxed) > 0, "no 503 was answered");
    assert!(counts[2].load(Ordering::Relaxed) > 0, "no receipt was damaged");
    assert!(counts[3].load(Ordering::Relaxed) > 0, "no receipt was replayed");
    // Exactly once on the server, although some records were stored and their receipts
    // lost, then sent again.
    assert_eq!(server.log_len(), log_before + 10);
    let receipts = up.receipts(&id).unwrap();
    assert_eq!(receipts.len(), 10);
    // One receipt for each record: a replayed receipt (validly signed, naming another
    // record) was not taken for the record it came back for.
    let seqs: std::collections::BTreeSet<u64> = receipts.iter().map(|r| r.value().seq).collect();
    assert_eq!(seqs, (0..10).collect());
    for r in &receipts {
        let stored = server.storage().record(&id, r.value().seq).unwrap().unwrap();
        let rec = custody_format::record::SignedRecord::parse(&stored).unwrap();
        assert_eq!(rec.hash(), r.value().record_hash);
        // No damaged receipt was kept: every receipt the device holds is the server's.
        assert!(r.verify(&server.public_key()), "a receipt the server did not sign was kept");
    }
    ptask.abort();
    task.abort();
}

/// The device pins the server's TLS certificate at enrollment. Another server at the
/// enrolled address — a machine in the middle, or an impostor with a certificate of its
/// own — gets nothing: it stores and logs nothing, nothing is receipted, the failure says
/// why, and everything stays queued for the real server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_another_certificate_at_the_enrolled_address_gets_nothing() {
    let (_identity, recipient) = new_recipient_identity();
    let real = server(&recipient).await;
    let addr = real.url.trim_start_matches("https://").to_string();
    let (_vdir, vault, key) = enrolled_vault(&real, 11).await;
    let (dir, _) = stop(real).await;

    // An impostor takes the address: a custody server of its own, with its own key and
    // certificate.
    let impostor_dir = tempfile::tempdir().unwrap();
    let (impostor, _, itask) = serve_at(impostor_dir.path(), &recipient, &addr, false).await;
    let impostor_log = impostor.log_len();

    let id = record(&vault, &key, &recipient, 1, 50_000, Some(10_000_000));

    let up = Uploader::new(&vault, key, opts()).unwrap();
    let f = up.flush(Duration::from_millis(800)).await.unwrap();
    assert_eq!((f.receipted, f.pending), (0, 3), "{f:?}");
    let why = f.last_error.clone().unwrap_or_default().to_lowercase();
    assert!(why.contains("not the one pinned at enrollment"), "{why}");
    assert_eq!(impostor.log_len(), impostor_log, "the impostor received nothing");
    assert!(impostor.storage().record(&id, 0).unwrap().is_none());
    itask.abort();
    let _ = itask.await;
    drop(impostor);

    // The real server returns: everything goes to it.
    let (_server, _, task) = serve_at(dir.path(), &recipient, &addr, false).await;
    let f = up.flush(Duration::from_secs(30)).await.unwrap();
    assert_eq!((f.receipted, f.pending), (3, 0), "{f:?}");
    task.abort();
}

/// A machine in the middle at enrollment, the one moment nothing is pinned yet: it shows
/// the device a certificate of its own and relays to the real server. The server answers
/// with the fingerprint of its own certificate, the device compares it with the one it was
/// shown, refuses the enrollment and pins nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interceptor_at_enrollment_is_found_out_and_nothing_is_pinned() {
    use tokio::io::AsyncWriteExt;
    let (_identity, recipient) = new_recipient_identity();
    let real = server(&recipient).await;
    // Another custody server lends the interceptor a certificate that is not the real one.
    let lender = server(&recipient).await;
    let tls = lender.server.tls_config().unwrap();
    let pin: [u8; 32] = hex::decode(real.server.tls_sha256()).unwrap().try_into().unwrap();
    let (forward, _) = custody_client::pinned_client(Some(pin), Duration::from_secs(10)).unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let interceptor = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let upstream = real.url.clone();
    let relayed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = relayed.clone();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(mut device) = acceptor.accept(tcp).await else { continue };
            let Some((head, body)) = message(&mut device).await else { continue };
            let line = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_string();
            let path = line.split(' ').nth(1).unwrap_or("/").to_string();
            let resp = forward
                .post(format!("{upstream}{path}"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let status = resp.status().as_u16();
            let answer = resp.bytes().await.unwrap();
            let mut out = format!(
                "HTTP/1.1 {status} OK\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n",
                answer.len()
            )
            .into_bytes();
            out.extend_from_slice(&answer);
            let _ = device.write_all(&out).await;
            let _ = device.shutdown().await;
        }
    });

    let vdir = tempfile::tempdir().unwrap();
    let (vault, _) = Vault::open(vdir.path()).unwrap();
    let key = SigningKey::from_bytes(&[12; 32]);
    let token = custody_server::issue_token(real.dir.path(), "o", Duration::from_secs(60)).unwrap();
    let err = custody_client::enroll(&vault, &key, &format!("https://{interceptor}"), &token)
        .await
        .unwrap_err();
    assert_eq!(relayed.load(std::sync::atomic::Ordering::Relaxed), 1, "the answer was relayed");
    assert!(
        err.to_string().contains("tls_sha256 is not the certificate the server presented"),
        "{err}"
    );
    assert!(custody_client::Enrollment::load(vdir.path()).unwrap().is_none(), "nothing was pinned");
    // The relayed request did enroll the key at the real server: the token is spent, and
    // the observer must ask for a new one.
    let public = custody_format::ids::PublicKey::from(key.verifying_key());
    assert!(real.server.device(&public).is_some());
    task.abort();
}

/// A run stopped the moment a receipt is stored still counts that receipt: the stop may be
/// seen before the upload's outcome is, and `Flushed::receipted` once missed it (5 of 6
/// while all 6 were receipted). One upload at a time, stopped after each receipt, so every
/// round's count (receipted, or recovered for a record stored as the last round stopped)
/// must equal what the receipts book gained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_as_a_receipt_is_stored_counts_it() {
    let (_identity, recipient) = new_recipient_identity();
    let srv = server(&recipient).await;
    let (_vdir, vault, key) = enrolled_vault(&srv, 23).await;
    let id = record(&vault, &key, &recipient, 6, 2_000, Some(9_000_000));
    let mut counted = 0;
    for round in 0..12 {
        let before = vault.index().pending().unwrap().len();
        if before == 0 {
            break;
        }
        let mut up =
            Uploader::new(&vault, key.clone(), Options { concurrency: 1, ..opts() }).unwrap();
        let mut events = up.events();
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let runner = up.clone();
        let run = tokio::spawn(async move { runner.run(stop_rx).await });
        let got = tokio::time::timeout(Duration::from_secs(20), events.recv()).await;
        assert!(matches!(got, Ok(Some(_))), "round {round}: no receipt");
        stop.send(true).unwrap();
        let f = run.await.unwrap().unwrap();
        let stored = up.receipts(&id).unwrap().len();
        // A record the server stored just as the previous round stopped (its answer never
        // read) comes back this round as a recovered receipt, not an upload's.
        assert_eq!((f.receipted + f.recovered) as usize, stored - counted, "round {round}: {f:?}");
        counted = stored;
    }
    assert_eq!(counted, 8, "every record receipted: header, 6 segments, end");
    srv.task.abort();
}
