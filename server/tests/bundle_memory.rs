//! A bundle streams out of storage: fetching a recording of 24 MB of sealed segments raises
//! the process's peak memory by far less than the recording's size. (Its own test binary,
//! so no other test's allocations share the process.)

mod common;

use common::*;
use custody_format::chain::ChainBuilder;
use custody_format::primitives::sha256;
use custody_format::record::EndReason;
use custody_format::testkit;
use custody_server::Role;

const SEGMENTS: u64 = 24;
const SEGMENT_LEN: usize = 1_000_000;

/// Peak resident memory of this process so far, bytes (Linux).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[tokio::test]
async fn a_large_bundle_streams_without_being_held_in_memory() {
    let ts = start(test_limits()).await;
    let c = client();
    let d = enrolled(&ts, &c, "observer-big").await;
    let key = ts.server.public_key();
    let header = testkit::header(9, &d.key);
    let id = header.recording_id;
    let (mut b, h) = ChainBuilder::start(header, d.key.clone()).unwrap();
    let s = d.put(&c, &ts.base, &key, id, 0, h.to_bytes()).await;
    assert_eq!(s.status, 200);
    // One segment's bytes, reused (each record names its hash): the test itself then holds
    // about one segment, not the recording.
    let ct = bytes(b"big", SEGMENT_LEN);
    for n in 1..=SEGMENTS {
        let mut f = testkit::segment(9, n);
        f.ciphertext_len = ct.len() as u64;
        f.ciphertext_sha256 = sha256(&[&ct]);
        let mut body = b.segment(f).to_bytes();
        body.extend_from_slice(&ct);
        let s = d.put(&c, &ts.base, &key, id, n, body).await;
        assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
    }
    let end = b.end(testkit::T0_US + 60_000_000, EndReason::Stopped, None);
    assert_eq!(d.put(&c, &ts.base, &key, id, SEGMENTS + 1, end.to_bytes()).await.status, 200);
    let token = custody_server::add_member(ts.dir.path(), "Dee", Role::Member).unwrap();

    let before = peak_rss();
    let mut resp = c
        .get(format!("{}/v1/recordings/{id}/bundle", ts.base))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let total = resp.content_length().unwrap();
    assert!(total > SEGMENTS * SEGMENT_LEN as u64);
    let mut got = 0u64;
    let mut hash = sha2::Sha256::default();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        sha2::Digest::update(&mut hash, &chunk);
        got += chunk.len() as u64;
    }
    assert_eq!(got, total);
    let grew = peak_rss().saturating_sub(before);
    assert!(
        grew < (SEGMENTS * SEGMENT_LEN as u64) / 3,
        "peak memory grew by {grew} bytes while streaming a {total}-byte bundle"
    );
}
