//! Verifying a bundle: every check of `docs/format.md`, reported with its code.

use std::collections::BTreeMap;
use std::io::Read;

use custody_format::bundle::{self, ConsistencyProof, Manifest};
use custody_format::cert::DeviceCertificate;
use custody_format::chain::{verify_chain, ChainReport};
use custody_format::ids::{Fingerprint, PublicKey};
use custody_format::log::{EntryType, LogEntry, TreeHead};
use custody_format::receipt::Receipt;
use custody_format::record::{Container, Hash, Record, SignedRecord};
use custody_format::report::{code, Check, CheckState, Verdict};
use custody_format::signed::Signed;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::facts::{self, About, RecordingFacts, Zone};
use crate::parts::{self, Version};
use crate::rules;
use crate::source::Source;

/// Why verification could not run at all. Everything else is a check in the report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The source holds none of `BUNDLE`, `MANIFEST.sha256` and `recording/records.bin`:
    /// nothing of a bundle. (A bundle whose marker is missing or wrong is checked and
    /// reported like any other, `docs/format.md` 11.1.)
    #[error(
        "this is not a custody bundle (it holds no `BUNDLE`, `MANIFEST.sha256` or `recording/records.bin`)"
    )]
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
    /// The earliest verified time-stamp token's genTime by which it existed (its receipt's
    /// log entry is under the stamped head), µs; independent of device and server.
    pub existed_by_us: Option<i64>,
    /// The time-stamp authority that says so.
    pub existed_by_tsa: Option<String>,
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
    /// What the recording is and when it was made (from its signed header), if the header
    /// could be read.
    pub recording: Option<RecordingFacts>,
    /// The chain positions a failed check names: the segments and records to mark.
    pub failed_positions: Vec<u64>,
    /// What each verified RFC 3161 time-stamp token in the custody log proves, in log order.
    pub time_stamps: Vec<crate::tsa::Stamp>,
    /// Independent time in words: which segments existed by when, according to which
    /// time-stamp authority, or that no independent time was obtained.
    pub independent_time: String,
    /// When, by what and over which bundle this report was made.
    pub about: About,
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

    /// What a segment's hash-checked plaintext holds, recomputed by demuxing it alone
    /// (`docs/format.md` 6.3 and 6.4): the verifier decodes no media itself, so the caller
    /// (the CLI, through `custody-capture`) provides this too. Asked for every container;
    /// `None` when this opener cannot demux it (for a browser's containers 3, 4 and 5 the
    /// check is then reported as not checked; for MPEG-TS and fragmented MP4 it is left
    /// out); `Err` when the plaintext is not a file of that container.
    fn media(&self, container: Container, plaintext: &[u8]) -> Option<Result<MediaFacts, String>> {
        let _ = (container, plaintext);
        None
    }

    /// The age recipients of the identities this opener decrypts with, so that a report can
    /// say which case key was given when none of them opens the recording.
    fn recipients(&self) -> Vec<String> {
        Vec::new()
    }
}

/// What a segment's plaintext holds, as its record must state it.
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
    /// A time zone to show times in besides UTC (nothing about place enters the report
    /// otherwise).
    pub zone: Option<&'a dyn Zone>,
    /// TSA trust roots given to the verifier (`custody verify --tsa-trust`), DER
    /// certificates. Without any, the roots the bundle ships (`custody/tsa-roots.pem`) are
    /// used and reported as the legal team's.
    pub tsa_trust: Vec<Vec<u8>>,
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

/// SHA-256 of every file, on all cores (hashing is most of the work of verifying), while
/// this thread does `meanwhile`: on two cores, the checks that need no file's hash (every
/// signature, the log's proofs) then cost next to nothing instead of running after the
/// hashing, alone on one core.
fn hash_all_while<T>(
    source: &dyn Source,
    meanwhile: impl FnOnce() -> T,
) -> (BTreeMap<String, Result<Hash, String>>, T) {
    // Largest first, so that the small files fill in at the end and neither core is left
    // idle while the other hashes a last segment alone.
    let mut paths: Vec<(&String, u64)> = source.files().iter().map(|(p, l)| (p, *l)).collect();
    paths.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let paths: Vec<&String> = paths.into_iter().map(|(p, _)| p).collect();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(BTreeMap::new());
    let other = std::thread::scope(|s| {
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
        meanwhile()
    });
    (results.into_inner().unwrap_or_default(), other)
}

/// Verifies the bundle in `source`.
///
/// Every part is read under the one rule of `docs/format.md` 11.2 (absent: not checked;
/// present but unreadable: a failure; checking goes on), so what comes back is always a
/// report, unless the source holds nothing of a bundle at all.
pub fn verify(source: &dyn Source, options: &Options<'_>) -> Result<Report, VerifyError> {
    if ![bundle::MARKER, bundle::MANIFEST, bundle::RECORDS]
        .iter()
        .any(|p| source.files().contains_key(*p))
    {
        return Err(VerifyError::NotABundle);
    }
    let mut checks = Vec::new();

    // 0. The marker: which version's rules apply.
    let version = parts::marker(source, &mut checks);

    // 1. The manifest, against a hash of every file; nothing outside the layout. While the
    // files are hashed, everything that needs no file's hash (steps 2-4, 6 and 7) is checked
    // on this thread; its findings are reported in their own places below.
    let (hashes, u) = hash_all_while(source, || unhashed(source, options, version));
    let present: Vec<(String, Hash)> =
        hashes.iter().filter_map(|(p, h)| h.as_ref().ok().map(|h| (p.clone(), *h))).collect();
    if let Some(b) = parts::read(source, bundle::MANIFEST, 4 << 20, &mut checks) {
        match Manifest::parse(&b) {
            Ok(m) => checks.extend(m.check(&present)),
            Err(e) => checks.push(Check::new(code::BUNDLE_MANIFEST_INVALID, e.to_string())),
        }
    }
    rules::check_layout(source, version, &mut checks);

    // 2-4. The server key, trust, the device certificate, the chain.
    checks.extend(u.signed_checks);
    let Unhashed { server_key, trust, cert, have_records, chain, head, log, received, .. } = u;
    let records: BTreeMap<u64, &SignedRecord> =
        chain.records.iter().rev().map(|r| (r.record().seq(), r)).collect();
    let header = chain.header.as_ref();
    let device_key = cert.as_ref().map(|c| c.value().device_key).or(header.map(|h| h.device_key));
    let recording_id = header.map(|h| h.recording_id);

    // 5. Sealed segments against their records (and, with an identity, their plaintext;
    // for a browser's segments, the packets demuxed from it).
    // Without records.bin nothing can be compared with the records (11.2).
    if have_records {
        crate::media::check_segments(
            source,
            &hashes,
            &records,
            header,
            options.opener,
            &mut checks,
        );
    }

    // 6-7. The log and the receipts.
    checks.extend(u.log_checks);
    let head = head.as_ref().map(Signed::value);
    // 8. Completeness: the chain and the entries are exactly those the server stated.
    if version == Version::V1 {
        crate::completeness::absent(&mut checks);
    } else if let (Some(h), Some(l), true) = (head, &log, have_records) {
        crate::completeness::check(h, l, &records, recording_id.as_ref(), &mut checks);
    }

    // 9. Revocation; times.
    if let Some(l) = &log {
        crate::custody_log::check_revocation(
            device_key.as_ref(),
            &l.proven,
            &received,
            &mut checks,
        );
    }
    // 10. Independent time: the RFC 3161 tokens among the proven log entries.
    let stamps = match &log {
        Some(l) if l.proven.iter().any(|(_, e, _)| e.entry_type == EntryType::TimeStampToken) => {
            let roots = tsa_roots(source, options, &mut checks);
            let now_us = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
            crate::tsa::check_all(
                &l.proven,
                server_key.as_ref(),
                roots.as_ref(),
                now_us,
                &mut checks,
            )
        }
        _ => Vec::new(),
    };
    let times: BTreeMap<u64, i64> = received.iter().map(|(s, r)| (*s, r.at_us)).collect();
    let bounds: BTreeMap<u64, &crate::tsa::Stamp> = received
        .iter()
        .filter_map(|(s, r)| crate::tsa::bound_for(&stamps, r.log_index).map(|b| (*s, b)))
        .collect();
    let (segments, skew) = crate::timeline::timeline(&records, &times, &bounds, &mut checks);
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

    // An identity that opens none of the segments: one check, naming the recipients.
    if let Some(o) = options.opener {
        let attempted = records
            .values()
            .filter(|r| match r.record() {
                Record::Segment(s) => source.files().contains_key(&bundle::segment_path(s.seq)),
                _ => false,
            })
            .count();
        let recipients = header.map(|h| h.recipients.clone()).unwrap_or_default();
        facts::collapse_decrypt_failures(&mut checks, attempted, &recipients, &o.recipients());
    }
    let verdict = facts::verdict(&checks, chain.cut_off, &trust);
    let ordered: Vec<&SignedRecord> = records.values().copied().collect();
    let label = cert.as_ref().map(|c| c.value().label.clone());
    let recording = header.map(|h| {
        RecordingFacts::of(h, &ordered, &segments, label.as_deref(), &verdict, options.zone)
    });
    let summary = facts::summary(&verdict, &trust, recording.as_ref(), &checks);
    let summary = crate::imported::amend_summary(summary, &checks);
    let manifest = hashes.get(bundle::MANIFEST).and_then(|h| h.as_ref().ok());
    let about = About::new(manifest, options.zone);
    let failed_positions = facts::failed_positions(&checks);
    let had_tokens = log.as_ref().is_some_and(|l| {
        l.proven.iter().any(|(_, e, _)| e.entry_type == EntryType::TimeStampToken)
    });
    let independent_time = facts::independent_time(&segments, &stamps, had_tokens, options.zone);
    Ok(Report {
        verdict,
        summary,
        trust,
        recording_id: recording_id.map(|id| id.to_string()),
        device: cert
            .map(|c| (c.value().device_key.fingerprint().to_string(), c.value().label.clone())),
        container: header.map(|h| h.container),
        photo,
        segments,
        custody_log: log
            .map(|l| l.proven.into_iter().map(|(i, e, _)| (i, e)).collect())
            .unwrap_or_default(),
        tree_head: head.cloned(),
        clock_skew_us: skew,
        checks,
        recording,
        failed_positions,
        time_stamps: stamps,
        independent_time,
        about,
    })
}

/// What verification finds without any file's hash: steps 2-4 (server key, trust, device
/// certificate, chain) and 6-7 (the log, the receipts) of [`verify`], each with its checks
/// in the order made, so that [`verify`] reports them where they belong.
struct Unhashed {
    server_key: Option<PublicKey>,
    trust: Trust,
    cert: Option<Signed<DeviceCertificate>>,
    /// Whether `recording/records.bin` could be read.
    have_records: bool,
    chain: ChainReport,
    head: Option<Signed<TreeHead>>,
    log: Option<crate::custody_log::Carried>,
    received: BTreeMap<u64, crate::receipts::Received>,
    /// The checks of steps 2-4.
    signed_checks: Vec<Check>,
    /// The checks of steps 6-7.
    log_checks: Vec<Check>,
}

/// Steps 2-4 and 6-7 of [`verify`]: see [`Unhashed`].
fn unhashed(source: &dyn Source, options: &Options<'_>, version: Version) -> Unhashed {
    let mut checks = Vec::new();
    // 2. The server key and trust.
    let server_key =
        parts::single(source, bundle::SERVER_KEY, 4096, &mut checks, parts::server_key);
    let trust = trust(server_key.as_ref(), options, &mut checks);

    // 3. The device certificate.
    let cert = parts::single(source, bundle::DEVICE_CERT, 1 << 16, &mut checks, |b| {
        Signed::<DeviceCertificate>::parse(b).map_err(|e| format!("{} ({e})", e.code()))
    });
    let cert_key = cert.as_ref().map(|c| c.value().device_key);
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
    }

    // 4. The chain, signed by the certified device key; the header's and segments' rules.
    let records_bytes = parts::read(source, bundle::RECORDS, parts::SMALL_LIMIT, &mut checks);
    // A header naming another device key than the certificate's is reported by the chain
    // check as `record.device_key.mismatch`.
    let chain = verify_chain(records_bytes.as_deref().unwrap_or_default(), cert_key.as_ref());
    if records_bytes.is_some() {
        checks.extend(chain.checks.iter().cloned());
    }
    let records: BTreeMap<u64, &SignedRecord> =
        chain.records.iter().rev().map(|r| (r.record().seq(), r)).collect();
    let header = chain.header.as_ref();
    // The key the chain is checked against: the certificate's, or the header's own.
    let device_key = cert_key.or(header.map(|h| h.device_key));
    let recording_id = header.map(|h| h.recording_id);
    if let Some(h) = header {
        rules::check_header(h, &mut checks);
    }
    rules::check_cuts(&chain.records, &mut checks);
    let end = chain.records.iter().find_map(|r| match r.record() {
        Record::End(e) => Some(e),
        _ => None,
    });
    checks.extend(crate::imported::check(header, end));
    if let (Some(top), Some(id)) = (source.top_directory(), recording_id) {
        rules::check_tar_name(top, &id, &mut checks);
    }

    let signed_checks = std::mem::take(&mut checks);
    let have_records = records_bytes.is_some();

    // 6. The log: tree head, inclusion proofs, which entries the bundle carries.
    let head = parts::read(source, bundle::TREE_HEAD, 1 << 16, &mut checks).and_then(|b| {
        match Signed::<TreeHead>::parse(&b) {
            Ok(h) => Some(h),
            Err(e) => {
                checks.push(Check::new(
                    code::LOG_TREE_HEAD_INVALID,
                    format!("the log head cannot be read: {} ({e})", e.code()),
                ));
                None
            }
        }
    });
    if let (Some(h), Some(k)) = (&head, &server_key) {
        if h.verify(k) {
            checks.push(Check::new(
                code::LOG_TREE_HEAD_VALID,
                format!("log head of {} entries, signed by the server", h.value().tree_size),
            ));
        } else {
            checks.push(Check::new(
                code::LOG_TREE_HEAD_INVALID,
                "the log head is not signed by the server key",
            ));
        }
    }
    let head_value = head.as_ref().map(Signed::value);
    let log =
        crate::custody_log::check_log(source, head_value, recording_id, device_key, &mut checks);

    // 7. Receipts, against records, log entries and (by consistency proofs) the head.
    let receipts = parts::many(source, bundle::RECEIPTS, &mut checks, Signed::<Receipt>::read);
    let received = match receipts.as_ref().filter(|_| have_records) {
        Some(r) => crate::receipts::check_receipts(
            r,
            &records,
            server_key.as_ref(),
            device_key.as_ref(),
            head_value,
            log.as_ref().map(|l| l.proven.as_slice()),
            &mut checks,
        ),
        None => BTreeMap::new(),
    };
    let receipt_proofs = matches!(version, Version::V2 | Version::V3);
    if let (true, Some(r), Some(h), true) = (receipt_proofs, &receipts, head_value, have_records) {
        if let Some(proofs) =
            parts::many(source, bundle::RECEIPT_PROOFS, &mut checks, ConsistencyProof::read)
        {
            let all: Vec<(&Receipt, bool)> = r
                .iter()
                .map(|x| (x.value(), server_key.as_ref().is_none_or(|k| x.verify(k))))
                .collect();
            // Version 3: each carried token's stamped head is proven a prefix too.
            let stamped = match (&log, version) {
                (Some(l), Version::V3) => crate::receipts::stamped_heads(&l.proven),
                _ => Vec::new(),
            };
            crate::receipts::check_consistency(&all, &stamped, h, &proofs, &mut checks);
        }
    }

    Unhashed {
        server_key,
        trust,
        cert,
        have_records,
        chain,
        head,
        log,
        received,
        signed_checks,
        log_checks: checks,
    }
}

/// The TSA roots to check tokens against: those given (`--tsa-trust`), else the bundle's
/// `custody/tsa-roots.pem`, else none (each token is then reported not checked).
fn tsa_roots(
    source: &dyn Source,
    options: &Options<'_>,
    checks: &mut Vec<Check>,
) -> Option<crate::tsa::Roots> {
    use crate::tsa::{RootOrigin, Roots};
    if !options.tsa_trust.is_empty() {
        return Some(Roots::new(options.tsa_trust.clone(), RootOrigin::Given));
    }
    if !source.files().contains_key(bundle::TSA_ROOTS) {
        return None;
    }
    let bytes = parts::read(source, bundle::TSA_ROOTS, 1 << 20, checks)?;
    match Roots::parse_file(&bytes) {
        Ok(certs) => Some(Roots::new(certs, RootOrigin::Bundle)),
        Err(e) => {
            checks.push(Check::new(
                code::TIME_TSA_NO_ROOTS,
                format!("{} {e}, so no token's signer can be confirmed from it", bundle::TSA_ROOTS),
            ));
            None
        }
    }
}

/// Who signed the bundle, against the trust anchor the verifier was given.
fn trust(server_key: Option<&PublicKey>, options: &Options<'_>, checks: &mut Vec<Check>) -> Trust {
    let anchor = match (&options.trust, &options.trust_fingerprint) {
        (Some(t), _) => Some((Some(t), t.fingerprint())),
        (None, Some(f)) => Some((None, *f)),
        (None, None) => None,
    };
    match (server_key, anchor) {
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
    }
}
