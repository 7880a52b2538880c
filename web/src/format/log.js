// Signed tree heads of the custody log (docs/format.md section 9.3), mirroring the
// `TreeHead` of format/src/log.rs.

import { f } from './encoding.js';
import { DOMAIN_TREE_HEAD_SIGNATURE } from './primitives.js';
import { KIND } from './record.js';

const TH_SIZE = f(1, 'tree_size');
const TH_ROOT = f(2, 'root_hash');
const TH_AT = f(3, 'timestamp_us');

/** @typedef {{treeSize: bigint, rootHash: Uint8Array, timestampUs: bigint}} TreeHead */

/** @type {import('./signed.js').ObjectDef<TreeHead>} */
export const TREE_HEAD = {
  kind: KIND.TREE_HEAD,
  name: 'tree head',
  domain: DOMAIN_TREE_HEAD_SIGNATURE,
  write(w, v) {
    w.u64(TH_SIZE, v.treeSize).raw(TH_ROOT, v.rootHash).i64(TH_AT, v.timestampUs);
  },
  read(r) {
    return { treeSize: r.u64(TH_SIZE), rootHash: r.array(TH_ROOT, 32), timestampUs: r.i64(TH_AT) };
  },
};
