//! Two replicas of the server in one process, on the same shared stores (the in-memory
//! stores, whose log behaves as one several writers share, and PostgreSQL): what one replica
//! logged must reach the other. A device enrolled through one is accepted by the other; a
//! revocation through one is honoured by the other within a second; both append to one log;
//! and a record one replica logged without its receipt reaching the index (killed in
//! between) is answered by the other with that very receipt, not logged a second time.
//! (cli/tests/replicas.rs runs three `custody serve` processes and kills them.)

mod common;

use std::time::{Duration, Instant};

use common::*;
use custody_server::index::Stored;
use custody_server::store::{block_on, Backend};

/// A second replica beside `a`: the same identity (copied), the same stores.
async fn beside(a: &TestServer) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    for f in ["server.key", "server.pub", "tls-cert.der", "tls-key.der"] {
        std::fs::copy(a.dir.path().join(f), dir.path().join(f)).unwrap();
    }
    let b = start_full(dir, test_limits(), true, a.backend.clone()).await;
    assert_eq!(a.server.public_key(), b.server.public_key());
    b
}

async fn a_device_enrolled_through_one_replica_uploads_through_the_other(back: Back) {
    let a = start_on(back, test_limits()).await;
    let b = beside(&a).await;
    let c = client();
    let key = a.server.public_key();
    // Enrolled through A after B opened the log: B learns of it from the shared log.
    let d = enrolled(&a, &c, "observer").await;
    let chain = Chain::new(1, &d, 4, true, b"a");
    let mut receipts = Vec::new();
    for seq in 0..chain.records.len() {
        // Alternate: every record goes through the other replica than the one before.
        let ts = if seq % 2 == 0 { &b } else { &a };
        let s = d.put(&c, &ts.base, &key, chain.id, seq as u64, chain.body(seq)).await;
        assert_eq!(s.status, 200, "seq {seq}: {}", String::from_utf8_lossy(&s.body));
        receipts.push(s.body);
    }
    // One log: the receipts' positions are all different and each is its record's entry.
    let entries = a.logged_entries();
    let mut positions = std::collections::BTreeSet::new();
    for (seq, r) in receipts.iter().enumerate() {
        let r =
            custody_format::signed::Signed::<custody_format::receipt::Receipt>::parse(r).unwrap();
        let r = r.value();
        assert!(positions.insert(r.log_index), "position {} used twice", r.log_index);
        let e = &entries[r.log_index as usize];
        assert_eq!((e.recording_id, e.seq), (Some(chain.id), Some(seq as u64)));
    }
    let state = d.state(&c, &b.base, &key, chain.id).await;
    assert_eq!(state["complete"], true, "{state}");

    // Revoked through A: B refuses the device within a second (it looks again when its
    // last look is older than that), bounded here at five.
    a.server.revoke(&d.public, "test", "seized").unwrap();
    let more = Chain::new(2, &d, 1, false, b"b");
    let t = Instant::now();
    loop {
        let s = d.put(&c, &b.base, &key, more.id, 0, more.body(0)).await;
        if s.status == 403 {
            assert_eq!(s.code(), "auth.revoked");
            break;
        }
        assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
        assert!(t.elapsed() < Duration::from_secs(5), "B still takes a device revoked via A");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn a_record_logged_by_a_replica_killed_before_its_index_write_is_answered_from_the_log(
    back: Back,
) {
    let a = start_on(back, test_limits()).await;
    let b = beside(&a).await;
    let c = client();
    let key = a.server.public_key();
    let d = enrolled(&a, &c, "observer").await;
    let chain = Chain::new(3, &d, 2, false, b"a");
    let mut receipts = Vec::new();
    for seq in 0..chain.records.len() {
        let s = d.put(&c, &a.base, &key, chain.id, seq as u64, chain.body(seq)).await;
        assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
        receipts.push(s.body);
    }
    // What replica A leaves when killed between its log append and its index write: the
    // record stored and indexed, its entry in the log, no receipt in the index.
    let Backend::Custom(stores) = &a.backend else { panic!("a shared back-end") };
    let last = chain.records.len() - 1;
    let r = &chain.records[last];
    let unreceipted = Stored {
        kind: r.record().kind(),
        record_hash: hex::encode(r.hash()),
        prev: r.record().prev().map(hex::encode),
        log_index: None,
        receipt: None,
    };
    block_on(stores.index.put(chain.id, last as u64, &unreceipted)).unwrap();
    let logged = a.logged_entries().len();
    // The device did not get its receipt, so it sends the record again, through B.
    let s = d.put(&c, &b.base, &key, chain.id, last as u64, chain.body(last)).await;
    assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
    assert_eq!(s.body, receipts[last], "the receipt of the record's one entry");
    assert_eq!(a.logged_entries().len(), logged, "nothing logged twice");
}

macro_rules! on_shared_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn memory() {
                    super::$name(super::Back::Memory).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(super::Back::Postgres).await
                }
            }
        )*
    };
}

on_shared_backends!(
    a_device_enrolled_through_one_replica_uploads_through_the_other,
    a_record_logged_by_a_replica_killed_before_its_index_write_is_answered_from_the_log,
);

/// One pass of the replicated bench: `replicas` servers in this process on one fresh
/// PostgreSQL database (records and segments in one shared directory), `devices` devices
/// each uploading `segments` records one after another, device `i` to replica `i % n`.
async fn replicated_pass(replicas: usize, devices: usize, segments: u64) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let stores = postgres_stores(dir.path(), &fresh_database()).await;
    let first = start_full(dir, test_limits(), true, Backend::Custom(stores)).await;
    let mut all = vec![first];
    for _ in 1..replicas {
        let b = beside(&all[0]).await;
        all.push(b);
    }
    let key = all[0].server.public_key();
    let c = client();
    let mut devs = Vec::new();
    for i in 0..devices {
        let d = enrolled(&all[i % replicas], &c, &format!("bench-{i}")).await;
        let chain = Chain::new((i % 250) as u8 + 1, &d, segments, true, &i.to_be_bytes());
        devs.push((d, chain, all[i % replicas].base.clone()));
    }
    let cpu0 = cpu_s();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for (d, chain, base) in devs {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for seq in 0..chain.records.len() {
                let s0 = Instant::now();
                let s = d.put(&c, &base, &key, chain.id, seq as u64, chain.body(seq)).await;
                assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
                lat.push(s0.elapsed().as_secs_f64() * 1e3);
            }
            lat
        }));
    }
    let mut lat: Vec<f64> = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_s() - cpu0;
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
    serde_json::json!({
        "replicas": replicas, "devices": devices, "receipts": lat.len(), "secs": secs,
        "receipts_per_s": lat.len() as f64 / secs, "p50_ms": q(0.5), "p99_ms": q(0.99),
        "cpu_s": cpu, "cpu_ms_per_receipt": 1e3 * cpu / lat.len() as f64,
        "log_size": all[0].server.log_len(),
    })
}

/// This process's CPU time (user and system), seconds.
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); here 11 and 12 after the name.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Receipts through three replicas against one, on the same kind of database (a fresh one
/// each): `cargo xtask bench replicas`. `CUSTODY_REPLICAS_DEVICES` (default 24) and
/// `CUSTODY_REPLICAS_SEGMENTS` (default 20) size it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark; run by `cargo xtask bench replicas`"]
async fn replicated_receipts_bench() {
    let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let devices = env("CUSTODY_REPLICAS_DEVICES", 24) as usize;
    let segments = env("CUSTODY_REPLICAS_SEGMENTS", 20);
    let one = replicated_pass(1, devices, segments).await;
    let three = replicated_pass(3, devices, segments).await;
    let json = serde_json::json!({ "one": one, "three": three });
    println!("REPLICAS_BENCH_JSON {json}");
}
