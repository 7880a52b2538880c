// The page's recorder (src/app/recorder.js) with the real Segmenter, fed real WebM made by
// /usr/bin/ffmpeg in MediaRecorder-sized chunks through a stand-in MediaRecorder, and a
// stand-in device that records what would be sealed. Checks: the type preference, the
// bitrate steps, segments sealed in order with none dropped, the recorder restarted at a
// segment boundary when the outbox grows (and its stream offset), and the end record.

import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { adapt, BITRATES, BEHIND, CALM, Capture, chooseMimeType, MIME_TYPES, SETTLE } from '../src/app/recorder.js';

const dir = mkdtempSync(join(tmpdir(), 'custody-app-recorder-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** A WebM file as a live recorder writes it (unknown sizes), keyframes every 2 s at 20 fps. */
function webm(name, seconds, size = '320x240') {
  const out = join(dir, name);
  execFileSync('ffmpeg', [
    '-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=20`, '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-t', String(seconds), '-c:v', 'libvpx', '-g', '40', '-b:v', '200k', '-c:a', 'libopus', '-live', '1', '-f', 'webm', out,
  ]);
  return new Uint8Array(readFileSync(out));
}

/** Video packets of a file, by ffprobe. */
function videoPackets(bytes, name) {
  const f = join(dir, name);
  execFileSync('sh', ['-c', `cat > ${f}`], { input: bytes });
  const out = execFileSync('ffprobe', ['-v', 'error', '-select_streams', 'v', '-count_packets', '-show_entries', 'stream=nb_read_packets', '-of', 'csv=p=0', f]);
  return Number(String(out).trim());
}

const FILES = [webm('a.webm', 9), webm('b.webm', 5), webm('c.webm', 5)];

/** Stands in for MediaRecorder: each instance plays the next file, in chunks of `chunk`
 * bytes when the test calls tick(); stop() delivers the rest, then 'stop'. */
function recorderClass(files, chunk = 4000) {
  const made = [];
  class FakeRecorder extends EventTarget {
    static isTypeSupported(t) {
      return t === 'video/webm;codecs=vp8,opus';
    }

    constructor(stream, options) {
      super();
      this.options = options;
      this.bytes = files[made.length];
      assert.ok(this.bytes, 'more recorders than files');
      this.at = 0;
      this.state = 'inactive';
      made.push(this);
    }

    start(timeslice) {
      this.timeslice = timeslice;
      this.state = 'recording';
      this.dispatchEvent(new Event('start'));
    }

    deliver(n) {
      const e = /** @type {Event & {data?: Blob}} */ (new Event('dataavailable'));
      e.data = new Blob([this.bytes.subarray(this.at, this.at + n)]);
      this.at = Math.min(this.bytes.length, this.at + n);
      this.dispatchEvent(e);
    }

    /** One timeslice's chunk; false once the file is used up. */
    tick() {
      if (this.state !== 'recording' || this.at >= this.bytes.length - chunk) return false;
      this.deliver(chunk);
      return true;
    }

    requestData() {}

    stop() {
      this.state = 'inactive';
      setTimeout(() => {
        this.deliver(this.bytes.length - this.at);
        this.dispatchEvent(new Event('stop'));
      }, 1);
    }
  }
  return { FakeRecorder, made };
}

/** Stands in for web-core's Device: records what it was asked to seal, slowly. */
function fakeDevice() {
  const dev = {
    waiting: 0,
    begun: [],
    sealed: [],
    ended: [],
    failAt: Infinity,
    status: () => ({ outbox: { count: dev.waiting, bytes: 0 } }),
    async beginRecording(h) {
      dev.begun.push(h);
      return {
        id: 'ab'.repeat(16),
        async addSegment(s) {
          await new Promise((r) => setTimeout(r, 2));
          if (dev.sealed.length >= dev.failAt) throw new DOMException('full', 'QuotaExceededError');
          dev.sealed.push(s);
          return { seq: dev.sealed.length };
        },
        async end(e) {
          dev.ended.push(e);
        },
      };
    },
  };
  return dev;
}

async function drain(capture) {
  await capture.queue;
}

test('the type is the first this browser supports, in the documented order', () => {
  assert.equal(MIME_TYPES[0], 'video/webm;codecs=vp8,opus');
  assert.equal(MIME_TYPES.at(-1), 'video/mp4');
  assert.equal(chooseMimeType(() => true), 'video/webm;codecs=vp8,opus');
  assert.equal(chooseMimeType((t) => t.startsWith('video/mp4')), 'video/mp4;codecs=avc1,mp4a');
  assert.equal(chooseMimeType((t) => t === 'video/mp4'), 'video/mp4');
  assert.equal(chooseMimeType((t) => t.includes('vp9')), 'video/webm;codecs=vp9,opus');
  assert.equal(chooseMimeType(() => { throw new Error('unknown'); }), null);
  assert.equal(chooseMimeType(() => false), null);
});

test('the bitrate steps down when the outbox is behind and back up once it drained, bounded', () => {
  assert.deepEqual(BITRATES, [1_200_000, 600_000, 300_000]);
  let s = { level: 0, since: 0, calm: 0 };
  // Behind, but not for SETTLE segments since the start: no change yet.
  for (let i = 1; i < SETTLE; i++) {
    s = adapt(s, BEHIND);
    assert.equal(s.level, 0);
  }
  s = adapt(s, BEHIND);
  assert.equal(s.level, 1);
  for (let i = 0; i < 20; i++) s = adapt(s, BEHIND + 10);
  assert.equal(s.level, 2, 'never below the lowest step');
  // One calm segment is not enough; CALM in a row are.
  s = adapt(s, 0);
  assert.equal(s.level, 2);
  for (let i = 1; i < CALM; i++) s = adapt(s, 1);
  assert.equal(s.level, 1);
  for (let i = 0; i < 40; i++) s = adapt(s, 0);
  assert.equal(s.level, 0, 'back to the top, and no higher');
  // A busy outbox in between resets the calm count.
  s = { level: 1, since: 10, calm: CALM - 1 };
  s = adapt(s, 2);
  assert.equal(s.level, 1);
  assert.equal(s.calm, 0);
});

test('every chunk reaches a sealed segment, in order, and stop writes the end record', async () => {
  const { FakeRecorder, made } = recorderClass([FILES[0]]);
  const dev = fakeDevice();
  let now = 0;
  const capture = new Capture({ device: dev, stream: /** @type {any} */ ({}), Recorder: /** @type {any} */ (FakeRecorder), monoMs: () => now, wallUs: () => 1e15 + now * 1000 });
  capture.start();
  assert.equal(made.length, 1);
  assert.equal(made[0].timeslice, 1000);
  assert.equal(made[0].options.videoBitsPerSecond, 1_200_000);
  assert.equal(made[0].options.videoKeyFrameIntervalDuration, 2000);
  assert.equal(made[0].options.mimeType, 'video/webm;codecs=vp8,opus');
  while (made[0].tick()) now += 100;
  await drain(capture);
  await capture.stop({ reason: 1 });
  assert.equal(dev.begun.length, 1);
  assert.equal(dev.begun[0].container, 3);
  assert.equal(dev.begun[0].origin, 'live');
  assert.deepEqual(dev.begun[0].streams.map((s) => [s.kind, s.codec]), [[1, 'vp8'], [2, 'opus']]);
  assert.ok(dev.sealed.length >= 3, `${dev.sealed.length} segments from 9 s`);
  assert.deepEqual(dev.ended, [{ reason: 1 }]);
  // In order, continuous, each a WebM file of its own; the last one final.
  for (let i = 0; i < dev.sealed.length; i++) {
    const s = dev.sealed[i];
    assert.deepEqual([...s.plaintext.subarray(0, 4)], [0x1a, 0x45, 0xdf, 0xa3], `segment ${i + 1} is a WebM file`);
    if (i > 0) assert.equal(s.mediaStartUs, dev.sealed[i - 1].mediaEndUs, `segment ${i + 1} follows on`);
    assert.equal(s.cut, i === dev.sealed.length - 1 ? 3 : 1);
  }
  // Not a frame dropped: the segments' video frames are the file's.
  const frames = dev.sealed.reduce((n, s) => n + s.videoFrames, 0);
  assert.equal(frames, videoPackets(FILES[0], 'a-count.webm'));
  assert.equal(capture.stats.segments.length, dev.sealed.length);
  assert.equal(capture.state, 'ended');
});

test('a growing outbox restarts the recorder at a lower bitrate at a segment boundary, on the same timeline', async () => {
  const { FakeRecorder, made } = recorderClass(FILES);
  const dev = fakeDevice();
  let now = 0;
  const capture = new Capture({ device: dev, stream: /** @type {any} */ ({}), Recorder: /** @type {any} */ (FakeRecorder), monoMs: () => now, wallUs: () => 1e15 + now * 1000 });
  dev.waiting = BEHIND + 2; // the uplink is behind from the start
  capture.start();
  for (let i = 0; i < 600 && made.length < 2; i++) {
    // While the old recorder stops (its 'stop' event comes later), nothing to deliver.
    if (made.at(-1).tick()) now += 100;
    await drain(capture);
    await new Promise((r) => setTimeout(r, 3));
  }
  assert.equal(made.length, 2, 'the recorder was restarted');
  assert.equal(made[1].options.videoBitsPerSecond, 600_000);
  assert.ok(dev.sealed.length >= SETTLE, 'not before SETTLE segments');
  const before = dev.sealed.length;
  while (made[1].tick()) now += 100;
  await drain(capture);
  await capture.stop({ reason: 2, message: 'the page went to the background' });
  assert.deepEqual(dev.ended, [{ reason: 2, message: 'the page went to the background' }]);
  assert.equal(dev.begun.length, 1, 'one recording across both recorder streams');
  // The old stream's last segment is not final; the new stream starts at its offset.
  const offset = capture.stats.streams[1].offsetUs;
  assert.ok(offset > 0);
  const firstNew = dev.sealed.findIndex((s) => s.mediaStartUs === offset);
  assert.ok(firstNew >= before - 1 && firstNew > 0, `a segment starts at the new stream's offset ${offset}`);
  assert.notEqual(dev.sealed[firstNew - 1].cut, 3);
  assert.equal(dev.sealed.at(-1).cut, 3);
  const frames = dev.sealed.reduce((n, s) => n + s.videoFrames, 0);
  const fed = videoPackets(FILES[0].subarray(0, made[0].at), 'a-part.webm') + videoPackets(FILES[1], 'b-count.webm');
  assert.equal(frames, fed, 'every frame of both streams was sealed');
});

test('a full quota stops the recording, keeps what was sealed and says why', async () => {
  const { FakeRecorder, made } = recorderClass([FILES[0]]);
  const dev = fakeDevice();
  dev.failAt = 2;
  let now = 0;
  const capture = new Capture({ device: dev, stream: /** @type {any} */ ({}), Recorder: /** @type {any} */ (FakeRecorder), monoMs: () => now });
  capture.start();
  for (let i = 0; i < 400 && made[0].tick(); i++) {
    now += 100;
    await drain(capture);
  }
  await drain(capture);
  await capture.stop();
  assert.equal(capture.error?.name, 'QuotaExceededError');
  assert.equal(dev.sealed.length, 2, 'the two sealed before the quota stay, none after');
  assert.equal(dev.ended.length, 1);
  assert.equal(dev.ended[0].reason, 3);
  assert.equal(capture.state, 'ended');
});

test('a stream refused at its end still hands over the segments completed before it', async () => {
  const { Segmenter } = await import('../src/media/segmenter.js');
  const { endStreamKeeping } = await import('../src/app/recorder.js');
  const seg = new Segmenter({ mimeType: 'video/webm;codecs=vp8,opus' });
  const complete = seg.push(FILES[0], 1);
  // A Cluster ID followed by a size no recorder writes: the stream is refused there.
  const damaged = seg.push(new Uint8Array([0x1f, 0x43, 0xb6, 0x75, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]), 2);
  const { segments, error } = endStreamKeeping(seg, 3, true);
  assert.ok(error, 'the damaged tail is refused');
  const all = [...complete, ...damaged, ...segments];
  assert.ok(all.length >= 4, `9 s at 2 s keyframes gives at least 4 segments, got ${all.length}`);
  const sealed = all.reduce((n, s) => n + s.videoFrames, 0);
  assert.equal(sealed, videoPackets(FILES[0], 'a-check.webm'), 'every video frame of the intact stream is in a segment');
});
