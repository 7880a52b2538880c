//! Reading a recording back: remuxing it into one MP4, taking a thumbnail of each segment's
//! first frame, and hashing it packet by packet to match it against another copy.
//!
//! A sealed recording is read as one stream of plaintext pieces (its segments, decrypted
//! one at a time by the caller) through a custom AVIO reader, so its plaintext is never
//! written anywhere but where the caller asks (the exported MP4). The concatenation of a
//! recording's segments is itself a valid file: MPEG-TS segments join end to end, and a
//! fragmented-MP4 recording's first segment carries the initialisation segment.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use custody_format::digest::{DigestStream, Framing, MediaKind, PacketDigester};
use ffmpeg_next as ff;

use crate::input::{self, Read as Next, Watchdog};
use crate::lane::{codec_name, extradata, recordable_streams};
use crate::settings::{Settings, Source};

/// Why a recording could not be read back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The media could not be opened or probed.
    #[error("cannot open the media: {0}")]
    Open(String),
    /// It has no video or audio stream.
    #[error("the media has no video or audio stream")]
    NoMedia,
    /// Reading it failed part-way (a piece that would not decrypt, a damaged file).
    #[error("reading the media failed: {0}")]
    Read(String),
    /// Writing the output failed.
    #[error("writing {path}: {message}")]
    Write {
        /// The output file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// Decoding or encoding a thumbnail failed.
    #[error("making a thumbnail: {0}")]
    Thumbnail(String),
}

/// Media to read: a file, or bytes handed over piece by piece.
pub enum Media {
    /// A file on disk (any container FFmpeg reads).
    File(PathBuf),
    /// A stream of pieces, e.g. a recording's segments decrypted one at a time.
    Pieces(Pieces),
}

/// A [`Read`] over a sequence of byte pieces, produced on demand; only the current piece
/// is held in memory.
pub struct Pieces {
    next: Box<dyn Iterator<Item = io::Result<Vec<u8>>> + Send>,
    current: Vec<u8>,
    pos: usize,
}

impl Pieces {
    /// Reads the pieces `iter` yields, in order; an `Err` piece fails the read.
    pub fn new(iter: impl Iterator<Item = io::Result<Vec<u8>>> + Send + 'static) -> Self {
        Pieces { next: Box::new(iter), current: Vec::new(), pos: 0 }
    }
}

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.current.len() {
            match self.next.next() {
                Some(piece) => {
                    self.current = piece?;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

struct Opened {
    input: ff::format::context::Input,
    /// (input stream index, kind, time base), video first.
    tracks: Vec<(usize, MediaKind, ff::Rational)>,
    watchdog: std::sync::Arc<Watchdog>,
    settings: Settings,
}

fn open(media: Media) -> Result<Opened, ReplayError> {
    crate::init();
    let settings = Settings::default();
    let watchdog = Watchdog::new();
    let input = match media {
        Media::File(path) => input::open(&Source::file(&path), &settings, &watchdog)
            .map_err(|e| ReplayError::Open(e.to_string()))?,
        Media::Pieces(pieces) => {
            let io = ff::format::context::StreamIo::from_read(pieces)
                .map_err(|e| ReplayError::Open(e.to_string()))?;
            ff::format::input_from_stream(io, None, None)
                .map_err(|e| ReplayError::Open(e.to_string()))?
        }
    };
    let tracks: Vec<_> = recordable_streams(&input)
        .into_iter()
        .filter_map(|(i, kind)| input.stream(i).map(|s| (i, kind, s.time_base())))
        .collect();
    if tracks.is_empty() {
        return Err(ReplayError::NoMedia);
    }
    Ok(Opened { input, tracks, watchdog, settings })
}

impl Opened {
    /// The next packet of a kept stream, with its track position; `None` at the end.
    fn next(&mut self) -> Result<Option<(usize, ff::Packet)>, ReplayError> {
        loop {
            let packet =
                match input::read(&mut self.input, &self.watchdog, self.settings.stall_timeout) {
                    Next::Packet(p) => p,
                    Next::End => return Ok(None),
                    Next::Failed(e) => return Err(ReplayError::Read(e.to_string())),
                    Next::Stopped | Next::Stalled => {
                        return Err(ReplayError::Read("the input stalled".into()))
                    }
                };
            if let Some(t) = self.tracks.iter().position(|t| t.0 == packet.stream()) {
                return Ok(Some((t, packet)));
            }
        }
    }
}

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemuxSummary {
    /// Packets written per stream (video first, then audio).
    pub packets: Vec<u64>,
    /// Presentation span of the video (or, without video, the audio), µs.
    pub duration_us: i64,
}

/// Remuxes `media` into an MP4 file at `out` without re-encoding: its best video and
/// audio streams, timestamps shifted to start at zero, the index at the front
/// (`movflags=+faststart`) so that players can start before the whole file is read.
/// `progress` is called with the media time written so far, µs. The video is upright: see
/// [`remux_to_mp4_turned`] for a recording whose header states a rotation.
pub fn remux_to_mp4(
    media: Media,
    out: &Path,
    progress: &mut dyn FnMut(i64),
) -> Result<RemuxSummary, ReplayError> {
    remux_to_mp4_turned(media, out, None, progress)
}

/// [`remux_to_mp4`], with `rotation` (degrees clockwise, from the recording's header tag
/// 16) written as the video track's display matrix, so that players turn the picture as
/// the source said: MPEG-TS segments carry no display matrix of their own.
pub fn remux_to_mp4_turned(
    media: Media,
    out: &Path,
    rotation: Option<u16>,
    progress: &mut dyn FnMut(i64),
) -> Result<RemuxSummary, ReplayError> {
    let write_err =
        |e: ff::Error| ReplayError::Write { path: out.to_path_buf(), message: e.to_string() };
    let mut src = open(media)?;
    let mut octx = ff::format::output_as(out, "mp4").map_err(write_err)?;
    for &(index, kind, _) in &src.tracks {
        let Some(stream) = src.input.stream(index) else { continue };
        let mut ost = octx.add_stream(ff::encoder::find(ff::codec::Id::None)).map_err(write_err)?;
        ost.set_parameters(stream.parameters());
        // The input container's codec tag means nothing in MP4.
        // SAFETY: `ost` is a live stream of `octx`, whose parameters were just set.
        unsafe { (*(*ost.as_mut_ptr()).codecpar).codec_tag = 0 };
        ost.set_time_base(stream.time_base());
        if kind == MediaKind::Video {
            if let Some(degrees) = rotation.filter(|d| d % 360 != 0) {
                // SAFETY: `ost` is a live stream of `octx`; the new side data is 9 i32s,
                // owned by the stream, and filled before the header is written.
                unsafe {
                    let matrix = ff::ffi::av_stream_new_side_data(
                        ost.as_mut_ptr(),
                        ff::ffi::AVPacketSideDataType::AV_PKT_DATA_DISPLAYMATRIX,
                        9 * std::mem::size_of::<i32>(),
                    );
                    if matrix.is_null() {
                        return Err(write_err(ff::Error::Other { errno: ff::ffi::ENOMEM }));
                    }
                    // `av_display_rotation_set` takes a clockwise angle, as the header
                    // states it (`av_display_rotation_get`, in `input::rotation`, gives a
                    // counterclockwise one).
                    ff::ffi::av_display_rotation_set(matrix.cast::<i32>(), f64::from(degrees));
                }
            }
        }
    }
    let mut options = ff::Dictionary::new();
    options.set("movflags", "+faststart");
    options.set("avoid_negative_ts", "make_zero");
    octx.write_header_with(options).map_err(write_err)?;
    let out_tb: Vec<ff::Rational> = (0..src.tracks.len())
        .map(|i| octx.stream(i).map_or(ff::Rational::new(1, 90_000), |s| s.time_base()))
        .collect();
    let mut packets = vec![0u64; src.tracks.len()];
    let (mut first, mut last) = (None::<i64>, 0i64);
    let main_kind = src.tracks[0].1;
    while let Some((t, mut packet)) = src.next()? {
        let (_, kind, tb) = src.tracks[t];
        if kind == main_kind {
            if let Some(pts) = packet.pts() {
                let us = crate::recorder_time(pts, tb);
                let end = us + crate::recorder_time(packet.duration(), tb);
                first = Some(first.map_or(us, |f: i64| f.min(us)));
                last = last.max(end);
                progress(last - first.unwrap_or(last));
            }
        }
        packet.rescale_ts(tb, out_tb[t]);
        packet.set_stream(t);
        packet.set_position(-1);
        packet.write_interleaved(&mut octx).map_err(write_err)?;
        packets[t] += 1;
    }
    octx.write_trailer().map_err(write_err)?;
    Ok(RemuxSummary { packets, duration_us: first.map_or(0, |f| last - f) })
}

/// One packet as the digest sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketHash {
    /// Its stream: 0 for video (or the only stream), then audio, as in a recording.
    pub stream: usize,
    /// What the stream carries.
    pub kind: MediaKind,
    /// Presentation time, µs after the packet that opens the media (its first video
    /// keyframe; without video, its first packet), as in a recording's segments.
    pub pts_us: i64,
    /// Its duration, µs (0 if the container does not say).
    pub duration_us: i64,
    /// The chain position of the segment it was read from, when it was read from one
    /// segment alone (a browser's, [`crate::browser_packet_hashes`]); `None` when it was read
    /// from a whole stream, and the matcher places it in a segment by its time.
    pub segment: Option<u64>,
    /// The packet digest of this one packet alone: container-independent, so the same
    /// coded packet hashes alike in MP4, MPEG-TS or Matroska.
    pub digest: [u8; 32],
}

/// Every packet of the media's best video and audio streams, in read order (decode order
/// within a stream), hashed one by one with the packet digest's normalisation. Packets
/// before the opening video keyframe are left out, as a recording leaves them out.
pub fn packet_hashes(media: Media) -> Result<Vec<PacketHash>, ReplayError> {
    let mut src = open(media)?;
    let mut streams = Vec::new();
    for &(index, kind, _) in &src.tracks {
        let Some(s) = src.input.stream(index) else { return Err(ReplayError::NoMedia) };
        let par = s.parameters();
        let codec = codec_name(par.id());
        // SAFETY: `par` wraps the stream's parameters, alive while the input is.
        let framing = Framing::from_extradata(&codec, unsafe { extradata(par.as_ptr()) });
        streams.push(DigestStream { kind, codec, framing });
    }
    let has_video = src.tracks.iter().any(|t| t.1 == MediaKind::Video);
    let mut out = Vec::new();
    let mut origin: Option<i64> = None;
    let mut waiting = Vec::new();
    while let Some((t, packet)) = src.next()? {
        let (_, kind, tb) = src.tracks[t];
        let (Some(ts), Some(data)) = (packet.pts().or(packet.dts()), packet.data()) else {
            continue;
        };
        let mut d = PacketDigester::new(std::slice::from_ref(&streams[t]));
        d.push(0, packet.is_key(), data);
        let hash = PacketHash {
            stream: t,
            kind,
            pts_us: crate::recorder_time(ts, tb),
            duration_us: crate::recorder_time(packet.duration(), tb),
            digest: d.finish().0,
            segment: None,
        };
        match origin {
            Some(_) => out.push(hash),
            None if !has_video || (kind == MediaKind::Video && packet.is_key()) => {
                origin = Some(hash.pts_us);
                out.push(hash);
                out.append(&mut waiting);
            }
            // Audio read ahead of the opening keyframe may still belong to the media.
            None if kind != MediaKind::Video && waiting.len() < 4096 => waiting.push(hash),
            None => {}
        }
    }
    let origin = origin.unwrap_or(0);
    for p in &mut out {
        p.pts_us -= origin;
    }
    // The recording starts at its opening keyframe; audio presented well before it is not
    // part of it (the segmenter's 10 ms lead allowed).
    out.retain(|p| p.pts_us >= -crate::interleave::AUDIO_LEAD_US);
    Ok(out)
}

/// A JPEG of the first video frame at or after each of `starts_us` (µs after the opening
/// keyframe, as in a recording's segments), scaled to `width` pixels wide; `None` where
/// there is no such frame. Only keyframes are decoded, one at a time, so this is quick
/// even for long recordings.
pub fn thumbnails(
    media: Media,
    starts_us: &[i64],
    width: u32,
) -> Result<Vec<Option<Vec<u8>>>, ReplayError> {
    let thumb = |e: ff::Error| ReplayError::Thumbnail(e.to_string());
    let mut src = open(media)?;
    let mut out = vec![None; starts_us.len()];
    let Some(&(index, MediaKind::Video, tb)) = src.tracks.first() else { return Ok(out) };
    let parameters = src.input.stream(index).map(|s| s.parameters()).ok_or(ReplayError::NoMedia)?;
    let mut origin: Option<i64> = None;
    let mut next = 0;
    while next < starts_us.len() {
        let Some((t, packet)) = src.next()? else { break };
        if t != 0 || !packet.is_key() {
            continue;
        }
        let Some(pts) = packet.pts().or(packet.dts()) else { continue };
        let rel =
            crate::recorder_time(pts, tb) - *origin.get_or_insert(crate::recorder_time(pts, tb));
        // This keyframe opens every segment that starts at or before it not yet served.
        let mut wanted = Vec::new();
        while next < starts_us.len() && starts_us[next] <= rel + 1_000 {
            wanted.push(next);
            next += 1;
        }
        if wanted.is_empty() {
            continue;
        }
        let jpeg = decode_to_jpeg(&parameters, &packet, width).map_err(thumb)?;
        for i in wanted {
            out[i] = jpeg.clone();
        }
    }
    Ok(out)
}

fn decode_to_jpeg(
    parameters: &ff::codec::Parameters,
    packet: &ff::Packet,
    width: u32,
) -> Result<Option<Vec<u8>>, ff::Error> {
    let mut decoder =
        ff::codec::context::Context::from_parameters(parameters.clone())?.decoder().video()?;
    decoder.send_packet(packet)?;
    decoder.send_eof()?;
    let mut frame = ff::frame::Video::empty();
    if decoder.receive_frame(&mut frame).is_err() {
        return Ok(None);
    }
    let (w, h) = (frame.width().max(1), frame.height().max(1));
    let tw = width.min(w).max(16) & !1;
    let th = ((u64::from(h) * u64::from(tw) / u64::from(w)).max(16) as u32) & !1;
    let mut scaler = ff::software::scaling::Context::get(
        frame.format(),
        w,
        h,
        ff::format::Pixel::YUVJ420P,
        tw,
        th,
        ff::software::scaling::Flags::BILINEAR,
    )?;
    let mut scaled = ff::frame::Video::empty();
    scaler.run(&frame, &mut scaled)?;
    scaled.set_pts(Some(0));
    let codec = ff::encoder::find(ff::codec::Id::MJPEG).ok_or(ff::Error::EncoderNotFound)?;
    let mut enc = ff::codec::context::Context::new_with_codec(codec).encoder().video()?;
    enc.set_width(tw);
    enc.set_height(th);
    enc.set_format(ff::format::Pixel::YUVJ420P);
    enc.set_time_base(ff::Rational::new(1, 25));
    let mut enc = enc.open_as(codec)?;
    enc.send_frame(&scaled)?;
    enc.send_eof()?;
    let mut packet = ff::Packet::empty();
    enc.receive_packet(&mut packet)?;
    Ok(packet.data().map(<[u8]>::to_vec))
}
