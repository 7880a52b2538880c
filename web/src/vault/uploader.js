// The page's uploader, as client/src/uploader.rs does it for the CLI: sends every saved
// record (and its sealed segment) to the enrolled server, oldest recording first and each
// in chain order, and stores the receipts; recording never waits for it.
//
// - A receipt is checked (the pinned server key, the very record and ciphertext sent) and
//   its log tree checked against the head held (logcheck.js) before it is stored; only
//   then does the outbox let go of the record.
// - At the start of every run (and after the server comes back) the server's latest head
//   is checked, and receipts of recordings with records still waiting are asked for again
//   (GET /v1/recordings/{id}/receipts), so a record whose answer was lost is not sent again.
// - When a request fails for want of a network, the uploader probes the server cheaply
//   (GET /v1/server) with a bounded backoff (250 ms doubling to 4 s); one success (the
//   probe answered, or a receipt stored) resets every record's backoff. The rules are
//   written once, for this page and the CLI, in docs/api.md ("What the device does while
//   uploading"). `navigator.onLine` is never trusted alone (on a street it can
//   stay true in a dead zone): the 'online' event only makes it probe now.
// - A request is abandoned by its lack of progress (protocol/client.js), not a long timeout;
//   and an upload whose answer is overdue while the link is shown to work is abandoned too
//   (the lag rule, `abandonLagging`): a connection that lost its bytes (a black hole: nothing
//   answers, nothing closes) would otherwise hold its record for the whole answer period
//   after its last byte went into the socket (20 s), which says nothing about the link.
// - A full storage quota while storing a receipt or the log head becomes a clear
//   `lastError` ({code: 'quota'}); nothing sealed is lost (the record stays queued).

import { concat } from '../format/bytes.js';
import { parseReceiptsAnswer } from '../protocol/body.js';
import { NetworkError } from '../protocol/client.js';
import { Refusal } from '../protocol/code.js';
import { isQuotaError } from './store.js';
import { LOG_INCONSISTENT } from './logcheck.js';

/**
 * @typedef {object} UploaderOptions
 * @property {number} concurrency requests in flight at once
 * @property {number} baseBackoffMs first retry delay of a record, doubling per failure
 * @property {number} maxBackoffMs longest retry delay of a record (bounded: a few seconds)
 * @property {number} probeMaxMs longest delay between probes of an unreachable server
 * @property {number} idleMs how often the queue is looked at when nothing wakes the uploader
 * @property {number} probeTimeoutMs deadline of one probe (a dead zone may answer nothing at all)

 * @property {number} lagGraceMs the lag rule's slack over twice the time the link's measured
 *   rate needs for an upload's body (see `abandonLagging`)
 */

/** @type {UploaderOptions} */
export const DEFAULT_OPTIONS = Object.freeze({
  concurrency: 2, baseBackoffMs: 250, maxBackoffMs: 4000, probeMaxMs: 4000, idleMs: 1000, probeTimeoutMs: 3000,
  lagGraceMs: 1500,
});

/** @typedef {{code: string, message: string}} UploadError */

export class Uploader {
  /**
   * @param {object} p
   * @param {import('./outbox.js').Outbox} p.outbox
   * @param {import('../protocol/client.js').Api} p.api signed for the enrolled device
   * @param {import('./logcheck.js').LogCheck} p.logCheck
   * @param {Partial<UploaderOptions>} [p.options]
   * @param {() => void} [p.onChange] called on every change of state
   */
  constructor({ outbox, api, logCheck, options, onChange }) {
    this.outbox = outbox;
    this.api = api;
    this.logCheck = logCheck;
    this.opts = { ...DEFAULT_OPTIONS, ...options };
    this.onChange = onChange ?? (() => {});
    this.running = false;
    /** @type {boolean | null} whether the server answered the last request or probe */
    this.reachable = null;
    /** @type {UploadError | null} */
    this.lastError = null;
    /** @type {Map<string, {attempts: number, at: number}>} */
    this.backoff = new Map();
    /** @type {Map<string, string>} records the server refused for good */
    this.refused = new Map();
    /** @type {Set<string>} */
    this.inFlight = new Set();
    /** @type {Map<string, {startedAt: number, size: number, ctl: AbortController}>} uploads in flight */
    this.flights = new Map();
    /**
     * The link as the latest upload answered measured it: when that upload started, and
     * its body's bytes per ms (answer included, so an underestimate); null when unknown or
     * when the lag rule last abandoned an upload on it (a rate is then measured afresh).
     * @type {{startedAt: number, bytesPerMs: number} | null}
     */
    this.link = null;
    /** @type {Promise<void> | null} the lag rule's probe in flight */
    this.lagProbe = null;
    /** @type {(() => void) | null} */
    this.waker = null;
    this.fresh = true;
    /** @type {Promise<void> | null} */
    this.loop = null;
    this.receipted = 0;
  }

  /** Starts the background loop (idempotent). */
  start() {
    if (this.running) return;
    this.running = true;
    this.fresh = true;
    this.loop = this.run().catch((e) => {
      this.setError('internal', e instanceof Error ? e.message : String(e));
      this.running = false;
    });
  }

  /** Stops after the requests in flight; resolves when the loop has ended. */
  async stop() {
    this.running = false;
    this.nudge();
    await this.loop;
  }

  /** Something changed (a record saved, the 'online' hint): look now, probe now. */
  nudge() {
    const w = this.waker;
    this.waker = null;
    if (w) w();
  }

  /** @param {number} ms */
  sleep(ms) {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waker = null;
        resolve(undefined);
      }, ms);
      this.waker = () => {
        clearTimeout(t);
        resolve(undefined);
      };
    });
  }

  /** @param {string} code @param {string} message */
  setError(code, message) {
    this.lastError = { code, message };
    this.onChange();
  }

  /** @param {boolean} r */
  setReachable(r) {
    if (this.reachable !== r) {
      this.reachable = r;
      if (r) this.backoff.clear(); // one success resets every record's backoff
      this.onChange();
    }
  }

  async run() {
    let probeDelay = this.opts.baseBackoffMs;
    while (this.running) {
      if (this.logCheck.distrusted) {
        this.setError(LOG_INCONSISTENT, this.logCheck.distrusted);
        await this.sleep(60000);
        continue;
      }
      if (this.reachable !== true) {
        if (await this.probe()) {
          probeDelay = this.opts.baseBackoffMs;
          this.fresh = true;
        } else {
          await this.sleep(probeDelay);
          probeDelay = Math.min(probeDelay * 2, this.opts.probeMaxMs);
          continue;
        }
      }
      if (this.fresh) {
        this.fresh = false;
        await this.startOfRun();
        if (this.reachable === false) continue;
      }
      const now = Date.now();
      const due = this.outbox.pending().filter((r) => {
        const k = `${r.id}/${r.seq}`;
        const b = this.backoff.get(k);
        return !this.inFlight.has(k) && !this.refused.has(k) && (!b || b.at <= now);
      });
      this.abandonLagging();
      for (const r of due.slice(0, Math.max(0, this.opts.concurrency - this.inFlight.size))) {
        const k = `${r.id}/${r.seq}`;
        this.inFlight.add(k);
        this.uploadOne(r, k).then((outcome) => this.settle(k, outcome), (e) => this.settle(k, {
          kind: 'retry', code: isQuotaError(e) ? 'quota' : 'internal', message: e instanceof Error ? e.message : String(e),
        })).finally(() => {
          this.inFlight.delete(k);
          this.flights.delete(k);
          this.nudge();
        });
      }
      const waits = [...this.backoff.values()].map((b) => b.at - Date.now()).filter((ms) => ms > 0);
      await this.sleep(Math.max(10, Math.min(this.opts.idleMs, ...waits)));
    }
  }

  /**
   * The lag rule. An upload in flight is abandoned (and retried as after a stall) when the
   * link is shown to work, yet its answer is later than twice the time the link's measured
   * rate needs for its body, plus `lagGraceMs`. The link is shown to work by an upload that
   * started after it and was answered, or else by a probe sent now and answered. A slow
   * link keeps its uploads (its rate is measured on it: a later upload answered proves the
   * bytes moved); after one abandonment the rate is forgotten, so a link that slowed down
   * since it was measured cannot have every upload abandoned in turn.
   */
  abandonLagging() {
    const link = this.link;
    if (!link) return;
    const now = Date.now();
    const late = [...this.flights.values()].filter((f) => now - f.startedAt > (2 * f.size) / link.bytesPerMs + this.opts.lagGraceMs);
    if (late.length === 0) return;
    const abandon = (/** @type {(f: {startedAt: number}) => boolean} */ shown) => {
      const gone = late.filter((f) => shown(f) && !f.ctl.signal.aborted);
      if (gone.length === 0) return;
      this.link = null;
      for (const f of gone) f.ctl.abort();
    };
    if (late.some((f) => f.startedAt < link.startedAt)) {
      abandon((f) => f.startedAt < link.startedAt);
      return;
    }
    if (this.lagProbe) return;
    const sent = Date.now();
    this.lagProbe = this.api.serverInfo({ deadlineMs: this.opts.probeTimeoutMs }).then(
      () => abandon((f) => f.startedAt < sent),
      (e) => { if (e instanceof Refusal) abandon((f) => f.startedAt < sent); },
    ).finally(() => {
      this.lagProbe = null;
    });
  }

  /** The cheap probe: `GET /v1/server`. @returns {Promise<boolean>} */
  async probe() {
    try {
      await this.api.serverInfo({ deadlineMs: this.opts.probeTimeoutMs });
      this.setReachable(true);
      return true;
    } catch (e) {
      if (e instanceof Refusal) {
        // Something answered: the network is there.
        this.setReachable(true);
        return true;
      }
      return false;
    }
  }

  /** The head check and the receipts asked for again, once per run. */
  async startOfRun() {
    try {
      // A retry here (the server unreachable, busy) is left to the uploads to find out.
      const h = await this.logCheck.checkHead();
      if ('inconsistent' in h) return;
    } catch (e) {
      this.setError('server.answer', e instanceof Error ? e.message : String(e));
    }
    const ids = [...new Set(this.outbox.pending().map((r) => r.id))];
    for (const id of ids) {
      let answer;
      try {
        answer = parseReceiptsAnswer(await this.api.receipts(id));
      } catch (e) {
        if (e instanceof NetworkError) {
          this.setReachable(false);
          return;
        }
        if (e instanceof Refusal && e.code?.retry() === 'later') return;
        continue; // not held there (not_found), or refused: upload as usual
      }
      this.setReachable(true);
      for (const { seq, receipt } of answer.receipts) {
        const entry = this.outbox.record(id, seq);
        if (!entry || entry.receipt || !receipt) continue;
        const bytes = concat(receipt.bytes, receipt.signature);
        const stored = await this.accept(entry, bytes);
        if (stored.kind === 'stop') return;
      }
    }
  }

  /**
   * Checks a receipt, its log tree, and stores it.
   * @param {import('./outbox.js').RecordEntry} entry
   * @param {Uint8Array} bytes
   * @returns {Promise<{kind: 'done'} | {kind: 'retry', code: string, message: string} | {kind: 'stop'}>}
   */
  async accept(entry, bytes) {
    let receipt;
    try {
      receipt = await this.outbox.checkReceipt(entry, bytes);
    } catch (e) {
      return { kind: 'retry', code: 'receipt.invalid', message: e instanceof Error ? e.message : String(e) };
    }
    const outcome = await this.logCheck.check({
      treeSize: receipt.value.treeSize, rootHash: receipt.value.treeRoot, source: 'receipt', signed: bytes,
    });
    if ('inconsistent' in outcome) {
      this.setError(LOG_INCONSISTENT, outcome.inconsistent);
      return { kind: 'stop' };
    }
    if ('retry' in outcome) return { kind: 'retry', code: 'log.check', message: outcome.retry };
    try {
      await this.outbox.storeReceipt(entry.id, entry.seq, bytes);
    } catch (e) {
      if (isQuotaError(e)) return { kind: 'retry', code: 'quota', message: 'the phone\'s storage is full: the receipt could not be saved; nothing sealed is lost' };
      return { kind: 'retry', code: 'store', message: e instanceof Error ? e.message : String(e) };
    }
    this.receipted += 1;
    this.onChange();
    return { kind: 'done' };
  }

  /**
   * Uploads one record and, for a segment, its sealed file.
   * @param {import('./outbox.js').RecordEntry} entry
   * @param {string} [k] its key in `flights`, where it is registered for the lag rule
   * @returns {Promise<{kind: 'done'} | {kind: 'retry', code: string, message: string, network?: boolean} | {kind: 'refused', message: string} | {kind: 'stop'}>}
   */
  async uploadOne(entry, k) {
    let body = entry.bytes;
    if (entry.kind === 'segment') {
      const ct = await this.outbox.ciphertext(entry.id, entry.seq);
      if (!ct) {
        // Another tab of the page may have had it receipted (and its ciphertext let go).
        await this.outbox.reread([['records', `${entry.id}/${String(entry.seq).padStart(12, '0')}`]]);
        if (this.outbox.record(entry.id, entry.seq)?.receipt) return { kind: 'done' };
        return { kind: 'refused', message: 'the sealed segment is not in the outbox' };
      }
      body = concat(entry.bytes, ct);
    }
    let answer;
    const flight = { startedAt: Date.now(), size: body.length, ctl: new AbortController() };
    if (k) this.flights.set(k, flight);
    try {
      answer = await this.api.putRecord(entry.id, entry.seq, body, { signal: flight.ctl.signal });
      const ms = Math.max(1, Date.now() - flight.startedAt);
      if (!this.link || flight.startedAt >= this.link.startedAt) this.link = { startedAt: flight.startedAt, bytesPerMs: body.length / ms };
    } catch (e) {
      if (e instanceof NetworkError) return { kind: 'retry', code: 'network', message: e.message, network: true };
      if (e instanceof Refusal) {
        if (e.code?.rejectsRecord()) return { kind: 'refused', message: e.message };
        return { kind: 'retry', code: e.codeText, message: e.message };
      }
      return { kind: 'retry', code: 'internal', message: e instanceof Error ? e.message : String(e) };
    }
    this.setReachable(true);
    return this.accept(entry, answer);
  }

  /**
   * @param {string} k
   * @param {Awaited<ReturnType<Uploader['uploadOne']>>} outcome
   */
  settle(k, outcome) {
    if (outcome.kind === 'done') {
      // One success resets every record's backoff: what waits goes now, oldest first.
      this.backoff.clear();
      if (this.lastError && this.lastError.code !== LOG_INCONSISTENT) {
        this.lastError = null;
        this.onChange();
      }
    } else if (outcome.kind === 'refused') {
      this.refused.set(k, outcome.message);
      this.setError('record.refused', `record ${k} was refused by the server: ${outcome.message}`);
    } else if (outcome.kind === 'retry') {
      if (outcome.network) this.setReachable(false);
      const b = this.backoff.get(k);
      const attempts = (b?.attempts ?? 0) + 1;
      const exp = Math.min(this.opts.baseBackoffMs * 2 ** Math.min(attempts - 1, 16), this.opts.maxBackoffMs);
      // Full jitter over the upper half, so phones knocked off together do not return together.
      this.backoff.set(k, { attempts, at: Date.now() + exp * (0.5 + Math.random() / 2) });
      this.setError(outcome.code, outcome.message);
    }
  }

  /** @returns {{online: boolean | null, lastError: UploadError | null, inconsistent: string | null, running: boolean, refused: number}} */
  status() {
    return {
      online: this.reachable, lastError: this.lastError, inconsistent: this.logCheck.distrusted,
      running: this.running, refused: this.refused.size,
    };
  }
}
