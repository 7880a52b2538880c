#!/usr/bin/env node
// Cuts a recorder stream file into the segments the capture page would seal, and prints
// their records as JSON (one object: container, streams, segments), for the Rust side and
// tests to compare with. Usage:
//   node tools/segment.mjs FILE [--mime TYPE] [--target-ms N] [--max-ms N]
//                               [--chunk N] [--write DIR]
// --chunk feeds the file in pieces of N bytes, as MediaRecorder's timeslice chunks come;
// --write DIR also writes each segment's plaintext as DIR/segment-NNNN.{webm,mp4}.
// Exits 1 with {"error": {code, message}} on a stream the parser refuses.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Segmenter } from '../src/media/segmenter.js';

/** @param {string[]} argv */
function parseArgs(argv) {
  /** @type {{file: string | null, mime: string | null, targetMs: number, maxMs: number, chunk: number, write: string | null}} */
  const o = { file: null, mime: null, targetMs: 2000, maxMs: 4000, chunk: 65536, write: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--mime') o.mime = val();
    else if (a === '--target-ms') o.targetMs = Number(val());
    else if (a === '--max-ms') o.maxMs = Number(val());
    else if (a === '--chunk') o.chunk = Math.max(1, Number(val()));
    else if (a === '--write') o.write = val();
    else if (!o.file) o.file = a;
    else throw new Error(`unexpected argument ${a}`);
  }
  if (!o.file) throw new Error('usage: segment.mjs FILE [--mime TYPE] [--target-ms N] [--max-ms N] [--chunk N] [--write DIR]');
  return o;
}

/** @param {Uint8Array} b */
const hex = (b) => Buffer.from(b).toString('hex');

function main() {
  const o = parseArgs(process.argv.slice(2));
  const data = new Uint8Array(readFileSync(/** @type {string} */ (o.file)));
  const mime = o.mime ?? (data[0] === 0x1a ? 'video/webm' : 'video/mp4');
  const s = new Segmenter({ mimeType: mime, targetMs: o.targetMs, maxMs: o.maxMs });
  const segments = [];
  try {
    for (let at = 0, n = 0; at < data.length; at += o.chunk, n += 1) {
      segments.push(...s.push(data.subarray(at, at + o.chunk), n * 1000));
    }
    segments.push(...s.endStream(Math.ceil(data.length / o.chunk) * 1000));
  } catch (e) {
    const err = /** @type {{code?: string, message?: string}} */ (e);
    process.stdout.write(JSON.stringify({ error: { code: err.code ?? 'error', message: err.message } }) + '\n');
    process.exit(1);
  }
  if (o.write) mkdirSync(o.write, { recursive: true });
  const ext = s.container === 3 ? 'webm' : 'mp4';
  const out = segments.map((g, i) => {
    const file = o.write ? join(o.write, `segment-${String(i + 1).padStart(4, '0')}.${ext}`) : null;
    if (file) writeFileSync(file, g.plaintext);
    return {
      seq: i + 1, file, plaintextLen: g.plaintext.length, wallFirstUs: g.wallFirstUs, wallLastUs: g.wallLastUs,
      mediaStartUs: g.mediaStartUs, mediaEndUs: g.mediaEndUs, streamPackets: g.streamPackets,
      videoFrames: g.videoFrames, packetDigest: hex(g.packetDigest), cut: g.cut,
    };
  });
  process.stdout.write(JSON.stringify({ container: s.container, streams: s.streams, segments: out }, null, 2) + '\n');
}

main();
