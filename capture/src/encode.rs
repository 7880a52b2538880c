//! Encoding raw or MJPEG device input: H.264 with libx264 (a built-in MPEG-2 or MPEG-4
//! encoder when the linked FFmpeg lacks it, and the header notes say so), AAC audio.
//!
//! Only capture devices produce such streams; coded input is always copied as it came.
//! libx264 is used with its defaults (closed GOP, every keyframe an IDR with its parameter
//! sets in band) plus a fixed keyframe interval and `zerolatency`, so segments decode alone
//! and are cut within a frame of being captured. The encoder's flags are never replaced
//! (doing so dropped closed-GOP and made most TS segments undecodable alone).

use custody_format::digest::MediaKind;
use ff::ffi;
use ff::Rescale as _;
use ffmpeg_next as ff;

use crate::settings::{Container, Settings};

/// Why a device stream could not be encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// No usable encoder in the linked FFmpeg.
    #[error("no {0} encoder in the linked FFmpeg")]
    NoEncoder(&'static str),
    /// Setting up or running a decoder, scaler or encoder failed.
    #[error("{stage} failed: {source}")]
    Codec {
        /// What was being done.
        stage: &'static str,
        /// FFmpeg's error.
        source: ff::Error,
    },
    /// The device delivers audio in a sample format this encoder path does not convert.
    #[error("unsupported audio sample format {0:?}")]
    SampleFormat(ff::format::Sample),
}

fn codec_err(stage: &'static str) -> impl Fn(ff::Error) -> EncodeError {
    move |source| EncodeError::Codec { stage, source }
}

enum Kind {
    Video {
        decoder: ff::decoder::Video,
        encoder: ff::encoder::Video,
        scaler: Option<ff::software::scaling::Context>,
        last_pts: Option<i64>,
        frame_duration: i64,
        rate: ff::Rational,
    },
    Audio {
        decoder: ff::decoder::Audio,
        encoder: ff::encoder::Audio,
        channels: usize,
        /// Planar float samples waiting to fill an encoder frame, one Vec per channel.
        pending: Vec<Vec<f32>>,
        /// Samples handed to the encoder so far (the next frame's pts, in 1/rate).
        next_pts: Option<i64>,
        frame_size: usize,
        /// Time base of the decoded frames' timestamps (the input stream's).
        input_time_base: ff::Rational,
    },
}

/// Decodes a raw device stream and encodes it for the segments.
pub(crate) struct Transcoder {
    kind: Kind,
    parameters: ff::codec::Parameters,
    time_base: ff::Rational,
    codec_name: String,
    note: Option<String>,
}

fn decoder_context(
    stream: &ff::format::stream::Stream<'_>,
) -> Result<ff::codec::Context, EncodeError> {
    ff::codec::context::Context::from_parameters(stream.parameters())
        .map_err(codec_err("opening the decoder"))
}

impl Transcoder {
    pub(crate) fn new(
        stream: &ff::format::stream::Stream<'_>,
        kind: MediaKind,
        container: Container,
        settings: &Settings,
    ) -> Result<Self, EncodeError> {
        match kind {
            MediaKind::Video => Self::video(stream, container, settings),
            _ => Self::audio(stream, container),
        }
    }

    fn video(
        stream: &ff::format::stream::Stream<'_>,
        container: Container,
        settings: &Settings,
    ) -> Result<Self, EncodeError> {
        let decoder =
            decoder_context(stream)?.decoder().video().map_err(codec_err("opening the decoder"))?;
        let mut rate = stream.avg_frame_rate();
        if rate.numerator() <= 0 || rate.denominator() <= 0 {
            rate = stream.rate();
        }
        if rate.numerator() <= 0 || rate.denominator() <= 0 {
            rate = ff::Rational::new(25, 1);
        }
        let (codec, name, note) = match ff::encoder::find_by_name("libx264") {
            Some(c) => (c, "h264", None),
            None => {
                let (id, name) = match container {
                    Container::MpegTs => (ff::codec::Id::MPEG2VIDEO, "mpeg2video"),
                    Container::FragmentedMp4 => (ff::codec::Id::MPEG4, "mpeg4"),
                    // The recorder refuses these before any encoder is made.
                    Container::Webm | Container::SelfContainedMp4 | Container::Photo => {
                        return Err(EncodeError::NoEncoder("video for this container"))
                    }
                };
                let c = ff::encoder::find(id).ok_or(EncodeError::NoEncoder("video"))?;
                (c, name, Some(format!("libx264 is not available: video encoded with {name}")))
            }
        };
        let time_base = stream.time_base();
        let mut enc = ff::codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(codec_err("creating the video encoder"))?;
        enc.set_width(decoder.width());
        enc.set_height(decoder.height());
        enc.set_format(ff::format::Pixel::YUV420P);
        enc.set_time_base(time_base);
        enc.set_frame_rate(Some(rate));
        let fps = f64::from(rate);
        let gop = (fps * settings.encode_keyframe_interval.as_secs_f64()).round().max(1.0) as u32;
        enc.set_gop(gop);
        if container == Container::FragmentedMp4 {
            // MP4 keeps the parameter sets in the sample description. OR the flag in: the
            // encoder's other default flags must stay.
            // SAFETY: the context is valid and not yet opened.
            unsafe { (*enc.as_mut_ptr()).flags |= ffi::AV_CODEC_FLAG_GLOBAL_HEADER as i32 };
        }
        let mut options = ff::Dictionary::new();
        if name == "h264" {
            options.set("preset", "veryfast");
            options.set("tune", "zerolatency");
            options.set("x264-params", &format!("keyint={gop}:min-keyint={gop}:scenecut=0"));
        }
        let encoder =
            enc.open_as_with(codec, options).map_err(codec_err("opening the video encoder"))?;
        let parameters = ff::codec::Parameters::from(&encoder);
        // One frame, in the stream's time base.
        let frame_duration = (f64::from(time_base.denominator())
            / (fps.max(1e-3) * f64::from(time_base.numerator().max(1))))
        .round()
        .max(1.0) as i64;
        Ok(Transcoder {
            kind: Kind::Video {
                decoder,
                encoder,
                scaler: None,
                last_pts: None,
                frame_duration,
                rate,
            },
            parameters,
            time_base,
            codec_name: name.to_owned(),
            note,
        })
    }

    fn audio(
        stream: &ff::format::stream::Stream<'_>,
        container: Container,
    ) -> Result<Self, EncodeError> {
        let decoder =
            decoder_context(stream)?.decoder().audio().map_err(codec_err("opening the decoder"))?;
        let codec = ff::encoder::find(ff::codec::Id::AAC).ok_or(EncodeError::NoEncoder("aac"))?;
        let rate = decoder.rate();
        let channels = usize::from(decoder.channels().clamp(1, 2));
        let mut enc = ff::codec::context::Context::new_with_codec(codec)
            .encoder()
            .audio()
            .map_err(codec_err("creating the audio encoder"))?;
        enc.set_rate(i32::try_from(rate).unwrap_or(48_000));
        enc.set_format(ff::format::Sample::F32(ff::format::sample::Type::Planar));
        enc.set_channel_layout(ff::ChannelLayout::default(channels as i32));
        enc.set_channels(channels as i32);
        enc.set_bit_rate(128_000);
        let time_base = ff::Rational::new(1, i32::try_from(rate).unwrap_or(48_000));
        enc.set_time_base(time_base);
        if container == Container::FragmentedMp4 {
            // SAFETY: the context is valid and not yet opened.
            unsafe { (*enc.as_mut_ptr()).flags |= ffi::AV_CODEC_FLAG_GLOBAL_HEADER as i32 };
        }
        let encoder = enc.open_as(codec).map_err(codec_err("opening the audio encoder"))?;
        let frame_size = usize::try_from(encoder.frame_size()).unwrap_or(1024).max(1);
        let parameters = ff::codec::Parameters::from(&encoder);
        Ok(Transcoder {
            kind: Kind::Audio {
                decoder,
                encoder,
                channels,
                pending: vec![Vec::new(); channels],
                next_pts: None,
                frame_size,
                input_time_base: stream.time_base(),
            },
            parameters,
            time_base,
            codec_name: "aac".into(),
            note: None,
        })
    }

    pub(crate) fn codec_name(&self) -> String {
        self.codec_name.clone()
    }

    /// Something the header should say about this encoding (a fallback encoder).
    pub(crate) fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    pub(crate) fn frame_rate(&self) -> ff::Rational {
        match &self.kind {
            Kind::Video { rate, .. } => *rate,
            Kind::Audio { .. } => ff::Rational::new(0, 1),
        }
    }

    pub(crate) fn parameters(&self) -> *const ffi::AVCodecParameters {
        // SAFETY: the parameters are owned by `self` and outlive every use by the muxer,
        // which copies them when the stream is added.
        unsafe { self.parameters.as_ptr() }
    }

    pub(crate) fn time_base(&self) -> ff::Rational {
        self.time_base
    }

    /// Decodes `packet` (flushes everything with `None`) and appends encoded packets.
    pub(crate) fn process(
        &mut self,
        packet: Option<ff::Packet>,
        out: &mut Vec<ff::Packet>,
    ) -> Result<(), EncodeError> {
        let time_base = self.time_base;
        match &mut self.kind {
            Kind::Video { decoder, encoder, scaler, last_pts, frame_duration, .. } => {
                match &packet {
                    Some(p) => decoder.send_packet(p).map_err(codec_err("decoding video"))?,
                    None => decoder.send_eof().map_err(codec_err("decoding video"))?,
                }
                let mut frame = ff::frame::Video::empty();
                while decoder.receive_frame(&mut frame).is_ok() {
                    let Some(pts) = frame.timestamp().or(frame.pts()) else { continue };
                    // The encoder needs strictly increasing timestamps; a device that
                    // repeats one gets its frame dropped rather than the recording failed.
                    if last_pts.is_some_and(|l| pts <= l) {
                        continue;
                    }
                    *last_pts = Some(pts);
                    let mut scaled = ff::frame::Video::empty();
                    let send = if frame.format() == ff::format::Pixel::YUV420P {
                        &mut frame
                    } else {
                        let s = match scaler {
                            Some(s) => s,
                            None => scaler.insert(
                                ff::software::scaling::Context::get(
                                    frame.format(),
                                    frame.width(),
                                    frame.height(),
                                    ff::format::Pixel::YUV420P,
                                    encoder.width(),
                                    encoder.height(),
                                    ff::software::scaling::Flags::BILINEAR,
                                )
                                .map_err(codec_err("setting up the scaler"))?,
                            ),
                        };
                        s.run(&frame, &mut scaled).map_err(codec_err("scaling video"))?;
                        &mut scaled
                    };
                    send.set_pts(Some(pts));
                    // Let the encoder choose frame types (its GOP settings make keyframes).
                    send.set_kind(ff::picture::Type::None);
                    encoder.send_frame(send).map_err(codec_err("encoding video"))?;
                    drain(encoder, out, *frame_duration)?;
                }
                if packet.is_none() {
                    encoder.send_eof().map_err(codec_err("encoding video"))?;
                    drain(encoder, out, *frame_duration)?;
                }
            }
            Kind::Audio {
                decoder,
                encoder,
                channels,
                pending,
                next_pts,
                frame_size,
                input_time_base,
            } => {
                match &packet {
                    Some(p) => decoder.send_packet(p).map_err(codec_err("decoding audio"))?,
                    None => decoder.send_eof().map_err(codec_err("decoding audio"))?,
                }
                let mut frame = ff::frame::Audio::empty();
                while decoder.receive_frame(&mut frame).is_ok() {
                    if next_pts.is_none() {
                        // Later frames follow by sample count: the AAC encoder needs a
                        // gapless timeline, and a device's sample clock is its best clock.
                        let pts = frame.timestamp().or(frame.pts()).unwrap_or(0);
                        *next_pts = Some(pts.rescale(*input_time_base, time_base));
                    }
                    append_planar(&frame, *channels, pending)?;
                    while pending.first().map_or(0, Vec::len) >= *frame_size {
                        send_audio(encoder, pending, *frame_size, next_pts, out)?;
                    }
                }
                if packet.is_none() {
                    let n = pending.first().map_or(0, Vec::len);
                    if n > 0 {
                        send_audio(encoder, pending, n, next_pts, out)?;
                    }
                    encoder.send_eof().map_err(codec_err("encoding audio"))?;
                    drain(encoder, out, 0)?;
                }
            }
        }
        Ok(())
    }
}

fn drain(
    encoder: &mut ff::encoder::Encoder,
    out: &mut Vec<ff::Packet>,
    duration: i64,
) -> Result<(), EncodeError> {
    loop {
        let mut p = ff::Packet::empty();
        match encoder.receive_packet(&mut p) {
            Ok(()) => {
                if p.duration() <= 0 && duration > 0 {
                    p.set_duration(duration);
                }
                out.push(p);
            }
            Err(ff::Error::Other { errno: ffi::EAGAIN }) | Err(ff::Error::Eof) => return Ok(()),
            Err(e) => return Err(EncodeError::Codec { stage: "encoding", source: e }),
        }
    }
}

fn send_audio(
    encoder: &mut ff::encoder::Audio,
    pending: &mut [Vec<f32>],
    samples: usize,
    next_pts: &mut Option<i64>,
    out: &mut Vec<ff::Packet>,
) -> Result<(), EncodeError> {
    let channels = pending.len();
    let mut frame = ff::frame::Audio::new(
        ff::format::Sample::F32(ff::format::sample::Type::Planar),
        samples,
        ff::ChannelLayout::default(channels as i32),
    );
    frame.set_rate(encoder.rate());
    for (c, buf) in pending.iter_mut().enumerate() {
        let plane = frame.plane_mut::<f32>(c);
        let n = samples.min(plane.len()).min(buf.len());
        plane[..n].copy_from_slice(&buf[..n]);
        buf.drain(..n);
    }
    frame.set_pts(*next_pts);
    *next_pts = next_pts.map(|p| p + samples as i64);
    encoder.send_frame(&frame).map_err(codec_err("encoding audio"))?;
    drain(encoder, out, samples as i64)
}

/// Appends a decoded frame's samples, converted to float, to the per-channel buffers.
/// Channels beyond the encoder's two are dropped; a mono source stays mono.
fn append_planar(
    frame: &ff::frame::Audio,
    channels: usize,
    pending: &mut [Vec<f32>],
) -> Result<(), EncodeError> {
    use ff::format::sample::Type;
    use ff::format::Sample;
    let n = frame.samples();
    let src_channels = usize::from(frame.channels()).max(1);
    let format = frame.format();
    let planar = frame.is_planar();
    let width = match format {
        Sample::U8(_) => 1,
        Sample::I16(_) => 2,
        Sample::I32(_) | Sample::F32(_) => 4,
        Sample::F64(_) => 8,
        other => return Err(EncodeError::SampleFormat(other)),
    };
    let read = |bytes: &[u8]| -> f32 {
        match format {
            Sample::U8(_) => (f32::from(bytes[0]) - 128.0) / 128.0,
            Sample::I16(_) => f32::from(i16::from_ne_bytes([bytes[0], bytes[1]])) / 32768.0,
            Sample::I32(_) => {
                i32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as f32
                    / 2_147_483_648.0
            }
            Sample::F32(_) => f32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            _ => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&bytes[..8]);
                f64::from_ne_bytes(b) as f32
            }
        }
    };
    for (c, buf) in pending.iter_mut().enumerate().take(channels) {
        let src_c = c.min(src_channels - 1);
        for i in 0..n {
            let (plane, offset) = if planar || matches!(format, Sample::U8(Type::Planar)) {
                (src_c, i * width)
            } else {
                (0, (i * src_channels + src_c) * width)
            };
            let data = frame.data(plane);
            let Some(bytes) = data.get(offset..offset + width) else { break };
            buf.push(read(bytes));
        }
    }
    Ok(())
}
