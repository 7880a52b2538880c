// The page's browser-only paths in real headless Chromium (Debian's, here): the IndexedDB
// store (strict durability), the non-extractable device key kept in it and usable after a
// reopen (and not exportable), and uploads through XMLHttpRequest abandoned when they
// stall. The code is bundled with esbuild and served from loopback (a secure context, so
// WebCrypto Ed25519 is there). Skipped, saying so, where there is no Chromium.

import { skipUnless } from './require.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const chromium = process.env.CHROMIUM ?? '/usr/bin/chromium';
const skip = skipUnless(existsSync(chromium), `no Chromium at ${chromium}`);

test('IndexedDB keeps the non-extractable key and the sealed bytes; XMLHttpRequest uploads stop when they stall', { skip, timeout: 90000 }, async () => {
  const built = await esbuild.build({ stdin: { contents: PAGE, resolveDir: here, loader: 'js' }, bundle: true, format: 'esm', write: false, logLevel: 'silent' });
  const js = built.outputFiles[0].text;
  /** @type {(v: any) => void} */
  let report = () => {};
  const result = new Promise((r) => { report = r; });
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks);
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><meta charset="utf-8"><script type="module" src="/entry.js"></script>');
    } else if (req.url === '/entry.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(js);
    } else if (req.url === '/echo') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(body);
    } else if (req.url === '/stall') {
      // Read it all, never answer.
    } else if (req.url === '/refuse') {
      res.writeHead(409, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'equivocation', message: 'a different record is stored' } }));
    } else if (req.url === '/result') {
      res.end('ok');
      report(JSON.parse(body.toString()));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', () => r(undefined)));
  const port = /** @type {import('node:net').AddressInfo} */ (server.address()).port;
  const profile = mkdtempSync(join(tmpdir(), 'custody-core-chromium-'));
  const browser = spawn(chromium, ['--headless=new', '--no-sandbox', `--user-data-dir=${profile}`, '--no-first-run',
    '--remote-debugging-port=0', `http://127.0.0.1:${port}/`], { stdio: 'ignore', detached: true });
  try {
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let timer;
    const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('no result from Chromium within 60 s')), 60000); });
    const r = await Promise.race([result, timeout]).finally(() => clearTimeout(timer));
    assert.equal(r.error, undefined, r.error);
    assert.equal(r.extractable, false, 'the device key is made non-extractable');
    assert.equal(r.keyIsCryptoKey, true);
    assert.equal(r.keyStillNotExtractable, true);
    assert.equal(r.exportRefused, true, 'nobody can read the key out, not even the page');
    assert.equal(r.signsAfterReopen, true, 'the key kept in IndexedDB signs after a reopen');
    assert.equal(r.ciphertext, '010203');
    assert.deepEqual(r.entries, ['a/000000000001']);
    assert.equal(r.deleted, true);
    assert.equal(r.xhrEcho, true, 'a 3 MiB upload through XMLHttpRequest');
    assert.equal(r.stall, 'stalled');
    assert.ok(r.stallMs < 5000, `abandoned after ${r.stallMs} ms`);
    assert.equal(r.refusal, 'equivocation');
    assert.equal(r.lockA, false, 'the first tab uploads');
    assert.equal(r.lockB, true, 'the second waits, and says so');
    assert.equal(r.bSeesEnrollment, 'tab-a', 'what one tab saves, the other sees');
    assert.equal(r.bTakesOver, true, 'the second uploads once the first stops');
  } finally {
    // The browser and every process it started (its own process group).
    await new Promise((r) => {
      browser.once('exit', r);
      process.kill(-/** @type {number} */ (browser.pid), 'SIGKILL');
    });
    await new Promise((r) => setTimeout(r, 300));
    server.closeAllConnections();
    server.close();
    rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  }
});

/** The page's script, bundled with the modules it imports. */
const PAGE = String.raw`// Runs inside headless Chromium (bundled by core-browser.test.js): the IndexedDB store with
// strict durability, a non-extractable Ed25519 CryptoKey kept in it and used after a
// reopen, and uploads through XMLHttpRequest with their stall detection. Reports to /result.

import { toHex } from '../src/format/bytes.js';
import { generateKeyPair, publicKeyBytes, sign, verify } from '../src/format/ed25519.js';
import { Api, NetworkError } from '../src/protocol/client.js';
import { IndexedDbStore } from '../src/vault/idb.js';
import { Device } from '../src/device.js';

const results = /** @type {Record<string, unknown>} */ ({});

async function main() {
  const store = await IndexedDbStore.open('custody-core-test');
  const pair = await generateKeyPair();
  results.extractable = pair.privateKey.extractable;
  const pub = await publicKeyBytes(pair.publicKey);
  await store.write([
    { op: 'put', store: 'meta', key: 'device-key', value: { privateKey: pair.privateKey, publicKey: pub } },
    { op: 'put', store: 'ciphertext', key: 'a/000000000001', value: new Uint8Array([1, 2, 3]) },
    { op: 'put', store: 'records', key: 'a/000000000001', value: { id: 'a', seq: 1, bytes: new Uint8Array([9]) } },
  ]);
  store.close();
  const again = await IndexedDbStore.open('custody-core-test');
  const held = /** @type {{privateKey: CryptoKey, publicKey: Uint8Array}} */ (await again.get('meta', 'device-key'));
  results.keyIsCryptoKey = held.privateKey instanceof CryptoKey;
  results.keyStillNotExtractable = held.privateKey.extractable === false;
  try {
    await crypto.subtle.exportKey('pkcs8', held.privateKey);
    results.exportRefused = false;
  } catch {
    results.exportRefused = true;
  }
  const msg = new TextEncoder().encode('a record');
  const sig = await sign(held.privateKey, new TextEncoder().encode('custody/v1/record-signature\0'), msg);
  results.signsAfterReopen = await verify(held.publicKey, new TextEncoder().encode('custody/v1/record-signature\0'), msg, sig);
  results.ciphertext = toHex(/** @type {Uint8Array} */ (await again.get('ciphertext', 'a/000000000001')));
  results.entries = (await again.entries('records')).map((e) => e.key);
  await again.write([{ op: 'delete', store: 'ciphertext', key: 'a/000000000001' }]);
  results.deleted = (await again.get('ciphertext', 'a/000000000001')) === undefined;
  again.close();

  const api = new Api({ base: location.origin, useXhr: true, limits: { stallMs: 800, answerMs: 800 } });
  const body = new Uint8Array(3 * 1024 * 1024).fill(7);
  const echoed = await api.request('PUT', '/echo', { body });
  results.xhrEcho = echoed.length === body.length && echoed[100] === 7;
  const t0 = performance.now();
  try {
    await api.request('PUT', '/stall', { body: new Uint8Array(1000) });
    results.stall = 'answered';
  } catch (e) {
    results.stall = e instanceof NetworkError && e.stalled ? 'stalled' : String(e);
    results.stallMs = Math.round(performance.now() - t0);
  }
  try {
    await api.request('PUT', '/refuse', { body: new Uint8Array(10) });
  } catch (e) {
    results.refusal = /** @type {{codeText?: string}} */ (e).codeText;
  }

  // Two Devices on the IndexedDB outbox, as two tabs of the page: one uploads at a time,
  // and what one saves the other sees.
  const a = await Device.open();
  const b = await Device.open();
  a.startUploading();
  await new Promise((r) => setTimeout(r, 200));
  b.startUploading();
  await new Promise((r) => setTimeout(r, 200));
  results.lockA = a.status().uploadingElsewhere;
  results.lockB = b.status().uploadingElsewhere;
  const seen = new Promise((r) => b.addEventListener('change', () => b.enrollment && r(undefined)));
  const k = await generateKeyPair();
  const kp = await publicKeyBytes(k.publicKey);
  await a.outbox.saveEnrollment({ origin: location.origin, serverKey: kp, serverFingerprint: 'x', deviceKey: kp, privateKey: k.privateKey,
    certificate: new Uint8Array(0), caseRecipients: new Uint8Array(0), recipients: ['age1x'], tlsSha256: null, label: 'tab-a', enrolledAtUs: 1 });
  await Promise.race([seen, new Promise((r) => setTimeout(r, 3000))]);
  results.bSeesEnrollment = b.enrollment?.label ?? null;
  await a.stopUploading();
  await new Promise((r) => setTimeout(r, 300));
  results.bTakesOver = b.status().uploadingElsewhere === false;
  await b.stopUploading();
}

main().catch((e) => {
  results.error = String(e && e.stack ? e.stack : e);
}).finally(() => {
  void fetch('/result', { method: 'POST', body: JSON.stringify(results) });
});
`;
