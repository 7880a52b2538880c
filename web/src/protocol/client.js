// A small client of the custody server's HTTP API (docs/api.md) for the page, over `fetch`
// (and XMLHttpRequest for uploads in a browser, for its upload progress events). The page is
// served by the server itself, so every request goes to its own origin (the CSP's
// `connect-src 'self'` allows nothing else).
//
// Stalls are found by progress, not by a long timeout: an upload through XMLHttpRequest is
// abandoned when no upload progress event came for `stallMs`, or no answer came within
// `answerMs` of the last byte; without XMLHttpRequest (node), a deadline scaled to the body
// size (`baseMs` + size / `minBytesPerSecond`) bounds it.

import { randomBytes } from '../format/bytes.js';
import { Refusal } from './code.js';
import { signRequest } from './request.js';

/** The server could not be reached, the connection broke, or the request stalled. */
export class NetworkError extends Error {
  /**
   * @param {string} message
   * @param {{stalled?: boolean}} [options]
   */
  constructor(message, options = {}) {
    super(message);
    this.name = 'NetworkError';
    this.stalled = options.stalled ?? false;
  }
}

/**
 * @typedef {object} Limits
 * @property {number} baseMs        deadline of a request with an empty body
 * @property {number} minBytesPerSecond  the slowest upload still taken for progress
 * @property {number} stallMs       XMLHttpRequest: longest wait for the next upload progress event
 * @property {number} answerMs      XMLHttpRequest: longest wait for the answer after the last byte
 */

/** @type {Limits} */
export const DEFAULT_LIMITS = Object.freeze({ baseMs: 10000, minBytesPerSecond: 32 * 1024, stallMs: 8000, answerMs: 20000 });

/**
 * @typedef {object} Signer
 * @property {CryptoKey} privateKey
 * @property {Uint8Array} deviceKey
 * @property {Uint8Array} serverKey
 */

/** The API client of one server. */
export class Api {
  /**
   * @param {object} options
   * @param {string} options.base the server's base URL (the page's origin, maybe with a path prefix)
   * @param {typeof fetch} [options.fetch]
   * @param {boolean} [options.useXhr] upload with XMLHttpRequest (default: when it exists)
   * @param {Partial<Limits>} [options.limits]
   * @param {() => bigint} [options.now] the device clock, µs since the epoch
   */
  constructor({ base, fetch: fetchImpl, useXhr, limits, now }) {
    this.base = base.replace(/\/+$/, '');
    this.fetch = fetchImpl ?? globalThis.fetch.bind(globalThis);
    this.useXhr = useXhr ?? typeof XMLHttpRequest !== 'undefined';
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    this.now = now ?? (() => BigInt(Date.now()) * 1000n);
    /** @type {Signer | null} */
    this.signer = null;
  }

  /**
   * Sends one request; resolves with the answer's status and bytes for a 2xx answer,
   * rejects with a Refusal for any other status, with a NetworkError if none came.
   * @param {string} method
   * @param {string} path the API path (`/v1/...`), which is what a device signs
   * @param {object} [options]
   * @param {Uint8Array} [options.body]
   * @param {Record<string, string>} [options.headers]
   * @param {boolean} [options.signed]
   * @param {number} [options.deadlineMs] a fixed deadline instead of the size-scaled one
   * @param {AbortSignal} [options.signal] abandons the request (a NetworkError, stalled)
   * @returns {Promise<Uint8Array>}
   */
  async request(method, path, { body, headers = {}, signed = false, deadlineMs, signal } = {}) {
    const bytes = body ?? new Uint8Array(0);
    const h = { ...headers };
    if (signed) {
      if (!this.signer) throw new Error('a signed request needs the device key');
      const pairs = await signRequest({ ...this.signer, method, path, timestampUs: this.now(), nonce: randomBytes(16), body: bytes });
      for (const [k, v] of pairs) h[k] = v;
    }
    if (method === 'PUT' || method === 'POST') h['content-type'] ??= 'application/octet-stream';
    const url = this.base + path;
    const { status, answer } = this.useXhr && bytes.length
      ? await this.xhr(method, url, h, bytes, signal)
      : await this.viaFetch(method, url, h, bytes, deadlineMs, signal);
    if (status < 200 || status > 299) throw Refusal.fromBody(status, new TextDecoder().decode(answer));
    return answer;
  }

  /**
   * @param {string} method
   * @param {string} url
   * @param {Record<string, string>} headers
   * @param {Uint8Array} body
   * @param {number} [deadlineMs]
   * @param {AbortSignal} [signal]
   * @returns {Promise<{status: number, answer: Uint8Array}>}
   */
  async viaFetch(method, url, headers, body, deadlineMs, signal) {
    const ms = deadlineMs ?? this.limits.baseMs + (body.length * 1000) / this.limits.minBytesPerSecond;
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), ms);
    let abandoned = false;
    const abandon = () => {
      abandoned = true;
      ctl.abort();
    };
    if (signal?.aborted) abandon();
    signal?.addEventListener('abort', abandon);
    try {
      const resp = await this.fetch(url, {
        method, headers, body: method === 'GET' ? undefined : /** @type {BodyInit} */ (/** @type {unknown} */ (body)),
        signal: ctl.signal, cache: 'no-store', credentials: 'omit', redirect: 'error',
      });
      const answer = new Uint8Array(await resp.arrayBuffer());
      return { status: resp.status, answer };
    } catch (e) {
      if (abandoned) throw new NetworkError('abandoned: no answer although the link moved enough bytes for it', { stalled: true });
      if (ctl.signal.aborted) throw new NetworkError(`no answer within ${Math.round(ms)} ms`, { stalled: true });
      throw new NetworkError(e instanceof Error ? `${e.message}${e.cause ? `: ${/** @type {Error} */ (e.cause).message ?? e.cause}` : ''}` : String(e));
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', abandon);
    }
  }

  /**
   * An upload through XMLHttpRequest, abandoned when its progress stalls.
   * @param {string} method
   * @param {string} url
   * @param {Record<string, string>} headers
   * @param {Uint8Array} body
   * @param {AbortSignal} [signal]
   * @returns {Promise<{status: number, answer: Uint8Array}>}
   */
  xhr(method, url, headers, body, signal) {
    const { stallMs, answerMs } = this.limits;
    return new Promise((resolve, reject) => {
      const x = new XMLHttpRequest();
      /** @type {ReturnType<typeof setTimeout> | undefined} */
      let timer;
      const abandon = () => {
        clearTimeout(timer);
        x.abort();
        reject(new NetworkError('abandoned: no answer although the link moved enough bytes for it', { stalled: true }));
      };
      signal?.addEventListener('abort', abandon, { once: true });
      const done = () => signal?.removeEventListener('abort', abandon);
      const arm = (/** @type {number} */ ms, /** @type {string} */ why) => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          done();
          x.abort();
          reject(new NetworkError(why, { stalled: true }));
        }, ms);
      };
      x.open(method, url);
      x.responseType = 'arraybuffer';
      for (const [k, v] of Object.entries(headers)) x.setRequestHeader(k, v);
      x.upload.onprogress = () => arm(stallMs, `the upload made no progress for ${stallMs} ms`);
      x.upload.onload = () => arm(answerMs, `no answer within ${answerMs} ms of the last byte`);
      x.onload = () => {
        clearTimeout(timer);
        done();
        resolve({ status: x.status, answer: new Uint8Array(/** @type {ArrayBuffer} */ (x.response ?? new ArrayBuffer(0))) });
      };
      x.onerror = () => {
        clearTimeout(timer);
        done();
        reject(new NetworkError('the connection failed'));
      };
      arm(stallMs, `the upload did not start within ${stallMs} ms`);
      x.send(/** @type {XMLHttpRequestBodyInit} */ (/** @type {unknown} */ (body)));
    });
  }

  /**
   * A JSON answer.
   * @param {string} method
   * @param {string} path
   * @param {{body?: Uint8Array, headers?: Record<string, string>, signed?: boolean, deadlineMs?: number}} [options]
   * @returns {Promise<unknown>}
   */
  async json(method, path, options) {
    const answer = await this.request(method, path, options);
    try {
      return JSON.parse(new TextDecoder().decode(answer));
    } catch {
      throw new NetworkError(`${path}: the answer is not JSON`);
    }
  }

  /**
   * `GET /v1/server` (unauthenticated; also the uploader's cheap probe, with a short deadline).
   * @param {{deadlineMs?: number}} [options]
   */
  serverInfo(options = {}) {
    return this.json('GET', '/v1/server', options);
  }

  /** @param {object} body the enrollment request */
  enroll(body) {
    return this.json('POST', '/v1/enroll', {
      body: new TextEncoder().encode(JSON.stringify(body)), headers: { 'content-type': 'application/json' },
    });
  }

  /** `GET /v1/recipients`: the signed case recipients. */
  recipients() {
    return this.json('GET', '/v1/recipients');
  }

  /**
   * `PUT /v1/recordings/{id}/records/{seq}` of `signed record || sealed segment`: the
   * receipt's bytes.
   * @param {string} idHex
   * @param {bigint | number} seq
   * @param {Uint8Array} body
   * @param {{signal?: AbortSignal}} [options] `signal` abandons it (the uploader's lag rule)
   */
  putRecord(idHex, seq, body, { signal } = {}) {
    return this.request('PUT', `/v1/recordings/${idHex}/records/${seq}`, { body, signed: true, signal });
  }

  /** @param {string} idHex */
  receipts(idHex) {
    return this.json('GET', `/v1/recordings/${idHex}/receipts`, { signed: true });
  }

  logHead() {
    return this.json('GET', '/v1/log/head', { signed: true });
  }

  /** @param {bigint | number} from @param {bigint | number} to */
  consistency(from, to) {
    return this.json('GET', `/v1/log/consistency?from=${from}&to=${to}`, { signed: true });
  }
}
