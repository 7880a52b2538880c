//! The server's custody log damaged in the middle (issue 16, section 1): the server starts
//! read-only instead of cutting the log back, serves the head and the proofs of the entries
//! before the damage, refuses ingest and enrollment with `log.damaged`, names the damaged
//! entry, and never gives an index twice; restored from a backup, it goes on where the log
//! ended. A torn tail (a crash mid-append) is still cut.

mod common;

use std::time::Duration;

use common::*;
use custody_format::merkle;
use custody_server::Code;

/// The frames of the log's entries journal in `data`.
fn frames(data: &std::path::Path) -> Vec<custody_durable::journal::Frame> {
    custody_durable::journal::frames_from(&data.join("log/entries.bin"), 0)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_damaged_in_the_middle_is_served_read_only_and_no_index_is_reused() {
    let ts = start_on(Back::Fs, test_limits()).await;
    let c = client();
    let d = enrolled(&ts, &c, "obs").await;
    let key = ts.server.public_key();
    let chain = Chain::new(1, &d, 6, false, b"a");
    for seq in 0..5 {
        let s = d.put(&c, &ts.base, &key, chain.id, seq as u64, chain.body(seq)).await;
        assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
    }
    let before = ts.server.log_len();
    assert_eq!(before, 6, "the enrollment and five records");
    let backup = tempfile::tempdir().unwrap();
    std::fs::copy(ts.dir.path().join("log/entries.bin"), backup.path().join("entries.bin"))
        .unwrap();

    // One bit flipped in entry 3's frame.
    let damaged_at = frames(ts.dir.path())[3].clone();
    let ts = ts
        .restart(|dir| {
            let path = dir.join("log/entries.bin");
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[(damaged_at.payload_offset() + 5) as usize] ^= 0x04;
            std::fs::write(&path, &bytes).unwrap();
        })
        .await;
    let damaged_file = std::fs::read(ts.dir.path().join("log/entries.bin")).unwrap();
    let damage = ts.server.log_damage().expect("read-only").clone();
    assert_eq!((damage.index, damage.offset), (3, damaged_at.offset));
    // What the start-up log says (stderr): the entry, where it is, that the rest follows.
    let said = damage.to_string();
    assert!(said.contains(&format!("at entry 3 (byte offset {})", damaged_at.offset)), "{said}");
    assert!(said.contains("2 intact entries follow"), "{said}");
    assert_eq!(ts.server.log_len(), 3, "the entries before the damage");

    // The head and the proofs of the entries before the damage are served.
    let head = ts.server.tree_head();
    assert_eq!(head.value().tree_size, 3);
    let get = |path: &'static str| {
        let h = d.headers(&d.key, &key, "GET", path, now_us(), fresh_nonce(), b"");
        d.send(&c, &ts.base, reqwest::Method::GET, path, h, Vec::new())
    };
    let served = get("/v1/log/head").await;
    assert_eq!(served.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&served.body).unwrap();
    assert_eq!(v["tree_size"], 3);
    let proof = get("/v1/log/consistency?from=1&to=3").await;
    assert_eq!(proof.status, 200);
    let p: custody_protocol::body::ConsistencyProof = serde_json::from_slice(&proof.body).unwrap();
    let first = merkle::leaf_hash(&frames(ts.dir.path())[0].payload);
    assert!(merkle::verify_consistency(1, 3, &first, &head.value().root_hash, &p.proof).is_ok());
    // A size the device may hold but the server cannot prove now is not a `log.range`
    // (which would mean the server lost entries): it says the log is damaged.
    let beyond = get("/v1/log/consistency?from=3&to=6").await;
    assert_eq!((beyond.status, beyond.code()), (503, Code::LogDamaged.as_str().to_string()));

    // Ingest and enrollment are refused; nothing is appended.
    let s = d.put(&c, &ts.base, &key, chain.id, 5, chain.body(5)).await;
    assert_eq!(
        (s.status, s.code()),
        (503, "log.damaged".to_string()),
        "{}",
        String::from_utf8_lossy(&s.body)
    );
    let other = Device::new("other");
    let token = ts.server.issue_token("other", Duration::from_secs(600)).unwrap();
    let s = other.enroll(&c, &ts.base, &token).await;
    assert_eq!(s.code(), "log.damaged");
    assert_eq!(
        std::fs::read(ts.dir.path().join("log/entries.bin")).unwrap(),
        damaged_file,
        "not cut, not appended"
    );

    // Still read-only after another restart; then restored from the backup, it goes on
    // after the last entry it ever had: no index is given twice.
    let ts = ts.restart(|_| {}).await;
    assert!(ts.server.log_damage().is_some());
    let ts = ts
        .restart(|dir| {
            std::fs::copy(backup.path().join("entries.bin"), dir.join("log/entries.bin")).unwrap();
        })
        .await;
    assert!(ts.server.log_damage().is_none());
    assert_eq!(ts.server.log_len(), before);
    let s = d.put(&c, &ts.base, &key, chain.id, 5, chain.body(5)).await;
    assert_eq!(s.status, 200);
    let receipt =
        custody_format::signed::Signed::<custody_format::receipt::Receipt>::parse(&s.body).unwrap();
    assert_eq!(receipt.value().log_index, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_of_the_log_is_still_cut() {
    let ts = start_on(Back::Fs, test_limits()).await;
    let c = client();
    let _d = enrolled(&ts, &c, "obs").await;
    let len = std::fs::metadata(ts.dir.path().join("log/entries.bin")).unwrap().len();
    let ts = ts
        .restart(|dir| {
            use std::io::Write;
            let mut f =
                std::fs::OpenOptions::new().append(true).open(dir.join("log/entries.bin")).unwrap();
            f.write_all(&[0, 0, 1, 0, 9, 9, 9]).unwrap();
        })
        .await;
    assert!(ts.server.log_damage().is_none());
    assert_eq!(std::fs::metadata(ts.dir.path().join("log/entries.bin")).unwrap().len(), len);
    assert!(ts.dir.path().join(format!("log/entries.torn-{len}")).exists());
    assert_eq!(ts.server.log_len(), 1);
}
