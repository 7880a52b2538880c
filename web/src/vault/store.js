// The vault's storage seam: a small key-value interface with atomic, durable multi-write
// transactions, implemented over IndexedDB for the page (idb.js) and in memory for node
// tests (MemoryTestStore, below; named so nobody takes it for storage).
//
// Four object stores: `meta` (the enrollment with its non-extractable CryptoKey, the log
// head held, a recorded inconsistency), `recordings` (one summary per recording), `records`
// (every signed record with its receipt once it has one) and `ciphertext` (sealed segments
// waiting for their receipt). Plaintext is never written to any of them.

/** The object stores every Store has. */
export const STORES = Object.freeze(['meta', 'recordings', 'records', 'ciphertext']);

/**
 * One write of a transaction.
 * @typedef {{op: 'put', store: string, key: string, value: unknown} | {op: 'delete', store: string, key: string}} WriteOp
 */

/**
 * The storage interface. `write` applies every op in one transaction and resolves only
 * once the transaction is durable (IndexedDB `durability: 'strict'`); if it rejects,
 * nothing of it was applied. A full quota rejects with a DOMException named
 * `QuotaExceededError`.
 * @typedef {object} Store
 * @property {(store: string, key: string) => Promise<unknown>} get
 * @property {(store: string) => Promise<{key: string, value: unknown}[]>} entries  every entry, in key order
 * @property {(ops: WriteOp[]) => Promise<void>} write
 * @property {() => void} close
 */

/**
 * An in-memory Store for node tests only: nothing survives the process. It can be given a
 * byte quota so tests can see what a full IndexedDB does (a QuotaExceededError, nothing of
 * the transaction applied).
 * @implements {Store}
 */
export class MemoryTestStore {
  /** @param {{quotaBytes?: number}} [options] */
  constructor(options = {}) {
    /** @type {Map<string, Map<string, unknown>>} */
    this.maps = new Map(STORES.map((s) => [s, new Map()]));
    this.quotaBytes = options.quotaBytes ?? Infinity;
    /** Transactions written, for tests. */
    this.writes = 0;
  }

  /** @param {string} store */
  map(store) {
    const m = this.maps.get(store);
    if (!m) throw new Error(`no object store ${store}`);
    return m;
  }

  /** @param {string} store @param {string} key */
  async get(store, key) {
    return this.map(store).get(key);
  }

  /** @param {string} store */
  async entries(store) {
    return [...this.map(store).entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([key, value]) => ({ key, value }));
  }

  /** Bytes held in Uint8Array values (what the quota counts). */
  usage() {
    let n = 0;
    for (const m of this.maps.values()) for (const v of m.values()) n += sizeOf(v);
    return n;
  }

  /** @param {WriteOp[]} ops */
  async write(ops) {
    // Apply to copies first, so a refused transaction changes nothing.
    const next = new Map([...this.maps].map(([k, m]) => [k, new Map(m)]));
    for (const op of ops) {
      const m = next.get(op.store);
      if (!m) throw new Error(`no object store ${op.store}`);
      if (op.op === 'put') m.set(op.key, op.value);
      else m.delete(op.key);
    }
    const before = this.maps;
    this.maps = next;
    if (this.usage() > this.quotaBytes) {
      this.maps = before;
      throw new DOMException('the test store\'s quota is exceeded', 'QuotaExceededError');
    }
    this.writes += 1;
  }

  close() {}
}

/**
 * @param {unknown} v
 * @returns {number}
 */
function sizeOf(v) {
  if (v instanceof Uint8Array) return v.length;
  if (v && typeof v === 'object') {
    let n = 0;
    for (const x of Object.values(v)) n += sizeOf(x);
    return n;
  }
  return 0;
}

/**
 * Whether an error is a full storage quota (IndexedDB's, or the test store's).
 * @param {unknown} e
 * @returns {boolean}
 */
export function isQuotaError(e) {
  return !!e && typeof e === 'object' && /** @type {{name?: string}} */ (e).name === 'QuotaExceededError';
}
