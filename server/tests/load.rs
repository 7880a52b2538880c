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

/// CPU time (user + system, in seconds) of this process's threads, split into those whose
/// name starts with `prefix` and the rest.
fn cpu_split(prefix: &str) -> (f64, f64) {
    let tick = 100.0; // USER_HZ on Linux
    let (mut mine, mut rest) = (0.0, 0.0);
    for t in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else { continue };
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let Some(after) = stat.rsplit_once(')').map(|(_, a)| a) else { continue };
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks = f.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
        if comm.starts_with(prefix) {
            mine += ticks / tick;
        } else {
            rest += ticks / tick;
        }
    }
    (mine, rest)
}

/// Writes (once, cached under `target/bench-cache`) a custody-log journal of `n` segment
/// entries from 1,000 other devices, and copies it into `data/log/entries.bin`, with the
/// index marked as covering it: a server opens on a log of `n` entries in seconds.
fn prefill_log(data: &std::path::Path, n: u64) {
    use custody_format::log::{EntryType, LogEntry};
    use custody_format::primitives::sha256;
    if n == 0 {
        return;
    }
    let cache = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-cache");
    std::fs::create_dir_all(&cache).unwrap();
    let cached = cache.join(format!("custody-log-{n}.bin"));
    if !cached.exists() {
        let tmp = cache.join(format!(".custody-log-{n}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        let mut j = custody_durable::journal::Journal::create(&tmp).unwrap();
        let keys: Vec<custody_format::ids::PublicKey> =
            (0..1000).map(|k| custody_format::testkit::public(&format!("other-{k}"))).collect();
        let mut batch = Vec::with_capacity(10_000);
        for i in 0..n {
            let rec = i / 1000;
            let mut e = LogEntry::new(
                EntryType::SegmentReceived,
                custody_format::testkit::T0_US + i as i64,
            );
            e.device_key = Some(keys[(rec % 1000) as usize]);
            let id: [u8; 16] =
                sha256(&[b"recording", &rec.to_be_bytes()])[..16].try_into().unwrap();
            e.recording_id = Some(custody_format::ids::RecordingId(id));
            e.seq = Some(i % 1000);
            e.record_hash = Some(sha256(&[b"record", &i.to_be_bytes()]));
            e.ciphertext_sha256 = Some(sha256(&[b"ciphertext", &i.to_be_bytes()]));
            batch.push(e.encode());
            if batch.len() == 10_000 {
                j.append_all(&batch).unwrap();
                batch.clear();
            }
        }
        j.append_all(&batch).unwrap();
        drop(j);
        std::fs::rename(&tmp, &cached).unwrap();
    }
    std::fs::create_dir_all(data.join("log")).unwrap();
    std::fs::copy(&cached, data.join("log/entries.bin")).unwrap();
    let (stores, _) = custody_server::store::fs::open(data).unwrap();
    custody_server::store::block_on(stores.index.set_log_size(n)).unwrap();
    custody_server::store::block_on(stores.index.flush()).unwrap();
}

/// The 400-device target of issue 19 (and, with other settings, the raid-shaped load):
/// `CUSTODY_TARGET_DEVICES` devices (400) each sealing `CUSTODY_TARGET_RATE` bytes a second
/// (1,000,000) as one segment every `CUSTODY_TARGET_SEGMENT_MS` (2000), for
/// `CUSTODY_TARGET_SECS` (60), starting spread over `CUSTODY_TARGET_START_SECS` (one segment
/// interval), over TLS to a server whose log first holds `CUSTODY_TARGET_PREFILL` entries
/// (10⁶). Each device behaves as the vault does: it signs every record and request, checks
/// each receipt's signature and fields, and fetches and verifies the consistency proof from
/// its previous receipt's tree to the new one. The server runs in the same process on its
/// own runtime (threads `srv-*`), so that its CPU time and the load generator's (`gen-*`)
/// are told apart. Each receipted segment's file is deleted after its receipt is checked, so
/// that a long run needs a few GB of disk, not tens. Prints `TARGET_BENCH_JSON`.
#[test]
#[ignore = "benchmark"]
fn target() {
    use custody_format::merkle;
    use custody_format::receipt::Receipt;
    use custody_format::signed::Signed;

    let devices = env("CUSTODY_TARGET_DEVICES", 400) as usize;
    let rate = env("CUSTODY_TARGET_RATE", 1_000_000);
    let every = Duration::from_millis(env("CUSTODY_TARGET_SEGMENT_MS", 2000));
    let secs = env("CUSTODY_TARGET_SECS", 60);
    let start_over = Duration::from_secs_f64(
        std::env::var("CUSTODY_TARGET_START_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(every.as_secs_f64()),
    );
    let prefill = env("CUSTODY_TARGET_PREFILL", 1_000_000);
    let segment_len = (rate as f64 * every.as_secs_f64()) as usize;
    let segments = (secs as f64 / every.as_secs_f64()).ceil().max(1.0) as u64;

    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    prefill_log(dir.path(), prefill);
    let prefill_s = t.elapsed().as_secs_f64();

    // The disk's own rate for the same writes: segment-sized files written and fsynced one
    // after another, in this data directory, now.
    let one = std::sync::Arc::new(bytes(b"target", segment_len));
    let probe = dir.path().join("probe");
    std::fs::create_dir_all(&probe).unwrap();
    let t = Instant::now();
    let mut n = 0;
    while n < 10 || (t.elapsed() < Duration::from_secs(3) && n < 200) {
        custody_durable::fsutil::write_durable(&probe.join(n.to_string()), &one, false).unwrap();
        n += 1;
    }
    let disk_mb_s = n as f64 * segment_len as f64 / 1e6 / t.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&probe).unwrap();

    let srv = tokio::runtime::Builder::new_multi_thread()
        .thread_name("srv-custody")
        .enable_all()
        .build()
        .unwrap();
    let gen = tokio::runtime::Builder::new_multi_thread()
        .thread_name("gen-devices")
        .enable_all()
        .build()
        .unwrap();
    let mut config = custody_server::Config::new(dir.path());
    config.insecure_http = false;
    let mut limits = test_limits();
    limits.max_body_bytes = (segment_len + (1 << 20)).max(4 << 20);
    limits.body_timeout = Duration::from_secs(30);
    limits.request_timeout = Duration::from_secs(60);
    config.limits = limits;
    config.recipients =
        vec!["age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq".into()];
    let t = Instant::now();
    let (server, _) = custody_server::Server::open(config).unwrap();
    let open_s = t.elapsed().as_secs_f64();
    assert_eq!(server.log_len(), prefill);
    let (addr, _task) = srv
        .block_on(custody_server::serve::spawn(server.clone(), "127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let base = format!("https://{addr}");
    let sha: [u8; 32] = hex::decode(server.tls_sha256()).unwrap().try_into().unwrap();
    let key = server.public_key();
    let recordings = dir.path().join("recordings");

    let ts_like = TestServer {
        server: server.clone(),
        base: base.clone(),
        dir,
        task: srv.spawn(async {}),
        backend: custody_server::store::Backend::Fs,
    };
    let result = gen.block_on(async {
        let c = pinned_client(sha);
        let mut enrolled_devices = Vec::new();
        for i in 0..devices {
            enrolled_devices.push(enrolled(&ts_like, &c, &format!("device-{i}")).await);
        }
        let (cpu_srv0, cpu_gen0) = cpu_split("srv-");
        let start = Instant::now();
        let mut tasks = Vec::new();
        for (i, d) in enrolled_devices.into_iter().enumerate() {
            let (c, base, one, recordings) =
                (c.clone(), base.clone(), one.clone(), recordings.clone());
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(start_over.mul_f64(i as f64 / devices as f64)).await;
                let mut header = custody_format::testkit::header(1, &d.key);
                header.recording_id.0[..8].copy_from_slice(&(i as u64).to_be_bytes());
                let id = header.recording_id;
                let (mut b, h) =
                    custody_format::chain::ChainBuilder::start(header, d.key.clone()).unwrap();
                let ct_sha = custody_format::primitives::sha256(&[&one[..]]);
                let mut lat = Vec::new();
                let mut refused = Vec::new();
                let mut resent = 0u32;
                let mut tree: Option<(u64, [u8; 32])> = None;
                let mut first_receipt = None;
                let t0 = Instant::now();
                for seq in 0..=segments {
                    let due = t0 + every * seq as u32;
                    tokio::time::sleep_until(due.into()).await;
                    // Sealed now: the record is signed as the vault signs it.
                    let (record, body) = if seq == 0 {
                        (h.clone(), h.to_bytes())
                    } else {
                        let mut f = custody_format::testkit::segment(1, seq);
                        f.ciphertext_len = one.len() as u64;
                        f.ciphertext_sha256 = ct_sha;
                        let r = b.segment(f);
                        let mut body = r.to_bytes();
                        body.extend_from_slice(&one);
                        (r, body)
                    };
                    let sealed = Instant::now();
                    let (s, again) = d.put_retrying(&c, &base, &key, id, seq, body).await;
                    resent += again;
                    if s.status != 200 {
                        refused.push(format!("{} {}", s.status, String::from_utf8_lossy(&s.body)));
                        break;
                    }
                    let receipt = Signed::<Receipt>::parse(&s.body).expect("a receipt");
                    assert!(receipt.verify(&key), "the receipt's signature");
                    let r = receipt.value();
                    assert_eq!((r.recording_id, r.seq, r.record_hash), (id, seq, record.hash()));
                    assert_eq!(r.tree_size, r.log_index + 1);
                    // Consistency from the previous receipt's tree, as the vault checks it.
                    if let Some((size, root)) = tree {
                        let path = format!("/v1/log/consistency?from={size}&to={}", r.tree_size);
                        let hs =
                            d.headers(&d.key, &key, "GET", &path, now_us(), fresh_nonce(), b"");
                        let p =
                            d.send(&c, &base, reqwest::Method::GET, &path, hs, Vec::new()).await;
                        assert_eq!(p.status, 200, "{}", String::from_utf8_lossy(&p.body));
                        let p: custody_protocol::body::ConsistencyProof =
                            serde_json::from_slice(&p.body).unwrap();
                        merkle::verify_consistency(
                            size,
                            r.tree_size,
                            &root,
                            &r.tree_root,
                            &p.proof,
                        )
                        .expect("the log is consistent with the previous receipt's tree");
                    }
                    tree = Some((r.tree_size, r.tree_root));
                    if seq > 0 {
                        lat.push(sealed.elapsed());
                        let _ = std::fs::remove_file(
                            recordings.join(id.to_string()).join(format!("{seq:08}.age")),
                        );
                    } else {
                        first_receipt = Some(start.elapsed());
                    }
                }
                (lat, refused, first_receipt, resent)
            }));
        }
        let mut lat = Vec::new();
        let mut refused = Vec::new();
        let mut started = Duration::ZERO;
        let mut resent = 0u64;
        for t in tasks {
            let (l, r, f, again) = t.await.unwrap();
            resent += u64::from(again);
            lat.extend(l);
            refused.extend(r);
            started = started.max(f.unwrap_or(Duration::MAX));
        }
        let wall = start.elapsed().as_secs_f64();
        let (cpu_srv1, cpu_gen1) = cpu_split("srv-");
        (lat, refused, started, wall, cpu_srv1 - cpu_srv0, cpu_gen1 - cpu_gen0, resent)
    });
    let (mut lat, refused, started, wall, cpu_srv, cpu_gen, resent) = result;
    if let Some(first) = refused.first() {
        eprintln!("{} uploads refused under load; the first: {first}", refused.len());
    }
    assert!(!lat.is_empty(), "no upload was receipted: {refused:?}");
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
    let mb = lat.len() as f64 * segment_len as f64 / 1e6;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as f64;
    eprintln!(
        "{devices} devices at {rate} B/s ({segment_len} B every {every:?}) over TLS for {wall:.0} s on a log of {prefill} \
         (opened in {open_s:.1} s): p50 {:?} p99 {:?} max {:?}; ingest {:.1} MB/s; disk {disk_mb_s:.1} MB/s; \
         CPU server {cpu_srv:.1} s, generator {cpu_gen:.1} s of {:.0} core-s",
        p(0.5),
        p(0.99),
        lat[lat.len() - 1],
        mb / wall,
        wall * cores
    );
    println!(
        "TARGET_BENCH_JSON {}",
        serde_json::json!({
            "devices": devices,
            "rate_bytes_s": rate,
            "segment_bytes": segment_len,
            "segment_ms": every.as_millis() as u64,
            "secs": wall,
            "start_over_s": start_over.as_secs_f64(),
            "all_started_s": started.as_secs_f64(),
            "prefill": prefill,
            "prefill_s": prefill_s,
            "open_s": open_s,
            "receipts": lat.len(),
            "refused": refused.len(),
            "resent": resent,
            "p50_ms": p(0.5).as_secs_f64() * 1e3,
            "p99_ms": p(0.99).as_secs_f64() * 1e3,
            "max_ms": lat[lat.len() - 1].as_secs_f64() * 1e3,
            "ingest_mb_s": mb / wall,
            "offered_mb_s": devices as f64 * rate as f64 / 1e6,
            "disk_mb_s": disk_mb_s,
            "cpu_server_s": cpu_srv,
            "cpu_generator_s": cpu_gen,
            "cpu_core_s": wall * cores,
            "final_log": server.log_len(),
        })
    );
    drop(ts_like);
    drop(srv);
}
