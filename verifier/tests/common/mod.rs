//! Builds evidence bundles as `docs/format.md` lays them out, from deterministic test keys,
//! so every kind of tampering can be applied to a known-good bundle.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use custody_format::bundle::{self, ConsistencyProof, LogProof, Manifest, ManifestEntry};
use custody_format::cert::DeviceCertificate;
use custody_format::chain::{ChainBuilder, SegmentFields};
use custody_format::ids::RecordingId;
use custody_format::log::{EntryType, LogEntry, TreeHead};
use custody_format::merkle;
use custody_format::primitives::sha256;
use custody_format::receipt::Receipt;
use custody_format::record::{EndReason, Record, SignedRecord};
use custody_format::signed::Signed;
use custody_format::statement::{self, Statement};
use custody_format::testkit;

/// A bundle held as files in memory.
#[derive(Clone)]
pub struct Bundle {
    pub files: BTreeMap<String, Vec<u8>>,
}

pub struct Parts {
    pub records: Vec<SignedRecord>,
    pub receipts: Vec<Signed<Receipt>>,
    pub entries: Vec<LogEntry>,
    pub segments: BTreeMap<u64, Vec<u8>>,
}

/// "Ciphertext" of segment `n`: deterministic bytes (the verifier never decrypts them
/// unless given an opener).
pub fn sealed(recording: u8, n: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut block = sha256(&[b"sealed", &[recording], &n.to_be_bytes()]);
    while out.len() < len {
        out.extend_from_slice(&block);
        block = sha256(&[&block]);
    }
    out.truncate(len);
    out
}

/// A recording of `segments` segments by `device`, uploaded to `server` (every record
/// receipted and logged), ended if `ended`.
pub fn parts(recording: u8, device: &str, server: &str, segments: u64, ended: bool) -> Parts {
    parts_sized(recording, device, server, segments, ended, |n| 3000 + (n as usize * 37) % 500)
}

/// As [`parts`], segment `n` sealed as `len(n)` bytes.
pub fn parts_sized(
    recording: u8,
    device: &str,
    server: &str,
    segments: u64,
    ended: bool,
    len: impl Fn(u64) -> usize,
) -> Parts {
    let dkey = testkit::key(device);
    let (mut b, header) =
        ChainBuilder::start(testkit::header(recording, &dkey), dkey.clone()).unwrap();
    let mut records = vec![header];
    let mut seg_bytes = BTreeMap::new();
    for n in 1..=segments {
        let ct = sealed(recording, n, len(n));
        let base = testkit::segment(recording, n);
        let fields = SegmentFields {
            ciphertext_len: ct.len() as u64,
            ciphertext_sha256: sha256(&[&ct]),
            ..base
        };
        records.push(b.segment(fields));
        seg_bytes.insert(n, ct);
    }
    if ended {
        records.push(b.end(
            testkit::T0_US + 50_000 + segments as i64 * 2_000_000,
            EndReason::Stopped,
            None,
        ));
    }
    receipted(records, seg_bytes, testkit::public(device), server)
}

/// A real recording's records and sealed segments (made by any device key), every record
/// receipted and logged by `server` as a live upload would have them.
pub fn receipted(
    records: Vec<SignedRecord>,
    seg_bytes: BTreeMap<u64, Vec<u8>>,
    device_pub: custody_format::ids::PublicKey,
    server: &str,
) -> Parts {
    receipted_with(records, seg_bytes, device_pub, server, 300_000, &[])
}

/// As [`receipted`], each record received `lag_us` after the device time of its capture,
/// and each of `extra` logged right after the entry of the record at its position.
pub fn receipted_with(
    records: Vec<SignedRecord>,
    seg_bytes: BTreeMap<u64, Vec<u8>>,
    device_pub: custody_format::ids::PublicKey,
    server: &str,
    lag_us: i64,
    extra: &[(u64, LogEntry)],
) -> Parts {
    let skey = testkit::key(server);
    let mut enrolled = LogEntry::new(EntryType::DeviceEnrolled, testkit::T0_US - 86_400_000_000);
    enrolled.device_key = Some(device_pub);
    enrolled.label = Some("observer-7".into());
    let mut entries = vec![enrolled];
    let mut receipts = Vec::new();
    let mut leaves: Vec<[u8; 32]> = vec![merkle::leaf_hash(&entries[0].encode())];
    for r in &records {
        let (t, cipher, captured) = match r.record() {
            Record::Header(h) => (EntryType::RecordingOpened, None, h.started_at_us),
            Record::Segment(s) => {
                (EntryType::SegmentReceived, Some(s.ciphertext_sha256), s.wall_last_us)
            }
            Record::End(e) => (EntryType::RecordingEnded, None, e.ended_at_us),
        };
        let at = captured + lag_us;
        let mut e = LogEntry::new(t, at);
        e.device_key = Some(device_pub);
        e.recording_id = Some(r.record().recording_id());
        e.seq = Some(r.record().seq());
        e.record_hash = Some(r.hash());
        e.ciphertext_sha256 = cipher;
        leaves.push(merkle::leaf_hash(&e.encode()));
        let index = (leaves.len() - 1) as u64;
        receipts.push(Signed::sign(
            Receipt {
                recording_id: r.record().recording_id(),
                seq: r.record().seq(),
                record_hash: r.hash(),
                ciphertext_sha256: cipher,
                device_key: device_pub,
                received_at_us: at,
                log_index: index,
                tree_size: index + 1,
                tree_root: merkle::root(&leaves),
            },
            &skey,
        ));
        entries.push(e);
        for (_, x) in extra.iter().filter(|(after, _)| *after == r.record().seq()) {
            leaves.push(merkle::leaf_hash(&x.encode()));
            entries.push(x.clone());
        }
    }
    Parts { records, receipts, entries, segments: seg_bytes }
}

/// The retrieval entry a server logs for a bundle of `parts` (index `entries.len()`), with
/// its statement of the chain and of the entries before it.
pub fn access_entry(parts: &Parts, with_statement: bool) -> LogEntry {
    let id = parts.records.first().map_or(RecordingId([0; 16]), |r| r.record().recording_id());
    let mut e = LogEntry::new(EntryType::Access, testkit::T0_US + 3_600_000_000);
    e.actor = Some("lawyer".into());
    e.recording_id = Some(id);
    e.detail = Some("bundle".into());
    if with_statement {
        let mut chain: Vec<(u64, [u8; 32])> =
            parts.records.iter().map(|r| (r.record().seq(), r.hash())).collect();
        chain.sort_by_key(|(s, _)| *s);
        chain.dedup_by_key(|(s, _)| *s);
        let entries: Vec<(u64, [u8; 32])> = parts
            .entries
            .iter()
            .enumerate()
            .map(|(i, x)| (i as u64, merkle::leaf_hash(&x.encode())))
            .collect();
        set_statement(
            &mut e,
            Statement {
                chain_count: chain.len() as u64,
                chain_last_seq: chain.last().map_or(0, |(s, _)| *s),
                chain_ended: parts.records.iter().any(|r| matches!(r.record(), Record::End(_))),
                chain_hash: statement::chain_hash(chain.iter().copied()),
                entries_count: entries.len() as u64,
                entries_hash: statement::entries_hash(entries.iter().copied()),
            },
        );
    }
    e
}

/// Puts statement `s` into the access entry `e`.
pub fn set_statement(e: &mut LogEntry, s: Statement) {
    s.write_to(e);
}

impl Parts {
    /// The bundle of these parts, signed by `server`, with a fresh manifest.
    pub fn bundle(&self, device: &str, server: &str) -> Bundle {
        self.bundle_for(testkit::public(device), server)
    }

    /// The bundle of these parts for the device key `device`, signed by `server`: a
    /// `custody-bundle 2` bundle, its head ending with the retrieval entry that states its
    /// chain and entries, with a consistency proof for every receipt's tree.
    pub fn bundle_for(&self, device: custody_format::ids::PublicKey, server: &str) -> Bundle {
        self.build(device, server, true, true)
    }

    /// A `custody-bundle 2` bundle whose retrieval entry states nothing (a server that
    /// forgot the statement).
    pub fn bundle_unstated(&self, device: &str, server: &str) -> Bundle {
        self.build(testkit::public(device), server, true, false)
    }

    /// The `custody-bundle 1` bundle of these parts, as a server before completeness
    /// statements made it: a plain retrieval entry, no receipt proofs.
    pub fn bundle_v1(&self, device: &str, server: &str) -> Bundle {
        self.build(testkit::public(device), server, false, false)
    }

    fn build(
        &self,
        device: custody_format::ids::PublicKey,
        server: &str,
        v2: bool,
        stated: bool,
    ) -> Bundle {
        let skey = testkit::key(server);
        let mut files = BTreeMap::new();
        // Version 3 when the parts hold time-stamp token entries (as the server writes it).
        let v3 = v2 && self.entries.iter().any(|e| e.entry_type == EntryType::TimeStampToken);
        let marker = match (v2, v3) {
            (true, true) => "custody-bundle 3\n",
            (true, false) => "custody-bundle 2\n",
            _ => "custody-bundle 1\n",
        };
        files.insert(bundle::MARKER.to_string(), marker.as_bytes().to_vec());
        files.insert(
            bundle::README.to_string(),
            b"Verify with: custody verify <this directory>\n".to_vec(),
        );
        files.insert(bundle::RECORDS.to_string(), testkit::concat(&self.records));
        for (n, ct) in &self.segments {
            files.insert(bundle::segment_path(*n), ct.clone());
        }
        files.insert(
            bundle::SERVER_KEY.to_string(),
            format!("{}\n", testkit::public(server)).into_bytes(),
        );
        let cert = Signed::sign(
            DeviceCertificate {
                device_key: device,
                label: "observer-7".into(),
                enrolled_at_us: self.entries[0].at_us,
                server_key: testkit::public(server),
            },
            &skey,
        );
        files.insert(bundle::DEVICE_CERT.to_string(), cert.to_bytes());
        files.insert(
            bundle::RECEIPTS.to_string(),
            self.receipts.iter().flat_map(|r| r.to_bytes()).collect(),
        );
        let mut entries = self.entries.clone();
        entries.push(access_entry(self, stated));
        let leaves: Vec<[u8; 32]> =
            entries.iter().map(|e| merkle::leaf_hash(&e.encode())).collect();
        let size = leaves.len() as u64;
        let head = Signed::sign(
            TreeHead {
                tree_size: size,
                root_hash: merkle::root(&leaves),
                timestamp_us: testkit::T0_US + 3_600_000_000,
            },
            &skey,
        );
        files.insert(bundle::TREE_HEAD.to_string(), head.to_bytes());
        let proofs: Vec<u8> = entries
            .iter()
            .enumerate()
            .flat_map(|(i, e)| {
                LogProof {
                    log_index: i as u64,
                    entry: e.encode(),
                    path: merkle::inclusion_proof(&leaves, i as u64).unwrap(),
                }
                .encode()
            })
            .collect();
        files.insert(bundle::LOG_PROOFS.to_string(), proofs);
        if v2 {
            // One proof per receipt size and (version 3) per stamped head's size.
            let stamped = self.entries.iter().filter_map(|e| {
                let head = Signed::<TreeHead>::parse(e.tree_head.as_deref()?).ok()?;
                Some(head.value().tree_size)
            });
            let sizes: std::collections::BTreeSet<u64> = self
                .receipts
                .iter()
                .map(|r| r.value().tree_size)
                .chain(stamped)
                .filter(|&s| s < size)
                .collect();
            let proofs: Vec<u8> = sizes
                .into_iter()
                .flat_map(|s| {
                    ConsistencyProof {
                        tree_size: s,
                        path: merkle::consistency_proof(&leaves, s, size).unwrap(),
                    }
                    .encode()
                })
                .collect();
            files.insert(bundle::RECEIPT_PROOFS.to_string(), proofs);
        }
        let mut b = Bundle { files };
        b.remanifest();
        b
    }
}

impl Bundle {
    /// Rewrites the manifest to match the files (what a careful forger would do).
    pub fn remanifest(&mut self) {
        self.files.remove(bundle::MANIFEST);
        let m = Manifest::new(
            self.files
                .iter()
                .map(|(p, b)| ManifestEntry { path: p.clone(), sha256: sha256(&[b]) })
                .collect(),
        );
        self.files.insert(bundle::MANIFEST.to_string(), m.to_text().into_bytes());
    }

    pub fn write(&self, dir: &Path) {
        for (p, b) in &self.files {
            let path = dir.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b).unwrap();
        }
    }

    /// Writes it as a ustar archive under `custody-bundle-<name>/`.
    pub fn write_tar(&self, path: &Path, name: &str) {
        let mut out = Vec::new();
        for (p, b) in &self.files {
            let full = format!("custody-bundle-{name}/{p}");
            let mut h = [0u8; 512];
            h[..full.len()].copy_from_slice(full.as_bytes());
            h[100..108].copy_from_slice(b"0000644\0");
            h[108..116].copy_from_slice(b"0000000\0");
            h[116..124].copy_from_slice(b"0000000\0");
            h[124..136].copy_from_slice(format!("{:011o}\0", b.len()).as_bytes());
            h[136..148].copy_from_slice(b"00000000000\0");
            h[148..156].copy_from_slice(b"        ");
            h[156] = b'0';
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
            let sum: u32 = h.iter().map(|&x| u32::from(x)).sum();
            h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            out.extend_from_slice(&h);
            out.extend_from_slice(b);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.extend_from_slice(&[0u8; 1024]);
        std::fs::write(path, out).unwrap();
    }
}

/// What a careful forger without any key can do to a bundle: take things out of it and
/// make everything else consistent again (records, receipts, log proofs, receipt proofs,
/// segments, the manifest).
impl Bundle {
    pub fn records(&self) -> Vec<SignedRecord> {
        SignedRecord::parse_all(&self.files[bundle::RECORDS]).unwrap()
    }

    pub fn receipts(&self) -> Vec<Signed<Receipt>> {
        Signed::<Receipt>::parse_all(&self.files[bundle::RECEIPTS]).unwrap()
    }

    pub fn log_proofs(&self) -> Vec<LogProof> {
        LogProof::parse_all(&self.files[bundle::LOG_PROOFS]).unwrap()
    }

    pub fn receipt_proofs(&self) -> Vec<ConsistencyProof> {
        let mut out = Vec::new();
        let mut rest: &[u8] = &self.files[bundle::RECEIPT_PROOFS];
        while !rest.is_empty() {
            let (p, tail) = ConsistencyProof::read(rest).unwrap();
            out.push(p);
            rest = tail;
        }
        out
    }

    pub fn set_records(&mut self, r: &[SignedRecord]) {
        self.files.insert(bundle::RECORDS.into(), testkit::concat(r));
    }

    pub fn set_receipts(&mut self, r: &[Signed<Receipt>]) {
        self.files.insert(bundle::RECEIPTS.into(), r.iter().flat_map(|x| x.to_bytes()).collect());
    }

    pub fn set_log_proofs(&mut self, p: &[LogProof]) {
        self.files.insert(bundle::LOG_PROOFS.into(), p.iter().flat_map(LogProof::encode).collect());
    }

    pub fn set_receipt_proofs(&mut self, p: &[ConsistencyProof]) {
        self.files.insert(
            bundle::RECEIPT_PROOFS.into(),
            p.iter().flat_map(ConsistencyProof::encode).collect(),
        );
    }

    /// Removes the records at `seqs` with everything that names them: their receipts, their
    /// log entries, their receipts' consistency proofs and their segments.
    pub fn drop_records(&mut self, seqs: &[u64]) {
        let gone = |s: u64| seqs.contains(&s);
        let records: Vec<_> =
            self.records().into_iter().filter(|r| !gone(r.record().seq())).collect();
        self.set_records(&records);
        let (kept, dropped): (Vec<_>, Vec<_>) =
            self.receipts().into_iter().partition(|r| !gone(r.value().seq));
        self.set_receipts(&kept);
        let indices: Vec<u64> = dropped.iter().map(|r| r.value().log_index).collect();
        let sizes: Vec<u64> = dropped.iter().map(|r| r.value().tree_size).collect();
        let proofs: Vec<_> =
            self.log_proofs().into_iter().filter(|p| !indices.contains(&p.log_index)).collect();
        self.set_log_proofs(&proofs);
        if self.files.contains_key(bundle::RECEIPT_PROOFS) {
            let rp: Vec<_> = self
                .receipt_proofs()
                .into_iter()
                .filter(|p| !sizes.contains(&p.tree_size))
                .collect();
            self.set_receipt_proofs(&rp);
        }
        for s in seqs {
            self.files.remove(&bundle::segment_path(*s));
        }
        self.remanifest();
    }

    /// Removes the log proofs whose entry `pick` chooses.
    pub fn drop_entries(&mut self, pick: impl Fn(&LogEntry) -> bool) {
        let proofs: Vec<_> = self
            .log_proofs()
            .into_iter()
            .filter(|p| !pick(&LogEntry::decode(&p.entry).unwrap()))
            .collect();
        self.set_log_proofs(&proofs);
        self.remanifest();
    }

    /// Rewrites the marker to `custody-bundle 1` and removes what version 1 did not have.
    pub fn downgrade(&mut self) {
        self.files.insert(bundle::MARKER.into(), b"custody-bundle 1\n".to_vec());
        self.files.remove(bundle::RECEIPT_PROOFS);
        self.remanifest();
    }
}
