//! What a bundle of a long recording costs (issue 15, section 2): a recording of
//! `CUSTODY_BUNDLE_SEGMENTS` segments (default 3,600, two hours of 2 s segments; 4 KiB
//! sealed segments, as the size of the segments only adds their bytes to the archive) is
//! ingested into a server on the filesystem back-end, then fetched over loopback HTTP by a
//! member. It prints the bundle's size, the size of its receipt consistency proofs (one per
//! receipt, from the log's subtree hashes), the time to the response's headers (the
//! statement under the log lock, the access entry's append, and the plan: every record
//! read, every proof made) and the time to the last byte. An ignored test: run it with
//! `cargo test --release -p custody-server --test bundle_scale -- --ignored --nocapture`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use custody_format::bundle::{self, ConsistencyProof};
use custody_format::chain::ChainBuilder;
use custody_format::primitives::{self, sha256, DOMAIN_ENROLLMENT_SIGNATURE};
use custody_format::testkit;
use custody_server::Role;
use custody_verifier::Source;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; prints BUNDLE_SCALE_JSON"]
async fn a_bundle_of_a_long_recording_its_size_and_build_time() {
    let segments: u64 =
        std::env::var("CUSTODY_BUNDLE_SEGMENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(3_600);
    let ts = start(test_limits()).await;
    let server = ts.server.clone();
    let device = testkit::key("bundle-scale");
    let public = custody_format::ids::PublicKey::from(device.verifying_key());
    let token = server.issue_token("scale", Duration::from_secs(60)).unwrap();
    let t: [u8; 32] = hex::decode(&token).unwrap().try_into().unwrap();
    let msg = custody_server::enroll::enrollment_message(&t, &public);
    let sig = primitives::sign(&device, DOMAIN_ENROLLMENT_SIGNATURE, &msg);
    let req: custody_server::EnrollRequest = serde_json::from_value(serde_json::json!({
        "token": token, "device_key": public.to_string(), "signature": hex::encode(sig)
    }))
    .unwrap();
    server.enroll(&req).unwrap();

    let ingest = Instant::now();
    let id = tokio::task::spawn_blocking(move || {
        let header = testkit::header(7, &device);
        let id = header.recording_id;
        let (mut chain, h) = ChainBuilder::start(header, device.clone()).unwrap();
        server.ingest(&public, id, 0, &h.to_bytes()).unwrap();
        for n in 1..=segments {
            let ct: Vec<u8> =
                (0..128u32).flat_map(|i| sha256(&[&n.to_be_bytes(), &i.to_be_bytes()])).collect();
            let mut f = testkit::segment(7, n);
            f.ciphertext_len = ct.len() as u64;
            f.ciphertext_sha256 = sha256(&[&ct]);
            let mut body = chain.segment(f).to_bytes();
            body.extend_from_slice(&ct);
            server.ingest(&public, id, n, &body).unwrap();
        }
        id
    })
    .await
    .unwrap();
    let ingest_s = ingest.elapsed().as_secs_f64();

    let member = custody_server::add_member(ts.dir.path(), "Ana Ruiz", Role::Member).unwrap();
    let c = client();
    let mut runs = Vec::new();
    let mut last = Vec::new();
    for _ in 0..3 {
        let t0 = Instant::now();
        let r = c
            .get(format!("{}/v1/recordings/{id}/bundle", ts.base))
            .bearer_auth(&member)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let headers_s = t0.elapsed().as_secs_f64();
        last = r.bytes().await.unwrap().to_vec();
        runs.push((headers_s, t0.elapsed().as_secs_f64()));
    }
    // The receipt proofs, from the archive (named by their path under the top directory).
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("b.tar");
    std::fs::write(&tar, &last).unwrap();
    let t = custody_verifier::Tar::open(&tar).unwrap();
    let mut proofs = Vec::new();
    std::io::Read::read_to_end(&mut t.open(bundle::RECEIPT_PROOFS).unwrap(), &mut proofs).unwrap();
    let parsed = ConsistencyProof::parse_all(&proofs).unwrap();
    assert_eq!(parsed.len() as u64, segments + 1);
    let verify_t = Instant::now();
    let source = custody_verifier::source::open(&tar).unwrap();
    let report = custody_verifier::verify(source.as_ref(), &Default::default()).unwrap();
    let verify_s = verify_t.elapsed().as_secs_f64();
    let median = |f: fn(&(f64, f64)) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let json = serde_json::json!({
        "segments": segments,
        "records": segments + 1,
        "log_size": ts.server.log_len(),
        "ingest_s": ingest_s,
        "bundle_bytes": last.len(),
        "receipt_proofs_bytes": proofs.len(),
        "receipt_proofs": parsed.len(),
        "headers_s_median": median(|r| r.0),
        "total_s_median": median(|r| r.1),
        "runs": runs,
        "verify_s": verify_s,
        "verdict": format!("{:?}", report.verdict),
    });
    println!("BUNDLE_SCALE_JSON {json}");
}
