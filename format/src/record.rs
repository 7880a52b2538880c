//! The records of a recording's chain: one header, one record per segment, one end record.
//!
//! A record is encoded once ([`Record::encode`]), and from then on only those bytes are
//! used: the device signs `"custody/v1/record-signature\0" || bytes` and the next record
//! links to `SHA-256("custody/v1/record-hash\0" || bytes)`. Verification never re-encodes.
//! Positions in the chain are `seq`: the header is 0, segment *n* is *n* (from 1), and the
//! end record follows the last segment.

use ed25519_dalek::SigningKey;

use crate::digest::MediaKind;
use crate::encoding::{split_object, DecodeError, Field, FieldReader, FieldWriter};
use crate::ids::{PublicKey, RecordingId};
use crate::primitives::{self, DOMAIN_RECORD_HASH, DOMAIN_RECORD_SIGNATURE};

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

const fn f(tag: u8, name: &'static str) -> Field {
    Field { tag, name }
}

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
    CutReason::Final = 3
);
code_enum!(
    EndReason,
    "reason",
    EndReason::Stopped = 1,
    EndReason::InputEnded = 2,
    EndReason::Error = 3
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

// Field tags. Shared fields keep the same tag across kinds.
const RECORDING_ID: Field = f(1, "recording_id");
const SEQ: Field = f(2, "seq");
const PREV: Field = f(3, "prev");

const H_DEVICE_KEY: Field = f(4, "device_key");
const H_STARTED_AT: Field = f(5, "started_at_us");
const H_ORIGIN: Field = f(6, "origin");
const H_INPUT: Field = f(7, "input");
const H_IMPORTED_SHA256: Field = f(8, "imported_sha256");
const H_IMPORTED_LEN: Field = f(9, "imported_len");
const H_CONTAINER: Field = f(10, "container");
const H_TARGET_MS: Field = f(11, "target_segment_ms");
const H_MAX_MS: Field = f(12, "max_segment_ms");
const H_STREAMS: Field = f(13, "streams");
const H_RECIPIENTS: Field = f(14, "recipients");
const H_SOFTWARE: Field = f(15, "software");
const H_ROTATION: Field = f(16, "rotation");
const H_DROPPED: Field = f(17, "dropped_streams");
const D_KIND: Field = f(1, "kind");
const D_CODEC: Field = f(2, "codec");

const S_KIND: Field = f(1, "kind");
const S_CODEC: Field = f(2, "codec");
const S_WIDTH: Field = f(3, "width");
const S_HEIGHT: Field = f(4, "height");
const S_FPS_NUM: Field = f(5, "frame_rate_num");
const S_FPS_DEN: Field = f(6, "frame_rate_den");
const S_SAMPLE_RATE: Field = f(7, "sample_rate");
const S_CHANNELS: Field = f(8, "channels");
const S_TB_NUM: Field = f(9, "time_base_num");
const S_TB_DEN: Field = f(10, "time_base_den");
const R_VALUE: Field = f(1, "recipient");

const G_WALL_FIRST: Field = f(4, "wall_first_us");
const G_WALL_LAST: Field = f(5, "wall_last_us");
const G_MEDIA_START: Field = f(6, "media_start_us");
const G_MEDIA_END: Field = f(7, "media_end_us");
const G_STREAM_PACKETS: Field = f(8, "stream_packets");
const G_VIDEO_FRAMES: Field = f(9, "video_frames");
const G_PLAIN_LEN: Field = f(10, "plaintext_len");
const G_PLAIN_SHA: Field = f(11, "plaintext_sha256");
const G_CIPHER_LEN: Field = f(12, "ciphertext_len");
const G_CIPHER_SHA: Field = f(13, "ciphertext_sha256");
const G_DIGEST: Field = f(14, "packet_digest");
const G_CUT: Field = f(15, "cut");
const P_COUNT: Field = f(1, "packets");

const E_ENDED_AT: Field = f(4, "ended_at_us");
const E_REASON: Field = f(5, "reason");
const E_MESSAGE: Field = f(6, "message");
const E_SEGMENTS: Field = f(7, "segments");
const E_DURATION: Field = f(8, "media_duration_us");
const E_PLAIN: Field = f(9, "plaintext_bytes");
const E_CIPHER: Field = f(10, "ciphertext_bytes");
const E_SOURCE_DURATION: Field = f(11, "source_duration_us");

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

    /// The record's one encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = FieldWriter::new();
        match self {
            Record::Header(h) => {
                w.raw(RECORDING_ID, &h.recording_id.0)
                    .raw(H_DEVICE_KEY, &h.device_key.to_bytes())
                    .i64(H_STARTED_AT, h.started_at_us)
                    .u8(H_ORIGIN, h.origin.code())
                    .str(H_INPUT, &h.input);
                if let Some(file) = &h.imported_file {
                    w.raw(H_IMPORTED_SHA256, &file.sha256).u64(H_IMPORTED_LEN, file.len);
                }
                let streams: Vec<Vec<u8>> = h.streams.iter().map(encode_stream).collect();
                let recipients: Vec<Vec<u8>> = h
                    .recipients
                    .iter()
                    .map(|r| {
                        let mut item = FieldWriter::new();
                        item.str(R_VALUE, r);
                        item.into_bytes()
                    })
                    .collect();
                w.u8(H_CONTAINER, h.container.code())
                    .u32(H_TARGET_MS, h.target_segment_ms)
                    .u32(H_MAX_MS, h.max_segment_ms)
                    .list(H_STREAMS, &streams)
                    .list(H_RECIPIENTS, &recipients)
                    .str(H_SOFTWARE, &h.software);
                if let Some(rotation) = h.rotation {
                    w.raw(H_ROTATION, &rotation.to_be_bytes());
                }
                if !h.dropped_streams.is_empty() {
                    let dropped: Vec<Vec<u8>> = h
                        .dropped_streams
                        .iter()
                        .map(|d| {
                            let mut item = FieldWriter::new();
                            item.u8(D_KIND, d.kind.code()).str(D_CODEC, &d.codec);
                            item.into_bytes()
                        })
                        .collect();
                    w.list(H_DROPPED, &dropped);
                }
                w.into_object(kind::HEADER)
            }
            Record::Segment(s) => {
                let packets: Vec<Vec<u8>> = s
                    .stream_packets
                    .iter()
                    .map(|&n| {
                        let mut item = FieldWriter::new();
                        item.u64(P_COUNT, n);
                        item.into_bytes()
                    })
                    .collect();
                w.raw(RECORDING_ID, &s.recording_id.0)
                    .u64(SEQ, s.seq)
                    .raw(PREV, &s.prev)
                    .i64(G_WALL_FIRST, s.wall_first_us)
                    .i64(G_WALL_LAST, s.wall_last_us)
                    .i64(G_MEDIA_START, s.media_start_us)
                    .i64(G_MEDIA_END, s.media_end_us)
                    .list(G_STREAM_PACKETS, &packets)
                    .u64(G_VIDEO_FRAMES, s.video_frames)
                    .u64(G_PLAIN_LEN, s.plaintext_len)
                    .raw(G_PLAIN_SHA, &s.plaintext_sha256)
                    .u64(G_CIPHER_LEN, s.ciphertext_len)
                    .raw(G_CIPHER_SHA, &s.ciphertext_sha256)
                    .raw(G_DIGEST, &s.packet_digest)
                    .u8(G_CUT, s.cut.code());
                w.into_object(kind::SEGMENT)
            }
            Record::End(e) => {
                w.raw(RECORDING_ID, &e.recording_id.0)
                    .u64(SEQ, e.seq)
                    .raw(PREV, &e.prev)
                    .i64(E_ENDED_AT, e.ended_at_us)
                    .u8(E_REASON, e.reason.code());
                if let Some(m) = &e.message {
                    w.str(E_MESSAGE, m);
                }
                w.u64(E_SEGMENTS, e.segments)
                    .u64(E_DURATION, e.media_duration_us)
                    .u64(E_PLAIN, e.plaintext_bytes)
                    .u64(E_CIPHER, e.ciphertext_bytes);
                if let Some(d) = e.source_duration_us {
                    w.u64(E_SOURCE_DURATION, d);
                }
                w.into_object(kind::END)
            }
        }
    }

    /// Parses exactly one record; any byte after it is an error.
    pub fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
        let (kind, _, body, rest) = split_object(bytes)?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes { count: rest.len() });
        }
        decode_body(kind, body)
    }
}

fn decode_body(kind: u8, body: &[u8]) -> Result<Record, DecodeError> {
    match kind {
        kind::HEADER => {
            let mut r = FieldReader::new("recording header", body)?;
            let recording_id = RecordingId(r.array(RECORDING_ID)?);
            let device_key = PublicKey::from_bytes(&r.array(H_DEVICE_KEY)?).map_err(|_| {
                DecodeError::InvalidValue { field: "device_key", reason: "not a valid Ed25519 key" }
            })?;
            let started_at_us = r.i64(H_STARTED_AT)?;
            let origin = Origin::from_code(r.u8(H_ORIGIN)?)?;
            let input = r.str(H_INPUT)?;
            let imported_sha = r.optional_array::<32>(H_IMPORTED_SHA256)?;
            let imported_len = r.optional(H_IMPORTED_LEN);
            let imported_file = match (imported_sha, imported_len) {
                (Some(sha256), Some(len)) => Some(ImportedFile {
                    sha256,
                    len: u64::from_be_bytes(len.try_into().map_err(|_| {
                        DecodeError::FieldLength {
                            field: H_IMPORTED_LEN.name,
                            expected: 8,
                            found: len.len(),
                        }
                    })?),
                }),
                (None, None) => None,
                _ => {
                    return Err(DecodeError::InvalidValue {
                        field: "imported_sha256",
                        reason: "imported_sha256 and imported_len come together",
                    })
                }
            };
            let container = Container::from_code(r.u8(H_CONTAINER)?)?;
            let target_segment_ms = r.u32(H_TARGET_MS)?;
            let max_segment_ms = r.u32(H_MAX_MS)?;
            let streams =
                r.list(H_STREAMS)?.into_iter().map(decode_stream).collect::<Result<_, _>>()?;
            let recipients = r
                .list(H_RECIPIENTS)?
                .into_iter()
                .map(|item| {
                    let mut ir = FieldReader::new("recipient", item)?;
                    let v = ir.str(R_VALUE)?;
                    ir.finish()?;
                    Ok(v)
                })
                .collect::<Result<_, DecodeError>>()?;
            let software = r.str(H_SOFTWARE)?;
            let rotation = r.optional_array::<2>(H_ROTATION)?.map(u16::from_be_bytes);
            if rotation.is_some_and(|d| !matches!(d, 0 | 90 | 180 | 270)) {
                return Err(DecodeError::InvalidValue {
                    field: "rotation",
                    reason: "a rotation is 0, 90, 180 or 270 degrees",
                });
            }
            let dropped = match r.optional(H_DROPPED) {
                None => Vec::new(),
                Some(_) => r.list(H_DROPPED)?,
            };
            let dropped_streams =
                dropped.into_iter().map(decode_dropped).collect::<Result<Vec<_>, _>>()?;
            r.finish()?;
            Ok(Record::Header(RecordingHeader {
                recording_id,
                device_key,
                started_at_us,
                origin,
                input,
                imported_file,
                container,
                target_segment_ms,
                max_segment_ms,
                streams,
                recipients,
                software,
                rotation,
                dropped_streams,
            }))
        }
        kind::SEGMENT => {
            let mut r = FieldReader::new("segment record", body)?;
            let rec = SegmentRecord {
                recording_id: RecordingId(r.array(RECORDING_ID)?),
                seq: r.u64(SEQ)?,
                prev: r.array(PREV)?,
                wall_first_us: r.i64(G_WALL_FIRST)?,
                wall_last_us: r.i64(G_WALL_LAST)?,
                media_start_us: r.i64(G_MEDIA_START)?,
                media_end_us: r.i64(G_MEDIA_END)?,
                stream_packets: r
                    .list(G_STREAM_PACKETS)?
                    .into_iter()
                    .map(|item| {
                        let mut ir = FieldReader::new("stream packets", item)?;
                        let n = ir.u64(P_COUNT)?;
                        ir.finish()?;
                        Ok(n)
                    })
                    .collect::<Result<_, DecodeError>>()?,
                video_frames: r.u64(G_VIDEO_FRAMES)?,
                plaintext_len: r.u64(G_PLAIN_LEN)?,
                plaintext_sha256: r.array(G_PLAIN_SHA)?,
                ciphertext_len: r.u64(G_CIPHER_LEN)?,
                ciphertext_sha256: r.array(G_CIPHER_SHA)?,
                packet_digest: r.array(G_DIGEST)?,
                cut: CutReason::from_code(r.u8(G_CUT)?)?,
            };
            r.finish()?;
            if rec.seq == 0 {
                return Err(DecodeError::InvalidValue {
                    field: "seq",
                    reason: "segments start at 1; 0 is the header",
                });
            }
            Ok(Record::Segment(rec))
        }
        kind::END => {
            let mut r = FieldReader::new("end record", body)?;
            let rec = EndRecord {
                recording_id: RecordingId(r.array(RECORDING_ID)?),
                seq: r.u64(SEQ)?,
                prev: r.array(PREV)?,
                ended_at_us: r.i64(E_ENDED_AT)?,
                reason: EndReason::from_code(r.u8(E_REASON)?)?,
                message: r.optional_str(E_MESSAGE)?,
                segments: r.u64(E_SEGMENTS)?,
                media_duration_us: r.u64(E_DURATION)?,
                plaintext_bytes: r.u64(E_PLAIN)?,
                ciphertext_bytes: r.u64(E_CIPHER)?,
                source_duration_us: r
                    .optional_array::<8>(E_SOURCE_DURATION)?
                    .map(u64::from_be_bytes),
            };
            r.finish()?;
            if rec.seq == 0 {
                return Err(DecodeError::InvalidValue {
                    field: "seq",
                    reason: "the end record follows the header",
                });
            }
            Ok(Record::End(rec))
        }
        other if other > kind::END && other < 32 => {
            Err(DecodeError::WrongKind { expected: "chain record", found: other })
        }
        other => Err(DecodeError::UnknownKind(other)),
    }
}

fn encode_stream(s: &StreamInfo) -> Vec<u8> {
    let mut w = FieldWriter::new();
    w.u8(S_KIND, s.kind.code())
        .str(S_CODEC, &s.codec)
        .u32(S_WIDTH, s.width)
        .u32(S_HEIGHT, s.height)
        .u32(S_FPS_NUM, s.frame_rate.0)
        .u32(S_FPS_DEN, s.frame_rate.1)
        .u32(S_SAMPLE_RATE, s.sample_rate)
        .u32(S_CHANNELS, s.channels)
        .u32(S_TB_NUM, s.time_base.0)
        .u32(S_TB_DEN, s.time_base.1);
    w.into_bytes()
}

fn decode_dropped(item: &[u8]) -> Result<DroppedStream, DecodeError> {
    let mut r = FieldReader::new("dropped stream", item)?;
    let kind = MediaKind::from_code(r.u8(D_KIND)?)
        .ok_or(DecodeError::InvalidValue { field: "kind", reason: "unknown media kind" })?;
    let codec = r.str(D_CODEC)?;
    r.finish()?;
    Ok(DroppedStream { kind, codec })
}

fn decode_stream(item: &[u8]) -> Result<StreamInfo, DecodeError> {
    let mut r = FieldReader::new("stream", item)?;
    let kind = MediaKind::from_code(r.u8(S_KIND)?)
        .ok_or(DecodeError::InvalidValue { field: "kind", reason: "unknown media kind" })?;
    let s = StreamInfo {
        kind,
        codec: r.str(S_CODEC)?,
        width: r.u32(S_WIDTH)?,
        height: r.u32(S_HEIGHT)?,
        frame_rate: (r.u32(S_FPS_NUM)?, r.u32(S_FPS_DEN)?),
        sample_rate: r.u32(S_SAMPLE_RATE)?,
        channels: r.u32(S_CHANNELS)?,
        time_base: (r.u32(S_TB_NUM)?, r.u32(S_TB_DEN)?),
    };
    r.finish()?;
    Ok(s)
}

/// A record as it was signed: its exact bytes, the parsed record and the device's
/// signature. On the wire and on disk it is `record bytes || signature (64 bytes)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedRecord {
    bytes: Vec<u8>,
    record: Record,
    signature: [u8; 64],
}

impl SignedRecord {
    /// Encodes `record` once and signs those bytes.
    pub fn sign(record: Record, key: &SigningKey) -> Self {
        let bytes = record.encode();
        let signature = primitives::sign(key, DOMAIN_RECORD_SIGNATURE, &bytes);
        SignedRecord { bytes, record, signature }
    }

    /// Reads one signed record from the front of `input`, returning it and the rest.
    pub fn read(input: &[u8]) -> Result<(Self, &[u8]), DecodeError> {
        let (kind, object, body, rest) = split_object(input)?;
        let record = decode_body(kind, body)?;
        let Some((signature, rest)) = rest.split_first_chunk::<64>() else {
            return Err(DecodeError::Truncated {
                what: "record signature",
                needed: 64,
                available: rest.len(),
            });
        };
        Ok((SignedRecord { bytes: object.to_vec(), record, signature: *signature }, rest))
    }

    /// Parses exactly one signed record.
    pub fn parse(input: &[u8]) -> Result<Self, DecodeError> {
        let (rec, rest) = Self::read(input)?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes { count: rest.len() });
        }
        Ok(rec)
    }

    /// Parses a concatenation of signed records (a bundle's `records.bin`), reporting the
    /// position of the first one that fails.
    pub fn parse_all(mut input: &[u8]) -> Result<Vec<Self>, (usize, DecodeError)> {
        let mut out = Vec::new();
        while !input.is_empty() {
            let (rec, rest) = Self::read(input).map_err(|e| (out.len(), e))?;
            out.push(rec);
            input = rest;
        }
        Ok(out)
    }

    /// The record.
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// The exact bytes that were signed.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// `record bytes || signature`, as stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.bytes.clone();
        out.extend_from_slice(&self.signature);
        out
    }

    /// The record hash: `SHA-256("custody/v1/record-hash\0" || bytes)`.
    pub fn hash(&self) -> Hash {
        primitives::sha256(&[DOMAIN_RECORD_HASH, &self.bytes])
    }

    /// Whether `key` signed these exact bytes.
    pub fn verify(&self, key: &PublicKey) -> bool {
        primitives::verify(
            key.verifying_key(),
            DOMAIN_RECORD_SIGNATURE,
            &self.bytes,
            &self.signature,
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_records_kind_is_the_kind_byte_of_its_encoding() {
        let records = crate::testkit::recording(1, "device", 2, true).unwrap();
        let kinds: Vec<u8> = records.iter().map(|r| r.record().kind()).collect();
        assert_eq!(kinds, vec![kind::HEADER, kind::SEGMENT, kind::SEGMENT, kind::END]);
        for r in &records {
            let (encoded, ..) = split_object(r.bytes()).unwrap();
            assert_eq!(encoded, r.record().kind());
        }
    }

    fn header_with(rotation: Option<u16>, dropped: Vec<DroppedStream>) -> Record {
        let key = crate::testkit::key("device");
        let mut h = crate::testkit::header(1, &key);
        h.rotation = rotation;
        h.dropped_streams = dropped;
        Record::Header(h)
    }

    #[test]
    fn a_headers_rotation_and_dropped_streams_round_trip_and_are_optional() {
        let dropped = vec![
            DroppedStream { kind: MediaKind::Other, codec: "mov_text".into() },
            DroppedStream { kind: MediaKind::Audio, codec: "opus".into() },
        ];
        let h = header_with(Some(90), dropped);
        assert_eq!(Record::decode(&h.encode()).unwrap(), h);
        // Absent, they are not written at all: a header without them encodes as before.
        let plain = header_with(None, Vec::new());
        let bytes = plain.encode();
        assert_eq!(Record::decode(&bytes).unwrap(), plain);
        assert!(bytes.len() + 6 < h.encode().len());
        let upright = header_with(Some(0), Vec::new());
        assert_eq!(upright.encode().len(), bytes.len() + 7);
    }

    #[test]
    fn a_rotation_that_is_not_a_quarter_turn_is_refused() {
        let e = Record::decode(&header_with(Some(45), Vec::new()).encode()).unwrap_err();
        assert_eq!(e.code(), "invalid-value", "{e}");
    }
}
