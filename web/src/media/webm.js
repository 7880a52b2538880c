// An incremental WebM (Matroska, EBML) parser for MediaRecorder's output and FFmpeg's.
//
// Chunks are pushed as they come; element boundaries fall anywhere in them. The parser
// reports the initialisation data (EBML header up to the end of Tracks), each Cluster's
// start and end with its bytes, and every frame of every SimpleBlock and BlockGroup (laced
// blocks split into their frames as FFmpeg's matroska demuxer does). Both unknown-size
// Segment and Cluster elements (what MediaRecorder writes: a Cluster then ends where the
// next top-level element begins) and known sizes (what FFmpeg writes) are understood.
//
// It holds at most one Cluster (bounded by `maxClusterBytes`) and refuses any element that
// claims more than its kind can reasonably need, so a corrupt stream gives a MediaError,
// never unbounded buffering or a loop that makes no progress.

import { ByteWindow, MediaError } from './bytes.js';
import { parseTracks, ID } from './webm-tracks.js';
import { UNKNOWN, readVint, readUint, childOf, laces, gcd } from './ebml.js';

/** @typedef {import('./webm-tracks.js').Track} Track */

/**
 * What the parser reports, in stream order. A `start` may carry a `lead` when the parser knows
 * before the frames (an MP4 moof does) the time of the first video frame (`timeUs`;
 * the first frame's without video), whether it is a keyframe, and the time of the first
 * frame in file order (`firstTimeUs`).
 * @typedef {{type: 'init', bytes: Uint8Array, tracks: Track[]}
 *   | {type: 'start', offset: number, lead?: {timeUs: number, firstTimeUs: number, key: boolean} | null}
 *   | {type: 'frame', track: number, timeUs: number, durationUs: number | null, key: boolean, data: Uint8Array}
 *   | {type: 'end', offset: number, end: number, bytes: Uint8Array}} MediaEvent
 */

/** Children that may appear inside a Cluster (an unknown-size Cluster ends at anything else). */
/** @type {Set<number>} */
const CLUSTER_CHILDREN = new Set([
  ID.Timestamp, ID.SimpleBlock, ID.BlockGroup, ID.Position, ID.PrevSize, ID.Void, ID.CRC32,
  ID.SilentTracks, ID.EncryptedBlock,
]);

/** Stands on the stack for an element being skipped while its bytes still arrive. */
const SKIPPING = -2;
/** Most bytes held before the initialisation data is complete. */
const MAX_BEFORE_INIT = 16 << 20;
/** Largest header-level element read whole (EBML header, Info, Tracks). */
const MAX_HEAD = 4 << 20;
/** Largest single SimpleBlock or BlockGroup. */
const MAX_BLOCK = 32 << 20;
/** Largest element skipped over unread (SeekHead, Cues, Tags, Void, ...). */
const MAX_SKIP = 256 << 20;

/** The incremental parser. */
export class WebmParser {
  /** @param {{maxClusterBytes?: number}} [options] */
  constructor(options = {}) {
    this.maxClusterBytes = options.maxClusterBytes ?? 64 << 20;
    this.win = new ByteWindow();
    /** Absolute offset of the next unread byte. */
    this.pos = 0;
    /** @type {{id: number, start: number, end: number}[]} open master elements */
    this.stack = [];
    /** @type {Track[] | null} */
    this.tracks = null;
    this.timecodeScale = 1_000_000;
    this.infoEnd = -1;
    this.tracksEnd = -1;
    this.initSent = false;
    /** @type {{at: number, len: number} | null} where a known Segment size is written */
    this.segmentSize = null;
    /** @type {{start: number, time: number | null} | null} the open Cluster */
    this.cluster = null;
    /** @type {MediaError | null} */
    this.failed = null;
    this.ended = false;
    /** @type {MediaEvent[]} the events of the call in progress */
    this.events = [];
  }

  /**
   * Parses what `chunk` completes.
   * @param {Uint8Array} chunk
   * @returns {MediaEvent[]}
   */
  push(chunk) {
    if (this.failed) throw this.failed;
    if (this.ended) throw new MediaError('webm.ended', 'data pushed after the end of the stream');
    this.win.append(chunk);
    return this.guard(() => this.run(false));
  }

  /**
   * The stream has ended: closes what is open, or refuses a stream cut off mid-element.
   * @returns {MediaEvent[]}
   */
  end() {
    if (this.failed) throw this.failed;
    this.ended = true;
    return this.guard(() => this.run(true));
  }

  /**
   * @private
   * @param {() => MediaEvent[]} f
   */
  guard(f) {
    this.events = [];
    try {
      return f();
    } catch (e) {
      this.failed = e instanceof MediaError ? e : new MediaError('webm.internal', String(e), this.pos);
      // What was parsed before the refusal is still given; the refusal is in `failed`
      // and every later call throws it.
      const got = this.events;
      this.events = [];
      if (got.length > 0) return got;
      throw this.failed;
    }
  }

  /**
   * @private
   * @param {boolean} eof
   */
  run(eof) {
    const out = this.events;
    for (;;) {
      this.closeEnded(out);
      if (this.win.end - this.pos === 0 && eof) {
        if (this.stack.some((e) => e.end !== UNKNOWN && e.end > this.pos)) {
          throw new MediaError('webm.truncated', 'the stream ends inside an element', this.pos);
        }
        while (this.stack.length) this.close(out, this.pos);
        if (!this.initSent) throw new MediaError('webm.truncated', 'the stream ended before its Tracks', this.pos);
        break;
      }
      const h = this.header();
      if (h === null) {
        if (eof) throw new MediaError('webm.truncated', 'the stream ends inside an element header', this.pos);
        break;
      }
      // An unknown-size parent ends where an element that cannot be its child begins.
      const top = this.stack[this.stack.length - 1];
      if (top && top.end === UNKNOWN && !this.mayContain(top.id, h.id)) {
        this.close(out, this.pos);
        continue;
      }
      if (!this.element(h, out)) {
        if (eof) throw new MediaError('webm.truncated', 'the stream ends inside an element', this.pos);
        break;
      }
    }
    // Keep the open Cluster's bytes (its segment needs them) and nothing older.
    this.win.drop(this.cluster ? this.cluster.start : this.initSent ? this.pos : 0);
    if (!this.initSent && this.win.end > MAX_BEFORE_INIT) {
      throw new MediaError('webm.init.too-large', `no Tracks in the first ${MAX_BEFORE_INIT} bytes`, 0);
    }
    if (this.cluster && this.pos - this.cluster.start > this.maxClusterBytes) {
      throw new MediaError('webm.cluster.too-large', `a Cluster passes ${this.maxClusterBytes} bytes`, this.cluster.start);
    }
    return out;
  }

  /**
   * The element header at `pos`, or null if more bytes are needed.
   * @private
   * @returns {{id: number, size: number, dataStart: number} | null}
   */
  header() {
    const avail = Math.min(this.win.end - this.pos, 12);
    if (avail <= 0) return null;
    const d = this.win.slice(this.pos, this.pos + avail);
    const id = readVint(d, 0, true);
    if (this.pos === 0 && (id === 'bad' || (id && id.value !== ID.EBML))) {
      throw new MediaError('webm.not-webm', 'the stream does not begin with an EBML header', 0);
    }
    if (id === 'bad') throw new MediaError('webm.id.invalid', 'not an EBML element ID', this.pos);
    if (id === null) return null;
    const size = readVint(d, id.len, false);
    if (size === 'bad') throw new MediaError('webm.size.invalid', 'not an EBML element size', this.pos);
    if (size === null) return null;
    return { id: id.value, size: size.value, dataStart: this.pos + id.len + size.len };
  }

  /**
   * @private
   * @param {number} parent
   * @param {number} child
   */
  mayContain(parent, child) {
    if (parent === ID.Cluster) return CLUSTER_CHILDREN.has(child);
    if (parent === ID.Segment) return child !== ID.EBML && child !== ID.Segment;
    return true;
  }

  /**
   * Handles the element whose header is at `pos`; false if more bytes are needed.
   * @private
   * @param {{id: number, size: number, dataStart: number}} h
   * @param {MediaEvent[]} out
   */
  element(h, out) {
    const { id, size, dataStart } = h;
    const at = this.pos;
    const parent = this.stack[this.stack.length - 1];
    const end = size === UNKNOWN ? UNKNOWN : dataStart + size;
    if (parent && parent.end !== UNKNOWN && end !== UNKNOWN && end > parent.end) {
      throw new MediaError('webm.size.overflow', `element 0x${id.toString(16)} runs past its parent`, at);
    }
    const level = parent ? parent.id : 0;
    if (level === 0) {
      if (at === 0 && id !== ID.EBML) throw new MediaError('webm.not-webm', 'the stream does not begin with an EBML header', 0);
      if (id === ID.EBML) {
        if (at !== 0) throw new MediaError('webm.second-stream', 'a second EBML header inside one stream', at);
        const body = this.whole(h, MAX_HEAD);
        if (!body) return false;
        checkEbmlHeader(body, at);
        return true;
      }
      if (id === ID.Segment) {
        if (size !== UNKNOWN) this.segmentSize = { at: at + 4, len: dataStart - at - 4 };
        this.stack.push({ id, start: at, end });
        this.pos = dataStart;
        return true;
      }
      return this.skip(h);
    }
    if (level === ID.Segment) {
      if (id === ID.Info || id === ID.Tracks) {
        const body = this.whole(h, MAX_HEAD);
        if (!body) return false;
        if (id === ID.Info) {
          this.timecodeScale = parseInfo(body, dataStart);
          this.infoEnd = this.pos;
        } else {
          this.tracks = parseTracks(body, dataStart);
          this.tracksEnd = this.pos;
        }
        if (!this.initSent && this.infoEnd >= 0 && this.tracksEnd >= 0) this.sendInit(out);
        return true;
      }
      if (id === ID.Cluster) {
        if (!this.initSent) throw new MediaError('webm.cluster.early', 'a Cluster before the Info and Tracks', at);
        this.stack.push({ id, start: at, end });
        this.cluster = { start: at, time: null };
        out.push({ type: 'start', offset: at });
        this.pos = dataStart;
        return true;
      }
      return this.skip(h);
    }
    if (level === ID.Cluster) {
      if (id === ID.Timestamp) {
        const body = this.whole(h, 8);
        if (!body) return false;
        if (this.cluster) this.cluster.time = readUint(body);
        return true;
      }
      if (id === ID.SimpleBlock || id === ID.BlockGroup) {
        const body = this.whole(h, MAX_BLOCK);
        if (!body) return false;
        this.block(id, body, at, out);
        return true;
      }
      return this.skip(h);
    }
    return this.skip(h);
  }

  /**
   * The body of a known-size element read whole (pos moves past it), or null until it has
   * all arrived.
   * @private
   * @param {{id: number, size: number, dataStart: number}} h
   * @param {number} max
   */
  whole(h, max) {
    if (h.size === UNKNOWN) throw new MediaError('webm.size.unknown', `element 0x${h.id.toString(16)} has an unknown size`, this.pos);
    if (h.size > max) throw new MediaError('webm.size.absurd', `element 0x${h.id.toString(16)} claims ${h.size} bytes`, this.pos);
    if (this.win.end < h.dataStart + h.size) return null;
    const body = this.win.slice(h.dataStart, h.dataStart + h.size);
    this.pos = h.dataStart + h.size;
    return body;
  }

  /**
   * Skips an element without holding its bytes.
   * @private
   * @param {{id: number, size: number, dataStart: number}} h
   */
  skip(h) {
    if (h.size === UNKNOWN) throw new MediaError('webm.size.unknown', `element 0x${h.id.toString(16)} has an unknown size`, this.pos);
    if (h.size > MAX_SKIP) throw new MediaError('webm.size.absurd', `element 0x${h.id.toString(16)} claims ${h.size} bytes`, this.pos);
    const end = h.dataStart + h.size;
    if (this.win.end < end) {
      // Not read: move on as far as the data goes, remembering where the element ends.
      this.stack.push({ id: SKIPPING, start: this.pos, end });
      this.pos = Math.max(this.pos, Math.min(end, this.win.end));
      return true;
    }
    this.pos = end;
    return true;
  }

  /** @private @param {MediaEvent[]} out */
  sendInit(out) {
    this.initSent = true;
    const end = Math.max(this.infoEnd, this.tracksEnd);
    const tracks = this.tracks ?? [];
    // Matroska timestamps count TimecodeScale nanoseconds: FFmpeg's time base for every track.
    const g = gcd(this.timecodeScale, 1e9);
    for (const t of tracks) {
      t.timeBaseNum = this.timecodeScale / g;
      t.timeBaseDen = 1e9 / g;
    }
    const bytes = this.win.slice(0, end).slice();
    if (this.segmentSize) {
      // A known Segment size (FFmpeg's files, not MediaRecorder's) counts every Cluster of
      // the stream; in a segment that holds only some, it is marked unknown instead, in the
      // same number of bytes, so the segment is a complete file by itself.
      const { at, len } = this.segmentSize;
      bytes.fill(0xff, at, at + len);
      bytes[at] = 0xff >> (len - 1);
    }
    out.push({ type: 'init', bytes, tracks });
  }

  /**
   * Pops every open element whose known end has been reached.
   * @private
   * @param {MediaEvent[]} out
   */
  closeEnded(out) {
    for (;;) {
      const top = this.stack[this.stack.length - 1];
      if (!top || top.end === UNKNOWN) return;
      if (top.id === SKIPPING) {
        // A skipped element still arriving: swallow what came.
        this.pos = Math.min(top.end, this.win.end);
        if (this.pos < top.end) return;
        this.stack.pop();
        continue;
      }
      if (this.pos < top.end) return;
      this.close(out, top.end);
    }
  }

  /**
   * Closes the innermost open element at `end`.
   * @private
   * @param {MediaEvent[]} out
   * @param {number} end
   */
  close(out, end) {
    const top = this.stack.pop();
    if (!top) return;
    if (top.id === ID.Cluster && this.cluster) {
      out.push({ type: 'end', offset: top.start, end, bytes: this.win.slice(top.start, end).slice() });
      this.cluster = null;
    }
  }

  /**
   * @private
   * @param {number} id
   * @param {Uint8Array} body
   * @param {number} at
   * @param {MediaEvent[]} out
   */
  block(id, body, at, out) {
    let data = body;
    let key = null;
    if (id === ID.BlockGroup) {
      let p = 0;
      /** @type {Uint8Array | null} */
      let block = null;
      let referenced = false;
      while (p < body.length) {
        const cid = readVint(body, p, true);
        const csize = cid && cid !== 'bad' ? readVint(body, p + cid.len, false) : 'bad';
        if (!cid || cid === 'bad' || !csize || csize === 'bad' || csize.value === UNKNOWN) {
          throw new MediaError('webm.blockgroup.invalid', 'a BlockGroup whose children do not add up', at);
        }
        const s = p + cid.len + csize.len;
        if (s + csize.value > body.length) throw new MediaError('webm.blockgroup.invalid', 'a BlockGroup child runs past it', at);
        const c = body.subarray(s, s + csize.value);
        if (cid.value === ID.Block) block = c;
        else if (cid.value === ID.ReferenceBlock) referenced = true;
        p = s + csize.value;
      }
      if (!block) throw new MediaError('webm.blockgroup.invalid', 'a BlockGroup without a Block', at);
      data = block;
      key = !referenced;
    }
    const tn = readVint(data, 0, false);
    if (!tn || tn === 'bad' || tn.value === UNKNOWN || data.length < tn.len + 3) {
      throw new MediaError('webm.block.invalid', 'a block too short for its header', at);
    }
    const rel = (data[tn.len] << 24) >> 16 | data[tn.len + 1];
    const flags = data[tn.len + 2];
    const track = (this.tracks ?? []).findIndex((t) => t.number === tn.value);
    if (track < 0) return; // FFmpeg ignores blocks of tracks it was not told of
    if (!this.cluster || this.cluster.time === null) throw new MediaError('webm.cluster.no-timestamp', 'a block before its Cluster Timestamp', at);
    if (key === null) key = (flags & 0x80) !== 0;
    const t = this.tracks?.[track];
    const scale = this.timecodeScale / 1000;
    const timeUs = Math.round((this.cluster.time + rel) * scale);
    // One frame's duration is the track's DefaultDuration (a BlockDuration is not used:
    // format.md section 6.4 defines a segment's end by the track's).
    const durationUs = t?.defaultDurationUs ?? null;
    for (const frame of laces(data, tn.len + 3, (flags >> 1) & 3, at)) {
      out.push({ type: 'frame', track, timeUs, durationUs, key, data: frame });
    }
  }
}

/**
 * Checks the EBML header names a Matroska or WebM document.
 * @param {Uint8Array} body
 * @param {number} at
 */
function checkEbmlHeader(body, at) {
  const docType = new TextDecoder().decode(childOf(body, ID.DocType) ?? new Uint8Array(0));
  if (docType !== 'webm' && docType !== 'matroska') {
    throw new MediaError('webm.doctype', `EBML DocType "${docType}" is not webm or matroska`, at);
  }
}

/**
 * The Info element's TimecodeScale (ns per tick; 1 ms by default).
 * @param {Uint8Array} body
 * @param {number} at
 */
function parseInfo(body, at) {
  const s = childOf(body, ID.TimecodeScale);
  const scale = s ? readUint(s) : 1_000_000;
  if (scale < 1 || scale > 1e9) throw new MediaError('webm.timecodescale', `TimecodeScale ${scale} is out of range`, at);
  return scale;
}
