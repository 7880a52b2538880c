// The device façade the capture page (web/src/app/) codes against, as
// /work/briefs/phone-interfaces.md fixes it: enrollment, recordings sealed and saved
// segment by segment, the background uploader and one status object. Everything below it
// is format/ (the records, signatures and proofs), protocol/ (the HTTP API) and vault/
// (storage, sealing, outbox, uploader, log check).
//
// What the phone keeps (IndexedDB "custody"): its Ed25519 key as a non-extractable
// CryptoKey, the enrollment (server key, certificate, signed case recipients), every signed
// record with its receipt, the log head it holds, and sealed segments until their receipt
// is stored. DEFAULT: a segment's ciphertext is deleted once its receipt is stored, so a
// seized phone holds nothing playable and little space is used; records, receipts and the
// log head stay. No plaintext is written anywhere.

import { equal, toHex } from './format/bytes.js';
import { ChainBuilder } from './format/chain.js';
import { generateKeyPair, publicKeyBytes } from './format/ed25519.js';
import { fingerprint, fingerprintBits, keyToText, randomRecordingId } from './format/ids.js';
import { signedRecordBytes } from './format/record.js';
import { signedBytes } from './format/signed.js';
import { BodyError, checkEnrollAnswer, checkedRecipients, enrollRequest, parseServerInfo } from './protocol/body.js';
import { Api } from './protocol/client.js';
import { EnrollLink } from './protocol/link.js';
import { IndexedDbStore } from './vault/idb.js';
import { DeviceError, asDeviceError } from './vault/errors.js';
import { LogCheck } from './vault/logcheck.js';
import { Outbox } from './vault/outbox.js';
import { Clock, Recording } from './vault/recording.js';
import { Uploader } from './vault/uploader.js';

/** µs since the epoch now, as a Number. */
const wallNowUs = () => Date.now() * 1000;

/**
 * @typedef {object} DeviceOptions
 * @property {import('./vault/store.js').Store} [store] default: IndexedDB "custody"
 * @property {typeof fetch} [fetch] for node tests
 * @property {boolean} [useXhr]
 * @property {Partial<import('./protocol/client.js').Limits>} [limits]
 * @property {Partial<import('./vault/uploader.js').UploaderOptions>} [uploader]
 * @property {boolean} [keepCiphertext] keep sealed segments after their receipt (default false)
 */

export class Device extends EventTarget {
  /**
   * @param {Outbox} outbox
   * @param {DeviceOptions} options
   */
  constructor(outbox, options) {
    super();
    this.outbox = outbox;
    this.options = options;
    /** @type {Uploader | null} */
    this.uploader = null;
    /** @type {{code: string, message: string} | null} */
    this.lastError = null;
    this.quota = { usage: 0, quota: 0, persisted: false };
    this.wantUpload = false;
    /** Another tab of the page holds the uploader's lock. */
    this.uploadingElsewhere = false;
    /** @type {((v: unknown) => void) | null} */
    this.releaseLock = null;
    this.onlineHint = () => this.uploader?.nudge();
  }

  /**
   * Opens the device's storage (IndexedDB "custody", or `options.store`).
   * @param {DeviceOptions} [options]
   * @returns {Promise<Device>}
   */
  static async open(options = {}) {
    const store = options.store ?? (await IndexedDbStore.open());
    // The page's tabs share the IndexedDB outbox and tell each other what they changed.
    const channel = !options.store && typeof BroadcastChannel !== 'undefined' ? 'custody-outbox' : undefined;
    const d = new Device(await Outbox.open(store, { keepCiphertext: options.keepCiphertext, channel }), options);
    d.outbox.onRemoteChange = (keys) => {
      if (keys.some(([s, k]) => s === 'meta' && k === 'enrollment')) d.wire();
      d.uploader?.nudge();
      d.changed();
    };
    d.wire();
    void d.refreshQuota();
    return d;
  }

  changed() {
    this.dispatchEvent(new Event('change'));
  }

  /** Makes the API client and the uploader for the enrollment held, if any. */
  wire() {
    const e = this.outbox.enrollment;
    if (!e) return;
    const api = new Api({ base: e.origin, fetch: this.options.fetch, useXhr: this.options.useXhr, limits: this.options.limits });
    api.signer = { privateKey: e.privateKey, deviceKey: e.deviceKey, serverKey: e.serverKey };
    const running = this.uploader?.running;
    void this.uploader?.stop();
    this.uploader = new Uploader({
      outbox: this.outbox, api, logCheck: new LogCheck(this.outbox, api, e.serverKey), options: this.options.uploader,
      onChange: () => {
        void this.refreshQuota();
        this.changed();
      },
    });
    if (running || (this.wantUpload && !this.uploadingElsewhere)) this.uploader.start();
  }

  /** @returns {{origin: string, serverKey: string, serverFingerprint: string, deviceKey: string, certificate: string, recipients: string[], label: string, enrolledAtUs: number} | null} */
  get enrollment() {
    const e = this.outbox.enrollment;
    if (!e) return null;
    return {
      origin: e.origin, serverKey: keyToText(e.serverKey), serverFingerprint: e.serverFingerprint,
      deviceKey: keyToText(e.deviceKey), certificate: toHex(e.certificate), recipients: [...e.recipients],
      label: e.label, enrolledAtUs: e.enrolledAtUs,
    };
  }

  /**
   * Enrolls with a link `https://host/enroll#token=<64hex>&fp=<fingerprint>`: checks the
   * server key's fingerprint before sending the token (GET /v1/server) and again in the
   * answer, that the certificate is the server's for this device, and that the case
   * recipients are signed by that key. The device key is made once per phone, as a
   * non-extractable WebCrypto key, and kept in IndexedDB.
   * @param {string} link
   * @param {{onStep?: (step: string) => void}} [options]
   */
  async enroll(link, { onStep } = {}) {
    const step = onStep ?? (() => {});
    let parsed;
    try {
      step('link');
      parsed = EnrollLink.parse(link);
    } catch (e) {
      throw new DeviceError('link.invalid', e instanceof Error ? e.message : String(e));
    }
    if (typeof location !== 'undefined' && location.origin && new URL(parsed.server).origin !== location.origin) {
      throw new DeviceError('link.other-origin', `this page enrolls only with its own server (${location.origin}), not ${parsed.server}`);
    }
    const api = new Api({ base: parsed.server, fetch: this.options.fetch, useXhr: this.options.useXhr, limits: this.options.limits });
    try {
      step('server');
      const info = parseServerInfo(await api.serverInfo());
      await this.checkFingerprint(parsed, info.serverKey);
      step('key');
      const keys = await this.deviceKey();
      step('enroll');
      const answer = await api.enroll(await enrollRequest(keys.privateKey, keys.publicKey, parsed.token));
      step('check');
      let checked;
      try {
        checked = await checkEnrollAnswer(answer, keys.publicKey);
      } catch (e) {
        if (e instanceof BodyError && e.field === 'case_recipients') throw new DeviceError('recipients.forged', e.message);
        if (e instanceof BodyError) throw new DeviceError('cert.invalid', e.message);
        throw e;
      }
      await this.checkFingerprint(parsed, checked.serverKey);
      step('save');
      await this.outbox.saveEnrollment({
        origin: parsed.server, serverKey: checked.serverKey, serverFingerprint: await fingerprint(checked.serverKey),
        deviceKey: keys.publicKey, privateKey: keys.privateKey, certificate: signedBytes(checked.certificate),
        caseRecipients: signedBytes(checked.caseRecipients), recipients: [...checked.caseRecipients.value.recipients],
        tlsSha256: checked.tlsSha256, label: checked.label, enrolledAtUs: wallNowUs(),
      });
    } catch (e) {
      throw asDeviceError(e);
    }
    this.wire();
    this.changed();
    return this.enrollment;
  }

  /**
   * @param {EnrollLink} link
   * @param {Uint8Array} serverKey
   */
  async checkFingerprint(link, serverKey) {
    if (!equal(await fingerprintBits(serverKey), link.fingerprint)) {
      throw new DeviceError('server.fingerprint.mismatch',
        `the server's key has the fingerprint ${await fingerprint(serverKey)}, not ${link.fingerprintText} as the link says: refused`);
    }
  }

  /**
   * Asks the server for its case recipients again (GET /v1/recipients) and adopts them if
   * they are signed by the pinned server key (else 'recipients.forged', nothing changed).
   * An empty list keeps the recipients held. Later recordings seal to the new list.
   * @returns {Promise<string[]>} the recipients now held
   */
  async refreshRecipients() {
    const e = this.outbox.enrollment;
    if (!e) throw new DeviceError('not.enrolled', 'this phone is not enrolled with a legal team\'s server yet');
    const api = new Api({ base: e.origin, fetch: this.options.fetch, useXhr: false, limits: this.options.limits });
    let signed;
    try {
      const answer = /** @type {{case_recipients?: unknown}} */ (await api.recipients());
      signed = await checkedRecipients(answer?.case_recipients, e.serverKey);
    } catch (err) {
      if (err instanceof BodyError) throw new DeviceError('recipients.forged', err.message);
      throw asDeviceError(err);
    }
    if (signed.value.recipients.length) {
      await this.outbox.saveEnrollment({ ...e, recipients: [...signed.value.recipients], caseRecipients: signedBytes(signed) });
      this.changed();
    }
    return [...(this.outbox.enrollment?.recipients ?? [])];
  }

  /** The phone's key pair, made on first use. @returns {Promise<{privateKey: CryptoKey, publicKey: Uint8Array}>} */
  async deviceKey() {
    const held = /** @type {{privateKey: CryptoKey, publicKey: Uint8Array} | undefined} */ (await this.outbox.store.get('meta', 'device-key'));
    if (held) return held;
    const pair = await generateKeyPair();
    const k = { privateKey: pair.privateKey, publicKey: await publicKeyBytes(pair.publicKey) };
    await this.outbox.store.write([{ op: 'put', store: 'meta', key: 'device-key', value: k }]);
    return k;
  }

  /**
   * Starts a recording: the header is signed and durably saved before this resolves.
   * @param {object} p
   * @param {number} p.container 3 webm, 4 self-contained-mp4, 5 photo
   * @param {import('./format/record.js').StreamInfo[]} p.streams
   * @param {string} p.input
   * @param {string} p.software
   * @param {number} p.targetSegmentMs
   * @param {number} p.maxSegmentMs
   * @param {'live' | 'imported'} [p.origin]
   * @returns {Promise<Recording>}
   */
  async beginRecording({ container, streams, input, software, targetSegmentMs, maxSegmentMs, origin = 'live' }) {
    const e = this.outbox.enrollment;
    if (!e) throw new DeviceError('not.enrolled', 'this phone is not enrolled with a legal team\'s server yet');
    if (!e.recipients.length) throw new DeviceError('recipients.none', 'the server names no recipient to seal to');
    const clock = new Clock();
    const header = {
      type: /** @type {'header'} */ ('header'), recordingId: randomRecordingId(), deviceKey: e.deviceKey, startedAtUs: clock.nowUs(),
      origin: origin === 'imported' ? 2 : 1, input, importedFile: null, container, targetSegmentMs, maxSegmentMs,
      streams: streams.map((s) => ({ ...s })), recipients: [...e.recipients], software,
    };
    try {
      const { builder, signed } = await ChainBuilder.start(header, e.privateKey);
      const id = toHex(header.recordingId);
      await this.outbox.addHeader(id, signedRecordBytes(signed), Number(header.startedAtUs));
      this.saved();
      return new Recording(this, id, builder, header, clock);
    } catch (err) {
      throw this.fail(err);
    }
  }

  /** A record was saved: clear a storage error, wake the uploader, tell the page. */
  saved() {
    if (this.lastError?.code === 'quota' || this.lastError?.code === 'store') this.lastError = null;
    this.uploader?.nudge();
    void this.refreshQuota();
    this.changed();
  }

  /** @param {unknown} err @returns {DeviceError} */
  fail(err) {
    const d = asDeviceError(err);
    this.lastError = { code: d.code, message: d.message };
    this.changed();
    return d;
  }

  async refreshQuota() {
    try {
      if (typeof navigator === 'undefined' || !navigator.storage?.estimate) return;
      const est = await navigator.storage.estimate();
      const persisted = navigator.storage.persisted ? await navigator.storage.persisted() : false;
      this.quota = { usage: est.usage ?? 0, quota: est.quota ?? 0, persisted };
    } catch {
      // Not available (some private modes): keep the last figures.
    }
  }

  /**
   * Asks the browser to keep this origin's storage under pressure; it may refuse.
   * @returns {Promise<boolean>}
   */
  async requestPersistence() {
    const ok = typeof navigator !== 'undefined' && navigator.storage?.persist ? await navigator.storage.persist() : false;
    await this.refreshQuota();
    this.changed();
    return ok;
  }

  status() {
    const s = this.outbox.summary();
    const u = this.uploader?.status();
    return {
      recordings: s.recordings,
      outbox: s.outbox,
      online: u?.online === true,
      lastError: this.lastError ?? u?.lastError ?? null,
      inconsistent: u?.inconsistent ?? (this.outbox.inconsistency ? String(this.outbox.inconsistency.message) : null),
      uploadingElsewhere: this.uploadingElsewhere,
      quota: { ...this.quota },
    };
  }

  /**
   * Starts the background upload loop (oldest first; `online` events only make it look
   * now). With several tabs of the page open, one uploads at a time (a Web Lock); the
   * others say so in `status().uploadingElsewhere` and take over when it closes.
   */
  startUploading() {
    if (this.wantUpload) return;
    this.wantUpload = true;
    if (typeof addEventListener === 'function') addEventListener('online', this.onlineHint);
    const locks = typeof navigator !== 'undefined' ? navigator.locks : undefined;
    if (locks && !this.options.store) {
      this.uploadingElsewhere = true;
      void locks.request('custody-uploader', () => new Promise((release) => {
        this.uploadingElsewhere = false;
        this.releaseLock = release;
        if (this.wantUpload) this.uploader?.start();
        else release(undefined);
        this.changed();
      }));
    } else {
      this.uploader?.start();
    }
    this.changed();
  }

  async stopUploading() {
    this.wantUpload = false;
    if (typeof removeEventListener === 'function') removeEventListener('online', this.onlineHint);
    await this.uploader?.stop();
    this.releaseLock?.(undefined);
    this.releaseLock = null;
    this.uploadingElsewhere = false;
    this.changed();
  }
}

export { DeviceError, Recording };
