//! The packet digest of any media file, cut where a recording's segments were cut, so that
//! an original file from the phone can be matched against a sealed recording segment by
//! segment, whatever container either is in.
//!
//! The cut rule is the segmenter's own (see `interleave.rs`): a segment holds the video
//! packets from the first keyframe (in decode order) whose presentation time is at or
//! after its start, up to the next segment's opening packet; and the other streams'
//! packets whose presentation time is at or after its start and before the next one's.

use std::sync::Arc;

use custody_format::digest::{DigestStream, Framing, MediaKind, PacketDigest, PacketDigester};
use ffmpeg_next as ff;

use crate::input::{self, InputError, Read, Watchdog};
use crate::lane::{codec_name, extradata};
use crate::segment::Boundary;
use crate::settings::{Settings, Source};

/// Why a file could not be digested.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileDigestError {
    /// The file could not be opened.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The file has no video or audio stream.
    #[error("the file has no video or audio stream")]
    NoMedia,
    /// No boundaries were given.
    #[error("at least one boundary is needed")]
    NoBoundaries,
    /// Reading the file failed part-way.
    #[error("reading the file failed: {0}")]
    Read(ff::Error),
}

/// The digest of one cut of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSegmentDigest {
    /// The packet digest of the packets in the cut.
    pub packet_digest: PacketDigest,
    /// Packets per stream (video first, then audio, as in a recording).
    pub packet_counts: Vec<u64>,
}

struct Track {
    index: usize,
    kind: MediaKind,
    time_base: ff::Rational,
    /// Segment the last video packet went to (video follows decode order).
    current: Option<usize>,
}

/// Digests the best video and best audio streams of `path`, cut at `boundaries` (the
/// [`crate::Segment::boundary`] of each segment of a recording, in order). Packets before
/// the first boundary, and packets presented at or after `end_us` if given, are left out.
pub fn digest_file(
    path: impl AsRef<std::path::Path>,
    boundaries: &[Boundary],
    end_us: Option<i64>,
) -> Result<Vec<FileSegmentDigest>, FileDigestError> {
    if boundaries.is_empty() {
        return Err(FileDigestError::NoBoundaries);
    }
    crate::init();
    let settings = Settings::default();
    let watchdog = Watchdog::new();
    let mut input = input::open(&Source::file(path), &settings, &watchdog)?;
    let mut tracks = Vec::new();
    let mut streams = Vec::new();
    for (ty, kind) in [(ff::media::Type::Video, MediaKind::Video), (ff::media::Type::Audio, MediaKind::Audio)] {
        if let Some(s) = input.streams().best(ty) {
            let par = s.parameters();
            let codec = codec_name(par.id());
            // SAFETY: `par` wraps the stream's parameters, alive while `input` is.
            let framing = Framing::from_extradata(&codec, unsafe { extradata(par.as_ptr()) });
            streams.push(DigestStream { kind, codec, framing });
            tracks.push(Track { index: s.index(), kind, time_base: s.time_base(), current: None });
        }
    }
    if tracks.is_empty() {
        return Err(FileDigestError::NoMedia);
    }
    let mut digesters: Vec<_> = boundaries.iter().map(|_| PacketDigester::new(&streams)).collect();
    let has_video = tracks.iter().any(|t| t.kind == MediaKind::Video);
    let watchdog: Arc<Watchdog> = watchdog;
    loop {
        let packet = match input::read(&mut input, &watchdog, settings.stall_timeout) {
            Read::Packet(p) => p,
            Read::End => break,
            Read::Stopped | Read::Stalled => {
                return Err(FileDigestError::Read(ff::Error::Other { errno: ff::ffi::ETIMEDOUT }))
            }
            Read::Failed(e) => return Err(FileDigestError::Read(e)),
        };
        let Some(t) = tracks.iter().position(|t| t.index == packet.stream()) else { continue };
        let Some(ts) = packet.pts().or(packet.dts()) else { continue };
        let track = &mut tracks[t];
        let pts_us = crate::recorder_time(ts, track.time_base);
        if end_us.is_some_and(|end| pts_us >= end) {
            continue;
        }
        let segment = if track.kind == MediaKind::Video {
            // Advance to the next segment when this packet is the one that opened it.
            let mut next = track.current.map_or(0, |c| c + 1);
            while let Some(b) = boundaries.get(next) {
                let opens = pts_us >= b.start_us && (packet.is_key() || !b.at_keyframe);
                if !opens {
                    break;
                }
                track.current = Some(next);
                next += 1;
            }
            track.current
        } else if has_video && tracks.iter().all(|t| t.kind != MediaKind::Video || t.current.is_none()) {
            // No video keyframe has opened the recording yet.
            None
        } else {
            boundaries.iter().rposition(|b| pts_us >= b.start_us)
        };
        if let (Some(s), Some(data)) = (segment, packet.data()) {
            digesters[s].push(t, packet.is_key(), data);
        }
    }
    Ok(digesters
        .into_iter()
        .map(|d| {
            let packet_counts = d.packet_counts();
            FileSegmentDigest { packet_digest: d.finish(), packet_counts }
        })
        .collect())
}
