//! Completeness on bundles the real server made, over loopback HTTP with its own log and
//! statement: the untouched bundle is intact, and each forgery of `completeness.rs`, done
//! to the real bundle with everything else made consistent (records, receipts, log proofs,
//! receipt proofs, segments, the manifest), is tampered with its own code.

#[path = "../../server/tests/common/mod.rs"]
mod server;

mod common;

use common::Bundle;
use custody_format::ids::PublicKey;
use custody_format::log::EntryType;
use custody_format::report::{CheckState, Verdict};
use custody_server::Role;
use custody_verifier::{verify, Options, Report, Source};

fn check(b: &Bundle, trust: PublicKey) -> Report {
    let dir = tempfile::tempdir().unwrap();
    b.write(dir.path());
    let source = custody_verifier::Dir::open(dir.path()).unwrap();
    verify(&source, &Options { trust: Some(trust), ..Default::default() }).unwrap()
}

fn failures(r: &Report) -> Vec<&'static str> {
    let mut v: Vec<_> =
        r.checks.iter().filter(|c| c.state == CheckState::Failure).map(|c| c.code).collect();
    v.sort();
    v.dedup();
    v
}

#[tokio::test]
async fn forgeries_of_a_bundle_the_server_made_are_caught() {
    let ts = server::start(server::test_limits()).await;
    let c = server::client();
    let token = custody_server::add_member(ts.dir.path(), "Ana Ruiz", Role::Member).unwrap();
    let d = server::enrolled(&ts, &c, "observer-7").await;
    // Four segments and the end record, then the device is revoked: the bundle must carry
    // the revocation.
    let chain = server::Chain::new(1, &d, 4, true, b"forged");
    let key = ts.server.public_key();
    for seq in 0..chain.records.len() {
        let s = d.put(&c, &ts.base, &key, chain.id, seq as u64, chain.body(seq)).await;
        assert_eq!(s.status, 200, "seq {seq}: {}", String::from_utf8_lossy(&s.body));
    }
    ts.server.revoke(&d.public, "counsel", "seized at the scene").unwrap();
    let r = c
        .get(format!("{}/v1/recordings/{}/bundle", ts.base, chain.id))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("bundle.tar");
    std::fs::write(&tar, &bytes).unwrap();

    // As the server made it, as a .tar and unpacked.
    let source = custody_verifier::Tar::open(&tar).unwrap();
    let report = verify(&source, &Options { trust: Some(key), ..Default::default() }).unwrap();
    assert_eq!(report.verdict, Verdict::IntactComplete, "{:#?}", report.checks);
    let mut files = std::collections::BTreeMap::new();
    for path in source.files().keys() {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut source.open(path).unwrap(), &mut buf).unwrap();
        files.insert(path.clone(), buf);
    }
    let real = Bundle { files };
    let r = check(&real, key);
    assert_eq!(r.verdict, Verdict::IntactComplete, "{:#?}", r.checks);
    assert!(r.checks.iter().any(|c| c.code == "bundle.statement.ok"));
    assert!(r.checks.iter().any(|c| c.code == "receipt.consistency.ok"));

    let forged = |f: &dyn Fn(&mut Bundle)| {
        let mut b = real.clone();
        f(&mut b);
        check(&b, key)
    };
    let both = vec!["bundle.statement.chain", "bundle.statement.entries"];
    // The last segment and the end record.
    let r = forged(&|b| b.drop_records(&[4, 5]));
    assert_eq!(failures(&r), both, "{:#?}", r.checks);
    // The end record alone: not passed off as cut off.
    let r = forged(&|b| b.drop_records(&[5]));
    assert_eq!(failures(&r), both, "{:#?}", r.checks);
    // A middle run.
    let r = forged(&|b| b.drop_records(&[2, 3]));
    assert!(failures(&r).contains(&"bundle.statement.chain"), "{:#?}", r.checks);
    // The revocation entry.
    let r = forged(&|b| b.drop_entries(|e| e.entry_type == EntryType::DeviceRevoked));
    assert_eq!(failures(&r), vec!["bundle.statement.entries"], "{:#?}", r.checks);
    // The retrieval entry itself.
    let r = forged(&|b| {
        b.drop_entries(|e| e.entry_type == EntryType::Access && e.chain_count.is_some())
    });
    assert_eq!(failures(&r), vec!["bundle.statement.missing"], "{:#?}", r.checks);
    // The marker rewritten to 1: never intact.
    let r = forged(&|b| b.downgrade());
    assert_eq!(failures(&r), Vec::<&str>::new(), "{:#?}", r.checks);
    assert_eq!(r.verdict, Verdict::CouldNotCheck);
}
