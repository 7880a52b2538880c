// The phone's outbox, mirroring what vault/src/outbox.rs and the client's receipts keep:
// the enrollment, every signed record with its sealed segment until a receipt comes, the
// receipts, the custody-log head held, and the evidence if a log check ever failed.
//
// A segment's ciphertext and its signed record go into the store in ONE transaction, so a
// kill leaves both or neither. A receipt is checked against the pinned server key and the
// very record it names before it is stored; only then does the outbox let go of the
// record. DEFAULT: once a segment's receipt is stored, its ciphertext is deleted from the
// phone (records, receipts and the log head are kept): a seized phone then holds nothing
// playable (nor even the sealed copy), and phones are short of space; the legal team's
// server holds the sealed segment and the receipt proves it. `keepCiphertext: true` keeps
// it.

import { equal } from '../format/bytes.js';
import { RECEIPT } from '../format/receipt.js';
import { parseSignedRecord, recordHash, recordSeq } from '../format/record.js';
import { parseSigned, verifySigned } from '../format/signed.js';

/**
 * @typedef {object} Enrollment
 * @property {string} origin the server's base URL
 * @property {Uint8Array} serverKey
 * @property {string} serverFingerprint
 * @property {Uint8Array} deviceKey
 * @property {CryptoKey} privateKey the device's non-extractable Ed25519 key
 * @property {Uint8Array} certificate signed device certificate
 * @property {Uint8Array} caseRecipients signed case recipients
 * @property {string[]} recipients
 * @property {string | null} tlsSha256
 * @property {string} label
 * @property {number} enrolledAtUs
 */

/**
 * @typedef {object} RecordEntry
 * @property {string} id recording id, hex
 * @property {number} seq
 * @property {'header' | 'segment' | 'end'} kind
 * @property {Uint8Array} bytes `record bytes || signature`
 * @property {number} mediaStartUs
 * @property {number} mediaEndUs
 * @property {number} ciphertextLen 0 for a header or end record
 * @property {Uint8Array | null} receipt
 * @property {boolean} ciphertextHeld
 */

/**
 * @typedef {object} RecordingEntry
 * @property {string} id
 * @property {number} startedAtUs
 * @property {number} order creation order, to upload the oldest first
 * @property {number | null} endSeq
 */

/**
 * @typedef {object} HeadRef
 * @property {bigint} treeSize
 * @property {Uint8Array} rootHash
 * @property {'receipt' | 'tree-head'} source
 * @property {Uint8Array} signed the signed object that named it
 */

/** A receipt that is not the server's for this record. */
export class ReceiptError extends Error {}

const pad = (/** @type {number} */ seq) => String(seq).padStart(12, '0');
const recKey = (/** @type {string} */ id, /** @type {number} */ seq) => `${id}/${pad(seq)}`;

export class Outbox {
  /**
   * @param {import('./store.js').Store} store
   * @param {{keepCiphertext?: boolean, channel?: string}} [options] `channel`: the
   *   BroadcastChannel name the page's tabs share (none in node tests)
   */
  constructor(store, options = {}) {
    this.store = store;
    this.keepCiphertext = options.keepCiphertext ?? false;
    /** @type {Enrollment | null} */
    this.enrollment = null;
    /** @type {Map<string, RecordingEntry>} */
    this.recordings = new Map();
    /** @type {Map<string, RecordEntry>} */
    this.records = new Map();
    /** @type {(HeadRef & {serverKey: string}) | null} */
    this.held = null;
    /** @type {Record<string, unknown> | null} */
    this.inconsistency = null;
    /** Called after another tab's change was read in. @type {(keys: [string, string][]) => void} */
    this.onRemoteChange = () => {};
    /** @type {BroadcastChannel | null} */
    this.channel = options.channel ? new BroadcastChannel(options.channel) : null;
    if (this.channel) {
      this.channel.onmessage = (ev) => {
        const keys = /** @type {{keys?: [string, string][]}} */ (ev.data)?.keys;
        if (Array.isArray(keys)) void this.reread(keys);
      };
    }
  }

  /** Stops listening to other tabs. */
  close() {
    this.channel?.close();
    this.channel = null;
  }

  /**
   * Writes `ops` in one durable transaction, then tells the page's other tabs which keys
   * changed (BroadcastChannel), so that every tab's view of the outbox stays the store's.
   * @param {import('./store.js').WriteOp[]} ops
   */
  async commit(ops) {
    await this.store.write(ops);
    const keys = ops.filter((o) => o.store !== 'ciphertext').map((o) => [o.store, o.key]);
    if (this.channel && keys.length) this.channel.postMessage({ keys });
  }

  /**
   * Another tab changed these keys: read them again from the store.
   * @param {[string, string][]} keys
   */
  async reread(keys) {
    for (const [store, key] of keys) {
      const v = await this.store.get(store, key);
      if (store === 'records') {
        if (v === undefined) this.records.delete(key);
        else this.records.set(key, /** @type {RecordEntry} */ (v));
      } else if (store === 'recordings') {
        if (v === undefined) this.recordings.delete(key);
        else this.recordings.set(key, /** @type {RecordingEntry} */ (v));
      } else if (store === 'meta' && key === 'enrollment') {
        this.enrollment = /** @type {Enrollment | null} */ (v ?? null);
      } else if (store === 'meta' && key === 'log-head') {
        this.held = /** @type {(HeadRef & {serverKey: string}) | null} */ (v ?? null);
      } else if (store === 'meta' && key === 'log-inconsistent') {
        this.inconsistency = /** @type {Record<string, unknown> | null} */ (v ?? null);
      }
    }
    this.onRemoteChange(keys);
  }

  /**
   * Opens the outbox and reads what it holds.
   * @param {import('./store.js').Store} store
   * @param {{keepCiphertext?: boolean, channel?: string}} [options]
   */
  static async open(store, options) {
    const o = new Outbox(store, options);
    o.enrollment = /** @type {Enrollment | null} */ ((await store.get('meta', 'enrollment')) ?? null);
    o.held = /** @type {(HeadRef & {serverKey: string}) | null} */ ((await store.get('meta', 'log-head')) ?? null);
    o.inconsistency = /** @type {Record<string, unknown> | null} */ ((await store.get('meta', 'log-inconsistent')) ?? null);
    for (const { key, value } of await store.entries('recordings')) o.recordings.set(key, /** @type {RecordingEntry} */ (value));
    for (const { key, value } of await store.entries('records')) o.records.set(key, /** @type {RecordEntry} */ (value));
    return o;
  }

  /** @param {Enrollment} e */
  async saveEnrollment(e) {
    await this.commit([{ op: 'put', store: 'meta', key: 'enrollment', value: e }]);
    this.enrollment = e;
  }

  /**
   * Saves a recording's signed header (position 0), opening the recording.
   * @param {string} id
   * @param {Uint8Array} bytes
   * @param {number} startedAtUs
   */
  async addHeader(id, bytes, startedAtUs) {
    const order = Math.max(0, ...[...this.recordings.values()].map((r) => r.order)) + 1;
    /** @type {RecordingEntry} */
    const rec = { id, startedAtUs, order, endSeq: null };
    const entry = this.entry(id, 0, 'header', bytes, 0, 0, 0, false);
    await this.commit([
      { op: 'put', store: 'recordings', key: id, value: rec },
      { op: 'put', store: 'records', key: recKey(id, 0), value: entry },
    ]);
    this.recordings.set(id, rec);
    this.records.set(recKey(id, 0), entry);
  }

  /**
   * Saves a signed segment record and its ciphertext in one transaction.
   * @param {string} id
   * @param {number} seq
   * @param {Uint8Array} bytes
   * @param {Uint8Array} ciphertext
   * @param {number} mediaStartUs
   * @param {number} mediaEndUs
   */
  async addSegment(id, seq, bytes, ciphertext, mediaStartUs, mediaEndUs) {
    const entry = this.entry(id, seq, 'segment', bytes, mediaStartUs, mediaEndUs, ciphertext.length, true);
    await this.commit([
      { op: 'put', store: 'ciphertext', key: recKey(id, seq), value: ciphertext },
      { op: 'put', store: 'records', key: recKey(id, seq), value: entry },
    ]);
    this.records.set(recKey(id, seq), entry);
  }

  /**
   * Saves the end record, closing the recording.
   * @param {string} id
   * @param {number} seq
   * @param {Uint8Array} bytes
   */
  async addEnd(id, seq, bytes) {
    const rec = /** @type {RecordingEntry} */ ({ ...this.recordings.get(id), endSeq: seq });
    const entry = this.entry(id, seq, 'end', bytes, 0, 0, 0, false);
    await this.commit([
      { op: 'put', store: 'recordings', key: id, value: rec },
      { op: 'put', store: 'records', key: recKey(id, seq), value: entry },
    ]);
    this.recordings.set(id, rec);
    this.records.set(recKey(id, seq), entry);
  }

  /**
   * @param {string} id @param {number} seq @param {'header' | 'segment' | 'end'} kind
   * @param {Uint8Array} bytes @param {number} mediaStartUs @param {number} mediaEndUs
   * @param {number} ciphertextLen @param {boolean} ciphertextHeld
   * @returns {RecordEntry}
   */
  entry(id, seq, kind, bytes, mediaStartUs, mediaEndUs, ciphertextLen, ciphertextHeld) {
    return { id, seq, kind, bytes, mediaStartUs, mediaEndUs, ciphertextLen, receipt: null, ciphertextHeld };
  }

  /**
   * Records without a receipt: the oldest recording first, each in chain order.
   * @returns {RecordEntry[]}
   */
  pending() {
    const order = (/** @type {string} */ id) => this.recordings.get(id)?.order ?? Infinity;
    return [...this.records.values()].filter((r) => !r.receipt)
      .sort((a, b) => order(a.id) - order(b.id) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) || a.seq - b.seq);
  }

  /** @param {string} id @param {number} seq @returns {RecordEntry | undefined} */
  record(id, seq) {
    return this.records.get(recKey(id, seq));
  }

  /** @param {string} id @returns {RecordEntry[]} the recording's records in chain order */
  recordsOf(id) {
    return [...this.records.values()].filter((r) => r.id === id).sort((a, b) => a.seq - b.seq);
  }

  /** @param {string} id @param {number} seq @returns {Promise<Uint8Array | undefined>} */
  async ciphertext(id, seq) {
    return /** @type {Uint8Array | undefined} */ (await this.store.get('ciphertext', recKey(id, seq)));
  }

  /**
   * Checks that `bytes` is a receipt signed by the pinned server key for exactly this
   * record (recording, position, record hash, ciphertext hash) from this device.
   * @param {RecordEntry} entry
   * @param {Uint8Array} bytes
   * @returns {Promise<import('../format/signed.js').Signed<import('../format/receipt.js').Receipt>>}
   */
  async checkReceipt(entry, bytes) {
    const e = this.enrollment;
    if (!e) throw new ReceiptError('not enrolled');
    let r;
    try {
      r = parseSigned(RECEIPT, bytes);
    } catch (err) {
      throw new ReceiptError(`receipt: ${err instanceof Error ? err.message : err}`);
    }
    if (!(await verifySigned(RECEIPT, r, e.serverKey))) throw new ReceiptError('the receipt is not signed by the enrolled server');
    const signed = parseSignedRecord(entry.bytes);
    const rec = signed.record;
    const cipher = rec.type === 'segment' ? rec.ciphertextSha256 : null;
    const v = r.value;
    const cipherOk = cipher === null ? v.ciphertextSha256 === null : equal(v.ciphertextSha256, cipher);
    if (!equal(v.recordingId, rec.recordingId) || v.seq !== recordSeq(rec) || !equal(v.recordHash, await recordHash(signed.bytes))
      || !cipherOk || !equal(v.deviceKey, e.deviceKey)) {
      throw new ReceiptError('the receipt does not name the record sent');
    }
    return r;
  }

  /**
   * Stores a receipt, checked first (`checkReceipt`), and lets go of the record: by
   * default its ciphertext is deleted in the same transaction.
   * @param {string} id
   * @param {number} seq
   * @param {Uint8Array} bytes
   */
  async storeReceipt(id, seq, bytes) {
    const entry = this.record(id, seq);
    if (!entry) throw new ReceiptError(`no record ${id}/${seq} in the outbox`);
    await this.checkReceipt(entry, bytes);
    const drop = entry.ciphertextHeld && !this.keepCiphertext;
    const next = { ...entry, receipt: bytes, ciphertextHeld: entry.ciphertextHeld && !drop };
    /** @type {import('./store.js').WriteOp[]} */
    const ops = [{ op: 'put', store: 'records', key: recKey(id, seq), value: next }];
    if (drop) ops.push({ op: 'delete', store: 'ciphertext', key: recKey(id, seq) });
    await this.commit(ops);
    this.records.set(recKey(id, seq), next);
  }

  /** @param {HeadRef & {serverKey: string}} head */
  async storeHeld(head) {
    await this.commit([{ op: 'put', store: 'meta', key: 'log-head', value: head }]);
    this.held = head;
  }

  /**
   * Records a failed log check; an earlier record is kept (the first evidence counts).
   * @param {Record<string, unknown>} evidence
   */
  async recordInconsistency(evidence) {
    if (this.inconsistency) return;
    await this.commit([{ op: 'put', store: 'meta', key: 'log-inconsistent', value: evidence }]);
    this.inconsistency = evidence;
  }

  /**
   * What the outbox holds, for the status line.
   * @returns {{recordings: {id: string, startedAtUs: number, segments: number, receipted: number, ended: boolean, safeUpToUs: number}[], outbox: {count: number, bytes: number}}}
   */
  summary() {
    const recordings = [...this.recordings.values()].sort((a, b) => a.order - b.order).map((r) => {
      const recs = this.recordsOf(r.id);
      let safeUpToUs = 0;
      // Media time receipted contiguously from the header on.
      for (const [i, x] of recs.entries()) {
        if (x.seq !== i || !x.receipt) break;
        if (x.kind === 'segment') safeUpToUs = x.mediaEndUs;
      }
      return {
        id: r.id,
        startedAtUs: r.startedAtUs,
        segments: recs.filter((x) => x.kind === 'segment').length,
        receipted: recs.filter((x) => x.kind === 'segment' && x.receipt).length,
        ended: r.endSeq !== null,
        safeUpToUs,
      };
    });
    const pending = this.pending();
    return { recordings, outbox: { count: pending.length, bytes: pending.reduce((n, r) => n + r.bytes.length + r.ciphertextLen, 0) } };
  }
}
