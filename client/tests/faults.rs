//! The uploader after the server or the network hiccups (issue 16, section 2): a server
//! that was down is found again by the probe (`GET /v1/server`) and every record is
//! receipted once; a connection that takes a request and never answers is abandoned by its
//! lack of progress, within seconds, and the record sent again. The device reaches a
//! plain-HTTP server on loopback through the fault proxy (tests/common/fault_proxy.rs),
//! which counts what passed.

#[path = "common/fault_proxy.rs"]
mod fault_proxy;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use custody_client::{Options, Receipted, Uploader};
use custody_format::chain::SegmentFields;
use custody_format::ids::RecordingId;
use custody_format::primitives::sha256;
use custody_format::record::{EndReason, RecordingHeader};
use custody_format::testkit;
use custody_vault::keys::{new_recipient_identity, parse_recipients};
use custody_vault::seal::Sealer;
use custody_vault::store::SegmentInput;
use custody_vault::Vault;
use ed25519_dalek::SigningKey;
use fault_proxy::{Fault, FaultProxy};

/// A plain-HTTP custody server on the data in `dir`, at `addr`.
async fn serve_at(
    dir: &std::path::Path,
    recipient: &str,
    addr: SocketAddr,
) -> (custody_server::Server, SocketAddr, tokio::task::JoinHandle<()>) {
    let mut config = custody_server::Config::new(dir);
    config.recipients = vec![recipient.to_string()];
    config.insecure_http = true;
    let (server, _) = custody_server::Server::open(config).unwrap();
    let (addr, task) = custody_server::serve::spawn(server.clone(), addr).await.unwrap();
    (server, addr, task)
}

/// A server, a fault proxy in front of it, and a vault enrolled through the proxy.
struct Setup {
    data: tempfile::TempDir,
    recipient: String,
    server: custody_server::Server,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    proxy: FaultProxy,
    _vdir: tempfile::TempDir,
    vault: Vault,
    key: SigningKey,
}

async fn setup(seed: u8) -> Setup {
    let (_identity, recipient) = new_recipient_identity();
    let data = tempfile::tempdir().unwrap();
    let (server, addr, task) =
        serve_at(data.path(), &recipient, "127.0.0.1:0".parse().unwrap()).await;
    let proxy = FaultProxy::start(addr).unwrap();
    let vdir = tempfile::tempdir().unwrap();
    let (vault, _) = Vault::open(vdir.path()).unwrap();
    let key = SigningKey::from_bytes(&[seed; 32]);
    let token = custody_server::issue_token(data.path(), "o", Duration::from_secs(60)).unwrap();
    let url = format!("http://{}", proxy.addr);
    custody_client::enroll(&vault, &key, &url, &token).await.unwrap();
    Setup { data, recipient, server, addr, task, proxy, _vdir: vdir, vault, key }
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

/// Seals a recording of `segments` segments of `len` bytes, ended; its id. It has
/// `segments + 2` records.
fn record(s: &Setup, segments: u64, len: usize) -> RecordingId {
    let sealer =
        Sealer::new(parse_recipients(std::slice::from_ref(&s.recipient)).unwrap()).unwrap();
    let mut h: RecordingHeader = testkit::header(1, &s.key);
    h.recording_id = RecordingId::random(&mut rand_core::OsRng);
    h.recipients = vec![s.recipient.clone()];
    let id = h.recording_id;
    let mut w = s.vault.begin(h, s.key.clone(), sealer).unwrap();
    for n in 1..=segments {
        let p = plaintext(n, len);
        let fields: SegmentFields = testkit::segment(1, n);
        w.add_segment(SegmentInput { plaintext: &p, plaintext_sha256: sha256(&[&p]), fields })
            .unwrap();
    }
    w.end(testkit::T0_US + 20_000_000, EndReason::Stopped, None).unwrap();
    id
}

/// Waits (bounded) until `cond` holds.
async fn until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < end, "{what} did not happen within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every record of `id` is receipted once: one receipt per position on the device, one
/// log entry per record on the server.
fn receipted_once(s: &Setup, up: &Uploader, id: &RecordingId, records: u64, log_before: u64) {
    let receipts = up.receipts(id).unwrap();
    let seqs: BTreeSet<u64> = receipts.iter().map(|r| r.value().seq).collect();
    assert_eq!(seqs, (0..records).collect(), "a receipt for every record");
    assert_eq!(receipts.len() as u64, records, "one receipt for each record");
    assert_eq!(s.server.log_len(), log_before + records, "one log entry for each record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_was_down_is_found_by_the_probe_and_every_record_is_receipted_once() {
    let mut s = setup(21).await;
    // The server goes away; the device records meanwhile.
    s.task.abort();
    let _ = (&mut s.task).await;
    let id = record(&s, 4, 60_000);
    let log_before = s.server.log_len();

    let mut up = Uploader::new(&s.vault, s.key.clone(), Options::default()).unwrap();
    let mut events = up.events();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let runner = up.clone();
    let run = tokio::spawn(async move { runner.run(stop_rx).await });

    // Uploads find nobody, and the uploader probes: at once, then with a short backoff.
    until("two probes of the server that is down", Duration::from_secs(10), || {
        s.proxy.counts().probes >= 2
    })
    .await;
    assert!(s.proxy.counts().upstream_refused >= 2);

    // The server comes back on the same address and data.
    let (server, _, task) = serve_at(s.data.path(), &s.recipient, s.addr).await;
    let mut got = Vec::<Receipted>::new();
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        while got.len() < 6 {
            match events.recv().await {
                Some(ev) => got.push(ev),
                None => break,
            }
        }
    })
    .await;
    assert!(waited.is_ok(), "only {} of 6 records receipted after the server came back", got.len());
    stop.send(true).unwrap();
    let f = run.await.unwrap().unwrap();
    assert_eq!((f.receipted, f.pending, f.log_inconsistent.clone()), (6, 0, None), "{f:?}");
    assert!(f.probes >= 2, "{f:?}");
    let s = Setup { server, task, ..s };
    receipted_once(&s, &up, &id, 6, log_before);
    s.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_answers_is_abandoned_and_the_record_sent_again() {
    let s = setup(22).await;
    let id = record(&s, 4, 200_000);
    let log_before = s.server.log_len();
    // Lost packets: whatever the device sends now vanishes and nothing answers or closes.
    s.proxy.set(Fault::Drop);

    // Short stall and answer periods keep the test quick; the defaults are a few seconds.
    let quick = Options {
        stall: Duration::from_secs(1),
        answer: Duration::from_secs(1),
        ..Options::default()
    };
    let up = Uploader::new(&s.vault, s.key.clone(), quick).unwrap();
    let flusher = up.clone();
    // Bounded well under the 60 s a request could once wait for its answer.
    let flush = tokio::spawn(async move { flusher.flush(Duration::from_secs(25)).await });
    // The head check and the receipts asked for first are lost, then the uploads.
    until("an upload lost in the black hole", Duration::from_secs(10), || {
        s.proxy.counts().black_holed >= 3
    })
    .await;
    // The network is back; the connections lost in it stay dead.
    s.proxy.set(Fault::Pass);
    let f = flush.await.unwrap().unwrap();
    assert_eq!((f.receipted, f.pending, f.log_inconsistent.clone()), (6, 0, None), "{f:?}");
    assert!(f.probes >= 1, "the uploader did not probe after abandoning: {f:?}");
    receipted_once(&s, &up, &id, 6, log_before);
    s.task.abort();
}
