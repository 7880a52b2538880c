// The optional record fields of docs/format.md 4.1 and 4.3 (header tag 16 `rotation`, tag 17
// `dropped_streams`; end record tag 11 `source_duration_us`) through the page's record.js,
// beyond what the shared vectors show (tests/vectors/record-header-rotation-*.txt and
// record-end-source-duration.txt, judged in core-vectors.test.js): absent fields are not
// written and do not appear when read back, an upright rotation (0) is written when set, an
// empty list of dropped streams is not written, and every rotation but a quarter turn is
// refused, as format/src/record.rs's unit tests show for the Rust side.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

import { decodeRecord, encodeRecord, parseSignedRecord } from '../src/format/record.js';
import { VectorFile } from '../src/format/vectors.js';

const vectors = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tests', 'vectors');

/**
 * A record as Rust wrote it in a vector file.
 * @param {string} name
 */
function vectorRecord(name) {
  const v = new VectorFile(readFileSync(join(vectors, `${name}.txt`), 'utf8'));
  return parseSignedRecord(v.bytes('data')).record;
}

/** @param {import('../src/format/record.js').Record} rec */
const codeOf = (rec) => {
  try {
    decodeRecord(encodeRecord(rec));
    return 'ok';
  } catch (e) {
    return /** @type {{code?: string}} */ (e).code ?? String(e);
  }
};

test('a header without rotation or dropped streams is written and read back without them', () => {
  const h = vectorRecord('record-header-valid');
  assert.equal(h.type, 'header');
  assert.ok(!('rotation' in h) && !('droppedStreams' in h), 'absent fields are absent');
  const again = decodeRecord(encodeRecord(h));
  assert.deepEqual(again, h);
  assert.ok(!('rotation' in again) && !('droppedStreams' in again));
});

test('rotation and dropped streams round-trip; upright is written when set, no dropped streams is not', () => {
  const plain = vectorRecord('record-header-valid');
  if (plain.type !== 'header') throw new Error('not a header');
  const base = encodeRecord(plain).length;
  const turned = vectorRecord('record-header-rotation-dropped');
  if (turned.type !== 'header') throw new Error('not a header');
  assert.equal(turned.rotation, 90);
  assert.deepEqual(turned.droppedStreams, [{ kind: 3, codec: 'mov_text' }, { kind: 2, codec: 'opus' }]);
  assert.deepEqual(decodeRecord(encodeRecord(turned)), turned);
  // tag + length + u16
  assert.equal(encodeRecord({ ...plain, rotation: 0 }).length, base + 7);
  const upright = decodeRecord(encodeRecord({ ...plain, rotation: 0 }));
  assert.equal(upright.type === 'header' ? upright.rotation : null, 0, 'upright stays written');
  assert.equal(encodeRecord({ ...plain, droppedStreams: [] }).length, base);
});

test('only 0, 90, 180 and 270 are rotations: any other is invalid-value', () => {
  const plain = vectorRecord('record-header-valid');
  if (plain.type !== 'header') throw new Error('not a header');
  for (const rotation of [0, 90, 180, 270]) assert.equal(codeOf({ ...plain, rotation }), 'ok', `${rotation}`);
  for (const rotation of [1, 45, 89, 91, 360, 65535]) assert.equal(codeOf({ ...plain, rotation }), 'invalid-value', `${rotation}`);
  assert.throws(() => encodeRecord({ ...plain, rotation: 65536 }), RangeError);
});

test('a dropped stream of an unknown kind is invalid-value', () => {
  const plain = vectorRecord('record-header-valid');
  if (plain.type !== 'header') throw new Error('not a header');
  assert.equal(codeOf({ ...plain, droppedStreams: [{ kind: 4, codec: 'tmcd' }] }), 'invalid-value');
  assert.equal(codeOf({ ...plain, droppedStreams: [{ kind: 3, codec: 'tmcd' }] }), 'ok');
});

test('an end record carries the source duration only when set', () => {
  const end = vectorRecord('record-end-valid');
  if (end.type !== 'end') throw new Error('not an end record');
  assert.ok(!('sourceDurationUs' in end));
  const withSource = vectorRecord('record-end-source-duration');
  if (withSource.type !== 'end') throw new Error('not an end record');
  assert.equal(withSource.sourceDurationUs, 12_000_000n);
  assert.equal(encodeRecord(withSource).length, encodeRecord(end).length + 13);
  assert.deepEqual(decodeRecord(encodeRecord(withSource)), withSource);
});
