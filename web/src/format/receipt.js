// Receipts (docs/format.md section 7), mirroring format/src/receipt.rs: the server's signed
// statement that it durably stored a record (and its sealed segment) and logged it.

import { DecodeError, f } from './encoding.js';
import { DOMAIN_RECEIPT_SIGNATURE } from './primitives.js';
import { KIND } from './record.js';
import { readKey } from './signed.js';

const RECORDING_ID = f(1, 'recording_id');
const SEQ = f(2, 'seq');
const RECORD_HASH = f(3, 'record_hash');
const CIPHERTEXT_SHA256 = f(4, 'ciphertext_sha256');
const DEVICE_KEY = f(5, 'device_key');
const RECEIVED_AT = f(6, 'received_at_us');
const LOG_INDEX = f(7, 'log_index');
const TREE_SIZE = f(8, 'tree_size');
const TREE_ROOT = f(9, 'tree_root');

/**
 * @typedef {object} Receipt
 * @property {Uint8Array} recordingId
 * @property {bigint} seq
 * @property {Uint8Array} recordHash
 * @property {Uint8Array | null} ciphertextSha256 segment records only
 * @property {Uint8Array} deviceKey
 * @property {bigint} receivedAtUs
 * @property {bigint} logIndex
 * @property {bigint} treeSize > logIndex
 * @property {Uint8Array} treeRoot
 */

/** @type {import('./signed.js').ObjectDef<Receipt>} */
export const RECEIPT = {
  kind: KIND.RECEIPT,
  name: 'receipt',
  domain: DOMAIN_RECEIPT_SIGNATURE,
  write(w, v) {
    w.raw(RECORDING_ID, v.recordingId).u64(SEQ, v.seq).raw(RECORD_HASH, v.recordHash);
    if (v.ciphertextSha256) w.raw(CIPHERTEXT_SHA256, v.ciphertextSha256);
    w.raw(DEVICE_KEY, v.deviceKey).i64(RECEIVED_AT, v.receivedAtUs).u64(LOG_INDEX, v.logIndex)
      .u64(TREE_SIZE, v.treeSize).raw(TREE_ROOT, v.treeRoot);
  },
  read(r) {
    const v = {
      recordingId: r.array(RECORDING_ID, 16),
      seq: r.u64(SEQ),
      recordHash: r.array(RECORD_HASH, 32),
      ciphertextSha256: r.optionalArray(CIPHERTEXT_SHA256, 32),
      deviceKey: readKey(r, DEVICE_KEY),
      receivedAtUs: r.i64(RECEIVED_AT),
      logIndex: r.u64(LOG_INDEX),
      treeSize: r.u64(TREE_SIZE),
      treeRoot: r.array(TREE_ROOT, 32),
    };
    if (v.logIndex >= v.treeSize) {
      throw new DecodeError('invalid-value', 'field `log_index` has an invalid value: the entry must lie inside the tree it was appended under');
    }
    return v;
  },
};
