//! Segments a browser recorded (`docs/format.md` section 6.4): each a complete WebM or MP4
//! file, or one JPEG photo. The verifier recomputes a segment record's packet counts and
//! packet digest from the plaintext alone; export joins a recording's segments into one
//! file on the recording's timeline.
//!
//! Unlike the segments capture cuts itself (section 6.3), nothing is left out: every block
//! (Matroska SimpleBlock or BlockGroup, laced blocks split into their frames as FFmpeg's
//! demuxer splits them) or MP4 sample of the file counts, per track, in file order.

use std::io;
use std::path::Path;

use custody_format::digest::{DigestStream, Framing, MediaKind, PacketDigest, PacketDigester};
use ffmpeg_next as ff;

use crate::replay::{RemuxSummary, ReplayError};
use crate::segment::StreamParams;
use crate::settings::Container;

mod demux;

use demux::{every_sample, Demuxed};

/// Why a browser segment could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrowserError {
    /// The container is not one a browser records (1 and 2 are cut by capture itself and
    /// checked by `digest_file`).
    #[error("container {0:?} is not a browser segment container")]
    NotBrowser(Container),
    /// The plaintext does not open as the container its header names.
    #[error("the segment is not a {expected} file: {message}")]
    Format {
        /// What it should have been (`WebM`, `MP4`, `JPEG`).
        expected: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The file has no stream at all.
    #[error("the segment has no stream")]
    NoStreams,
    /// Reading the file failed part-way (a truncated or damaged file).
    #[error("reading the segment failed: {0}")]
    Read(String),
}

/// What one browser segment holds, as a segment record states it.
#[derive(Clone, Debug, PartialEq)]
pub struct BrowserSegment {
    /// Its streams, in Tracks (moov track) order, as the header describes them.
    pub streams: Vec<StreamParams>,
    /// Packets per stream, in the order of `streams`.
    pub packet_counts: Vec<u64>,
    /// Packets of the video streams.
    pub video_frames: u64,
    /// The packet digest (section 6.2) of all its packets.
    pub packet_digest: PacketDigest,
    /// Time of the file's first block (in file order) as the file stores it, µs on the
    /// file's own timeline (section 6.4's block time: for Matroska, before FFmpeg's demuxer
    /// subtracts the track's CodecDelay); `None` for a photo or a file without packets.
    pub first_time_us: Option<i64>,
    /// The latest block time plus that packet's duration, µs on the file's own timeline.
    pub end_time_us: Option<i64>,
}

/// Computes what the record of a browser segment must state, from its plaintext alone:
/// a complete WebM file (container 3), a complete fragmented MP4 file (container 4) or a
/// JPEG (container 5).
pub fn browser_segment(
    container: Container,
    plaintext: &[u8],
) -> Result<BrowserSegment, BrowserError> {
    match container {
        Container::Photo => photo(plaintext),
        Container::Webm | Container::SelfContainedMp4 => {
            facts(Demuxed::open(container, plaintext.to_vec())?)
        }
        other => Err(BrowserError::NotBrowser(other)),
    }
}

/// Computes what the record of any segment must state (its packet counts per stream,
/// video frames and packet digest), from its plaintext alone: a browser's segment as
/// [`browser_segment`] does; an MPEG-TS segment (container 1) demuxed alone, as it starts
/// with the tables that describe its streams; a fragmented MP4 segment (container 2)
/// demuxed after `init`, the recording's initialisation segment ([`mp4_init`] of segment
/// 1), when it does not begin with one itself. The packets a segment capture cut are
/// exactly those its muxer wrote between two cuts (section 6.3), so they are every packet
/// of every stream of the file.
pub fn segment_media(
    container: Container,
    init: Option<&[u8]>,
    plaintext: &[u8],
) -> Result<BrowserSegment, BrowserError> {
    match container {
        Container::MpegTs => facts(Demuxed::open_packets(container, plaintext.to_vec())?),
        Container::FragmentedMp4 => {
            let bytes = if top_level_box(plaintext) == Some(*b"moof") {
                let init = init.ok_or_else(|| BrowserError::Format {
                    expected: "MP4",
                    message: "a fragment, and no initialisation segment to read it with".into(),
                })?;
                [init, plaintext].concat()
            } else {
                plaintext.to_vec()
            };
            facts(Demuxed::open_packets(container, bytes)?)
        }
        other => browser_segment(other, plaintext),
    }
}

/// The type of the first box of an MP4 file (ISO/IEC 14496-12 4.2: a 32-bit size, then
/// the four-character type).
fn top_level_box(bytes: &[u8]) -> Option<[u8; 4]> {
    bytes.get(4..8)?.try_into().ok()
}

/// A fragmented MP4 file's initialisation segment: its bytes before the first top-level
/// `moof` box (`ftyp`, `moov`, …), or `None` if it has none before a fragment or its box
/// sizes run past the end (ISO/IEC 14496-12 4.2: a size of 1 means a 64-bit size follows
/// the type; 0, a box that runs to the end of the file).
pub fn mp4_init(segment: &[u8]) -> Option<&[u8]> {
    let mut at = 0usize;
    while at < segment.len() {
        let kind = top_level_box(segment.get(at..)?)?;
        if &kind == b"moof" {
            return (at > 0).then(|| &segment[..at]);
        }
        let size = u32::from_be_bytes(segment.get(at..at + 4)?.try_into().ok()?);
        let size = match size {
            0 => return None,
            1 => {
                usize::try_from(u64::from_be_bytes(segment.get(at + 8..at + 16)?.try_into().ok()?))
                    .ok()?
            }
            n => usize::try_from(n).ok()?,
        };
        if size < 8 {
            return None;
        }
        at = at.checked_add(size)?;
    }
    None
}

/// Counts and digests every packet of an opened segment in the canonical stream order.
fn facts(mut file: Demuxed) -> Result<BrowserSegment, BrowserError> {
    let mut digester = PacketDigester::new(&file.canonical_digest_streams());
    let (mut first, mut end) = (None, None::<i64>);
    while let Some(packet) = file.next()? {
        let t = packet.stream();
        let tb = file.time_bases[t];
        if let Some(ts) = packet.pts().or(packet.dts()) {
            let us = file.block_time_us(t, ts);
            first.get_or_insert(us);
            let e = us + crate::recorder_time(packet.duration(), tb);
            end = Some(end.map_or(e, |x| x.max(e)));
        }
        digester.push(file.slot[t], packet.is_key(), packet.data().unwrap_or(&[]));
    }
    let packet_counts = digester.packet_counts();
    let streams: Vec<StreamParams> = file.order.iter().map(|&i| file.streams[i].clone()).collect();
    let video_frames = streams
        .iter()
        .zip(&packet_counts)
        .filter(|(s, _)| s.kind == MediaKind::Video)
        .map(|(_, n)| n)
        .sum();
    Ok(BrowserSegment {
        streams,
        packet_counts,
        video_frames,
        packet_digest: digester.finish(),
        first_time_us: first,
        end_time_us: end,
    })
}

/// A photo's stream and digest: the whole JPEG one packet of an "other codec" stream, key.
fn photo(jpeg: &[u8]) -> Result<BrowserSegment, BrowserError> {
    let (width, height) = jpeg_size(jpeg).ok_or_else(|| BrowserError::Format {
        expected: "JPEG",
        message: "no JPEG start-of-image and frame header".into(),
    })?;
    let stream = StreamParams {
        kind: MediaKind::Video,
        codec: "mjpeg".into(),
        width,
        height,
        frame_rate: (0, 1),
        sample_rate: 0,
        channels: 0,
        time_base: (1, 1),
        encoded: false,
    };
    let mut digester = PacketDigester::new(&[DigestStream {
        kind: MediaKind::Video,
        codec: "mjpeg".into(),
        framing: Framing::Whole,
    }]);
    digester.push(0, true, jpeg);
    Ok(BrowserSegment {
        streams: vec![stream],
        packet_counts: vec![1],
        video_frames: 1,
        packet_digest: digester.finish(),
        first_time_us: None,
        end_time_us: None,
    })
}

/// Width and height from a JPEG's frame header (SOF0–SOF15 but DHT, JPG and DAC), ITU-T
/// T.81 annex B; `None` if the bytes do not begin with SOI or no frame header comes before
/// the scan.
pub fn jpeg_size(jpeg: &[u8]) -> Option<(u32, u32)> {
    if jpeg.get(..2)? != [0xff, 0xd8] {
        return None;
    }
    let mut i = 2;
    loop {
        // Fill bytes (0xff) may precede a marker.
        while *jpeg.get(i)? == 0xff && *jpeg.get(i + 1)? == 0xff {
            i += 1;
        }
        if *jpeg.get(i)? != 0xff {
            return None;
        }
        let marker = *jpeg.get(i + 1)?;
        match marker {
            // Markers without a length: TEM, RSTn.
            0x01 | 0xd0..=0xd7 => {
                i += 2;
                continue;
            }
            0xd9 | 0xda => return None,
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([*jpeg.get(i + 2)?, *jpeg.get(i + 3)?]));
        if matches!(marker, 0xc0..=0xcf) && !matches!(marker, 0xc4 | 0xc8 | 0xcc) {
            let h = u16::from_be_bytes([*jpeg.get(i + 5)?, *jpeg.get(i + 6)?]);
            let w = u16::from_be_bytes([*jpeg.get(i + 7)?, *jpeg.get(i + 8)?]);
            return Some((u32::from(w), u32::from(h)));
        }
        if len < 2 {
            return None;
        }
        i += 2 + len;
    }
}

/// Every packet of a browser segment's first video and first audio stream (stream 0 the
/// video, then the audio, as [`crate::packet_hashes`] numbers them), hashed one by one,
/// on the recording's timeline: moved so that the file's first block lies at
/// `media_start_us`, as [`remux_browser`] places it. The shift is taken from that block's
/// time as the file stores it, as the record's `media_start_us` is (for Matroska, with the
/// track's CodecDelay that FFmpeg's demuxer subtracts added back: a segment opening with
/// an Opus block would otherwise be placed 7 ms off from one opening with a video block). For matching an original file from
/// the phone against a browser's recording segment by segment.
pub fn browser_packet_hashes(
    container: Container,
    plaintext: &[u8],
    media_start_us: i64,
) -> Result<Vec<crate::PacketHash>, BrowserError> {
    let mut file = Demuxed::open(container, plaintext.to_vec())?;
    let digest_streams = file.digest_streams();
    let video = file.streams.iter().position(|s| s.kind == MediaKind::Video);
    let audio = file.streams.iter().position(|s| s.kind == MediaKind::Audio);
    let position = |i: usize| match (video, audio) {
        (Some(v), _) if v == i => Some(0),
        (v, Some(a)) if a == i => Some(usize::from(v.is_some())),
        _ => None,
    };
    let mut out = Vec::new();
    let mut shift: Option<i64> = None;
    while let Some(packet) = file.next()? {
        let i = packet.stream();
        let tb = file.time_bases[i];
        let Some(ts) = packet.pts().or(packet.dts()) else { continue };
        let us = crate::recorder_time(ts, tb);
        let shift = *shift.get_or_insert(media_start_us - file.block_time_us(i, ts));
        let Some(stream) = position(i) else { continue };
        let mut d = PacketDigester::new(std::slice::from_ref(&digest_streams[i]));
        d.push(0, packet.is_key(), packet.data().unwrap_or(&[]));
        out.push(crate::PacketHash {
            stream,
            kind: file.streams[i].kind,
            pts_us: us + shift,
            duration_us: crate::recorder_time(packet.duration(), tb),
            digest: d.finish().0,
            segment: None,
        });
    }
    Ok(out)
}

/// One segment for [`remux_browser`]: its plaintext and its record's `media_start_us`.
pub struct TimedSegment {
    /// The segment's plaintext (a complete WebM or MP4 file).
    pub plaintext: Vec<u8>,
    /// The record's `media_start_us`: where the segment's first block lies on the
    /// recording's timeline.
    pub media_start_us: i64,
}

/// The file format [`remux_browser`] writes for a recording's streams: WebM when every
/// codec is one WebM carries (VP8, VP9, AV1, Opus, Vorbis), else MP4 when MP4 carries
/// them all (H.264, HEVC, AAC, Opus, VP9, AV1), else Matroska. Returned as FFmpeg's muxer
/// name and the file extension to use.
pub fn remux_format(codecs: &[&str]) -> (&'static str, &'static str) {
    let webm = |c: &&str| matches!(*c, "vp8" | "vp9" | "av1" | "opus" | "vorbis");
    let mp4 = |c: &&str| matches!(*c, "h264" | "hevc" | "aac" | "opus" | "vp9" | "av1" | "mp3");
    if codecs.iter().all(webm) {
        ("webm", "webm")
    } else if codecs.iter().all(mp4) {
        ("mp4", "mp4")
    } else {
        ("matroska", "mkv")
    }
}

/// Joins a browser recording's segments (containers 3 and 4) into one file at `out`,
/// without re-encoding: every packet of every stream, in order, each segment's packets
/// moved onto the recording's timeline so that its first block lies at its record's
/// `media_start_us` (a recording whose page restarted its recorder has streams whose own
/// timestamps start again at 0). `muxer` is FFmpeg's muxer name ([`remux_format`]).
/// Decode timestamps that would not increase (overlapping device claims) are moved just
/// past the previous ones, and counted in the summary's `repaired`.
pub fn remux_browser(
    container: Container,
    segments: impl Iterator<Item = io::Result<TimedSegment>>,
    out: &Path,
    muxer: &str,
    progress: &mut dyn FnMut(i64),
) -> Result<RemuxSummary, ReplayError> {
    let write_err =
        |e: ff::Error| ReplayError::Write { path: out.to_path_buf(), message: e.to_string() };
    let read_err = |e: BrowserError| ReplayError::Read(e.to_string());
    let mut octx: Option<ff::format::context::Output> = None;
    let mut out_tb: Vec<ff::Rational> = Vec::new();
    let mut last_dts: Vec<Option<i64>> = Vec::new();
    let mut packets: Vec<u64> = Vec::new();
    let (mut first, mut last) = (None::<i64>, 0i64);
    for (n, segment) in segments.enumerate() {
        let segment = segment.map_err(|e| ReplayError::Read(e.to_string()))?;
        let mut file = Demuxed::open(container, segment.plaintext).map_err(read_err)?;
        if octx.is_none() {
            let mut o = ff::format::output_as(out, muxer).map_err(write_err)?;
            for s in file.order.iter().filter_map(|&i| file.input.stream(i)) {
                let mut ost =
                    o.add_stream(ff::encoder::find(ff::codec::Id::None)).map_err(write_err)?;
                ost.set_parameters(s.parameters());
                // SAFETY: `ost` is a live stream of `o`, whose parameters were just set; the
                // input container's codec tag means nothing in the output.
                unsafe { (*(*ost.as_mut_ptr()).codecpar).codec_tag = 0 };
                ost.set_time_base(s.time_base());
            }
            let mut options = ff::Dictionary::new();
            if muxer == "mp4" {
                options.set("movflags", "+faststart");
            }
            o.write_header_with(options).map_err(write_err)?;
            out_tb = (0..file.streams.len())
                .map(|i| o.stream(i).map_or(ff::Rational::new(1, 1000), |s| s.time_base()))
                .collect();
            last_dts = vec![None; file.streams.len()];
            packets = vec![0; file.streams.len()];
            octx = Some(o);
        }
        let Some(o) = octx.as_mut() else { break };
        if file.streams.len() != out_tb.len() {
            return Err(ReplayError::Read(format!(
                "segment {} has {} streams, the recording {}",
                n + 1,
                file.streams.len(),
                out_tb.len()
            )));
        }
        // The shift that puts this file's first block at the record's media_start_us (its
        // time as stored, as in `browser_packet_hashes`).
        let mut shift_us: Option<i64> = None;
        while let Some(mut packet) = file.next().map_err(read_err)? {
            let (t, tb) = (file.slot[packet.stream()], file.time_bases[packet.stream()]);
            let us = |v: i64| crate::recorder_time(v, tb);
            let Some(ts) = packet.pts().or(packet.dts()) else { continue };
            let stored = file.block_time_us(packet.stream(), ts);
            let shift = *shift_us.get_or_insert(segment.media_start_us - stored);
            let to_out = |v: i64| {
                let d = out_tb[t].denominator().max(1);
                let n = out_tb[t].numerator().max(1);
                let r = i128::from(v) * i128::from(d) / (i128::from(n) * 1_000_000);
                i64::try_from(r).unwrap_or(i64::MAX)
            };
            let pts = packet.pts().map(|p| to_out(us(p) + shift));
            let mut dts = packet.dts().map(|d| to_out(us(d) + shift)).or(pts);
            if let (Some(d), Some(prev)) = (dts, last_dts[t]) {
                if d <= prev {
                    dts = Some(prev + 1);
                }
            }
            let pts = match (pts, dts) {
                (Some(p), Some(d)) if p < d => Some(d),
                (p, _) => p,
            };
            last_dts[t] = dts;
            packet.set_pts(pts);
            packet.set_dts(dts);
            let dur = packet.duration();
            packet.set_duration(to_out(us(dur)).max(0));
            packet.set_stream(t);
            packet.set_position(-1);
            if let Some(p) = pts {
                let start = crate::recorder_time(p, out_tb[t]);
                let end = start + us(dur);
                first = Some(first.map_or(start, |f| f.min(start)));
                last = last.max(end);
                progress(last - first.unwrap_or(last));
            }
            packet.write_interleaved(o).map_err(write_err)?;
            packets[t] += 1;
        }
    }
    let Some(mut o) = octx else { return Err(ReplayError::NoMedia) };
    o.write_trailer().map_err(write_err)?;
    Ok(RemuxSummary { packets, duration_us: first.map_or(0, |f| last - f) })
}

/// The packet digest of each segment of a file written by [`remux_browser`], cut by the
/// segments' packet counts: stream *i*'s first `counts[0][i]` packets are segment 1's, the
/// next `counts[1][i]` segment 2's, and so on (packets beyond the last segment are left
/// out; `digest_file` cuts by time instead, which browser segments do not follow). Every
/// stream of the file is read; streams are numbered, counted and digested in the canonical
/// order (video, audio, other), as the records state them, whatever order the file lists
/// them in.
pub fn digest_by_counts(
    path: &Path,
    counts: &[Vec<u64>],
) -> Result<Vec<crate::FileSegmentDigest>, ReplayError> {
    crate::init();
    let input = ff::format::input_with_dictionary(path, every_sample())
        .map_err(|e| ReplayError::Open(e.to_string()))?;
    let mut file = Demuxed::new(input).map_err(|e| match e {
        BrowserError::NoStreams => ReplayError::NoMedia,
        other => ReplayError::Open(other.to_string()),
    })?;
    let streams = file.canonical_digest_streams();
    let mut digesters: Vec<PacketDigester> =
        counts.iter().map(|_| PacketDigester::new(&streams)).collect();
    // Per stream (canonical position): the segment its next packet goes to, and how many
    // that one has taken.
    let mut at = vec![(0usize, 0u64); streams.len()];
    let read_err = |e: BrowserError| match e {
        BrowserError::Read(message) => ReplayError::Read(message),
        other => ReplayError::Read(other.to_string()),
    };
    while let Some(packet) = file.next().map_err(read_err)? {
        let Some(&t) = file.slot.get(packet.stream()) else { continue };
        let Some((seg, taken)) = at.get_mut(t) else { continue };
        while *seg < counts.len() && *taken >= counts[*seg].get(t).copied().unwrap_or(0) {
            *seg += 1;
            *taken = 0;
        }
        if let Some(d) = digesters.get_mut(*seg) {
            d.push(t, packet.is_key(), packet.data().unwrap_or(&[]));
            *taken += 1;
        }
    }
    Ok(digesters
        .into_iter()
        .map(|d| {
            let packet_counts = d.packet_counts();
            crate::FileSegmentDigest { packet_digest: d.finish(), packet_counts }
        })
        .collect())
}

/// Re-encodes `remux` (a file [`remux_browser`] wrote) as an H.264/AAC MP4 at `out` for
/// players that know only those codecs (a court's), with `label` as its title and
/// comment metadata. The copy is not evidence: its packets are new ones, so no packet
/// digest can tie it to the sealed segments; the remux it was made from is the proof, and
/// the label must say so.
pub fn viewing_copy(remux: &Path, out: &Path, label: &str) -> Result<RemuxSummary, ReplayError> {
    use crate::encode::Transcoder;
    crate::init();
    let write_err =
        |e: ff::Error| ReplayError::Write { path: out.to_path_buf(), message: e.to_string() };
    let enc_err = |e: crate::EncodeError| ReplayError::Write {
        path: out.to_path_buf(),
        message: e.to_string(),
    };
    let mut input = ff::format::input(remux).map_err(|e| ReplayError::Open(e.to_string()))?;
    let settings = crate::Settings::default();
    // (input stream index, transcoder) per output stream: the best video, the best audio.
    let mut lanes: Vec<(usize, Transcoder)> = Vec::new();
    for (index, kind) in crate::lane::recordable_streams(&input) {
        let Some(stream) = input.stream(index) else { continue };
        let t =
            Transcoder::new(&stream, kind, Container::FragmentedMp4, &settings).map_err(enc_err)?;
        lanes.push((index, t));
    }
    if lanes.is_empty() {
        return Err(ReplayError::NoMedia);
    }
    let mut octx = ff::format::output_as(out, "mp4").map_err(write_err)?;
    for (_, t) in &lanes {
        let mut ost = octx.add_stream(ff::encoder::find(ff::codec::Id::None)).map_err(write_err)?;
        // SAFETY: `ost` is a live stream of `octx`; the transcoder's parameters outlive
        // this call, which copies them.
        unsafe {
            let res =
                ff::ffi::avcodec_parameters_copy((*ost.as_mut_ptr()).codecpar, t.parameters());
            if res < 0 {
                return Err(write_err(ff::Error::from(res)));
            }
            (*(*ost.as_mut_ptr()).codecpar).codec_tag = 0;
        }
        ost.set_time_base(t.time_base());
    }
    let mut meta = ff::Dictionary::new();
    meta.set("title", label);
    meta.set("comment", label);
    octx.set_metadata(meta);
    let mut options = ff::Dictionary::new();
    options.set("movflags", "+faststart");
    octx.write_header_with(options).map_err(write_err)?;
    let out_tb: Vec<ff::Rational> = (0..lanes.len())
        .map(|i| octx.stream(i).map_or(ff::Rational::new(1, 90_000), |s| s.time_base()))
        .collect();
    let mut packets = vec![0u64; lanes.len()];
    let (mut first, mut last) = (None::<i64>, 0i64);
    let mut encoded = Vec::new();
    let mut write = |octx: &mut ff::format::context::Output,
                     o: usize,
                     tb: ff::Rational,
                     encoded: &mut Vec<ff::Packet>|
     -> Result<(), ReplayError> {
        for mut p in encoded.drain(..) {
            if o == 0 {
                if let Some(pts) = p.pts() {
                    let us = crate::recorder_time(pts, tb);
                    first = Some(first.map_or(us, |f: i64| f.min(us)));
                    last = last.max(us + crate::recorder_time(p.duration(), tb));
                }
            }
            p.rescale_ts(tb, out_tb[o]);
            p.set_stream(o);
            p.set_position(-1);
            p.write_interleaved(octx).map_err(write_err)?;
            packets[o] += 1;
        }
        Ok(())
    };
    loop {
        let mut packet = ff::Packet::empty();
        match packet.read(&mut input) {
            Ok(()) => {}
            Err(ff::Error::Eof) => break,
            Err(e) => return Err(ReplayError::Read(e.to_string())),
        }
        let Some(o) = lanes.iter().position(|(i, _)| *i == packet.stream()) else { continue };
        lanes[o].1.process(Some(packet), &mut encoded).map_err(enc_err)?;
        let tb = lanes[o].1.time_base();
        write(&mut octx, o, tb, &mut encoded)?;
    }
    for (o, (_, lane)) in lanes.iter_mut().enumerate() {
        lane.process(None, &mut encoded).map_err(enc_err)?;
        write(&mut octx, o, lane.time_base(), &mut encoded)?;
    }
    octx.write_trailer().map_err(write_err)?;
    Ok(RemuxSummary { packets, duration_us: first.map_or(0, |f| last - f) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mp4_init_is_what_comes_before_the_first_fragment() {
        let boxed = |kind: &[u8; 4], body: usize| {
            let mut b = u32::try_from(8 + body).unwrap().to_be_bytes().to_vec();
            b.extend_from_slice(kind);
            b.resize(b.len() + body, 0);
            b
        };
        let init = [boxed(b"ftyp", 8), boxed(b"moov", 20)].concat();
        let file = [init.clone(), boxed(b"moof", 4), boxed(b"mdat", 9)].concat();
        assert_eq!(mp4_init(&file), Some(&init[..]));
        // A fragment alone, no fragment at all, a size running past the end: none.
        assert_eq!(mp4_init(&file[init.len()..]), None);
        assert_eq!(mp4_init(&init), None);
        assert_eq!(mp4_init(&file[..init.len() - 1]), None);
        // A 64-bit box size (size 1, then the size after the type).
        let mut large = 1u32.to_be_bytes().to_vec();
        large.extend_from_slice(b"moov");
        large.extend_from_slice(&20u64.to_be_bytes());
        large.extend_from_slice(&[0; 4]);
        let file = [boxed(b"ftyp", 0), large.clone(), boxed(b"moof", 0)].concat();
        assert_eq!(mp4_init(&file).map(<[u8]>::len), Some(8 + large.len()));
    }

    #[test]
    fn jpeg_size_reads_the_frame_header_after_other_segments() {
        // SOI, APP0 (length 4), SOF0 for 1920x1080, then SOS.
        let jpeg = [
            0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0xaa, 0xbb, 0xff, 0xc0, 0x00, 0x11, 0x08, 0x04,
            0x38, 0x07, 0x80, 0x03, 0xff, 0xda,
        ];
        assert_eq!(jpeg_size(&jpeg), Some((1920, 1080)));
        assert_eq!(jpeg_size(&jpeg[2..]), None);
        assert_eq!(jpeg_size(&jpeg[..10]), None);
        // A huffman table (C4) is not a frame header.
        let dht = [0xff, 0xd8, 0xff, 0xc4, 0x00, 0x02, 0xff, 0xda];
        assert_eq!(jpeg_size(&dht), None);
    }
}
