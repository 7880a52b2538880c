// The parsers' byte window against a plain array: any mix of chunk sizes, slices across
// chunk boundaries and drops gives the bytes the stream had at those offsets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteWindow } from '../src/media/bytes.js';
import { prng } from './media-util.js';

test('slices of a window equal the stream, across chunks, coalesced small chunks and drops', () => {
  const r = prng(42);
  const stream = new Uint8Array(400_000).map((_, i) => (i * 7 + (i >> 9)) & 0xff);
  const w = new ByteWindow();
  let fed = 0;
  let start = 0;
  while (fed < stream.length) {
    // Tiny, small and large chunks, as MediaRecorder and the tests give them.
    const kind = r();
    const n = Math.min(stream.length - fed, kind < 0.4 ? 1 + Math.floor(r() * 8) : kind < 0.8 ? Math.floor(r() * 5000) : 16384 + Math.floor(r() * 60000));
    w.append(stream.slice(fed, fed + n));
    fed += n;
    assert.equal(w.end, fed);
    for (let k = 0; k < 3 && fed > start; k++) {
      const a = start + Math.floor(r() * (fed - start));
      const b = a + Math.floor(r() * (fed - a + 1));
      assert.ok(w.has(a, b));
      assert.deepEqual(w.slice(a, b), stream.subarray(a, b), `bytes ${a}..${b}`);
    }
    if (r() < 0.3) {
      start += Math.floor(r() * (fed - start + 1));
      w.drop(start);
      assert.equal(w.start, start);
      assert.equal(w.held, fed - start);
      assert.ok(!w.has(start - 1, start));
    }
  }
  assert.throws(() => w.slice(start - 1, start + 1), RangeError);
});
