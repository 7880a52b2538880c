// Refusal codes (docs/api.md, "Errors"), mirroring protocol/src/code.rs: every refusal
// carries one stable code; clients decide with `retry()` and `rejectsRecord()`, never by
// matching the message text.

/** @typedef {'never' | 'later' | 'after-change'} Retry */

/** @type {[string, number, Retry][]} code, HTTP status, retry class — in docs/api.md order */
const ROWS = [
  ['auth.missing', 401, 'never'],
  ['auth.malformed', 401, 'never'],
  ['auth.unknown_device', 401, 'after-change'],
  ['auth.revoked', 403, 'never'],
  ['auth.signature', 401, 'never'],
  ['auth.stale', 401, 'after-change'],
  ['auth.replayed', 401, 'after-change'],
  ['enroll.malformed', 400, 'never'],
  ['enroll.token_unknown', 403, 'never'],
  ['enroll.token_used', 403, 'after-change'],
  ['enroll.token_expired', 403, 'after-change'],
  ['enroll.proof', 400, 'after-change'],
  ['record.malformed', 400, 'never'],
  ['record.position', 400, 'never'],
  ['record.signature', 422, 'never'],
  ['record.device', 422, 'never'],
  ['recording.owner', 403, 'never'],
  ['chain.link', 422, 'never'],
  ['chain.after_end', 422, 'never'],
  ['segment.length', 422, 'never'],
  ['segment.hash', 422, 'never'],
  ['equivocation', 409, 'never'],
  ['body.too_large', 413, 'never'],
  ['body.timeout', 408, 'later'],
  ['body.read', 400, 'later'],
  ['device.busy', 429, 'later'],
  ['timeout', 503, 'later'],
  ['not_found', 404, 'never'],
  ['log.range', 400, 'never'],
  ['internal', 500, 'later'],
  ['auth.token', 401, 'never'],
  ['auth.rate_limited', 429, 'after-change'],
  ['auth.device_key', 403, 'never'],
  ['auth.role', 403, 'never'],
  ['range.invalid', 416, 'never'],
  ['bundle.access', 404, 'after-change'],
  ['revoke.malformed', 400, 'never'],
  ['device.unknown', 404, 'never'],
  ['body.length', 411, 'never'],
  ['server.busy', 503, 'later'],
  ['storage.full', 507, 'later'],
  ['log.damaged', 503, 'later'],
];

/** Refusals about the record sent itself: this server can never accept that record. */
const REJECTS_RECORD = new Set([
  'record.malformed', 'record.position', 'record.signature', 'record.device', 'recording.owner',
  'chain.link', 'chain.after_end', 'segment.length', 'segment.hash', 'equivocation',
]);

/** A refusal code of this protocol version. */
export class Code {
  /**
   * @param {string} code
   * @param {number} status
   * @param {Retry} retry
   */
  constructor(code, status, retry) {
    this.code = code;
    this.status = status;
    /** @private */
    this.retryClass = retry;
    Object.freeze(this);
  }

  /** @returns {Retry} whether the same request can succeed if sent again */
  retry() {
    return this.retryClass;
  }

  /** @returns {boolean} whether the refusal is about the record itself (set it aside) */
  rejectsRecord() {
    return REJECTS_RECORD.has(this.code);
  }

  toString() {
    return this.code;
  }

  /**
   * The code with this stable string, or `null`.
   * @param {string} s
   * @returns {Code | null}
   */
  static parse(s) {
    return BY_NAME.get(s) ?? null;
  }
}

/** Every code, in the order docs/api.md lists them. */
export const ALL = Object.freeze(ROWS.map(([c, s, r]) => new Code(c, s, r)));
const BY_NAME = new Map(ALL.map((c) => [c.code, c]));

/** The refused answer of a server: its HTTP status and the `{error: {code, message}}` body. */
export class Refusal extends Error {
  /**
   * @param {number} status
   * @param {string} code the code string as sent (`unknown` for a body that is not a refusal)
   * @param {string} message
   */
  constructor(status, code, message) {
    super(`${code}: ${message}`);
    this.name = 'Refusal';
    this.status = status;
    this.codeText = code;
    /** @type {Code | null} */
    this.code = Code.parse(code);
  }

  /**
   * Reads a refusal body; an answer that is not one (a proxy's error page) keeps its
   * status with the code `unknown`, as the Rust client does.
   * @param {number} status
   * @param {string} text
   * @returns {Refusal}
   */
  static fromBody(status, text) {
    try {
      const v = JSON.parse(text);
      if (v && typeof v.error === 'object' && typeof v.error.code === 'string' && typeof v.error.message === 'string') {
        return new Refusal(status, v.error.code, v.error.message);
      }
    } catch {
      // not JSON: fall through
    }
    return new Refusal(status, 'unknown', '');
  }
}
