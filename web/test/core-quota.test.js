// A full storage quota in real headless Chromium: the origin's quota is set small through
// the DevTools protocol (Storage.overrideQuotaForOrigin, over --remote-debugging-pipe), the
// page's Device records into IndexedDB until a segment no longer fits, and then: the
// refusal is the clear DeviceError 'quota' (and status().lastError says so), and every
// segment sealed before it is still there, in a chain that verifies intact but cut off —
// also read back through a second connection, as after a reload. Skipped, saying so,
// where there is no Chromium.

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

const PAGE = String.raw`
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { concat } from '../src/format/bytes.js';
import { verdict, verifyChain } from '../src/format/chain.js';
import { generateKeyPair, publicKeyBytes } from '../src/format/ed25519.js';
import { Device } from '../src/device.js';

const out = {};
async function main() {
  const device = await Device.open();
  const keys = await generateKeyPair();
  const deviceKey = await publicKeyBytes(keys.publicKey);
  await device.outbox.saveEnrollment({ origin: location.origin, serverKey: deviceKey, serverFingerprint: 'x', deviceKey,
    privateKey: keys.privateKey, certificate: new Uint8Array(0), caseRecipients: new Uint8Array(0),
    recipients: [await identityToRecipient(await generateX25519Identity())], tlsSha256: null, label: 'quota', enrolledAtUs: 0 });
  const rec = await device.beginRecording({ container: 3, streams: [], input: 'x', software: 'x', targetSegmentMs: 2000, maxSegmentMs: 4000 });
  out.id = rec.id;
  let saved = 0;
  for (let n = 1; n <= 40; n++) {
    const plaintext = new Uint8Array(256 * 1024);
    for (let i = 0; i < plaintext.length; i += 65536) crypto.getRandomValues(plaintext.subarray(i, i + 65536));
    const t = Date.now() * 1000;
    try {
      await rec.addSegment({ plaintext, wallFirstUs: t, wallLastUs: t, mediaStartUs: (n - 1) * 2000000, mediaEndUs: n * 2000000,
        streamPackets: [], videoFrames: 0, packetDigest: new Uint8Array(32), cut: 1 });
      saved = n;
    } catch (e) {
      out.code = e.code;
      out.message = e.message;
      break;
    }
  }
  out.saved = saved;
  out.lastError = device.status().lastError;
  const again = await Device.open();
  const recs = again.outbox.recordsOf(rec.id);
  out.reopenedRecords = recs.length;
  out.reopenedCiphertexts = (await again.outbox.store.entries('ciphertext')).length;
  const report = await verifyChain(concat(...recs.map((r) => r.bytes)), deviceKey);
  out.verdict = verdict(report);
  out.lastSeq = String(report.cutOff ? report.cutOff.lastSeq : '');
}
main().catch((e) => { out.error = String(e && e.stack ? e.stack : e); }).finally(() => {
  void fetch('/result', { method: 'POST', body: JSON.stringify(out) });
});
`;

/** A DevTools protocol client over Chromium's --remote-debugging-pipe (fds 3 and 4). */
function cdp(/** @type {import('node:child_process').ChildProcess} */ browser) {
  const write = /** @type {import('node:stream').Writable} */ (browser.stdio[3]);
  const read = /** @type {import('node:stream').Readable} */ (browser.stdio[4]);
  let buf = '';
  let next = 0;
  /** @type {Map<number, (m: any) => void>} */
  const waiting = new Map();
  read.on('data', (d) => {
    buf += d;
    for (let i = buf.indexOf('\0'); i >= 0; i = buf.indexOf('\0')) {
      const m = JSON.parse(buf.slice(0, i));
      buf = buf.slice(i + 1);
      const w = m.id !== undefined && waiting.get(m.id);
      if (w) {
        waiting.delete(m.id);
        w(m);
      }
    }
  });
  return (/** @type {string} */ method, params = {}, /** @type {string | undefined} */ sessionId = undefined) => new Promise((resolve, reject) => {
    const id = ++next;
    waiting.set(id, (m) => (m.error ? reject(new Error(`${method}: ${m.error.message}`)) : resolve(m.result)));
    write.write(`${JSON.stringify({ id, method, params, sessionId })}\0`);
  });
}

test('a full IndexedDB quota refuses a segment as \'quota\' and loses nothing sealed before it', { skip, timeout: 120000 }, async () => {
  const built = await esbuild.build({ stdin: { contents: PAGE, resolveDir: here, loader: 'js' }, bundle: true, format: 'esm', write: false, logLevel: 'silent' });
  const js = built.outputFiles[0].text;
  /** @type {(v: any) => void} */
  let report = () => {};
  const result = new Promise((r) => { report = r; });
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><meta charset="utf-8"><script type="module" src="/page.js"></script>');
    } else if (req.url === '/page.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(js);
    } else if (req.url === '/result') {
      res.end('ok');
      report(JSON.parse(Buffer.concat(chunks).toString()));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', () => r(undefined)));
  const origin = `http://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (server.address()).port}`;
  const profile = mkdtempSync(join(tmpdir(), 'custody-core-quota-'));
  const browser = spawn(chromium, ['--headless=new', '--no-sandbox', '--remote-debugging-pipe', `--user-data-dir=${profile}`, '--no-first-run', 'about:blank'],
    { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'], detached: true });
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  try {
    const send = cdp(browser);
    const { targetId } = await send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
    // 2 MB: a few sealed segments of 256 KiB fit, then one does not.
    await send('Storage.overrideQuotaForOrigin', { origin, quotaSize: 2_000_000 }, sessionId);
    await send('Page.navigate', { url: `${origin}/` }, sessionId);
    const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('no result from Chromium within 90 s')), 90000); });
    const r = await Promise.race([result, timeout]);
    assert.equal(r.error, undefined, r.error);
    assert.equal(r.code, 'quota', `the refusal is 'quota': ${r.message}`);
    assert.match(r.message, /storage is full/);
    assert.equal(r.lastError?.code, 'quota', 'status().lastError says so');
    assert.ok(r.saved >= 2 && r.saved < 40, `${r.saved} segments fit before the quota`);
    assert.equal(r.reopenedRecords, r.saved + 1, 'the header and every segment saved before it are still there');
    assert.equal(r.reopenedCiphertexts, r.saved, 'every sealed segment is still there');
    assert.equal(r.verdict, 'intact-cut-off');
    assert.equal(r.lastSeq, String(r.saved));
  } finally {
    clearTimeout(timer);
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
