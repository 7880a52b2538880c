//! The device's per-segment CPU cost as one recording and the whole log grow (issue 13,
//! item 5, the device side of server/tests/scale.rs): `cargo xtask bench scale` runs this
//! ignored test in release and writes its figures into `docs/benchmarks.md`.
//!
//! A real custody server serves on loopback (TLS) from the in-memory stores, its log first
//! filled with 10⁶ entries from a thousand other devices. One enrolled device records
//! `CUSTODY_SCALE_SEGMENTS` segments (default 5,010) of 4 KiB into its vault while the real
//! [`Uploader`] sends them. For every segment two CPU times are taken:
//!
//! - seal and save: `add_segment` on this thread (encrypt to the recipients, sign the
//!   record, append it to the journal, write the sealed file, queue it in the index);
//! - upload: from the nudge until the record's receipt is stored, the CPU time of every
//!   thread of the device's runtime and of this one: reading the record from the journal,
//!   signing the request, checking the receipt, asking for and verifying the log
//!   consistency proof from the held head, and storing the receipt.
//!
//! Both are CPU time (`CLOCK_THREAD_CPUTIME_ID` of this thread, and each runtime thread's
//! clock from `pthread_getcpuclockid`), not wall time: the vault's fsyncs wait, they do
//! not count. The server runs on a runtime of its own, whose threads are not counted.
//! Windows of 20 segments are summarised by their median and their lower quartile, as on
//! the server's side.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use custody_client::{Options, Uploader};
use custody_format::ids::{PublicKey, RecordingId};
use custody_format::log::{EntryType, LogEntry};
use custody_format::primitives::sha256;
use custody_format::record::EndReason;
use custody_format::testkit;
use custody_server::store::{block_on, Backend, Stores};
use custody_vault::keys::{new_recipient_identity, parse_recipients};
use custody_vault::seal::Sealer;
use custody_vault::store::SegmentInput;
use custody_vault::Vault;
use ed25519_dalek::SigningKey;

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    fn pthread_self() -> u64;
    fn pthread_getcpuclockid(thread: u64, clock: *mut i32) -> i32;
}

/// Linux's `CLOCK_THREAD_CPUTIME_ID`.
const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

/// CPU time used so far on `clock`, ns.
fn cpu_ns(clock: i32) -> u64 {
    let mut t = Timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one `struct timespec` (two i64 on 64-bit Linux) through
    // a pointer to a live, properly aligned value.
    let rc = unsafe { clock_gettime(clock, &mut t) };
    assert_eq!(rc, 0, "clock_gettime({clock})");
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The CPU-time clock of the calling thread, readable from any thread while it lives.
fn this_threads_clock() -> i32 {
    let mut clock = 0i32;
    // SAFETY: pthread_self has no preconditions; pthread_getcpuclockid writes one
    // `clockid_t` (an i32 on Linux) through a pointer to a live value. `pthread_t` is an
    // unsigned long on 64-bit Linux.
    let rc = unsafe { pthread_getcpuclockid(pthread_self(), &mut clock) };
    assert_eq!(rc, 0, "pthread_getcpuclockid");
    clock
}

/// The device's CPU time: this thread's and that of every thread its runtime started.
struct DeviceClock {
    runtime_threads: Arc<Mutex<Vec<i32>>>,
}

impl DeviceClock {
    fn this_thread(&self) -> u64 {
        cpu_ns(CLOCK_THREAD_CPUTIME_ID)
    }

    fn all(&self) -> u64 {
        let threads = self.runtime_threads.lock().unwrap().clone();
        self.this_thread() + threads.into_iter().map(cpu_ns).sum::<u64>()
    }
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(v: &[u64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v[v.len() / 2] as f64
}

/// The lower quartile: what a segment costs when the shared cores leave it alone.
fn quartile(v: &[u64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v[v.len() / 4] as f64
}

/// Fills `stores`' log with `n` segment entries from 1,000 other devices, 1,000 segments to
/// a recording (as server/tests/scale.rs does).
fn fill_log(stores: &Stores, n: u64) {
    let keys: Vec<PublicKey> = (0..1000).map(|k| testkit::public(&format!("other-{k}"))).collect();
    for i in 0..n {
        let rec = i / 1000;
        let mut e = LogEntry::new(EntryType::SegmentReceived, testkit::T0_US + i as i64);
        e.device_key = Some(keys[(rec % 1000) as usize]);
        let id: [u8; 16] = sha256(&[b"recording", &rec.to_be_bytes()])[..16].try_into().unwrap();
        e.recording_id = Some(RecordingId(id));
        e.seq = Some(i % 1000);
        e.record_hash = Some(sha256(&[b"record", &i.to_be_bytes()]));
        e.ciphertext_sha256 = Some(sha256(&[b"ciphertext", &i.to_be_bytes()]));
        block_on(stores.log.append(&e.encode())).unwrap();
    }
    block_on(stores.index.set_log_size(n)).unwrap();
}

fn plaintext(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(&sha256(&[&seed.to_be_bytes(), &i.to_be_bytes()]));
        i += 1;
    }
    out.truncate(len);
    out
}

/// Waits for the receipt of `seq` of `id` to be stored.
fn wait_receipted(
    rt: &tokio::runtime::Runtime,
    events: &mut tokio::sync::mpsc::UnboundedReceiver<custody_client::Receipted>,
    id: RecordingId,
    seq: u64,
) {
    rt.block_on(async {
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(30), events.recv())
                .await
                .unwrap_or_else(|_| panic!("record {seq} receipted in time"))
                .expect("the uploader runs");
            if ev.recording == id && ev.seq == seq {
                return;
            }
        }
    });
}

#[test]
#[ignore = "a benchmark; run by `cargo xtask bench scale`"]
fn per_segment_device_cost_stays_flat_as_the_recording_and_the_log_grow() {
    let prefill = env("CUSTODY_SCALE_LOG", 1_000_000);
    let segments = env("CUSTODY_SCALE_SEGMENTS", 5_010).max(40);
    let window = 20usize;
    let len = 4096;

    // The server, on a runtime of its own.
    let (_identity, recipient) = new_recipient_identity();
    let stores = Stores::memory();
    let t = Instant::now();
    fill_log(&stores, prefill);
    let fill_s = t.elapsed().as_secs_f64();
    let sdir = tempfile::tempdir().unwrap();
    let mut config = custody_server::Config::new(sdir.path());
    config.recipients = vec![recipient.clone()];
    config.backend = Backend::Custom(stores);
    let t = Instant::now();
    let (server, _) = custody_server::Server::open(config).unwrap();
    let open_s = t.elapsed().as_secs_f64();
    assert_eq!(server.log_len(), prefill);
    let server_rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (addr, _task) = server_rt
        .block_on(custody_server::serve::spawn(server.clone(), "127.0.0.1:0".parse().unwrap()))
        .unwrap();

    // The device's runtime: every thread it starts is counted, and none is let go, so
    // that its clock can still be read.
    let runtime_threads = Arc::new(Mutex::new(Vec::new()));
    let clocks = runtime_threads.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_keep_alive(Duration::from_secs(3600))
        .on_thread_start(move || clocks.lock().unwrap().push(this_threads_clock()))
        .enable_all()
        .build()
        .unwrap();
    let clock = DeviceClock { runtime_threads };

    let vdir = tempfile::tempdir().unwrap();
    let (vault, _) = Vault::open(vdir.path()).unwrap();
    let key = SigningKey::from_bytes(&[7; 32]);
    let token = server.issue_token("scale", Duration::from_secs(60)).unwrap();
    rt.block_on(custody_client::enroll(&vault, &key, &format!("https://{addr}"), &token)).unwrap();
    // Woken by each nudge only: no polling between segments.
    let opts = Options { poll: Duration::from_secs(3600), ..Options::default() };
    let mut uploader = Uploader::new(&vault, key.clone(), opts).unwrap();
    let mut events = uploader.events();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let runner = {
        let u = uploader.clone();
        rt.spawn(async move { u.run(stop_rx).await })
    };

    let sealer =
        Sealer::new(parse_recipients(&vault.config().unwrap().recipients).unwrap()).unwrap();
    let mut h = testkit::header(1, &key);
    h.recording_id = RecordingId::random(&mut rand_core::OsRng);
    h.recipients = vec![recipient];
    let id = h.recording_id;
    let mut w = vault.begin(h, key.clone(), sealer).unwrap();
    uploader.nudge();
    wait_receipted(&rt, &mut events, id, 0);

    // (seal and save, upload) CPU ns per segment.
    let mut costs: Vec<(u64, u64)> = Vec::with_capacity(segments as usize);
    for n in 1..=segments {
        let p = plaintext(n, len);
        let input = SegmentInput {
            plaintext: &p,
            plaintext_sha256: sha256(&[&p]),
            fields: testkit::segment(1, n),
        };
        let c0 = clock.this_thread();
        w.add_segment(input).unwrap();
        let c1 = clock.this_thread();
        let u0 = clock.all();
        uploader.nudge();
        wait_receipted(&rt, &mut events, id, n);
        let u1 = clock.all();
        costs.push((c1 - c0, u1 - u0));
    }
    w.end(testkit::T0_US + segments as i64 * 2_000_000, EndReason::Stopped, None).unwrap();
    uploader.nudge();
    wait_receipted(&rt, &mut events, id, segments + 1);
    stop_tx.send(true).unwrap();
    rt.block_on(runner).unwrap().unwrap();
    assert_eq!(uploader.receipts(&id).unwrap().len() as u64, segments + 2);
    assert!(uploader.distrusted().is_none());

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
        "segment_bytes": len,
        "window": window,
        "fill_s": fill_s,
        "open_s": open_s,
        "final_log_size": server.log_len(),
        "runtime_threads": clock.runtime_threads.lock().unwrap().len(),
        "early_first": early.start + 1,
        "early_last": early.end,
        "late_first": late.start + 1,
        "late_last": late.end,
        "early_seal_us": median(&part(early.clone(), |c| c.0)) / 1e3,
        "late_seal_us": median(&part(late.clone(), |c| c.0)) / 1e3,
        "early_upload_us": median(&part(early.clone(), |c| c.1)) / 1e3,
        "late_upload_us": median(&part(late.clone(), |c| c.1)) / 1e3,
        "early_total_us": median(&early_total) / 1e3,
        "late_total_us": median(&late_total) / 1e3,
        "early_q1_us": quartile(&early_total) / 1e3,
        "late_q1_us": quartile(&late_total) / 1e3,
        "ratio_median": ratio_median,
        "ratio": ratio,
    });
    println!("DEVICE_SCALE_BENCH_JSON {json}");
    assert!(ratio <= 1.2, "segment {segments} costs {ratio:.2}x segment 10 on the device: {json}");
}
