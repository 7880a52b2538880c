// Building a recording's hash chain, and checking one (docs/format.md section 5), mirroring
// format/src/chain.rs. `ChainBuilder` numbers, links and signs each record; `verifyChain`
// checks a stored chain from its bytes alone and reports every finding with the stable
// codes of docs/verification-codes.md rather than stopping at the first.

import { equal } from './bytes.js';
import { fingerprint } from './ids.js';
import { readSignedRecord, recordHash, recordSeq, signRecord, verifyRecord } from './record.js';

export const MEDIA_CONTINUITY_TOLERANCE_US = 100000n;

/** @typedef {'ok' | 'warning' | 'failure' | 'not-checked'} CheckState */
/** @typedef {{code: string, state: CheckState, message: string, seq?: bigint}} Check */

/** The state each chain code is catalogued with (format/src/report.rs). */
const STATES = /** @type {Record<string, CheckState>} */ ({
  'chain.empty': 'not-checked',
  'record.parse.failed': 'failure',
  'record.signature.valid': 'ok',
  'record.signature.invalid': 'failure',
  'record.device_key.mismatch': 'failure',
  'record.recording_id.mismatch': 'failure',
  'chain.header.missing': 'failure',
  'chain.header.misplaced': 'failure',
  'chain.link.valid': 'ok',
  'chain.link.broken': 'failure',
  'chain.gap': 'failure',
  'chain.duplicate': 'failure',
  'chain.reordered': 'failure',
  'chain.after_end': 'failure',
  'chain.streams.mismatch': 'failure',
  'chain.end.present': 'ok',
  'chain.end.missing': 'warning',
  'chain.end.totals.mismatch': 'failure',
  'time.device.monotonic': 'ok',
  'time.device.backwards': 'warning',
  'media.continuous': 'ok',
  'media.discontinuity': 'warning',
});

/**
 * @param {string} code
 * @param {string} message
 * @param {bigint} [seq]
 * @returns {Check}
 */
function check(code, message, seq) {
  /** @type {Check} */
  const c = { code, state: STATES[code] ?? 'failure', message };
  if (seq !== undefined) c.seq = seq;
  return c;
}

/**
 * @typedef {object} ChainReport
 * @property {Check[]} checks
 * @property {import('./record.js').SignedRecord[]} records
 * @property {import('./record.js').RecordingHeader | null} header
 * @property {{lastSeq: bigint, lastWallUs: bigint} | null} cutOff
 */

/**
 * The verdict `checks` lead to, as format.md section 11 orders it.
 * @param {ChainReport} report
 * @returns {'intact-complete' | 'intact-cut-off' | 'tampered' | 'could-not-check'}
 */
export function verdict(report) {
  if (report.checks.some((c) => c.state === 'failure')) return 'tampered';
  if (report.checks.some((c) => c.state === 'not-checked')) return 'could-not-check';
  return report.cutOff ? 'intact-cut-off' : 'intact-complete';
}

/** @param {bigint | number} v @returns {bigint} */
const B = (v) => BigInt(v);

/**
 * Checks a stored chain (signed records concatenated). If `deviceKey` is given the chain
 * must be signed by it; otherwise by the key its own header names.
 * @param {Uint8Array} bytes
 * @param {Uint8Array | null} deviceKey
 * @returns {Promise<ChainReport>}
 */
export async function verifyChain(bytes, deviceKey) {
  /** @type {ChainReport} */
  const report = { checks: [], records: [], header: null, cutOff: null };
  let rest = bytes;
  while (rest.length) {
    try {
      const r = readSignedRecord(rest);
      report.records.push(r.signed);
      rest = r.rest;
    } catch (e) {
      report.checks.push(check('record.parse.failed',
        `record at position ${report.records.length} (byte ${bytes.length - rest.length}) could not be read: ${e instanceof Error ? e.message : e}`));
      break;
    }
  }
  if (!report.records.length) {
    report.checks.push(check('chain.empty', 'the chain holds no readable record'));
    return report;
  }
  await checkRecords(report, deviceKey);
  return report;
}

/**
 * @param {ChainReport} report
 * @param {Uint8Array | null} deviceKey
 */
async function checkRecords(report, deviceKey) {
  const { checks, records } = report;
  const first = records[0].record;
  if (first.type !== 'header') {
    checks.push(check('chain.header.missing', 'the first record is not a header'));
    return;
  }
  const header = first;
  let key = header.deviceKey;
  if (deviceKey) {
    if (!equal(deviceKey, header.deviceKey)) {
      checks.push(check('record.device_key.mismatch',
        `the header names device key ${await fingerprint(header.deviceKey)} but the recording must be signed by ${await fingerprint(deviceKey)}`));
    }
    key = deviceKey;
  }

  let signaturesOk = true;
  for (const [i, rec] of records.entries()) {
    const seq = recordSeq(rec.record);
    if (!(await verifyRecord(rec, key))) {
      signaturesOk = false;
      checks.push(check('record.signature.invalid', `record ${seq}'s signature does not verify with the device key`, seq));
    }
    if (!equal(rec.record.recordingId, header.recordingId)) {
      checks.push(check('record.recording_id.mismatch', `record ${seq} belongs to another recording`, seq));
    }
    if (seq === 0n && i !== 0) checks.push(check('chain.header.misplaced', 'a second header appears in the chain', 0n));
    if (rec.record.type === 'segment' && rec.record.streamPackets.length !== header.streams.length) {
      checks.push(check('chain.streams.mismatch',
        `segment ${seq} counts ${rec.record.streamPackets.length} streams; the header lists ${header.streams.length}`, seq));
    }
  }
  if (signaturesOk) checks.push(check('record.signature.valid', `all ${records.length} records are signed by device key ${await fingerprint(key)}`));

  // Order: stored positions against chain positions.
  const seqs = records.map((r) => recordSeq(r.record));
  /** @type {Map<bigint, import('./record.js').SignedRecord>} */
  const bySeq = new Map();
  for (const rec of records) {
    const seq = recordSeq(rec.record);
    if (bySeq.has(seq)) checks.push(check('chain.duplicate', `position ${seq} occurs more than once`, seq));
    bySeq.set(seq, rec);
  }
  for (let i = 1; i < seqs.length; i++) {
    if (seqs[i] < seqs[i - 1]) {
      checks.push(check('chain.reordered', `record ${seqs[i]} is stored after record ${seqs[i - 1]}`, seqs[i]));
      break;
    }
  }
  const keys = [...bySeq.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  let expected = 0n;
  for (const seq of keys) {
    if (seq > expected) {
      const what = seq - expected === 1n ? `record ${expected} is missing` : `records ${expected} to ${seq - 1n} are missing`;
      checks.push(check('chain.gap', what, expected));
    }
    expected = seq + 1n;
  }

  // Links, between consecutive positions present.
  const ordered = keys.map((k) => /** @type {import('./record.js').SignedRecord} */ (bySeq.get(k)));
  let linksOk = true;
  for (let i = 1; i < ordered.length; i++) {
    const a = ordered[i - 1];
    const b = ordered[i];
    const sa = recordSeq(a.record);
    const sb = recordSeq(b.record);
    if (sb !== sa + 1n) continue;
    const prev = b.record.type === 'header' ? null : b.record.prev;
    if (!equal(prev, await recordHash(a.bytes))) {
      linksOk = false;
      checks.push(check('chain.link.broken', `record ${sb} does not link to the hash of record ${sa}`, sb));
    }
  }
  if (linksOk) checks.push(check('chain.link.valid', 'every record links to the one before'));

  // The end.
  const endPos = ordered.findIndex((r) => r.record.type === 'end');
  const segments = /** @type {import('./record.js').SegmentRecord[]} */ (
    ordered.map((r) => r.record).filter((r) => r.type === 'segment'));
  if (endPos >= 0) {
    const end = /** @type {import('./record.js').EndRecord} */ (ordered[endPos].record);
    if (endPos + 1 !== ordered.length) checks.push(check('chain.after_end', 'records follow the end record', B(end.seq)));
    checkTotals(checks, end, segments.filter((s) => B(s.seq) < B(end.seq)));
  } else {
    const last = recordSeq(ordered[ordered.length - 1].record);
    const lastWall = segments.length ? B(segments[segments.length - 1].wallLastUs) : B(header.startedAtUs);
    checks.push(check('chain.end.missing',
      `there is no end record: the recording was cut off after record ${last}; records 0 to ${last} are checked above`));
    report.cutOff = { lastSeq: last, lastWallUs: lastWall };
  }
  checkTimes(checks, header, ordered);
  report.header = header;
}

/**
 * `media_end_us` of the last segment minus `media_start_us` of the first, 0 if negative or
 * there are none (format/src/chain.rs `media_duration`).
 * @param {bigint | null} firstStart
 * @param {bigint} lastEnd
 * @returns {bigint}
 */
export function mediaDuration(firstStart, lastEnd) {
  if (firstStart === null) return 0n;
  // As Rust's i64::saturating_sub, then u64::try_from(..).unwrap_or(0).
  const d = lastEnd - firstStart;
  const max = (1n << 63n) - 1n;
  return d < 0n ? 0n : d > max ? max : d;
}

/**
 * @param {Check[]} checks
 * @param {import('./record.js').EndRecord} end
 * @param {import('./record.js').SegmentRecord[]} segments
 */
function checkTotals(checks, end, segments) {
  // BigInt sums: the stated lengths are the device's and need not add up in a u64.
  const plaintext = segments.reduce((a, s) => a + B(s.plaintextLen), 0n);
  const ciphertext = segments.reduce((a, s) => a + B(s.ciphertextLen), 0n);
  const duration = mediaDuration(segments.length ? B(segments[0].mediaStartUs) : null,
    segments.length ? B(segments[segments.length - 1].mediaEndUs) : 0n);
  const wrong = [];
  if (B(end.segments) !== B(segments.length)) wrong.push(`segments ${end.segments} (counted ${segments.length})`);
  if (B(end.plaintextBytes) !== plaintext) wrong.push(`plaintext bytes ${end.plaintextBytes} (counted ${plaintext})`);
  if (B(end.ciphertextBytes) !== ciphertext) wrong.push(`ciphertext bytes ${end.ciphertextBytes} (counted ${ciphertext})`);
  if (B(end.mediaDurationUs) !== duration) wrong.push(`media duration ${end.mediaDurationUs} µs (counted ${duration})`);
  if (wrong.length) checks.push(check('chain.end.totals.mismatch', `the end record states ${wrong.join(', ')}`, B(end.seq)));
  else checks.push(check('chain.end.present', `the recording ends (reason ${end.reason}) after ${end.segments} segments`));
}

/**
 * @param {Check[]} checks
 * @param {import('./record.js').RecordingHeader} header
 * @param {import('./record.js').SignedRecord[]} ordered
 */
function checkTimes(checks, header, ordered) {
  let clockOk = true;
  let mediaOk = true;
  let lastWall = B(header.startedAtUs);
  /** @type {bigint | null} */
  let lastMediaEnd = null;
  for (const { record: rec } of ordered) {
    if (rec.type === 'header') continue;
    const seq = B(rec.seq);
    const first = rec.type === 'segment' ? B(rec.wallFirstUs) : B(rec.endedAtUs);
    const last = rec.type === 'segment' ? B(rec.wallLastUs) : B(rec.endedAtUs);
    if (first < lastWall || last < first) {
      clockOk = false;
      checks.push(check('time.device.backwards', `the device clock runs backwards at record ${seq}`, seq));
    }
    if (last > lastWall) lastWall = last;
    if (rec.type === 'segment') {
      if (lastMediaEnd !== null) {
        const d = B(rec.mediaStartUs) - lastMediaEnd;
        if ((d < 0n ? -d : d) > MEDIA_CONTINUITY_TOLERANCE_US) {
          mediaOk = false;
          checks.push(check('media.discontinuity',
            `segment ${seq} starts at media time ${rec.mediaStartUs} µs; the previous one ended at ${lastMediaEnd} µs`, seq));
        }
      }
      lastMediaEnd = B(rec.mediaEndUs);
    }
  }
  if (clockOk) checks.push(check('time.device.monotonic', 'the device clock never runs backwards'));
  if (mediaOk && lastMediaEnd !== null) checks.push(check('media.continuous', "the segments' media times are contiguous"));
}

/**
 * @typedef {object} SegmentFields
 * @property {bigint | number} wallFirstUs
 * @property {bigint | number} wallLastUs
 * @property {bigint | number} mediaStartUs
 * @property {bigint | number} mediaEndUs
 * @property {(bigint | number)[]} streamPackets
 * @property {bigint | number} videoFrames
 * @property {bigint | number} plaintextLen
 * @property {Uint8Array} plaintextSha256
 * @property {bigint | number} ciphertextLen
 * @property {Uint8Array} ciphertextSha256
 * @property {Uint8Array} packetDigest
 * @property {number} cut
 */

/**
 * Makes a chain: header, then segments, then the end record, each numbered, linked to the
 * one before and signed. `snapshot()`/`restore()` let a caller keep the state of the last
 * record it managed to save, should saving the next one fail.
 */
export class ChainBuilder {
  /**
   * @param {CryptoKey} privateKey
   * @param {Uint8Array} recordingId
   * @param {Uint8Array} headerHash
   */
  constructor(privateKey, recordingId, headerHash) {
    this.key = privateKey;
    this.recordingId = recordingId;
    this.state = { nextSeq: 1n, lastHash: headerHash, firstMediaStart: /** @type {bigint | null} */ (null), lastMediaEnd: 0n, plaintextBytes: 0n, ciphertextBytes: 0n };
  }

  /**
   * Signs the header and returns the builder for what follows. The caller checks that the
   * header's device key is the signing key's public half.
   * @param {import('./record.js').RecordingHeader} header
   * @param {CryptoKey} privateKey
   * @returns {Promise<{builder: ChainBuilder, signed: import('./record.js').SignedRecord}>}
   */
  static async start(header, privateKey) {
    const signed = await signRecord(header, privateKey);
    return { builder: new ChainBuilder(privateKey, header.recordingId, await recordHash(signed.bytes)), signed };
  }

  /** @returns {bigint} the position the next record will take */
  get nextSeq() {
    return this.state.nextSeq;
  }

  /** @returns {object} the state to `restore` if saving the next record fails */
  snapshot() {
    return { ...this.state };
  }

  /** @param {object} s a `snapshot()` */
  restore(s) {
    this.state = /** @type {typeof this.state} */ ({ ...s });
  }

  /**
   * Signs the next segment record.
   * @param {SegmentFields} s
   * @returns {Promise<import('./record.js').SignedRecord>}
   */
  async segment(s) {
    const st = this.state;
    if (st.firstMediaStart === null) st.firstMediaStart = B(s.mediaStartUs);
    st.lastMediaEnd = B(s.mediaEndUs);
    st.plaintextBytes += B(s.plaintextLen);
    st.ciphertextBytes += B(s.ciphertextLen);
    return this.push({ type: 'segment', recordingId: this.recordingId, seq: st.nextSeq, prev: st.lastHash, ...s });
  }

  /**
   * Signs the end record, which closes the chain.
   * @param {bigint | number} endedAtUs
   * @param {number} reason
   * @param {string | null} message
   * @returns {Promise<import('./record.js').SignedRecord>}
   */
  async end(endedAtUs, reason, message) {
    const st = this.state;
    return this.push({
      type: 'end', recordingId: this.recordingId, seq: st.nextSeq, prev: st.lastHash, endedAtUs, reason,
      message: message ?? null, segments: st.nextSeq - 1n, mediaDurationUs: mediaDuration(st.firstMediaStart, st.lastMediaEnd),
      plaintextBytes: st.plaintextBytes, ciphertextBytes: st.ciphertextBytes,
    });
  }

  /**
   * @param {import('./record.js').Record} record
   * @returns {Promise<import('./record.js').SignedRecord>}
   */
  async push(record) {
    const signed = await signRecord(record, this.key);
    this.state.lastHash = await recordHash(signed.bytes);
    this.state.nextSeq += 1n;
    return signed;
  }
}
