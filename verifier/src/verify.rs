//! Verifying a bundle: every check of `docs/format.md`, reported with its code.

use std::collections::BTreeMap;
use std::io::Read;

use custody_format::bundle::{self, LogProof, Manifest};
use custody_format::cert::DeviceCertificate;
use custody_format::chain::verify_chain;
use custody_format::ids::{Fingerprint, PublicKey, RecordingId};
use custody_format::log::{EntryType, LogEntry, TreeHead};
use custody_format::merkle;
use custody_format::receipt::Receipt;
use custody_format::record::{Container, Hash, Record, SegmentRecord, SignedRecord};
use custody_format::report::{code, Check, CheckState, Verdict};
use custody_format::signed::Signed;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::source::Source;

/// The largest `records.bin`, receipts or log-proof file read into memory (64 MiB: about
/// 100 000 segments, more than two days of 2 s segments).
const SMALL_LIMIT: u64 = 64 << 20;

/// Why verification could not run at all. Everything else is a check in the report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// There is no `BUNDLE` marker with the expected content.
    #[error("this is not a custody bundle (no `BUNDLE` file reading \"custody-bundle 1\")")]
    NotABundle,
}

/// Whether the signer of the bundle is confirmed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "trust", rename_all = "kebab-case")]
pub enum Trust {
    /// The bundle's server key is the trusted one.
    Trusted {
        /// Its fingerprint.
        fingerprint: String,
    },
    /// No trusted key was given: consistent with itself, signer unconfirmed.
    Unconfirmed {
        /// The fingerprint to confirm out of band.
        fingerprint: String,
    },
    /// The bundle is signed by another key than the trusted one.
    Untrusted {
        /// The bundle's key's fingerprint.
        fingerprint: String,
        /// The trusted key's fingerprint.
        trusted: String,
    },
    /// The bundle carries no readable server key.
    Unknown,
}

/// One segment on the timeline.
#[derive(Clone, Debug, Serialize)]
pub struct SegmentRow {
    /// Chain position.
    pub seq: u64,
    /// Device time of its first packet, µs since the epoch.
    pub wall_first_us: i64,
    /// Device time of its last packet.
    pub wall_last_us: i64,
    /// Media time range, µs.
    pub media_start_us: i64,
    /// End of its media time.
    pub media_end_us: i64,
    /// Sealed length.
    pub ciphertext_len: u64,
    /// Server time of its receipt, if it has one.
    pub received_at_us: Option<i64>,
    /// `received_at_us - wall_last_us`: how long after capture the server had it.
    pub upload_lag_us: Option<i64>,
}

/// A recording that is one still photo (container 5), as the report shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Photo {
    /// Picture width in pixels, from the header (checked against the JPEG itself when the
    /// segment was decrypted).
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// Device clock when the photo was taken, µs since the epoch (untrusted).
    pub taken_at_us: i64,
    /// Server time of its receipt, if it has one.
    pub received_at_us: Option<i64>,
}

/// Everything verification found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The verdict in a sentence, trust included.
    pub summary: String,
    /// Whether the signer is confirmed.
    pub trust: Trust,
    /// The recording, if the header could be read.
    pub recording_id: Option<String>,
    /// The device key's fingerprint and label, from its certificate.
    pub device: Option<(String, String)>,
    /// The segments' container, if the header could be read.
    pub container: Option<Container>,
    /// For a photo (container 5): the picture and when it was taken and received.
    pub photo: Option<Photo>,
    /// The segments, in chain order.
    pub segments: Vec<SegmentRow>,
    /// The custody log entries the bundle carries, with their indices.
    pub custody_log: Vec<(u64, LogEntry)>,
    /// The signed tree head every proof is against.
    pub tree_head: Option<TreeHead>,
    /// Estimated device-clock lead over the server clock, µs (positive: device ahead).
    pub clock_skew_us: Option<i64>,
    /// Every check.
    pub checks: Vec<Check>,
}

impl Report {
    /// The number of checks in a state.
    pub fn count(&self, state: CheckState) -> usize {
        self.checks.iter().filter(|c| c.state == state).count()
    }
}

/// Decrypts sealed segments, for verification with the legal team's identity. The
/// verifier itself holds no decryption code: the caller (the CLI) provides it.
pub trait Opener: Sync {
    /// The plaintext of a sealed segment.
    fn open(&self, ciphertext: &[u8]) -> Result<Vec<u8>, String>;

    /// What a browser segment's hash-checked plaintext holds (containers 3, 4 and 5,
    /// `docs/format.md` 6.4), recomputed by demuxing it alone: the verifier decodes no
    /// media itself, so the caller (the CLI, through `custody-capture`) provides this too.
    /// `None` when this opener cannot demux (the check is then reported as not checked);
    /// `Err` when the plaintext is not a file of that container.
    fn media(&self, container: Container, plaintext: &[u8]) -> Option<Result<MediaFacts, String>> {
        let _ = (container, plaintext);
        None
    }
}

/// What a browser segment's plaintext holds, as its record must state it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaFacts {
    /// Packets per stream, in the file's track order.
    pub stream_packets: Vec<u64>,
    /// Packets of the video streams.
    pub video_frames: u64,
    /// The packet digest of all its packets (`docs/format.md` 6.2).
    pub packet_digest: Hash,
    /// For a photo, the JPEG's own width and height.
    pub picture: Option<(u32, u32)>,
}

/// Whether the segments of `container` are a browser's, checked by [`Opener::media`].
fn browser_container(container: Container) -> bool {
    matches!(container, Container::Webm | Container::SelfContainedMp4 | Container::Photo)
}

/// What decrypting one segment found: the plaintext's length and hash, and for a browser
/// segment whose hash matched, what demuxing it found.
type Opened = Result<(u64, Hash, Option<Result<MediaFacts, String>>), String>;

/// What to verify against.
#[derive(Default)]
pub struct Options<'a> {
    /// The server key the verifier trusts.
    pub trust: Option<PublicKey>,
    /// The trusted server key's fingerprint, when that is all the verifier was given (read
    /// out over the phone, say): a bundle whose server key has this fingerprint is trusted.
    /// Ignored when `trust` is given.
    pub trust_fingerprint: Option<Fingerprint>,
    /// If given, every segment is decrypted and its plaintext checked.
    pub opener: Option<&'a dyn Opener>,
}

/// Bytes read at a time while hashing: small enough that what a read copies is still in
/// the core's cache when SHA-256 reads it (1 MiB reads took five times the system time).
const HASH_CHUNK: usize = 64 << 10;

fn hash_file(source: &dyn Source, path: &str, buf: &mut [u8]) -> std::io::Result<Hash> {
    let mut r = source.open(path)?;
    let mut h = Sha256::new();
    loop {
        let n = r.read(buf)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

/// SHA-256 of every file, on all cores (hashing is most of the work of verifying).
fn hash_all(source: &dyn Source) -> BTreeMap<String, Result<Hash, String>> {
    let paths: Vec<&String> = source.files().keys().collect();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut buf = vec![0u8; HASH_CHUNK];
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(path) = paths.get(i) else { break };
                    let h = hash_file(source, path, &mut buf).map_err(|e| e.to_string());
                    if let Ok(mut m) = results.lock() {
                        m.insert((*path).clone(), h);
                    }
                }
            });
        }
    });
    results.into_inner().unwrap_or_default()
}

fn read_part(source: &dyn Source, path: &str, checks: &mut Vec<Check>) -> Option<Vec<u8>> {
    match source.read_small(path, SMALL_LIMIT) {
        Ok(b) => Some(b),
        Err(e) => {
            checks.push(Check::new(code::BUNDLE_PART_MISSING, format!("{path}: {e}")));
            None
        }
    }
}

/// Verifies the bundle in `source`.
pub fn verify(source: &dyn Source, options: &Options<'_>) -> Result<Report, VerifyError> {
    let marker = source.read_small(bundle::MARKER, 64).map_err(|_| VerifyError::NotABundle)?;
    if marker != bundle::MARKER_CONTENT.as_bytes() {
        return Err(VerifyError::NotABundle);
    }
    let mut checks = Vec::new();

    // 1. The manifest, against a hash of every file.
    let hashes = hash_all(source);
    let present: Vec<(String, Hash)> =
        hashes.iter().filter_map(|(p, h)| h.as_ref().ok().map(|h| (p.clone(), *h))).collect();
    match source.read_small(bundle::MANIFEST, 4 << 20).ok().map(|b| Manifest::parse(&b)) {
        Some(Ok(m)) => checks.extend(m.check(&present)),
        Some(Err(e)) => checks.push(Check::new(code::BUNDLE_MANIFEST_INVALID, e.to_string())),
        None => checks.push(Check::new(code::BUNDLE_MANIFEST_INVALID, "MANIFEST.sha256 is absent")),
    }

    // 2. The server key and trust.
    let server_key = read_part(source, bundle::SERVER_KEY, &mut checks)
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|t| PublicKey::parse(&t).ok());
    let anchor = match (&options.trust, &options.trust_fingerprint) {
        (Some(t), _) => Some((Some(t), t.fingerprint())),
        (None, Some(f)) => Some((None, *f)),
        (None, None) => None,
    };
    let trust = match (&server_key, anchor) {
        (None, _) => Trust::Unknown,
        (Some(k), Some((None, f))) if k.fingerprint() == f => {
            checks.push(Check::new(
                code::BUNDLE_SERVER_KEY_TRUSTED,
                format!("signed by the server key with the trusted fingerprint {f}"),
            ));
            Trust::Trusted { fingerprint: f.to_string() }
        }
        (Some(k), Some((None, f))) => {
            checks.push(Check::new(
                code::BUNDLE_SERVER_KEY_UNTRUSTED,
                format!(
                    "the bundle's server key {} does not have the trusted fingerprint {f}",
                    k.fingerprint()
                ),
            ));
            Trust::Untrusted { fingerprint: k.fingerprint().to_string(), trusted: f.to_string() }
        }
        (Some(k), Some((Some(t), _))) if k == t => {
            checks.push(Check::new(
                code::BUNDLE_SERVER_KEY_TRUSTED,
                format!("signed by the trusted server key {}", k.fingerprint()),
            ));
            Trust::Trusted { fingerprint: k.fingerprint().to_string() }
        }
        (Some(k), Some((Some(t), _))) => {
            checks.push(Check::new(
                code::BUNDLE_SERVER_KEY_UNTRUSTED,
                format!(
                    "the bundle's server key {} is not the trusted key {}",
                    k.fingerprint(),
                    t.fingerprint()
                ),
            ));
            Trust::Untrusted {
                fingerprint: k.fingerprint().to_string(),
                trusted: t.fingerprint().to_string(),
            }
        }
        (Some(k), None) => {
            checks.push(Check::new(
                code::BUNDLE_SERVER_KEY_UNCONFIRMED,
                format!(
                    "no trusted server key was given; the bundle is signed by {} — confirm this fingerprint with the legal team",
                    k.fingerprint()
                ),
            ));
            Trust::Unconfirmed { fingerprint: k.fingerprint().to_string() }
        }
    };
    if server_key.is_none() {
        checks.push(Check::new(
            code::BUNDLE_PART_MISSING,
            "custody/server-key.txt holds no readable key",
        ));
    }

    // 3. The device certificate.
    let cert = read_part(source, bundle::DEVICE_CERT, &mut checks)
        .and_then(|b| Signed::<DeviceCertificate>::parse(&b).ok());
    let device_key = cert.as_ref().map(|c| c.value().device_key);
    if let (Some(c), Some(k)) = (&cert, &server_key) {
        if !c.verify(k) {
            checks.push(Check::new(
                code::CERT_SIGNATURE_INVALID,
                "the device certificate is not signed by the server key",
            ));
        } else if c.value().server_key != *k {
            checks.push(Check::new(
                code::CERT_DEVICE_MISMATCH,
                "the device certificate names another server",
            ));
        } else {
            checks.push(Check::new(
                code::CERT_SIGNATURE_VALID,
                format!(
                    "device {} (\"{}\") enrolled by this server",
                    c.value().device_key.fingerprint(),
                    c.value().label
                ),
            ));
        }
    } else if cert.is_none() {
        checks.push(Check::new(code::BUNDLE_PART_MISSING, "the device certificate cannot be read"));
    }

    // 4. The chain, signed by the certified device key.
    let records_bytes = read_part(source, bundle::RECORDS, &mut checks).unwrap_or_default();
    // A header naming another device key than the certificate's is reported by the chain
    // check as `record.device_key.mismatch`.
    let chain = verify_chain(&records_bytes, device_key.as_ref());
    checks.extend(chain.checks.iter().cloned());
    let records: BTreeMap<u64, &SignedRecord> =
        chain.records.iter().map(|r| (r.record().seq(), r)).collect();

    // 5. Sealed segments against their records (and, with an identity, their plaintext;
    // for a browser's segments, the packets demuxed from it).
    let header = chain.header.as_ref();
    check_segments(source, &hashes, &records, header, options.opener, &mut checks);

    // 6. The log: tree head, inclusion proofs.
    let head = read_part(source, bundle::TREE_HEAD, &mut checks)
        .and_then(|b| Signed::<TreeHead>::parse(&b).ok());
    match (&head, &server_key) {
        (Some(h), Some(k)) if h.verify(k) => checks.push(Check::new(
            code::LOG_TREE_HEAD_VALID,
            format!("log head of {} entries, signed by the server", h.value().tree_size),
        )),
        _ => checks.push(Check::new(
            code::LOG_TREE_HEAD_INVALID,
            "the log head is unreadable or not signed by the server key",
        )),
    }
    let entries = check_log(source, head.as_ref().map(Signed::value), &mut checks);

    // 7. Receipts, against records and log entries; revocation; times.
    let receipts = read_part(source, bundle::RECEIPTS, &mut checks)
        .map(|b| Signed::<Receipt>::parse_all(&b))
        .unwrap_or(Ok(Vec::new()));
    let receipts = match receipts {
        Ok(r) => r,
        Err((i, e)) => {
            checks.push(Check::new(
                code::RECEIPT_SIGNATURE_INVALID,
                format!("receipt {i} cannot be read: {e}"),
            ));
            Vec::new()
        }
    };
    let received = check_receipts(&receipts, &records, server_key.as_ref(), &entries, &mut checks);
    check_revocation(device_key.as_ref(), &entries, &received, &mut checks);
    let (segments, skew) = timeline(&records, &received, &mut checks);
    let photo = header.filter(|h| h.container == Container::Photo).and_then(|h| {
        let first = segments.first()?;
        let stream = h.streams.first()?;
        Some(Photo {
            width: stream.width,
            height: stream.height,
            taken_at_us: first.wall_first_us,
            received_at_us: first.received_at_us,
        })
    });

    let verdict = Verdict::from_checks(&checks, chain.cut_off);
    let summary = summary(&verdict, &trust);
    Ok(Report {
        verdict,
        summary,
        trust,
        recording_id: chain.header.as_ref().map(|h| h.recording_id.to_string()),
        device: cert
            .map(|c| (c.value().device_key.fingerprint().to_string(), c.value().label.clone())),
        container: header.map(|h| h.container),
        photo,
        segments,
        custody_log: entries.into_iter().map(|(i, e, _)| (i, e)).collect(),
        tree_head: head.map(|h| h.value().clone()),
        clock_skew_us: skew,
        checks,
    })
}

fn summary(verdict: &Verdict, trust: &Trust) -> String {
    let who = match trust {
        Trust::Trusted { fingerprint } => format!(" The bundle is signed by the trusted server key {fingerprint}."),
        Trust::Unconfirmed { fingerprint } => format!(
            " It is consistent with itself, but no trusted server key was given: confirm the server key fingerprint {fingerprint} with the legal team before relying on it."
        ),
        Trust::Untrusted { fingerprint, trusted } => {
            format!(" It is signed by server key {fingerprint}, not by the trusted key {trusted}.")
        }
        Trust::Unknown => " The bundle carries no readable server key.".into(),
    };
    format!("{}{who}", verdict.sentence())
}

fn check_segments(
    source: &dyn Source,
    hashes: &BTreeMap<String, Result<Hash, String>>,
    records: &BTreeMap<u64, &SignedRecord>,
    header: Option<&custody_format::record::RecordingHeader>,
    opener: Option<&dyn Opener>,
    checks: &mut Vec<Check>,
) {
    let mut ok = true;
    let mut plain_ok = true;
    let browser = header.map(|h| h.container).filter(|c| browser_container(*c));
    // Browser segments whose packets were recomputed and matched; whether any could not be.
    let (mut media_checked, mut media_ok) = (0usize, true);
    let mut named = std::collections::BTreeSet::new();
    let mut opened = match opener {
        Some(opener) => open_all(source, records, browser, opener),
        None => BTreeMap::new(),
    };
    for r in records.values() {
        let Record::Segment(s) = r.record() else { continue };
        let path = bundle::segment_path(s.seq);
        named.insert(path.clone());
        let len = source.files().get(&path).copied();
        match (len, hashes.get(&path)) {
            (Some(len), Some(Ok(h))) if len == s.ciphertext_len && *h == s.ciphertext_sha256 => {}
            (Some(_), Some(Ok(_))) => {
                ok = false;
                checks.push(
                    Check::new(
                        code::SEGMENT_HASH_MISMATCH,
                        format!("segment {}'s sealed file differs from its record", s.seq),
                    )
                    .at(s.seq),
                );
            }
            _ => {
                ok = false;
                checks.push(
                    Check::new(
                        code::SEGMENT_MISSING,
                        format!("segment {}'s sealed file is absent", s.seq),
                    )
                    .at(s.seq),
                );
            }
        }
        if let (Some(_), Some(_)) = (opener, len) {
            let result = opened
                .remove(&s.seq)
                .unwrap_or_else(|| Err("the segment was not decrypted".into()));
            match result {
                Ok((plain_len, plain_sha, media))
                    if plain_len == s.plaintext_len && plain_sha == s.plaintext_sha256 =>
                {
                    if browser.is_some() {
                        match check_media(s, header, media) {
                            Ok(()) => media_checked += 1,
                            Err(check) => {
                                media_ok = false;
                                checks.push(check.at(s.seq));
                            }
                        }
                    }
                }
                Ok(_) => {
                    plain_ok = false;
                    checks.push(
                        Check::new(
                            code::SEGMENT_PLAINTEXT_MISMATCH,
                            format!(
                                "segment {} decrypts to other bytes than its record states",
                                s.seq
                            ),
                        )
                        .at(s.seq),
                    );
                }
                Err(e) => {
                    plain_ok = false;
                    checks.push(
                        Check::new(code::SEGMENT_DECRYPT_FAILED, format!("segment {}: {e}", s.seq))
                            .at(s.seq),
                    );
                }
            }
        }
    }
    for path in source.files().keys() {
        if path.starts_with(bundle::SEGMENTS_DIR) && !named.contains(path) {
            ok = false;
            checks.push(Check::new(
                code::SEGMENT_UNEXPECTED,
                format!("{path} is named by no record"),
            ));
        }
    }
    if ok && !named.is_empty() {
        checks.push(Check::new(
            code::SEGMENT_HASH_MATCH,
            format!("all {} sealed segments match their records", named.len()),
        ));
    }
    if opener.is_some() && plain_ok && !named.is_empty() {
        checks.push(Check::new(
            code::SEGMENT_PLAINTEXT_MATCH,
            "every segment decrypts to the plaintext its record states",
        ));
    }
    if let (Some(container), true, true) = (browser, media_ok, media_checked > 0) {
        let what = match container {
            Container::Photo => "the photo, read from its decrypted JPEG, is the picture its record states",
            _ => "every segment, demuxed from its decrypted plaintext alone, has the packets per stream, video frames and packet digest its record states",
        };
        checks.push(Check::new(code::SEGMENT_MEDIA_MATCH, what));
    }
}

/// Compares what demuxing a browser segment's plaintext found with its record.
fn check_media(
    s: &SegmentRecord,
    header: Option<&custody_format::record::RecordingHeader>,
    media: Option<Result<MediaFacts, String>>,
) -> Result<(), Check> {
    let facts = match media {
        None => {
            return Err(Check::new(
                code::SEGMENT_MEDIA_NOT_CHECKED,
                format!(
                    "segment {}'s packets could not be recomputed: no demuxer was given",
                    s.seq
                ),
            ))
        }
        Some(Err(e)) => {
            return Err(Check::new(
                code::SEGMENT_MEDIA_MISMATCH,
                format!("segment {}'s plaintext is not what its record says it is: {e}", s.seq),
            ))
        }
        Some(Ok(f)) => f,
    };
    let mut wrong = Vec::new();
    if facts.stream_packets != s.stream_packets {
        wrong.push(format!(
            "{:?} packets per stream, the record {:?}",
            facts.stream_packets, s.stream_packets
        ));
    }
    if facts.video_frames != s.video_frames {
        wrong.push(format!("{} video frames, the record {}", facts.video_frames, s.video_frames));
    }
    if facts.packet_digest != s.packet_digest {
        wrong.push("another packet digest than the record's".into());
    }
    let stated = header.and_then(|h| h.streams.first()).map(|st| (st.width, st.height));
    if let (Some(p), Some(st)) = (facts.picture, stated) {
        if p != st {
            wrong.push(format!("a {}×{} picture, the header {}×{}", p.0, p.1, st.0, st.1));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(Check::new(
            code::SEGMENT_MEDIA_MISMATCH,
            format!("segment {}'s plaintext, demuxed, has {}", s.seq, wrong.join("; ")),
        ))
    }
}

/// Decrypts every sealed segment a record names, on all cores, keeping only each
/// plaintext's length and SHA-256 (a segment's plaintext is dropped as soon as it is hashed,
/// so memory stays at a few segments whatever the recording's length).
fn open_all(
    source: &dyn Source,
    records: &BTreeMap<u64, &SignedRecord>,
    browser: Option<Container>,
    opener: &dyn Opener,
) -> BTreeMap<u64, Opened> {
    let seqs: Vec<u64> = records
        .values()
        .filter_map(|r| match r.record() {
            Record::Segment(s) if source.files().contains_key(&bundle::segment_path(s.seq)) => {
                Some(s.seq)
            }
            _ => None,
        })
        .collect();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&seq) = seqs.get(i) else { break };
                let result = source
                    .read_small(&bundle::segment_path(seq), 1 << 30)
                    .map_err(|e| e.to_string())
                    .and_then(|ct| opener.open(&ct))
                    .map(|p| {
                        let sha = <[u8; 32]>::from(Sha256::digest(&p));
                        // Only a plaintext that is the one the record names is demuxed.
                        let stated = records.get(&seq).and_then(|r| match r.record() {
                            Record::Segment(s) => Some(s.plaintext_sha256),
                            _ => None,
                        });
                        let media = browser
                            .filter(|_| stated == Some(sha))
                            .and_then(|c| opener.media(c, &p));
                        (p.len() as u64, sha, media)
                    });
                if let Ok(mut m) = results.lock() {
                    m.insert(seq, result);
                }
            });
        }
    });
    results.into_inner().unwrap_or_default()
}

/// Log entries with their index and leaf hash, each proven against the head.
fn check_log(
    source: &dyn Source,
    head: Option<&TreeHead>,
    checks: &mut Vec<Check>,
) -> Vec<(u64, LogEntry, Hash)> {
    let Some(bytes) = read_part(source, bundle::LOG_PROOFS, checks) else { return Vec::new() };
    let proofs = match LogProof::parse_all(&bytes) {
        Ok(p) => p,
        Err((i, e)) => {
            checks.push(Check::new(
                code::LOG_INCLUSION_INVALID,
                format!("log proof {i} cannot be read: {e}"),
            ));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    let mut ok = true;
    for p in &proofs {
        let leaf = merkle::leaf_hash(&p.entry);
        let proven = head.is_some_and(|h| {
            merkle::verify_inclusion(&leaf, p.log_index, h.tree_size, &p.path, &h.root_hash).is_ok()
        });
        match (proven, LogEntry::decode(&p.entry)) {
            (true, Ok(e)) => out.push((p.log_index, e, leaf)),
            (_, decoded) => {
                ok = false;
                let what = decoded.err().map(|e| format!(" ({e})")).unwrap_or_default();
                checks.push(Check::new(
                    code::LOG_INCLUSION_INVALID,
                    format!(
                        "log entry {} is not proven included in the signed head{what}",
                        p.log_index
                    ),
                ));
            }
        }
    }
    if ok && !proofs.is_empty() {
        checks.push(Check::new(
            code::LOG_INCLUSION_VALID,
            format!("all {} log entries are included in the signed head", proofs.len()),
        ));
    }
    out
}

/// Checks receipts; returns the receipt time per chain position.
fn check_receipts(
    receipts: &[Signed<Receipt>],
    records: &BTreeMap<u64, &SignedRecord>,
    server_key: Option<&PublicKey>,
    entries: &[(u64, LogEntry, Hash)],
    checks: &mut Vec<Check>,
) -> BTreeMap<u64, i64> {
    let mut received = BTreeMap::new();
    let mut ok = true;
    let recording: Option<RecordingId> = records.values().next().map(|r| r.record().recording_id());
    for r in receipts {
        let v = r.value();
        if !server_key.is_some_and(|k| r.verify(k)) {
            ok = false;
            checks.push(
                Check::new(
                    code::RECEIPT_SIGNATURE_INVALID,
                    format!("the receipt for record {} is not signed by the server key", v.seq),
                )
                .at(v.seq),
            );
            continue;
        }
        let Some(rec) = records.get(&v.seq) else {
            ok = false;
            checks.push(
                Check::new(
                    code::RECEIPT_UNMATCHED,
                    format!("a receipt is for record {}, which the bundle does not hold", v.seq),
                )
                .at(v.seq),
            );
            continue;
        };
        let cipher = match rec.record() {
            Record::Segment(s) => Some(s.ciphertext_sha256),
            _ => None,
        };
        if v.record_hash != rec.hash()
            || v.ciphertext_sha256 != cipher
            || Some(v.recording_id) != recording
        {
            ok = false;
            checks.push(
                Check::new(
                    code::RECEIPT_MISMATCH,
                    format!("the receipt for record {} does not match it", v.seq),
                )
                .at(v.seq),
            );
            continue;
        }
        let expected_type = match rec.record() {
            Record::Header(_) => EntryType::RecordingOpened,
            Record::Segment(_) => EntryType::SegmentReceived,
            Record::End(_) => EntryType::RecordingEnded,
        };
        let logged = entries.iter().any(|(i, e, _)| {
            *i == v.log_index
                && e.entry_type == expected_type
                && e.record_hash == Some(v.record_hash)
                && e.seq == Some(v.seq)
                && e.recording_id == Some(v.recording_id)
                && e.ciphertext_sha256 == v.ciphertext_sha256
        });
        if !logged {
            ok = false;
            checks.push(
                Check::new(
                    code::LOG_ENTRY_MISSING,
                    format!(
                        "record {}'s receipt names log entry {}, which the bundle does not prove",
                        v.seq, v.log_index
                    ),
                )
                .at(v.seq),
            );
            continue;
        }
        received.insert(v.seq, v.received_at_us);
    }
    for seq in records.keys() {
        if !received.contains_key(seq) && !receipts.iter().any(|r| r.value().seq == *seq) {
            ok = false;
            checks.push(
                Check::new(code::RECEIPT_MISSING, format!("record {seq} has no receipt")).at(*seq),
            );
        }
    }
    if ok && !receipts.is_empty() {
        checks.push(Check::new(
            code::RECEIPT_VALID,
            format!("all {} records carry a matching server receipt", receipts.len()),
        ));
    }
    received
}

fn check_revocation(
    device: Option<&PublicKey>,
    entries: &[(u64, LogEntry, Hash)],
    received: &BTreeMap<u64, i64>,
    checks: &mut Vec<Check>,
) {
    let Some(device) = device else { return };
    let revoked = entries
        .iter()
        .filter(|(_, e, _)| {
            e.entry_type == EntryType::DeviceRevoked && e.device_key.as_ref() == Some(device)
        })
        .map(|(_, e, _)| (e.at_us, e.detail.clone().unwrap_or_default()))
        .min_by_key(|(at, _)| *at);
    let Some((at, reason)) = revoked else { return };
    checks.push(Check::new(
        code::DEVICE_REVOKED,
        format!("the device key was revoked at {at} µs (reason: {reason})"),
    ));
    for (seq, t) in received {
        if *t > at {
            checks.push(
                Check::new(
                    code::SEGMENT_AFTER_REVOCATION,
                    format!("record {seq} was received after the revocation"),
                )
                .at(*seq),
            );
        }
    }
}

fn timeline(
    records: &BTreeMap<u64, &SignedRecord>,
    received: &BTreeMap<u64, i64>,
    checks: &mut Vec<Check>,
) -> (Vec<SegmentRow>, Option<i64>) {
    let mut rows = Vec::new();
    let mut min_lag: Option<i64> = None;
    for r in records.values() {
        let Record::Segment(s) = r.record() else { continue };
        let rec_at = received.get(&s.seq).copied();
        let lag = rec_at.map(|t| t - s.wall_last_us);
        if let Some(l) = lag {
            min_lag = Some(min_lag.map_or(l, |m| m.min(l)));
        }
        rows.push(SegmentRow {
            seq: s.seq,
            wall_first_us: s.wall_first_us,
            wall_last_us: s.wall_last_us,
            media_start_us: s.media_start_us,
            media_end_us: s.media_end_us,
            ciphertext_len: s.ciphertext_len,
            received_at_us: rec_at,
            upload_lag_us: lag,
        });
    }
    // Receipts come after capture; the smallest lag bounds how far ahead the device clock
    // can be. A negative smallest lag means the device clock runs ahead by at least that.
    let skew = min_lag.map(|l| (-l).max(0));
    match min_lag {
        Some(l) if l < 0 => checks.push(Check::new(
            code::TIME_CLOCK_SKEW,
            format!("the device clock is ahead of the server's by at least {:.3} s (a receipt precedes the device time of its capture)", -l as f64 / 1e6),
        )),
        Some(l) => checks.push(Check::new(
            code::TIME_RECEIPT_CONSISTENT,
            format!("every segment was receipted after its capture; the shortest upload lag is {:.3} s", l as f64 / 1e6),
        )),
        None => {}
    }
    (rows, skew)
}
