//! A chain of bitstream filters, through the raw FFI (ffmpeg-next has no wrapper for them).
//!
//! MPEG-TS needs H.264/HEVC in Annex B framing with the parameter sets in band at every
//! keyframe, so each segment carries the headers it needs to decode alone: MP4/MKV/FLV
//! input gets `h264_mp4toannexb` (which inserts them before IDR frames), Annex B input gets
//! `dump_extra=freq=keyframe`. Fragmented MP4 from Annex B/ADTS input needs the opposite
//! (`aac_adtstoasc`); the muxer inserts that one itself.
//!
//! H.264 from MP4/MOV into MPEG-TS, the common case of an imported phone video, skips the
//! filters' packet copies: [`crate::annexb`] writes each access unit once, in its final form
//! (the `h264_mp4toannexb` filter is still set up, for the stream parameters it gives).

use std::ffi::CString;

use ff::ffi;
use ff::packet::Mut as _;
use ff::packet::Ref as _;
use ffmpeg_next as ff;

/// Why a bitstream filter chain failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BsfError {
    /// The chain could not be created (a filter missing from the linked FFmpeg).
    #[error("cannot create bitstream filter {chain:?}: {source}")]
    Create {
        /// The chain, as FFmpeg's filter list syntax.
        chain: String,
        /// FFmpeg's error.
        source: ff::Error,
    },
    /// A packet could not be filtered.
    #[error("bitstream filter {chain:?} failed: {source}")]
    Filter {
        /// The chain.
        chain: String,
        /// FFmpeg's error.
        source: ff::Error,
    },
}

/// An initialised filter chain for one stream.
pub(crate) struct Bsf {
    ctx: *mut ffi::AVBSFContext,
    chain: String,
    /// Set for H.264 from MP4/MOV into MPEG-TS: packets are converted by
    /// [`crate::annexb::convert`] instead of going through `ctx`.
    annex_b: Option<AnnexB>,
}

/// What [`crate::annexb::convert`] needs to know of a stream.
struct AnnexB {
    length_size: usize,
    /// SPS and PPS behind start codes: the extradata `h264_mp4toannexb` gives the stream.
    parameter_sets: Vec<u8>,
}

impl Bsf {
    /// A chain for a stream with these parameters and time base.
    pub(crate) fn new(
        chain: &str,
        par: &ff::codec::Parameters,
        time_base: ff::Rational,
    ) -> Result<Self, BsfError> {
        let create = |source| BsfError::Create { chain: chain.to_owned(), source };
        let c = CString::new(chain).map_err(|_| create(ff::Error::Other { errno: ffi::EINVAL }))?;
        let mut ctx = std::ptr::null_mut();
        // SAFETY: documented libavcodec usage; `ctx` is owned by the returned value (and
        // freed by `av_bsf_free` on every error path below).
        unsafe {
            let res = ffi::av_bsf_list_parse_str(c.as_ptr(), &mut ctx);
            if res < 0 || ctx.is_null() {
                return Err(create(ff::Error::from(res)));
            }
            let res = ffi::avcodec_parameters_copy((*ctx).par_in, par.as_ptr());
            if res < 0 {
                ffi::av_bsf_free(&mut ctx);
                return Err(create(ff::Error::from(res)));
            }
            (*ctx).time_base_in = time_base.into();
            let res = ffi::av_bsf_init(ctx);
            if res < 0 {
                ffi::av_bsf_free(&mut ctx);
                return Err(create(ff::Error::from(res)));
            }
        }
        Ok(Bsf { ctx, chain: chain.to_owned(), annex_b: None })
    }

    /// H.264 with `length_size`-byte NAL unit lengths (from an `avcC` record) into Annex B
    /// with an AUD, and the parameter sets at every keyframe, for MPEG-TS.
    pub(crate) fn h264_annex_b(
        par: &ff::codec::Parameters,
        time_base: ff::Rational,
        length_size: u8,
    ) -> Result<Self, BsfError> {
        let mut bsf = Bsf::new("h264_mp4toannexb", par, time_base)?;
        // SAFETY: `par_out` is valid while `bsf` lives; the slice is copied at once.
        let parameter_sets = unsafe { crate::lane::extradata(bsf.output_parameters()) }.to_vec();
        bsf.chain = "h264 to Annex B".to_owned();
        bsf.annex_b = Some(AnnexB { length_size: usize::from(length_size), parameter_sets });
        Ok(bsf)
    }

    /// The parameters of the filtered stream (e.g. Annex B extradata after mp4toannexb).
    pub(crate) fn output_parameters(&self) -> *const ffi::AVCodecParameters {
        // SAFETY: `ctx` is valid while `self` lives; `par_out` is set by `av_bsf_init`.
        unsafe { (*self.ctx).par_out }
    }

    /// The time base of the filtered packets.
    pub(crate) fn output_time_base(&self) -> ff::Rational {
        // SAFETY: as above.
        unsafe { (*self.ctx).time_base_out.into() }
    }

    /// Filters `packet` (or flushes, with `None`), appending every output packet to `out`.
    pub(crate) fn filter(
        &mut self,
        packet: Option<ff::Packet>,
        out: &mut Vec<ff::Packet>,
    ) -> Result<(), BsfError> {
        let fail =
            |res| BsfError::Filter { chain: self.chain.clone(), source: ff::Error::from(res) };
        if let Some(annex_b) = &self.annex_b {
            let Some(packet) = packet else { return Ok(()) };
            let mut converted = ff::Packet::empty();
            let done = crate::annexb::convert(
                packet.data().unwrap_or(&[]),
                annex_b.length_size,
                packet.is_key(),
                &annex_b.parameter_sets,
                |size| {
                    converted = ff::Packet::new(size);
                    converted.data_mut()
                },
            );
            if done.is_none() {
                return Err(fail(ffi::AVERROR_INVALIDDATA));
            }
            // SAFETY: both packets are valid; this copies timestamps, flags and side data.
            let res = unsafe { ffi::av_packet_copy_props(converted.as_mut_ptr(), packet.as_ptr()) };
            if res < 0 {
                return Err(fail(res));
            }
            out.push(converted);
            return Ok(());
        }
        // SAFETY: the packet is a valid, owned AVPacket (or null to flush); the filter takes
        // its reference and resets it, and ours is dropped afterwards.
        let res = unsafe {
            match packet {
                Some(mut p) => ffi::av_bsf_send_packet(self.ctx, p.as_mut_ptr()),
                None => ffi::av_bsf_send_packet(self.ctx, std::ptr::null_mut()),
            }
        };
        if res < 0 && res != ffi::AVERROR_EOF {
            return Err(fail(res));
        }
        loop {
            let mut p = ff::Packet::empty();
            // SAFETY: `p` is a clean packet owned by us.
            let res = unsafe { ffi::av_bsf_receive_packet(self.ctx, p.as_mut_ptr()) };
            if res == ffi::AVERROR(ffi::EAGAIN) || res == ffi::AVERROR_EOF {
                return Ok(());
            }
            if res < 0 {
                return Err(fail(res));
            }
            out.push(p);
        }
    }
}

impl Drop for Bsf {
    fn drop(&mut self) {
        // SAFETY: `ctx` was allocated by `av_bsf_list_parse_str` and is freed once.
        unsafe { ffi::av_bsf_free(&mut self.ctx) };
    }
}
