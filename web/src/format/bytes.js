// Byte helpers shared by the format, protocol and vault modules: hex, UTF-8, concatenation,
// constant-shape comparison, and SHA-256 (FIPS 180-4) through WebCrypto.

const HEX = '0123456789abcdef';
const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Lowercase hex of `bytes`.
 * @param {Uint8Array} bytes
 * @returns {string}
 */
export function toHex(bytes) {
  let s = '';
  for (const b of bytes) s += HEX[b >> 4] + HEX[b & 15];
  return s;
}

/**
 * Bytes from hex, either case (as Rust's `hex::decode`); `null` if it is not hex of an even
 * length.
 * @param {string} text
 * @returns {Uint8Array | null}
 */
export function fromHex(text) {
  if (typeof text !== 'string' || text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) return null;
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * Bytes from hex of exactly `n` bytes, else `null`.
 * @param {string} text
 * @param {number} n
 * @returns {Uint8Array | null}
 */
export function fromHexExact(text, n) {
  const b = fromHex(text);
  return b && b.length === n ? b : null;
}

/**
 * @param {string} s
 * @returns {Uint8Array}
 */
export function utf8(s) {
  return utf8Encoder.encode(s);
}

/**
 * Decodes strict UTF-8; `null` if the bytes are not UTF-8.
 * @param {Uint8Array} b
 * @returns {string | null}
 */
export function fromUtf8(b) {
  try {
    return utf8Decoder.decode(b);
  } catch {
    return null;
  }
}

/**
 * @param {...Uint8Array} parts
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function concat(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Whether two byte strings are equal (length, then every byte, without an early exit).
 * @param {Uint8Array | null | undefined} a
 * @param {Uint8Array | null | undefined} b
 * @returns {boolean}
 */
export function equal(a, b) {
  if (!a || !b || a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

/**
 * A copy of `b` in its own ArrayBuffer (WebCrypto and IndexedDB want whole buffers).
 * @param {Uint8Array} b
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function own(b) {
  const out = new Uint8Array(b.length);
  out.set(b);
  return out;
}

/**
 * SHA-256 (FIPS 180-4) of the concatenation of `parts`, through WebCrypto.
 * @param {...Uint8Array} parts
 * @returns {Promise<Uint8Array>}
 */
export async function sha256(...parts) {
  const data = parts.length === 1 ? own(parts[0]) : concat(...parts);
  return new Uint8Array(await crypto.subtle.digest('SHA-256', data));
}

/**
 * 16 (or `n`) bytes from the platform's cryptographic RNG.
 * @param {number} [n]
 * @returns {Uint8Array}
 */
export function randomBytes(n = 16) {
  const b = new Uint8Array(n);
  crypto.getRandomValues(b);
  return b;
}
