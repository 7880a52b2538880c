//! Every refusal over real HTTP on loopback: its status and code, nothing stored, and the
//! server still serving others afterwards.

mod common;

use std::time::Duration;

use common::*;
use custody_format::ids::RecordingId;
use reqwest::Method;

/// Asserts nothing is stored for `id` at `seq`.
fn nothing_stored(ts: &TestServer, id: &RecordingId, seq: u64) {
    assert!(ts.server.storage().record(id, seq).unwrap().is_none(), "record {seq} stored");
    assert!(ts.server.storage().segment(id, seq).unwrap().is_none(), "segment {seq} stored");
}

#[tokio::test]
async fn each_refusal_has_its_code_and_stores_nothing() {
    let ts = start(test_limits()).await;
    let c = client();
    let d = enrolled(&ts, &c, "good").await;
    let key = ts.server.public_key();
    let chain = Chain::new(9, &d, 3, true, b"a");
    assert_eq!(d.put(&c, &ts.base, &key, chain.id, 0, chain.body(0)).await.status, 200);
    assert_eq!(d.put(&c, &ts.base, &key, chain.id, 1, chain.body(1)).await.status, 200);
    let log_len = ts.server.log_len();
    let path2 = format!("/v1/recordings/{}/records/2", chain.id);

    // Unenrolled device.
    let stranger = Device::new("stranger");
    let schain = Chain::new(10, &stranger, 1, false, b"a");
    let s = stranger.put(&c, &ts.base, &key, schain.id, 0, schain.body(0)).await;
    assert_eq!((s.status, s.code().as_str()), (401, "auth.unknown_device"));
    nothing_stored(&ts, &schain.id, 0);

    // No authentication at all.
    let r = c.put(format!("{}{path2}", ts.base)).body(chain.body(2)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "auth.missing");

    // Forged request signature: the good device's name, another key's signature.
    let forger = testkit_key("forger");
    let h = d.headers(&forger, &key, "PUT", &path2, now_us(), fresh_nonce(), &chain.body(2));
    let s = d.send(&c, &ts.base, Method::PUT, &path2, h, chain.body(2)).await;
    assert_eq!((s.status, s.code().as_str()), (401, "auth.signature"));

    // A signature over another path (a captured request re-aimed).
    let h = d.headers(
        &d.key,
        &key,
        "PUT",
        "/v1/recordings/x/records/2",
        now_us(),
        fresh_nonce(),
        &chain.body(2),
    );
    let s = d.send(&c, &ts.base, Method::PUT, &path2, h, chain.body(2)).await;
    assert_eq!((s.status, s.code().as_str()), (401, "auth.signature"));

    // Stale timestamp.
    let old = now_us() - 3_600_000_000;
    let h = d.headers(&d.key, &key, "PUT", &path2, old, fresh_nonce(), &chain.body(2));
    let s = d.send(&c, &ts.base, Method::PUT, &path2, h, chain.body(2)).await;
    assert_eq!((s.status, s.code().as_str()), (401, "auth.stale"));

    // A record signed by another key (request signed properly by the enrolled device).
    let other_signer = Device::new("forger");
    let forged_chain = Chain::new(9, &other_signer, 3, true, b"a");
    let s = d.put(&c, &ts.base, &key, chain.id, 2, forged_chain.body(2)).await;
    assert_eq!((s.status, s.code().as_str()), (422, "record.signature"));

    // Wrong chain link: this device's own record 2 from another chain of the same id.
    let fork = Chain::new(9, &d, 3, true, b"fork");
    let mut fork_body = fork.records[2].to_bytes();
    fork_body.extend_from_slice(&fork.ciphertexts[2]);
    let s = d.put(&c, &ts.base, &key, chain.id, 2, fork_body).await;
    assert_eq!((s.status, s.code().as_str()), (422, "chain.link"));

    // Ciphertext hash mismatch (same length).
    let mut body = chain.body(2);
    let n = body.len();
    body[n - 1] ^= 1;
    let s = d.put(&c, &ts.base, &key, chain.id, 2, body).await;
    assert_eq!((s.status, s.code().as_str()), (422, "segment.hash"));

    // Ciphertext length mismatch.
    let mut body = chain.body(2);
    body.pop();
    let s = d.put(&c, &ts.base, &key, chain.id, 2, body).await;
    assert_eq!((s.status, s.code().as_str()), (422, "segment.length"));

    // The record's position is not the URL's.
    let s = d.put(&c, &ts.base, &key, chain.id, 3, chain.body(2)).await;
    assert_eq!((s.status, s.code().as_str()), (400, "record.position"));

    // Not a record at all.
    let s = d.put(&c, &ts.base, &key, chain.id, 2, b"garbage".to_vec()).await;
    assert_eq!((s.status, s.code().as_str()), (400, "record.malformed"));

    // Oversized body (the test server takes 1 MiB).
    let s = d.put(&c, &ts.base, &key, chain.id, 2, vec![0u8; (1 << 20) + 1000]).await;
    assert_eq!((s.status, s.code().as_str()), (413, "body.too_large"));

    // Replayed request: the same headers and body twice.
    let h = d.headers(&d.key, &key, "PUT", &path2, now_us(), fresh_nonce(), b"garbage");
    let s = d.send(&c, &ts.base, Method::PUT, &path2, h.clone(), b"garbage".to_vec()).await;
    assert_eq!(s.code(), "record.malformed");
    let s = d.send(&c, &ts.base, Method::PUT, &path2, h, b"garbage".to_vec()).await;
    assert_eq!((s.status, s.code().as_str()), (401, "auth.replayed"));

    // Another device writing into this device's recording.
    let intruder = enrolled(&ts, &c, "intruder").await;
    let ichain = Chain::new(9, &intruder, 3, true, b"a");
    let s = intruder.put(&c, &ts.base, &key, chain.id, 2, ichain.body(2)).await;
    assert_eq!((s.status, s.code().as_str()), (403, "recording.owner"));

    nothing_stored(&ts, &chain.id, 2);
    nothing_stored(&ts, &chain.id, 3);
    // Only the intruder's enrollment reached the log: no refusal above is an entry.
    assert_eq!(ts.server.log_len(), log_len + 1);

    // And the server still serves: the right record goes in.
    let s = d.put(&c, &ts.base, &key, chain.id, 2, chain.body(2)).await;
    assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
}

fn testkit_key(label: &str) -> ed25519_dalek::SigningKey {
    custody_format::testkit::key(label)
}

#[tokio::test]
async fn a_revoked_device_is_refused() {
    let ts = start(test_limits()).await;
    let c = client();
    let d = enrolled(&ts, &c, "seized").await;
    let key = ts.server.public_key();
    let chain = Chain::new(4, &d, 1, false, b"a");
    ts.server.revoke(&d.public, "lawyer-1", "device seized").unwrap();
    let s = d.put(&c, &ts.base, &key, chain.id, 0, chain.body(0)).await;
    assert_eq!((s.status, s.code().as_str()), (403, "auth.revoked"));
    nothing_stored(&ts, &chain.id, 0);
}

#[tokio::test]
async fn a_stalled_body_is_dropped_and_harms_nothing() {
    let mut limits = test_limits();
    limits.body_timeout = Duration::from_millis(300);
    let ts = start(limits).await;
    let c = client();
    let d = enrolled(&ts, &c, "slow").await;
    let key = ts.server.public_key();
    let chain = Chain::new(5, &d, 1, false, b"a");
    let body = chain.body(0);
    let path = format!("/v1/recordings/{}/records/0", chain.id);
    let h = d.headers(&d.key, &key, "PUT", &path, now_us(), fresh_nonce(), &body);
    // Promise the whole body, send half, then stall.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = ts.base.trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut req =
        format!("PUT {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in &h {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    sock.write_all(req.as_bytes()).await.unwrap();
    sock.write_all(&body[..body.len() / 2]).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server must drop a stalled upload");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("body.timeout"), "{text}");
    nothing_stored(&ts, &chain.id, 0);
    assert_eq!(d.put(&c, &ts.base, &key, chain.id, 0, chain.body(0)).await.status, 200);
}

#[tokio::test]
async fn no_route_reads_or_deletes_footage() {
    let ts = start(test_limits()).await;
    let c = client();
    let d = enrolled(&ts, &c, "d").await;
    let key = ts.server.public_key();
    let chain = Chain::new(6, &d, 1, false, b"a");
    assert_eq!(d.put(&c, &ts.base, &key, chain.id, 1, chain.body(1)).await.status, 200);
    let path = format!("/v1/recordings/{}/records/1", chain.id);
    for m in [Method::GET, Method::DELETE] {
        let h = d.headers(&d.key, &key, m.as_str(), &path, now_us(), fresh_nonce(), b"");
        let s = d.send(&c, &ts.base, m.clone(), &path, h, Vec::new()).await;
        assert_eq!(s.status, 405, "{m} answered {}", s.status);
        assert!(!s.body.windows(64).any(|w| chain.ciphertexts[1].windows(64).next() == Some(w)));
    }
    assert!(ts.server.storage().segment(&chain.id, 1).unwrap().is_some());
}

#[tokio::test]
async fn a_device_over_its_concurrency_limit_is_told_to_wait_and_others_are_served() {
    let mut limits = test_limits();
    limits.per_device_concurrency = 1;
    let ts = start(limits).await;
    let c = client();
    let d = enrolled(&ts, &c, "busy").await;
    let other = enrolled(&ts, &c, "other").await;
    let key = ts.server.public_key();
    let chain = Chain::new(8, &d, 1, false, b"a");
    let body = chain.body(0);
    let path = format!("/v1/recordings/{}/records/0", chain.id);
    let h = d.headers(&d.key, &key, "PUT", &path, now_us(), fresh_nonce(), &body);
    // One upload in progress (its body half sent) holds the device's only slot.
    use tokio::io::AsyncWriteExt;
    let addr = ts.base.trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut req =
        format!("PUT {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in &h {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    sock.write_all(req.as_bytes()).await.unwrap();
    sock.write_all(&body[..body.len() / 2]).await.unwrap();
    // Wait (bounded) until the server holds that slot: the next request is refused as busy.
    let mut refused = None;
    for _ in 0..100 {
        let s = d.put(&c, &ts.base, &key, chain.id, 0, chain.body(0)).await;
        if s.status == 429 {
            refused = Some(s);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(refused.expect("refused while busy").code(), "device.busy");
    // Another device is served meanwhile.
    let ochain = Chain::new(11, &other, 1, false, b"a");
    assert_eq!(other.put(&c, &ts.base, &key, ochain.id, 0, ochain.body(0)).await.status, 200);
    // Finishing the first upload frees the slot.
    sock.write_all(&body[body.len() / 2..]).await.unwrap();
    let mut ok = false;
    for _ in 0..100 {
        let s = d.put(&c, &ts.base, &key, chain.id, 0, chain.body(0)).await;
        if s.status == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(ok);
}
