//! The PostgreSQL stores as several replicas use them: one custody log appended to from two
//! connections at once, a token spent through two servers at once, a nonce replayed after a
//! restart, and migrations applied once. A real PostgreSQL (the test binary's cluster,
//! `custody_testkit::pg`), a fresh database per test.

mod common;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::*;
use custody_format::merkle::{self, leaf_hash, Tree};
use custody_server::store::pg::PgStores;
use custody_server::store::{block_on, Backend, LogStore, StoreError, TokenRecord, TokenStore};

fn connect(url: &str) -> PgStores {
    block_on(PgStores::connect(url)).unwrap()
}

/// Two writers (two pools, as two replicas have) append batches at once, each knowing only
/// what it appended and what `append_batch` told it: the stored log is one sequence with
/// every entry once, each writer's view is a prefix of it, and every inclusion and
/// consistency proof between the writers' trees and the final one verifies.
#[test]
fn batches_from_two_replicas_form_one_log_with_no_gap_and_no_position_used_twice() {
    let url = fresh_database();
    const WRITERS: usize = 2;
    const BATCHES: usize = 40;
    let start = Arc::new(Barrier::new(WRITERS));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (url, start) = (url.clone(), start.clone());
            std::thread::spawn(move || {
                let log = connect(&url).log();
                let mut view: Vec<Vec<u8>> = Vec::new();
                let mut mine: Vec<u64> = Vec::new();
                start.wait();
                for b in 0..BATCHES {
                    let batch: Vec<Vec<u8>> =
                        (0..1 + b % 3).map(|i| format!("w{w} b{b} e{i}").into_bytes()).collect();
                    let others = block_on(log.append_batch(view.len() as u64, &batch)).unwrap();
                    view.extend(others);
                    mine.extend(view.len() as u64..(view.len() + batch.len()) as u64);
                    view.extend(batch);
                }
                (view, mine)
            })
        })
        .collect();
    let views: Vec<(Vec<Vec<u8>>, Vec<u64>)> =
        writers.into_iter().map(|t| t.join().unwrap()).collect();

    let reader = connect(&url).log();
    let all = block_on(reader.load()).unwrap();
    let per_writer: usize = (0..BATCHES).map(|b| 1 + b % 3).sum();
    assert_eq!(all.len(), WRITERS * per_writer, "every entry is stored");
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), all.len(), "no entry is stored twice");

    let tree = Tree::from_leaves(all.iter().map(|e| leaf_hash(e)));
    let size = tree.len();
    for (view, mine) in &views {
        assert_eq!(&all[..view.len()], &view[..], "a writer's view is a prefix of the log");
        let after = block_on(reader.entries_after(view.len() as u64)).unwrap();
        assert_eq!(&all[view.len()..], &after[..]);
        // Its tree is consistent with the final one.
        let old = Tree::from_leaves(view.iter().map(|e| leaf_hash(e)));
        let proof = tree.consistency_proof(old.len(), size).unwrap();
        merkle::verify_consistency(old.len(), size, &old.root(), &tree.root(), &proof).unwrap();
        // And each of its entries is where it was told it is.
        for &i in mine {
            let proof = tree.inclusion_proof(i, size).unwrap();
            let leaf = leaf_hash(&view[i as usize]);
            merkle::verify_inclusion(&leaf, i, size, &proof, &tree.root()).unwrap();
        }
    }
    // Entries read back by position are the ones at those positions.
    let asked = [size - 1, 0, size / 2];
    let got = block_on(reader.entries(&asked)).unwrap();
    for (i, e) in asked.iter().zip(&got) {
        assert_eq!(&all[*i as usize], e);
    }
    assert!(block_on(reader.entries(&[size])).is_err(), "no entry past the end");
}

/// A writer that claims to know more entries than are stored is refused, and nothing is
/// appended.
#[test]
fn a_batch_for_a_longer_log_than_stored_is_refused() {
    let log = connect(&fresh_database()).log();
    block_on(log.append(b"one")).unwrap();
    let e = block_on(log.append_batch(5, &[b"two".to_vec()])).unwrap_err();
    assert!(matches!(e, StoreError::Damaged(_)), "{e}");
    assert_eq!(block_on(log.load()).unwrap(), vec![b"one".to_vec()]);
}

/// Two replicas spending the same tokens at once: each token is spent exactly once, and the
/// loser is told it was spent.
#[test]
fn a_token_spent_by_two_replicas_at_once_is_spent_once() {
    let url = fresh_database();
    const TOKENS: u8 = 16;
    let issuer = connect(&url).tokens();
    let record = TokenRecord { label: "t".into(), issued_at_us: 0, expires_at_us: i64::MAX };
    for t in 0..TOKENS {
        block_on(issuer.issue([t; 32], &record)).unwrap();
    }
    let start = Arc::new(Barrier::new(2));
    let spenders: Vec<_> = (0..2u8)
        .map(|r| {
            let (url, start) = (url.clone(), start.clone());
            std::thread::spawn(move || {
                let tokens = connect(&url).tokens();
                let device = custody_format::testkit::public(&format!("replica {r}"));
                start.wait();
                (0..TOKENS)
                    .map(|t| match block_on(tokens.spend([t; 32], &device)) {
                        Ok(()) => true,
                        Err(StoreError::Spent) => false,
                        Err(e) => panic!("{e}"),
                    })
                    .collect::<Vec<bool>>()
            })
        })
        .collect();
    let won: Vec<Vec<bool>> = spenders.into_iter().map(|t| t.join().unwrap()).collect();
    for (t, (a, b)) in won[0].iter().zip(&won[1]).enumerate() {
        assert!(a ^ b, "token {t}: exactly one replica spends it");
        assert!(block_on(issuer.is_spent([t as u8; 32])).unwrap());
    }
    assert_eq!(won[0].len(), usize::from(TOKENS));
    let e = block_on(issuer.spend([99; 32], &custody_format::testkit::public("x"))).unwrap_err();
    assert!(matches!(e, StoreError::Damaged(_)), "a token never issued: {e}");
}

/// Two servers with one identity on one database; returns them (the second's data
/// directory holds a copy of the first's identity, as every replica's does).
async fn two_servers(url: &str) -> (TestServer, TestServer) {
    let dir_a = tempfile::tempdir().unwrap();
    let a = start_full_on(dir_a, url).await;
    let dir_b = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(a.dir.path()).unwrap().flatten() {
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), dir_b.path().join(e.file_name())).unwrap();
        }
    }
    let b = start_full_on(dir_b, url).await;
    assert_eq!(a.server.public_key(), b.server.public_key());
    (a, b)
}

async fn start_full_on(dir: tempfile::TempDir, url: &str) -> TestServer {
    let stores = postgres_stores(dir.path(), url).await;
    start_full(dir, test_limits(), true, Backend::Custom(stores)).await
}

/// One token, two devices enrolling with it at once through two servers on one database:
/// one is enrolled, the other refused as `enroll.token_used`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_enrolled_through_two_servers_at_once_enrolls_one_device() {
    let url = fresh_database();
    let (a, b) = two_servers(&url).await;
    let c = client();
    for round in 0..4 {
        let token = a.server.issue_token("raced", Duration::from_secs(60)).unwrap();
        let (da, db) = (Device::new(&format!("a{round}")), Device::new(&format!("b{round}")));
        let (ra, rb) = tokio::join!(da.enroll(&c, &a.base, &token), db.enroll(&c, &b.base, &token));
        let mut statuses = [ra.status, rb.status];
        statuses.sort();
        assert_eq!(statuses[0], 200, "round {round}: one enrolls");
        let loser = if ra.status == 200 { rb } else { ra };
        assert_eq!(loser.code(), "enroll.token_used", "round {round}");
    }
}

/// A signed request captured and sent again after the server restarted (on a new
/// connection to the database) is refused as a replay: the nonce was kept in the database.
/// (With the in-memory nonce cache the second copy would reach ingest again.)
#[tokio::test]
async fn a_request_replayed_after_a_restart_is_refused() {
    let url = fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let mut ts = start_full_on(dir, &url).await;
    let c = client();
    let d = enrolled(&ts, &c, "replayer").await;
    let key = ts.server.public_key();
    let chain = Chain::new(1, &d, 1, false, b"replay");
    let body = chain.body(0);
    let req_path = format!("/v1/recordings/{}/records/0", chain.id);
    let h = d.headers(&d.key, &key, "PUT", &req_path, now_us(), fresh_nonce(), &body);
    let first =
        d.send(&c, &ts.base, reqwest::Method::PUT, &req_path, h.clone(), body.clone()).await;
    assert_eq!(first.status, 200, "{}", String::from_utf8_lossy(&first.body));

    ts.task.abort();
    let dir = std::mem::replace(&mut ts.dir, tempfile::tempdir().unwrap());
    drop(ts);
    let stores = postgres_stores(&path, &url).await;
    let ts = start_full(dir, test_limits(), true, Backend::Custom(stores)).await;
    let again = d.send(&c, &ts.base, reqwest::Method::PUT, &req_path, h, body.clone()).await;
    assert_eq!(again.status, 401, "{}", String::from_utf8_lossy(&again.body));
    assert_eq!(again.code(), "auth.replayed");
    // A fresh request for the same record is still answered (it is the same record).
    let fresh = d.put(&c, &ts.base, &key, chain.id, 0, body).await;
    assert_eq!(fresh.status, 200, "{}", String::from_utf8_lossy(&fresh.body));
}

/// Servers starting together on a new database apply each migration once; connecting
/// again applies nothing; a database migrated by a newer version is refused.
#[test]
fn migrations_are_applied_once_and_a_newer_schema_is_refused() {
    let url = fresh_database();
    let start = Arc::new(Barrier::new(3));
    let connects: Vec<_> = (0..3)
        .map(|_| {
            let (url, start) = (url.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                block_on(PgStores::connect(&url)).map(drop)
            })
        })
        .collect();
    for t in connects {
        t.join().unwrap().unwrap();
    }
    let db = connect(&url);
    assert_eq!(block_on(db.migrations()).unwrap(), vec![1]);
    // What was stored survives another connect (nothing is re-created).
    block_on(db.log().append(b"kept")).unwrap();
    let again = connect(&url);
    assert_eq!(block_on(again.log().load()).unwrap(), vec![b"kept".to_vec()]);

    let name = url.rsplit('/').next().unwrap();
    let cluster = custody_testkit::pg::cluster().unwrap();
    cluster
        .psql(name, "INSERT INTO schema_migrations (version, name) VALUES (999, 'from the future')")
        .unwrap();
    let e = block_on(PgStores::connect(&url)).unwrap_err();
    assert!(e.to_string().contains("newer"), "{e}");
}

/// Uploads `chain` whole through `ts`; returns its receipts.
async fn upload(
    ts: &TestServer,
    c: &reqwest::Client,
    d: &Device,
    chain: &Chain,
) -> Vec<custody_format::receipt::Receipt> {
    let key = ts.server.public_key();
    let mut out = Vec::new();
    for seq in 0..chain.records.len() {
        let s = d.put(c, &ts.base, &key, chain.id, seq as u64, chain.body(seq)).await;
        assert_eq!(s.status, 200, "seq {seq}: {}", String::from_utf8_lossy(&s.body));
        let r = custody_format::signed::Signed::<custody_format::receipt::Receipt>::parse(&s.body)
            .unwrap();
        assert!(r.verify(&key));
        out.push(r.value().clone());
    }
    out
}

/// Two servers on one database, devices uploading through both at once (one device
/// through both): every receipt, whichever server signed it, names a tree that is a prefix
/// of the one log in the database, and no entry is stored twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_through_two_servers_at_once_are_receipted_in_one_log() {
    let url = fresh_database();
    let (a, b) = two_servers(&url).await;
    let c = client();
    let da = enrolled(&a, &c, "through a").await;
    let db = enrolled(&b, &c, "through b").await;
    let (chain_a, chain_b) = (Chain::new(1, &da, 6, true, b"a"), Chain::new(2, &db, 6, true, b"b"));
    let (ra, rb) = tokio::join!(upload(&a, &c, &da, &chain_a), upload(&b, &c, &db, &chain_b));
    // The device enrolled through a, uploading through b.
    let rc = upload(&b, &c, &da, &Chain::new(3, &da, 3, false, b"c")).await;

    let entries = block_on(connect(&url).log().load()).unwrap();
    let mut unique = entries.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), entries.len(), "no entry is stored twice");
    let tree = Tree::from_leaves(entries.iter().map(|e| leaf_hash(e)));
    let size = tree.len();
    let receipts: Vec<_> = ra.iter().chain(&rb).chain(&rc).collect();
    assert!(size >= 2 + receipts.len() as u64, "two enrollments and every record");
    let mut indices: Vec<u64> = receipts.iter().map(|r| r.log_index).collect();
    indices.sort();
    indices.dedup();
    assert_eq!(indices.len(), receipts.len(), "no log index is receipted twice");
    for r in receipts {
        assert!(r.log_index < r.tree_size && r.tree_size <= size);
        assert_eq!(tree.root_at(r.tree_size).unwrap(), r.tree_root, "a prefix of the one log");
        let proof = tree.consistency_proof(r.tree_size, size).unwrap();
        merkle::verify_consistency(r.tree_size, size, &r.tree_root, &tree.root(), &proof).unwrap();
    }
}
