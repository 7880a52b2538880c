// Signed objects other than chain records (receipts, tree heads, device certificates, case
// recipients), mirroring format/src/signed.rs: each is encoded once and signed over those
// bytes behind its own domain string; stored and sent as `object bytes || signature`.

import { isValidPublicKey, sign, verify } from './ed25519.js';
import { DecodeError, FieldReader, FieldWriter, splitObject } from './encoding.js';

/**
 * A kind of signed object.
 * @template T
 * @typedef {object} ObjectDef
 * @property {number} kind
 * @property {string} name
 * @property {Uint8Array} domain
 * @property {(w: FieldWriter, v: T) => void} write
 * @property {(r: FieldReader) => T} read
 */

/**
 * An object with its exact signed bytes and signature.
 * @template T
 * @typedef {object} Signed
 * @property {T} value
 * @property {Uint8Array} bytes
 * @property {Uint8Array} signature
 */

/**
 * Reads one signed object of `def`'s kind from the front of `input`.
 * @template T
 * @param {ObjectDef<T>} def
 * @param {Uint8Array} input
 * @returns {{signed: Signed<T>, rest: Uint8Array}}
 */
export function readSigned(def, input) {
  const { kind, object, body, rest } = splitObject(input);
  if (kind !== def.kind) throw new DecodeError('wrong-kind', `expected a ${def.name} object, found kind ${kind}`);
  const r = new FieldReader(def.name, body);
  const value = def.read(r);
  r.finish();
  if (rest.length < 64) throw new DecodeError('truncated', `signature needs 64 bytes, ${rest.length} remain`);
  return { signed: { value, bytes: object, signature: rest.subarray(0, 64) }, rest: rest.subarray(64) };
}

/**
 * Parses exactly one signed object.
 * @template T
 * @param {ObjectDef<T>} def
 * @param {Uint8Array} input
 * @returns {Signed<T>}
 */
export function parseSigned(def, input) {
  const { signed, rest } = readSigned(def, input);
  if (rest.length) throw new DecodeError('trailing-bytes', `${rest.length} trailing bytes after the object`);
  return signed;
}

/**
 * Encodes `value` once (for tests: servers sign these, devices only verify).
 * @template T
 * @param {ObjectDef<T>} def
 * @param {T} value
 * @returns {Uint8Array}
 */
export function encodeObject(def, value) {
  const w = new FieldWriter();
  def.write(w, value);
  return w.object(def.kind);
}

/**
 * Encodes and signs `value`.
 * @template T
 * @param {ObjectDef<T>} def
 * @param {T} value
 * @param {CryptoKey} privateKey
 * @returns {Promise<Signed<T>>}
 */
export async function signObject(def, value, privateKey) {
  const bytes = encodeObject(def, value);
  const { body } = splitObject(bytes);
  const r = new FieldReader(def.name, body);
  const read = def.read(r);
  r.finish();
  return { value: read, bytes, signature: await sign(privateKey, def.domain, bytes) };
}

/**
 * Whether `key` signed these bytes under `def`'s domain (strict rules).
 * @template T
 * @param {ObjectDef<T>} def
 * @param {Signed<T>} s
 * @param {Uint8Array} key
 * @returns {Promise<boolean>}
 */
export function verifySigned(def, s, key) {
  return verify(key, def.domain, s.bytes, s.signature);
}

/**
 * `bytes || signature`, as stored.
 * @template T
 * @param {Signed<T>} s
 * @returns {Uint8Array}
 */
export function signedBytes(s) {
  const out = new Uint8Array(s.bytes.length + 64);
  out.set(s.bytes, 0);
  out.set(s.signature, s.bytes.length);
  return out;
}

/**
 * Reads a required public key field, refusing invalid and small-order keys.
 * @param {FieldReader} r
 * @param {import('./encoding.js').Field} fd
 * @returns {Uint8Array}
 */
export function readKey(r, fd) {
  const k = r.array(fd, 32);
  if (!isValidPublicKey(k)) throw new DecodeError('invalid-value', `field \`${fd.name}\` has an invalid value: not a valid Ed25519 key`);
  return k;
}
