// The device's watch on the server's custody log, exactly as docs/api.md "What the device
// does" says (and client/src/log_check.rs does): the outbox holds the largest tree it has
// seen (size, root, and the signed receipt or tree head that named it). For each new
// receipt, before storing it, and once at the start of every upload run for the server's
// latest head: equal sizes must have equal roots; otherwise the consistency proof between
// the smaller and the larger tree is fetched and verified (RFC 9162 section 2.1.4.2), and
// the larger is held. A proof that does not verify, two roots for one size, or a
// `log.range` refusal for a size the server itself signed (or the device holds) is
// `log.inconsistent`: the evidence is stored, the receipt is not, and nothing more is sent
// to that server (every record stays in the outbox; nothing is deleted). A network failure
// while fetching a proof is not an inconsistency: the record is sent again later.

import { equal, toHex } from '../format/bytes.js';
import { keyToText } from '../format/ids.js';
import { verifyConsistency } from '../format/merkle.js';
import { signedBytes } from '../format/signed.js';
import { checkedLogHead, parseConsistency } from '../protocol/body.js';
import { NetworkError } from '../protocol/client.js';
import { Refusal } from '../protocol/code.js';

export const LOG_INCONSISTENT = 'log.inconsistent';

/**
 * @typedef {{ok: true} | {retry: string} | {inconsistent: string}} CheckOutcome
 */

export class LogCheck {
  /**
   * @param {import('./outbox.js').Outbox} outbox
   * @param {import('../protocol/client.js').Api} api
   * @param {Uint8Array} serverKey
   */
  constructor(outbox, api, serverKey) {
    this.outbox = outbox;
    this.api = api;
    this.serverKey = serverKey;
    /** @type {Promise<unknown>} checks run one at a time, so heads advance in order */
    this.queue = Promise.resolve();
    /** @type {string | null} a failure found in this session, even if it could not be stored */
    this.failed = null;
  }

  /** @returns {string | null} why the server is no longer trusted */
  get distrusted() {
    if (this.failed) return this.failed;
    const i = this.outbox.inconsistency;
    return i && i.serverKey === keyToText(this.serverKey) ? String(i.message) : null;
  }

  /**
   * Checks the tree `offered` against the held head; holds it if larger.
   * @param {import('./outbox.js').HeadRef} offered
   * @returns {Promise<CheckOutcome>}
   */
  check(offered) {
    const run = this.queue.then(() => this.checkNow(offered));
    this.queue = run.catch(() => {});
    return run;
  }

  /**
   * @param {import('./outbox.js').HeadRef} offered
   * @returns {Promise<CheckOutcome>}
   */
  async checkNow(offered) {
    if (this.distrusted) return { inconsistent: this.distrusted };
    const server = keyToText(this.serverKey);
    const held = this.outbox.held && this.outbox.held.serverKey === server ? this.outbox.held : null;
    if (held) {
      if (held.treeSize === offered.treeSize) {
        if (!equal(held.rootHash, offered.rootHash)) {
          return this.fail(`two different roots for the log of ${held.treeSize} entries`, held, offered, []);
        }
      } else {
        const [older, newer] = held.treeSize < offered.treeSize ? [held, offered] : [offered, held];
        let proof;
        try {
          const p = parseConsistency(await this.api.consistency(older.treeSize, newer.treeSize));
          if (BigInt(p.from) !== older.treeSize || BigInt(p.to) !== newer.treeSize) {
            return { retry: `asked for the proof from ${older.treeSize} to ${newer.treeSize}, the server answered from ${p.from} to ${p.to}` };
          }
          proof = p.proof;
        } catch (e) {
          if (e instanceof Refusal && e.codeText === 'log.range') {
            return this.fail(`the server has no consistency proof from ${older.treeSize} to ${newer.treeSize} entries: ${e.message}`, held, offered, []);
          }
          return { retry: e instanceof Error ? e.message : String(e) };
        }
        try {
          await verifyConsistency(older.treeSize, newer.treeSize, older.rootHash, newer.rootHash, proof);
        } catch (e) {
          return this.fail(`the log of ${newer.treeSize} entries (root ${toHex(newer.rootHash)}) does not extend the log of `
            + `${older.treeSize} entries (root ${toHex(older.rootHash)}): ${e instanceof Error ? e.message : e}`, held, offered, proof);
        }
      }
    }
    if (!held || held.treeSize < offered.treeSize) {
      try {
        await this.outbox.storeHeld({ ...offered, serverKey: server });
      } catch (e) {
        return { retry: `storing the log head: ${e instanceof Error ? e.message : e}` };
      }
    }
    return { ok: true };
  }

  /**
   * @param {string} message
   * @param {import('./outbox.js').HeadRef} held
   * @param {import('./outbox.js').HeadRef} offered
   * @param {Uint8Array[]} proof
   * @returns {Promise<CheckOutcome>}
   */
  async fail(message, held, offered, proof) {
    this.failed = message;
    const ref = (/** @type {import('./outbox.js').HeadRef} */ h) => ({
      treeSize: h.treeSize.toString(), rootHash: toHex(h.rootHash), source: h.source, signed: toHex(h.signed),
    });
    try {
      await this.outbox.recordInconsistency({
        code: LOG_INCONSISTENT, message, serverKey: keyToText(this.serverKey), held: ref(held), offered: ref(offered),
        proof: proof.map(toHex), detectedAtUs: Date.now() * 1000,
      });
    } catch {
      // Even unrecorded, the check failed: the uploader stops for this run.
    }
    return { inconsistent: message };
  }

  /**
   * Fetches the server's latest signed head and checks it (at the start of every upload
   * run). An unreachable server is not an error here: the uploads will retry.
   * @returns {Promise<CheckOutcome>}
   */
  async checkHead() {
    let head;
    try {
      head = await checkedLogHead(await this.api.logHead(), this.serverKey);
    } catch (e) {
      if (e instanceof NetworkError || e instanceof Refusal) return { retry: e.message };
      throw e;
    }
    return this.check({ treeSize: head.value.treeSize, rootHash: head.value.rootHash, source: 'tree-head', signed: signedBytes(head) });
  }
}
