// The custody log's Merkle tree: RFC 9162 (Certificate Transparency v2) section 2.1 over
// SHA-256, mirroring format/src/merkle.rs. The verifiers follow the step lists of RFC 9162
// sections 2.1.3.2 (inclusion) and 2.1.4.2 (consistency) exactly; sizes and indices are
// BigInt so that JavaScript's 32-bit bit operators never truncate them. A tree size is not
// bound into any hash: it must come from a signed tree head or receipt.

import { concat, equal, sha256 } from './bytes.js';

export const MAX_PROOF_HASHES = 64;

/** Why a proof did not verify; `code` as the vectors name it. */
export class MerkleError extends Error {
  /**
   * @param {'index-out-of-range' | 'sizes-invalid' | 'proof-too-long' | 'proof-wrong-length' | 'root-mismatch'} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = 'MerkleError';
    this.code = code;
  }
}

const ZERO = new Uint8Array([0]);
const ONE = new Uint8Array([1]);

/**
 * Hash of a leaf, SHA-256(0x00 || data) (RFC 9162 section 2.1.1).
 * @param {Uint8Array} data
 * @returns {Promise<Uint8Array>}
 */
export function leafHash(data) {
  return sha256(ZERO, data);
}

/**
 * Hash of an interior node, SHA-256(0x01 || left || right).
 * @param {Uint8Array} left
 * @param {Uint8Array} right
 * @returns {Promise<Uint8Array>}
 */
export function nodeHash(left, right) {
  return sha256(concat(ONE, left, right));
}

/** @returns {Promise<Uint8Array>} MTH({}), the SHA-256 of nothing */
export function emptyRoot() {
  return sha256(new Uint8Array(0));
}

/**
 * MTH of the given leaf hashes (recursive; for tests and small trees).
 * @param {Uint8Array[]} leaves
 * @returns {Promise<Uint8Array>}
 */
export async function root(leaves) {
  if (leaves.length === 0) return emptyRoot();
  if (leaves.length === 1) return leaves[0];
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return nodeHash(await root(leaves.slice(0, k)), await root(leaves.slice(k)));
}

/** @param {number | bigint} v @returns {bigint} */
const big = (v) => BigInt(v);

/**
 * @param {Uint8Array[]} proof
 */
function checkLimit(proof) {
  if (proof.length > MAX_PROOF_HASHES) throw new MerkleError('proof-too-long', `proof holds ${proof.length} hashes, more than ${MAX_PROOF_HASHES}`);
}

const wrongLength = () => new MerkleError('proof-wrong-length', 'the proof does not hold the number of hashes these sizes call for');
const mismatch = () => new MerkleError('root-mismatch', 'the proof does not lead to the root hash(es) given');

/**
 * Verifies an inclusion proof (RFC 9162 section 2.1.3.2); throws MerkleError if it fails.
 * @param {Uint8Array} leaf the leaf hash
 * @param {number | bigint} index
 * @param {number | bigint} treeSize
 * @param {Uint8Array[]} proof
 * @param {Uint8Array} rootHash
 * @returns {Promise<void>}
 */
export async function verifyInclusion(leaf, index, treeSize, proof, rootHash) {
  checkLimit(proof);
  const i = big(index);
  const n = big(treeSize);
  // 1.
  if (i >= n) throw new MerkleError('index-out-of-range', `leaf index ${i} is out of range for a tree of ${n} leaves`);
  // 2. 3.
  let fn = i;
  let sn = n - 1n;
  let r = leaf;
  // 4.
  for (const p of proof) {
    if (sn === 0n) throw wrongLength();
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  // 5.
  if (sn !== 0n) throw wrongLength();
  if (!equal(r, rootHash)) throw mismatch();
}

/**
 * Verifies that the tree of `newSize` leaves with root `newRoot` extends the tree of
 * `oldSize` leaves with root `oldRoot` (RFC 9162 section 2.1.4.2; the cases 0 and
 * old = new settled as format.md says, with an empty proof). Throws MerkleError.
 * @param {number | bigint} oldSize
 * @param {number | bigint} newSize
 * @param {Uint8Array} oldRoot
 * @param {Uint8Array} newRoot
 * @param {Uint8Array[]} proof
 * @returns {Promise<void>}
 */
export async function verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof) {
  checkLimit(proof);
  const m = big(oldSize);
  const n = big(newSize);
  if (m > n) throw new MerkleError('sizes-invalid', `old tree size ${m} is larger than new tree size ${n}`);
  if (m === 0n || m === n) {
    if (proof.length) throw wrongLength();
    const oldOk = m !== 0n || equal(oldRoot, await emptyRoot());
    if (!oldOk || (m === n && !equal(oldRoot, newRoot))) throw mismatch();
    return;
  }
  // 1.
  if (proof.length === 0) throw wrongLength();
  // 2. (and 5., 6.: the path's first value starts fr and sr, the rest are folded in)
  const pow2 = (m & (m - 1n)) === 0n;
  const start = pow2 ? oldRoot : proof[0];
  const path = pow2 ? proof : proof.slice(1);
  // 3. 4.
  let fn = m - 1n;
  let sn = n - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = start;
  let sr = start;
  for (const c of path) {
    if (sn === 0n) throw wrongLength();
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  // 7.
  if (sn !== 0n) throw wrongLength();
  if (!equal(fr, oldRoot) || !equal(sr, newRoot)) throw mismatch();
}

/**
 * The consistency proof PROOF(m, D[n]) of RFC 9162 section 2.1.4.1 (for tests: servers
 * make proofs, devices check them).
 * @param {Uint8Array[]} leaves leaf hashes
 * @param {number} m
 * @param {number} n
 * @returns {Promise<Uint8Array[]>}
 */
export async function consistencyProof(leaves, m, n) {
  if (m === 0 || m === n) return [];
  /** @type {(m: number, d: Uint8Array[], b: boolean) => Promise<Uint8Array[]>} */
  const sub = async (mm, d, b) => {
    if (mm === d.length) return b ? [] : [await root(d)];
    let k = 1;
    while (k * 2 < d.length) k *= 2;
    if (mm <= k) return [...(await sub(mm, d.slice(0, k), b)), await root(d.slice(k))];
    return [...(await sub(mm - k, d.slice(k), false)), await root(d.slice(0, k))];
  };
  return sub(m, leaves.slice(0, n), true);
}
