// A restarted recorder whose muxer lists its tracks the other way round (Chromium lists a
// track when its encoder first gives output: audio first in one stream, video first in the
// next, as measured here) is the same recording: its segments count and digest their
// streams in the canonical order of format.md 6.4 (video, then audio), so they equal the
// segments of the same packets listed video first.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Segmenter } from '../src/media/segmenter.js';

const dir = mkdtempSync(join(tmpdir(), 'custody-media-order-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** @param {string[]} args */
function ffmpeg(args) {
  execFileSync('ffmpeg', ['-v', 'error', '-y', ...args]);
}

function webm(name, seconds) {
  const out = join(dir, name);
  ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=20', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-t', String(seconds), '-c:v', 'libvpx', '-g', '40', '-b:v', '200k', '-c:a', 'libopus', '-live', '1', '-f', 'webm', out]);
  return out;
}

/** The same packets with the audio track listed first. */
function audioFirst(src, name) {
  const out = join(dir, name);
  ffmpeg(['-i', src, '-map', '0:a', '-map', '0:v', '-c', 'copy', '-live', '1', '-f', 'webm', out]);
  return out;
}

function run(files) {
  const seg = new Segmenter({ mimeType: 'video/webm;codecs=vp8,opus' });
  const out = [];
  files.forEach((f, i) => {
    if (i > 0) seg.newStream(i * 10_000_000);
    out.push(...seg.push(new Uint8Array(readFileSync(f)), i));
    out.push(...seg.endStream(i, { final: i === files.length - 1 }));
  });
  return { streams: seg.streams, segments: out };
}

test('a restarted recorder that lists audio first gives the segments of the same packets listed video first', () => {
  const first = webm('first.webm', 5);
  const second = webm('second.webm', 5);
  const plain = run([first, second]);
  const swapped = run([first, audioFirst(second, 'second-audio-first.webm')]);
  assert.deepEqual(plain.streams?.map((s) => s.kind), [1, 2], 'the header lists video, then audio');
  assert.equal(swapped.segments.length, plain.segments.length);
  assert.ok(plain.segments.length >= 4);
  plain.segments.forEach((s, i) => {
    const t = swapped.segments[i];
    assert.deepEqual(t.streamPackets, s.streamPackets, `segment ${i + 1}: counts`);
    assert.equal(t.videoFrames, s.videoFrames, `segment ${i + 1}: frames`);
    assert.deepEqual(t.packetDigest, s.packetDigest, `segment ${i + 1}: packet digest`);
  });
});

test('a file that lists audio first is counted video first from its first stream on', () => {
  const swapped = run([audioFirst(webm('only.webm', 3), 'only-audio-first.webm')]);
  assert.deepEqual(swapped.streams?.map((s) => s.kind), [1, 2]);
  for (const s of swapped.segments) assert.ok(s.streamPackets[0] < s.streamPackets[1], 'at 20 fps, fewer video frames than 20 ms Opus packets');
});
