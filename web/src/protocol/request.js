// Signed device requests (docs/api.md, "Request signatures"), mirroring
// protocol/src/request.rs. The signature covers the server's key, the method, the path
// (with its query), a timestamp, a random nonce and the body's SHA-256:
//
//   server_key "\n" method "\n" path "\n" timestamp_us "\n" nonce_hex "\n" body_sha256_hex
//
// signed under "custody/v1/request-signature\0" and sent in four Custody-* headers.

import { fromHexExact, sha256, toHex, utf8 } from '../format/bytes.js';
import { sign, verify } from '../format/ed25519.js';
import { keyToText } from '../format/ids.js';
import { DOMAIN_REQUEST_SIGNATURE } from '../format/primitives.js';

export const H_DEVICE = 'custody-device';
export const H_TIMESTAMP = 'custody-timestamp';
export const H_NONCE = 'custody-nonce';
export const H_SIGNATURE = 'custody-signature';
export const SIGNATURE_HEADERS = Object.freeze([H_DEVICE, H_TIMESTAMP, H_NONCE, H_SIGNATURE]);

/**
 * The message a device signs for one request.
 * @param {Uint8Array} serverKey
 * @param {string} method upper case
 * @param {string} path path and query exactly as sent
 * @param {bigint | number} timestampUs
 * @param {Uint8Array} nonce 16 bytes
 * @param {Uint8Array} bodySha256
 * @returns {Uint8Array}
 */
export function requestMessage(serverKey, method, path, timestampUs, nonce, bodySha256) {
  return utf8(`${keyToText(serverKey)}\n${method}\n${path}\n${BigInt(timestampUs)}\n${toHex(nonce)}\n${toHex(bodySha256)}`);
}

/**
 * The four signature headers of a request, as `[name, value]` pairs in docs/api.md order.
 * @param {object} p
 * @param {CryptoKey} p.privateKey the device key
 * @param {Uint8Array} p.deviceKey its public half
 * @param {Uint8Array} p.serverKey
 * @param {string} p.method
 * @param {string} p.path
 * @param {bigint | number} p.timestampUs
 * @param {Uint8Array} p.nonce 16 fresh random bytes
 * @param {Uint8Array} p.body
 * @returns {Promise<[string, string][]>}
 */
export async function signRequest({ privateKey, deviceKey, serverKey, method, path, timestampUs, nonce, body }) {
  const msg = requestMessage(serverKey, method, path, timestampUs, nonce, await sha256(body));
  const signature = await sign(privateKey, DOMAIN_REQUEST_SIGNATURE, msg);
  return [
    [H_DEVICE, keyToText(deviceKey)],
    [H_TIMESTAMP, String(BigInt(timestampUs))],
    [H_NONCE, toHex(nonce)],
    [H_SIGNATURE, toHex(signature)],
  ];
}

/**
 * Whether `signatureHex` signs this request from `deviceKey` to `serverKey` (what the
 * server checks; here for the vectors).
 * @param {Uint8Array} deviceKey
 * @param {Uint8Array} serverKey
 * @param {string} method
 * @param {string} path
 * @param {bigint | number} timestampUs
 * @param {Uint8Array} nonce
 * @param {Uint8Array} bodySha256
 * @param {string} signatureHex
 * @returns {Promise<boolean>}
 */
export async function verifyRequest(deviceKey, serverKey, method, path, timestampUs, nonce, bodySha256, signatureHex) {
  const sig = fromHexExact(signatureHex, 64);
  if (!sig) return false;
  return verify(deviceKey, DOMAIN_REQUEST_SIGNATURE, requestMessage(serverKey, method, path, timestampUs, nonce, bodySha256), sig);
}
