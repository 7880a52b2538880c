// The Store (store.js) over IndexedDB, the page's storage.
//
// Every write is one transaction opened with `{durability: 'strict'}` and resolves only on
// its `complete` event, so "saved" means flushed: measured in Chromium here, a browser
// killed 0.3 s after such a write kept it (localStorage did not). Values are structured
// clones: Uint8Arrays, and the device's Ed25519 CryptoKey, which IndexedDB stores without
// ever exposing its private bytes (it is non-extractable).

import { STORES } from './store.js';

export const DB_NAME = 'custody';
const DB_VERSION = 1;

/**
 * @template T
 * @param {IDBRequest<T>} req
 * @returns {Promise<T>}
 */
function done(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/** @typedef {import('./store.js').Store} Store */

/** @implements {Store} */
export class IndexedDbStore {
  /** @param {IDBDatabase} db */
  constructor(db) {
    this.db = db;
  }

  /**
   * Opens (creating on first use) the database `name`.
   * @param {string} [name]
   * @returns {Promise<IndexedDbStore>}
   */
  static async open(name = DB_NAME) {
    const req = indexedDB.open(name, DB_VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      for (const s of STORES) if (!db.objectStoreNames.contains(s)) db.createObjectStore(s);
    };
    const db = await done(req);
    // A newer version of the page opened in another tab: let it upgrade (this tab's next
    // write fails and is reported; nothing already written is lost).
    db.onversionchange = () => db.close();
    return new IndexedDbStore(db);
  }

  /** @param {string} store @param {string} key */
  async get(store, key) {
    const tx = this.db.transaction(store, 'readonly');
    return done(tx.objectStore(store).get(key));
  }

  /** @param {string} store */
  async entries(store) {
    const tx = this.db.transaction(store, 'readonly');
    const os = tx.objectStore(store);
    const [keys, values] = await Promise.all([done(os.getAllKeys()), done(os.getAll())]);
    return keys.map((key, i) => ({ key: String(key), value: /** @type {unknown} */ (values[i]) }));
  }

  /** @param {import('./store.js').WriteOp[]} ops */
  write(ops) {
    const names = [...new Set(ops.map((o) => o.store))];
    return new Promise((resolve, reject) => {
      let tx;
      try {
        tx = this.db.transaction(names, 'readwrite', { durability: 'strict' });
      } catch (e) {
        reject(e);
        return;
      }
      tx.oncomplete = () => resolve();
      // A full quota aborts the transaction with tx.error named QuotaExceededError.
      tx.onabort = () => reject(tx.error ?? new DOMException('the transaction was aborted', 'AbortError'));
      for (const op of ops) {
        const os = tx.objectStore(op.store);
        if (op.op === 'put') os.put(op.value, op.key);
        else os.delete(op.key);
      }
    });
  }

  close() {
    this.db.close();
  }
}
