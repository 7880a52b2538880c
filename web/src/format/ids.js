// Identifiers (docs/format.md section 3), mirroring format/src/ids.rs: recording ids,
// public keys in text form, and key fingerprints in Crockford base32.

import { fromHex, sha256, toHex } from './bytes.js';
import { DOMAIN_KEY_FINGERPRINT } from './primitives.js';
import { isValidPublicKey } from './ed25519.js';

export const KEY_PREFIX = 'ed25519:';
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** Why an identifier could not be read. */
export class IdError extends Error {
  /**
   * @param {'not-fingerprint' | 'not-hex' | 'wrong-length' | 'missing-prefix' | 'invalid-key'} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = 'IdError';
    this.code = code;
  }
}

/**
 * The text form of a public key, `ed25519:<64 hex>`.
 * @param {Uint8Array} key
 * @returns {string}
 */
export function keyToText(key) {
  return KEY_PREFIX + toHex(key);
}

/**
 * Parses `ed25519:<64 hex digits>` (surrounding space ignored), refusing keys that are not
 * a curve point or are of small order.
 * @param {string} text
 * @returns {Uint8Array}
 */
export function parseKey(text) {
  const t = String(text).trim();
  if (!t.startsWith(KEY_PREFIX)) throw new IdError('missing-prefix', 'a public key is written `ed25519:` followed by 64 hex digits');
  const b = fromHex(t.slice(KEY_PREFIX.length));
  if (!b) throw new IdError('not-hex', 'public key is not hexadecimal');
  if (b.length !== 32) throw new IdError('wrong-length', 'public key must be 32 bytes');
  if (!isValidPublicKey(b)) throw new IdError('invalid-key', 'not a valid Ed25519 public key (not a curve point, or a weak small-order point)');
  return b;
}

/**
 * The fingerprint's 100 bits (13 bytes, the last nibble zero) of a 32-byte key:
 * the first 100 bits of SHA-256("custody/v1/key-fingerprint\0" || key).
 * @param {Uint8Array} key
 * @returns {Promise<Uint8Array>}
 */
export async function fingerprintBits(key) {
  const h = await sha256(DOMAIN_KEY_FINGERPRINT, key);
  const b = h.slice(0, 13);
  b[12] &= 0xf0;
  return b;
}

/**
 * Writes 13 fingerprint bytes as four groups of five Crockford base32 characters.
 * @param {Uint8Array} b
 * @returns {string}
 */
export function fingerprintText(b) {
  /** @param {number} i */
  const bit = (i) => (b[i >> 3] >> (7 - (i & 7))) & 1;
  let s = '';
  for (let c = 0; c < 20; c++) {
    if (c > 0 && c % 5 === 0) s += '-';
    let v = 0;
    for (let j = 0; j < 5; j++) v = (v << 1) | bit(c * 5 + j);
    s += CROCKFORD[v];
  }
  return s;
}

/**
 * The fingerprint of a key, e.g. `X0GNA-N1SW0-61D2M-JC0J9`.
 * @param {Uint8Array} key
 * @returns {Promise<string>}
 */
export async function fingerprint(key) {
  return fingerprintText(await fingerprintBits(key));
}

/**
 * Parses a fingerprint as people write it: 20 Crockford base32 characters in any case,
 * with or without dashes; I and L read as 1, O as 0. Returns its 13 bytes.
 * @param {string} text
 * @returns {Uint8Array}
 */
export function parseFingerprint(text) {
  const b = new Uint8Array(13);
  let n = 0;
  for (const ch of String(text).trim()) {
    if (ch === '-') continue;
    let c = ch.toUpperCase();
    if (c === 'I' || c === 'L') c = '1';
    if (c === 'O') c = '0';
    const v = c.length === 1 ? CROCKFORD.indexOf(c) : -1;
    if (v < 0 || n === 20) throw new IdError('not-fingerprint', 'a fingerprint is 20 characters in four groups of five');
    for (let j = 0; j < 5; j++) {
      if ((v >> (4 - j)) & 1) {
        const i = n * 5 + j;
        b[i >> 3] |= 0x80 >> (i & 7);
      }
    }
    n++;
  }
  if (n !== 20) throw new IdError('not-fingerprint', 'a fingerprint is 20 characters in four groups of five');
  return b;
}

/**
 * A fresh random recording id (16 bytes from the platform's cryptographic RNG).
 * @returns {Uint8Array}
 */
export function randomRecordingId() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return b;
}

/**
 * Parses the 32-hex-digit form of a recording id.
 * @param {string} text
 * @returns {Uint8Array}
 */
export function parseRecordingId(text) {
  const b = fromHex(text);
  if (!b) throw new IdError('not-hex', 'recording id is not hexadecimal');
  if (b.length !== 16) throw new IdError('wrong-length', 'recording id must be 16 bytes');
  return b;
}
