// WebM (and Matroska) cut into self-contained segments, checked against real FFmpeg: files
// made by /usr/bin/ffmpeg the way MediaRecorder writes them (`-live 1`: unknown-size
// Segment and Clusters) and the way FFmpeg itself does (known sizes, SeekHead, Cues).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir, encoders, encode, checkSegments, decodeErrors } from './media-util.js';

const dir = tempDir();
const have = encoders();
const opus = ['-c:a', 'libopus', '-b:a', '32k'];

/** @type {[string, string[], string, boolean][]} name, video args, format, live */
const cases = [
  ['vp8-live', ['-c:v', 'libvpx', '-g', '60', '-b:v', '300k', '-deadline', 'realtime', '-cpu-used', '8'], 'webm', true],
  ['vp8-sized', ['-c:v', 'libvpx', '-g', '60', '-b:v', '300k', '-deadline', 'realtime', '-cpu-used', '8'], 'webm', false],
  ['vp9-live', ['-c:v', 'libvpx-vp9', '-g', '60', '-b:v', '300k', '-deadline', 'realtime', '-cpu-used', '8', '-row-mt', '0'], 'webm', true],
  ['h264-mkv', ['-c:v', 'libx264', '-preset', 'ultrafast', '-g', '60'], 'matroska', true],
];
if (have.has('libsvtav1')) cases.push(['av1-live', ['-c:v', 'libsvtav1', '-preset', '12', '-g', '60'], 'webm', true]);
else if (have.has('libaom-av1')) cases.push(['av1-live', ['-c:v', 'libaom-av1', '-cpu-used', '8', '-usage', 'realtime', '-g', '60'], 'webm', true]);

for (const [name, video, format, live] of cases) {
  test(`${name}: segments start at keyframes, decode alone and digest as FFmpeg reads them`, () => {
    const data = encode(`${dir}/${name}-src.${format === 'webm' ? 'webm' : 'mkv'}`, {
      video, audio: opus, format, extra: live ? ['-live', '1'] : [],
    });
    const { segments } = checkSegments(assert, data, {
      mimeType: 'video/webm;codecs=vp8,opus', ext: format === 'webm' ? 'webm' : 'mkv', dir, name, frameRate: 30,
      tinyChunks: name === 'vp8-live',
    });
    assert.ok(segments.slice(0, -1).every((g) => g.cut === 1), `${name}: keyframes every 2 s give cut 1`);
  });
}

test('sparse keyframes: a segment is cut at a Cluster start once maxMs pass (cut 2)', () => {
  const data = encode(`${dir}/sparse.webm`, {
    seconds: 9,
    video: ['-c:v', 'libvpx', '-g', '300', '-b:v', '200k', '-deadline', 'realtime', '-cpu-used', '8'],
    audio: opus, format: 'webm', extra: ['-live', '1', '-cluster_time_limit', '1000'],
  });
  const { segments, views } = checkSegments(assert, data, { mimeType: 'video/webm', ext: 'webm', dir, name: 'sparse', frameRate: 30, maxMs: 4000 });
  assert.equal(segments[0].cut, 2);
  assert.ok(!views[1].video[0].key, 'the segment after a forced cut begins between keyframes');
  assert.notEqual(decodeErrors(views[1].file), '', 'so it does not decode alone (the decode check can fail)');
  const first = segments[0];
  assert.ok(first.mediaEndUs - first.mediaStartUs < 5_100_000, 'cut at the first Cluster start after 4 s');
});

test('audio only: every Cluster may begin a segment', () => {
  const data = encode(`${dir}/audio.webm`, {
    seconds: 7, video: ['-vn'], audio: opus, format: 'webm', extra: ['-live', '1', '-cluster_time_limit', '1000'],
  });
  const { segments, segmenter } = checkSegments(assert, data, { mimeType: 'audio/webm', ext: 'webm', dir, name: 'audio', frameRate: 30 });
  assert.deepEqual(segmenter.streams?.map((s) => [s.kind, s.codec, s.sampleRate, s.channels]), [[2, 'opus', 48000, 1]]);
  assert.ok(segments.every((g) => g.videoFrames === 0));
});
