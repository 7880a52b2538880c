//! A bundle's recording read back through FFmpeg, for the lawyer's commands: its segments
//! decrypted in memory one at a time (on a thread of their own, so decryption overlaps
//! with demuxing), thumbnails for the report, and matching against an original file.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use custody_capture::{Media, Pieces, SegmentMatch, SegmentSpan};
use custody_format::bundle;
use custody_format::record::{
    Container, CutReason, Record, RecordingHeader, SegmentRecord, SignedRecord,
};
use custody_format::report::{code, Check};
use custody_verifier::html::Section;

use crate::common::CliError;

/// Thumbnail width, pixels.
const THUMB_WIDTH: u32 = 160;

/// The legal team's identities from an age identity file.
pub fn identities(path: &Path) -> Result<Vec<age::x25519::Identity>, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::cannot(format!("{}: {e}", path.display())))?;
    let ids = custody_vault::keys::parse_identities(&text);
    if ids.is_empty() {
        return Err(CliError::cannot(format!(
            "{} holds no age identity (AGE-SECRET-KEY-1…)",
            path.display()
        )));
    }
    Ok(ids)
}

/// The bundle's segment records, in chain order (the verifier has checked them already;
/// unreadable records simply end the list).
pub fn segment_records(bundle_path: &Path) -> Result<Vec<SegmentRecord>, CliError> {
    let source =
        custody_verifier::source::open(bundle_path).map_err(|e| CliError::cannot(e.to_string()))?;
    let bytes = source
        .read_small(bundle::RECORDS, 64 << 20)
        .map_err(|e| CliError::cannot(format!("{}: {e}", bundle::RECORDS)))?;
    let records = SignedRecord::parse_all(&bytes).unwrap_or_default();
    let mut segments: Vec<SegmentRecord> = records
        .iter()
        .filter_map(|r| match r.record() {
            Record::Segment(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    segments.sort_by_key(|s| s.seq);
    Ok(segments)
}

/// The bundle's recording header, if its records can be read.
pub fn header(bundle_path: &Path) -> Result<Option<RecordingHeader>, CliError> {
    let source =
        custody_verifier::source::open(bundle_path).map_err(|e| CliError::cannot(e.to_string()))?;
    let bytes = source
        .read_small(bundle::RECORDS, 64 << 20)
        .map_err(|e| CliError::cannot(format!("{}: {e}", bundle::RECORDS)))?;
    let records = SignedRecord::parse_all(&bytes).unwrap_or_default();
    Ok(records.iter().find_map(|r| match r.record() {
        Record::Header(h) => Some(h.clone()),
        _ => None,
    }))
}

/// The plaintext of each of `segments`, decrypted in memory on a thread, one at a time,
/// with its record's `media_start_us`: what [`custody_capture::remux_browser`] joins.
pub fn timed_plaintext(
    bundle_path: &Path,
    ids: &[age::x25519::Identity],
    segments: &[SegmentRecord],
) -> impl Iterator<Item = io::Result<custody_capture::TimedSegment>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<custody_capture::TimedSegment>>(2);
    let bundle_path = bundle_path.to_path_buf();
    let ids = ids.to_vec();
    let wanted: Vec<(u64, i64)> = segments.iter().map(|s| (s.seq, s.media_start_us)).collect();
    std::thread::spawn(move || {
        let source = match custody_verifier::source::open(&bundle_path) {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(Err(io::Error::other(e.to_string())));
                return;
            }
        };
        for (seq, media_start_us) in wanted {
            let piece = source
                .read_small(&bundle::segment_path(seq), 1 << 30)
                .and_then(|ct| custody_vault::seal::open(&ct, &ids))
                .map(|plaintext| custody_capture::TimedSegment { plaintext, media_start_us })
                .map_err(|e| io::Error::other(format!("segment {seq}: {e}")));
            let failed = piece.is_err();
            if tx.send(piece).is_err() || failed {
                return;
            }
        }
    });
    rx.into_iter()
}

/// The recording's plaintext, segment after segment, decrypted in memory on a thread.
pub fn plaintext(bundle_path: &Path, ids: &[age::x25519::Identity], seqs: Vec<u64>) -> Media {
    let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(2);
    let bundle_path = bundle_path.to_path_buf();
    let ids = ids.to_vec();
    std::thread::spawn(move || {
        let source = match custody_verifier::source::open(&bundle_path) {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(Err(io::Error::other(e.to_string())));
                return;
            }
        };
        for seq in seqs {
            let piece = source
                .read_small(&bundle::segment_path(seq), 1 << 30)
                .and_then(|ct| custody_vault::seal::open(&ct, &ids))
                .map_err(|e| io::Error::other(format!("segment {seq}: {e}")));
            let failed = piece.is_err();
            if tx.send(piece).is_err() || failed {
                return;
            }
        }
    });
    Media::Pieces(Pieces::new(rx.into_iter()))
}

/// What a segment's plaintext holds, recomputed by demuxing it alone with FFmpeg
/// (docs/format.md 6.3, 6.4): the facts `custody verify --identity` compares with each
/// record. `init` is a fragmented MP4 recording's initialisation segment
/// ([`mp4_init_segment`]); a fragment read without one is not checked (`None`).
pub fn segment_facts(
    container: Container,
    init: Option<&[u8]>,
    plaintext: &[u8],
) -> Option<Result<custody_verifier::MediaFacts, String>> {
    let fragment = plaintext.get(4..8) == Some(&b"moof"[..]);
    if container == Container::FragmentedMp4 && init.is_none() && fragment {
        return None;
    }
    Some(
        custody_capture::segment_media(container, init, plaintext)
            .map(|b| custody_verifier::MediaFacts {
                stream_packets: b.packet_counts,
                video_frames: b.video_frames,
                packet_digest: b.packet_digest.0,
                picture: (container == Container::Photo)
                    .then(|| b.streams.first().map(|s| (s.width, s.height)))
                    .flatten(),
            })
            .map_err(|e| e.to_string()),
    )
}

/// A fragmented MP4 recording's initialisation segment (`ftyp`, `moov`), which its later
/// segments need to be demuxed: the bytes of segment 1 before its first fragment, taken
/// only if that segment decrypts to the plaintext its record states. `None` for any other
/// container, or when segment 1 is missing, does not decrypt or differs from its record
/// (the verifier reports that segment itself).
pub fn mp4_init_segment(bundle_path: &Path, ids: &[age::x25519::Identity]) -> Option<Vec<u8>> {
    if header(bundle_path).ok()??.container != Container::FragmentedMp4 {
        return None;
    }
    let first = segment_records(bundle_path).ok()?.into_iter().find(|s| s.seq == 1)?;
    let source = custody_verifier::source::open(bundle_path).ok()?;
    let ct = source.read_small(&bundle::segment_path(1), 1 << 30).ok()?;
    let plain = custody_vault::seal::open(&ct, ids).ok()?;
    if custody_format::primitives::sha256(&[&plain]) != first.plaintext_sha256 {
        return None;
    }
    custody_capture::mp4_init(&plain).map(<[u8]>::to_vec)
}

/// Where each segment starts, as [`custody_capture::digest_file`] cuts another copy.
pub fn boundaries(segments: &[SegmentRecord]) -> Vec<custody_capture::Boundary> {
    let mut prev_forced = false;
    segments
        .iter()
        .map(|s| {
            let b =
                custody_capture::Boundary { start_us: s.media_start_us, at_keyframe: !prev_forced };
            prev_forced = s.cut == CutReason::ForcedCap;
            b
        })
        .collect()
}

/// A JPEG of each segment's first frame.
pub fn thumbnails(
    bundle_path: &Path,
    ids: &[age::x25519::Identity],
    segments: &[SegmentRecord],
) -> Result<BTreeMap<u64, Vec<u8>>, CliError> {
    if is_browser(bundle_path)? {
        // Each segment is a file of its own: its first keyframe, read from it alone.
        let mut out = BTreeMap::new();
        for s in segments {
            let media = plaintext(bundle_path, ids, vec![s.seq]);
            let thumb = custody_capture::thumbnails(media, &[0], THUMB_WIDTH)
                .map_err(|e| CliError::cannot(format!("thumbnails: segment {}: {e}", s.seq)))?;
            if let Some(Some(t)) = thumb.into_iter().next() {
                out.insert(s.seq, t);
            }
        }
        return Ok(out);
    }
    let media = plaintext(bundle_path, ids, segments.iter().map(|s| s.seq).collect());
    let starts: Vec<i64> = segments.iter().map(|s| s.media_start_us).collect();
    let thumbs = custody_capture::thumbnails(media, &starts, THUMB_WIDTH)
        .map_err(|e| CliError::cannot(format!("thumbnails: {e}")))?;
    Ok(segments.iter().zip(thumbs).filter_map(|(s, t)| t.map(|t| (s.seq, t))).collect())
}

/// Whether the bundle's segments are a browser's (WebM, self-contained MP4, photo): each
/// a complete file, so they are read one by one rather than as one concatenated stream.
fn is_browser(bundle_path: &Path) -> Result<bool, CliError> {
    Ok(header(bundle_path)?.is_some_and(|h| {
        matches!(h.container, Container::Webm | Container::SelfContainedMp4 | Container::Photo)
    }))
}

/// The sealed recording's packets, hashed one by one, on the recording's timeline. A
/// browser's segments are read one at a time, each moved to its record's media time.
fn recording_hashes(
    bundle_path: &Path,
    ids: &[age::x25519::Identity],
    segments: &[SegmentRecord],
) -> Result<Vec<custody_capture::PacketHash>, CliError> {
    let read = |seqs: Vec<u64>| {
        custody_capture::packet_hashes(plaintext(bundle_path, ids, seqs))
            .map_err(|e| CliError::cannot(format!("reading the sealed recording: {e}")))
    };
    let container = header(bundle_path)?.map(|h| h.container);
    let Some(container @ (Container::Webm | Container::SelfContainedMp4)) = container else {
        return read(segments.iter().map(|s| s.seq).collect());
    };
    let mut out = Vec::new();
    for (piece, s) in timed_plaintext(bundle_path, ids, segments).zip(segments) {
        let piece =
            piece.map_err(|e| CliError::cannot(format!("reading the sealed recording: {e}")))?;
        let hashes = custody_capture::browser_packet_hashes(
            container,
            &piece.plaintext,
            piece.media_start_us,
        )
        .map_err(|e| CliError::cannot(format!("reading the sealed recording: {e}")))?;
        // Each packet is compared as part of the segment it was read from.
        out.extend(
            hashes.into_iter().map(|h| custody_capture::PacketHash { segment: Some(s.seq), ..h }),
        );
    }
    Ok(out)
}

fn seconds(us: i64) -> String {
    format!("{:.3}", us as f64 / 1e6)
}

/// Matches `original` against the sealed recording: a report section and its JSON.
pub fn match_original(
    bundle_path: &Path,
    ids: &[age::x25519::Identity],
    segments: &[SegmentRecord],
    original: &Path,
) -> Result<(Section, serde_json::Value), CliError> {
    let recording = recording_hashes(bundle_path, ids, segments)?;
    let theirs =
        custody_capture::packet_hashes(Media::File(original.to_path_buf())).map_err(|e| {
            CliError::cannot(format!("{}: {e}", original.display()))
                .hint("give a video file FFmpeg can read (mp4, mov, mkv, ts, …)")
        })?;
    let spans: Vec<SegmentSpan> = segments
        .iter()
        .map(|s| SegmentSpan { seq: s.seq, start_us: s.media_start_us, end_us: s.media_end_us })
        .collect();
    let c = custody_capture::compare(&recording, &spans, &theirs);
    let mut checks = Vec::new();
    for s in &c.segments {
        let (code, what) = match s.outcome {
            SegmentMatch::Match => (code::ORIGINAL_SEGMENT_MATCH, "is in the original, unchanged".to_string()),
            SegmentMatch::Partial => (
                code::ORIGINAL_SEGMENT_PARTIAL,
                format!("is partly in the original: {} of its {} packets match, the rest lie outside the original", s.matched, s.packets),
            ),
            SegmentMatch::Differs => (
                code::ORIGINAL_SEGMENT_DIFFERS,
                format!("differs: the original covers its time, but only {} of its {} packets are in it", s.matched, s.packets),
            ),
            SegmentMatch::Absent => (code::ORIGINAL_SEGMENT_ABSENT, "is not in the original (outside its time range)".to_string()),
        };
        checks.push(Check::new(code, format!("segment {} {what}", s.seq)).at(s.seq));
    }
    for (a, b) in &c.only_in_original {
        checks.push(Check::new(
            code::ORIGINAL_RANGE_ONLY_ORIGINAL,
            format!("the original has media from {} s to {} s (recording time) that the recording does not", seconds(*a), seconds(*b)),
        ));
    }
    let count = |m: SegmentMatch| c.segments.iter().filter(|s| s.outcome == m).count();
    let only_rec: Vec<String> = c
        .only_in_recording
        .iter()
        .map(|(a, b)| format!("{}–{} s", seconds(*a), seconds(*b)))
        .collect();
    let summary = format!(
        "{}: {} of {} segments match packet for packet, {} partly, {} differ, {} are not in it. {} of the recording's {} packets are in the original; {} of the original's {} packets are in the recording.{}",
        original.file_name().map_or_else(|| original.display().to_string(), |n| n.to_string_lossy().into_owned()),
        count(SegmentMatch::Match),
        c.segments.len(),
        count(SegmentMatch::Partial),
        count(SegmentMatch::Differs),
        count(SegmentMatch::Absent),
        c.recording_packets.1,
        c.recording_packets.0,
        c.original_packets.1,
        c.original_packets.0,
        if only_rec.is_empty() { String::new() } else { format!(" Only in the recording: {}.", only_rec.join(", ")) },
    );
    let json = serde_json::json!({
        "file": original.display().to_string(),
        "summary": summary,
        "comparison": c,
        "checks": checks,
    });
    Ok((Section { title: "Original file from the device".into(), summary, checks }, json))
}
