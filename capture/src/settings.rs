//! What to record from, and how to cut it.

use std::time::Duration;

pub use custody_format::record::Container;

/// FFmpeg's muxer for a container capture records into; `None` for the containers only a
/// browser records (self-contained MP4, photos), which capture reads (their segments are
/// digested whole) but does not write. WebM is written as a browser writes it, every
/// segment a complete file (for importing a browser's own VP8/VP9/AV1 and Opus, which
/// neither MPEG-TS nor MP4 carries in FFmpeg 5.1).
pub(crate) fn muxer_name(container: Container) -> Option<&'static str> {
    match container {
        Container::MpegTs => Some("mpegts"),
        Container::FragmentedMp4 => Some("mp4"),
        Container::Webm => Some("webm"),
        Container::SelfContainedMp4 | Container::Photo => None,
    }
}

/// An input: a file, a network URL (listener or client), or a capture device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// What FFmpeg opens: a path, a URL (`udp://127.0.0.1:5000`, `srt://:9000?mode=listener`,
    /// `rtmp://127.0.0.1:1935/live/x`), a device (`/dev/video0`) or a lavfi graph.
    pub url: String,
    /// The input format, when it cannot or should not be probed (`v4l2`, `lavfi`, `mpegts`).
    pub format: Option<String>,
    /// Demuxer, protocol and device options (`listen=1`, `video_size=1280x720`, …).
    pub options: Vec<(String, String)>,
    /// A live source (network or device): the stall timeout applies while waiting for the
    /// first packet too, and a lost connection ends the recording rather than failing it
    /// when it comes as an end of stream.
    pub live: bool,
}

impl Source {
    /// A file already recorded.
    pub fn file(path: impl AsRef<std::path::Path>) -> Self {
        Source {
            url: path.as_ref().to_string_lossy().into_owned(),
            format: None,
            options: Vec::new(),
            live: false,
        }
    }

    /// A network stream or listener.
    pub fn network(url: impl Into<String>) -> Self {
        Source { url: url.into(), format: None, options: Vec::new(), live: true }
    }

    /// A capture device through libavdevice (`v4l2`, `lavfi`, …).
    pub fn device(format: impl Into<String>, url: impl Into<String>) -> Self {
        Source { url: url.into(), format: Some(format.into()), options: Vec::new(), live: true }
    }

    /// The input format to use instead of probing.
    #[must_use]
    pub fn with_format(mut self, format: impl Into<String>) -> Self {
        self.format = Some(format.into());
        self
    }

    /// Adds a demuxer, protocol or device option.
    #[must_use]
    pub fn with_option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.push((key.into(), value.into()));
        self
    }
}

/// How to cut and bound the recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Cut at the first video keyframe at least this long after the segment's start.
    pub target: Duration,
    /// Force a cut at any packet once a segment is this long (keyframes stopped coming).
    pub cap: Duration,
    /// The container of the segments.
    pub container: Container,
    /// Segments held for a slow consumer before the capture waits for it (backpressure:
    /// nothing is dropped, the input is read more slowly instead). With the default of 4
    /// and 2 s segments, at most ~8 s of footage waits in memory (about 12 MB at 1080p and
    /// 12 Mbit/s).
    pub channel_capacity: usize,
    /// How long opening the input (probing, waiting for a listener's sender) may take.
    pub open_timeout: Duration,
    /// How long a read may go without a packet before the input counts as stalled.
    pub stall_timeout: Duration,
    /// FFmpeg's `analyzeduration` for probing (bounded so a live start is quick).
    pub analyze_duration: Duration,
    /// FFmpeg's `probesize` in bytes.
    pub probe_size: u64,
    /// For encoded (raw device) input: the H.264 encoder's keyframe interval, in seconds.
    pub encode_keyframe_interval: Duration,
    /// For a live input whose sender hangs up or goes silent (a phone on street Wi-Fi): how
    /// long to listen again (reopening the input on the same address) for a sender to come
    /// back. The same recording goes on after a gap when the streams match; when they do
    /// not, it ends ([`crate::EndReason::SenderChanged`]) and a new one starts. Zero ends
    /// the recording at the first loss.
    pub reconnect_wait: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            target: Duration::from_secs(2),
            cap: Duration::from_secs(10),
            container: Container::MpegTs,
            channel_capacity: 4,
            open_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(10),
            analyze_duration: Duration::from_secs(2),
            probe_size: 5_000_000,
            encode_keyframe_interval: Duration::from_secs(2),
            reconnect_wait: Duration::ZERO,
        }
    }
}
