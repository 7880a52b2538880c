//! The server's per-segment CPU cost as one recording and the whole log grow (issue 13,
//! item 5): `cargo xtask bench scale` runs this ignored test in release and writes its
//! figures into `docs/benchmarks.md`.
//!
//! The custody log is first filled with 10⁶ entries from a thousand other devices
//! (appended straight to the in-memory log store, then loaded by `Server::open`, which
//! rebuilds the subtree hashes and the catalog from them). Then one device uploads a
//! recording of `CUSTODY_SCALE_SEGMENTS` segments (default 5,010). For every segment the
//! benchmark measures the thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`: user and system
//! time of this thread, not waiting) of what the server does for it: ingest (checks, the
//! link check, storing, the log append, the signed head and the receipt), then the
//! consistency proof from the previous receipt's tree and the inclusion proof of the new
//! entry that a device asks for. The in-memory stores keep fsync out of the figures, so
//! they show what grows with the recording or the log: nothing should. Each window of 20
//! segments is summarised by its median and its lower quartile; the target is judged on
//! the quartiles, which other work on the machine's shared cores disturbs least.

use std::time::{Duration, Instant};

use custody_format::chain::ChainBuilder;
use custody_format::ids::PublicKey;
use custody_format::log::{EntryType, LogEntry};
use custody_format::merkle;
use custody_format::primitives::{self, sha256, DOMAIN_ENROLLMENT_SIGNATURE};
use custody_format::receipt::Receipt;
use custody_format::signed::Signed;
use custody_format::testkit;
use custody_server::store::{block_on, Backend, Stores};
use custody_server::{Config, Server};

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
}

/// Linux's `CLOCK_THREAD_CPUTIME_ID`.
const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

/// CPU time this thread has used, ns.
fn thread_cpu_ns() -> u64 {
    let mut t = Timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one `struct timespec` (two i64 on 64-bit Linux) through
    // a pointer to a live, properly aligned value.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime");
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(v: &[u64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v[v.len() / 2] as f64
}

/// The lower quartile: what a segment costs when the shared cores leave it alone (another
/// thread on the same core slows this one's CPU time too; it never speeds it up).
fn quartile(v: &[u64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v[v.len() / 4] as f64
}

fn mean(v: &[u64]) -> f64 {
    v.iter().sum::<u64>() as f64 / v.len() as f64
}

/// Fills `stores`' log with `n` segment entries from 1,000 other devices, 1,000 segments to
/// a recording.
fn fill_log(stores: &Stores, n: u64) {
    let keys: Vec<PublicKey> = (0..1000).map(|k| testkit::public(&format!("other-{k}"))).collect();
    for i in 0..n {
        let rec = i / 1000;
        let mut e = LogEntry::new(EntryType::SegmentReceived, testkit::T0_US + i as i64);
        e.device_key = Some(keys[(rec % 1000) as usize]);
        let id: [u8; 16] = sha256(&[b"recording", &rec.to_be_bytes()])[..16].try_into().unwrap();
        e.recording_id = Some(custody_format::ids::RecordingId(id));
        e.seq = Some(i % 1000);
        e.record_hash = Some(sha256(&[b"record", &i.to_be_bytes()]));
        e.ciphertext_sha256 = Some(sha256(&[b"ciphertext", &i.to_be_bytes()]));
        block_on(stores.log.append(&e.encode())).unwrap();
    }
    // The index is up to date with that log: there is nothing of it to rebuild.
    block_on(stores.index.set_log_size(n)).unwrap();
}

#[test]
#[ignore = "a benchmark; run by `cargo xtask bench scale`"]
fn per_segment_server_cost_stays_flat_as_the_recording_and_the_log_grow() {
    let prefill = env("CUSTODY_SCALE_LOG", 1_000_000);
    let segments = env("CUSTODY_SCALE_SEGMENTS", 5_010).max(40);
    let window = 20usize;

    let stores = Stores::memory();
    let t = Instant::now();
    fill_log(&stores, prefill);
    let fill_s = t.elapsed().as_secs_f64();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.backend = Backend::Custom(stores);
    let t = Instant::now();
    let (server, opened) = Server::open(config).unwrap();
    let open_s = t.elapsed().as_secs_f64();
    assert!(opened.index_rebuilt.is_none(), "{:?}", opened.index_rebuilt);
    assert_eq!(server.log_len(), prefill);

    let device = testkit::key("scale-device");
    let public = PublicKey::from(device.verifying_key());
    let token = server.issue_token("scale", Duration::from_secs(60)).unwrap();
    let t: [u8; 32] = hex::decode(&token).unwrap().try_into().unwrap();
    let msg = custody_server::enroll::enrollment_message(&t, &public);
    let sig = primitives::sign(&device, DOMAIN_ENROLLMENT_SIGNATURE, &msg);
    let req: custody_server::EnrollRequest = serde_json::from_value(serde_json::json!({
        "token": token, "device_key": public.to_string(), "signature": hex::encode(sig)
    }))
    .unwrap();
    server.enroll(&req).unwrap();

    let header = testkit::header(42, &device);
    let id = header.recording_id;
    let (mut chain, h) = ChainBuilder::start(header, device.clone()).unwrap();
    let receipt = server.ingest(&public, id, 0, &h.to_bytes()).unwrap();
    let r = Signed::<Receipt>::parse(&receipt).unwrap().value().clone();
    let mut prev = (r.tree_size, r.tree_root);

    // (ingest, proofs) CPU ns per segment.
    let mut costs: Vec<(u64, u64)> = Vec::with_capacity(segments as usize);
    for n in 1..=segments {
        // The device's part, outside the measurement: a 4 KiB "sealed segment" and its
        // signed record.
        let ct: Vec<u8> =
            (0..128u32).flat_map(|i| sha256(&[&n.to_be_bytes(), &i.to_be_bytes()])).collect();
        let mut f = testkit::segment(42, n);
        f.ciphertext_len = ct.len() as u64;
        f.ciphertext_sha256 = sha256(&[&ct]);
        let mut body = chain.segment(f).to_bytes();
        body.extend_from_slice(&ct);

        let c0 = thread_cpu_ns();
        let receipt = server.ingest(&public, id, n, &body).unwrap();
        let c1 = thread_cpu_ns();
        let r = Signed::<Receipt>::parse(&receipt).unwrap().value().clone();
        let c2 = thread_cpu_ns();
        let consistency = server.log_consistency_proof(prev.0, r.tree_size).unwrap();
        let (leaf, inclusion) = server.log_inclusion_proof(r.log_index, r.tree_size).unwrap();
        let c3 = thread_cpu_ns();
        costs.push((c1 - c0, c3 - c2));

        // What the device checks, outside the measurement: the proofs hold.
        merkle::verify_consistency(prev.0, r.tree_size, &prev.1, &r.tree_root, &consistency)
            .unwrap();
        merkle::verify_inclusion(&leaf, r.log_index, r.tree_size, &inclusion, &r.tree_root)
            .unwrap();
        prev = (r.tree_size, r.tree_root);
    }

    let part = |range: std::ops::Range<usize>, f: fn(&(u64, u64)) -> u64| -> Vec<u64> {
        costs[range].iter().map(f).collect()
    };
    let early = 0..window; // segments 1..=20, around segment 10
    let late = costs.len() - window..costs.len(); // the last 20, around segment 5,000
    let total = |c: &(u64, u64)| c.0 + c.1;
    let (early_total, late_total) = (part(early.clone(), total), part(late.clone(), total));
    let ratio = quartile(&late_total) / quartile(&early_total);
    let ratio_median = median(&late_total) / median(&early_total);
    let json = serde_json::json!({
        "log_prefill": prefill,
        "segments": segments,
        "window": window,
        "fill_s": fill_s,
        "open_s": open_s,
        "final_log_size": server.log_len(),
        "early_first": early.start + 1,
        "early_last": early.end,
        "late_first": late.start + 1,
        "late_last": late.end,
        "early_ingest_us": median(&part(early.clone(), |c| c.0)) / 1e3,
        "late_ingest_us": median(&part(late.clone(), |c| c.0)) / 1e3,
        "early_proofs_us": median(&part(early.clone(), |c| c.1)) / 1e3,
        "late_proofs_us": median(&part(late.clone(), |c| c.1)) / 1e3,
        "early_total_us": median(&early_total) / 1e3,
        "late_total_us": median(&late_total) / 1e3,
        "early_q1_us": quartile(&early_total) / 1e3,
        "late_q1_us": quartile(&late_total) / 1e3,
        "ratio_median": ratio_median,
        "early_mean_us": mean(&early_total) / 1e3,
        "late_mean_us": mean(&late_total) / 1e3,
        "all_mean_us": mean(&costs.iter().map(total).collect::<Vec<_>>()) / 1e3,
        "ratio": ratio,
    });
    println!("SCALE_BENCH_JSON {json}");
    assert!(ratio <= 1.2, "segment {} costs {ratio:.2}x segment 10: {json}", segments);
}
