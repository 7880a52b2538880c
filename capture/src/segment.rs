//! What the capture hands to the vault: the recording's stream parameters, its segments and
//! the end event.

use custody_format::digest::{MediaKind, PacketDigest};
// Why a segment was cut and why a recording ended are the format's own values: capture
// reports them and the records carry them, so there is one definition of each.
pub use custody_format::record::{CutReason, EndReason, Gap};

use crate::settings::Container;

/// One stream of the recording, as the header record describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamParams {
    /// Pictures or sound.
    pub kind: MediaKind,
    /// FFmpeg's short codec name of the stream as recorded (`h264`, `aac`, …).
    pub codec: String,
    /// Picture width in pixels (0 for audio).
    pub width: u32,
    /// Picture height in pixels (0 for audio).
    pub height: u32,
    /// Average frame rate as a fraction (`(0, 1)` when unknown or for audio).
    pub frame_rate: (i32, i32),
    /// Samples per second (0 for video).
    pub sample_rate: u32,
    /// Audio channels (0 for video).
    pub channels: u32,
    /// The time base of the stream's timestamps in the recorded container.
    pub time_base: (i32, i32),
    /// Whether capture re-encoded this stream (raw or MJPEG device input) rather than
    /// copying the coded packets as they came.
    pub encoded: bool,
}

/// The recording has started: what is being recorded and from when.
#[derive(Clone, Debug, PartialEq)]
pub struct Started {
    /// The device's wall clock at the start, microseconds since the Unix epoch (UTC).
    pub start_utc_us: i64,
    /// FFmpeg's name of the input format (`mov,mp4,m4a,3gp,3g2,mj2`, `mpegts`, `lavfi`, …).
    pub input_format: String,
    /// The container the segments are written in.
    pub container: Container,
    /// The recorded streams, in the order of their indices in the segments.
    pub streams: Vec<StreamParams>,
    /// Human-readable notes the header should keep (e.g. which encoder was used, which
    /// input streams were left out).
    pub notes: Vec<String>,
    /// For a file, the duration its container declares, µs (`None` for a live input, or a
    /// file that declares none): an import that ends short of it ends on damage.
    pub source_duration_us: Option<i64>,
    /// Degrees clockwise the video must be turned for display (0, 90, 180, 270), as the
    /// input's display matrix says; `None` when it says nothing. The segments' container
    /// (MPEG-TS) cannot carry it, so the header records it and export writes it back.
    pub rotation: Option<u16>,
    /// The input streams that were not recorded (subtitles, data, timecode, a second video
    /// or audio track), as (kind, FFmpeg's codec name).
    pub dropped_streams: Vec<(MediaKind, String)>,
}

/// Where a segment starts, as [`crate::digest_file`] needs it to cut another copy of the
/// same media at the same place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Boundary {
    /// Media time of the packet that opened the segment, in microseconds from the packet
    /// that opened the recording (its first video keyframe).
    pub start_us: i64,
    /// Whether that packet was a video keyframe (false after a forced cut, and for
    /// recordings without video).
    pub at_keyframe: bool,
}

/// One cut of the recording: bytes that play alone, and everything the record needs.
#[derive(Clone, PartialEq)]
pub struct Segment {
    /// 1-based position in the recording.
    pub seq: u64,
    /// The container bytes, as muxed (MPEG-TS by default). For fragmented MP4, segment 1
    /// begins with the initialisation segment.
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`, computed as the muxer wrote them.
    pub sha256: [u8; 32],
    /// The packet digest of the segment's media packets (`docs/format.md`).
    pub packet_digest: PacketDigest,
    /// Where the segment starts (for cutting another copy of the media the same way).
    pub boundary: Boundary,
    /// Earliest presentation time of its packets, microseconds, in the recording's timeline
    /// (0 = the presentation time of the recording's first packet, its first video
    /// keyframe).
    pub media_start_us: i64,
    /// Latest presentation time plus duration of its packets, microseconds.
    pub media_end_us: i64,
    /// Packets per stream, in the order of [`Started::streams`].
    pub packet_counts: Vec<u64>,
    /// Video frames (packets of the video stream) in the segment.
    pub video_frames: u64,
    /// Packets whose timestamps were missing or out of order and were repaired.
    pub repaired_timestamps: u64,
    /// Packets read but not recorded before this segment (segment 1 only): everything
    /// before the first video keyframe, which cannot be decoded without what came before
    /// it — a live stream joined mid-GOP, or a file's audio priming packet.
    pub dropped_before: u64,
    /// The device's wall clock when the first packet was read, µs since the epoch (UTC).
    pub first_packet_utc_us: i64,
    /// The device's wall clock when the last packet was read, µs since the epoch (UTC).
    pub last_packet_utc_us: i64,
    /// The device's wall clock when the segment was cut and handed over, µs since the
    /// epoch; minus `last_packet_utc_us`, it is the segmenter's latency.
    pub emitted_utc_us: i64,
    /// Why it ended where it did.
    pub cut: CutReason,
    /// On the first segment after a live input's sender was lost and a sender with the
    /// same streams connected again: the gap before it (its record carries it).
    pub gap: Option<Gap>,
}

impl Segment {
    /// Length of the plaintext segment in bytes.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Whether the segment holds no bytes (never true of an emitted segment).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The bytes are media; their length and hash say everything a log needs.
        f.debug_struct("Segment")
            .field("seq", &self.seq)
            .field("len", &self.bytes.len())
            .field("sha256", &hex::encode(self.sha256))
            .field("packet_digest", &self.packet_digest)
            .field("boundary", &self.boundary)
            .field("media_start_us", &self.media_start_us)
            .field("media_end_us", &self.media_end_us)
            .field("packet_counts", &self.packet_counts)
            .field("video_frames", &self.video_frames)
            .field("repaired_timestamps", &self.repaired_timestamps)
            .field("dropped_before", &self.dropped_before)
            .field("first_packet_utc_us", &self.first_packet_utc_us)
            .field("last_packet_utc_us", &self.last_packet_utc_us)
            .field("emitted_utc_us", &self.emitted_utc_us)
            .field("cut", &self.cut)
            .field("gap", &self.gap)
            .finish()
    }
}

/// The last event of every recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct End {
    /// Why it ended: [`EndReason::Stopped`] ([`crate::StopHandle::stop`] was called),
    /// [`EndReason::InputEnded`] (end of file, or a live sender closed the connection or
    /// went silent for the stall timeout), or [`EndReason::Error`] (the recording could not
    /// go on; every segment completed before the fault was emitted, and so was the partial
    /// one the fault cut short).
    pub reason: EndReason,
    /// For [`EndReason::Error`], the message saying why (always present). For
    /// [`EndReason::InputEnded`], how the end showed itself when that is worth recording: a
    /// live input has no end-of-file, so its end comes as a closed connection (an I/O
    /// error) or silence (the stall timeout), and this says which.
    pub detail: Option<String>,
    /// Segments emitted.
    pub segments: u64,
    /// The device's wall clock at the end, µs since the epoch (UTC).
    pub end_utc_us: i64,
}

/// What a running capture reports, in order: a `Started`, any number of `Segment`s (with
/// `InputLost` and `Reconnected` between them where a live sender dropped and came back),
/// and an `End`. Only after an `End` with [`EndReason::SenderChanged`] does another
/// `Started` follow: a sender came back with other streams, and that is a new recording.
/// The last event is an `End` with any other reason.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The input is open and the muxer has written its header.
    Started(Started),
    /// A segment was cut.
    Segment(Segment),
    /// The recording is over. After [`EndReason::SenderChanged`] a new recording's
    /// `Started` follows; after any other reason no event follows.
    End(End),
    /// A live input's sender was lost (it hung up or went silent); the segment before this
    /// event was cut with [`CutReason::InputLost`], and the capture listens again for up to
    /// `wait` ([`crate::Settings::reconnect_wait`]).
    InputLost {
        /// Media time the recording had reached, µs.
        at_media_us: i64,
        /// How long the capture waits for a sender.
        wait: std::time::Duration,
        /// How the loss showed itself (a closed connection, silence).
        how: String,
    },
    /// A sender connected again with the same streams: the recording goes on, and its next
    /// segment carries the gap.
    Reconnected {
        /// How long the input was lost.
        after: std::time::Duration,
    },
}
