// The page's code against the real `custody serve` over loopback (plain HTTP, which the
// server allows on loopback for tests; TLS in a browser is the Chromium tests'): enroll from
// the link the server prints, record a chain through the Device façade with the in-memory
// test store, upload it, and have the lawyer's `custody verify` find the bundle intact and
// complete. Also: a link with another server's fingerprint is refused before the token is
// sent; the server taken away mid-recording loses nothing and the outbox drains when it is
// back, found by the probe within a few seconds.
//
// Needs the CLI built (`cargo build -p custody-cli`; or CUSTODY_BIN=path); without it the
// test says so and is skipped.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';

import { Device, DeviceError } from '../src/device.js';
import { MemoryTestStore } from '../src/vault/store.js';
import { skipUnless } from './require.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = process.env.CUSTODY_BIN ?? join(repo, 'target', 'debug', 'custody');
const skip = skipUnless(existsSync(bin), `the custody binary is not built (${bin}): cargo build -p custody-cli`);

/**
 * Starts `custody serve` on `listen`; resolves with its URL and a stop function.
 * @param {string} data @param {string} recipient @param {string} listen
 */
async function serve(data, recipient, listen = '127.0.0.1:0') {
  const child = spawn(bin, ['serve', '--listen', listen, '--insecure-http', '--recipient', recipient, '--data', data], { stdio: ['ignore', 'pipe', 'ignore'] });
  const lines = createInterface({ input: /** @type {import('node:stream').Readable} */ (child.stdout) });
  const url = await new Promise((resolve, reject) => {
    lines.once('line', (l) => (l.startsWith('Listening on ') ? resolve(l.slice('Listening on '.length)) : reject(new Error(l))));
    child.once('exit', (c) => reject(new Error(`custody serve exited ${c}`)));
  });
  lines.on('line', () => {});
  return {
    url: /** @type {string} */ (url),
    stop: () => new Promise((resolve) => {
      child.once('exit', resolve);
      child.kill('SIGKILL');
    }),
  };
}

/** @param {string} data @param {string} url */
function link(data, url) {
  const out = execFileSync(bin, ['admin', 'enroll-token', '--data', data, '--label', 'phone-1', '--link', url, '--json']);
  return /** @type {string} */ (JSON.parse(String(out)).link);
}

const streams = [{ kind: 1, codec: 'vp8', width: 320, height: 240, frameRateNum: 0, frameRateDen: 1, sampleRate: 0, channels: 0, timeBaseNum: 1, timeBaseDen: 1000 }];

/** @param {number} n */
function segment(n) {
  const plaintext = new Uint8Array(30000 + n);
  for (let i = 0; i < plaintext.length; i++) plaintext[i] = (i * 31 + n) & 0xff;
  const t0 = 1_800_000_000_000_000 + n * 2_000_000;
  return { plaintext, wallFirstUs: t0, wallLastUs: t0 + 1_900_000, mediaStartUs: (n - 1) * 2_000_000, mediaEndUs: n * 2_000_000,
    streamPackets: [40], videoFrames: 40, packetDigest: new Uint8Array(32).fill(n), cut: 1 };
}

/**
 * Waits until `pred()` holds, looking at every 'change' and every 100 ms, for at most `ms`.
 * @param {Device} device @param {() => boolean} pred @param {number} ms @param {string} what
 */
async function until(device, pred, ms, what) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms; status ${JSON.stringify(device.status())}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('a recording from the page reaches the real server, receipted, and the bundle verifies intact and complete', { skip, timeout: 120000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-web-core-'));
  const data = join(dir, 'server');
  const identity = await generateX25519Identity();
  const server = await serve(data, await identityToRecipient(identity));
  try {
    const store = new MemoryTestStore();
    const device = await Device.open({ store, uploader: { idleMs: 200 } });
    // A link naming another server's key is refused, and spends nothing.
    const good = link(data, server.url);
    const wrong = good.replace(/fp=[0-9A-Z-]+/, 'fp=X0GNA-N1SW0-61D2M-JC0J9');
    await assert.rejects(device.enroll(wrong), (e) => e instanceof DeviceError && e.code === 'server.fingerprint.mismatch');
    assert.equal(device.enrollment, null);
    const steps = [];
    const e = await device.enroll(good, { onStep: (s) => steps.push(s) });
    assert.deepEqual(steps, ['link', 'server', 'key', 'enroll', 'check', 'save']);
    assert.equal(e?.label, 'phone-1');
    assert.deepEqual(e?.recipients, [await identityToRecipient(identity)]);
    assert.deepEqual(await device.refreshRecipients(), [await identityToRecipient(identity)], 'the signed recipients, fetched again');
    // The token is spent: a second enrollment with it is refused with the server's code.
    await assert.rejects(device.enroll(good), (err) => err instanceof DeviceError && err.code === 'enroll.token_used');

    device.startUploading();
    const rec = await device.beginRecording({ container: 3, streams, input: 'browser:test', software: 'custody web-core test', targetSegmentMs: 2000, maxSegmentMs: 4000 });
    for (let n = 1; n <= 3; n++) await rec.addSegment({ ...segment(n), cut: n === 3 ? 3 : 1 });
    await rec.end({ reason: 1 });
    await until(device, () => device.status().outbox.count === 0, 30000, 'the outbox drains');
    const st = device.status();
    assert.equal(st.online, true);
    assert.equal(st.inconsistent, null);
    assert.deepEqual({ ...st.recordings[0], startedAtUs: 0 }, { id: rec.id, startedAtUs: 0, segments: 3, receipted: 3, ended: true, safeUpToUs: 6_000_000 });
    // Receipted segments' ciphertext is gone from the phone (the default); records and receipts stay.
    assert.equal((await store.entries('ciphertext')).length, 0);
    assert.equal((await store.entries('records')).filter(({ value }) => /** @type {any} */ (value).receipt).length, 5);
    assert.ok(device.outbox.held && device.outbox.held.treeSize >= 6n, 'the log head is held');
    await device.stopUploading();

    // The lawyer fetches the bundle and verifies it offline.
    const member = JSON.parse(String(execFileSync(bin, ['admin', 'member', 'add', '--data', data, 'Ana Ruiz', '--role', 'member', '--json']))).token;
    const resp = await fetch(`${server.url}/v1/recordings/${rec.id}/bundle`, { headers: { authorization: `Bearer ${member}` } });
    assert.equal(resp.status, 200);
    const tar = join(dir, 'bundle.tar');
    writeFileSync(tar, new Uint8Array(await resp.arrayBuffer()));
    const out = execFileSync(bin, ['verify', '--trust', /** @type {string} */ (e?.serverKey), tar, '--json'], { env: { ...process.env, CUSTODY_VAULT: join(dir, 'vault') } });
    const report = JSON.parse(String(out));
    assert.equal(report.verdict?.verdict ?? report.verdict, 'intact-complete', String(out).slice(0, 2000));
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the server taken away mid-recording: nothing is lost, and the outbox drains soon after it is back', { skip, timeout: 120000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-web-core-'));
  const data = join(dir, 'server');
  const recipient = await identityToRecipient(await generateX25519Identity());
  let server = await serve(data, recipient);
  try {
    const device = await Device.open({ store: new MemoryTestStore(), uploader: { idleMs: 200 } });
    await device.enroll(link(data, server.url));
    device.startUploading();
    const rec = await device.beginRecording({ container: 3, streams, input: 'browser:test', software: 'test', targetSegmentMs: 2000, maxSegmentMs: 4000 });
    await rec.addSegment(segment(1));
    await until(device, () => device.status().outbox.count === 0, 20000, 'the first records go out');
    await server.stop();
    for (let n = 2; n <= 4; n++) await rec.addSegment(segment(n));
    await rec.end({ reason: 1 });
    await until(device, () => device.status().online === false, 10000, 'the uploader notices');
    assert.equal(device.status().lastError?.code, 'network');
    assert.equal(device.status().outbox.count, 4, 'everything sealed waits in the outbox');
    // Keep it away a while, so the probe's backoff reaches its 4 s bound.
    await new Promise((r) => setTimeout(r, 6000));
    const port = new URL(server.url).port;
    server = await serve(data, recipient, `127.0.0.1:${port}`);
    const back = Date.now();
    await until(device, () => device.status().outbox.count === 0, 15000, 'the outbox drains');
    const took = Date.now() - back;
    assert.ok(took < 8000, `drained ${took} ms after the server came back (probe backoff bounded at 4 s)`);
    assert.equal(device.status().online, true);
    assert.equal(device.status().lastError, null);
    assert.equal(device.status().recordings[0].receipted, 4);
    await device.stopUploading();
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
