// Real MediaRecorder output from Debian's Chromium (fake camera at 20 fps and fake
// microphone, `start(1000)`, `videoKeyFrameIntervalDuration: 2000`): the chunks exactly as
// `dataavailable` delivered them, cut into segments that must pass every check the
// FFmpeg-made files pass. Skipped where Chromium is not installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir, checkSegments } from './media-util.js';
import { recordInChromium, haveChromium } from './media-chromium.js';
import { skipUnless } from './require.js';

const dir = tempDir();

// What this Chromium records (the web page's choices and what Chromium falls back to):
// plain `video/mp4` gives VP9 and Opus; `webm;codecs=h264` is reported as
// `video/x-matroska;codecs=avc1,opus`; MP4 with AAC is not offered.
const kinds = [
  'video/webm;codecs=vp8,opus', 'video/webm;codecs=vp9,opus', 'video/webm;codecs=av1,opus',
  'video/webm;codecs=h264,opus', 'video/mp4', 'video/mp4;codecs=avc1,opus',
];
for (const mimeType of kinds) {
  test(`Chromium's MediaRecorder, ${mimeType}: segments of about 2 s from keyframes, nothing lost at a boundary`, { skip: skipUnless(haveChromium, 'no Chromium here') }, async (t) => {
    const { mimeType: used, chunks } = await recordInChromium({ mimeType, seconds: 6 });
    const data = new Uint8Array(Buffer.concat(chunks));
    const name = used.replace(/[^a-z0-9]+/gi, '-');
    const { segments, segmenter, views } = checkSegments(assert, data, {
      mimeType: used, ext: used.includes('mp4') ? 'mp4' : 'webm', dir, name, frameRate: 20, parts: chunks,
      recorderGaps: true,
    });
    // checkSegments proved the frames either side of each boundary are neighbours in the
    // recording (the segmenter loses nothing). A gap above 1.5 frame durations there could
    // still come from the recorder itself (Chromium drops frames when the machine is
    // loaded); it is reported, the figure issue 14 asks for (target 0).
    const pts = (/** @type {{pts: number}[]} */ v) => v.map((p) => p.pts);
    let gaps = 0;
    for (let i = 0; i + 1 < views.length; i++) {
      const a = pts(views[i].video);
      const b = pts(views[i + 1].video);
      if (a.length && b.length && Math.min(...b) - Math.max(...a) > 1.5 / 20) gaps += 1;
    }
    t.diagnostic(`${used}: ${segments.length} segments; boundaries with a gap above 1.5 frames: ${gaps} of ${segments.length - 1}`);
    assert.ok(segments.length >= 3, `${used}: ${segments.length} segments of 6 s`);
    for (const g of segments.slice(0, -1)) {
      assert.equal(g.cut, 1, `${used}: keyframes every ~2 s give cut 1`);
      assert.ok(g.mediaEndUs - g.mediaStartUs < 3_500_000, `${used}: about 2 s (${g.mediaEndUs - g.mediaStartUs} us)`);
    }
    assert.deepEqual(segmenter.streams?.map((s) => s.kind).sort(), [1, 2]);
  });
}
