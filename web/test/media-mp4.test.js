// Fragmented MP4 cut into self-contained segments, checked against real FFmpeg: files made
// the way Safari's MediaRecorder writes them (`-movflags frag_keyframe+empty_moov+
// default_base_moof`: an init with no samples, then moof+mdat fragments) with H.264 (and
// HEVC) video and AAC or Opus audio.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir, encoders, encode, checkSegments } from './media-util.js';

const dir = tempDir();
const have = encoders();
const frag = ['-movflags', 'frag_keyframe+empty_moov+default_base_moof'];
const x264 = ['-c:v', 'libx264', '-preset', 'ultrafast', '-g', '60'];

/** @type {[string, string[], string[], string[]][]} name, video, audio, extra */
const cases = [
  ['h264-aac', x264, ['-c:a', 'aac', '-b:a', '64k'], frag],
  ['h264-opus', x264, ['-c:a', 'libopus', '-b:a', '32k'], frag],
  // B-frames reorder presentation: composition offsets in trun.
  ['h264-bframes-aac', ['-c:v', 'libx264', '-preset', 'fast', '-g', '60', '-bf', '2'], ['-c:a', 'aac'], frag],
  // Fragments every 0.5 s as well as at keyframes: not every fragment is key-led.
  ['h264-halfsecond', x264, ['-c:a', 'aac'], ['-movflags', 'frag_keyframe+empty_moov+default_base_moof', '-frag_duration', '500000']],
];
if (have.has('libx265')) {
  cases.push(['hevc-aac', ['-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', 'keyint=60:min-keyint=60:log-level=error', '-tag:v', 'hvc1'], ['-c:a', 'aac'], frag]);
}

for (const [name, video, audio, extra] of cases) {
  test(`${name}: fragments make segments that start at sync samples, decode alone and digest as FFmpeg reads them`, () => {
    const data = encode(`${dir}/${name}-src.mp4`, { video, audio, format: 'mp4', extra });
    const { segments, segmenter } = checkSegments(assert, data, {
      mimeType: 'video/mp4', ext: 'mp4', dir, name, frameRate: 30, tinyChunks: name === 'h264-opus',
    });
    assert.ok(segments.slice(0, -1).every((g) => g.cut === 1));
    const streams = segmenter.streams ?? [];
    assert.equal(streams[0].kind, 1);
    assert.equal(streams[0].width, 320);
    assert.equal(streams[1].kind, 2);
    assert.equal(streams[1].sampleRate, 48000);
    assert.equal(streams[0].timeBaseNum, 1);
  });
}

test('sparse sync samples: a segment is cut at a fragment start once maxMs pass (cut 2)', () => {
  const data = encode(`${dir}/sparse.mp4`, {
    seconds: 9, video: ['-c:v', 'libx264', '-preset', 'ultrafast', '-g', '300'], audio: ['-c:a', 'aac'], format: 'mp4',
    extra: ['-movflags', 'frag_keyframe+empty_moov+default_base_moof', '-frag_duration', '1000000'],
  });
  const { segments } = checkSegments(assert, data, { mimeType: 'video/mp4', ext: 'mp4', dir, name: 'sparse', frameRate: 30, maxMs: 4000 });
  assert.equal(segments[0].cut, 2);
});

test('the init alone in the first chunk (as Chromium\'s MP4 mode sends it) gives the streams and no segment', async () => {
  const { Segmenter } = await import('../src/media/segmenter.js');
  const data = encode(`${dir}/initonly.mp4`, { seconds: 3, video: x264, audio: ['-c:a', 'libopus'], format: 'mp4', extra: frag });
  const moof = Buffer.from(data).indexOf('moof') - 4;
  const s = new Segmenter({ mimeType: 'video/mp4;codecs=avc1,opus' });
  assert.deepEqual(s.push(data.subarray(0, moof), 1), []);
  assert.deepEqual(s.streams?.map((t) => t.codec), ['h264', 'opus']);
  assert.equal(s.container, 4);
  const rest = [...s.push(data.subarray(moof), 2), ...s.endStream(3)];
  assert.ok(rest.length >= 1);
  assert.equal(rest[0].wallFirstUs, 2);
});
