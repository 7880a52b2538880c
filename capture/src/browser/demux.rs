//! A segment's file demuxed in memory with FFmpeg: its streams as a record describes
//! them, in the canonical order (format.md 6.4), and its packets one by one.

use std::io::Cursor;

use custody_format::digest::{DigestStream, Framing, MediaKind};
use ffmpeg_next as ff;

use super::BrowserError;
use crate::lane::{codec_name, extradata};
use crate::segment::StreamParams;
use crate::settings::Container;

/// Demuxer options under which every stored sample is read: MP4 edit lists (an Opus
/// pre-skip, an export's start offset) would otherwise make FFmpeg's MP4 demuxer hide
/// samples that the file holds and its record counts. Other demuxers ignore the option.
pub(super) fn every_sample() -> ff::Dictionary<'static> {
    let mut options = ff::Dictionary::new();
    options.set("ignore_editlist", "1");
    options
}

/// Opens a demuxer on `io` as `ff::format::input_from_stream` does, without its
/// `avformat_find_stream_info`: the streams are what the container's header states, and
/// packets come out of the same parsers in the same order (the probe only buffers the
/// packets it reads and hands them out first).
fn input_unprobed(
    mut io: ff::format::context::StreamIo,
    hint: &str,
    options: ff::Dictionary<'static>,
) -> Result<ff::format::context::Input, ff::Error> {
    let name =
        std::ffi::CString::new(hint).map_err(|_| ff::Error::Other { errno: ff::ffi::EINVAL })?;
    // SAFETY: as ffmpeg-next's own `input_from_stream`: the context is allocated here, owns
    // no I/O of its own (AVFMT_FLAG_CUSTOM_IO) and is freed by `avformat_open_input` when
    // that fails; on success `Input` owns it, and `io`, which outlives it there.
    unsafe {
        let mut ps = ff::ffi::avformat_alloc_context();
        if ps.is_null() {
            return Err(ff::Error::Other { errno: ff::ffi::ENOMEM });
        }
        (*ps).pb = io.as_mut_ptr();
        (*ps).flags |= ff::ffi::AVFMT_FLAG_CUSTOM_IO;
        let mut opts = options.disown();
        let r =
            ff::ffi::avformat_open_input(&mut ps, name.as_ptr(), std::ptr::null_mut(), &mut opts);
        drop(ff::Dictionary::own(opts));
        if r < 0 {
            return Err(ff::Error::from(r));
        }
        Ok(ff::format::context::Input::wrap_with_custom_io(ps, io))
    }
}

/// A demuxed stream as a record describes it (kind, FFmpeg's codec name, picture or sound
/// parameters, time base), and the framing its packets are normalised by (section 6.1).
pub(super) fn describe(s: &ff::format::stream::Stream<'_>) -> (StreamParams, Framing) {
    let par = s.parameters();
    let kind = match par.medium() {
        ff::media::Type::Video => MediaKind::Video,
        ff::media::Type::Audio => MediaKind::Audio,
        _ => MediaKind::Other,
    };
    let codec = codec_name(par.id());
    // SAFETY: `par` wraps the stream's parameters, alive while the stream's input is.
    let (framing, width, height, sample_rate, channels) = unsafe {
        let p = par.as_ptr();
        (
            Framing::from_extradata(&codec, extradata(p)),
            u32::try_from((*p).width).unwrap_or(0),
            u32::try_from((*p).height).unwrap_or(0),
            u32::try_from((*p).sample_rate).unwrap_or(0),
            u32::try_from((*p).ch_layout.nb_channels).unwrap_or(0),
        )
    };
    let rate = s.avg_frame_rate();
    let frame_rate = if kind == MediaKind::Video && rate.denominator() > 0 {
        (rate.numerator(), rate.denominator())
    } else {
        (0, 1)
    };
    let tb = s.time_base();
    let params = StreamParams {
        kind,
        codec,
        width,
        height,
        frame_rate,
        sample_rate,
        channels,
        time_base: (tb.numerator(), tb.denominator()),
        encoded: false,
    };
    (params, framing)
}

/// The CodecDelay that FFmpeg's Matroska demuxer subtracts from every block time of `s`, in
/// its time base. The demuxer reports it as the stream's initial padding, in samples at
/// 48 kHz for Opus (whose pre-skip is counted at 48 kHz, RFC 7845 section 4.2) and at the
/// sample rate otherwise; rounded to the nearest unit, as the demuxer rounds it.
fn codec_delay(s: &ff::format::stream::Stream<'_>, params: &StreamParams) -> i64 {
    // SAFETY: the parameters are alive while the stream's input is.
    let padding = unsafe { (*s.parameters().as_ptr()).initial_padding };
    let rate = if params.codec == "opus" { 48_000 } else { params.sample_rate };
    let tb = s.time_base();
    if padding <= 0 || rate == 0 || tb.numerator() <= 0 || tb.denominator() <= 0 {
        return 0;
    }
    // padding / rate seconds in units of num/den seconds.
    let n = i128::from(padding) * i128::from(tb.denominator());
    let d = i128::from(rate) * i128::from(tb.numerator());
    i64::try_from((2 * n + d) / (2 * d)).unwrap_or(0)
}

/// The canonical order of `streams` (format.md 6.4: video, then audio, then other, each
/// kind in the file's order): `order[position]` is a file stream, `slot[file stream]` its
/// position.
fn canonical_order(streams: &[StreamParams]) -> (Vec<usize>, Vec<usize>) {
    let rank = |k: MediaKind| match k {
        MediaKind::Video => 0,
        MediaKind::Audio => 1,
        _ => 2,
    };
    let mut order: Vec<usize> = (0..streams.len()).collect();
    order.sort_by_key(|&i| (rank(streams[i].kind), i));
    let mut slot = vec![0; streams.len()];
    for (position, &i) in order.iter().enumerate() {
        slot[i] = position;
    }
    (order, slot)
}

/// A file opened with FFmpeg's demuxer: a browser segment in memory, or a remux read back.
pub(super) struct Demuxed {
    pub(super) input: ff::format::context::Input,
    /// The file's streams, framings and time bases, in the file's order.
    pub(super) streams: Vec<StreamParams>,
    pub(super) framings: Vec<Framing>,
    pub(super) time_bases: Vec<ff::Rational>,
    /// Per file stream, what FFmpeg's demuxer subtracted from every stored time, in the
    /// stream's time base ([`codec_delay`]).
    pub(super) delays: Vec<i64>,
    /// The canonical order ([`canonical_order`]): `order[position]` is a file stream,
    /// `slot[file stream]` its position. Counts and digests follow it, whatever order the file lists its tracks in: a
    /// browser's muxer lists a track when its encoder first gives output, so one recording's
    /// restarted recorders may list audio and video the other way round.
    pub(super) order: Vec<usize>,
    pub(super) slot: Vec<usize>,
}

impl Demuxed {
    /// Opens `bytes`, a complete file of `container`, in memory, with every stream's
    /// parameters probed (FFmpeg's `avformat_find_stream_info`, which decodes the first
    /// frames: a browser's WebM states no frame rate and no VP8 or VP9 pixel format).
    pub(super) fn open(container: Container, bytes: Vec<u8>) -> Result<Demuxed, BrowserError> {
        Demuxed::open_as(container, bytes, true)
    }

    /// Opens `bytes` as [`Demuxed::open`] does but for the probe: for the packets alone,
    /// whose count, key flags and bytes are what a record states. An MPEG-TS segment's
    /// tables and a fragmented MP4's `moov` name every stream's codec, and the framing
    /// follows from it (MPEG-TS carries H.264 and HEVC as Annex B, an MP4's extradata says
    /// its length size); the probe would decode at least seven H.264 frames of every
    /// segment on one thread, most of what `custody verify --identity` spent.
    pub(super) fn open_packets(
        container: Container,
        bytes: Vec<u8>,
    ) -> Result<Demuxed, BrowserError> {
        Demuxed::open_as(container, bytes, false)
    }

    pub(super) fn open_as(
        container: Container,
        bytes: Vec<u8>,
        probe: bool,
    ) -> Result<Demuxed, BrowserError> {
        crate::init();
        let (expected, hint, demuxer) = match container {
            Container::Webm => ("WebM", "segment.webm", "matroska"),
            Container::SelfContainedMp4 | Container::FragmentedMp4 => ("MP4", "segment.mp4", "mov"),
            Container::MpegTs => ("MPEG-TS", "segment.ts", "mpegts"),
            other => return Err(BrowserError::NotBrowser(other)),
        };
        let format = |message: String| BrowserError::Format { expected, message };
        let io = ff::format::context::StreamIo::from_read_seek(Cursor::new(bytes))
            .map_err(|e| format(e.to_string()))?;
        let input = if probe {
            ff::format::input_from_stream(io, Some(hint), Some(every_sample()))
        } else {
            input_unprobed(io, hint, every_sample())
        }
        .map_err(|e| format(e.to_string()))?;
        if !input.format().name().split(',').any(|n| n == demuxer) {
            return Err(format(format!("FFmpeg reads it as {}", input.format().name())));
        }
        Demuxed::new(input)
    }

    /// Describes every stream of an opened file and puts them in the canonical order.
    pub(super) fn new(input: ff::format::context::Input) -> Result<Demuxed, BrowserError> {
        let matroska = input.format().name().split(',').any(|n| n == "matroska");
        let mut streams = Vec::new();
        let mut framings = Vec::new();
        let mut time_bases = Vec::new();
        let mut delays = Vec::new();
        for s in input.streams() {
            let (params, framing) = describe(&s);
            delays.push(if matroska { codec_delay(&s, &params) } else { 0 });
            streams.push(params);
            framings.push(framing);
            time_bases.push(s.time_base());
        }
        if streams.is_empty() {
            return Err(BrowserError::NoStreams);
        }
        let (order, slot) = canonical_order(&streams);
        Ok(Demuxed { input, streams, framings, time_bases, delays, order, slot })
    }

    /// A timestamp `ts` of file stream `stream` as the file stores it (its block time,
    /// section 6.4), µs: FFmpeg's time plus what its demuxer subtracted.
    pub(super) fn block_time_us(&self, stream: usize, ts: i64) -> i64 {
        let delay = self.delays.get(stream).copied().unwrap_or(0);
        let tb = self.time_bases.get(stream).copied().unwrap_or(ff::Rational::new(1, 1000));
        crate::recorder_time(ts.saturating_add(delay), tb)
    }

    /// The digest's streams, in the file's order.
    pub(super) fn digest_streams(&self) -> Vec<DigestStream> {
        self.streams
            .iter()
            .zip(&self.framings)
            .map(|(s, f)| DigestStream { kind: s.kind, codec: s.codec.clone(), framing: *f })
            .collect()
    }

    /// The digest's streams, in the canonical order.
    pub(super) fn canonical_digest_streams(&self) -> Vec<DigestStream> {
        let streams = self.digest_streams();
        self.order.iter().map(|&i| streams[i].clone()).collect()
    }

    /// The next packet, in file order; `None` at the end. Every read error is reported
    /// (FFmpeg's own iterator stops silently at one).
    pub(super) fn next(&mut self) -> Result<Option<ff::Packet>, BrowserError> {
        let mut packet = ff::Packet::empty();
        match packet.read(&mut self.input) {
            // A stream the header did not list (an MPEG-TS table later in the file): its
            // packets have no place in the record's counts.
            Ok(()) if packet.stream() >= self.streams.len() => Err(BrowserError::Read(format!(
                "a packet of stream {}, which the file's header does not list",
                packet.stream()
            ))),
            Ok(()) => Ok(Some(packet)),
            Err(ff::Error::Eof) => Ok(None),
            Err(e) => Err(BrowserError::Read(e.to_string())),
        }
    }
}
