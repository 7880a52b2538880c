//! Load benchmark (not a timed test; run with `--ignored --nocapture`): `CUSTODY_LOAD_DEVICES`
//! devices (default 50) each upload `CUSTODY_LOAD_SEGMENTS` 2 MB segments (default 5), one
//! every `CUSTODY_LOAD_INTERVAL_MS` (default 2000), over loopback; prints the receipt
//! latency percentiles and the server's ingest rate beside the disk's own fsync'd write rate.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark"]
async fn load() {
    let devices = env("CUSTODY_LOAD_DEVICES", 50) as usize;
    let segments = env("CUSTODY_LOAD_SEGMENTS", 5);
    let interval = Duration::from_millis(env("CUSTODY_LOAD_INTERVAL_MS", 2000));
    let mut limits = test_limits();
    limits.max_body_bytes = 4 << 20;
    let ts = start(limits).await;
    let c = client();
    let key = ts.server.public_key();
    let mut work = Vec::new();
    for i in 0..devices {
        let d = enrolled(&ts, &c, &format!("device-{i}")).await;
        // 2 MB segments, under a recording id of this device's own.
        let chain = {
            let mut header = custody_format::testkit::header(1, &d.key);
            header.recording_id.0[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let id = header.recording_id;
            let (mut b, h) =
                custody_format::chain::ChainBuilder::start(header, d.key.clone()).unwrap();
            let mut records = vec![h];
            let mut cts = vec![Vec::new()];
            for n in 1..=segments {
                let ct =
                    bytes(&[&(i as u64).to_be_bytes()[..], &n.to_be_bytes()].concat(), 2_000_000);
                let mut f = custody_format::testkit::segment(1, n);
                f.ciphertext_len = ct.len() as u64;
                f.ciphertext_sha256 = custody_format::primitives::sha256(&[&ct]);
                records.push(b.segment(f));
                cts.push(ct);
            }
            Chain { id, records, ciphertexts: cts }
        };
        work.push((d, chain));
    }
    // Disk baseline: the same bytes written and fsynced, one file per segment.
    let probe = ts.dir.path().join("probe");
    std::fs::create_dir_all(&probe).unwrap();
    let t = Instant::now();
    for n in 0..20 {
        custody_durable::fsutil::write_durable(
            &probe.join(n.to_string()),
            &work[0].1.ciphertexts[1],
            false,
        )
        .unwrap();
    }
    let disk_mbs = 20.0 * 2.0 / t.elapsed().as_secs_f64();

    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, (d, chain)) in work.into_iter().enumerate() {
        let (c, base) = (c.clone(), ts.base.clone());
        tasks.push(tokio::spawn(async move {
            // Spread the devices over the interval, as real ones would be.
            tokio::time::sleep(interval.mul_f64(i as f64 / devices as f64)).await;
            let mut lat = Vec::new();
            // An overloaded server refuses (a body that could not arrive in time is a 408):
            // counted and reported, not a crash of the benchmark.
            let mut refused = Vec::new();
            let t0 = Instant::now();
            for seq in 0..chain.records.len() {
                let due = t0 + interval * seq as u32;
                tokio::time::sleep_until(due.into()).await;
                let sent = Instant::now();
                let s = d.put(&c, &base, &key, chain.id, seq as u64, chain.body(seq)).await;
                if s.status != 200 {
                    refused.push(format!("{} {}", s.status, String::from_utf8_lossy(&s.body)));
                    // The rest of this chain would not link to a refused record.
                    break;
                }
                if seq > 0 {
                    lat.push(sent.elapsed());
                }
            }
            (lat, refused)
        }));
    }
    let mut lat = Vec::new();
    let mut refused = Vec::new();
    for t in tasks {
        let (l, r) = t.await.unwrap();
        lat.extend(l);
        refused.extend(r);
    }
    if let Some(first) = refused.first() {
        eprintln!("{} uploads refused under load; the first: {first}", refused.len());
    }
    assert!(!lat.is_empty(), "no upload was receipted: {refused:?}");
    let wall = start.elapsed().as_secs_f64();
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
    let mb = lat.len() as f64 * 2.0;
    eprintln!(
        "{devices} devices × {segments} segments of 2 MB every {interval:?}: receipt latency p50 {:?} p99 {:?} max {:?}; \
         ingest {:.1} MB/s over {wall:.1} s; disk fsync'd write {disk_mbs:.1} MB/s",
        p(0.5),
        p(0.99),
        lat[lat.len() - 1],
        mb / wall
    );
    // One machine-readable line for `cargo xtask bench`.
    println!(
        "LOAD_BENCH_JSON {{\"devices\":{devices},\"segments\":{segments},\"refused\":{},\"interval_ms\":{},\"p50_ms\":{:.1},\"p99_ms\":{:.1},\"max_ms\":{:.1},\"ingest_mb_s\":{:.1},\"disk_mb_s\":{disk_mbs:.1}}}",
        refused.len(),
        interval.as_millis(),
        p(0.5).as_secs_f64() * 1e3,
        p(0.99).as_secs_f64() * 1e3,
        lat[lat.len() - 1].as_secs_f64() * 1e3,
        mb / wall
    );
}
