//! The device checks the server's custody log: a server whose log was rewritten after the
//! device saw a head (an entry removed, an entry changed, history forked from an older
//! copy of its data) is caught, the vault records the evidence, and nothing more is sent.
//!
//! Each server runs on its own runtime, shut down to stop it, so that a restart on the
//! same data directory is a clean stop and start, as with a process.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use custody_client::{Flushed, Options, Uploader};
use custody_format::ids::RecordingId;
use custody_format::log::LogEntry;
use custody_format::primitives::sha256;
use custody_format::record::EndReason;
use custody_format::testkit;
use custody_vault::journal::{self, Journal};
use custody_vault::keys::{new_recipient_identity, parse_recipients};
use custody_vault::outbox;
use custody_vault::seal::Sealer;
use custody_vault::store::SegmentInput;
use custody_vault::Vault;
use ed25519_dalek::SigningKey;

struct Running {
    rt: tokio::runtime::Runtime,
    server: custody_server::Server,
    addr: SocketAddr,
}

fn start(dir: &Path, recipient: &str, addr: SocketAddr) -> Running {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let mut config = custody_server::Config::new(dir);
    config.recipients = vec![recipient.to_string()];
    let (server, _) = custody_server::Server::open(config).unwrap();
    let (addr, _task) = rt.block_on(custody_server::serve::spawn(server.clone(), addr)).unwrap();
    Running { rt, server, addr }
}

/// Stops the server: every task (the accept loop and each connection) is dropped.
fn stop(r: Running) -> SocketAddr {
    let Running { rt, server, addr } = r;
    drop(server);
    rt.shutdown_timeout(Duration::from_secs(10));
    addr
}

struct Device {
    vault: Vault,
    key: SigningKey,
    recipient: String,
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl Device {
    fn enroll(seed: u8, data: &Path, url: &str, recipient: &str) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let (vault, _) = Vault::open(dir.path()).unwrap();
        let key = SigningKey::from_bytes(&[seed; 32]);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let token = custody_server::issue_token(data, "o", Duration::from_secs(60)).unwrap();
        rt.block_on(custody_client::enroll(&vault, &key, url, &token)).unwrap();
        Device { vault, key, recipient: recipient.to_string(), rt, _dir: dir }
    }

    /// Records a complete recording of `segments` small segments (nothing uploaded).
    fn record(&self, segments: u64) -> RecordingId {
        let sealer =
            Sealer::new(parse_recipients(std::slice::from_ref(&self.recipient)).unwrap()).unwrap();
        let mut h = testkit::header(1, &self.key);
        h.recording_id = RecordingId::random(&mut rand_core::OsRng);
        h.recipients = vec![self.recipient.clone()];
        let id = h.recording_id;
        let mut w = self.vault.begin(h, self.key.clone(), sealer).unwrap();
        for n in 1..=segments {
            let p: Vec<u8> = (0..20_000u32).map(|i| (i as u64 * n) as u8).collect();
            w.add_segment(SegmentInput {
                plaintext: &p,
                plaintext_sha256: sha256(&[&p]),
                fields: testkit::segment(1, n),
            })
            .unwrap();
        }
        w.end(testkit::T0_US + 10_000_000, EndReason::Stopped, None).unwrap();
        id
    }

    /// A fresh uploader's flush (a new connection, as a new `custody upload` would make).
    fn flush(&self) -> Flushed {
        let opts = Options {
            poll: Duration::from_millis(20),
            base_backoff: Duration::from_millis(20),
            ..Options::default()
        };
        let up = Uploader::new(&self.vault, self.key.clone(), opts).unwrap();
        self.rt.block_on(up.flush(Duration::from_secs(30))).unwrap()
    }

    fn held_size(&self) -> Option<u64> {
        outbox::held(self.vault.dir()).unwrap().map(|h| h.head.tree_size)
    }
}

/// Rewrites the log's entry journal through `edit` (the server must be stopped).
fn rewrite_log(data: &Path, edit: impl FnOnce(&mut Vec<Vec<u8>>)) {
    let path = data.join("log/entries.bin");
    let mut payloads = journal::read(&path).unwrap().payloads;
    edit(&mut payloads);
    std::fs::remove_file(&path).unwrap();
    let mut j = Journal::create(&path).unwrap();
    for p in &payloads {
        j.append(p).unwrap();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Asserts that `f` reports the log inconsistent, that the vault holds the evidence and
/// that every record of `id` still waits in the outbox.
fn assert_caught(d: &Device, f: &Flushed, id: &RecordingId, records: u64) {
    assert!(f.log_inconsistent.is_some(), "the rewrite went unnoticed: {f:?}");
    assert_eq!(f.receipted, 0, "{f:?}");
    let i = outbox::inconsistency(d.vault.dir()).unwrap().expect("the evidence is kept");
    assert_eq!(i.code, "log.inconsistent");
    assert!(!i.held.signed.is_empty() && !i.offered.signed.is_empty(), "{i:?}");
    let waiting = d.vault.index().pending().unwrap().iter().filter(|(r, _)| *r == id.0).count();
    assert_eq!(waiting as u64, records, "nothing leaves the outbox");
    let st = custody_vault::status::status(&d.vault, 0).unwrap();
    assert_eq!(st.log_inconsistent.map(|i| i.code).as_deref(), Some("log.inconsistent"));
}

fn setup() -> (tempfile::TempDir, String, Running) {
    let data = tempfile::tempdir().unwrap();
    let (_identity, recipient) = new_recipient_identity();
    let srv = start(data.path(), &recipient, "127.0.0.1:0".parse().unwrap());
    (data, recipient, srv)
}

#[test]
fn an_honest_server_passes_every_check_across_restarts() {
    let (data, recipient, srv) = setup();
    let d = Device::enroll(1, data.path(), &format!("https://{}", srv.addr), &recipient);
    d.record(3);
    assert_eq!(d.flush().receipted, 5);
    assert_eq!(d.held_size(), Some(srv.server.log_len()));
    let addr = stop(srv);
    let srv = start(data.path(), &recipient, addr);
    d.record(4);
    let f = d.flush();
    assert_eq!((f.receipted, f.pending, f.log_inconsistent.clone()), (6, 0, None), "{f:?}");
    assert_eq!(d.held_size(), Some(srv.server.log_len()));
    assert!(outbox::inconsistency(d.vault.dir()).unwrap().is_none());
    stop(srv);
}

#[test]
fn a_log_entry_removed_is_noticed() {
    let (data, recipient, srv) = setup();
    let d = Device::enroll(2, data.path(), &format!("https://{}", srv.addr), &recipient);
    d.record(3);
    assert_eq!(d.flush().receipted, 5);
    let addr = stop(srv);
    // Entry 2 is the first segment's receipt (0: enrolled, 1: recording opened).
    rewrite_log(data.path(), |p| {
        p.remove(2);
    });
    let srv = start(data.path(), &recipient, addr);
    let before = srv.server.log_len();
    let id = d.record(2);
    let f = d.flush();
    assert_caught(&d, &f, &id, 4);
    assert_eq!(srv.server.log_len(), before, "nothing was sent to the rewritten server");
    // A later upload refuses too, without asking the server anything.
    let f = d.flush();
    assert!(f.log_inconsistent.is_some());
    assert_eq!(srv.server.log_len(), before);
    stop(srv);
}

#[test]
fn a_log_entry_changed_is_noticed() {
    let (data, recipient, srv) = setup();
    let d = Device::enroll(3, data.path(), &format!("https://{}", srv.addr), &recipient);
    d.record(3);
    assert_eq!(d.flush().receipted, 5);
    let addr = stop(srv);
    rewrite_log(data.path(), |p| {
        let mut e = LogEntry::decode(&p[3]).unwrap();
        e.at_us += 1;
        p[3] = e.encode();
    });
    let srv = start(data.path(), &recipient, addr);
    let id = d.record(1);
    let f = d.flush();
    assert_caught(&d, &f, &id, 3);
    stop(srv);
}

#[test]
fn a_history_forked_from_an_older_copy_is_noticed() {
    let (data, recipient, srv) = setup();
    let url = format!("https://{}", srv.addr);
    let d1 = Device::enroll(4, data.path(), &url, &recipient);
    let d2 = Device::enroll(5, data.path(), &url, &recipient);
    let addr = stop(srv);
    let older = tempfile::tempdir().unwrap();
    copy_dir(data.path(), older.path());
    let srv = start(data.path(), &recipient, addr);
    d1.record(2);
    assert_eq!(d1.flush().receipted, 4);
    let held = d1.held_size().unwrap();
    stop(srv);
    // The server is restarted from the older copy and takes other uploads, so its log
    // grows past the head the first device holds, along a different history.
    let srv = start(older.path(), &recipient, addr);
    d2.record(6);
    assert_eq!(d2.flush().receipted, 8);
    assert!(srv.server.log_len() > held);
    let id = d1.record(1);
    let f = d1.flush();
    assert_caught(&d1, &f, &id, 3);
    let i = outbox::inconsistency(d1.vault.dir()).unwrap().unwrap();
    assert_eq!(i.held.tree_size, held);
    assert!(i.offered.tree_size > held);
    assert!(!i.proof.is_empty(), "the server's own proof is kept as evidence");
    stop(srv);
}
