// A photo as a recording of its own (container 5): the JPEG as FFmpeg made it, its size
// read from the file, and the packet digest of the whole file as one mjpeg packet, equal to
// what FFmpeg's own reading of the file gives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { tempDir, FFMPEG, ffmpegDigest } from './media-util.js';
import { photoSegment, jpegSize } from '../src/media/photo.js';

const dir = tempDir();
execFileSync(FFMPEG, ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=640x360', '-frames:v', '1', '-c:v', 'mjpeg', `${dir}/p.jpg`]);
const jpeg = new Uint8Array(readFileSync(`${dir}/p.jpg`));

test('a photo is one segment: the JPEG itself, one mjpeg packet, media times 0, cut 3', async () => {
  const { streams, segment } = await photoSegment(jpeg, { wallUs: 1_700_000_000_000_000 });
  assert.deepEqual(streams, [{
    kind: 1, codec: 'mjpeg', width: 640, height: 360, frameRateNum: 0, frameRateDen: 1,
    sampleRate: 0, channels: 0, timeBaseNum: 1, timeBaseDen: 1,
  }]);
  assert.equal(segment.plaintext, jpeg);
  assert.deepEqual(
    [segment.streamPackets, segment.videoFrames, segment.mediaStartUs, segment.mediaEndUs, segment.cut, segment.wallFirstUs, segment.wallLastUs],
    [[1], 1, 0, 0, 3, 1_700_000_000_000_000, 1_700_000_000_000_000],
  );
  const ff = ffmpegDigest(`${dir}/p.jpg`);
  assert.deepEqual(ff.counts, [1], 'FFmpeg reads the JPEG as one packet');
  assert.equal(Buffer.from(segment.packetDigest).toString('hex'), ff.digest);
});

test('the size given must be the JPEG\'s; a file that is not a JPEG is refused', async () => {
  assert.deepEqual(jpegSize(jpeg), { width: 640, height: 360 });
  await assert.doesNotReject(photoSegment(jpeg, { width: 640, height: 360, wallUs: 1 }));
  await assert.rejects(photoSegment(jpeg, { width: 1280, height: 720, wallUs: 1 }), { code: 'photo.size.mismatch' });
  await assert.rejects(photoSegment(new Uint8Array([0x89, 0x50, 0x4e, 0x47]), { wallUs: 1 }), { code: 'photo.not-jpeg' });
  await assert.rejects(photoSegment(new Uint8Array([0xff, 0xd8, 0xff, 0xd9]), { wallUs: 1 }), { code: 'photo.no-size' });
});
