// Matroska element IDs and the Tracks element, read into the stream descriptions the
// recording header lists (FFmpeg's codec names, as format.md section 4.1 and the packet
// digest use them).

import { MediaError } from './bytes.js';

/** Matroska element IDs (with their length marker bits, as written). */
export const ID = Object.freeze({
  EBML: 0x1a45dfa3,
  DocType: 0x4282,
  Segment: 0x18538067,
  SeekHead: 0x114d9b74,
  Info: 0x1549a966,
  TimecodeScale: 0x2ad7b1,
  Tracks: 0x1654ae6b,
  TrackEntry: 0xae,
  TrackNumber: 0xd7,
  TrackType: 0x83,
  CodecID: 0x86,
  CodecPrivate: 0x63a2,
  DefaultDuration: 0x23e383,
  Video: 0xe0,
  PixelWidth: 0xb0,
  PixelHeight: 0xba,
  Audio: 0xe1,
  SamplingFrequency: 0xb5,
  Channels: 0x9f,
  BitDepth: 0x6264,
  ContentEncodings: 0x6d80,
  Cluster: 0x1f43b675,
  Timestamp: 0xe7,
  SimpleBlock: 0xa3,
  BlockGroup: 0xa0,
  Block: 0xa1,
  BlockDuration: 0x9b,
  ReferenceBlock: 0xfb,
  Position: 0xa7,
  PrevSize: 0xab,
  SilentTracks: 0x5854,
  EncryptedBlock: 0xaf,
  Void: 0xec,
  CRC32: 0xbf,
});

/**
 * A track as both parsers describe it: the recording header's stream fields, plus what
 * the digest and the segmenter need.
 * @typedef {{
 *   number: number, kind: number, codec: string, extradata: Uint8Array | null,
 *   width: number, height: number, frameRateNum: number, frameRateDen: number,
 *   sampleRate: number, channels: number, timeBaseNum: number, timeBaseDen: number,
 *   defaultDurationUs: number | null
 * }} Track
 */

/**
 * FFmpeg's codec name for a Matroska CodecID (and, for PCM, the bit depth), or null.
 * @param {string} id
 * @param {number} bitDepth
 */
function codecName(id, bitDepth) {
  if (id.startsWith('A_AAC')) return 'aac';
  switch (id) {
    case 'V_VP8': return 'vp8';
    case 'V_VP9': return 'vp9';
    case 'V_AV1': return 'av1';
    case 'V_MPEG4/ISO/AVC': return 'h264';
    case 'V_MPEGH/ISO/HEVC': return 'hevc';
    case 'V_MJPEG': return 'mjpeg';
    case 'A_OPUS': return 'opus';
    case 'A_VORBIS': return 'vorbis';
    case 'A_FLAC': return 'flac';
    case 'A_MPEG/L3': return 'mp3';
    case 'A_PCM/INT/LIT': return { 16: 'pcm_s16le', 24: 'pcm_s24le', 32: 'pcm_s32le' }[bitDepth] ?? null;
    case 'A_PCM/FLOAT/IEEE': return { 32: 'pcm_f32le', 64: 'pcm_f64le' }[bitDepth] ?? null;
    default: return null;
  }
}

/**
 * Direct children of an element body as [id, body] pairs.
 * @param {Uint8Array} body
 * @param {number} at absolute offset of the body, for errors
 * @returns {[number, Uint8Array][]}
 */
function children(body, at) {
  /** @type {[number, Uint8Array][]} */
  const out = [];
  let p = 0;
  while (p < body.length) {
    const first = body[p];
    let idLen = 1;
    while (idLen <= 4 && !(first & (0x80 >> (idLen - 1)))) idLen += 1;
    if (idLen > 4 || p + idLen >= body.length) throw bad(at + p);
    let id = 0;
    for (let i = 0; i < idLen; i++) id = id * 256 + body[p + i];
    p += idLen;
    const s0 = body[p];
    let sLen = 1;
    while (sLen <= 8 && !(s0 & (0x80 >> (sLen - 1)))) sLen += 1;
    if (sLen > 8 || p + sLen > body.length) throw bad(at + p);
    let size = s0 & (0xff >> sLen);
    for (let i = 1; i < sLen; i++) size = size * 256 + body[p + i];
    p += sLen;
    if (p + size > body.length) throw bad(at + p);
    out.push([id, body.subarray(p, p + size)]);
    p += size;
  }
  return out;
}

/** @param {number} at */
function bad(at) {
  return new MediaError('webm.tracks.invalid', 'the Tracks element does not parse', at);
}

/** @param {Uint8Array} b */
function uint(b) {
  let v = 0;
  for (const x of b) v = v * 256 + x;
  return v;
}

/** @param {Uint8Array} b a 4- or 8-byte big-endian float */
function float(b) {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length === 4) return v.getFloat32(0);
  if (b.length === 8) return v.getFloat64(0);
  return 0;
}

/**
 * The tracks in a Tracks element's body, in their order there.
 * @param {Uint8Array} body
 * @param {number} at absolute offset of the body
 * @returns {Track[]}
 */
export function parseTracks(body, at) {
  /** @type {Track[]} */
  const tracks = [];
  for (const [id, entry] of children(body, at)) {
    if (id !== ID.TrackEntry) continue;
    const f = new Map(children(entry, at));
    const number = uint(f.get(ID.TrackNumber) ?? new Uint8Array(0));
    const type = uint(f.get(ID.TrackType) ?? new Uint8Array(0));
    const codecId = new TextDecoder().decode(f.get(ID.CodecID) ?? new Uint8Array(0)).replace(/\0+$/, '');
    if (f.has(ID.ContentEncodings)) {
      throw new MediaError('webm.track.encoded', `track ${number} is compressed or encrypted (ContentEncodings)`, at);
    }
    const video = new Map(children(f.get(ID.Video) ?? new Uint8Array(0), at));
    const audio = new Map(children(f.get(ID.Audio) ?? new Uint8Array(0), at));
    const bitDepth = uint(audio.get(ID.BitDepth) ?? new Uint8Array(0));
    const codec = codecName(codecId, bitDepth);
    if (!codec) throw new MediaError('webm.codec.unsupported', `track ${number} has codec ${codecId}, which custody does not record`, at);
    if (number === 0 || tracks.some((t) => t.number === number)) {
      throw new MediaError('webm.track.number', `track number ${number} is missing or repeated`, at);
    }
    const dd = f.get(ID.DefaultDuration);
    const defaultDurationNs = dd ? uint(dd) : 0;
    let [frameRateNum, frameRateDen] = [0, 1];
    if (type === 1 && defaultDurationNs > 0) [frameRateNum, frameRateDen] = reduce(1e9, defaultDurationNs, 30000);
    const rate = audio.get(ID.SamplingFrequency);
    const channels = audio.get(ID.Channels);
    tracks.push({
      number,
      kind: type === 1 ? 1 : type === 2 ? 2 : 3,
      codec,
      extradata: f.get(ID.CodecPrivate)?.slice() ?? null,
      width: type === 1 ? uint(video.get(ID.PixelWidth) ?? new Uint8Array(0)) : 0,
      height: type === 1 ? uint(video.get(ID.PixelHeight) ?? new Uint8Array(0)) : 0,
      frameRateNum,
      frameRateDen,
      sampleRate: type === 2 ? Math.round(rate ? float(rate) : 8000) : 0,
      channels: type === 2 ? (channels ? uint(channels) : 1) : 0,
      timeBaseNum: 1,
      timeBaseDen: 1000,
      defaultDurationUs: defaultDurationNs > 0 ? defaultDurationNs / 1000 : null,
    });
  }
  if (tracks.length === 0) throw new MediaError('webm.tracks.empty', 'the Tracks element lists no track', at);
  return tracks;
}

/**
 * The closest fraction to num/den with both terms at most `max`, by continued fractions
 * (as FFmpeg's av_reduce gives a Matroska track's frame rate from its DefaultDuration).
 * @param {number} num
 * @param {number} den
 * @param {number} max
 * @returns {[number, number]}
 */
export function reduce(num, den, max) {
  let [a0, a1, b0, b1] = [0, 1, 1, 0];
  let [n, d] = [num, den];
  while (d) {
    const x = Math.floor(n / d);
    const [a2, b2] = [x * a1 + a0, x * b1 + b0];
    if (a2 > max || b2 > max) break;
    [a0, a1, b0, b1] = [a1, a2, b1, b2];
    [n, d] = [d, n - x * d];
  }
  return b1 === 0 ? [Math.min(Math.round(num / den), max), 1] : [a1, b1];
}
