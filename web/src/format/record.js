// The records of a recording's chain (docs/format.md section 4), mirroring
// format/src/record.rs: one header (kind 1), one segment record per segment (kind 2), one
// end record (kind 3).
//
// A record is encoded once and from then on only those bytes are used: the device signs
// "custody/v1/record-signature\0" || bytes and the next record links to
// SHA-256("custody/v1/record-hash\0" || bytes). Verification never re-encodes.

import { sha256 } from './bytes.js';
import { sign, verify } from './ed25519.js';
import { DecodeError, FieldReader, FieldWriter, f, readU64, splitObject } from './encoding.js';
import { isValidPublicKey } from './ed25519.js';
import { DOMAIN_RECORD_HASH, DOMAIN_RECORD_SIGNATURE } from './primitives.js';

/** Object kind bytes (format.md section 1). */
export const KIND = Object.freeze({
  HEADER: 1, SEGMENT: 2, END: 3, RECEIPT: 16, TREE_HEAD: 17, DEVICE_CERT: 18, LOG_ENTRY: 19,
  LOG_PROOF: 20, CASE_RECIPIENTS: 21,
});

/** Header `origin` codes. */
export const ORIGIN = Object.freeze({ LIVE: 1, IMPORTED: 2 });
/** Header `container` codes (issue 14 adds 3, 4 and 5 for browser segments). */
export const CONTAINER = Object.freeze({ MPEG_TS: 1, FRAGMENTED_MP4: 2, WEBM: 3, SELF_CONTAINED_MP4: 4, PHOTO: 5 });
/** Segment `cut` codes. */
export const CUT = Object.freeze({ KEYFRAME: 1, FORCED_CAP: 2, FINAL: 3 });
/** End `reason` codes. */
export const END_REASON = Object.freeze({ STOPPED: 1, INPUT_ENDED: 2, ERROR: 3 });
/** Stream `kind` codes. */
export const MEDIA_KIND = Object.freeze({ VIDEO: 1, AUDIO: 2, OTHER: 3 });

/**
 * @typedef {object} StreamInfo
 * @property {number} kind 1 video, 2 audio, 3 other
 * @property {string} codec FFmpeg's short codec name
 * @property {number} width
 * @property {number} height
 * @property {number} frameRateNum
 * @property {number} frameRateDen
 * @property {number} sampleRate
 * @property {number} channels
 * @property {number} timeBaseNum
 * @property {number} timeBaseDen
 */

/**
 * @typedef {object} RecordingHeader
 * @property {'header'} type
 * @property {Uint8Array} recordingId 16 bytes
 * @property {Uint8Array} deviceKey 32 bytes
 * @property {bigint | number} startedAtUs
 * @property {number} origin
 * @property {string} input
 * @property {{sha256: Uint8Array, len: bigint | number} | null} importedFile
 * @property {number} container
 * @property {number} targetSegmentMs
 * @property {number} maxSegmentMs
 * @property {StreamInfo[]} streams
 * @property {string[]} recipients
 * @property {string} software
 * @property {number} [rotation] degrees clockwise the picture must be turned for display
 *   (0, 90, 180 or 270), from the source's display matrix; MPEG-TS segments cannot carry it,
 *   so the header keeps it. Optional (tag 16): absent is upright, and absent stays absent.
 * @property {DroppedStream[]} [droppedStreams] the input streams that were not kept, so a
 *   reader knows what the source held beyond the recording. Optional (tag 17): written only
 *   when there is at least one.
 * @property {{recording: Uint8Array, end: Uint8Array}} [follows] the recording this one
 *   continues (tags 18-19): its id and its end record's hash.
 */

/**
 * An input stream a recording did not keep (header tag 17).
 * @typedef {object} DroppedStream
 * @property {number} kind 1 video, 2 audio, 3 other (subtitles and data are other)
 * @property {string} codec FFmpeg's short codec name (`mov_text`, `tmcd`, `bin_data`, ...)
 */

/**
 * @typedef {object} SegmentRecord
 * @property {'segment'} type
 * @property {Uint8Array} recordingId
 * @property {bigint | number} seq
 * @property {Uint8Array} prev
 * @property {bigint | number} wallFirstUs
 * @property {bigint | number} wallLastUs
 * @property {bigint | number} mediaStartUs
 * @property {bigint | number} mediaEndUs
 * @property {(bigint | number)[]} streamPackets
 * @property {bigint | number} videoFrames
 * @property {bigint | number} plaintextLen
 * @property {Uint8Array} plaintextSha256
 * @property {bigint | number} ciphertextLen
 * @property {Uint8Array} ciphertextSha256
 * @property {Uint8Array} packetDigest
 * @property {number} cut 1 keyframe, 2 forced, 3 final, 4 the input was lost
 * @property {{wallFromUs: bigint | number, wallToUs: bigint | number, mediaOffsetUs: bigint | number}} [gap]
 *   on the first segment after a live sender was lost and one connected again (tags 16-18)
 */

/**
 * @typedef {object} EndRecord
 * @property {'end'} type
 * @property {Uint8Array} recordingId
 * @property {bigint | number} seq
 * @property {Uint8Array} prev
 * @property {bigint | number} endedAtUs
 * @property {number} reason
 * @property {string | null} message
 * @property {bigint | number} segments
 * @property {bigint | number} mediaDurationUs
 * @property {bigint | number} plaintextBytes
 * @property {bigint | number} ciphertextBytes
 * @property {bigint | number} [sourceDurationUs] for an import, the duration the source file
 *   declares (its container's duration), so a report can say how much of a damaged file was
 *   imported. Optional (tag 11): absent for live recordings.
 * @property {Uint8Array} [continuedIn] for reason 4 (sender-changed), the recording that
 *   continues this one (tag 12).
 */

/** @typedef {RecordingHeader | SegmentRecord | EndRecord} Record */

const RECORDING_ID = f(1, 'recording_id');
const SEQ = f(2, 'seq');
const PREV = f(3, 'prev');
const H_DEVICE_KEY = f(4, 'device_key');
const H_STARTED_AT = f(5, 'started_at_us');
const H_ORIGIN = f(6, 'origin');
const H_INPUT = f(7, 'input');
const H_IMPORTED_SHA256 = f(8, 'imported_sha256');
const H_IMPORTED_LEN = f(9, 'imported_len');
const H_CONTAINER = f(10, 'container');
const H_TARGET_MS = f(11, 'target_segment_ms');
const H_MAX_MS = f(12, 'max_segment_ms');
const H_STREAMS = f(13, 'streams');
const H_RECIPIENTS = f(14, 'recipients');
const H_SOFTWARE = f(15, 'software');
const H_ROTATION = f(16, 'rotation');
const H_DROPPED = f(17, 'dropped_streams');
const H_FOLLOWS = f(18, 'follows_recording');
const H_FOLLOWS_END = f(19, 'follows_end');
const D_KIND = f(1, 'kind');
const D_CODEC = f(2, 'codec');
const S_KIND = f(1, 'kind');
const S_CODEC = f(2, 'codec');
const S_WIDTH = f(3, 'width');
const S_HEIGHT = f(4, 'height');
const S_FPS_NUM = f(5, 'frame_rate_num');
const S_FPS_DEN = f(6, 'frame_rate_den');
const S_SAMPLE_RATE = f(7, 'sample_rate');
const S_CHANNELS = f(8, 'channels');
const S_TB_NUM = f(9, 'time_base_num');
const S_TB_DEN = f(10, 'time_base_den');
const R_VALUE = f(1, 'recipient');
const G_WALL_FIRST = f(4, 'wall_first_us');
const G_WALL_LAST = f(5, 'wall_last_us');
const G_MEDIA_START = f(6, 'media_start_us');
const G_MEDIA_END = f(7, 'media_end_us');
const G_STREAM_PACKETS = f(8, 'stream_packets');
const G_VIDEO_FRAMES = f(9, 'video_frames');
const G_PLAIN_LEN = f(10, 'plaintext_len');
const G_PLAIN_SHA = f(11, 'plaintext_sha256');
const G_CIPHER_LEN = f(12, 'ciphertext_len');
const G_CIPHER_SHA = f(13, 'ciphertext_sha256');
const G_DIGEST = f(14, 'packet_digest');
const G_CUT = f(15, 'cut');
const G_GAP_FROM = f(16, 'gap_wall_from_us');
const G_GAP_TO = f(17, 'gap_wall_to_us');
const G_GAP_OFFSET = f(18, 'gap_media_offset_us');
const P_COUNT = f(1, 'packets');
const E_ENDED_AT = f(4, 'ended_at_us');
const E_REASON = f(5, 'reason');
const E_MESSAGE = f(6, 'message');
const E_SEGMENTS = f(7, 'segments');
const E_DURATION = f(8, 'media_duration_us');
const E_PLAIN = f(9, 'plaintext_bytes');
const E_CIPHER = f(10, 'ciphertext_bytes');
const E_SOURCE_DURATION = f(11, 'source_duration_us');
const E_CONTINUED_IN = f(12, 'continued_in');

/**
 * An optional i64 field's value, or null when absent.
 * @param {FieldReader} r
 * @param {{tag: number, name: string}} fd
 */
function optionalI64(r, fd) {
  const b = r.optionalArray(fd, 8);
  return b && new DataView(b.buffer, b.byteOffset, 8).getBigInt64(0);
}

/** The rotations a header may carry, degrees clockwise. */
export const ROTATIONS = Object.freeze([0, 90, 180, 270]);

/**
 * @param {string} field
 * @param {number} code
 * @param {number} max
 */
function checkCode(field, code, max) {
  if (code < 1 || code > max) throw new DecodeError('invalid-value', `field \`${field}\` has an invalid value: unknown code`);
  return code;
}

/**
 * @param {StreamInfo} s
 * @returns {Uint8Array}
 */
function encodeStream(s) {
  const w = new FieldWriter();
  w.u8(S_KIND, s.kind).str(S_CODEC, s.codec).u32(S_WIDTH, s.width).u32(S_HEIGHT, s.height)
    .u32(S_FPS_NUM, s.frameRateNum).u32(S_FPS_DEN, s.frameRateDen).u32(S_SAMPLE_RATE, s.sampleRate)
    .u32(S_CHANNELS, s.channels).u32(S_TB_NUM, s.timeBaseNum).u32(S_TB_DEN, s.timeBaseDen);
  return w.bytes();
}

/**
 * @param {Uint8Array} item
 * @returns {StreamInfo}
 */
function decodeStream(item) {
  const r = new FieldReader('stream', item);
  const kind = checkCode('kind', r.u8(S_KIND), 3);
  const s = {
    kind, codec: r.str(S_CODEC), width: r.u32(S_WIDTH), height: r.u32(S_HEIGHT),
    frameRateNum: r.u32(S_FPS_NUM), frameRateDen: r.u32(S_FPS_DEN), sampleRate: r.u32(S_SAMPLE_RATE),
    channels: r.u32(S_CHANNELS), timeBaseNum: r.u32(S_TB_NUM), timeBaseDen: r.u32(S_TB_DEN),
  };
  r.finish();
  return s;
}

/**
 * @param {Uint8Array} item
 * @returns {DroppedStream}
 */
function decodeDropped(item) {
  const r = new FieldReader('dropped stream', item);
  const d = { kind: checkCode('kind', r.u8(D_KIND), 3), codec: r.str(D_CODEC) };
  r.finish();
  return d;
}

/**
 * The record's one encoding.
 * @param {Record} rec
 * @returns {Uint8Array}
 */
export function encodeRecord(rec) {
  const w = new FieldWriter();
  if (rec.type === 'header') {
    w.raw(RECORDING_ID, rec.recordingId).raw(H_DEVICE_KEY, rec.deviceKey).i64(H_STARTED_AT, rec.startedAtUs)
      .u8(H_ORIGIN, rec.origin).str(H_INPUT, rec.input);
    if (rec.importedFile) w.raw(H_IMPORTED_SHA256, rec.importedFile.sha256).u64(H_IMPORTED_LEN, rec.importedFile.len);
    const recipients = rec.recipients.map((r) => new FieldWriter().str(R_VALUE, r).bytes());
    w.u8(H_CONTAINER, rec.container).u32(H_TARGET_MS, rec.targetSegmentMs).u32(H_MAX_MS, rec.maxSegmentMs)
      .list(H_STREAMS, rec.streams.map(encodeStream)).list(H_RECIPIENTS, recipients).str(H_SOFTWARE, rec.software);
    if (rec.rotation !== undefined) w.u16(H_ROTATION, rec.rotation);
    if (rec.droppedStreams?.length) {
      w.list(H_DROPPED, rec.droppedStreams.map((d) => new FieldWriter().u8(D_KIND, d.kind).str(D_CODEC, d.codec).bytes()));
    }
    if (rec.follows) w.raw(H_FOLLOWS, rec.follows.recording).raw(H_FOLLOWS_END, rec.follows.end);
    return w.object(KIND.HEADER);
  }
  if (rec.type === 'segment') {
    const packets = rec.streamPackets.map((n) => new FieldWriter().u64(P_COUNT, n).bytes());
    w.raw(RECORDING_ID, rec.recordingId).u64(SEQ, rec.seq).raw(PREV, rec.prev)
      .i64(G_WALL_FIRST, rec.wallFirstUs).i64(G_WALL_LAST, rec.wallLastUs)
      .i64(G_MEDIA_START, rec.mediaStartUs).i64(G_MEDIA_END, rec.mediaEndUs)
      .list(G_STREAM_PACKETS, packets).u64(G_VIDEO_FRAMES, rec.videoFrames)
      .u64(G_PLAIN_LEN, rec.plaintextLen).raw(G_PLAIN_SHA, rec.plaintextSha256)
      .u64(G_CIPHER_LEN, rec.ciphertextLen).raw(G_CIPHER_SHA, rec.ciphertextSha256)
      .raw(G_DIGEST, rec.packetDigest).u8(G_CUT, rec.cut);
    if (rec.gap) w.i64(G_GAP_FROM, rec.gap.wallFromUs).i64(G_GAP_TO, rec.gap.wallToUs).i64(G_GAP_OFFSET, rec.gap.mediaOffsetUs);
    return w.object(KIND.SEGMENT);
  }
  w.raw(RECORDING_ID, rec.recordingId).u64(SEQ, rec.seq).raw(PREV, rec.prev)
    .i64(E_ENDED_AT, rec.endedAtUs).u8(E_REASON, rec.reason);
  if (rec.message !== null && rec.message !== undefined) w.str(E_MESSAGE, rec.message);
  w.u64(E_SEGMENTS, rec.segments).u64(E_DURATION, rec.mediaDurationUs)
    .u64(E_PLAIN, rec.plaintextBytes).u64(E_CIPHER, rec.ciphertextBytes);
  if (rec.sourceDurationUs !== undefined) w.u64(E_SOURCE_DURATION, rec.sourceDurationUs);
  if (rec.continuedIn) w.raw(E_CONTINUED_IN, rec.continuedIn);
  return w.object(KIND.END);
}

/**
 * @param {number} kind
 * @param {Uint8Array} body
 * @returns {Record}
 */
function decodeBody(kind, body) {
  if (kind === KIND.HEADER) {
    const r = new FieldReader('recording header', body);
    const recordingId = r.array(RECORDING_ID, 16);
    const deviceKey = r.array(H_DEVICE_KEY, 32);
    if (!isValidPublicKey(deviceKey)) throw new DecodeError('invalid-value', 'field `device_key` has an invalid value: not a valid Ed25519 key');
    const startedAtUs = r.i64(H_STARTED_AT);
    const origin = checkCode('origin', r.u8(H_ORIGIN), 2);
    const input = r.str(H_INPUT);
    const sha = r.optionalArray(H_IMPORTED_SHA256, 32);
    const len = r.optional(H_IMPORTED_LEN);
    let importedFile = null;
    if (sha && len) importedFile = { sha256: sha, len: readU64(H_IMPORTED_LEN, len) };
    else if (sha || len) throw new DecodeError('invalid-value', 'field `imported_sha256` has an invalid value: imported_sha256 and imported_len come together');
    const container = checkCode('container', r.u8(H_CONTAINER), 5);
    const targetSegmentMs = r.u32(H_TARGET_MS);
    const maxSegmentMs = r.u32(H_MAX_MS);
    const streams = r.list(H_STREAMS).map(decodeStream);
    const recipients = r.list(H_RECIPIENTS).map((item) => {
      const ir = new FieldReader('recipient', item);
      const v = ir.str(R_VALUE);
      ir.finish();
      return v;
    });
    const software = r.str(H_SOFTWARE);
    const rot = r.optionalArray(H_ROTATION, 2);
    const rotation = rot && new DataView(rot.buffer, rot.byteOffset, 2).getUint16(0);
    if (rot && !ROTATIONS.includes(/** @type {number} */ (rotation))) {
      throw new DecodeError('invalid-value', 'field `rotation` has an invalid value: a rotation is 0, 90, 180 or 270 degrees');
    }
    const dropped = r.optional(H_DROPPED) === null ? null : r.list(H_DROPPED).map(decodeDropped);
    const followsId = r.optionalArray(H_FOLLOWS, 16);
    const followsEnd = r.optionalArray(H_FOLLOWS_END, 32);
    if (!followsId !== !followsEnd) throw new DecodeError('invalid-value', 'field `follows_recording` has an invalid value: follows_recording and follows_end come together');
    r.finish();
    /** @type {RecordingHeader} */
    const h = {
      type: 'header', recordingId, deviceKey, startedAtUs, origin, input, importedFile, container,
      targetSegmentMs, maxSegmentMs, streams, recipients, software,
    };
    // Absent fields stay absent, so a header without them reads back as it was built.
    if (rot) h.rotation = /** @type {number} */ (rotation);
    if (dropped) h.droppedStreams = dropped;
    if (followsId && followsEnd) h.follows = { recording: followsId, end: followsEnd };
    return h;
  }
  if (kind === KIND.SEGMENT) {
    const r = new FieldReader('segment record', body);
    /** @type {SegmentRecord} */
    const rec = {
      type: 'segment',
      recordingId: r.array(RECORDING_ID, 16),
      seq: r.u64(SEQ),
      prev: r.array(PREV, 32),
      wallFirstUs: r.i64(G_WALL_FIRST),
      wallLastUs: r.i64(G_WALL_LAST),
      mediaStartUs: r.i64(G_MEDIA_START),
      mediaEndUs: r.i64(G_MEDIA_END),
      streamPackets: r.list(G_STREAM_PACKETS).map((item) => {
        const ir = new FieldReader('stream packets', item);
        const n = ir.u64(P_COUNT);
        ir.finish();
        return n;
      }),
      videoFrames: r.u64(G_VIDEO_FRAMES),
      plaintextLen: r.u64(G_PLAIN_LEN),
      plaintextSha256: r.array(G_PLAIN_SHA, 32),
      ciphertextLen: r.u64(G_CIPHER_LEN),
      ciphertextSha256: r.array(G_CIPHER_SHA, 32),
      packetDigest: r.array(G_DIGEST, 32),
      cut: checkCode('cut', r.u8(G_CUT), 4),
    };
    const gap = [optionalI64(r, G_GAP_FROM), optionalI64(r, G_GAP_TO), optionalI64(r, G_GAP_OFFSET)];
    if (gap.every((v) => v !== null)) {
      rec.gap = { wallFromUs: /** @type {bigint} */ (gap[0]), wallToUs: /** @type {bigint} */ (gap[1]), mediaOffsetUs: /** @type {bigint} */ (gap[2]) };
    } else if (gap.some((v) => v !== null)) {
      throw new DecodeError('invalid-value', 'field `gap_wall_from_us` has an invalid value: gap_wall_from_us, gap_wall_to_us and gap_media_offset_us come together');
    }
    r.finish();
    if (rec.seq === 0n) throw new DecodeError('invalid-value', 'field `seq` has an invalid value: segments start at 1; 0 is the header');
    return rec;
  }
  if (kind === KIND.END) {
    const r = new FieldReader('end record', body);
    /** @type {EndRecord} */
    const rec = {
      type: 'end',
      recordingId: r.array(RECORDING_ID, 16),
      seq: r.u64(SEQ),
      prev: r.array(PREV, 32),
      endedAtUs: r.i64(E_ENDED_AT),
      reason: checkCode('reason', r.u8(E_REASON), 4),
      message: r.optionalStr(E_MESSAGE),
      segments: r.u64(E_SEGMENTS),
      mediaDurationUs: r.u64(E_DURATION),
      plaintextBytes: r.u64(E_PLAIN),
      ciphertextBytes: r.u64(E_CIPHER),
    };
    const sourceDuration = r.optional(E_SOURCE_DURATION);
    if (sourceDuration !== null) rec.sourceDurationUs = readU64(E_SOURCE_DURATION, sourceDuration);
    const continuedIn = r.optionalArray(E_CONTINUED_IN, 16);
    if (continuedIn) rec.continuedIn = continuedIn;
    r.finish();
    if (rec.seq === 0n) throw new DecodeError('invalid-value', 'field `seq` has an invalid value: the end record follows the header');
    return rec;
  }
  if (kind > KIND.END && kind < 32) throw new DecodeError('wrong-kind', `expected a chain record, found kind ${kind}`);
  throw new DecodeError('unknown-kind', `unknown object kind ${kind}`);
}

/**
 * Parses exactly one (unsigned) record; any byte after it is an error.
 * @param {Uint8Array} bytes
 * @returns {Record}
 */
export function decodeRecord(bytes) {
  const { kind, body, rest } = splitObject(bytes);
  if (rest.length) throw new DecodeError('trailing-bytes', `${rest.length} trailing bytes after the object`);
  return decodeBody(kind, body);
}

/**
 * A record as it was signed: its exact bytes, the parsed record and the device's signature.
 * @typedef {object} SignedRecord
 * @property {Uint8Array} bytes
 * @property {Record} record
 * @property {Uint8Array} signature 64 bytes
 */

/**
 * The position of a record in its chain (0 for the header).
 * @param {Record} rec
 * @returns {bigint}
 */
export function recordSeq(rec) {
  return rec.type === 'header' ? 0n : BigInt(rec.seq);
}

/**
 * Reads one signed record from the front of `input`.
 * @param {Uint8Array} input
 * @returns {{signed: SignedRecord, rest: Uint8Array}}
 */
export function readSignedRecord(input) {
  const { kind, object, body, rest } = splitObject(input);
  const record = decodeBody(kind, body);
  if (rest.length < 64) throw new DecodeError('truncated', `record signature needs 64 bytes, ${rest.length} remain`);
  return { signed: { bytes: object, record, signature: rest.subarray(0, 64) }, rest: rest.subarray(64) };
}

/**
 * Parses exactly one signed record.
 * @param {Uint8Array} input
 * @returns {SignedRecord}
 */
export function parseSignedRecord(input) {
  const { signed, rest } = readSignedRecord(input);
  if (rest.length) throw new DecodeError('trailing-bytes', `${rest.length} trailing bytes after the record`);
  return signed;
}

/**
 * Encodes `record` once and signs those bytes with the device's WebCrypto key.
 * @param {Record} record
 * @param {CryptoKey} privateKey
 * @returns {Promise<SignedRecord>}
 */
export async function signRecord(record, privateKey) {
  const bytes = encodeRecord(record);
  const signature = await sign(privateKey, DOMAIN_RECORD_SIGNATURE, bytes);
  return { bytes, record: decodeRecord(bytes), signature };
}

/**
 * `record bytes || signature`, as stored and sent.
 * @param {SignedRecord} s
 * @returns {Uint8Array}
 */
export function signedRecordBytes(s) {
  const out = new Uint8Array(s.bytes.length + 64);
  out.set(s.bytes, 0);
  out.set(s.signature, s.bytes.length);
  return out;
}

/**
 * The record hash, SHA-256("custody/v1/record-hash\0" || bytes).
 * @param {Uint8Array} bytes the record's object bytes
 * @returns {Promise<Uint8Array>}
 */
export function recordHash(bytes) {
  return sha256(DOMAIN_RECORD_HASH, bytes);
}

/**
 * Whether `key` signed these exact bytes, under the record domain (strict rules).
 * @param {SignedRecord} s
 * @param {Uint8Array} key
 * @returns {Promise<boolean>}
 */
export function verifyRecord(s, key) {
  return verify(key, DOMAIN_RECORD_SIGNATURE, s.bytes, s.signature);
}
