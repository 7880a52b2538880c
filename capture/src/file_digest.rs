//! The packet digest of any media file, cut where a recording's segments were cut, so that
//! an original file from the phone can be matched against a sealed recording segment by
//! segment, whatever container either is in.
//!
//! The cut rule is the segmenter's own (see `interleave.rs`): a segment holds the video
//! packets from the first keyframe (in decode order) whose presentation time is at or
//! after its start, up to the next segment's opening packet; and the other streams'
//! packets presented at or after 10 ms before its start and before 10 ms before the next
//! one's (no lead for recordings without video).

use custody_format::digest::{DigestStream, Framing, MediaKind, PacketDigest, PacketDigester};
use ffmpeg_next as ff;

use crate::input::{self, InputError, Read, Watchdog};
use crate::interleave::AUDIO_LEAD_US;
use crate::lane::{codec_name, extradata, recordable_streams};
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
/// [`crate::Segment::boundary`] of each segment of a recording, in order). Times are
/// relative to the presentation time of the packet that opens the file's recording (its
/// first video keyframe; for a file without video, its first audio packet), exactly as in
/// a [`crate::Segment`]. Packets before the first boundary, and packets presented at or
/// after `end_us` (same timeline) if given, are left out.
///
/// A boundary may lie before the packet that opened its segment: a segment record states
/// the earliest presentation time of its packets, and that is earlier than its opening
/// keyframe's when audio within the segmenter's lead, or an open GOP's leading pictures
/// (HEVC as phones write it: presented before the keyframe they follow in decode order),
/// open it. The segmenter's lead for the other streams is measured from the opening video
/// packet itself, so with video the file is read twice: first its video alone, to find
/// where each segment opens (the first keyframe at or after its boundary), then every
/// packet, cut at those openings.
pub fn digest_file(
    path: impl AsRef<std::path::Path>,
    boundaries: &[Boundary],
    end_us: Option<i64>,
) -> Result<Vec<FileSegmentDigest>, FileDigestError> {
    if boundaries.is_empty() {
        return Err(FileDigestError::NoBoundaries);
    }
    let path = path.as_ref();
    let (_, openers) = digest_pass(path, boundaries, end_us, true)?;
    let opened: Vec<Boundary> = boundaries
        .iter()
        .zip(&openers)
        .map(|(b, o)| Boundary { start_us: o.unwrap_or(b.start_us), ..*b })
        .collect();
    Ok(digest_pass(path, &opened, end_us, false)?.0)
}

/// One reading of `path`: the digests of its cuts at `boundaries`, and the time of the
/// video packet that opened each cut (`None` where none did, or without video). With
/// `video_only`, the other streams are discarded unread and the digests say nothing.
fn digest_pass(
    path: &std::path::Path,
    boundaries: &[Boundary],
    end_us: Option<i64>,
    video_only: bool,
) -> Result<(Vec<FileSegmentDigest>, Vec<Option<i64>>), FileDigestError> {
    crate::init();
    let settings = Settings::default();
    let watchdog = Watchdog::new();
    let mut input = input::open(&Source::file(path), &settings, &watchdog)?;
    let mut tracks = Vec::new();
    let mut streams = Vec::new();
    for (index, kind) in recordable_streams(&input) {
        if let Some(s) = input.stream(index) {
            let par = s.parameters();
            let codec = codec_name(par.id());
            // SAFETY: `par` wraps the stream's parameters, alive while `input` is.
            let framing = Framing::from_extradata(&codec, unsafe { extradata(par.as_ptr()) });
            streams.push(DigestStream { kind, codec, framing });
            tracks.push(Track { index, kind, time_base: s.time_base(), current: None });
        }
    }
    if tracks.is_empty() {
        return Err(FileDigestError::NoMedia);
    }
    let has_video = tracks.iter().any(|t| t.kind == MediaKind::Video);
    if video_only {
        if !has_video {
            return Ok((Vec::new(), vec![None; boundaries.len()]));
        }
        tracks.retain(|t| t.kind == MediaKind::Video);
        for index in 0..input.nb_streams() as usize {
            if tracks.iter().any(|t| t.index == index) {
                continue;
            }
            if let Some(mut s) = input.stream_mut(index) {
                // SAFETY: `s` is a live stream of `input`; the demuxer reads `discard`.
                unsafe { (*s.as_mut_ptr()).discard = ff::ffi::AVDiscard::AVDISCARD_ALL };
            }
        }
    }
    let mut cutter = Cutter {
        boundaries,
        end_us,
        digesters: boundaries.iter().map(|_| PacketDigester::new(&streams)).collect(),
        has_video,
        origin_us: None,
        openers: vec![None; boundaries.len()],
        waiting: Vec::new(),
    };
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
        let Some(data) = packet.data() else { continue };
        let pts_us = crate::recorder_time(ts, tracks[t].time_base);
        cutter.packet(&mut tracks[t], t, pts_us, packet.is_key(), data);
    }
    let digests = cutter
        .digesters
        .into_iter()
        .map(|d| {
            let packet_counts = d.packet_counts();
            FileSegmentDigest { packet_digest: d.finish(), packet_counts }
        })
        .collect();
    Ok((digests, cutter.openers))
}

/// Assigns packets to cuts, in the file's read order.
struct Cutter<'a> {
    boundaries: &'a [Boundary],
    end_us: Option<i64>,
    digesters: Vec<PacketDigester>,
    has_video: bool,
    /// Presentation time of the packet that opens the recording (as in the segmenter).
    origin_us: Option<i64>,
    /// Audio read before the opening video keyframe: it may still belong to the recording
    /// (a demuxer can deliver audio ahead of the video it accompanies).
    waiting: Vec<(usize, i64, bool, Vec<u8>)>,
    /// Time of the video packet that opened each cut.
    openers: Vec<Option<i64>>,
}

/// Audio held while waiting for the first video keyframe, at most (a file with video that
/// never has a keyframe has nothing to digest anyway).
const MAX_WAITING: usize = 4096;

impl Cutter<'_> {
    fn packet(&mut self, track: &mut Track, t: usize, pts_us: i64, key: bool, data: &[u8]) {
        let Some(origin) = self.origin_us else {
            let opens = if self.has_video { track.kind == MediaKind::Video && key } else { true };
            if opens {
                self.origin_us = Some(pts_us);
                self.packet(track, t, pts_us, key, data);
                for (t, pts_us, key, data) in std::mem::take(&mut self.waiting) {
                    self.audio(t, pts_us, key, &data);
                }
            } else if track.kind != MediaKind::Video && self.waiting.len() < MAX_WAITING {
                self.waiting.push((t, pts_us, key, data.to_vec()));
            }
            return;
        };
        if track.kind == MediaKind::Video {
            let rel = pts_us.saturating_sub(origin);
            if self.end_us.is_some_and(|end| rel >= end) {
                return;
            }
            // Advance to the next segment when this packet is the one that opened it.
            let mut next = track.current.map_or(0, |c| c + 1);
            while let Some(b) = self.boundaries.get(next) {
                if !(rel >= b.start_us && (key || !b.at_keyframe)) {
                    break;
                }
                track.current = Some(next);
                self.openers[next] = Some(rel);
                next += 1;
            }
            if let Some(s) = track.current {
                self.digesters[s].push(t, key, data);
            }
        } else {
            self.audio(t, pts_us, key, data);
        }
    }

    fn audio(&mut self, t: usize, pts_us: i64, key: bool, data: &[u8]) {
        let Some(origin) = self.origin_us else { return };
        let rel = pts_us.saturating_sub(origin);
        if self.end_us.is_some_and(|end| rel >= end) {
            return;
        }
        // The segmenter's lead for non-video packets (see `interleave`); none without video,
        // where the cuts fall on these packets themselves.
        let lead = if self.has_video { AUDIO_LEAD_US } else { 0 };
        if let Some(s) = self.boundaries.iter().rposition(|b| rel >= b.start_us - lead) {
            self.digesters[s].push(t, key, data);
        }
    }
}
