//! Builds evidence bundles as `docs/format.md` lays them out, from deterministic test keys,
//! so every kind of tampering can be applied to a known-good bundle.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use custody_format::bundle::{self, LogProof, Manifest, ManifestEntry};
use custody_format::cert::DeviceCertificate;
use custody_format::chain::{ChainBuilder, SegmentFields};
use custody_format::log::{EntryType, LogEntry, TreeHead};
use custody_format::merkle;
use custody_format::primitives::sha256;
use custody_format::receipt::Receipt;
use custody_format::record::{EndReason, Record, SignedRecord};
use custody_format::signed::Signed;
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
    let dkey = testkit::key(device);
    let (mut b, header) =
        ChainBuilder::start(testkit::header(recording, &dkey), dkey.clone()).unwrap();
    let mut records = vec![header];
    let mut seg_bytes = BTreeMap::new();
    for n in 1..=segments {
        let ct = sealed(recording, n, 3000 + (n as usize * 37) % 500);
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
        let at = captured + 300_000;
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
    }
    Parts { records, receipts, entries, segments: seg_bytes }
}

impl Parts {
    /// The bundle of these parts, signed by `server`, with a fresh manifest.
    pub fn bundle(&self, device: &str, server: &str) -> Bundle {
        self.bundle_for(testkit::public(device), server)
    }

    /// The bundle of these parts for the device key `device`, signed by `server`.
    pub fn bundle_for(&self, device: custody_format::ids::PublicKey, server: &str) -> Bundle {
        let skey = testkit::key(server);
        let mut files = BTreeMap::new();
        files.insert(bundle::MARKER.to_string(), bundle::MARKER_CONTENT.as_bytes().to_vec());
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
        let leaves: Vec<[u8; 32]> =
            self.entries.iter().map(|e| merkle::leaf_hash(&e.encode())).collect();
        let head = Signed::sign(
            TreeHead {
                tree_size: leaves.len() as u64,
                root_hash: merkle::root(&leaves),
                timestamp_us: testkit::T0_US + 3_600_000_000,
            },
            &skey,
        );
        files.insert(bundle::TREE_HEAD.to_string(), head.to_bytes());
        let proofs: Vec<u8> = self
            .entries
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
