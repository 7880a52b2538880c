// The uploader's behaviour on a bad network, between the page's code and the real
// `custody serve`, through a loopback proxy that can lose an answer or stall a request:
// - an answer lost after the server stored the record: the receipt is asked for again
//   (GET /v1/recordings/{id}/receipts) and the record is not sent a second time;
// - a request that stalls is abandoned by its deadline (scaled to its size), not held
//   for a long timeout, and the record goes out on the next attempt;
// - an upload whose answer never comes (its connection a black hole) is abandoned once a
//   later upload's answer shows the link works, not held for its whole deadline;
// - records go oldest recording first, each in chain order.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';

import { Device } from '../src/device.js';
import { MemoryTestStore } from '../src/vault/store.js';
import { skipUnless } from './require.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = process.env.CUSTODY_BIN ?? join(repo, 'target', 'debug', 'custody');
const skip = skipUnless(existsSync(bin), `the custody binary is not built (${bin}): cargo build -p custody-cli`);

/** @param {string} data @param {string} recipient */
async function serve(data, recipient) {
  const child = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--insecure-http', '--recipient', recipient, '--data', data], { stdio: ['ignore', 'pipe', 'ignore'] });
  const lines = createInterface({ input: /** @type {import('node:stream').Readable} */ (child.stdout) });
  const url = await new Promise((resolve, reject) => {
    lines.once('line', (l) => (l.startsWith('Listening on ') ? resolve(l.slice('Listening on '.length)) : reject(new Error(l))));
    child.once('exit', (c) => reject(new Error(`custody serve exited ${c}`)));
  });
  lines.on('line', () => {});
  return { url: /** @type {string} */ (url), stop: () => new Promise((r) => { child.once('exit', r); child.kill('SIGKILL'); }) };
}

/**
 * A proxy in front of `target`. `plan(method, url)` says what to do with each request:
 * 'pass', 'lose-answer' (forward it, then break the connection instead of answering) or
 * 'stall' (read it and never answer). Every request is logged.
 * @param {string} target
 * @param {(method: string, url: string) => 'pass' | 'lose-answer' | 'stall'} plan
 */
async function proxy(target, plan) {
  /** @type {{method: string, url: string, action: string}[]} */
  const log = [];
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const action = plan(String(req.method), String(req.url));
    log.push({ method: String(req.method), url: String(req.url), action });
    if (action === 'stall') return; // never answer
    const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => !['host', 'connection', 'content-length', 'transfer-encoding'].includes(k)));
    const body = chunks.length ? Buffer.concat(chunks) : undefined;
    const up = await fetch(target + req.url, { method: req.method, headers: /** @type {Record<string, string>} */ (headers), body: req.method === 'GET' ? undefined : body });
    const answer = Buffer.from(await up.arrayBuffer());
    if (action === 'lose-answer') {
      req.socket.destroy();
      return;
    }
    res.writeHead(up.status, { 'content-type': up.headers.get('content-type') ?? 'application/octet-stream' });
    res.end(answer);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', () => r(undefined)));
  const addr = /** @type {import('node:net').AddressInfo} */ (server.address());
  return { url: `http://127.0.0.1:${addr.port}`, log, close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r(undefined)); }) };
}

const streams = [{ kind: 1, codec: 'vp8', width: 320, height: 240, frameRateNum: 0, frameRateDen: 1, sampleRate: 0, channels: 0, timeBaseNum: 1, timeBaseDen: 1000 }];

/** @param {number} n */
function segment(n) {
  const plaintext = new Uint8Array(20000 + n).fill(n);
  const t0 = 1_800_000_000_000_000 + n * 2_000_000;
  return { plaintext, wallFirstUs: t0, wallLastUs: t0 + 1_900_000, mediaStartUs: (n - 1) * 2_000_000, mediaEndUs: n * 2_000_000,
    streamPackets: [40], videoFrames: 40, packetDigest: new Uint8Array(32).fill(n), cut: 1 };
}

/** @param {Device} device @param {() => boolean} pred @param {number} ms @param {string} what */
async function until(device, pred, ms, what) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms; status ${JSON.stringify(device.status())}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A server, a proxy with `plan`, and a device enrolled through the proxy. */
async function setup(plan, limits, uploader = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'custody-web-core-'));
  const data = join(dir, 'server');
  const server = await serve(data, await identityToRecipient(await generateX25519Identity()));
  const px = await proxy(server.url, plan);
  const link = JSON.parse(String(execFileSync(bin, ['admin', 'enroll-token', '--data', data, '--label', 'phone', '--link', px.url, '--json']))).link;
  const device = await Device.open({ store: new MemoryTestStore(), uploader: { idleMs: 100, concurrency: 1, ...uploader }, limits });
  await device.enroll(link);
  return {
    device, px,
    done: async () => {
      await device.stopUploading();
      await px.close();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const puts = (/** @type {{method: string, url: string}[]} */ log, /** @type {string} */ suffix) => log.filter((l) => l.method === 'PUT' && l.url.endsWith(suffix));

test('an answer lost after the server stored the record is asked for again, not the record sent again', { skip, timeout: 60000 }, async () => {
  let lost = false;
  const s = await setup((method, url) => {
    if (method === 'PUT' && url.endsWith('/records/1') && !lost) {
      lost = true;
      return 'lose-answer';
    }
    return 'pass';
  });
  try {
    const rec = await s.device.beginRecording({ container: 3, streams, input: 'browser:test', software: 'test', targetSegmentMs: 2000, maxSegmentMs: 4000 });
    await rec.addSegment(segment(1));
    await rec.end({ reason: 1 });
    s.device.startUploading();
    await until(s.device, () => s.device.status().outbox.count === 0, 30000, 'the outbox drains');
    assert.equal(puts(s.px.log, `/${rec.id}/records/1`).length, 1, 'segment 1 was sent once');
    assert.ok(s.px.log.some((l) => l.method === 'GET' && l.url === `/v1/recordings/${rec.id}/receipts`), 'its receipt was asked for again');
    assert.equal(s.device.status().recordings[0].receipted, 1);
  } finally {
    await s.done();
  }
});

test('a stalled upload is abandoned by its size-scaled deadline and sent again', { skip, timeout: 60000 }, async () => {
  let stalled = false;
  const s = await setup((method, url) => {
    if (method === 'PUT' && url.endsWith('/records/1') && !stalled) {
      stalled = true;
      return 'stall';
    }
    return 'pass';
  }, { baseMs: 700, minBytesPerSecond: 10_000_000 });
  try {
    const rec = await s.device.beginRecording({ container: 3, streams, input: 'browser:test', software: 'test', targetSegmentMs: 2000, maxSegmentMs: 4000 });
    await rec.addSegment(segment(1));
    s.device.startUploading();
    const t0 = Date.now();
    await until(s.device, () => s.device.status().outbox.count === 0, 20000, 'the outbox drains');
    assert.ok(Date.now() - t0 < 10000, 'not held by a long timeout');
    assert.equal(puts(s.px.log, `/${rec.id}/records/1`).length, 2, 'abandoned once, then sent again');
  } finally {
    await s.done();
  }
});

test('an upload with no answer is abandoned when a later upload is answered, not held for its deadline', { skip, timeout: 60000 }, async () => {
  let holed = false;
  const s = await setup((method, url) => {
    if (method === 'PUT' && url.endsWith('/records/1') && !holed) {
      holed = true;
      return 'stall';
    }
    return 'pass';
  }, { baseMs: 60000 }, { concurrency: 2 });
  try {
    const rec = await s.device.beginRecording({ container: 3, streams, input: 'browser:test', software: 'test', targetSegmentMs: 2000, maxSegmentMs: 4000 });
    for (let n = 1; n <= 4; n += 1) await rec.addSegment(segment(n));
    await rec.end({ reason: 1 });
    s.device.startUploading();
    // Within a third of the held request's own deadline (60 s): only the lag rule can do it.
    await until(s.device, () => s.device.status().outbox.count === 0, 20000, 'the outbox drains');
    assert.equal(puts(s.px.log, `/${rec.id}/records/1`).length, 2, 'abandoned once, then sent again');
    assert.equal(s.device.status().recordings[0].receipted, 4);
  } finally {
    await s.done();
  }
});

test('records go out oldest recording first, each in chain order', { skip, timeout: 60000 }, async () => {
  const s = await setup(() => 'pass');
  try {
    const a = await s.device.beginRecording({ container: 3, streams, input: 'a', software: 'test', targetSegmentMs: 2000, maxSegmentMs: 4000 });
    const b = await s.device.beginRecording({ container: 3, streams, input: 'b', software: 'test', targetSegmentMs: 2000, maxSegmentMs: 4000 });
    await b.addSegment(segment(1));
    await a.addSegment(segment(1));
    await a.addSegment(segment(2));
    await b.end({ reason: 1 });
    await a.end({ reason: 1 });
    s.device.startUploading();
    await until(s.device, () => s.device.status().outbox.count === 0, 30000, 'the outbox drains');
    const order = s.px.log.filter((l) => l.method === 'PUT').map((l) => l.url.replace(/^\/v1\/recordings\//, ''));
    assert.deepEqual(order, [`${a.id}/records/0`, `${a.id}/records/1`, `${a.id}/records/2`, `${a.id}/records/3`,
      `${b.id}/records/0`, `${b.id}/records/1`, `${b.id}/records/2`]);
  } finally {
    await s.done();
  }
});
