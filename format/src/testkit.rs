//! Deterministic example data: keys from fixed seeds and whole example recordings.
//!
//! The test vectors in `tests/vectors/` are made from these, and the other crates' tests use
//! them wherever a real capture is not the point. Nothing here is random: the same call
//! gives the same bytes on every machine.

use ed25519_dalek::SigningKey;

use crate::chain::{ChainBuilder, ChainError, SegmentFields};
use crate::digest::MediaKind;
use crate::ids::{PublicKey, RecordingId};
use crate::primitives::sha256;
use crate::record::{
    Container, CutReason, EndReason, Origin, RecordingHeader, SignedRecord, StreamInfo,
};

/// An Ed25519 signing key derived from a label: `SHA-256("custody/testkit/key\0" ||
/// label)` as the RFC 8032 secret. For tests and vectors only.
pub fn key(label: &str) -> SigningKey {
    SigningKey::from_bytes(&sha256(&[b"custody/testkit/key\0", label.as_bytes()]))
}

/// The public half of [`key`]`(label)`.
pub fn public(label: &str) -> PublicKey {
    PublicKey::from(key(label).verifying_key())
}

/// 2024-05-01T12:00:00Z in µs since the epoch: the start time of example recordings.
pub const T0_US: i64 = 1_714_564_800_000_000;

/// An example header: one H.264 video and one AAC audio stream, MPEG-TS, 2 s segments.
pub fn header(recording: u8, device: &SigningKey) -> RecordingHeader {
    RecordingHeader {
        recording_id: RecordingId([recording; 16]),
        device_key: PublicKey::from(device.verifying_key()),
        started_at_us: T0_US,
        origin: Origin::Live,
        input: "lavfi:testsrc2=size=320x240:rate=25".into(),
        imported_file: None,
        container: Container::MpegTs,
        target_segment_ms: 2000,
        max_segment_ms: 10_000,
        streams: vec![
            StreamInfo {
                kind: MediaKind::Video,
                codec: "h264".into(),
                width: 320,
                height: 240,
                frame_rate: (25, 1),
                sample_rate: 0,
                channels: 0,
                time_base: (1, 90_000),
            },
            StreamInfo {
                kind: MediaKind::Audio,
                codec: "aac".into(),
                width: 0,
                height: 0,
                frame_rate: (0, 1),
                sample_rate: 48_000,
                channels: 1,
                time_base: (1, 90_000),
            },
        ],
        recipients: vec!["age1examplerecipient".into()],
        software: "custody testkit".into(),
        rotation: None,
        dropped_streams: Vec::new(),
        follows: None,
    }
}

/// The fields of example segment `n` (from 1) of a recording: 2 s of media, sealed sizes
/// and hashes derived from `n` and `recording`.
pub fn segment(recording: u8, n: u64) -> SegmentFields {
    let start = (n as i64 - 1) * 2_000_000;
    let tag = |what: &str| sha256(&[what.as_bytes(), &[recording], &n.to_be_bytes()]);
    SegmentFields {
        wall_first_us: T0_US + 50_000 + start,
        wall_last_us: T0_US + 50_000 + start + 1_960_000,
        media_start_us: start,
        media_end_us: start + 2_000_000,
        stream_packets: vec![50, 94],
        video_frames: 50,
        plaintext_len: 500_000 + n,
        plaintext_sha256: tag("plaintext"),
        ciphertext_len: 500_000 + n + 4_000,
        ciphertext_sha256: tag("ciphertext"),
        packet_digest: tag("packets"),
        cut: CutReason::Keyframe,
    }
}

/// A whole example recording by the device `device_label`: header, `segments` segments
/// and, if `ended`, an end record ("stopped").
pub fn recording(
    recording: u8,
    device_label: &str,
    segments: u64,
    ended: bool,
) -> Result<Vec<SignedRecord>, ChainError> {
    let device = key(device_label);
    let (mut builder, header) = ChainBuilder::start(header(recording, &device), device)?;
    let mut out = vec![header];
    for n in 1..=segments {
        let mut s = segment(recording, n);
        if ended && n == segments {
            s.cut = CutReason::Final;
        }
        out.push(builder.segment(s));
    }
    if ended {
        let end_time = T0_US + 50_000 + segments as i64 * 2_000_000;
        out.push(builder.end(end_time, EndReason::Stopped, None));
    }
    Ok(out)
}

/// The records concatenated as a bundle's `records.bin` holds them.
pub fn concat(records: &[SignedRecord]) -> Vec<u8> {
    records.iter().flat_map(|r| r.to_bytes()).collect()
}
