//! The one continuous segment muxer of a recording, writing into memory.
//!
//! One muxer for the whole recording keeps timestamps and continuity counters running
//! across cuts, so the segments concatenate without gaps (a muxer per segment would shift
//! the first one's timestamps). A cut flushes the muxer's buffered packets
//! (`av_write_frame(ctx, NULL)`), then the AVIO buffer (`avio_flush`), and takes what the
//! in-memory sink holds: that is the segment.

use ff::ffi;
use ff::packet::Mut as _;
use ffmpeg_next as ff;

use crate::settings::Container;
use crate::sink::{Deferred, Hashed, SharedSink};

/// Why the segment muxer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MuxError {
    /// Capture does not write this container (it is one a browser records).
    #[error("capture cannot record into the {container:?} container")]
    UnsupportedContainer {
        /// The container asked for.
        container: Container,
    },
    /// The muxer could not be created or configured.
    #[error("cannot set up the {muxer} muxer: {source}")]
    Setup {
        /// The muxer's name.
        muxer: &'static str,
        /// FFmpeg's error.
        source: ff::Error,
    },
    /// The muxer refused a packet (for example timestamps it cannot carry).
    #[error("the {muxer} muxer refused a packet of stream {stream}: {source}")]
    Write {
        /// The muxer's name.
        muxer: &'static str,
        /// Output stream index.
        stream: usize,
        /// FFmpeg's error.
        source: ff::Error,
    },
    /// The thread hashing the segment bytes stopped; the hash cannot be vouched for.
    #[error("the segment hashing thread stopped")]
    HashThread,
    /// Flushing at a cut or writing the trailer failed.
    #[error("the {muxer} muxer failed to flush: {source}")]
    Flush {
        /// The muxer's name.
        muxer: &'static str,
        /// FFmpeg's error.
        source: ff::Error,
    },
}

/// One output stream: the parameters of the packets that will go in, and their time base.
#[derive(Clone, Copy)]
pub(crate) struct OutStream {
    pub(crate) parameters: *const ffi::AVCodecParameters,
    pub(crate) time_base: ff::Rational,
}

pub(crate) struct Muxer {
    octx: ff::format::context::Output,
    sink: SharedSink,
    container: Container,
    name: &'static str,
    cuts: u64,
    /// The streams, for WebM, whose every segment is a file of its own: a cut ends one
    /// muxer and starts the next on the same sink, so the next segment begins with its
    /// own EBML header, Segment start, Info and Tracks (`docs/format.md` 6.4). The
    /// parameters stay valid as long as the recording's lanes, which outlive the muxer.
    streams: Vec<OutStream>,
}

impl Muxer {
    /// A muxer for these streams; `segment_size` is what a segment is expected to take
    /// (0 when unknown), the room its first buffer is given.
    pub(crate) fn new(
        container: Container,
        streams: &[OutStream],
        segment_size: usize,
    ) -> Result<Self, MuxError> {
        let muxer = crate::settings::muxer_name(container)
            .ok_or(MuxError::UnsupportedContainer { container })?;
        let sink = SharedSink::with_capacity(segment_size);
        let octx = open_output(container, muxer, streams, &sink)?;
        Ok(Muxer { octx, sink, container, name: muxer, cuts: 0, streams: streams.to_vec() })
    }
}

impl Drop for Muxer {
    fn drop(&mut self) {
        self.release_io();
    }
}

/// A muxer writing into `sink`, its header written.
fn open_output(
    container: Container,
    muxer: &'static str,
    streams: &[OutStream],
    sink: &SharedSink,
) -> Result<ff::format::context::Output, MuxError> {
    {
        let setup = |source| MuxError::Setup { muxer, source };
        let io = ff::format::context::StreamIo::from_write(sink.clone()).map_err(setup)?;
        let mut octx = ff::format::output_to_stream(io, None, Some(muxer)).map_err(setup)?;
        for s in streams {
            // SAFETY: `octx` is a valid output context; `s.parameters` points at live
            // parameters owned by the caller's input stream, encoder or filter.
            unsafe {
                let st = ffi::avformat_new_stream(octx.as_mut_ptr(), std::ptr::null());
                if st.is_null() {
                    return Err(setup(ff::Error::Other { errno: ffi::ENOMEM }));
                }
                let res = ffi::avcodec_parameters_copy((*st).codecpar, s.parameters);
                if res < 0 {
                    return Err(setup(ff::Error::from(res)));
                }
                // The input container's codec tag means nothing in the output container.
                (*(*st).codecpar).codec_tag = 0;
                (*st).time_base = s.time_base.into();
            }
        }
        let mut options = ff::Dictionary::new();
        if container == Container::FragmentedMp4 {
            // A fragment at every explicit flush, fragments that do not refer back into the
            // init segment's offsets, and the moov written only once the first packets are
            // in: AAC from MPEG-TS (ADTS) has no decoder config until `aac_adtstoasc`,
            // which the muxer inserts itself, has seen a packet.
            options.set("movflags", "frag_custom+delay_moov+default_base_moof");
        }
        // From here on the muxer writes into the segment's buffer in place.
        // SAFETY: `pb` is the context `output_to_stream` made on a clone of `sink`, with
        // nothing written yet; it lives as long as `octx`, which is detached from the sink
        // before it drops (here on failure, else by `Muxer::release_io`).
        unsafe { sink.attach((*octx.as_mut_ptr()).pb) };
        if let Err(e) = octx.write_header_with(options) {
            sink.detach();
            return Err(setup(e));
        }
        Ok(octx)
    }
}

impl Muxer {
    /// The time base the muxer chose for output stream `index`.
    pub(crate) fn time_base(&self, index: usize) -> ff::Rational {
        self.octx.stream(index).map_or(ff::Rational::new(1, 90_000), |s| s.time_base())
    }

    /// The muxer's name, for messages.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// Writes one packet, already in the output stream's time base.
    pub(crate) fn write(&mut self, packet: &mut ff::Packet) -> Result<(), MuxError> {
        // SAFETY: both are valid; `av_write_frame` does not take ownership of the packet.
        let res = unsafe { ffi::av_write_frame(self.octx.as_mut_ptr(), packet.as_mut_ptr()) };
        if res < 0 {
            return Err(MuxError::Write {
                muxer: self.name(),
                stream: packet.stream(),
                source: ff::Error::from(res),
            });
        }
        Ok(())
    }

    /// Flushes everything written so far out of the muxer and returns it with its hash, to
    /// come.
    pub(crate) fn cut(&mut self) -> Result<Deferred<Hashed>, MuxError> {
        let muxer = self.name();
        if self.container == Container::Webm {
            // This segment's file ends here; the next one's header goes to the sink next.
            let done = self.finish()?;
            self.release_io();
            self.octx = open_output(self.container, muxer, &self.streams, &self.sink)?;
            self.cuts += 1;
            return Ok(done);
        }
        // SAFETY: a null packet asks a muxer with AVFMT_ALLOW_FLUSH (mpegts, mp4) to write
        // out what it buffers; `pb` is our custom AVIO context.
        unsafe {
            let ctx = self.octx.as_mut_ptr();
            // With `delay_moov`, the first flush writes only the init segment (the moov);
            // a second one writes the fragment of the samples so far.
            let flushes =
                if self.container == Container::FragmentedMp4 && self.cuts == 0 { 2 } else { 1 };
            for _ in 0..flushes {
                let res = ffi::av_write_frame(ctx, std::ptr::null_mut());
                if res < 0 {
                    return Err(MuxError::Flush { muxer, source: ff::Error::from(res) });
                }
            }
            self.cuts += 1;
            ffi::avio_flush((*ctx).pb);
            if (*(*ctx).pb).error < 0 {
                return Err(MuxError::Flush { muxer, source: ff::Error::from((*(*ctx).pb).error) });
            }
            if self.container == Container::MpegTs {
                // PAT/PMT are repeated before every video keyframe, but not for audio-only
                // recordings; ask for them at the start of the next segment as well.
                let name = c"mpegts_flags";
                let value = c"+resend_headers";
                ffi::av_opt_set((*ctx).priv_data, name.as_ptr(), value.as_ptr(), 0);
            }
        }
        self.take_pending()
    }

    /// Writes the trailer and returns the last bytes with their hash, to come.
    pub(crate) fn finish(&mut self) -> Result<Deferred<Hashed>, MuxError> {
        let muxer = self.name();
        self.octx.write_trailer().map_err(|source| MuxError::Flush { muxer, source })?;
        // SAFETY: `pb` is our custom AVIO context, valid until `octx` drops.
        unsafe { ffi::avio_flush((*self.octx.as_mut_ptr()).pb) };
        self.take_pending()
    }

    /// Flushes the AVIO context and gives it its own buffer back, as FFmpeg must find it
    /// when it frees the context.
    fn release_io(&mut self) {
        // SAFETY: `pb` is our custom AVIO context, valid until `octx` drops.
        unsafe { ffi::avio_flush((*self.octx.as_mut_ptr()).pb) };
        self.sink.detach();
    }

    /// Bytes muxed since the last cut.
    pub(crate) fn pending(&self) -> usize {
        self.sink.pending()
    }

    /// Takes what was muxed since the last cut, with its hash to come, without flushing.
    pub(crate) fn take_pending(&mut self) -> Result<Deferred<Hashed>, MuxError> {
        match self.sink.take() {
            Deferred::Ready(None) => Err(MuxError::HashThread),
            taken => Ok(taken),
        }
    }
}
