//! The streams a recording keeps, and what happens to their packets before the muxer:
//! timestamp repair, bitstream filters (copied streams) or encoding (raw device input).

use custody_format::digest::{Framing, MediaKind};
use ff::ffi;
use ffmpeg_next as ff;

use crate::bsf::{Bsf, BsfError};
use crate::encode::{EncodeError, Transcoder};
use crate::input::{InputError, Watchdog};
use crate::segment::StreamParams;
use crate::settings::{Container, Settings, Source};

/// Why the input's streams cannot be recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The input has neither a video nor an audio stream.
    #[error("the input has no video or audio stream")]
    NoMedia,
    /// A stream's codec can be neither copied into the container nor encoded.
    #[error(
        "stream {index} uses codec {codec:?}, which custody cannot record without re-encoding it"
    )]
    UnsupportedCodec {
        /// Input stream index.
        index: usize,
        /// FFmpeg's codec name.
        codec: String,
    },
    /// A bitstream filter could not be set up.
    #[error(transparent)]
    Bsf(#[from] BsfError),
    /// An encoder could not be set up.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// Codecs copied as they come (no re-encoding: the evidence is the phone's own packets).
fn copyable(container: Container, codec: &str) -> bool {
    match container {
        Container::MpegTs => {
            matches!(codec, "h264" | "hevc" | "aac" | "mp3" | "mp2" | "ac3" | "eac3")
        }
        Container::FragmentedMp4 => {
            matches!(codec, "h264" | "hevc" | "aac" | "mp3" | "ac3" | "eac3" | "opus")
        }
        Container::Webm => matches!(codec, "vp8" | "vp9" | "av1" | "opus" | "vorbis"),
        // Not containers capture writes; the recorder refuses them before it gets here.
        Container::SelfContainedMp4 | Container::Photo => false,
    }
}

/// Codecs that only come from capture devices and are encoded.
fn encodable(codec: &str) -> bool {
    codec == "rawvideo" || codec == "mjpeg" || codec.starts_with("pcm_")
}

pub(crate) fn codec_name(id: ff::codec::Id) -> String {
    // SAFETY: avcodec_get_name returns a static string for every id.
    unsafe {
        let p = ffi::avcodec_get_name(id.into());
        if p.is_null() {
            return "unknown".into();
        }
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

enum Work {
    Copy(Option<Bsf>),
    Encode(Box<Transcoder>),
}

/// One recorded stream.
pub(crate) struct Lane {
    pub(crate) input_index: usize,
    pub(crate) kind: MediaKind,
    pub(crate) codec: String,
    pub(crate) framing: Framing,
    pub(crate) params: StreamParams,
    work: Work,
    input_time_base: ff::Rational,
    last_dts: Option<i64>,
    last_duration: i64,
    pub(crate) repaired: u64,
}

impl Lane {
    fn new(
        stream: &ff::format::stream::Stream<'_>,
        kind: MediaKind,
        container: Container,
        settings: &Settings,
        notes: &mut Vec<String>,
    ) -> Result<Lane, StreamError> {
        let par = stream.parameters();
        let codec = codec_name(par.id());
        let tb = stream.time_base();
        let (work, out_codec) = if copyable(container, &codec) {
            // SAFETY: `par` wraps the stream's live parameters.
            let framing = Framing::from_extradata(&codec, unsafe { extradata(par.as_ptr()) });
            let filter = |chain: &str| Bsf::new(chain, &par, tb).map(Some);
            let bsf = match (container, codec.as_str(), framing) {
                (Container::MpegTs, "h264", Framing::LengthPrefixed(size)) => {
                    Some(Bsf::h264_annex_b(&par, tb, size)?)
                }
                (Container::MpegTs, "hevc", Framing::LengthPrefixed(_)) => {
                    filter("hevc_mp4toannexb,dump_extra=freq=keyframe")?
                }
                (Container::MpegTs, "h264" | "hevc", _) => filter("dump_extra=freq=keyframe")?,
                // ADTS-framed AAC (from MPEG-TS) carries its decoder config in every frame
                // header; MP4 wants it once, in the sample description.
                (Container::FragmentedMp4, "aac", _) => {
                    // SAFETY: as above.
                    let extradata = unsafe { extradata(par.as_ptr()) };
                    if extradata.is_empty() {
                        filter("aac_adtstoasc")?
                    } else {
                        None
                    }
                }
                _ => None,
            };
            (Work::Copy(bsf), codec.clone())
        } else if encodable(&codec) && container != Container::Webm {
            // (The encoder makes H.264 and AAC, which WebM does not carry.)
            let t = Transcoder::new(stream, kind, container, settings)?;
            let name = t.codec_name();
            if let Some(note) = t.note() {
                notes.push(note.to_owned());
            }
            notes.push(format!("input stream {} ({codec}) encoded as {name}", stream.index()));
            (Work::Encode(Box::new(t)), name)
        } else {
            return Err(StreamError::UnsupportedCodec { index: stream.index(), codec });
        };

        let mut lane = Lane {
            input_index: stream.index(),
            kind,
            codec: out_codec.clone(),
            framing: Framing::Whole,
            params: StreamParams {
                kind,
                codec: out_codec,
                width: 0,
                height: 0,
                frame_rate: (0, 1),
                sample_rate: 0,
                channels: 0,
                time_base: (0, 1),
                encoded: matches!(work, Work::Encode(_)),
            },
            work,
            input_time_base: tb,
            last_dts: None,
            last_duration: 0,
            repaired: 0,
        };
        let out = lane.output_parameters(stream);
        // SAFETY: `out` points at parameters owned by the stream, filter or encoder.
        unsafe {
            lane.framing = Framing::from_extradata(&lane.codec, extradata(out));
            lane.params.width = u32::try_from((*out).width).unwrap_or(0);
            lane.params.height = u32::try_from((*out).height).unwrap_or(0);
            lane.params.sample_rate = u32::try_from((*out).sample_rate).unwrap_or(0);
            lane.params.channels = u32::try_from((*out).ch_layout.nb_channels).unwrap_or(0);
        }
        if kind == MediaKind::Video {
            let r = match &lane.work {
                Work::Encode(t) => t.frame_rate(),
                Work::Copy(_) => stream.avg_frame_rate(),
            };
            lane.params.frame_rate = (r.numerator(), r.denominator());
        }
        Ok(lane)
    }

    /// Parameters of the packets this lane hands to the muxer.
    pub(crate) fn output_parameters(
        &self,
        stream: &ff::format::stream::Stream<'_>,
    ) -> *const ffi::AVCodecParameters {
        match &self.work {
            Work::Copy(Some(bsf)) => bsf.output_parameters(),
            // SAFETY: the pointer is to the stream's own parameters, valid while the input lives.
            Work::Copy(None) => unsafe { stream.parameters().as_ptr() },
            Work::Encode(t) => t.parameters(),
        }
    }

    /// Time base of the packets this lane hands to the muxer.
    pub(crate) fn time_base(&self) -> ff::Rational {
        match &self.work {
            Work::Copy(Some(bsf)) => bsf.output_time_base(),
            Work::Copy(None) => self.input_time_base,
            Work::Encode(t) => t.time_base(),
        }
    }

    /// Gives missing or non-increasing timestamps values the muxer accepts, counting each.
    fn repair(&mut self, packet: &mut ff::Packet) {
        let mut repaired = false;
        let mut dts = packet.dts();
        if dts.is_none() {
            dts = packet.pts().or(self.last_dts.map(|d| d + self.last_duration.max(1)));
            repaired = true;
        }
        if let (Some(d), Some(last)) = (dts, self.last_dts) {
            if d <= last {
                dts = Some(last + 1);
                repaired = true;
            }
        }
        let pts = match (packet.pts(), dts) {
            (Some(p), Some(d)) if p < d => {
                repaired = true;
                Some(d)
            }
            (None, d) => {
                repaired = true;
                d
            }
            (p, _) => p,
        };
        packet.set_dts(dts);
        packet.set_pts(pts);
        self.last_dts = dts;
        self.last_duration = packet.duration();
        if repaired {
            self.repaired += 1;
        }
    }

    /// Processes one input packet; what is ready for the muxer is appended to `out`.
    /// Packets with no timestamp at all before the first one that has one are dropped
    /// (RTSP's first packets), and `false` is returned for them.
    pub(crate) fn process(
        &mut self,
        mut packet: ff::Packet,
        out: &mut Vec<ff::Packet>,
    ) -> Result<bool, StreamError> {
        if self.last_dts.is_none() && packet.dts().is_none() && packet.pts().is_none() {
            return Ok(false);
        }
        if let Work::Copy(_) = self.work {
            self.repair(&mut packet);
        }
        match &mut self.work {
            Work::Copy(None) => out.push(packet),
            Work::Copy(Some(bsf)) => bsf.filter(Some(packet), out)?,
            Work::Encode(t) => t.process(Some(packet), out)?,
        }
        Ok(true)
    }

    /// Flushes whatever the filter or encoder still holds.
    pub(crate) fn flush(&mut self, out: &mut Vec<ff::Packet>) -> Result<(), StreamError> {
        match &mut self.work {
            Work::Copy(None) => {}
            Work::Copy(Some(bsf)) => bsf.filter(None, out)?,
            Work::Encode(t) => t.process(None, out)?,
        }
        Ok(())
    }
}

/// The codec extradata behind `par`, or an empty slice.
///
/// # Safety
/// `par` must point at valid codec parameters that outlive the returned slice.
pub(crate) unsafe fn extradata<'a>(par: *const ffi::AVCodecParameters) -> &'a [u8] {
    // SAFETY: per the caller's guarantee; FFmpeg keeps `extradata_size` bytes behind it.
    unsafe {
        let data = (*par).extradata;
        let size = usize::try_from((*par).extradata_size).unwrap_or(0);
        if data.is_null() || size == 0 {
            &[]
        } else {
            std::slice::from_raw_parts(data, size)
        }
    }
}

/// The streams a recording keeps: the input's best video stream and its best audio
/// stream, in that order (shared with [`crate::digest_file`], which must pick the same).
pub(crate) fn recordable_streams(input: &ff::format::context::Input) -> Vec<(usize, MediaKind)> {
    let mut out = Vec::new();
    for (ty, kind) in
        [(ff::media::Type::Video, MediaKind::Video), (ff::media::Type::Audio, MediaKind::Audio)]
    {
        // A cover picture attached to an audio file is not footage.
        let footage = |s: &ff::format::stream::Stream<'_>| {
            !s.disposition().contains(ff::format::stream::Disposition::ATTACHED_PIC)
        };
        let best = input
            .streams()
            .best(ty)
            .filter(footage)
            .or_else(|| input.streams().find(|s| s.parameters().medium() == ty && footage(s)));
        if let Some(stream) = best {
            out.push((stream.index(), kind));
        }
    }
    out
}

/// The container an existing file is best imported into: MPEG-TS when it carries every
/// stream to be recorded (copied, or encoded from raw device formats), else fragmented
/// MP4 (H.264/HEVC with Opus, as Chromium's and Safari's MP4 recordings are), else WebM
/// (a browser's VP8/VP9/AV1 with Opus; each segment a complete WebM file). The file is
/// opened and probed once to see its codecs; if no container carries them all, MPEG-TS,
/// whose recording then fails naming the codec.
pub fn container_for(source: &Source, settings: &Settings) -> Result<Container, InputError> {
    crate::init();
    let watchdog = Watchdog::new();
    let input = crate::input::open(source, settings, &watchdog)?;
    let codecs: Vec<String> = recordable_streams(&input)
        .into_iter()
        .filter_map(|(i, _)| input.stream(i).map(|s| codec_name(s.parameters().id())))
        .collect();
    let fits = |c: Container| {
        codecs.iter().all(|codec| copyable(c, codec) || (c != Container::Webm && encodable(codec)))
    };
    Ok([Container::MpegTs, Container::FragmentedMp4, Container::Webm]
        .into_iter()
        .find(|c| fits(*c))
        .unwrap_or(Container::MpegTs))
}

/// The lanes for an input: its best video stream and its best audio stream.
pub(crate) fn select(
    input: &ff::format::context::Input,
    settings: &Settings,
    notes: &mut Vec<String>,
) -> Result<Vec<Lane>, StreamError> {
    let mut lanes = Vec::new();
    for (index, kind) in recordable_streams(input) {
        if let Some(stream) = input.stream(index) {
            lanes.push(Lane::new(&stream, kind, settings.container, settings, notes)?);
        }
    }
    if lanes.is_empty() {
        return Err(StreamError::NoMedia);
    }
    for stream in input.streams() {
        if !lanes.iter().any(|l| l.input_index == stream.index()) {
            let codec = codec_name(stream.parameters().id());
            notes.push(format!("input stream {} ({codec}) was not recorded", stream.index()));
        }
    }
    Ok(lanes)
}
