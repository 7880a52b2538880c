// Device certificates (docs/format.md section 8), mirroring format/src/cert.rs: the
// server's signed statement that a device key was enrolled.

import { f } from './encoding.js';
import { DOMAIN_DEVICE_CERT_SIGNATURE } from './primitives.js';
import { KIND } from './record.js';
import { readKey } from './signed.js';

const DEVICE_KEY = f(1, 'device_key');
const LABEL = f(2, 'label');
const ENROLLED_AT = f(3, 'enrolled_at_us');
const SERVER_KEY = f(4, 'server_key');

/** @typedef {{deviceKey: Uint8Array, label: string, enrolledAtUs: bigint, serverKey: Uint8Array}} DeviceCertificate */

/** @type {import('./signed.js').ObjectDef<DeviceCertificate>} */
export const DEVICE_CERT = {
  kind: KIND.DEVICE_CERT,
  name: 'device certificate',
  domain: DOMAIN_DEVICE_CERT_SIGNATURE,
  write(w, v) {
    w.raw(DEVICE_KEY, v.deviceKey).str(LABEL, v.label).i64(ENROLLED_AT, v.enrolledAtUs).raw(SERVER_KEY, v.serverKey);
  },
  read(r) {
    return {
      deviceKey: readKey(r, DEVICE_KEY),
      label: r.str(LABEL),
      enrolledAtUs: r.i64(ENROLLED_AT),
      serverKey: readKey(r, SERVER_KEY),
    };
  },
};
