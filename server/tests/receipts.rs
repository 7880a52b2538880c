//! The device routes added for lost state, over real HTTP on loopback: a device fetches
//! its receipts again (`GET /v1/recordings/{id}/receipts`) and the signed case recipients
//! (`GET /v1/recipients`, and in the enrollment answer).

mod common;

use common::*;
use custody_format::receipt::Receipt;
use custody_format::signed::Signed;
use custody_protocol::body::{EnrollAnswer, ReceiptsAnswer, RecipientsAnswer};
use custody_protocol::Code;
use reqwest::Method;

async fn get_receipts(ts: &TestServer, c: &reqwest::Client, d: &Device, path: &str) -> Sent {
    let key = ts.server.public_key();
    let h = d.headers(&d.key, &key, "GET", path, now_us(), fresh_nonce(), b"");
    d.send(c, &ts.base, Method::GET, path, h, Vec::new()).await
}

#[tokio::test]
async fn the_owning_device_gets_the_very_receipts_ingest_answered() {
    let ts = start(test_limits()).await;
    let c = client();
    let d = enrolled(&ts, &c, "owner").await;
    let key = ts.server.public_key();
    let chain = Chain::new(3, &d, 2, true, b"r");
    let mut answered = Vec::new();
    for seq in 0..chain.records.len() {
        let s = d.put(&c, &ts.base, &key, chain.id, seq as u64, chain.body(seq)).await;
        assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
        answered.push(s.body);
    }
    let path = format!("/v1/recordings/{}/receipts", chain.id);
    let s = get_receipts(&ts, &c, &d, &path).await;
    assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
    let a: ReceiptsAnswer = serde_json::from_slice(&s.body).unwrap();
    assert_eq!(a.recording_id, chain.id.to_string());
    let seqs: Vec<u64> = a.receipts.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![0, 1, 2, 3]);
    for (r, bytes) in a.receipts.iter().zip(&answered) {
        assert_eq!(&hex::decode(&r.receipt).unwrap(), bytes, "receipt {}", r.seq);
        let signed: Signed<Receipt> = r.receipt().unwrap();
        assert!(signed.verify(&key));
        assert_eq!(signed.value().seq, r.seq);
    }
}

#[tokio::test]
async fn another_device_gets_not_found_and_a_stranger_is_refused() {
    let ts = start(test_limits()).await;
    let c = client();
    let owner = enrolled(&ts, &c, "owner").await;
    let other = enrolled(&ts, &c, "other").await;
    let key = ts.server.public_key();
    let chain = Chain::new(4, &owner, 1, false, b"r");
    assert_eq!(owner.put(&c, &ts.base, &key, chain.id, 0, chain.body(0)).await.status, 200);
    let path = format!("/v1/recordings/{}/receipts", chain.id);

    let s = get_receipts(&ts, &c, &other, &path).await;
    assert_eq!((s.status, s.code()), (404, Code::NotFound.as_str().to_string()));
    // The same answer as for a recording nobody has: the other device learns nothing.
    let none = format!("/v1/recordings/{}/receipts", "ab".repeat(16));
    let s = get_receipts(&ts, &c, &owner, &none).await;
    assert_eq!((s.status, s.code()), (404, "not_found".to_string()));

    let r = c.get(format!("{}{path}", ts.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let body = r.bytes().await.unwrap();
    let refusal = custody_protocol::Refusal::from_body(&body).unwrap();
    assert_eq!(refusal.code(), Some(Code::AuthMissing));

    let stranger = Device::new("stranger");
    let s = get_receipts(&ts, &c, &stranger, &path).await;
    assert_eq!((s.status, s.code()), (401, "auth.unknown_device".to_string()));
}

#[tokio::test]
async fn case_recipients_are_signed_by_the_server_in_enrollment_and_on_their_route() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("recipients.txt"), "age1firstcase\nage1second\n").unwrap();
    let ts = start_in(dir, test_limits()).await;
    let c = client();
    let d = Device::new("d");
    let token = custody_server::issue_token(ts.dir.path(), "d", std::time::Duration::from_secs(60))
        .unwrap();
    let s = d.enroll(&c, &ts.base, &token).await;
    assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
    let answer: EnrollAnswer = serde_json::from_slice(&s.body).unwrap();
    let key = ts.server.public_key();
    let signed = answer.case_recipients(&key).unwrap();
    // The configured recipient first, then those of recipients.txt.
    assert!(signed.value().recipients.ends_with(&["age1firstcase".into(), "age1second".into()]));
    assert_eq!(signed.value().recipients, answer.recipients);
    // Checked against any other key, it is refused.
    assert!(answer.case_recipients(&custody_format::testkit::public("other")).is_err());

    let r = c.get(format!("{}/v1/recipients", ts.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let fetched: RecipientsAnswer = r.json().await.unwrap();
    assert_eq!(fetched.case_recipients, answer.case_recipients);
    assert_eq!(fetched.checked(&key).unwrap().value().recipients, answer.recipients);
}
