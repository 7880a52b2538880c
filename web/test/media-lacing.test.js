// Laced Matroska blocks (Xiph, EBML and fixed-size lacing) are split into their frames as
// FFmpeg's demuxer splits them. FFmpeg's muxer never laces, so the test laces an FFmpeg
// file itself: the audio SimpleBlocks of each Cluster are packed two or three to a block
// (each Cluster written again with its new size).
// The laced file must give FFmpeg, and the segmenter, the very packets of the original.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir, encode, ffmpegDigest, segment, chunks, writeTo } from './media-util.js';
import { laces } from '../src/media/ebml.js';

const dir = tempDir();

/** @param {Uint8Array} d @param {number} p @returns {[number, number]} value and length */
function vint(d, p, keepMarker = false) {
  let len = 1;
  while (!(d[p] & (0x80 >> (len - 1)))) len += 1;
  let v = keepMarker ? d[p] : d[p] & (0xff >> len);
  for (let i = 1; i < len; i++) v = v * 256 + d[p + i];
  if (!keepMarker && len === 8 && d[p] === 1 && d.subarray(p + 1, p + 8).every((b) => b === 0xff)) v = -1;
  return [v, len];
}

/** An 8-byte EBML size. @param {number} n */
const size8 = (n) => {
  const b = new Uint8Array(8);
  b[0] = 0x01;
  for (let i = 7, v = n; i > 0; i--, v = Math.floor(v / 256)) b[i] = v % 256;
  return b;
};

/**
 * A laced SimpleBlock of `frames` (Uint8Arrays) for track `track` at relative time `rel`.
 * @param {number} track @param {number} rel @param {Uint8Array[]} frames @param {'xiph'|'ebml'|'fixed'} how
 */
function lacedBlock(track, rel, frames, how) {
  const head = [0x80 | track, (rel >> 8) & 0xff, rel & 0xff, 0x80 | ({ xiph: 1, fixed: 2, ebml: 3 }[how] << 1), frames.length - 1];
  const sizes = [];
  if (how === 'xiph') {
    for (const f of frames.slice(0, -1)) {
      let n = f.length;
      while (n >= 255) { sizes.push(255); n -= 255; }
      sizes.push(n);
    }
  } else if (how === 'ebml') {
    // First size unsigned in 2 bytes, then signed differences in 2 bytes (bias 8191).
    frames.slice(0, -1).forEach((f, i) => {
      const v = i === 0 ? f.length : f.length - frames[i - 1].length + 8191;
      sizes.push(0x40 | (v >> 8), v & 0xff);
    });
  }
  const body = Buffer.concat([Buffer.from(head), Buffer.from(sizes), ...frames]);
  return Buffer.concat([Buffer.from([0xa3]), size8(body.length), body]);
}

/**
 * The file with each Cluster's runs of audio SimpleBlocks laced `per` to a block; each
 * Cluster is written again with its new size.
 * @param {Uint8Array} d @param {number} audioTrack @param {number} per @param {'xiph'|'ebml'|'fixed'} how
 */
function lace(d, audioTrack, per, how) {
  const out = [];
  let merged = 0;
  let p = 0;
  while (p < d.length) {
    const [id, il] = vint(d, p, true);
    const [sz, sl] = vint(d, p + il);
    const dataAt = p + il + sl;
    if (id === 0x18538067) {
      out.push(d.subarray(p, dataAt)); // the Segment (unknown size): descend
      p = dataAt;
      continue;
    }
    const end = sz < 0 ? d.length : dataAt + sz;
    if (id !== 0x1f43b675) {
      out.push(d.subarray(p, end));
      p = end;
      continue;
    }
    const body = [];
    /** @type {{rel: number, data: Uint8Array}[]} */
    let run = [];
    const flush = () => {
      for (let i = 0; i < run.length; i += per) {
        const group = run.slice(i, i + per);
        // Fixed-size lacing can only carry frames of one size.
        const fits = how !== 'fixed' || group.every((g) => g.data.length === group[0].data.length);
        if (group.length > 1 && fits) {
          merged += 1;
          body.push(lacedBlock(audioTrack, group[0].rel, group.map((g) => g.data), how));
        } else {
          for (const g of group) body.push(simple(audioTrack, g.rel, g.data));
        }
      }
      run = [];
    };
    for (let q = dataAt; q < end; ) {
      const [cid, cil] = vint(d, q, true);
      const [csz, csl] = vint(d, q + cil);
      const cAt = q + cil + csl;
      const cEnd = cAt + csz;
      if (cid === 0xa3) {
        const [tn, tl] = vint(d, cAt);
        const flags = d[cAt + tl + 2];
        if (tn === audioTrack && (flags & 0x06) === 0) {
          const rel = (d[cAt + tl] << 8) | d[cAt + tl + 1];
          run.push({ rel: rel > 32767 ? rel - 65536 : rel, data: d.subarray(cAt + tl + 3, cEnd) });
          q = cEnd;
          continue;
        }
      }
      flush();
      body.push(d.subarray(q, cEnd));
      q = cEnd;
    }
    flush();
    const content = Buffer.concat(body);
    out.push(Buffer.from([0x1f, 0x43, 0xb6, 0x75]), size8(content.length), content);
    p = end;
  }
  return { data: new Uint8Array(Buffer.concat(out)), merged };
}

/** @param {number} track @param {number} rel @param {Uint8Array} data */
function simple(track, rel, data) {
  const body = Buffer.concat([Buffer.from([0x80 | track, (rel >> 8) & 0xff, rel & 0xff, 0x80]), data]);
  return Buffer.concat([Buffer.from([0xa3]), size8(body.length), body]);
}

/** @type {[string, string[], number, number, 'xiph'|'ebml'|'fixed'][]} */
const cases = [
  ['xiph', ['-c:a', 'libopus', '-b:a', '48k'], 2, 3, 'xiph'],
  ['ebml', ['-c:a', 'libopus', '-b:a', '48k'], 2, 2, 'ebml'],
  ['fixed', ['-c:a', 'pcm_s16le', '-frame_size', '960'], 2, 3, 'fixed'],
];

for (const [name, audio, audioTrack, per, how] of cases) {
  test(`${how} lacing: FFmpeg and the segmenter see the original's packets`, () => {
    const format = how === 'fixed' ? 'matroska' : 'webm';
    const src = encode(`${dir}/${name}.mkv`, {
      seconds: 5, video: ['-c:v', 'libvpx', '-g', '60', '-deadline', 'realtime', '-cpu-used', '8'],
      audio, format, extra: ['-live', '1', ...(how === 'fixed' ? ['-cluster_time_limit', '1000'] : [])],
    });
    const { data: laced, merged } = lace(src, audioTrack, per, how);
    assert.ok(merged > 20, `blocks were laced (${merged})`);
    const original = ffmpegDigest(writeTo(dir, `${name}-orig.mkv`, src));
    const ff = ffmpegDigest(writeTo(dir, `${name}-laced.mkv`, laced));
    assert.equal(ff.digest, original.digest, 'FFmpeg splits the laces back into the same packets');
    const mine = segment(chunks(laced, 5), { mimeType: 'video/webm' }).segments;
    const counts = mine.reduce((t, g) => t.map((n, k) => n + g.streamPackets[k]), [0, 0]);
    assert.deepEqual(counts, original.counts);
    for (const [i, g] of mine.entries()) {
      const v = ffmpegDigest(writeTo(dir, `${name}-seg${i}.mkv`, g.plaintext));
      assert.equal(Buffer.from(g.packetDigest).toString('hex'), v.digest, `segment ${i + 1}`);
    }
  });
}

test('lace sizes that do not add up are refused', () => {
  // Xiph: a first frame of 300 bytes in a block of 10.
  assert.throws(() => laces(new Uint8Array([1, 255, 45, 0, 0, 0, 0, 0, 0, 0]), 0, 1, 0), { code: 'webm.lacing.invalid' });
  // Fixed: 7 bytes do not split into 2 frames.
  assert.throws(() => laces(new Uint8Array([1, 1, 2, 3, 4, 5, 6, 7]), 0, 2, 0), { code: 'webm.lacing.invalid' });
  // EBML: a difference that makes a negative size.
  assert.throws(() => laces(new Uint8Array([2, 0x82, 0x80, 9, 9, 9]), 0, 3, 0), { code: 'webm.lacing.invalid' });
  assert.deepEqual(laces(new Uint8Array([1, 2, 9, 9, 8]), 0, 1, 0).map((f) => [...f]), [[9, 9], [8]]);
});
