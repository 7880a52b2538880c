//! Live media ingest: the only crate of custody that links FFmpeg.
//!
//! `custody-capture` turns whatever an observer has — a webcam through libavdevice, a
//! phone streaming over SRT, RTMP, RTSP or UDP MPEG-TS, or a file already recorded — into a
//! bounded stream of short, independently playable segments cut at keyframes. Each segment
//! is muxed into memory (never to disk) by one continuous muxer, hashed as its bytes are
//! written, given its packet digest (`docs/format.md`) and stamped with the device's
//! wall-clock time, ready for the vault to seal and sign.
//!
//! ```no_run
//! use custody_capture::{Capture, Event, Settings, Source};
//! let capture = Capture::start(Source::file("clip.mp4"), Settings::default());
//! for event in capture {
//!     match event {
//!         Event::Started(s) => println!("streams: {:?}", s.streams),
//!         Event::Segment(seg) => println!("segment {} of {} bytes", seg.seq, seg.len()),
//!         Event::End(end) => println!("ended: {:?}", end.reason),
//!         _ => {}
//!     }
//! }
//! ```
//!
//! A capture runs on three busy threads: the capture thread demuxes, filters and muxes;
//! one hashes the segment bytes in place as the muxer writes them; one computes the packet
//! digest from references to the muxed packets. Every hand-off is bounded (bytes the
//! hashers may lag by, segments waiting for their hashes, segments waiting for the
//! consumer), so memory stays bounded (under 100 MiB at 1080p) however long the recording
//! runs. On two cores this segments and hashes a 1080p file about as fast as FFmpeg's own
//! segment muxer writes it to memory unhashed (`docs/benchmarks.md`).
//!
//! [`digest_file`] computes the packet digests of any media file cut where a recording's
//! segments were cut, so an original from the phone can be matched against the recording.
//! [`remux_to_mp4`], [`thumbnails`] and [`packet_hashes`] read a recording back from its
//! decrypted segments, in memory, for export, reports and matching.
//!
//! [`browser_segment`] reads a segment a browser recorded (a complete WebM or MP4 file, or
//! a photo) and computes what its record must state; [`remux_browser`] joins such a
//! recording into one file.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod annexb;
mod browser;
mod bsf;
mod clock;
mod digest_worker;
mod encode;
mod ffmpeg_log;
mod file_digest;
mod input;
mod interleave;
mod lane;
mod matching;
mod muxer;
mod recorder;
mod replay;
mod segment;
mod settings;
mod sink;

pub use browser::{
    browser_packet_hashes, browser_segment, digest_by_counts, jpeg_size, mp4_init, remux_browser,
    remux_format, segment_media, viewing_copy, BrowserError, BrowserSegment, TimedSegment,
};
pub use bsf::BsfError;
pub use custody_format::digest::{MediaKind, PacketDigest};
pub use encode::EncodeError;
pub use ffmpeg_log::{explain, ffmpeg_messages, let_ffmpeg_log_through};
pub use file_digest::{digest_file, FileDigestError, FileSegmentDigest};
pub use input::InputError;
pub use lane::{container_for, StreamError};
pub use matching::{compare, Comparison, SegmentMatch, SegmentOutcome, SegmentSpan};
pub use muxer::MuxError;
pub use recorder::{Capture, CaptureError, StopHandle};
pub use replay::{
    packet_hashes, remux_to_mp4, remux_to_mp4_turned, thumbnails, Media, PacketHash, Pieces,
    RemuxSummary, ReplayError,
};
pub use segment::{Boundary, CutReason, End, EndReason, Event, Segment, Started, StreamParams};
pub use settings::{Container, Settings, Source};
pub use sink::recycle;

/// Registers FFmpeg's devices and formats once per process.
pub(crate) fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // `init` only registers (devices, network); it has no failure that matters here.
        let _ = ffmpeg_next::init();
        // FFmpeg's own chatter (encoder statistics, probing notes) would garble a terminal
        // status line, and its errors are in its words: its warnings and errors are kept
        // (`ffmpeg_log`) for custody's own error, and reach stderr only when asked for.
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Error);
        ffmpeg_log::install();
        ffmpeg_next::format::network::init();
    });
}

/// A timestamp in `time_base` units, in microseconds (saturating).
pub(crate) fn recorder_time(v: i64, time_base: ffmpeg_next::Rational) -> i64 {
    let den = i128::from(time_base.denominator()).max(1);
    let us = i128::from(v) * i128::from(time_base.numerator()) * 1_000_000 / den;
    i64::try_from(us).unwrap_or(if us < 0 { i64::MIN } else { i64::MAX })
}
