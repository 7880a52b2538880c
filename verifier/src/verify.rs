//! Verifying a bundle: every check of `docs/format.md`, reported with its code.

use std::collections::BTreeMap;
use std::io::Read;

use custody_format::bundle::{self, Manifest};
use custody_format::cert::DeviceCertificate;
use custody_format::chain::verify_chain;
use custody_format::ids::{Fingerprint, PublicKey};
use custody_format::log::{LogEntry, TreeHead};
use custody_format::receipt::Receipt;
use custody_format::record::{Container, Hash, Record, SignedRecord};
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
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
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

pub(crate) fn read_part(
    source: &dyn Source,
    path: &str,
    checks: &mut Vec<Check>,
) -> Option<Vec<u8>> {
    match source.read_small(path, SMALL_LIMIT) {
        Ok(b) => Some(b),
        Err(e) => {
            checks.push(Check::new(
                code::BUNDLE_PART_MISSING,
                format!("{path}: {e}"),
            ));
            None
        }
    }
}

/// Verifies the bundle in `source`.
pub fn verify(source: &dyn Source, options: &Options<'_>) -> Result<Report, VerifyError> {
    let marker = source
        .read_small(bundle::MARKER, 64)
        .map_err(|_| VerifyError::NotABundle)?;
    if marker != bundle::MARKER_CONTENT.as_bytes() {
        return Err(VerifyError::NotABundle);
    }
    let mut checks = Vec::new();

    // 1. The manifest, against a hash of every file.
    let hashes = hash_all(source);
    let present: Vec<(String, Hash)> = hashes
        .iter()
        .filter_map(|(p, h)| h.as_ref().ok().map(|h| (p.clone(), *h)))
        .collect();
    match source
        .read_small(bundle::MANIFEST, 4 << 20)
        .ok()
        .map(|b| Manifest::parse(&b))
    {
        Some(Ok(m)) => checks.extend(m.check(&present)),
        Some(Err(e)) => checks.push(Check::new(code::BUNDLE_MANIFEST_INVALID, e.to_string())),
        None => checks.push(Check::new(
            code::BUNDLE_MANIFEST_INVALID,
            "MANIFEST.sha256 is absent",
        )),
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
            Trust::Trusted {
                fingerprint: f.to_string(),
            }
        }
        (Some(k), Some((None, f))) => {
            checks.push(Check::new(
                code::BUNDLE_SERVER_KEY_UNTRUSTED,
                format!(
                    "the bundle's server key {} does not have the trusted fingerprint {f}",
                    k.fingerprint()
                ),
            ));
            Trust::Untrusted {
                fingerprint: k.fingerprint().to_string(),
                trusted: f.to_string(),
            }
        }
        (Some(k), Some((Some(t), _))) if k == t => {
            checks.push(Check::new(
                code::BUNDLE_SERVER_KEY_TRUSTED,
                format!("signed by the trusted server key {}", k.fingerprint()),
            ));
            Trust::Trusted {
                fingerprint: k.fingerprint().to_string(),
            }
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
            Trust::Unconfirmed {
                fingerprint: k.fingerprint().to_string(),
            }
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
        checks.push(Check::new(
            code::BUNDLE_PART_MISSING,
            "the device certificate cannot be read",
        ));
    }

    // 4. The chain, signed by the certified device key.
    let records_bytes = read_part(source, bundle::RECORDS, &mut checks).unwrap_or_default();
    // A header naming another device key than the certificate's is reported by the chain
    // check as `record.device_key.mismatch`.
    let chain = verify_chain(&records_bytes, device_key.as_ref());
    checks.extend(chain.checks.iter().cloned());
    let records: BTreeMap<u64, &SignedRecord> = chain
        .records
        .iter()
        .map(|r| (r.record().seq(), r))
        .collect();

    // 5. Sealed segments against their records (and, with an identity, their plaintext;
    // for a browser's segments, the packets demuxed from it).
    let header = chain.header.as_ref();
    crate::media::check_segments(
        source,
        &hashes,
        &records,
        header,
        options.opener,
        &mut checks,
    );

    // 6. The log: tree head, inclusion proofs.
    let head = read_part(source, bundle::TREE_HEAD, &mut checks)
        .and_then(|b| Signed::<TreeHead>::parse(&b).ok());
    match (&head, &server_key) {
        (Some(h), Some(k)) if h.verify(k) => checks.push(Check::new(
            code::LOG_TREE_HEAD_VALID,
            format!(
                "log head of {} entries, signed by the server",
                h.value().tree_size
            ),
        )),
        _ => checks.push(Check::new(
            code::LOG_TREE_HEAD_INVALID,
            "the log head is unreadable or not signed by the server key",
        )),
    }
    let entries =
        crate::custody_log::check_log(source, head.as_ref().map(Signed::value), &mut checks);

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
    let received = crate::receipts::check_receipts(
        &receipts,
        &records,
        server_key.as_ref(),
        &entries,
        &mut checks,
    );
    crate::custody_log::check_revocation(device_key.as_ref(), &entries, &received, &mut checks);
    let (segments, skew) = crate::timeline::timeline(&records, &received, &mut checks);
    let photo = header
        .filter(|h| h.container == Container::Photo)
        .and_then(|h| {
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
        device: cert.map(|c| {
            (
                c.value().device_key.fingerprint().to_string(),
                c.value().label.clone(),
            )
        }),
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
