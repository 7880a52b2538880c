//! The custody log and evidence bundles, over real HTTP on loopback, on every back-end
//! (files, memory): the seams of `custody_server::store` hold the same server whichever
//! implementation is behind them. (The ingest suite in `ingest.rs` runs on both too.)

mod common;

use std::time::Duration;

use common::*;
use custody_format::log::{EntryType, TreeHead};
use custody_format::merkle;
use custody_format::receipt::Receipt;
use custody_format::report::Verdict;
use custody_format::signed::Signed;
use custody_server::Role;
use reqwest::Method;

async fn get(ts: &TestServer, c: &reqwest::Client, d: &Device, path: &str) -> serde_json::Value {
    let key = ts.server.public_key();
    let h = d.headers(&d.key, &key, "GET", path, now_us(), fresh_nonce(), b"");
    let s = d.send(c, &ts.base, Method::GET, path, h, Vec::new()).await;
    assert_eq!(s.status, 200, "{path}: {}", String::from_utf8_lossy(&s.body));
    serde_json::from_slice(&s.body).unwrap()
}

fn hashes(v: &serde_json::Value) -> Vec<[u8; 32]> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| hex::decode(h.as_str().unwrap()).unwrap().try_into().unwrap())
        .collect()
}

/// Uploads `chain` whole; returns its receipts.
async fn upload(ts: &TestServer, c: &reqwest::Client, d: &Device, chain: &Chain) -> Vec<Receipt> {
    let key = ts.server.public_key();
    let mut out = Vec::new();
    for seq in 0..chain.records.len() {
        let s = d.put(c, &ts.base, &key, chain.id, seq as u64, chain.body(seq)).await;
        assert_eq!(s.status, 200, "seq {seq}: {}", String::from_utf8_lossy(&s.body));
        out.push(Signed::<Receipt>::parse(&s.body).unwrap().value().clone());
    }
    out
}

/// Every receipt's entry is proven included in the latest head, and every receipt's tree
/// is proven a prefix of it, with proofs from the log's subtree hashes.
async fn every_receipt_is_included_in_and_consistent_with_the_head(back: Back) {
    let ts = start_on(back, test_limits()).await;
    let c = client();
    let d = enrolled(&ts, &c, "d").await;
    let other = enrolled(&ts, &c, "other").await;
    let mut receipts = upload(&ts, &c, &d, &Chain::new(1, &d, 5, true, b"a")).await;
    receipts.extend(upload(&ts, &c, &other, &Chain::new(2, &other, 6, false, b"b")).await);

    let v = get(&ts, &c, &d, "/v1/log/head").await;
    let bytes = hex::decode(v["tree_head"].as_str().unwrap()).unwrap();
    let head = Signed::<TreeHead>::parse(&bytes).unwrap();
    assert!(head.verify(&ts.server.public_key()));
    let head = head.value().clone();
    assert_eq!(head.tree_size, 2 + receipts.len() as u64, "two enrollments and the records");
    for r in &receipts {
        let path = format!("/v1/log/inclusion?index={}&size={}", r.log_index, head.tree_size);
        let v = get(&ts, &c, &d, &path).await;
        let leaf: [u8; 32] =
            hex::decode(v["leaf_hash"].as_str().unwrap()).unwrap().try_into().unwrap();
        let proof = hashes(&v["proof"]);
        merkle::verify_inclusion(&leaf, r.log_index, head.tree_size, &proof, &head.root_hash)
            .unwrap();
        let path = format!("/v1/log/consistency?from={}&to={}", r.tree_size, head.tree_size);
        let proof = hashes(&get(&ts, &c, &d, &path).await["proof"]);
        merkle::verify_consistency(
            r.tree_size,
            head.tree_size,
            &r.tree_root,
            &head.root_hash,
            &proof,
        )
        .unwrap();
    }
    // The entries in the log's store are the leaves the proofs are about.
    let entries = ts.logged_entries();
    assert_eq!(entries.len() as u64, head.tree_size);
    let root =
        merkle::root(&entries.iter().map(|e| merkle::leaf_hash(&e.encode())).collect::<Vec<_>>());
    assert_eq!(root, head.root_hash);
}

/// A member's bundle verifies as intact and complete, trusted; after the index is lost
/// and rebuilt, the same records get the very same receipts and a new bundle verifies too.
async fn a_bundle_verifies_before_and_after_the_index_is_rebuilt(back: Back) {
    let ts = start_on(back, test_limits()).await;
    let c = client();
    let d = enrolled(&ts, &c, "observer").await;
    let chain = Chain::new(3, &d, 4, true, b"a");
    let receipts = upload(&ts, &c, &d, &chain).await;
    let token = ts.server.add_member("Ana Ruiz", Role::Member).unwrap();

    let fetch_and_verify = |ts: &TestServer| {
        let url = format!("{}/v1/recordings/{}/bundle", ts.base, chain.id);
        let key = ts.server.public_key();
        let c = c.clone();
        let token = token.clone();
        async move {
            let r = c.get(url).header("authorization", format!("Bearer {token}")).send().await;
            let r = r.unwrap();
            assert_eq!(r.status().as_u16(), 200);
            let body = r.bytes().await.unwrap();
            let work = tempfile::tempdir().unwrap();
            let tar = work.path().join("bundle.tar");
            std::fs::write(&tar, &body).unwrap();
            let source = custody_verifier::source::open(&tar).unwrap();
            let options = custody_verifier::Options { trust: Some(key), ..Default::default() };
            custody_verifier::verify(source.as_ref(), &options).unwrap()
        }
    };
    let report = fetch_and_verify(&ts).await;
    assert!(matches!(report.verdict, Verdict::IntactComplete), "{:?}", report.verdict);
    assert!(matches!(report.trust, custody_verifier::Trust::Trusted { .. }), "{:?}", report.trust);
    assert_eq!(report.segments.len(), 4);
    let (_, last) = report.custody_log.last().unwrap();
    assert_eq!(last.entry_type, EntryType::Access);
    // The transfer's delivery entry was logged before its last bytes were sent, so the old
    // server is not still appending to the log when the new one opens it.
    assert!(ts.logged_entries().iter().any(|e| {
        e.detail.as_deref().is_some_and(|d| d.starts_with("delivered ") && d.ends_with("complete"))
    }));

    let ts = ts.lose_index().await;
    let key = ts.server.public_key();
    let log_len = ts.server.log_len();
    for (seq, want) in receipts.iter().enumerate() {
        let s = d.put(&c, &ts.base, &key, chain.id, seq as u64, chain.body(seq)).await;
        assert_eq!(s.status, 200);
        assert_eq!(Signed::<Receipt>::parse(&s.body).unwrap().value(), want, "seq {seq}");
    }
    assert_eq!(ts.server.log_len(), log_len, "nothing logged twice");
    let report = fetch_and_verify(&ts).await;
    assert!(matches!(report.verdict, Verdict::IntactComplete), "{:?}", report.verdict);
    let accesses = |detail: &str| {
        report
            .custody_log
            .iter()
            .filter(|(_, e)| e.entry_type == EntryType::Access)
            .filter(|(_, e)| e.detail.as_deref().is_some_and(|d| d.starts_with(detail)))
            .count()
    };
    assert_eq!(accesses("bundle"), 2, "both retrievals are in the second bundle's log");
    assert_eq!(accesses("delivered "), 1, "and the first one's delivery");
}

/// An enrollment token is spent once, whichever store keeps it.
async fn a_token_is_spent_once(back: Back) {
    let ts = start_on(back, test_limits()).await;
    let c = client();
    let token = ts.server.issue_token("once", Duration::from_secs(60)).unwrap();
    assert_eq!(Device::new("first").enroll(&c, &ts.base, &token).await.status, 200);
    let s = Device::new("second").enroll(&c, &ts.base, &token).await;
    assert_eq!(s.code(), "enroll.token_used");
}

on_every_backend!(
    every_receipt_is_included_in_and_consistent_with_the_head,
    a_bundle_verifies_before_and_after_the_index_is_rebuilt,
    a_token_is_spent_once,
);
