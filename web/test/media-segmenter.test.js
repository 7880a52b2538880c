// The Segmenter across recorder restarts, and what it does with input that is not what it
// claims: a clear MediaError, never a hang or unbounded buffering.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir, encode, chunks, prng, ffmpegDigest, writeTo } from './media-util.js';
import { Segmenter, containerOf } from '../src/media/segmenter.js';
import { WebmParser } from '../src/media/webm.js';
import { Mp4Parser } from '../src/media/mp4.js';
import { MediaError } from '../src/media/bytes.js';

const dir = tempDir();
const vp8 = ['-c:v', 'libvpx', '-g', '60', '-b:v', '200k', '-deadline', 'realtime', '-cpu-used', '8'];
const opus = ['-c:a', 'libopus', '-b:a', '32k'];
const webmA = encode(`${dir}/a.webm`, { seconds: 5, video: vp8, audio: opus, format: 'webm', extra: ['-live', '1'] });
const webmB = encode(`${dir}/b.webm`, { seconds: 3, video: vp8, audio: opus, format: 'webm', extra: ['-live', '1'] });
const mp4 = encode(`${dir}/c.mp4`, {
  seconds: 5, video: ['-c:v', 'libx264', '-preset', 'ultrafast', '-g', '60'], audio: ['-c:a', 'aac'], format: 'mp4',
  extra: ['-movflags', 'frag_keyframe+empty_moov+default_base_moof'],
});

test('the container code comes from the mimeType', () => {
  assert.equal(containerOf('video/webm;codecs=vp8,opus'), 3);
  assert.equal(containerOf('audio/webm'), 3);
  assert.equal(containerOf('video/x-matroska;codecs=avc1,opus'), 3, 'what Chromium reports for webm;codecs=h264');
  assert.equal(containerOf('video/mp4; codecs="avc1.42E01E, mp4a.40.2"'), 4);
  assert.throws(() => containerOf('video/ogg'), { code: 'segmenter.mimetype' });
});

test('a restarted recorder continues the recording at its offset, each segment with its own stream\'s init', () => {
  const s = new Segmenter({ mimeType: 'video/webm' });
  const segs = [];
  chunks(webmA, 11).forEach((c, k) => segs.push(...s.push(c, 1000 + k)));
  const firstStream = s.endStream(5000, { final: false });
  segs.push(...firstStream);
  assert.equal(firstStream[firstStream.length - 1].cut, 1, 'a restart is not the end of the recording');
  s.newStream(5_200_000);
  chunks(webmB, 12).forEach((c, k) => segs.push(...s.push(c, 6000 + k)));
  segs.push(...s.endStream(9000));
  assert.equal(segs[segs.length - 1].cut, 3);
  const restart = segs.findIndex((g) => g.wallFirstUs >= 6000);
  assert.ok(restart > 0);
  assert.equal(segs[restart].mediaStartUs, 5_200_000, 'the new stream starts at its offset');
  assert.ok(segs[restart - 1].mediaEndUs <= 5_200_000);
  for (const [i, g] of segs.entries()) {
    const f = writeTo(dir, `restart-${i}.webm`, g.plaintext);
    const v = ffmpegDigest(f);
    assert.equal(Buffer.from(g.packetDigest).toString('hex'), v.digest, `segment ${i + 1}`);
    assert.deepEqual(g.streamPackets, v.counts);
  }
  assert.equal(s.streams?.length, 2);
});

test('a recorder stopped before its first byte ends with no segment and no error', () => {
  const s = new Segmenter({ mimeType: 'video/webm' });
  s.push(new Uint8Array(0), 1);
  assert.deepEqual(s.endStream(2), []);
  assert.ok(s.push(webmB, 3).length >= 1);
});

test('newStream while a stream is open is refused (its data would be lost)', () => {
  const s = new Segmenter({ mimeType: 'video/webm' });
  s.push(webmB.subarray(0, 1000), 1);
  assert.throws(() => s.newStream(0), { code: 'segmenter.stream.open' });
});

test('a stream pushed after endStream without newStream starts where the last one ended', () => {
  const s = new Segmenter({ mimeType: 'video/webm' });
  const a = [...s.push(webmB, 1), ...s.endStream(2, { final: false })];
  const b = [...s.push(webmB, 3), ...s.endStream(4)];
  assert.equal(b[0].mediaStartUs, a[a.length - 1].mediaEndUs);
});

test('a restarted recorder with other codecs is refused', () => {
  const audioOnly = encode(`${dir}/audio.webm`, { seconds: 2, video: ['-vn'], audio: opus, format: 'webm', extra: ['-live', '1'] });
  const s = new Segmenter({ mimeType: 'video/webm' });
  s.push(webmB, 1);
  s.endStream(2, { final: false });
  s.newStream(3_000_000);
  assert.throws(() => s.push(audioOnly, 3), { code: 'segmenter.tracks.changed' });
});

test('a stream cut off mid-element is refused at its end, not hung on', () => {
  for (const [data, mime, code] of [[webmA, 'video/webm', 'webm.truncated'], [mp4, 'video/mp4', 'mp4.truncated']]) {
    const s = new Segmenter({ mimeType: /** @type {string} */ (mime) });
    const cut = /** @type {Uint8Array} */ (data).subarray(0, Math.floor(/** @type {Uint8Array} */ (data).length * 0.6) + 3);
    const done = s.push(cut, 1);
    assert.ok(done.length >= 1, `${mime}: segments completed before the cut are given`);
    assert.throws(() => s.endStream(2), { code });
  }
});

test('segments completed before a refusal are given; the refusal comes next, until newStream', () => {
  const s = new Segmenter({ mimeType: 'video/webm' });
  // A whole stream, then garbage where the next element should begin, in one chunk.
  const done = s.push(new Uint8Array(Buffer.concat([webmA, new Uint8Array(64)])), 2);
  assert.ok(done.length >= 1, 'the segments the chunk completed before the garbage');
  assert.throws(() => s.push(webmA, 3), { code: 'webm.id.invalid' });
  assert.throws(() => s.endStream(4), { code: 'webm.id.invalid' });
  s.newStream(9_000_000);
  const again = [...s.push(webmB, 5), ...s.endStream(6)];
  assert.ok(again.length >= 1 && again[0].mediaStartUs === 9_000_000, 'a new stream after the refusal records again');
  const t = new Segmenter({ mimeType: 'video/webm' });
  const some = t.push(webmA.subarray(0, Math.floor(webmA.length * 0.6)), 1);
  let thrown = null;
  try {
    t.endStream(2);
  } catch (e) {
    thrown = e;
  }
  assert.equal(thrown?.code, 'webm.truncated');
  assert.ok(Array.isArray(thrown.segments), 'endStream gives what it completed with its error');
  assert.ok(some.length + thrown.segments.length >= 1);
});

test('the wrong container for the mimeType is refused at once', () => {
  assert.throws(() => new Segmenter({ mimeType: 'video/mp4' }).push(webmA.subarray(0, 100), 1), { code: 'mp4.not-mp4' });
  assert.throws(() => new Segmenter({ mimeType: 'video/webm' }).push(mp4.subarray(0, 100), 1), { code: 'webm.not-webm' });
});

test('an element claiming an absurd size is refused without waiting for it', () => {
  const p = new WebmParser();
  const init = webmA.subarray(0, Buffer.from(webmA).indexOf(Buffer.from([0x1f, 0x43, 0xb6, 0x75])));
  p.push(init);
  // A Cluster holding a SimpleBlock that claims 2^40 bytes.
  const huge = new Uint8Array([0x1f, 0x43, 0xb6, 0x75, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xe7, 0x81, 0x00, 0xa3, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00]);
  // The Cluster's start is still reported; the refusal is kept and thrown from then on.
  assert.deepEqual(p.push(huge).map((e) => e.type), ['start']);
  assert.equal(p.failed?.code, 'webm.size.absurd');
  assert.throws(() => p.push(new Uint8Array(1)), { code: 'webm.size.absurd' }, 'the parser stays failed');
  const m = new Mp4Parser();
  m.push(mp4.subarray(0, Buffer.from(mp4).indexOf('moof') - 4));
  assert.throws(() => m.push(new Uint8Array([0x7f, 0xff, 0xff, 0xff, 0x6d, 0x6f, 0x6f, 0x66])), { code: 'mp4.size.absurd' });
});

test('a Cluster that never ends is refused once it passes its bound', () => {
  const p = new WebmParser({ maxClusterBytes: 1 << 20 });
  const start = Buffer.from(webmA).indexOf(Buffer.from([0x1f, 0x43, 0xb6, 0x75]));
  p.push(webmA.subarray(0, start));
  p.push(new Uint8Array([0x1f, 0x43, 0xb6, 0x75, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xe7, 0x81, 0x00]));
  // Void elements forever inside an unknown-size Cluster: held, because the Cluster is.
  const voids = new Uint8Array(64 * 1024);
  for (let i = 0; i < voids.length; i += 1024) voids.set([0xec, 0x43, 0xfd], i);
  assert.throws(() => { for (let i = 0; i < 64; i++) p.push(voids); }, { code: 'webm.cluster.too-large' });
});

test('mutated streams give segments or a MediaError, never another exception or a hang', () => {
  const r = prng(99);
  const inputs = [[webmA, 'video/webm'], [mp4, 'video/mp4']];
  let refused = 0;
  const t0 = Date.now();
  for (let n = 0; n < 120; n++) {
    const [src, mime] = inputs[n % 2];
    const data = /** @type {Uint8Array} */ (src).slice();
    const flips = 1 + Math.floor(r() * 8);
    for (let k = 0; k < flips; k++) {
      // Mostly near the start, where the structure is.
      const at = Math.floor(r() ** 3 * data.length);
      data[at] = Math.floor(r() * 256);
    }
    const s = new Segmenter({ mimeType: /** @type {string} */ (mime) });
    try {
      for (const c of chunks(data, n, 1, 32768)) s.push(c, 0);
      s.endStream(0);
    } catch (e) {
      assert.ok(e instanceof MediaError, `mutation ${n}: ${e}`);
      assert.match(e.code, /^(webm|mp4|segmenter)\./);
      refused += 1;
    }
  }
  assert.ok(refused > 0, 'some mutations are refused');
  assert.ok(Date.now() - t0 < 60_000, 'in bounded time');
});

test('a stream cut at any byte of its head is refused with a MediaError or gives whole segments', () => {
  for (const [data, mime] of [[webmB, 'video/webm'], [mp4, 'video/mp4']]) {
    const d = /** @type {Uint8Array} */ (data);
    for (let n = 0; n < 3000; n += 7) {
      const s = new Segmenter({ mimeType: /** @type {string} */ (mime) });
      try {
        s.push(d.subarray(0, n), 0);
        s.endStream(0);
      } catch (e) {
        assert.ok(e instanceof MediaError, `${mime} cut at ${n}: ${e}`);
        assert.match(e.code, /truncated|not-/);
      }
    }
  }
});
