//! Sealed segments against their records: present, of the stated length and SHA-256, none
//! extra; with an [`Opener`], each decrypted and its plaintext checked, and a browser's
//! segments demuxed to recompute their packets.

use std::collections::BTreeMap;

use custody_format::bundle;
use custody_format::record::{
    Container, Hash, Record, RecordingHeader, SegmentRecord, SignedRecord,
};
use custody_format::report::{code, Check};
use sha2::{Digest, Sha256};

use crate::source::Source;
use crate::verify::{MediaFacts, Opener};

/// Whether the segments of `container` are a browser's, checked by [`Opener::media`].
fn browser_container(container: Container) -> bool {
    matches!(container, Container::Webm | Container::SelfContainedMp4 | Container::Photo)
}

/// What decrypting one segment found: the plaintext's length and hash, and for a browser
/// segment whose hash matched, what demuxing it found.
type Opened = Result<(u64, Hash, Option<Result<MediaFacts, String>>), String>;

pub(crate) fn check_segments(
    source: &dyn Source,
    hashes: &BTreeMap<String, Result<Hash, String>>,
    records: &BTreeMap<u64, &SignedRecord>,
    header: Option<&RecordingHeader>,
    opener: Option<&dyn Opener>,
    checks: &mut Vec<Check>,
) {
    let mut ok = true;
    let mut plain_ok = true;
    let container = header.map(|h| h.container);
    let browser = container.filter(|c| browser_container(*c));
    // Browser segments whose packets were recomputed and matched; whether any could not be.
    let (mut media_checked, mut media_ok) = (0usize, true);
    let mut named = std::collections::BTreeSet::new();
    let mut opened = match opener {
        Some(opener) => open_all(source, records, container, opener),
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
                    // A browser's segment must be recomputed; another container's is when
                    // the opener can demux it (`custody verify --identity` can).
                    if browser.is_some() || media.is_some() {
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
    if let (Some(container), true, true) = (container, media_ok, media_checked > 0) {
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
    header: Option<&RecordingHeader>,
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
    container: Option<Container>,
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
                        let media = container
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
