// The byte window the incremental container parsers read from, and their error type.
//
// MediaRecorder hands over chunks whose boundaries fall anywhere (mid-element, even
// mid-SimpleBlock), so a parser cannot look at one chunk alone. It appends every chunk to a
// ByteWindow, reads whole elements out of it by absolute stream offset once they are all
// there, and lets go of what it no longer needs. Small chunks are coalesced so that even a
// stream fed one byte at a time stays cheap to index.

/**
 * A container parser's refusal: the stream is not what it claims to be, or asks for more
 * than the parser will hold. `code` is stable (e.g. `webm.size.absurd`); `offset` is the
 * absolute stream offset where the problem was found.
 */
export class MediaError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {number} [offset]
   */
  constructor(code, message, offset) {
    super(offset === undefined ? message : `${message} (at byte ${offset})`);
    this.name = 'MediaError';
    /** @type {string} */
    this.code = code;
    /** @type {number | undefined} */
    this.offset = offset;
  }
}

/** Chunks smaller than this are copied into a shared block instead of kept as they are. */
const COALESCE = 16 * 1024;

/** A growing window over a byte stream, addressed by absolute offset. */
export class ByteWindow {
  constructor() {
    /** @type {Uint8Array[]} */
    this.chunks = [];
    /** @type {number[]} absolute offset of each chunk's first byte */
    this.starts = [];
    /** Absolute offset of the first byte still held. */
    this.start = 0;
    /** Absolute offset one past the last byte received. */
    this.end = 0;
    /** @type {Uint8Array | null} a partly filled block for small chunks */
    this.tail = null;
    this.tailLen = 0;
  }

  /** Bytes held. */
  get held() {
    return this.end - this.start;
  }

  /** @param {Uint8Array} chunk */
  append(chunk) {
    if (chunk.length === 0) return;
    if (chunk.length >= COALESCE) {
      this.sealTail();
      this.chunks.push(chunk);
      this.starts.push(this.end);
      this.end += chunk.length;
      return;
    }
    if (this.tail && this.tailLen + chunk.length > this.tail.length) this.sealTail();
    if (!this.tail) {
      this.tail = new Uint8Array(COALESCE * 4);
      this.tailLen = 0;
      this.chunks.push(this.tail.subarray(0, 0));
      this.starts.push(this.end);
    }
    this.tail.set(chunk, this.tailLen);
    this.tailLen += chunk.length;
    this.chunks[this.chunks.length - 1] = this.tail.subarray(0, this.tailLen);
    this.end += chunk.length;
  }

  /** @private */
  sealTail() {
    this.tail = null;
    this.tailLen = 0;
  }

  /**
   * Index of the chunk holding absolute offset `at` (which must be held).
   * @private
   * @param {number} at
   */
  find(at) {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= at) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /**
   * Whether bytes [a, b) are all held.
   * @param {number} a
   * @param {number} b
   */
  has(a, b) {
    return a >= this.start && b <= this.end;
  }

  /**
   * The bytes [a, b), which must be held: a view when they lie in one chunk, else a copy.
   * @param {number} a
   * @param {number} b
   * @returns {Uint8Array}
   */
  slice(a, b) {
    if (a < this.start || b > this.end || a > b) {
      throw new RangeError(`bytes ${a}..${b} are not held (${this.start}..${this.end})`);
    }
    if (a === b) return new Uint8Array(0);
    let i = this.find(a);
    const first = this.chunks[i];
    const off = a - this.starts[i];
    if (off + (b - a) <= first.length) return first.subarray(off, off + (b - a));
    const out = new Uint8Array(b - a);
    let at = 0;
    let from = off;
    while (at < out.length) {
      const c = this.chunks[i];
      const n = Math.min(c.length - from, out.length - at);
      out.set(c.subarray(from, from + n), at);
      at += n;
      from = 0;
      i += 1;
    }
    return out;
  }

  /**
   * Lets go of every byte before absolute offset `before`.
   * @param {number} before
   */
  drop(before) {
    if (before <= this.start) return;
    before = Math.min(before, this.end);
    let n = 0;
    while (n < this.chunks.length && this.starts[n] + this.chunks[n].length <= before) n += 1;
    if (n > 0) {
      if (n === this.chunks.length && this.tail) this.sealTail();
      this.chunks.splice(0, n);
      this.starts.splice(0, n);
    }
    if (this.chunks.length > 0 && this.starts[0] < before) {
      const cut = before - this.starts[0];
      const isTail = this.tail !== null && this.chunks.length === 1;
      if (isTail) {
        // Keep the tail block shared so later small chunks still go into it.
        this.chunks[0] = this.tail.subarray(cut, this.tailLen);
        this.tail = this.tail.subarray(cut);
        this.tailLen -= cut;
      } else {
        this.chunks[0] = this.chunks[0].subarray(cut);
      }
      this.starts[0] = before;
    }
    this.start = before;
  }
}
