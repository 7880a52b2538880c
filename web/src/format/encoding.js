// The one binary encoding every custody object uses (docs/format.md section 1), mirroring
// format/src/encoding.rs:
//
//   object := magic "CSTD" | version u8 (=1) | kind u8 | body_len u32be | body
//   body   := field*            (exactly body_len bytes)
//   field  := tag u8 | len u32be | value (len bytes)
//
// Tags appear in strictly increasing order; unknown tags, versions, trailing bytes and
// objects over MAX_OBJECT_LEN are refused with the error names of format.md section 1.
// u64 and i64 values are read as BigInt (exact, as in Rust); writers take a safe integer
// Number or a BigInt.

import { fromUtf8, utf8 } from './bytes.js';

export const MAGIC = new Uint8Array([0x43, 0x53, 0x54, 0x44]);
export const VERSION = 1;
export const MAX_OBJECT_LEN = 64 * 1024;
export const HEADER_LEN = 10;
export const MAX_STRING_LEN = 4096;
export const MAX_LIST_ITEMS = 1024;

/**
 * @typedef {'truncated' | 'bad-magic' | 'unsupported-version' | 'unknown-kind' | 'wrong-kind'
 *   | 'too-large' | 'trailing-bytes' | 'duplicate-field' | 'field-out-of-order'
 *   | 'unknown-field' | 'missing-field' | 'field-length' | 'invalid-utf8' | 'too-long'
 *   | 'invalid-value'} DecodeCode
 */

/** A parse error; `code` is the name format.md section 1 gives it. */
export class DecodeError extends Error {
  /**
   * @param {DecodeCode} code
   * @param {string} message
   */
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = 'DecodeError';
    /** @type {DecodeCode} */
    this.code = code;
  }
}

/** @typedef {{tag: number, name: string}} Field */

/**
 * @param {number} tag
 * @param {string} name
 * @returns {Field}
 */
export const f = (tag, name) => ({ tag, name });

const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

/**
 * @param {number | bigint} v
 * @returns {bigint}
 */
function big(v) {
  if (typeof v === 'bigint') return v;
  if (!Number.isSafeInteger(v)) throw new RangeError(`${v} is not a safe integer`);
  return BigInt(v);
}

/** Writes the fields of an object (or of a list item) in tag order. */
export class FieldWriter {
  constructor() {
    /** @type {Uint8Array[]} */
    this.parts = [];
    this.len = 0;
    this.last = -1;
  }

  /**
   * @param {Field} fd
   * @param {Uint8Array} value
   * @returns {this}
   */
  raw(fd, value) {
    if (fd.tag <= this.last) throw new Error(`tag ${fd.tag} written out of order`);
    this.last = fd.tag;
    const head = new Uint8Array(5);
    head[0] = fd.tag;
    new DataView(head.buffer).setUint32(1, value.length);
    this.parts.push(head, value);
    this.len += 5 + value.length;
    return this;
  }

  /** @param {Field} fd @param {number} v */
  u8(fd, v) {
    if (!Number.isInteger(v) || v < 0 || v > 255) throw new RangeError(`${fd.name}: not a u8`);
    return this.raw(fd, new Uint8Array([v]));
  }

  /** @param {Field} fd @param {number} v */
  u16(fd, v) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new RangeError(`${fd.name}: not a u16`);
    const b = new Uint8Array(2);
    new DataView(b.buffer).setUint16(0, v);
    return this.raw(fd, b);
  }

  /** @param {Field} fd @param {number} v */
  u32(fd, v) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`${fd.name}: not a u32`);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v);
    return this.raw(fd, b);
  }

  /** @param {Field} fd @param {number | bigint} v */
  u64(fd, v) {
    const x = big(v);
    if (x < 0n || x > U64_MAX) throw new RangeError(`${fd.name}: not a u64`);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, x);
    return this.raw(fd, b);
  }

  /** @param {Field} fd @param {number | bigint} v */
  i64(fd, v) {
    const x = big(v);
    if (x < I64_MIN || x > I64_MAX) throw new RangeError(`${fd.name}: not an i64`);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigInt64(0, x);
    return this.raw(fd, b);
  }

  /** @param {Field} fd @param {string} v */
  str(fd, v) {
    return this.raw(fd, utf8(v));
  }

  /**
   * A list whose items are already-encoded field sequences.
   * @param {Field} fd
   * @param {Uint8Array[]} items
   */
  list(fd, items) {
    let n = 4;
    for (const it of items) n += 4 + it.length;
    const out = new Uint8Array(n);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, items.length);
    let at = 4;
    for (const it of items) {
      dv.setUint32(at, it.length);
      out.set(it, at + 4);
      at += 4 + it.length;
    }
    return this.raw(fd, out);
  }

  /** @returns {Uint8Array} the encoded field sequence */
  bytes() {
    const out = new Uint8Array(this.len);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  /**
   * The fields wrapped as a complete object of `kind`.
   * @param {number} kind
   * @returns {Uint8Array}
   */
  object(kind) {
    const body = this.bytes();
    const out = new Uint8Array(HEADER_LEN + body.length);
    out.set(MAGIC, 0);
    out[4] = VERSION;
    out[5] = kind;
    new DataView(out.buffer).setUint32(6, body.length);
    out.set(body, HEADER_LEN);
    return out;
  }
}

/**
 * @typedef {object} Split
 * @property {number} kind
 * @property {Uint8Array} object  the whole object's bytes
 * @property {Uint8Array} body
 * @property {Uint8Array} rest    what follows it in the input
 */

/**
 * Splits `input` into its first object and the rest; checks magic, version and length.
 * @param {Uint8Array} input
 * @returns {Split}
 */
export function splitObject(input) {
  if (input.length < HEADER_LEN) {
    throw new DecodeError('truncated', `object header needs ${HEADER_LEN} bytes, ${input.length} remain`);
  }
  for (let i = 0; i < 4; i++) {
    if (input[i] !== MAGIC[i]) throw new DecodeError('bad-magic', 'not a custody object (magic is not CSTD)');
  }
  if (input[4] !== VERSION) {
    throw new DecodeError('unsupported-version', `format version ${input[4]} (this reads version 1)`);
  }
  const kind = input[5];
  const bodyLen = new DataView(input.buffer, input.byteOffset + 6, 4).getUint32(0);
  const total = HEADER_LEN + bodyLen;
  if (total > MAX_OBJECT_LEN) {
    throw new DecodeError('too-large', `object of ${total} bytes exceeds the limit of ${MAX_OBJECT_LEN}`);
  }
  if (input.length < total) {
    throw new DecodeError('truncated', `object body needs ${total} bytes, ${input.length} remain`);
  }
  return {
    kind,
    object: input.subarray(0, total),
    body: input.subarray(HEADER_LEN, total),
    rest: input.subarray(total),
  };
}

/**
 * @param {Uint8Array} b
 * @param {number} at
 * @returns {number}
 */
function u32At(b, at) {
  return new DataView(b.buffer, b.byteOffset + at, 4).getUint32(0);
}

/**
 * Reads a field sequence: checks order and framing up front, then hands out fields by tag;
 * `finish()` refuses any field nobody asked for.
 */
export class FieldReader {
  /**
   * @param {string} objectName
   * @param {Uint8Array} body
   */
  constructor(objectName, body) {
    this.objectName = objectName;
    /** @type {{tag: number, value: Uint8Array, taken: boolean}[]} */
    this.fields = [];
    let at = 0;
    while (at < body.length) {
      const left = body.length - at;
      if (left < 5) throw new DecodeError('truncated', `field header needs 5 bytes, ${left} remain`);
      const tag = body[at];
      const len = u32At(body, at + 1);
      if (len > left - 5) throw new DecodeError('truncated', `field value needs ${len} bytes, ${left - 5} remain`);
      const last = this.fields.length ? this.fields[this.fields.length - 1].tag : -1;
      if (tag === last) throw new DecodeError('duplicate-field', `duplicate field (tag ${tag})`);
      if (tag < last) throw new DecodeError('field-out-of-order', `field tag ${tag} after tag ${last}`);
      this.fields.push({ tag, value: body.subarray(at + 5, at + 5 + len), taken: false });
      at += 5 + len;
    }
  }

  /** @param {Field} fd @returns {Uint8Array | null} */
  optional(fd) {
    const x = this.fields.find((e) => e.tag === fd.tag);
    if (!x) return null;
    x.taken = true;
    return x.value;
  }

  /** @param {Field} fd @returns {Uint8Array} */
  required(fd) {
    const v = this.optional(fd);
    if (v === null) throw new DecodeError('missing-field', `missing field \`${fd.name}\``);
    return v;
  }

  /** @param {Field} fd @param {number} n @returns {Uint8Array} */
  array(fd, n) {
    return fixed(fd, this.required(fd), n);
  }

  /** @param {Field} fd @param {number} n @returns {Uint8Array | null} */
  optionalArray(fd, n) {
    const v = this.optional(fd);
    return v === null ? null : fixed(fd, v, n);
  }

  /** @param {Field} fd @returns {number} */
  u8(fd) {
    return this.array(fd, 1)[0];
  }

  /** @param {Field} fd @returns {number} */
  u32(fd) {
    return u32At(this.array(fd, 4), 0);
  }

  /** @param {Field} fd @returns {bigint} */
  u64(fd) {
    return readU64(fd, this.required(fd));
  }

  /** @param {Field} fd @returns {bigint} */
  i64(fd) {
    const b = this.array(fd, 8);
    return new DataView(b.buffer, b.byteOffset, 8).getBigInt64(0);
  }

  /** @param {Field} fd @returns {string} */
  str(fd) {
    return string(fd, this.required(fd));
  }

  /** @param {Field} fd @returns {string | null} */
  optionalStr(fd) {
    const v = this.optional(fd);
    return v === null ? null : string(fd, v);
  }

  /**
   * A required list; each item as its raw field sequence.
   * @param {Field} fd
   * @returns {Uint8Array[]}
   */
  list(fd) {
    const v = this.required(fd);
    if (v.length < 4) throw new DecodeError('truncated', `${fd.name}: list count needs 4 bytes`);
    const count = u32At(v, 0);
    if (count > MAX_LIST_ITEMS) {
      throw new DecodeError('too-long', `field \`${fd.name}\` has ${count} items, at most ${MAX_LIST_ITEMS}`);
    }
    const items = [];
    let at = 4;
    for (let i = 0; i < count; i++) {
      if (v.length - at < 4) throw new DecodeError('truncated', `${fd.name}: item length needs 4 bytes`);
      const len = u32At(v, at);
      if (len > v.length - at - 4) throw new DecodeError('truncated', `${fd.name}: item needs ${len} bytes`);
      items.push(v.subarray(at + 4, at + 4 + len));
      at += 4 + len;
    }
    if (at !== v.length) throw new DecodeError('trailing-bytes', `${v.length - at} trailing bytes after the list`);
    return items;
  }

  /** Refuses any field that was present but not read. */
  finish() {
    const x = this.fields.find((e) => !e.taken);
    if (x) throw new DecodeError('unknown-field', `unknown field tag ${x.tag} in ${this.objectName}`);
  }
}

/**
 * @param {Field} fd
 * @param {Uint8Array} v
 * @param {number} n
 * @returns {Uint8Array}
 */
function fixed(fd, v, n) {
  if (v.length !== n) throw new DecodeError('field-length', `field \`${fd.name}\` has ${v.length} bytes, expected ${n}`);
  return v;
}

/**
 * A u64 value of exactly 8 bytes.
 * @param {Field} fd
 * @param {Uint8Array} v
 * @returns {bigint}
 */
export function readU64(fd, v) {
  const b = fixed(fd, v, 8);
  return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0);
}

/**
 * @param {Field} fd
 * @param {Uint8Array} v
 * @returns {string}
 */
function string(fd, v) {
  if (v.length > MAX_STRING_LEN) {
    throw new DecodeError('too-long', `field \`${fd.name}\` is too long (${v.length}, at most ${MAX_STRING_LEN})`);
  }
  const s = fromUtf8(v);
  if (s === null) throw new DecodeError('invalid-utf8', `field \`${fd.name}\` is not valid UTF-8`);
  return s;
}
