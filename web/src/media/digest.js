// The packet digest of docs/format.md section 6, as format/src/digest.rs computes it.
//
// A segment's media packets are reduced to their coded payload (H.264/HEVC slices without
// their framing, AAC without ADTS, every other codec as it is) and hashed stream by stream,
// so that the digest survives a remux: the verifier demuxes the decrypted segment with
// FFmpeg and must arrive at the same 32 bytes. SHA-256 comes from @noble/hashes because
// WebCrypto's digest is one-shot and a segment's packets arrive one by one.

import { sha256 } from '@noble/hashes/sha2.js';

const enc = new TextEncoder();
const DOMAIN_STREAM = enc.encode('custody/v1/packet-digest/stream\0');
const DOMAIN = enc.encode('custody/v1/packet-digest\0');

/**
 * How a stream's packets frame their units: `'annexb'` (start codes), a length-prefix size
 * 1..4 (avcC/hvcC), or `'whole'` (the packet is one unit).
 * @typedef {'annexb' | 'whole' | 1 | 2 | 3 | 4} Framing
 */

/**
 * One stream as the digest sees it.
 * @typedef {{kind: number, codec: string, framing: Framing}} DigestStream
 */

/**
 * The framing of an H.264 or HEVC stream from its codec configuration ("extradata"), as
 * format.md section 6.1 says: a record whose first byte is 1 (avcC >= 7 bytes, hvcC >= 23)
 * means length-prefixed units of the size it states; anything else means Annex B.
 * @param {string} codec
 * @param {Uint8Array | null | undefined} extradata
 * @returns {Framing}
 */
export function framingFromExtradata(codec, extradata) {
  const x = extradata ?? new Uint8Array(0);
  if (codec === 'h264') {
    if (x.length >= 7 && x[0] === 1) return /** @type {Framing} */ ((x[4] & 3) + 1);
    return 'annexb';
  }
  if (codec === 'hevc') {
    if (x.length >= 23 && x[0] === 1) return /** @type {Framing} */ ((x[21] & 3) + 1);
    return 'annexb';
  }
  return 'whole';
}

/** @param {Uint8Array} unit */
function trimZeros(unit) {
  let end = unit.length;
  while (end > 0 && unit[end - 1] === 0) end -= 1;
  return unit.subarray(0, end);
}

/**
 * NAL units after `00 00 01` start codes, or null if the packet is not Annex B framed
 * (no start code, or non-zero bytes before the first).
 * @param {Uint8Array} d
 * @returns {Uint8Array[] | null}
 */
function splitAnnexB(d) {
  /** @type {number[]} */
  const starts = [];
  let i = 0;
  while (i + 3 <= d.length) {
    if (d[i + 2] > 1) i += 3;
    else if (d[i] === 0 && d[i + 1] === 0 && d[i + 2] === 1) {
      starts.push(i + 3);
      i += 3;
    } else i += 1;
  }
  if (starts.length === 0) return null;
  for (let j = 0; j < starts[0] - 3; j++) if (d[j] !== 0) return null;
  return starts.map((s, n) =>
    trimZeros(d.subarray(s, n + 1 < starts.length ? starts[n + 1] - 3 : d.length)),
  );
}

/**
 * @param {Uint8Array} d
 * @param {number} size
 * @returns {Uint8Array[] | null}
 */
function splitLengthPrefixed(d, size) {
  if (size < 1 || size > 4) return null;
  const units = [];
  let p = 0;
  while (p < d.length) {
    if (p + size > d.length) return null;
    let len = 0;
    for (let k = 0; k < size; k++) len = len * 256 + d[p + k];
    p += size;
    if (p + len > d.length) return null;
    units.push(trimZeros(d.subarray(p, p + len)));
    p += len;
  }
  return units;
}

/**
 * The raw AAC frame: the packet itself without an ADTS header, its payload with exactly
 * one well-formed ADTS frame, null when the header disagrees with the packet.
 * @param {Uint8Array} d
 */
function stripAdts(d) {
  const isAdts = d.length >= 2 && d[0] === 0xff && (d[1] & 0xf6) === 0xf0;
  if (!isAdts) return d;
  if (d.length < 7) return null;
  const headerLen = d[1] & 1 ? 7 : 9;
  const frameLen = ((d[3] & 3) << 11) | (d[4] << 3) | (d[5] >> 5);
  if (frameLen !== d.length || frameLen < headerLen) return null;
  return d.subarray(headerLen);
}

/**
 * A packet reduced to its digest entry (format.md section 6.1).
 * @param {DigestStream} s
 * @param {boolean} containerKey
 * @param {Uint8Array} data
 * @returns {{form: number, key: boolean, units: Uint8Array[]}}
 */
export function normalise(s, containerKey, data) {
  const opaque = (/** @type {boolean} */ key) => ({ form: 1, key, units: [data] });
  if (s.codec === 'h264' || s.codec === 'hevc') {
    const units =
      s.framing === 'annexb'
        ? splitAnnexB(data)
        : s.framing === 'whole'
          ? [data]
          : splitLengthPrefixed(data, s.framing);
    if (!units) return opaque(containerKey);
    let key = false;
    const kept = [];
    for (const u of units) {
      if (u.length === 0) continue;
      let vcl;
      let irap;
      if (s.codec === 'h264') {
        const t = u[0] & 0x1f;
        vcl = t >= 1 && t <= 5;
        irap = t === 5;
      } else {
        const t = (u[0] >> 1) & 0x3f;
        vcl = t <= 31;
        irap = t >= 16 && t <= 23;
      }
      if (vcl) {
        key ||= irap;
        kept.push(u);
      }
    }
    return { form: 0, key, units: kept };
  }
  if (s.codec === 'aac') {
    const raw = stripAdts(data);
    return raw ? { form: 0, key: true, units: [raw] } : opaque(true);
  }
  return { form: 0, key: s.kind === 1 ? containerKey : true, units: [data] };
}

/** @param {number} n */
function u32(n) {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

/** @param {number} n a safe integer */
function u64(n) {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return b;
}

/** Computes a packet digest one packet at a time, in the order the packets are read. */
export class PacketDigester {
  /** @param {DigestStream[]} streams */
  constructor(streams) {
    this.streams = streams.map((info) => {
      const hash = sha256.create();
      hash.update(DOMAIN_STREAM);
      return { info, hash, packets: 0 };
    });
  }

  /**
   * Adds one packet of stream `index`; false (and ignored) if there is no such stream.
   * @param {number} index
   * @param {boolean} containerKey the container's keyframe flag
   * @param {Uint8Array} data
   */
  push(index, containerKey, data) {
    const s = this.streams[index];
    if (!s) return false;
    s.packets += 1;
    const e = normalise(s.info, containerKey, data);
    s.hash.update(new Uint8Array([e.form, e.key ? 1 : 0]));
    s.hash.update(u32(e.units.length));
    for (const u of e.units) {
      s.hash.update(u32(u.length));
      s.hash.update(u);
    }
    return true;
  }

  /** Packets pushed so far, per stream. */
  packetCounts() {
    return this.streams.map((s) => s.packets);
  }

  /**
   * The digest of everything pushed (the digester cannot be used afterwards).
   * @returns {Uint8Array}
   */
  finish() {
    const outer = sha256.create();
    outer.update(DOMAIN);
    outer.update(u32(this.streams.length));
    for (const s of this.streams) {
      const codec = enc.encode(s.info.codec).subarray(0, 255);
      outer.update(new Uint8Array([s.info.kind, codec.length]));
      outer.update(codec);
      outer.update(u64(s.packets));
      outer.update(s.hash.digest());
    }
    return outer.digest();
  }
}
