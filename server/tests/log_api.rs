//! The custody log as devices read it: `GET /v1/log/head`, `GET /v1/log/consistency` and
//! `GET /v1/log/inclusion`, over real HTTP on loopback.

mod common;

use common::*;
use custody_format::log::TreeHead;
use custody_format::merkle;
use custody_format::signed::Signed;
use reqwest::Method;

async fn get(ts: &TestServer, c: &reqwest::Client, d: &Device, path: &str) -> Sent {
    let key = ts.server.public_key();
    let h = d.headers(&d.key, &key, "GET", path, now_us(), fresh_nonce(), b"");
    d.send(c, &ts.base, Method::GET, path, h, Vec::new()).await
}

fn json(s: &Sent) -> serde_json::Value {
    serde_json::from_slice(&s.body).unwrap()
}

fn head(s: &Sent) -> TreeHead {
    let bytes = hex::decode(json(s)["tree_head"].as_str().unwrap()).unwrap();
    Signed::<TreeHead>::parse(&bytes).unwrap().value().clone()
}

fn proof(s: &Sent) -> Vec<[u8; 32]> {
    json(s)["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| hex::decode(h.as_str().unwrap()).unwrap().try_into().unwrap())
        .collect()
}

#[tokio::test]
async fn a_device_reads_signed_heads_and_consistency_proofs_that_verify() {
    let ts = start(test_limits()).await;
    let c = client();
    let d = enrolled(&ts, &c, "d").await;
    let key = ts.server.public_key();

    let s = get(&ts, &c, &d, "/v1/log/head").await;
    assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
    let bytes = hex::decode(json(&s)["tree_head"].as_str().unwrap()).unwrap();
    assert!(Signed::<TreeHead>::parse(&bytes).unwrap().verify(&key), "signed by the server key");
    let old = head(&s);
    assert_eq!(old.tree_size, 1, "the enrollment");
    assert_eq!(json(&s)["root_hash"], hex::encode(old.root_hash).as_str());

    // The log grows; the proof from the old head to the new one verifies, and does not
    // verify against a different old root.
    let chain = Chain::new(4, &d, 3, true, b"x");
    for seq in 0..chain.records.len() {
        let s = d.put(&c, &ts.base, &key, chain.id, seq as u64, chain.body(seq)).await;
        assert_eq!(s.status, 200);
    }
    let new = head(&get(&ts, &c, &d, "/v1/log/head").await);
    assert!(new.tree_size > old.tree_size);
    let path = format!("/v1/log/consistency?from={}&to={}", old.tree_size, new.tree_size);
    let s = get(&ts, &c, &d, &path).await;
    assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
    let p = proof(&s);
    merkle::verify_consistency(old.tree_size, new.tree_size, &old.root_hash, &new.root_hash, &p)
        .unwrap();
    assert!(merkle::verify_consistency(old.tree_size, new.tree_size, &[7; 32], &new.root_hash, &p)
        .is_err());
    // Every pair of sizes answers, and the trivial ones with an empty proof.
    for (a, b) in [(0, new.tree_size), (new.tree_size, new.tree_size), (2, 3)] {
        let s = get(&ts, &c, &d, &format!("/v1/log/consistency?from={a}&to={b}")).await;
        assert_eq!(s.status, 200, "{a}..{b}");
        assert_eq!(proof(&s).is_empty(), a == 0 || a == b, "{a}..{b}");
    }
}

#[tokio::test]
async fn log_requests_are_refused_without_a_device_signature_or_with_impossible_sizes() {
    let ts = start(test_limits()).await;
    let c = client();
    let d = enrolled(&ts, &c, "d").await;
    // No signature, or a key that is not enrolled: refused before anything is read.
    let r = c.get(format!("{}/v1/log/head", ts.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let stranger = Device::new("stranger");
    let s = get(&ts, &c, &stranger, "/v1/log/consistency?from=0&to=1").await;
    assert_eq!((s.status, s.code()), (401, "auth.unknown_device".to_string()));
    // Sizes the log cannot answer.
    let size = ts.server.log_len();
    for q in [
        format!("from=1&to={}", size + 1),
        "from=1&to=0".to_string(),
        "from=1".to_string(),
        "from=a&to=1".to_string(),
        "from=0&to=1&x=2".to_string(),
        String::new(),
    ] {
        let s = get(&ts, &c, &d, &format!("/v1/log/consistency?{q}")).await;
        assert_eq!((s.status, s.code()), (400, "log.range".to_string()), "{q}");
    }
}

#[tokio::test]
async fn every_receipt_is_proven_included_in_the_signed_head() {
    use custody_format::receipt::Receipt;
    let ts = start(test_limits()).await;
    let c = client();
    let d = enrolled(&ts, &c, "d").await;
    let key = ts.server.public_key();
    let chain = Chain::new(5, &d, 4, true, b"y");
    let mut indices = Vec::new();
    for seq in 0..chain.records.len() {
        let s = d.put(&c, &ts.base, &key, chain.id, seq as u64, chain.body(seq)).await;
        assert_eq!(s.status, 200);
        indices.push(Signed::<Receipt>::parse(&s.body).unwrap().value().log_index);
    }
    let head = head(&get(&ts, &c, &d, "/v1/log/head").await);
    for &i in &indices {
        let s =
            get(&ts, &c, &d, &format!("/v1/log/inclusion?index={i}&size={}", head.tree_size)).await;
        assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
        let v = json(&s);
        let leaf: [u8; 32] =
            hex::decode(v["leaf_hash"].as_str().unwrap()).unwrap().try_into().unwrap();
        let p = proof(&s);
        merkle::verify_inclusion(&leaf, i, head.tree_size, &p, &head.root_hash).unwrap();
        // The same path does not prove another position, or another leaf.
        assert!(
            merkle::verify_inclusion(&leaf, i ^ 1, head.tree_size, &p, &head.root_hash).is_err()
        );
        assert!(merkle::verify_inclusion(&[9; 32], i, head.tree_size, &p, &head.root_hash).is_err());
    }
    for q in [
        "index=3&size=3",
        &format!("index=0&size={}", head.tree_size + 1),
        "index=1",
        "index=x&size=2",
    ] {
        let s = get(&ts, &c, &d, &format!("/v1/log/inclusion?{q}")).await;
        assert_eq!(s.status, 400, "{q}");
        assert_eq!(json(&s)["error"]["code"], "log.range", "{q}");
    }
}
