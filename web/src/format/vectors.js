// Reader of the self-describing vector files in tests/vectors/ (docs/format.md section 12):
// UTF-8 lines `key: value`; `comment:` lines say what the vector is for, `kind:` what to
// check, `expect:` the outcome; binary values are lowercase hex, and a value split over
// several lines with the same key is their concatenation. For the node tests.

import { fromHex } from './bytes.js';

/** A parsed vector file. */
export class VectorFile {
  /** @param {string} text */
  constructor(text) {
    this.kind = '';
    this.expect = '';
    /** @type {Map<string, string[]>} */
    this.values = new Map();
    for (const line of text.split('\n')) {
      if (line === '') continue;
      let k;
      let v;
      const at = line.indexOf(': ');
      if (at >= 0) {
        k = line.slice(0, at);
        v = line.slice(at + 2);
      } else if (line.endsWith(':')) {
        k = line.slice(0, -1);
        v = '';
      } else {
        throw new Error(`bad vector line ${JSON.stringify(line)}`);
      }
      if (k === 'comment') continue;
      if (k === 'kind') this.kind = v;
      else if (k === 'expect') this.expect = v;
      else this.values.set(k, [...(this.values.get(k) ?? []), v]);
    }
  }

  /** @param {string} k @returns {string[]} */
  all(k) {
    return this.values.get(k) ?? [];
  }

  /** @param {string} k @returns {boolean} */
  has(k) {
    return this.values.has(k);
  }

  /** @param {string} k @returns {string} */
  one(k) {
    const v = this.all(k);
    if (!v.length) throw new Error(`vector has no ${k}`);
    return v[0];
  }

  /** @param {string} k @returns {Uint8Array} */
  bytes(k) {
    const b = fromHex(this.all(k).join(''));
    if (!b) throw new Error(`${k} is not hex`);
    return b;
  }

  /** @param {string} k @returns {Uint8Array[]} space-separated 32-byte hashes */
  hashes(k) {
    return this.one(k).split(' ').filter((s) => s).map((h) => {
      const b = fromHex(h);
      if (!b || b.length !== 32) throw new Error(`${k}: ${h} is not a hash`);
      return b;
    });
  }
}
