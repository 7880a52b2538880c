// Typed JSON bodies of the HTTP API that a device sends or reads (docs/api.md), mirroring
// protocol/src/body.rs, with the checks the device makes of each answer.

import { concat, equal, fromHex, fromHexExact, sha256, toHex } from '../format/bytes.js';
import { DEVICE_CERT } from '../format/cert.js';
import { sign, verify } from '../format/ed25519.js';
import { keyToText, parseKey } from '../format/ids.js';
import { TREE_HEAD } from '../format/log.js';
import { DOMAIN_ENROLLMENT_SIGNATURE } from '../format/primitives.js';
import { RECEIPT } from '../format/receipt.js';
import { CASE_RECIPIENTS } from '../format/recipients.js';
import { parseSigned, verifySigned } from '../format/signed.js';

/** A body that does not hold what it must; `field` names the part. */
export class BodyError extends Error {
  /**
   * @param {string} field
   * @param {string} reason
   */
  constructor(field, reason) {
    super(`${field}: ${reason}`);
    this.name = 'BodyError';
    this.field = field;
  }
}

/**
 * @param {unknown} v
 * @param {string} field
 * @returns {string}
 */
function str(v, field) {
  if (typeof v !== 'string') throw new BodyError(field, 'is missing or not a string');
  return v;
}

/**
 * @param {unknown} v
 * @param {string} field
 * @returns {number}
 */
function uint(v, field) {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new BodyError(field, 'is not a non-negative integer');
  return v;
}

/**
 * @param {unknown} v
 * @param {string} field
 * @returns {Record<string, unknown>}
 */
function obj(v, field) {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new BodyError(field, 'is not a JSON object');
  return /** @type {Record<string, unknown>} */ (v);
}

/**
 * @template T
 * @param {import('../format/signed.js').ObjectDef<T>} def
 * @param {unknown} hexText
 * @param {string} field
 * @returns {import('../format/signed.js').Signed<T>}
 */
export function signedField(def, hexText, field) {
  const b = fromHex(str(hexText, field));
  if (!b) throw new BodyError(field, 'is not hex');
  try {
    return parseSigned(def, b);
  } catch (e) {
    throw new BodyError(field, e instanceof Error ? e.message : String(e));
  }
}

/**
 * @param {unknown} v
 * @param {string} field
 * @returns {Uint8Array}
 */
function keyField(v, field) {
  try {
    return parseKey(str(v, field));
  } catch (e) {
    throw new BodyError(field, e instanceof Error ? e.message : String(e));
  }
}

/**
 * `GET /v1/server`: the server's key, TLS pin and latest signed tree head.
 * @param {unknown} json
 * @returns {{serverKey: Uint8Array, tlsSha256: string | null, treeHead: string}}
 */
export function parseServerInfo(json) {
  const o = obj(json, 'server info');
  return {
    serverKey: keyField(o.server_key, 'server_key'),
    tlsSha256: o.tls_sha256 === null || o.tls_sha256 === undefined ? null : str(o.tls_sha256, 'tls_sha256'),
    treeHead: str(o.tree_head, 'tree_head'),
  };
}

/**
 * The proof-of-possession message, SHA-256(token) || device_key.
 * @param {Uint8Array} token
 * @param {Uint8Array} deviceKey
 * @returns {Promise<Uint8Array>}
 */
export async function enrollmentMessage(token, deviceKey) {
  return concat(await sha256(token), deviceKey);
}

/**
 * The `POST /v1/enroll` body: the token, the device key and its proof of possession.
 * @param {CryptoKey} privateKey
 * @param {Uint8Array} deviceKey
 * @param {Uint8Array} token
 * @returns {Promise<{token: string, device_key: string, signature: string}>}
 */
export async function enrollRequest(privateKey, deviceKey, token) {
  const sig = await sign(privateKey, DOMAIN_ENROLLMENT_SIGNATURE, await enrollmentMessage(token, deviceKey));
  return { token: toHex(token), device_key: keyToText(deviceKey), signature: toHex(sig) };
}

/**
 * Whether an enrollment request's proof verifies (the server's check; for the vectors).
 * @param {{token: string, device_key: string, signature: string}} req
 * @returns {Promise<boolean>}
 */
export async function enrollProofVerifies(req) {
  const token = fromHexExact(req.token, 32);
  const sig = fromHexExact(req.signature, 64);
  if (!token || !sig) return false;
  const key = parseKey(req.device_key);
  return verify(key, DOMAIN_ENROLLMENT_SIGNATURE, await enrollmentMessage(token, key), sig);
}

/**
 * Checks signed case recipients: they parse, verify with the pinned `serverKey`, and name
 * that key. Throws BodyError('case_recipients') otherwise.
 * @param {unknown} hexText
 * @param {Uint8Array} serverKey
 * @returns {Promise<import('../format/signed.js').Signed<import('../format/recipients.js').CaseRecipients>>}
 */
export async function checkedRecipients(hexText, serverKey) {
  const s = signedField(CASE_RECIPIENTS, hexText, 'case_recipients');
  if (!(await verifySigned(CASE_RECIPIENTS, s, serverKey)) || !equal(s.value.serverKey, serverKey)) {
    throw new BodyError('case_recipients', 'is not signed by the pinned server key');
  }
  return s;
}

/**
 * @typedef {object} CheckedEnrollment
 * @property {Uint8Array} serverKey
 * @property {string | null} tlsSha256
 * @property {import('../format/signed.js').Signed<import('../format/cert.js').DeviceCertificate>} certificate
 * @property {import('../format/signed.js').Signed<import('../format/recipients.js').CaseRecipients>} caseRecipients
 * @property {string} label
 */

/**
 * Checks an enrollment answer as docs/api.md says: the certificate verifies with
 * `server_key` and names this device and that server; the case recipients verify with it.
 * Throws BodyError('certificate') or BodyError('case_recipients').
 * @param {unknown} json
 * @param {Uint8Array} deviceKey
 * @returns {Promise<CheckedEnrollment>}
 */
export async function checkEnrollAnswer(json, deviceKey) {
  const o = obj(json, 'enrollment answer');
  const serverKey = keyField(o.server_key, 'server_key');
  const certificate = signedField(DEVICE_CERT, o.certificate, 'certificate');
  if (!(await verifySigned(DEVICE_CERT, certificate, serverKey)) || !equal(certificate.value.deviceKey, deviceKey)
    || !equal(certificate.value.serverKey, serverKey)) {
    throw new BodyError('certificate', 'is not the server\'s certificate for this device');
  }
  const caseRecipients = await checkedRecipients(o.case_recipients, serverKey);
  const tls = o.tls_sha256 === null || o.tls_sha256 === undefined ? null : str(o.tls_sha256, 'tls_sha256');
  return { serverKey, tlsSha256: tls, certificate, caseRecipients, label: str(o.label, 'label') };
}

/**
 * `GET /v1/log/head`: the signed tree head, checked with the pinned server key.
 * @param {unknown} json
 * @param {Uint8Array} serverKey
 * @returns {Promise<import('../format/signed.js').Signed<import('../format/log.js').TreeHead>>}
 */
export async function checkedLogHead(json, serverKey) {
  const s = signedField(TREE_HEAD, obj(json, 'log head').tree_head, 'tree_head');
  if (!(await verifySigned(TREE_HEAD, s, serverKey))) throw new BodyError('tree_head', 'is not signed by the enrolled server');
  return s;
}

/**
 * `GET /v1/log/consistency`: the proof's sizes and hashes.
 * @param {unknown} json
 * @returns {{from: number, to: number, proof: Uint8Array[]}}
 */
export function parseConsistency(json) {
  const o = obj(json, 'consistency proof');
  if (!Array.isArray(o.proof)) throw new BodyError('proof', 'is not a list');
  const proof = o.proof.map((h) => {
    const b = fromHexExact(str(h, 'proof'), 32);
    if (!b) throw new BodyError('proof', 'a hash must be 64 hex digits');
    return b;
  });
  return { from: uint(o.from, 'from'), to: uint(o.to, 'to'), proof };
}

/**
 * `GET /v1/recordings/{id}/receipts`: the receipts again, as `{seq, receipt}` (unchecked:
 * the caller checks each against its record).
 * @param {unknown} json
 * @returns {{recordingId: string, receipts: {seq: number, receipt: import('../format/signed.js').Signed<import('../format/receipt.js').Receipt> | null}[]}}
 */
export function parseReceiptsAnswer(json) {
  const o = obj(json, 'receipts answer');
  if (!Array.isArray(o.receipts)) throw new BodyError('receipts', 'is not a list');
  return {
    recordingId: str(o.recording_id, 'recording_id'),
    receipts: o.receipts.map((item) => {
      const it = obj(item, 'receipt');
      let receipt = null;
      try {
        receipt = signedField(RECEIPT, it.receipt, 'receipt');
      } catch {
        receipt = null;
      }
      return { seq: uint(it.seq, 'seq'), receipt };
    }),
  };
}
