//! The bundle's own account of its completeness, over real HTTP on loopback: the statement
//! in the retrieval's access entry (the records and log entries the server held, checked
//! here against the bundle and against the server's log, with a gap in positions and with
//! a revoked device, and while a device uploads), the receipts' consistency proofs to the
//! bundle's head, the archive's order, and the delivery entry logged after each transfer,
//! complete or broken off.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use custody_format::bundle::{self, ConsistencyProof, LogProof};
use custody_format::chain::ChainBuilder;
use custody_format::ids::RecordingId;
use custody_format::log::{EntryType, LogEntry, TreeHead};
use custody_format::merkle;
use custody_format::receipt::Receipt;
use custody_format::record::{EndReason, Record, SignedRecord};
use custody_format::signed::Signed;
use custody_format::statement::{self, StatedRecord, Statement};
use custody_format::testkit;
use custody_server::Role;

fn member(ts: &TestServer, name: &str) -> String {
    custody_server::add_member(ts.dir.path(), name, Role::Member).unwrap()
}

async fn upload(ts: &TestServer, c: &reqwest::Client, d: &Device, chain: &Chain, seqs: &[usize]) {
    let key = ts.server.public_key();
    for &seq in seqs {
        let s = d.put(c, &ts.base, &key, chain.id, seq as u64, chain.body(seq)).await;
        assert_eq!(s.status, 200, "seq {seq}: {}", String::from_utf8_lossy(&s.body));
    }
}

/// The whole archive of one retrieval, and its access entry's log index.
async fn fetch(ts: &TestServer, c: &reqwest::Client, token: &str, id: RecordingId) -> Bundle {
    let r = c
        .get(format!("{}/v1/recordings/{id}/bundle", ts.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let access = r.headers()["custody-bundle-access"].to_str().unwrap().parse().unwrap();
    let bytes = r.bytes().await.unwrap().to_vec();
    Bundle { access, files: untar(&bytes), len: bytes.len() as u64 }
}

struct Bundle {
    access: u64,
    /// (path under the top directory, content), in archive order; directories end in `/`.
    files: Vec<(String, Vec<u8>)>,
    len: u64,
}

/// A ustar reader of our own (name, size, type; nothing else), so that the archive's order
/// is checked as written.
fn untar(mut tar: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        let (h, rest) = tar.split_at(512);
        if h.iter().all(|&b| b == 0) {
            assert!(rest.len() >= 512 && rest[..512].iter().all(|&b| b == 0));
            return out;
        }
        let name = std::str::from_utf8(&h[..100]).unwrap().trim_end_matches('\0').to_string();
        let size = u64::from_str_radix(std::str::from_utf8(&h[124..135]).unwrap(), 8).unwrap();
        let (_, name) = name.split_once('/').unwrap();
        let padded = size.div_ceil(512) as usize * 512;
        out.push((name.to_string(), rest[..size as usize].to_vec()));
        tar = &rest[padded..];
    }
}

impl Bundle {
    fn file(&self, path: &str) -> &[u8] {
        &self.files.iter().find(|(p, _)| p == path).unwrap_or_else(|| panic!("no {path}")).1
    }
    fn records(&self) -> Vec<SignedRecord> {
        SignedRecord::parse_all(self.file(bundle::RECORDS)).unwrap()
    }
    fn proofs(&self) -> Vec<LogProof> {
        LogProof::parse_all(self.file(bundle::LOG_PROOFS)).unwrap()
    }
    fn head(&self) -> TreeHead {
        Signed::<TreeHead>::parse(self.file(bundle::TREE_HEAD)).unwrap().value().clone()
    }
    fn access_entry(&self) -> LogEntry {
        let last = self.proofs().pop().unwrap();
        assert_eq!(last.log_index, self.access);
        LogEntry::decode(&last.entry).unwrap()
    }
    /// The statement the access entry makes.
    fn stated(&self) -> Statement {
        Statement::of(&self.access_entry()).expect("the access entry carries a statement")
    }
    /// The statement of what the bundle holds: its records, and its log proofs but the last.
    fn held(&self) -> Statement {
        let records = self.records().into_iter().map(|r| StatedRecord {
            seq: r.record().seq(),
            hash: r.hash(),
            end: matches!(r.record(), Record::End(_)),
        });
        let mut proofs = self.proofs();
        proofs.pop();
        Statement::new(records, proofs.iter().map(|p| (p.log_index, merkle::leaf_hash(&p.entry))))
    }
}

/// The statement computed from the server's own journal, as the spec defines it: the
/// records of `id` logged before `access`, and the entries about `id` or naming only its
/// device.
fn from_the_log(ts: &TestServer, id: RecordingId, device: &Device, access: u64) -> Statement {
    let entries = ts.logged_entries();
    let mut records: Vec<StatedRecord> = entries[..access as usize]
        .iter()
        .filter(|e| {
            e.recording_id == Some(id)
                && matches!(
                    e.entry_type,
                    EntryType::RecordingOpened
                        | EntryType::SegmentReceived
                        | EntryType::RecordingEnded
                )
        })
        .map(|e| StatedRecord {
            seq: e.seq.unwrap(),
            hash: e.record_hash.unwrap(),
            end: e.entry_type == EntryType::RecordingEnded,
        })
        .collect();
    records.sort_by_key(|r| r.seq);
    let concerning = entries[..access as usize].iter().enumerate().filter(|(_, e)| {
        e.recording_id == Some(id)
            || (e.recording_id.is_none() && e.device_key == Some(device.public))
    });
    Statement::new(
        records,
        concerning.map(|(i, e)| (i as u64, merkle::leaf_hash(&e.encode()))).collect::<Vec<_>>(),
    )
}

#[tokio::test]
async fn the_access_entry_states_the_records_and_entries_with_a_gap_and_a_revoked_device() {
    let ts = start(test_limits()).await;
    let c = client();
    let token = member(&ts, "Ana Ruiz");

    // Positions 0, 1 and 3 are stored; 2 never arrived.
    let d = enrolled(&ts, &c, "observer-gap").await;
    let chain = Chain::new(1, &d, 3, false, b"g");
    upload(&ts, &c, &d, &chain, &[0, 1, 3]).await;
    let b = fetch(&ts, &c, &token, chain.id).await;
    let s = b.stated();
    assert_eq!((s.chain_count, s.chain_last_seq, s.chain_ended), (3, 3, false));
    let want = statement::chain_hash([0, 1, 3].map(|i| (i as u64, chain.records[i].hash())));
    assert_eq!(s.chain_hash, want);
    // Enrollment, header, segments 1 and 3.
    assert_eq!(s.entries_count, 4);
    assert_eq!(s, b.held());
    assert_eq!(s, from_the_log(&ts, chain.id, &d, b.access));
    assert_eq!(b.head().tree_size, b.access + 1);
    assert_eq!(bundle::marker_version(b.file(bundle::MARKER)), Some(2));
    let readme = String::from_utf8(b.file(bundle::README).to_vec()).unwrap();
    assert!(readme.contains("3\nrecords, the last at position 3, with no end record"), "{readme}");

    // Counting positions alone would not tell 0, 1, 3 from 0, 1, 2: the hash does.
    let dense = statement::chain_hash((0..3).map(|i| (i as u64, chain.records[i].hash())));
    assert_ne!(s.chain_hash, dense);

    // A complete recording of a device revoked afterwards: the revocation is one of the
    // entries the bundle must carry, and the end record is stated.
    let r = enrolled(&ts, &c, "observer-seized").await;
    let chain = Chain::new(2, &r, 2, true, b"r");
    upload(&ts, &c, &r, &chain, &[0, 1, 2, 3]).await;
    ts.server.revoke(&r.public, "counsel", "seized at the scene").unwrap();
    let b = fetch(&ts, &c, &token, chain.id).await;
    let s = b.stated();
    assert_eq!((s.chain_count, s.chain_last_seq, s.chain_ended), (4, 3, true));
    assert_eq!(s.entries_count, 6);
    assert_eq!(s, b.held());
    assert_eq!(s, from_the_log(&ts, chain.id, &r, b.access));
    let types: Vec<EntryType> =
        b.proofs().iter().map(|p| LogEntry::decode(&p.entry).unwrap().entry_type).collect();
    assert!(types.contains(&EntryType::DeviceRevoked), "{types:?}");
    // Leaving the revocation out of the bundle would no longer match the statement.
    let mut proofs = b.proofs();
    proofs.pop();
    proofs.retain(|p| LogEntry::decode(&p.entry).unwrap().entry_type != EntryType::DeviceRevoked);
    let dropped =
        statement::entries_hash(proofs.iter().map(|p| (p.log_index, merkle::leaf_hash(&p.entry))));
    assert_ne!(dropped, s.entries_hash);
}

#[tokio::test]
async fn records_arriving_during_retrievals_never_make_the_statement_and_the_bundle_disagree() {
    let ts = start(test_limits()).await;
    let c = client();
    let token = member(&ts, "Ana Ruiz");
    let d = enrolled(&ts, &c, "observer-live").await;
    let chain = Chain::new(3, &d, 60, false, b"live");
    upload(&ts, &c, &d, &chain, &[0]).await;

    let uploading = {
        let (base, key, d, c2) = (ts.base.clone(), ts.server.public_key(), d.clone(), client());
        let bodies: Vec<Vec<u8>> = (1..chain.records.len()).map(|s| chain.body(s)).collect();
        let id = chain.id;
        tokio::spawn(async move {
            for (i, body) in bodies.into_iter().enumerate() {
                let s = d.put(&c2, &base, &key, id, i as u64 + 1, body).await;
                assert_eq!(s.status, 200);
            }
        })
    };
    let mut counts = BTreeSet::new();
    for _ in 0..20 {
        let b = fetch(&ts, &c, &token, chain.id).await;
        let s = b.stated();
        assert_eq!(s, b.held(), "access {}", b.access);
        assert_eq!(b.records().len() as u64, s.chain_count);
        counts.insert(s.chain_count);
    }
    uploading.await.unwrap();
    let b = fetch(&ts, &c, &token, chain.id).await;
    assert_eq!(b.stated(), b.held());
    assert_eq!(b.stated().chain_count, 61);
    // How much the retrievals overlapped the upload (not asserted: it depends on timing).
    eprintln!("chain counts seen during the upload: {counts:?}");
}

#[tokio::test]
async fn every_receipt_has_one_consistency_proof_to_the_head_in_a_bundle_in_layout_order() {
    let ts = start(test_limits()).await;
    let c = client();
    let token = member(&ts, "Ana Ruiz");
    let d = enrolled(&ts, &c, "observer-a").await;
    let other = enrolled(&ts, &c, "observer-b").await;
    let chain = Chain::new(4, &d, 5, true, b"p");
    let noise = Chain::new(5, &other, 5, false, b"n");
    // Interleaved with another device's uploads, so the receipts' trees are not adjacent.
    for seq in 0..chain.records.len() {
        upload(&ts, &c, &d, &chain, &[seq]).await;
        upload(&ts, &c, &other, &noise, &[seq.min(5)]).await;
    }
    let b = fetch(&ts, &c, &token, chain.id).await;
    let head = b.head();
    let receipts: Vec<Receipt> = Signed::<Receipt>::parse_all(b.file(bundle::RECEIPTS))
        .unwrap()
        .into_iter()
        .map(|r| r.value().clone())
        .collect();
    assert_eq!(receipts.len(), 7);
    let proofs = ConsistencyProof::parse_all(b.file(bundle::RECEIPT_PROOFS)).unwrap();
    let sizes: Vec<u64> = proofs.iter().map(|p| p.tree_size).collect();
    let mut wanted: Vec<u64> = receipts.iter().map(|r| r.tree_size).collect();
    wanted.sort_unstable();
    wanted.dedup();
    assert_eq!(sizes, wanted, "one per distinct receipt tree size, ascending");
    for r in &receipts {
        let p = proofs.iter().find(|p| p.tree_size == r.tree_size).unwrap();
        merkle::verify_consistency(
            r.tree_size,
            head.tree_size,
            &r.tree_root,
            &head.root_hash,
            &p.path,
        )
        .unwrap_or_else(|e| panic!("receipt at {}: {e}", r.tree_size));
        // The check can fail: another root at that size is a fork.
        let mut forked = r.tree_root;
        forked[0] ^= 1;
        assert!(merkle::verify_consistency(
            r.tree_size,
            head.tree_size,
            &forked,
            &head.root_hash,
            &p.path
        )
        .is_err());
    }

    // The archive's order is the layout table's (format.md 10.1, 10.4), the new file in its
    // place after the receipts; the manifest lists it.
    let names: Vec<&str> = b.files.iter().map(|(p, _)| p.as_str()).collect();
    let mut want = vec!["", "BUNDLE", "README.txt", "MANIFEST.sha256", "recording/"];
    want.push("recording/records.bin");
    want.push("recording/segments/");
    let segs: Vec<String> = (1..=5).map(bundle::segment_path).collect();
    want.extend(segs.iter().map(String::as_str));
    want.extend([
        "custody/",
        "custody/server-key.txt",
        "custody/device-certificate.bin",
        "custody/receipts.bin",
        "custody/receipt-proofs.bin",
        "custody/tree-head.bin",
        "custody/log-proofs.bin",
    ]);
    assert_eq!(names, want);
    let manifest = String::from_utf8(b.file(bundle::MANIFEST).to_vec()).unwrap();
    let line = format!(
        "{}  {}\n",
        hex::encode(custody_format::primitives::sha256(&[b.file(bundle::RECEIPT_PROOFS)])),
        bundle::RECEIPT_PROOFS
    );
    assert!(manifest.contains(&line), "{manifest}");
}

/// Waits (bounded) until the server's log holds an entry `pred` accepts: a broken-off
/// transfer's delivery entry is appended once the connection lets go of the body, which the
/// client that left does not see.
async fn logged(ts: &TestServer, pred: impl Fn(&LogEntry) -> bool) -> LogEntry {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(e) = ts.logged_entries().into_iter().find(&pred) {
            return e;
        }
        assert!(std::time::Instant::now() < deadline, "no such entry was logged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn delivery(e: &LogEntry, id: RecordingId) -> bool {
    e.entry_type == EntryType::Access
        && e.recording_id == Some(id)
        && e.detail.as_deref().is_some_and(|d| d.starts_with("delivered "))
}

#[tokio::test]
async fn each_transfer_is_logged_again_when_it_ends_with_the_bytes_sent_complete_or_not() {
    let ts = start(test_limits()).await;
    let c = client();
    let token = member(&ts, "Ana Ruiz");
    let d = enrolled(&ts, &c, "observer-big").await;
    // 16 sealed segments of 800 KB: a bundle far larger than what the sockets buffer, so a
    // client that stops reading cannot have been sent all of it.
    let header = testkit::header(6, &d.key);
    let id = header.recording_id;
    let (mut b, h) = ChainBuilder::start(header, d.key.clone()).unwrap();
    let mut bodies = vec![h.to_bytes()];
    for n in 1..=16u64 {
        let ct = vec![n as u8; 800_000];
        let mut f = testkit::segment(6, n);
        f.ciphertext_len = ct.len() as u64;
        f.ciphertext_sha256 = custody_format::primitives::sha256(&[&ct]);
        let mut body = b.segment(f).to_bytes();
        body.extend_from_slice(&ct);
        bodies.push(body);
    }
    bodies.push(b.end(testkit::T0_US + 40_000_000, EndReason::Stopped, None).to_bytes());
    let key = ts.server.public_key();
    for (seq, body) in bodies.into_iter().enumerate() {
        let s = d.put(&c, &ts.base, &key, id, seq as u64, body).await;
        assert_eq!(s.status, 200, "seq {seq}");
    }

    // A whole transfer.
    let whole = fetch(&ts, &c, &token, id).await;
    let want = format!("delivered {0} of {0} bytes, complete", whole.len);
    // Logged before the last bytes were handed over: a client holding them all finds it.
    let e = ts.logged_entries().into_iter().find(|e| delivery(e, id)).expect("logged");
    assert_eq!(e.detail.as_deref(), Some(want.as_str()));
    assert_eq!(e.actor.as_deref(), Some("Ana Ruiz"));
    // It comes after the bundle's head, so that bundle does not carry it; the next does.
    let next = fetch(&ts, &c, &token, id).await;
    let carried: Vec<String> = next
        .proofs()
        .iter()
        .filter_map(|p| LogEntry::decode(&p.entry).unwrap().detail)
        .filter(|d| d.starts_with("delivered"))
        .collect();
    assert!(!whole
        .proofs()
        .iter()
        .any(|p| LogEntry::decode(&p.entry).unwrap().detail == Some(want.clone())));
    assert!(carried.contains(&want), "{carried:?}");
    let next_done = format!("delivered {0} of {0} bytes, complete", next.len);
    assert!(ts.logged_entries().iter().any(|e| e.detail.as_deref() == Some(next_done.as_str())));
    let delivered_before = ts.logged_entries().iter().filter(|e| delivery(e, id)).count();
    assert_eq!(delivered_before, 2);

    // A client that reads the first bytes and goes away.
    let fresh = client();
    let mut r = fresh
        .get(format!("{}/v1/recordings/{id}/bundle", ts.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let total: u64 = r.content_length().unwrap();
    assert!(r.chunk().await.unwrap().is_some());
    drop(r);
    drop(fresh);
    let e = logged(&ts, |e| {
        delivery(e, id) && e.detail.as_deref().is_some_and(|d| d.ends_with(", incomplete"))
    })
    .await;
    let detail = e.detail.unwrap();
    let sent: u64 = detail
        .strip_prefix("delivered ")
        .and_then(|d| d.split_once(' '))
        .map(|(n, _)| n.parse().unwrap())
        .unwrap();
    assert!(sent > 0 && sent < total, "{detail}");
    assert!(detail.contains(&format!(" of {total} bytes")), "{detail}");
    assert_eq!(
        ts.logged_entries().iter().filter(|e| delivery(e, id)).count(),
        delivered_before + 1,
        "one delivery entry per transfer"
    );
}
