//! The records of a recording's chain: one header, one record per segment, one end record.
//!
//! A record is encoded once ([`Record::encode`]), and from then on only those bytes are
//! used: the device signs `"custody/v1/record-signature\0" || bytes` and the next record
//! links to `SHA-256("custody/v1/record-hash\0" || bytes)`. Verification never re-encodes.
//! Positions in the chain are `seq`: the header is 0, segment *n* is *n* (from 1), and the
//! end record follows the last segment.

use crate::digest::MediaKind;
use crate::encoding::DecodeError;
use crate::ids::{PublicKey, RecordingId};

/// Object kind bytes (the `kind` of the object header).
pub mod kind {
    /// Recording header.
    pub const HEADER: u8 = 1;
    /// Segment record.
    pub const SEGMENT: u8 = 2;
    /// End record.
    pub const END: u8 = 3;
    /// Server receipt.
    pub const RECEIPT: u8 = 16;
    /// Signed tree head of the custody log.
    pub const TREE_HEAD: u8 = 17;
    /// Device certificate.
    pub const DEVICE_CERT: u8 = 18;
    /// Custody log entry.
    pub const LOG_ENTRY: u8 = 19;
    /// A log entry with its inclusion proof, as a bundle carries it.
    pub const LOG_PROOF: u8 = 20;
}

/// A SHA-256 value.
pub type Hash = [u8; 32];

/// Where the media came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Captured live from a device or stream as it happened.
    Live,
    /// Sealed from a file that already existed; its own times are claims, not evidence.
    Imported,
}

/// The segment container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Container {
    /// MPEG-TS: every segment plays alone and the concatenation plays as a whole.
    MpegTs,
    /// Fragmented MP4; segment 1 carries the initialisation segment.
    FragmentedMp4,
    /// WebM (Matroska), as a browser's MediaRecorder writes it: every segment is a complete
    /// WebM file (the stream's initialisation data, then whole Clusters).
    Webm,
    /// Fragmented MP4 in which every segment is a complete file (the initialisation
    /// segment, then whole moof+mdat fragments), as Safari's MediaRecorder writes it.
    SelfContainedMp4,
    /// One still photo: a single segment whose plaintext is one JPEG file.
    Photo,
}

/// Why a segment was cut where it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CutReason {
    /// At the first video keyframe after the target duration.
    Keyframe,
    /// Keyframes stopped coming and the cap forced a cut; the next segment may not decode
    /// alone.
    ForcedCap,
    /// The last segment, cut because the input ended or recording stopped.
    Final,
    /// The input was lost (a live stream's sender disconnected): the recording went on
    /// after a gap, and the next segment carries the gap's fields, or it ended there.
    InputLost,
}

/// How a recording ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    /// The observer stopped it.
    Stopped,
    /// The input reached its end.
    InputEnded,
    /// An error ended it; the record's message says which.
    Error,
    /// A live stream's sender was lost and a sender came back with other streams or codec
    /// parameters: rather than splice another camera into one recording, this one ends and
    /// a new one (`continued_in`) follows it.
    SenderChanged,
}

macro_rules! code_enum {
    ($ty:ty, $field:expr, $($variant:path = $code:expr),+ $(,)?) => {
        impl $ty {
            /// The byte that encodes this value.
            pub fn code(self) -> u8 {
                match self { $($variant => $code),+ }
            }
            fn from_code(code: u8) -> Result<Self, DecodeError> {
                match code {
                    $($code => Ok($variant),)+
                    _ => Err(DecodeError::InvalidValue { field: $field, reason: "unknown code" }),
                }
            }
        }
    };
}

code_enum!(Origin, "origin", Origin::Live = 1, Origin::Imported = 2);
code_enum!(
    Container,
    "container",
    Container::MpegTs = 1,
    Container::FragmentedMp4 = 2,
    Container::Webm = 3,
    Container::SelfContainedMp4 = 4,
    Container::Photo = 5
);
code_enum!(
    CutReason,
    "cut",
    CutReason::Keyframe = 1,
    CutReason::ForcedCap = 2,
    CutReason::Final = 3,
    CutReason::InputLost = 4
);
code_enum!(
    EndReason,
    "reason",
    EndReason::Stopped = 1,
    EndReason::InputEnded = 2,
    EndReason::Error = 3,
    EndReason::SenderChanged = 4
);

/// One media stream of the recording, as the header describes it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StreamInfo {
    /// Video, audio or other.
    pub kind: MediaKind,
    /// FFmpeg's short codec name (`h264`, `aac`, …).
    pub codec: String,
    /// Picture width in pixels (0 for audio).
    pub width: u32,
    /// Picture height in pixels (0 for audio).
    pub height: u32,
    /// Frame rate as a fraction (0/1 when unknown or for audio).
    pub frame_rate: (u32, u32),
    /// Sample rate in Hz (0 for video).
    pub sample_rate: u32,
    /// Audio channels (0 for video).
    pub channels: u32,
    /// The stream's time base in the segment container.
    pub time_base: (u32, u32),
}

/// A file a recording was imported from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ImportedFile {
    /// SHA-256 of the whole file as it was read.
    #[serde(with = "hex_bytes")]
    pub sha256: Hash,
    /// Its length in bytes.
    pub len: u64,
}

/// The first record of a recording.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RecordingHeader {
    /// The recording's id; every later record repeats it.
    pub recording_id: RecordingId,
    /// The device key that signs this chain.
    pub device_key: PublicKey,
    /// Device wall-clock time recording started, µs since the Unix epoch (UTC). Untrusted.
    pub started_at_us: i64,
    /// Live or imported.
    pub origin: Origin,
    /// What was recorded: the input format and URL or device, credentials removed.
    pub input: String,
    /// For an import, the file's hash and length.
    pub imported_file: Option<ImportedFile>,
    /// The segment container.
    pub container: Container,
    /// Target segment duration, ms.
    pub target_segment_ms: u32,
    /// Longest segment before a cut is forced, ms.
    pub max_segment_ms: u32,
    /// The streams, in the order segment records count their packets.
    pub streams: Vec<StreamInfo>,
    /// age recipients every segment is encrypted to (`age1…`).
    pub recipients: Vec<String>,
    /// Name and version of the software that made the recording.
    pub software: String,
    /// Degrees clockwise the picture must be turned for display (0, 90, 180 or 270), as
    /// the source's display matrix said: MPEG-TS segments cannot carry it, so the header
    /// keeps it for export to write back. Optional (tag 16); `None` and 0 both mean upright.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation: Option<u16>,
    /// The input streams that were not kept (subtitles, data, timecode, a second video),
    /// so that a reader knows what the source held beyond the recording. Optional (tag 17).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped_streams: Vec<DroppedStream>,
    /// The recording this one continues: it ended because its stream's sender came back
    /// with other streams (end reason `sender-changed`). Optional (tags 18 and 19, both or
    /// neither).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follows: Option<Follows>,
}

/// The recording a header continues (header tags 18 and 19).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Follows {
    /// The recording that ended with end reason `sender-changed`.
    pub recording: RecordingId,
    /// The record hash of that recording's end record, so the link names one chain's end
    /// and cannot be moved to another.
    #[serde(with = "hex_bytes")]
    pub end: Hash,
}

/// A gap in a live input: its sender was lost and a sender connected again (segment tags
/// 16–18, all three or none). Stream senders are not authenticated, so a gap says only
/// that *a* sender connected; that its streams matched is what kept the recording going.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Gap {
    /// Device wall-clock time of the last packet before the input was lost, µs.
    pub wall_from_us: i64,
    /// Device wall-clock time of the first packet after a sender connected again, µs.
    pub wall_to_us: i64,
    /// What was added to the new connection's timestamps (µs) so the recording's media
    /// timeline continues where the last segment before the gap ended.
    pub media_offset_us: i64,
}

/// An input stream a recording did not keep (header tag 17).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DroppedStream {
    /// Video, audio or other (subtitles and data are other).
    pub kind: MediaKind,
    /// FFmpeg's short codec name (`mov_text`, `tmcd`, `bin_data`, …).
    pub codec: String,
}

/// The record of one sealed segment.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SegmentRecord {
    /// The recording this segment belongs to.
    pub recording_id: RecordingId,
    /// Position in the chain (1 for the first segment).
    pub seq: u64,
    /// Record hash of the record before it.
    #[serde(with = "hex_bytes")]
    pub prev: Hash,
    /// Device wall-clock time of the segment's first packet, µs since the epoch.
    pub wall_first_us: i64,
    /// Device wall-clock time of its last packet, µs since the epoch.
    pub wall_last_us: i64,
    /// Media time of its first packet, µs on the recording's timeline.
    pub media_start_us: i64,
    /// Media time at which it ends (last packet's time plus duration), µs.
    pub media_end_us: i64,
    /// Packets per stream, in header stream order.
    pub stream_packets: Vec<u64>,
    /// Video frames in the segment.
    pub video_frames: u64,
    /// Length of the segment's plaintext (the container bytes).
    pub plaintext_len: u64,
    /// SHA-256 of the plaintext.
    #[serde(with = "hex_bytes")]
    pub plaintext_sha256: Hash,
    /// Length of the sealed (age) file.
    pub ciphertext_len: u64,
    /// SHA-256 of the sealed file.
    #[serde(with = "hex_bytes")]
    pub ciphertext_sha256: Hash,
    /// The packet digest of the segment's media packets.
    #[serde(with = "hex_bytes")]
    pub packet_digest: Hash,
    /// Why the segment was cut where it was.
    pub cut: CutReason,
    /// On the first segment after a lost input came back: the gap before it. Optional
    /// (tags 16–18).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap: Option<Gap>,
}

/// The record that closes a recording.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EndRecord {
    /// The recording.
    pub recording_id: RecordingId,
    /// Position in the chain: one past the last segment.
    pub seq: u64,
    /// Record hash of the last segment record (or of the header).
    #[serde(with = "hex_bytes")]
    pub prev: Hash,
    /// Device wall-clock time the recording ended, µs since the epoch.
    pub ended_at_us: i64,
    /// Why it ended.
    pub reason: EndReason,
    /// For an error, what went wrong.
    pub message: Option<String>,
    /// Number of segments.
    pub segments: u64,
    /// Total media duration, µs.
    pub media_duration_us: u64,
    /// Total plaintext bytes.
    pub plaintext_bytes: u64,
    /// Total ciphertext bytes.
    pub ciphertext_bytes: u64,
    /// For an import, the duration the source file declares (its container's duration),
    /// µs; with `media_duration_us` it says how much of the file was imported when an
    /// import stops on damaged input. Optional (tag 11): absent for live recordings and
    /// for records written before it existed.
    pub source_duration_us: Option<u64>,
    /// For end reason `sender-changed`: the recording that continues this one. Optional
    /// (tag 12).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continued_in: Option<RecordingId>,
}

/// Any record of the chain.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Record {
    /// The header.
    Header(RecordingHeader),
    /// A segment.
    Segment(SegmentRecord),
    /// The end.
    End(EndRecord),
}

mod codec;
mod signed;

pub use signed::SignedRecord;

impl Record {
    /// The recording this record belongs to.
    pub fn recording_id(&self) -> RecordingId {
        match self {
            Record::Header(h) => h.recording_id,
            Record::Segment(s) => s.recording_id,
            Record::End(e) => e.recording_id,
        }
    }

    /// Its object kind byte: [`kind::HEADER`], [`kind::SEGMENT`] or [`kind::END`]. Indexes
    /// that keep a record's kind keep this byte, and compare it with those constants.
    pub fn kind(&self) -> u8 {
        match self {
            Record::Header(_) => kind::HEADER,
            Record::Segment(_) => kind::SEGMENT,
            Record::End(_) => kind::END,
        }
    }

    /// Its position in the chain (0 for the header).
    pub fn seq(&self) -> u64 {
        match self {
            Record::Header(_) => 0,
            Record::Segment(s) => s.seq,
            Record::End(e) => e.seq,
        }
    }

    /// The record hash it links to, if it is not the header.
    pub fn prev(&self) -> Option<&Hash> {
        match self {
            Record::Header(_) => None,
            Record::Segment(s) => Some(&s.prev),
            Record::End(e) => Some(&e.prev),
        }
    }
}

/// Serialises fixed byte arrays as lowercase hex in reports.
pub(crate) mod hex_bytes {
    /// Writes the bytes as hex.
    pub fn serialize<S: serde::Serializer, const N: usize>(
        v: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
}

impl serde::Serialize for RecordingId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}
