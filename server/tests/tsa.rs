//! RFC 3161 time-stamping of the custody log, over real loopback HTTP with the test TSA
//! (`custody-testkit`: `openssl ts -reply` behind an HTTP/1.1 front): tokens are logged as
//! type-10 entries while segments arrive; a TSA that is down for a while holds up neither
//! ingest nor receipts, and tokens catch up after; two TSAs each stamp the log; a bundle
//! carries exactly the earliest covering token of each receipted record (custody-bundle 3),
//! verifies, and is tampered once a token entry is dropped from it.

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use custody_format::bundle::{self, ConsistencyProof, LogProof, Manifest, ManifestEntry};
use custody_format::log::{EntryType, LogEntry, TreeHead};
use custody_format::primitives::sha256;
use custody_format::report::{CheckState, Verdict};
use custody_format::signed::Signed;
use custody_protocol::body::{ServerStatus, TsaStatus};
use custody_server::store::Backend;
use custody_server::{Config, Role, Server};
use custody_testkit::{Mode, Pki, TsaServer, Variant};

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| Pki::new().unwrap())
}

/// A server on loopback time-stamping with `tsas` every 200 ms.
async fn start_stamped(tsas: &[&TsaServer]) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.insecure_http = true;
    config.limits = test_limits();
    config.recipients =
        vec!["age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq".into()];
    config.tsa.urls = tsas.iter().map(|t| t.url()).collect();
    config.tsa.interval = Duration::from_millis(200);
    config.tsa.timeout = Duration::from_secs(2);
    config.tsa.roots_pem = Some(pki().root_pem().unwrap());
    let (server, _) = Server::open(config).unwrap();
    let (addr, task) =
        custody_server::serve::spawn(server.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    TestServer { server, base: format!("http://{addr}"), dir, task, backend: Backend::Fs }
}

/// Uploads positions `seqs` of `chain`; every one must be receipted.
async fn upload(ts: &TestServer, c: &reqwest::Client, d: &Device, chain: &Chain, seqs: &[usize]) {
    let key = ts.server.public_key();
    for &seq in seqs {
        let s = d.put(c, &ts.base, &key, chain.id, seq as u64, chain.body(seq)).await;
        assert_eq!(s.status, 200, "seq {seq}: {}", String::from_utf8_lossy(&s.body));
    }
}

/// A logged token: its log index, the TSA URL it names, the head it stamped.
struct Logged {
    index: u64,
    label: String,
    head: TreeHead,
    head_bytes: Vec<u8>,
    token: Vec<u8>,
}

fn tokens(ts: &TestServer) -> Vec<Logged> {
    ts.logged_entries()
        .into_iter()
        .enumerate()
        .filter(|(_, e)| e.entry_type == EntryType::TimeStampToken)
        .map(|(i, e)| {
            let head_bytes = e.tree_head.clone().unwrap();
            Logged {
                index: i as u64,
                label: e.label.clone().unwrap(),
                head: Signed::<TreeHead>::parse(&head_bytes).unwrap().value().clone(),
                head_bytes,
                token: e.tsa_token.clone().unwrap(),
            }
        })
        .collect()
}

/// The log index of the last entry that is not a token.
fn last_untimed(ts: &TestServer) -> u64 {
    let entries = ts.logged_entries();
    let i = entries.iter().rposition(|e| e.entry_type != EntryType::TimeStampToken).unwrap();
    i as u64
}

/// Waits (at most 20 s) until `url`'s tokens cover log index `index`.
async fn covered(ts: &TestServer, url: &str, index: u64) -> Logged {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(t) = tokens(ts).into_iter().find(|t| t.label == url && t.head.tree_size > index)
        {
            return t;
        }
        assert!(Instant::now() < until, "no token from {url} covers log entry {index}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn fetch(ts: &TestServer, c: &reqwest::Client, token: &str, chain: &Chain) -> Vec<u8> {
    let r = c
        .get(format!("{}/v1/recordings/{}/bundle", ts.base, chain.id))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap().to_vec()
}

/// The tar's files under its top directory (ustar, as the server writes it).
fn untar(mut tar: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    while tar.len() >= 512 && tar[..512].iter().any(|&b| b != 0) {
        let (h, rest) = tar.split_at(512);
        let name = std::str::from_utf8(&h[..100]).unwrap().trim_end_matches('\0').to_string();
        let size = u64::from_str_radix(std::str::from_utf8(&h[124..135]).unwrap(), 8).unwrap();
        let (_, name) = name.split_once('/').unwrap();
        if h[156] == b'0' {
            out.push((name.to_string(), rest[..size as usize].to_vec()));
        }
        tar = &rest[size.div_ceil(512) as usize * 512..];
    }
    out
}

fn verify_dir(
    dir: &std::path::Path,
    key: custody_format::ids::PublicKey,
) -> custody_verifier::Report {
    let source = custody_verifier::source::open(dir).unwrap();
    let options = custody_verifier::Options { trust: Some(key), ..Default::default() };
    custody_verifier::verify(source.as_ref(), &options).unwrap()
}

fn write_dir(files: &[(String, Vec<u8>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (p, b) in files {
        let path = dir.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b).unwrap();
    }
    dir
}

/// The manifest made again over `files` (what anyone can do without a key).
fn remanifest(files: &mut Vec<(String, Vec<u8>)>) {
    files.retain(|(p, _)| p != bundle::MANIFEST);
    let listed = files
        .iter()
        .map(|(p, b)| ManifestEntry { path: p.clone(), sha256: sha256(&[b]) })
        .collect();
    files.push((bundle::MANIFEST.into(), Manifest::new(listed).to_text().into_bytes()));
}

fn file<'a>(files: &'a [(String, Vec<u8>)], path: &str) -> &'a [u8] {
    &files.iter().find(|(p, _)| p == path).unwrap_or_else(|| panic!("no {path}")).1
}

#[tokio::test]
async fn tokens_are_logged_while_segments_arrive_and_a_bundle_carries_the_covering_ones() {
    let tsa = TsaServer::start(pki().tsa(Variant::Good)).unwrap();
    let ts = start_stamped(&[&tsa]).await;
    let url = tsa.url();
    let c = client();
    let d = enrolled(&ts, &c, "observer").await;
    let chain = Chain::new(1, &d, 6, true, b"t");

    // Segments arrive; a token follows over a head that includes them, and it is a token
    // over exactly that head's bytes (imprint) from this TSA.
    upload(&ts, &c, &d, &chain, &[0, 1, 2]).await;
    let first = covered(&ts, &url, last_untimed(&ts)).await;
    assert!(first.head.tree_size <= first.index, "the head was signed before the token");
    assert!(Signed::<TreeHead>::parse(&first.head_bytes).unwrap().verify(&ts.server.public_key()));
    assert_eq!(first.token[0], 0x30, "a DER ContentInfo");
    let imprint = sha256(&[&first.head_bytes]);
    assert!(first.token.windows(32).any(|w| w == imprint), "the token is over the head's SHA-256");

    // No growth, no new token: only tokens since the last one means nothing new to stamp.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let settled = tokens(&ts).len();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(tokens(&ts).len(), settled, "tokens are asked for only while the log grows");

    // More segments, another token; the end record last, and a token over it too.
    upload(&ts, &c, &d, &chain, &[3, 4, 5, 6, 7]).await;
    let last = covered(&ts, &url, last_untimed(&ts)).await;
    assert!(last.index > first.index);

    // The bundle: version 3, carrying for each record the earliest token covering it, in
    // log order, counted in the statement, with a consistency proof per stamped size.
    let member = custody_server::add_member(ts.dir.path(), "Ana Ruiz", Role::Member).unwrap();
    let tar = fetch(&ts, &c, &member, &chain).await;
    let files = untar(&tar);
    assert_eq!(file(&files, bundle::MARKER), bundle::MARKER_CONTENT_V3.as_bytes());
    assert_eq!(file(&files, bundle::TSA_ROOTS), pki().root_pem().unwrap());
    let entries = ts.logged_entries();
    let record_indices: Vec<u64> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.recording_id == Some(chain.id) && e.seq.is_some())
        .map(|(i, _)| i as u64)
        .collect();
    let all = tokens(&ts);
    let mut expected: Vec<u64> = record_indices
        .iter()
        .filter_map(|&li| all.iter().find(|t| t.head.tree_size > li).map(|t| t.index))
        .collect();
    expected.dedup();
    let proofs = LogProof::parse_all(file(&files, bundle::LOG_PROOFS)).unwrap();
    let carried: Vec<u64> = proofs
        .iter()
        .filter(|p| LogEntry::decode(&p.entry).unwrap().entry_type == EntryType::TimeStampToken)
        .map(|p| p.log_index)
        .collect();
    assert_eq!(carried, expected);
    assert!(!carried.is_empty());
    let consistency = ConsistencyProof::parse_all(file(&files, bundle::RECEIPT_PROOFS)).unwrap();
    for i in &carried {
        let t = all.iter().find(|t| t.index == *i).unwrap();
        assert!(consistency.iter().any(|p| p.tree_size == t.head.tree_size), "token {i}");
    }

    // It verifies, and the verifier sees the tokens' stamped heads consistent with its head.
    let dir = write_dir(&files);
    let report = verify_dir(dir.path(), ts.server.public_key());
    assert!(matches!(report.verdict, Verdict::IntactComplete), "{:#?}", report.checks);
    let ok = report.checks.iter().find(|c| c.code == "receipt.consistency.ok").unwrap();
    assert!(ok.message.contains("time-stamp tokens"), "{}", ok.message);

    // Drop one token entry (and the proof only it needed), make the manifest again: the
    // statement counted it, so the bundle is tampered.
    let mut dropped = files.clone();
    let kept: Vec<u8> =
        proofs.iter().filter(|p| p.log_index != carried[0]).flat_map(LogProof::encode).collect();
    dropped.iter_mut().find(|(p, _)| p == bundle::LOG_PROOFS).unwrap().1 = kept;
    remanifest(&mut dropped);
    let dir = write_dir(&dropped);
    let report = verify_dir(dir.path(), ts.server.public_key());
    assert!(matches!(report.verdict, Verdict::Tampered), "{:?}", report.verdict);
    let failed: Vec<&str> =
        report.checks.iter().filter(|c| c.state == CheckState::Failure).map(|c| c.code).collect();
    assert!(failed.contains(&"bundle.statement.entries"), "{failed:?}");

    // Relabelled as version 2 with its tokens gone, it is still tampered.
    let mut downgraded = files.clone();
    let no_tokens: Vec<u8> = proofs
        .iter()
        .filter(|p| !carried.contains(&p.log_index))
        .flat_map(LogProof::encode)
        .collect();
    downgraded.iter_mut().find(|(p, _)| p == bundle::LOG_PROOFS).unwrap().1 = no_tokens;
    downgraded.iter_mut().find(|(p, _)| p == bundle::MARKER).unwrap().1 =
        bundle::MARKER_CONTENT_V2.as_bytes().to_vec();
    downgraded.retain(|(p, _)| p != bundle::TSA_ROOTS);
    remanifest(&mut downgraded);
    let dir = write_dir(&downgraded);
    let report = verify_dir(dir.path(), ts.server.public_key());
    assert!(matches!(report.verdict, Verdict::Tampered), "{:?}", report.verdict);
}

#[tokio::test]
async fn a_tsa_down_for_a_while_holds_up_neither_ingest_nor_receipts_and_tokens_catch_up() {
    let tsa = TsaServer::start(pki().tsa(Variant::Good)).unwrap();
    tsa.set_mode(Mode::Down);
    let ts = start_stamped(&[&tsa]).await;
    let url = tsa.url();
    let c = client();
    let d = enrolled(&ts, &c, "observer").await;
    let chain = Chain::new(2, &d, 8, false, b"d");

    // Down: every segment is receipted all the same, and the TSA is being asked meanwhile.
    upload(&ts, &c, &d, &chain, &[0, 1, 2, 3]).await;
    let until = Instant::now() + Duration::from_secs(10);
    while tsa.connections() < 2 {
        assert!(Instant::now() < until, "the server never asked the TSA");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(tokens(&ts).is_empty(), "no token from a TSA that is down");

    // Slow (longer than the request timeout): a request hangs while receipts come back.
    tsa.set_mode(Mode::Slow(Duration::from_secs(3)));
    let asked = tsa.connections();
    upload(&ts, &c, &d, &chain, &[4, 5]).await;
    let until = Instant::now() + Duration::from_secs(10);
    while tsa.connections() == asked {
        assert!(Instant::now() < until, "the server stopped asking the TSA");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    upload(&ts, &c, &d, &chain, &[6, 7, 8]).await;
    assert!(tokens(&ts).is_empty(), "no token from a TSA slower than the timeout");
    assert_eq!(ts.server.recording_receipts(&d.public, &chain.id).unwrap().receipts.len(), 9);

    // Up again: a token catches up, over a head covering every record received meanwhile.
    tsa.set_mode(Mode::Up);
    let caught = covered(&ts, &url, last_untimed(&ts)).await;
    assert!(caught.head.tree_size > last_untimed(&ts));
}

/// `GET /v1/status` as a member sees it.
async fn status(ts: &TestServer, c: &reqwest::Client, token: &str) -> ServerStatus {
    let r = c.get(format!("{}/v1/status", ts.base)).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Polls the status (at most 20 s) until `ok` holds for the one TSA's entry.
async fn status_until(
    ts: &TestServer,
    c: &reqwest::Client,
    token: &str,
    what: &str,
    ok: impl Fn(&TsaStatus) -> bool,
) -> TsaStatus {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let s = status(ts, c, token).await;
        assert_eq!(s.time_stamping.len(), 1, "{s:?}");
        if ok(&s.time_stamping[0]) {
            return s.time_stamping[0].clone();
        }
        assert!(Instant::now() < until, "{what}: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_legal_team_sees_a_tsa_that_is_stopped_fail_and_catch_up_when_it_is_started_again() {
    let tsa = TsaServer::start(pki().tsa(Variant::Good)).unwrap();
    let addr = tsa.addr();
    let ts = start_stamped(&[&tsa]).await;
    let c = client();
    let member = custody_server::add_member(ts.dir.path(), "Ana Ruiz", Role::Member).unwrap();
    let d = enrolled(&ts, &c, "observer").await;
    let chain = Chain::new(5, &d, 6, false, b"s");

    // Members only.
    let r = c.get(format!("{}/v1/status", ts.base)).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // Up: a token covers everything, and its genTime is the TSA's (now, give or take).
    upload(&ts, &c, &d, &chain, &[0, 1]).await;
    let last = last_untimed(&ts);
    let up = status_until(&ts, &c, &member, "a token over the first uploads", |t| {
        t.last_token.as_ref().is_some_and(|k| k.tree_size > last)
    })
    .await;
    assert_eq!(up.tsa, tsa.url());
    assert_eq!((up.consecutive_failures, up.failing_since_us, up.entries_waiting), (0, None, 0));
    let token = up.last_token.clone().unwrap();
    let gen = token.gen_time_us.expect("the genTime read back");
    assert!((gen - custody_format::time::now_us()).abs() < 120_000_000, "{gen}");

    // Stopped (nothing listens on its port): ingest goes on; the status shows the
    // failures, since when, why, and the segments that wait.
    drop(tsa);
    upload(&ts, &c, &d, &chain, &[2, 3, 4]).await;
    let down = status_until(&ts, &c, &member, "the stopped TSA failing", |t| {
        t.consecutive_failures >= 2 && t.entries_waiting >= 3
    })
    .await;
    assert_eq!(down.last_token, Some(token.clone()), "its last token is still the one");
    assert!(down.failing_since_us.is_some_and(|t| t >= gen - 1_000_000), "{down:?}");
    assert!(down.last_error.as_deref().is_some_and(|e| !e.is_empty()), "{down:?}");
    assert!(tokens(&ts).iter().all(|t| t.index <= token.log_index));

    // Started again on the same address: a token covers what waited, the failures clear.
    let tsa = TsaServer::start_at(pki().tsa(Variant::Good), addr).unwrap();
    let last = last_untimed(&ts);
    let back = status_until(&ts, &c, &member, "the TSA started again", |t| {
        t.last_token.as_ref().is_some_and(|k| k.tree_size > last)
    })
    .await;
    assert_eq!(
        (back.consecutive_failures, back.failing_since_us, back.last_error.clone()),
        (0, None, None)
    );
    assert_eq!(back.entries_waiting, 0, "{back:?}");
    let caught = back.last_token.unwrap();
    assert!(caught.log_index > token.log_index && caught.gen_time_us >= Some(gen));
    assert!(tsa.granted() >= 1);
}

#[tokio::test]
async fn two_tsas_each_stamp_the_log() {
    let a = TsaServer::start(pki().tsa(Variant::Good)).unwrap();
    let b = TsaServer::start(pki().tsa(Variant::Intermediate)).unwrap();
    let ts = start_stamped(&[&a, &b]).await;
    let c = client();
    let d = enrolled(&ts, &c, "observer").await;
    let chain = Chain::new(3, &d, 3, true, b"2");
    upload(&ts, &c, &d, &chain, &[0, 1, 2, 3, 4]).await;
    let last = last_untimed(&ts);
    let from_a = covered(&ts, &a.url(), last).await;
    let from_b = covered(&ts, &b.url(), last).await;
    assert_ne!(from_a.index, from_b.index, "each TSA its own token");
    assert_ne!(from_a.token, from_b.token);

    // The bundle carries the earliest covering token, whichever TSA made it, and verifies.
    let member = custody_server::add_member(ts.dir.path(), "Ana Ruiz", Role::Member).unwrap();
    let files = untar(&fetch(&ts, &c, &member, &chain).await);
    assert_eq!(file(&files, bundle::MARKER), bundle::MARKER_CONTENT_V3.as_bytes());
    let dir = write_dir(&files);
    let report = verify_dir(dir.path(), ts.server.public_key());
    assert!(matches!(report.verdict, Verdict::IntactComplete), "{:#?}", report.checks);
}

#[tokio::test]
async fn without_a_tsa_a_bundle_stays_version_2() {
    let ts = start(test_limits()).await;
    let c = client();
    let d = enrolled(&ts, &c, "observer").await;
    let chain = Chain::new(4, &d, 2, true, b"n");
    upload(&ts, &c, &d, &chain, &[0, 1, 2, 3]).await;
    let member = custody_server::add_member(ts.dir.path(), "Ana Ruiz", Role::Member).unwrap();
    let files = untar(&fetch(&ts, &c, &member, &chain).await);
    assert_eq!(file(&files, bundle::MARKER), bundle::MARKER_CONTENT_V2.as_bytes());
    assert!(files.iter().all(|(p, _)| p != bundle::TSA_ROOTS));
}

/// Receipt latency with and without time-stamping, for `cargo xtask bench server`: one
/// device uploads segments one after another (each PUT: checks, fsync'd storage, log
/// append, receipt), in pairs of passes, one on a server without a TSA and one on a server
/// asking the test TSA at the default interval, 10 s (`CUSTODY_TSA_BENCH_INTERVAL_MS` sets
/// another), so that tokens are appended among the segments; the pairs alternate which
/// pass comes first. The test TSA (`openssl ts -reply`, a process per token) runs on the
/// same two cores, which a real, remote TSA does not. Each pair gives a ratio (with ÷
/// without) of p50, p99 and throughput; the median of the pairs' ratios and their spread
/// are what a shared machine can be trusted for. Prints `TSA_BENCH_JSON {…}`; the target
/// is within 5%.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn tsa_ingest_benchmark() {
    const PASSES: usize = 12;
    // A pass uploads at least SEGMENTS, and goes on until it has run for two and a half
    // intervals (so that a time-stamped pass meets tokens however fast the machine), but
    // never past its chain of MAX_SEGMENTS.
    const SEGMENTS: u64 = 2500;
    const MAX_SEGMENTS: u64 = 12_000;
    let tsa = TsaServer::start(pki().tsa(Variant::Good)).unwrap();
    let interval_ms: u64 = std::env::var("CUSTODY_TSA_BENCH_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut without = Vec::new();
    let mut with = Vec::new();
    // Per pass: its latencies (ms), its throughput (segments per second), this process's
    // CPU seconds per segment, and whether it was time-stamped.
    let mut passes: Vec<(Vec<f64>, f64, f64, bool)> = Vec::new();
    let mut tokens_logged = 0;
    for pass in 0..PASSES {
        // Pairs alternate their order (without, with; then with, without), so that a drift
        // of the machine's speed over the run does not favour either side.
        let stamped = matches!(pass % 4, 1 | 2);
        let ts = if stamped {
            let dir = tempfile::tempdir().unwrap();
            let mut config = Config::new(dir.path());
            config.insecure_http = true;
            config.limits = test_limits();
            config.recipients =
                vec!["age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq".into()];
            config.tsa.urls = vec![tsa.url()];
            config.tsa.interval = Duration::from_millis(interval_ms);
            let (server, _) = Server::open(config).unwrap();
            let (addr, task) =
                custody_server::serve::spawn(server.clone(), "127.0.0.1:0".parse().unwrap())
                    .await
                    .unwrap();
            TestServer { server, base: format!("http://{addr}"), dir, task, backend: Backend::Fs }
        } else {
            start(test_limits()).await
        };
        let c = client();
        let d = enrolled(&ts, &c, "observer").await;
        let chain = Chain::new(10 + pass as u8, &d, MAX_SEGMENTS, false, b"bench");
        let min_pass = Duration::from_millis(interval_ms * 5 / 2);
        let key = ts.server.public_key();
        let mut this_pass = Vec::new();
        let cpu_start = process_cpu_s();
        let pass_start = Instant::now();
        for seq in 0..=MAX_SEGMENTS as usize {
            let t = Instant::now();
            let s = d.put(&c, &ts.base, &key, chain.id, seq as u64, chain.body(seq)).await;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(s.status, 200);
            this_pass.push(ms);
            if stamped {
                with.push(ms)
            } else {
                without.push(ms)
            }
            if seq as u64 >= SEGMENTS && pass_start.elapsed() >= min_pass {
                break;
            }
        }
        let rate = this_pass.len() as f64 / pass_start.elapsed().as_secs_f64();
        // CPU seconds of this process (server and client; not the TSA's `openssl`
        // children) per segment: what the machine's other load does not change.
        let cpu = (process_cpu_s() - cpu_start) / this_pass.len() as f64;
        passes.push((this_pass, rate, cpu, stamped));
        if stamped {
            tokens_logged += tokens(&ts).len();
        }
    }
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    };
    let (w50, w99) = (pct(&mut without, 0.5), pct(&mut without, 0.99));
    let (s50, s99) = (pct(&mut with, 0.5), pct(&mut with, 0.99));
    // Ratios (with ÷ without) of each adjacent pair of passes, then their median and range.
    let (mut r50, mut r99, mut rrate, mut rcpu) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for pair in passes.chunks_exact_mut(2) {
        if pair[0].3 {
            pair.swap(0, 1);
        }
        let [(a, a_rate, a_cpu, _), (b, b_rate, b_cpu, _)] = pair else {
            unreachable!("chunks of two")
        };
        r50.push(pct(b, 0.5) / pct(a, 0.5));
        r99.push(pct(b, 0.99) / pct(a, 0.99));
        rrate.push(*b_rate / *a_rate);
        rcpu.push(*b_cpu / *a_cpu);
    }
    let spread = |v: &mut Vec<f64>| {
        let median = pct(v, 0.5);
        serde_json::json!({ "median": median, "min": v[0], "max": v[v.len() - 1] })
    };
    let json = serde_json::json!({
        "pairs": r50.len(),
        "pair_p50_ratio": spread(&mut r50),
        "pair_p99_ratio": spread(&mut r99),
        "pair_throughput_ratio": spread(&mut rrate),
        "pair_cpu_ratio": spread(&mut rcpu),
        "segments": without.len() + with.len(),
        "segments_without": without.len(), "segments_with": with.len(),
        "segment_bytes": 20_000,
        "p50_without_ms": w50, "p99_without_ms": w99,
        "p50_with_ms": s50, "p99_with_ms": s99,
        "p99_ratio": s99 / w99, "p50_ratio": s50 / w50,
        "tokens_logged": tokens_logged,
        "interval_ms": interval_ms,
    });
    println!("TSA_BENCH_JSON {json}");
    // A run in which no token was logged measured nothing of time-stamping.
    assert!(tokens_logged > 0, "no token was logged among the segments");
}

/// This process's user and system CPU time so far, in seconds (`/proc/self/stat` fields 14
/// and 15, in clock ticks of 1/100 s on Linux); NaN where it cannot be read.
fn process_cpu_s() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return f64::NAN };
    // The command name (field 2) may hold spaces: count from the closing parenthesis.
    let Some((_, rest)) = stat.rsplit_once(')') else { return f64::NAN };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    // After ')': field 3 is index 0, so utime (14) is 11 and stime (15) is 12.
    (ticks(11) + ticks(12)) / 100.0
}
