// EBML (RFC 8794) primitives for the WebM parser: variable-length integers, unsigned
// integers, direct children of an element body, and Matroska block lacing.

import { MediaError } from './bytes.js';

/** The value of an all-ones size: the element's size is unknown (RFC 8794 section 6.2). */
export const UNKNOWN = -1;

/**
 * Reads an EBML variable-length integer at `p` in `d`.
 * @param {Uint8Array} d
 * @param {number} p
 * @param {boolean} keepMarker true for element IDs
 * @returns {{value: number, len: number} | null | 'bad'} null if more bytes are needed
 */
export function readVint(d, p, keepMarker) {
  if (p >= d.length) return null;
  const first = d[p];
  if (first === 0) return 'bad';
  let len = 1;
  while (!(first & (0x80 >> (len - 1)))) len += 1;
  if (keepMarker && len > 4) return 'bad';
  if (p + len > d.length) return null;
  let value = keepMarker ? first : first & (0xff >> len);
  let allOnes = value === 0xff >> len;
  for (let i = 1; i < len; i++) {
    value = value * 256 + d[p + i];
    allOnes &&= d[p + i] === 0xff;
  }
  if (!keepMarker && allOnes) value = UNKNOWN;
  return { value, len };
}

/**
 * A block's frames after its header, split by its lacing (0 none, 1 Xiph, 2 fixed, 3 EBML),
 * refusing sizes that do not add up as FFmpeg's matroska_parse_laces does.
 * @param {Uint8Array} d
 * @param {number} p
 * @param {number} lacing
 * @param {number} at
 */
export function laces(d, p, lacing, at) {
  if (lacing === 0) return [d.subarray(p)];
  const bad = () => new MediaError('webm.lacing.invalid', 'a laced block whose sizes do not add up', at);
  if (p >= d.length) throw bad();
  const count = d[p] + 1;
  p += 1;
  /** @type {number[]} */
  const sizes = [];
  if (lacing === 1) {
    for (let i = 0; i < count - 1; i++) {
      let size = 0;
      let b;
      do {
        if (p >= d.length) throw bad();
        b = d[p++];
        size += b;
      } while (b === 255);
      sizes.push(size);
    }
  } else if (lacing === 3) {
    let prev = 0;
    for (let i = 0; i < count - 1; i++) {
      const v = readVint(d, p, false);
      if (!v || v === 'bad' || v.value === UNKNOWN) throw bad();
      p += v.len;
      const size = i === 0 ? v.value : prev + v.value - (2 ** (7 * v.len - 1) - 1);
      if (size < 0) throw bad();
      sizes.push(size);
      prev = size;
    }
  } else {
    const rest = d.length - p;
    if (rest % count !== 0) throw bad();
    for (let i = 0; i < count - 1; i++) sizes.push(rest / count);
  }
  const used = sizes.reduce((a, b) => a + b, 0);
  if (p + used > d.length) throw bad();
  sizes.push(d.length - p - used);
  return sizes.map((s) => {
    const f = d.subarray(p, p + s);
    p += s;
    return f;
  });
}

/**
 * @param {number} a
 * @param {number} b
 */
export function gcd(a, b) {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** @param {Uint8Array} b big-endian unsigned integer (up to 2^53) */
export function readUint(b) {
  let v = 0;
  for (const x of b) v = v * 256 + x;
  return v;
}

/**
 * The first direct child `id` of an element body, or null.
 * @param {Uint8Array} body
 * @param {number} id
 */
export function childOf(body, id) {
  let p = 0;
  while (p < body.length) {
    const cid = readVint(body, p, true);
    if (!cid || cid === 'bad') return null;
    const cs = readVint(body, p + cid.len, false);
    if (!cs || cs === 'bad' || cs.value === UNKNOWN) return null;
    const s = p + cid.len + cs.len;
    if (s + cs.value > body.length) return null;
    if (cid.value === id) return body.subarray(s, s + cs.value);
    p = s + cs.value;
  }
  return null;
}
