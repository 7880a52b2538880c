//! The one encoding of the chain's records (docs/format.md §4): field tags, the encoder and
//! the strict decoder (unknown or out-of-order tags, missing fields and trailing bytes are
//! errors, so one record has exactly one encoding).

use super::*;
use crate::encoding::{split_object, DecodeError, Field, FieldReader, FieldWriter};

const fn f(tag: u8, name: &'static str) -> Field {
    Field { tag, name }
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
const H_FOLLOWS: Field = f(18, "follows_recording");
const H_FOLLOWS_END: Field = f(19, "follows_end");
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
const G_GAP_FROM: Field = f(16, "gap_wall_from_us");
const G_GAP_TO: Field = f(17, "gap_wall_to_us");
const G_GAP_OFFSET: Field = f(18, "gap_media_offset_us");
const P_COUNT: Field = f(1, "packets");

const E_ENDED_AT: Field = f(4, "ended_at_us");
const E_REASON: Field = f(5, "reason");
const E_MESSAGE: Field = f(6, "message");
const E_SEGMENTS: Field = f(7, "segments");
const E_DURATION: Field = f(8, "media_duration_us");
const E_PLAIN: Field = f(9, "plaintext_bytes");
const E_CIPHER: Field = f(10, "ciphertext_bytes");
const E_SOURCE_DURATION: Field = f(11, "source_duration_us");
const E_CONTINUED_IN: Field = f(12, "continued_in");

impl Record {
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
                if let Some(follows) = &h.follows {
                    w.raw(H_FOLLOWS, &follows.recording.0).raw(H_FOLLOWS_END, &follows.end);
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
                if let Some(gap) = &s.gap {
                    w.i64(G_GAP_FROM, gap.wall_from_us)
                        .i64(G_GAP_TO, gap.wall_to_us)
                        .i64(G_GAP_OFFSET, gap.media_offset_us);
                }
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
                if let Some(next) = &e.continued_in {
                    w.raw(E_CONTINUED_IN, &next.0);
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

pub(super) fn decode_body(kind: u8, body: &[u8]) -> Result<Record, DecodeError> {
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
            let follows =
                match (r.optional_array::<16>(H_FOLLOWS)?, r.optional_array(H_FOLLOWS_END)?) {
                    (Some(id), Some(end)) => Some(Follows { recording: RecordingId(id), end }),
                    (None, None) => None,
                    _ => {
                        return Err(DecodeError::InvalidValue {
                            field: "follows_recording",
                            reason: "follows_recording and follows_end come together",
                        })
                    }
                };
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
                follows,
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
                gap: decode_gap(&mut r)?,
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
                continued_in: r.optional_array::<16>(E_CONTINUED_IN)?.map(RecordingId),
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

/// The gap fields of a segment record: all three or none.
fn decode_gap(r: &mut FieldReader<'_>) -> Result<Option<Gap>, DecodeError> {
    let from = r.optional_array::<8>(G_GAP_FROM)?.map(i64::from_be_bytes);
    let to = r.optional_array::<8>(G_GAP_TO)?.map(i64::from_be_bytes);
    let offset = r.optional_array::<8>(G_GAP_OFFSET)?.map(i64::from_be_bytes);
    match (from, to, offset) {
        (Some(wall_from_us), Some(wall_to_us), Some(media_offset_us)) => {
            Ok(Some(Gap { wall_from_us, wall_to_us, media_offset_us }))
        }
        (None, None, None) => Ok(None),
        _ => Err(DecodeError::InvalidValue {
            field: "gap_wall_from_us",
            reason: "gap_wall_from_us, gap_wall_to_us and gap_media_offset_us come together",
        }),
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

    #[test]
    fn a_gap_is_all_three_fields_or_none_and_links_round_trip() {
        let records = crate::testkit::recording(1, "device", 2, true).unwrap();
        let Record::Segment(mut seg) = records[1].record().clone() else { panic!() };
        let plain = Record::Segment(seg.clone()).encode();
        seg.gap = Some(Gap { wall_from_us: 10, wall_to_us: 2_000_010, media_offset_us: -5 });
        seg.cut = CutReason::InputLost;
        let with_gap = Record::Segment(seg.clone());
        let bytes = with_gap.encode();
        assert_eq!(Record::decode(&bytes).unwrap(), with_gap);
        assert_eq!(bytes.len(), plain.len() + 3 * 13, "three i64 fields, absent before");
        // Drop the last field (gap_media_offset_us: tag, length, 8 bytes) and fix the length.
        let body_len = u32::from_be_bytes(bytes[6..10].try_into().unwrap());
        let mut two = bytes[..bytes.len() - 13].to_vec();
        two[6..10].copy_from_slice(&(body_len - 13).to_be_bytes());
        let e = Record::decode(&two).unwrap_err();
        assert_eq!(e.code(), "invalid-value", "{e}");

        let key = crate::testkit::key("device");
        let mut h = crate::testkit::header(2, &key);
        h.follows = Some(Follows { recording: RecordingId([1; 16]), end: [7; 32] });
        let h = Record::Header(h);
        assert_eq!(Record::decode(&h.encode()).unwrap(), h);
        let Record::End(mut end) = records[3].record().clone() else { panic!() };
        end.reason = EndReason::SenderChanged;
        end.continued_in = Some(RecordingId([2; 16]));
        let end = Record::End(end);
        assert_eq!(Record::decode(&end.encode()).unwrap(), end);
    }
}
