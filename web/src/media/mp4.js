// An incremental fragmented-MP4 (ISO BMFF, ISO/IEC 14496-12) parser for MediaRecorder's MP4
// output (Chromium's MP4 mode, Safari) and FFmpeg's `frag_keyframe+empty_moov`.
//
// Chunks are pushed as they come. The parser reports the initialisation segment (ftyp and
// moov, with each trak's codec, timescale and trex defaults), then each fragment: its start
// once the moof is read, every sample (located through tfhd/tfdt/trun in the mdat that
// follows) once that mdat has arrived, and its end with the bytes moof..mdat. It holds at
// most one fragment (`maxFragmentBytes`) and refuses boxes that claim absurd sizes.

import { ByteWindow, MediaError } from './bytes.js';
import { parseMoov, parseMoof } from './mp4-boxes.js';

/** @typedef {import('./webm.js').MediaEvent} MediaEvent */
/** @typedef {import('./mp4-boxes.js').Mp4Track} Mp4Track */

/** Largest ftyp/moov/moof read whole. */
const MAX_HEAD = 16 << 20;
/** Largest box skipped over unread (free, sidx, mfra, ...). */
const MAX_SKIP = 256 << 20;

/** The incremental parser. */
export class Mp4Parser {
  /** @param {{maxFragmentBytes?: number}} [options] */
  constructor(options = {}) {
    this.maxFragmentBytes = options.maxFragmentBytes ?? 64 << 20;
    this.win = new ByteWindow();
    this.pos = 0;
    /** @type {Mp4Track[] | null} */
    this.tracks = null;
    /** @type {{start: number, samples: import('./mp4-boxes.js').Sample[]} | null} */
    this.fragment = null;
    /** End of a box being skipped while it still arrives. */
    this.skipTo = -1;
    /** @type {MediaError | null} */
    this.failed = null;
    this.ended = false;
    /** @type {MediaEvent[]} the events of the call in progress */
    this.events = [];
  }

  /**
   * @param {Uint8Array} chunk
   * @returns {MediaEvent[]}
   */
  push(chunk) {
    if (this.failed) throw this.failed;
    if (this.ended) throw new MediaError('mp4.ended', 'data pushed after the end of the stream');
    this.win.append(chunk);
    return this.guard(() => this.run(false));
  }

  /** @returns {MediaEvent[]} */
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
      this.failed = e instanceof MediaError ? e : new MediaError('mp4.internal', String(e), this.pos);
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
      if (this.skipTo >= 0) {
        this.pos = Math.min(this.skipTo, this.win.end);
        if (this.pos < this.skipTo) {
          if (eof) throw new MediaError('mp4.truncated', 'the stream ends inside a box', this.pos);
          break;
        }
        this.skipTo = -1;
      }
      if (this.pos === this.win.end) {
        if (!eof) break;
        if (this.fragment) throw new MediaError('mp4.truncated', 'the stream ends after a moof without its mdat', this.pos);
        if (!this.tracks) throw new MediaError('mp4.truncated', 'the stream ended before its moov', this.pos);
        break;
      }
      const h = this.header();
      if (!h) {
        if (eof) throw new MediaError('mp4.truncated', 'the stream ends inside a box header', this.pos);
        break;
      }
      if (!this.box(h, out)) {
        if (eof) throw new MediaError('mp4.truncated', 'the stream ends inside a box', this.pos);
        break;
      }
    }
    this.win.drop(this.fragment ? this.fragment.start : this.tracks ? this.pos : 0);
    if (this.fragment && this.win.end - this.fragment.start > this.maxFragmentBytes) {
      throw new MediaError('mp4.fragment.too-large', `a fragment passes ${this.maxFragmentBytes} bytes`, this.fragment.start);
    }
    if (!this.tracks && this.win.end > MAX_HEAD * 2) {
      throw new MediaError('mp4.init.too-large', 'no moov near the start of the stream', 0);
    }
    return out;
  }

  /**
   * The box header at `pos`, or null if more bytes are needed.
   * @private
   * @returns {{type: string, size: number, dataStart: number} | null}
   */
  header() {
    if (this.win.end - this.pos < 8) return null;
    const d = this.win.slice(this.pos, this.pos + Math.min(16, this.win.end - this.pos));
    const v = new DataView(d.buffer, d.byteOffset, d.byteLength);
    let size = v.getUint32(0);
    const type = String.fromCharCode(d[4], d[5], d[6], d[7]);
    let headerLen = 8;
    if (size === 1) {
      if (d.length < 16) return null;
      size = Number(v.getBigUint64(8));
      headerLen = 16;
    } else if (size === 0) {
      throw new MediaError('mp4.size.unbounded', `box ${JSON.stringify(type)} runs to the end of the file, which a stream cannot have`, this.pos);
    }
    if (this.pos === 0 && type !== 'ftyp') throw new MediaError('mp4.not-mp4', 'the stream does not begin with an ftyp box', 0);
    if (!/^[\x20-\x7e]{4}$/.test(type)) throw new MediaError('mp4.box.invalid', 'not an MP4 box', this.pos);
    if (size < headerLen) throw new MediaError('mp4.size.invalid', `box ${type} is smaller than its header`, this.pos);
    return { type, size, dataStart: this.pos + headerLen };
  }

  /**
   * Handles the box at `pos`; false if more bytes are needed.
   * @private
   * @param {{type: string, size: number, dataStart: number}} h
   * @param {MediaEvent[]} out
   */
  box(h, out) {
    const at = this.pos;
    const end = at + h.size;
    if (h.type === 'moov' || h.type === 'moof' || h.type === 'ftyp') {
      if (h.size > MAX_HEAD) throw new MediaError('mp4.size.absurd', `box ${h.type} claims ${h.size} bytes`, at);
      if (this.win.end < end) return false;
      const body = this.win.slice(h.dataStart, end);
      this.pos = end;
      if (h.type === 'moov') {
        if (this.tracks) throw new MediaError('mp4.moov.repeated', 'a second moov in one stream', at);
        this.tracks = parseMoov(body, h.dataStart);
        out.push({ type: 'init', bytes: this.win.slice(0, end).slice(), tracks: this.tracks });
      } else if (h.type === 'moof') {
        if (!this.tracks) throw new MediaError('mp4.moof.early', 'a moof before the moov', at);
        if (this.fragment) throw new MediaError('mp4.mdat.missing', 'a moof follows a moof without an mdat', at);
        const samples = parseMoof(body, h.dataStart, at, this.tracks);
        this.fragment = { start: at, samples };
        // The moof already says when the fragment begins and whether at a sync sample: the
        // segmenter can cut here without waiting for the mdat.
        const tracks = this.tracks;
        const first = samples.reduce((a, b) => (b.offset < a.offset ? b : a), samples[0]);
        const video = samples.filter((x) => tracks[x.track].kind === 1).sort((a, b) => a.offset - b.offset)[0];
        const hasVideo = tracks.some((t) => t.kind === 1);
        const lead = first
          ? { timeUs: (video ?? first).timeUs, firstTimeUs: first.timeUs, key: video ? video.key : !hasVideo }
          : null;
        out.push({ type: 'start', offset: at, lead });
      }
      return true;
    }
    if (h.type === 'mdat' && this.fragment) {
      if (end - this.fragment.start > this.maxFragmentBytes) {
        throw new MediaError('mp4.fragment.too-large', `a fragment passes ${this.maxFragmentBytes} bytes`, this.fragment.start);
      }
      if (this.win.end < end) return false;
      this.pos = end;
      const f = this.fragment;
      this.fragment = null;
      const inFile = [...f.samples].sort((a, b) => a.offset - b.offset);
      for (const s of f.samples) {
        if (s.offset < h.dataStart || s.offset + s.size > end) {
          throw new MediaError('mp4.sample.outside', 'a sample lies outside the mdat after its moof', s.offset);
        }
      }
      for (const s of inFile) {
        out.push({
          type: 'frame', track: s.track, timeUs: s.timeUs, durationUs: s.durationUs, key: s.key,
          data: this.win.slice(s.offset, s.offset + s.size).slice(),
        });
      }
      out.push({ type: 'end', offset: f.start, end, bytes: this.win.slice(f.start, end).slice() });
      return true;
    }
    if (h.type === 'mdat') {
      throw new MediaError('mp4.not-fragmented', this.tracks ? 'an mdat without a moof' : 'an mdat before the moov (not a fragmented MP4)', at);
    }
    if (this.fragment) throw new MediaError('mp4.mdat.missing', `a ${h.type} box between a moof and its mdat`, at);
    if (h.size > MAX_SKIP) throw new MediaError('mp4.size.absurd', `box ${h.type} claims ${h.size} bytes`, at);
    this.skipTo = end;
    return true;
  }
}
