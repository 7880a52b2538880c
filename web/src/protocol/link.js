// Enrollment links (docs/api.md, "Enrollment links"), mirroring protocol/src/link.rs:
//
//   https://custody.example:8443/enroll#token=<64 hex>&fp=<server key fingerprint>
//
// The server URL is everything before /enroll; the one-time token and the fingerprint of
// the server key the device must find travel in the fragment, which a browser never sends
// to a server (RFC 3986 section 3.5).

import { fromHexExact, toHex } from '../format/bytes.js';
import { fingerprintText, parseFingerprint } from '../format/ids.js';

export const LINK_PATH = '/enroll';

/** Why a text is not an enrollment link; `code` is the vectors' name. */
export class LinkError extends Error {
  /**
   * @param {'scheme' | 'path' | 'fragment' | 'token' | 'fingerprint'} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = 'LinkError';
    this.code = code;
  }
}

const fragmentError = (/** @type {string} */ why) =>
  new LinkError('fragment', `an enrollment link ends in #token=<64 hex digits>&fp=<fingerprint>: ${why}`);

/** A parsed enrollment link. */
export class EnrollLink {
  /**
   * @param {string} server base URL, no trailing slash
   * @param {Uint8Array} token 32 bytes
   * @param {Uint8Array} fingerprint 13 bytes (100 bits)
   */
  constructor(server, token, fingerprint) {
    this.server = server;
    this.token = token;
    this.fingerprint = fingerprint;
  }

  /**
   * Parses a link as typed or pasted (surrounding space ignored; hex and fingerprint in
   * either case). Refused before anything is sent: another path, a query, a missing,
   * repeated or unknown parameter, a bad token or fingerprint.
   * @param {string} text
   * @returns {EnrollLink}
   */
  static parse(text) {
    const t = String(text).trim();
    const hash = t.indexOf('#');
    if (hash < 0) throw fragmentError('no fragment');
    const address = t.slice(0, hash);
    const fragment = t.slice(hash + 1);
    const scheme = ['https://', 'http://'].find((p) => address.startsWith(p));
    if (!scheme) throw new LinkError('scheme', 'an enrollment link starts with https:// and the server\'s address');
    const after = address.slice(scheme.length);
    if (after === '' || after.startsWith('/')) throw new LinkError('scheme', 'an enrollment link starts with https:// and the server\'s address');
    const pathError = () => new LinkError('path', 'an enrollment link\'s address ends in /enroll, followed by #token=…&fp=…');
    if (address.includes('?') || /\s/u.test(address)) throw pathError();
    if (!address.endsWith(LINK_PATH)) throw pathError();
    const server = address.slice(0, -LINK_PATH.length);
    if (server.length <= scheme.length || server.endsWith('/')) throw pathError();
    /** @type {string | null} */
    let token = null;
    /** @type {string | null} */
    let fp = null;
    for (const pair of fragment.split('&')) {
      const eq = pair.indexOf('=');
      if (eq < 0) throw fragmentError('a parameter without =');
      const k = pair.slice(0, eq);
      const v = pair.slice(eq + 1);
      if (k === 'token') {
        if (token !== null) throw fragmentError('a parameter given twice');
        token = v;
      } else if (k === 'fp') {
        if (fp !== null) throw fragmentError('a parameter given twice');
        fp = v;
      } else {
        throw fragmentError('an unknown parameter');
      }
    }
    if (token === null) throw fragmentError('no token');
    if (fp === null) throw fragmentError('no fp');
    const tokenBytes = fromHexExact(token, 32);
    if (!tokenBytes) throw new LinkError('token', 'the link\'s token must be 64 hex digits');
    let fingerprint;
    try {
      fingerprint = parseFingerprint(fp);
    } catch {
      throw new LinkError('fingerprint', 'the link\'s fp is not a key fingerprint (four groups of five characters)');
    }
    return new EnrollLink(server, tokenBytes, fingerprint);
  }

  /** @returns {string} the fingerprint as people read it */
  get fingerprintText() {
    return fingerprintText(this.fingerprint);
  }

  toString() {
    return `${this.server}${LINK_PATH}#token=${toHex(this.token)}&fp=${this.fingerprintText}`;
  }
}
