// The errors the device façade gives the page: a stable `code` (for the words shown) and a
// message; and the mapping from what failed below (network, refusal, full storage, sealing).

import { NetworkError } from '../protocol/client.js';
import { Refusal } from '../protocol/code.js';
import { SealError } from './sealer.js';
import { isQuotaError } from './store.js';

/** An error for the page: a stable `code` (for the words shown) and a message. */
export class DeviceError extends Error {
  /**
   * @param {string} code e.g. 'link.invalid', 'server.fingerprint.mismatch', 'recipients.forged',
   *   'cert.invalid', 'network', 'quota', 'not.enrolled', 'recipients.none', or a protocol refusal code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = 'DeviceError';
    this.code = code;
  }
}

/**
 * @param {unknown} e
 * @returns {DeviceError}
 */
export function asDeviceError(e) {
  if (e instanceof DeviceError) return e;
  if (e instanceof NetworkError) return new DeviceError('network', e.message);
  if (e instanceof Refusal) return new DeviceError(e.codeText, e.message);
  if (isQuotaError(e)) return new DeviceError('quota', 'the phone\'s storage is full: nothing more can be saved; what was sealed is kept');
  if (e instanceof SealError) return new DeviceError(e.code, e.message);
  return new DeviceError('internal', e instanceof Error ? e.message : String(e));
}

