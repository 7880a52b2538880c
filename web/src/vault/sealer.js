// Sealing a segment on the phone: the plaintext is encrypted with typage (age-encryption,
// FiloSottile's TypeScript implementation of age v1) to every case recipient, so any stock
// age tool holding a legal-team identity can open it; the record gets the plaintext's and
// the ciphertext's lengths and SHA-256. The plaintext is only ever in memory: this returns
// the ciphertext and the digests, and the caller drops the plaintext.

import { Encrypter } from 'age-encryption';
import { sha256 } from '../format/bytes.js';

/**
 * @typedef {object} Sealed
 * @property {Uint8Array} ciphertext the age v1 file
 * @property {number} plaintextLen
 * @property {Uint8Array} plaintextSha256
 * @property {number} ciphertextLen
 * @property {Uint8Array} ciphertextSha256
 */

/** Why a segment could not be sealed. */
export class SealError extends Error {
  /**
   * @param {'recipients.none' | 'recipients.invalid'} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = 'SealError';
    this.code = code;
  }
}

/**
 * Encrypts `plaintext` to every recipient (`age1…` X25519 recipients; age v1 with
 * ChaCha20-Poly1305 STREAM inside).
 * @param {Uint8Array} plaintext
 * @param {string[]} recipients
 * @returns {Promise<Sealed>}
 */
export async function seal(plaintext, recipients) {
  if (!recipients.length) throw new SealError('recipients.none', 'no case recipient to seal to: the server named none');
  const e = new Encrypter();
  for (const r of recipients) {
    try {
      e.addRecipient(r);
    } catch (err) {
      throw new SealError('recipients.invalid', `not an age recipient: ${r} (${err instanceof Error ? err.message : err})`);
    }
  }
  const plaintextSha256 = await sha256(plaintext);
  const ciphertext = await e.encrypt(plaintext);
  return {
    ciphertext,
    plaintextLen: plaintext.length,
    plaintextSha256,
    ciphertextLen: ciphertext.length,
    ciphertextSha256: await sha256(ciphertext),
  };
}
