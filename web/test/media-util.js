// Helpers for the media tests: real FFmpeg into a temp dir, seeded chunking, and an
// account of a file's packets taken from FFmpeg alone (ffprobe for sizes, flags, times and
// extradata; `ffmpeg -c copy -f data` for the bytes), so the digest the tests compare with
// does not depend on the parsers under test.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PacketDigester, framingFromExtradata } from '../src/media/digest.js';
import { Segmenter } from '../src/media/segmenter.js';

export const FFMPEG = '/usr/bin/ffmpeg';
export const FFPROBE = '/usr/bin/ffprobe';

/** A temp dir removed when the process exits. */
export function tempDir() {
  const dir = mkdtempSync(join(tmpdir(), 'custody-media-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** @returns {Set<string>} the encoders this FFmpeg has */
export function encoders() {
  const out = execFileSync(FFMPEG, ['-hide_banner', '-encoders'], { encoding: 'utf8' });
  return new Set(out.split('\n').map((l) => l.trim().split(/\s+/)[1]).filter(Boolean));
}

/**
 * Encodes a test picture (testsrc2, 320x240) and a tone into `file`.
 * @param {string} file
 * @param {{seconds?: number, rate?: number, video?: string[], audio?: string[] | null, format: string, extra?: string[]}} o
 */
export function encode(file, o) {
  const rate = o.rate ?? 30;
  const args = ['-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc2=size=320x240:rate=${rate}`];
  if (o.audio) args.push('-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000');
  args.push('-t', String(o.seconds ?? 7), ...(o.video ?? []));
  if (o.audio) args.push(...o.audio);
  args.push(...(o.extra ?? []), '-f', o.format, file);
  execFileSync(FFMPEG, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  return new Uint8Array(readFileSync(file));
}

/**
 * A seeded PRNG (mulberry32), for chunkings that are random but repeatable.
 * @param {number} seed
 */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `data` in chunks of random sizes in [min, max], from `seed`.
 * @param {Uint8Array} data
 * @param {number} seed
 * @param {number} [min]
 * @param {number} [max]
 */
export function chunks(data, seed, min = 1, max = 65536) {
  const r = prng(seed);
  const out = [];
  for (let at = 0; at < data.length; ) {
    const n = min + Math.floor(r() * (max - min + 1));
    out.push(data.subarray(at, at + n));
    at += n;
  }
  return out;
}

/**
 * Runs a Segmenter over chunks; the k-th chunk arrives at wall time k ms.
 * @param {Uint8Array[]} parts
 * @param {{mimeType: string, targetMs?: number, maxMs?: number}} options
 */
export function segment(parts, options) {
  const s = new Segmenter(options);
  const segs = [];
  parts.forEach((c, k) => segs.push(...s.push(c, k * 1000)));
  segs.push(...s.endStream(parts.length * 1000));
  return { segmenter: s, segments: segs };
}

/**
 * What FFmpeg sees in a file: its streams (kind, codec, digest framing from extradata) and
 * every packet in read order.
 * @param {string} file
 */
export function probe(file) {
  const out = execFileSync(FFPROBE, [
    '-v', 'error', '-show_data', '-show_entries',
    'stream=index,codec_type,codec_name,extradata:packet=stream_index,size,flags,pts_time,dts_time,duration_time',
    '-of', 'json', file,
  ], { encoding: 'utf8', maxBuffer: 256 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
  const j = JSON.parse(out);
  const streams = j.streams.map((/** @type {any} */ s) => {
    const kind = s.codec_type === 'video' ? 1 : s.codec_type === 'audio' ? 2 : 3;
    const extradata = s.extradata ? hexdump(s.extradata) : null;
    return { kind, codec: s.codec_name, framing: framingFromExtradata(s.codec_name, extradata) };
  });
  /** @type {{stream: number, size: number, key: boolean, pts: number, dts: number, duration: number}[]} */
  const packets = j.packets.map((/** @type {any} */ p) => ({
    stream: p.stream_index, size: Number(p.size), key: String(p.flags).includes('K'),
    pts: Number(p.pts_time), dts: Number(p.dts_time), duration: Number(p.duration_time ?? 0),
  }));
  return { streams, packets };
}

/**
 * The bytes of ffprobe's `-show_data` hex dump ("00000000: 0142 c00d ...  .B..").
 * @param {string} dump
 */
function hexdump(dump) {
  const bytes = [];
  for (const line of dump.split('\n')) {
    const t = line.trim();
    if (!/^[0-9a-f]{8}: /.test(t)) continue;
    // The hex columns are 40 characters wide after the offset; the ASCII column follows.
    for (const word of t.slice(10, 50).trim().split(/ +/)) {
      for (let i = 0; i < word.length; i += 2) bytes.push(parseInt(word.slice(i, i + 2), 16));
    }
  }
  return new Uint8Array(bytes);
}

/**
 * The packet digest, counts and video frames of a file, from FFmpeg's packets alone.
 * @param {string} file
 */
export function ffmpegDigest(file) {
  const { streams, packets } = probe(file);
  // Counted and digested in format.md 6.4's canonical order (video, audio, other; each kind
  // in file order), written out here rather than taken from the segmenter under test.
  const rank = (/** @type {number} */ k) => (k === 1 ? 0 : k === 2 ? 1 : 2);
  const order = streams.map((_, i) => i).sort((a, b) => rank(streams[a].kind) - rank(streams[b].kind) || a - b);
  /** @type {number[]} */
  const slot = [];
  order.forEach((fileIndex, position) => {
    slot[fileIndex] = position;
  });
  const canonical = order.map((i) => streams[i]);
  const d = new PacketDigester(canonical);
  streams.forEach((/** @type {{kind: number}} */ _s, i) => {
    const data = execFileSync(FFMPEG, ['-v', 'error', '-i', file, '-map', `0:${i}`, '-c', 'copy', '-copyinkf', '-f', 'data', '-'], { maxBuffer: 256 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
    let at = 0;
    for (const p of packets.filter((q) => q.stream === i)) {
      d.push(slot[i], p.key, new Uint8Array(data.subarray(at, at + p.size)));
      at += p.size;
    }
    if (at !== data.length) throw new Error(`ffmpeg gave ${data.length} bytes for stream ${i}, ffprobe's sizes add up to ${at}`);
  });
  const counts = d.packetCounts();
  const videoFrames = canonical.reduce((n, s, i) => n + (s.kind === 1 ? counts[i] : 0), 0);
  // `counts` in the canonical order; `streams` (which `packets[].stream` indexes) in the file's.
  return { digest: Buffer.from(d.finish()).toString('hex'), counts, videoFrames, packets, streams };
}

/**
 * FFmpeg's complaints when decoding a file whole ('' when it decodes cleanly).
 * @param {string} file
 */
export function decodeErrors(file) {
  // -enc_time_base -1 keeps the demuxer's time base on the output side. Even so, for a
  // stream with no declared frame rate (MediaRecorder's) FFmpeg 5.1's null *muxer* now and
  // then complains of colliding output timestamps (the packets' own are distinct): that
  // says nothing of demuxing or decoding, so its lines are left out. Decoder and demuxer
  // complaints ("[vp8 @", "Error while decoding", ...) all count.
  const r = spawnSync(FFMPEG, ['-v', 'error', '-i', file, '-enc_time_base', '-1', '-f', 'null', '-'], { encoding: 'utf8' });
  const lines = (r.stderr ?? '').split('\n').filter((l) => l && !/^\[null @ 0x[0-9a-f]+\] Application provided invalid, non monotonically increasing dts to muxer/.test(l));
  return lines.join('\n') + (r.status === 0 ? '' : `exit ${r.status}`);
}

/**
 * Writes a segment's plaintext to dir/name.
 * @param {string} dir
 * @param {string} name
 * @param {Uint8Array} bytes
 */
export function writeTo(dir, name, bytes) {
  const f = join(dir, name);
  writeFileSync(f, bytes);
  return f;
}

/** @param {import('../src/media/segmenter.js').Segment} g */
function record(g) {
  return {
    sha: hashHex(g.plaintext),
    mediaStartUs: g.mediaStartUs, mediaEndUs: g.mediaEndUs, streamPackets: g.streamPackets,
    videoFrames: g.videoFrames, packetDigest: Buffer.from(g.packetDigest).toString('hex'), cut: g.cut,
  };
}

/** @param {Uint8Array} b */
function hashHex(b) {
  return createHash('sha256').update(b).digest('hex');
}

/**
 * Segments `data` under several chunkings and checks everything the brief asks of the
 * result against FFmpeg: the same segments whatever the chunking; each segment's counts,
 * video frames and packet digest equal FFmpeg's reading of the segment file alone; key-led
 * segments begin with a keyframe and decode without an error; no packet lost or repeated
 * over the whole file; video continuous across boundaries (gap <= 1.5 frame durations);
 * media times chained. Returns the segments and FFmpeg's view of each.
 * @param {import('node:assert/strict')} assert
 * @param {Uint8Array} data
 * @param {{mimeType: string, ext: string, dir: string, name: string, frameRate: number,
 *   targetMs?: number, maxMs?: number, tinyChunks?: boolean, parts?: Uint8Array[],
 *   recorderGaps?: boolean}} o
 */
export function checkSegments(assert, data, o) {
  const opts = { mimeType: o.mimeType, targetMs: o.targetMs, maxMs: o.maxMs };
  const whole = segment([data], opts);
  const expected = whole.segments.map(record);
  assert.ok(whole.segments.length >= 2, `${o.name}: more than one segment (${whole.segments.length})`);
  const seeds = [1, 2, 3];
  for (const seed of seeds) {
    const parts = chunks(data, seed);
    const got = segment(parts, opts).segments;
    assert.deepEqual(got.map(record), expected, `${o.name}: chunking seed ${seed}`);
    // Wall times are those of the chunks that brought the segment's first and last bytes
    // (chunk k arrives at k ms): in order, and together they cover every chunk after the init.
    got.forEach((g, i) => {
      assert.ok(g.wallFirstUs <= g.wallLastUs, `${o.name}: segment ${i + 1} wall times in order`);
      if (i > 0) assert.ok(g.wallFirstUs >= got[i - 1].wallLastUs, `${o.name}: segment ${i + 1} after ${i}`);
    });
    const last = got[got.length - 1].plaintext;
    if (Buffer.from(last.subarray(-16)).equals(Buffer.from(data.subarray(-16)))) {
      // The stream ends with its last Cluster/fragment (no trailing Cues): so does the last segment.
      assert.equal(got[got.length - 1].wallLastUs, (parts.length - 1) * 1000, `${o.name}: the last chunk is in the last segment`);
    }
  }
  if (o.parts) assert.deepEqual(segment(o.parts, opts).segments.map(record), expected, `${o.name}: the chunks as delivered`);
  if (o.tinyChunks) {
    assert.deepEqual(segment(chunks(data, 7, 1, 64), opts).segments.map(record), expected, `${o.name}: 1..64-byte chunks`);
  }
  const file = writeTo(o.dir, `${o.name}.${o.ext}`, data);
  const all = ffmpegDigest(file);
  const views = whole.segments.map((g, i) => {
    const f = writeTo(o.dir, `${o.name}-${i + 1}.${o.ext}`, g.plaintext);
    const view = ffmpegDigest(f);
    const label = `${o.name} segment ${i + 1}`;
    assert.equal(Buffer.from(g.packetDigest).toString('hex'), view.digest, `${label}: packet digest`);
    assert.deepEqual(g.streamPackets, view.counts, `${label}: packet counts`);
    assert.equal(g.videoFrames, view.videoFrames, `${label}: video frames`);
    const keyLed = i === 0 || whole.segments[i - 1].cut === 1;
    const video = view.packets.filter((p) => view.streams[p.stream].kind === 1);
    if (keyLed && video.length) {
      assert.ok(video[0].key, `${label}: begins with a keyframe`);
      assert.equal(decodeErrors(f), '', `${label}: decodes alone`);
    }
    return { file: f, video };
  });
  const totals = whole.segments.reduce((t, g) => t.map((n, k) => n + g.streamPackets[k]), all.counts.map(() => 0));
  assert.deepEqual(totals, all.counts, `${o.name}: every packet of the file in exactly one segment`);
  // The whole file's video presentation times, in order: a boundary must fall between two
  // neighbours of this list (nothing lost or repeated there), and their gap must be at most
  // 1.5 frame durations, unless the recorder itself left that gap (a real browser on a
  // loaded machine can drop frames; that is the recording's, not the segmenter's).
  const allVideo = all.packets.filter((p) => all.streams[p.stream].kind === 1).map((p) => p.pts).sort((x, y) => x - y);
  for (let i = 0; i + 1 < whole.segments.length; i++) {
    assert.equal(whole.segments[i].mediaEndUs, whole.segments[i + 1].mediaStartUs, `${o.name}: media times chain at ${i + 1}`);
    const a = views[i].video;
    const b = views[i + 1].video;
    if (!a.length || !b.length) continue;
    const last = Math.max(...a.map((p) => p.pts));
    const first = Math.min(...b.map((p) => p.pts));
    assert.ok(first > last, `${o.name}: segment ${i + 2} begins after segment ${i + 1}'s last frame`);
    const at = allVideo.indexOf(last);
    assert.equal(allVideo[at + 1], first, `${o.name}: the frames either side of boundary ${i + 1} are neighbours in the file`);
    if (!o.recorderGaps) assert.ok(first - last <= 1.5 / o.frameRate + 1e-6, `${o.name}: gap ${first - last}s at boundary ${i + 1}`);
  }
  for (const [i, g] of whole.segments.entries()) {
    // The cut rule measures from the segment's first video frame (in file order) to the
    // next segment's.
    const a = views[i].video;
    const b = views[i + 1]?.video ?? [];
    if (a.length && b.length && g.cut !== 3) {
      const spanMs = (b[0].pts - a[0].pts) * 1000;
      const atLeast = g.cut === 1 ? (o.targetMs ?? 2000) : (o.maxMs ?? 4000);
      assert.ok(spanMs >= atLeast - 1, `${o.name}: segment ${i + 1} (cut ${g.cut}) spans ${spanMs} ms of video`);
    }
    if (i + 1 < whole.segments.length) assert.notEqual(g.cut, 3, `${o.name}: only the last segment is cut 3`);
  }
  assert.equal(whole.segments[whole.segments.length - 1].cut, 3);
  return { segments: whole.segments, views, segmenter: whole.segmenter };
}
