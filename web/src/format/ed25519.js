// Ed25519 (RFC 8032, pure Ed25519) through WebCrypto, with the strict verification rules of
// ed25519-dalek's `verify_strict` that format/src/primitives.rs uses.
//
// What WebCrypto checks and what it does not: `crypto.subtle.verify({name: 'Ed25519'})`
// (OpenSSL in node, BoringSSL in Chromium, NSS in Firefox, CoreCrypto in Safari) refuses a
// signature whose S is not below the group order L in the implementations we know of, and
// compares the recomputed R with the signature's R bytes; it does not refuse small-order
// public keys or small-order R points, and not every engine checks S < L the same way. So
// before asking WebCrypto we check, ourselves and the same way on every browser:
//   - the public key decodes to a curve point and is not of small order (format.md section 3);
//   - the signature's R decodes to a curve point and is not of small order;
//   - S < L (canonical), so one message has one valid signature per key.
// Point decoding and the small-order test use @noble/curves (already part of the page
// through age-encryption); signing and the verification equation are WebCrypto's.

import { ed25519 } from '@noble/curves/ed25519.js';
import { concat, own } from './bytes.js';

/** The group order L of edwards25519. */
const L = (1n << 252n) + 27742317777372353535851937790883648493n;

/**
 * Whether 32 bytes are a usable Ed25519 public key: a curve point, not of small order.
 * Non-canonical y encodings are accepted as ed25519-dalek's decompression accepts them
 * (zip215); the small-order ones among them are refused by the order test.
 * @param {Uint8Array} bytes
 * @returns {boolean}
 */
export function isValidPublicKey(bytes) {
  if (!(bytes instanceof Uint8Array) || bytes.length !== 32) return false;
  try {
    return !ed25519.Point.fromBytes(bytes, true).isSmallOrder();
  } catch {
    return false;
  }
}

/**
 * @param {Uint8Array} s32 little-endian scalar
 * @returns {boolean}
 */
function canonicalScalar(s32) {
  let x = 0n;
  for (let i = 31; i >= 0; i--) x = (x << 8n) | BigInt(s32[i]);
  return x < L;
}

/**
 * Signs `domain || message` with a WebCrypto Ed25519 private key.
 * @param {CryptoKey} privateKey
 * @param {Uint8Array} domain
 * @param {Uint8Array} message
 * @returns {Promise<Uint8Array>} 64 bytes
 */
export async function sign(privateKey, domain, message) {
  const sig = await crypto.subtle.sign({ name: 'Ed25519' }, privateKey, concat(domain, message));
  return new Uint8Array(sig);
}

/** @type {Map<string, Promise<CryptoKey>>} */
const imported = new Map();

/**
 * The WebCrypto verification key for 32 public key bytes (cached: a device verifies with
 * the same server key for every receipt).
 * @param {Uint8Array} keyBytes
 * @returns {Promise<CryptoKey>}
 */
function verifyKey(keyBytes) {
  const id = Array.from(keyBytes).join(',');
  let k = imported.get(id);
  if (!k) {
    k = crypto.subtle.importKey('raw', own(keyBytes), { name: 'Ed25519' }, true, ['verify']);
    if (imported.size > 64) imported.clear();
    imported.set(id, k);
  }
  return k;
}

/**
 * Verifies an Ed25519 signature over `domain || message` with the strict rules above.
 * Never throws on bad input: anything unverifiable is `false`.
 * @param {Uint8Array} keyBytes 32-byte public key
 * @param {Uint8Array} domain
 * @param {Uint8Array} message
 * @param {Uint8Array} signature 64 bytes
 * @returns {Promise<boolean>}
 */
export async function verify(keyBytes, domain, message, signature) {
  if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
  if (!isValidPublicKey(keyBytes)) return false;
  if (!canonicalScalar(signature.subarray(32))) return false;
  try {
    if (ed25519.Point.fromBytes(signature.subarray(0, 32), true).isSmallOrder()) return false;
  } catch {
    return false;
  }
  try {
    const key = await verifyKey(keyBytes);
    return await crypto.subtle.verify({ name: 'Ed25519' }, key, own(signature), concat(domain, message));
  } catch {
    return false;
  }
}

/**
 * A new device key pair: the private key is **non-extractable** (it can sign, nobody can
 * read it out, not even this page); the public key is always exportable.
 * @returns {Promise<CryptoKeyPair>}
 */
export async function generateKeyPair() {
  return /** @type {CryptoKeyPair} */ (
    await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify'])
  );
}

/**
 * The 32 bytes of a public CryptoKey.
 * @param {CryptoKey} publicKey
 * @returns {Promise<Uint8Array>}
 */
export async function publicKeyBytes(publicKey) {
  return new Uint8Array(await crypto.subtle.exportKey('raw', publicKey));
}

/** PKCS #8 (RFC 8410) prefix of an Ed25519 private key, before its 32-byte seed. */
const PKCS8_PREFIX = new Uint8Array([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
]);

/**
 * A signing key from an RFC 8032 secret (the 32-byte seed). For tests and vectors only
 * (the vectors' testkit keys); a device's key is made by `generateKeyPair`.
 * @param {Uint8Array} seed
 * @returns {Promise<{privateKey: CryptoKey, publicKey: Uint8Array}>}
 */
export async function keyFromSeed(seed) {
  const privateKey = await crypto.subtle.importKey(
    'pkcs8', concat(PKCS8_PREFIX, seed), { name: 'Ed25519' }, false, ['sign']);
  return { privateKey, publicKey: ed25519.getPublicKey(seed) };
}
