// The packet digest against the format's own vectors (tests/vectors/packet-digest-*.txt,
// the bytes format/tests/vectors.rs checks the Rust digest with) and the normalisation
// rules of docs/format.md section 6.1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PacketDigester, framingFromExtradata, normalise } from '../src/media/digest.js';

const VECTORS = fileURLToPath(new URL('../../tests/vectors/', import.meta.url));
const hex = (/** @type {string} */ s) => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (/** @type {Uint8Array} */ b) => Buffer.from(b).toString('hex');

test('every packet-digest vector gives its expected digest', () => {
  const files = readdirSync(VECTORS).filter((f) => f.startsWith('packet-digest-'));
  assert.ok(files.length >= 2, 'the packet-digest vectors are there');
  for (const f of files) {
    const lines = readFileSync(VECTORS + f, 'utf8').split('\n');
    /** @type {import('../src/media/digest.js').DigestStream[]} */
    const streams = [];
    /** @type {[number, boolean, Uint8Array][]} */
    const packets = [];
    let expect = '';
    for (const line of lines) {
      const [k, ...rest] = line.split(': ');
      const v = rest.join(': ').trim().split(/\s+/);
      if (k === 'expect') expect = v[1];
      else if (k === 'stream') {
        const framing = v[2] === 'annexb' ? 'annexb' : v[2] === 'whole' ? 'whole' : /** @type {1|2|3|4} */ (Number(v[2].replace('length', '')));
        streams.push({ kind: { video: 1, audio: 2, other: 3 }[v[0]] ?? 0, codec: v[1], framing });
      } else if (k === 'packet') packets.push([Number(v[0]), v[1] === 'key', hex(v[2])]);
    }
    const d = new PacketDigester(streams);
    for (const [i, key, data] of packets) assert.ok(d.push(i, key, data));
    assert.equal(toHex(d.finish()), expect, f);
  }
});

test('framing comes from the codec configuration record', () => {
  assert.equal(framingFromExtradata('h264', hex('0164001fffe100')), 4);
  assert.equal(framingFromExtradata('h264', hex('0164001ffde100')), 2);
  assert.equal(framingFromExtradata('h264', hex('0000000167')), 'annexb');
  assert.equal(framingFromExtradata('h264', null), 'annexb');
  const hvcc = new Uint8Array(23);
  hvcc[0] = 1;
  hvcc[21] = 0x0f;
  assert.equal(framingFromExtradata('hevc', hvcc), 4);
  assert.equal(framingFromExtradata('hevc', hvcc.subarray(0, 22)), 'annexb');
  assert.equal(framingFromExtradata('vp8', hex('01')), 'whole');
});

test('H.264 keeps only slices, trailing zeros cut, key from an IDR slice', () => {
  const s = { kind: 1, codec: 'h264', framing: /** @type {'annexb'} */ ('annexb') };
  const e = normalise(s, false, hex('00000001670102' + '000001658800000000' + '0000000106ff'));
  assert.deepEqual({ form: e.form, key: e.key, units: e.units.map(toHex) }, { form: 0, key: true, units: ['6588'] });
  // Non-zero bytes before the first start code: not Annex B, hashed whole and marked.
  const bad = normalise(s, true, hex('0100000165'));
  assert.deepEqual([bad.form, bad.key, bad.units.length], [1, true, 1]);
  // A length prefix that runs past the packet.
  const lp = normalise({ ...s, framing: 4 }, false, hex('0000000965'));
  assert.equal(lp.form, 1);
});

test('HEVC keeps VCL units; IRAP types make a key', () => {
  const s = { kind: 1, codec: 'hevc', framing: /** @type {4} */ (4) };
  // VPS (32), then an IDR_W_RADL slice (19), length-prefixed.
  const e = normalise(s, false, hex('000000034001ff' + '00000003260101'));
  assert.deepEqual([e.form, e.key, e.units.map(toHex)], [0, true, ['260101']]);
});

test('AAC loses its ADTS header; a header that disagrees is opaque', () => {
  const s = { kind: 2, codec: 'aac', framing: /** @type {'whole'} */ ('whole') };
  const raw = hex('211004608c');
  const adts = hex('fff15080019ffc211004608c');
  assert.equal(toHex(normalise(s, false, adts).units[0]), toHex(raw));
  assert.equal(toHex(normalise(s, false, raw).units[0]), toHex(raw));
  assert.equal(normalise(s, false, hex('fff15080019ffc211004608c00')).form, 1);
});

test('other codecs: the whole frame; key from the container for video, 1 for audio', () => {
  const v = normalise({ kind: 1, codec: 'vp8', framing: 'whole' }, false, hex('0102'));
  const a = normalise({ kind: 2, codec: 'opus', framing: 'whole' }, false, hex('0102'));
  assert.deepEqual([v.key, a.key, toHex(v.units[0])], [false, true, '0102']);
});

test('the digest changes with a packet dropped, reordered or altered, not with interleaving', () => {
  const streams = [
    { kind: 1, codec: 'vp8', framing: /** @type {'whole'} */ ('whole') },
    { kind: 2, codec: 'opus', framing: /** @type {'whole'} */ ('whole') },
  ];
  const run = (/** @type {[number, boolean, string][]} */ ps) => {
    const d = new PacketDigester(streams);
    for (const [i, k, h] of ps) d.push(i, k, hex(h));
    return toHex(d.finish());
  };
  const base = run([[0, true, 'aa'], [1, true, '01'], [0, false, 'bb']]);
  assert.equal(run([[1, true, '01'], [0, true, 'aa'], [0, false, 'bb']]), base);
  assert.notEqual(run([[0, true, 'aa'], [1, true, '01']]), base);
  assert.notEqual(run([[0, false, 'bb'], [1, true, '01'], [0, true, 'aa']]), base);
  assert.notEqual(run([[0, true, 'aa'], [1, true, '01'], [0, false, 'bc']]), base);
  assert.notEqual(run([[0, false, 'aa'], [1, true, '01'], [0, false, 'bb']]), base, 'the VP8 key flag counts');
  assert.equal(new PacketDigester(streams).push(5, true, hex('00')), false);
});
