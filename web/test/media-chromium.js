// Records from Chromium's fake camera with a real MediaRecorder and returns the chunks as
// `dataavailable` delivered them, for the media tests. The page is served on loopback by a
// tiny HTTP server here; it POSTs each chunk back as it comes. No DevTools protocol is
// needed: Chromium is started headless on the page and stopped (by its own pid) once the
// page says it is done.
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHROMIUM = '/usr/bin/chromium';

/** @param {string} mimeType @param {number} seconds @param {number} timeslice */
function page(mimeType, seconds, timeslice) {
  return `<!doctype html><meta charset="utf-8"><script type="module">
const post = (path, body) => fetch(path, { method: 'POST', body });
try {
  const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 }, audio: true });
  const mimeType = ${JSON.stringify(mimeType)};
  if (!MediaRecorder.isTypeSupported(mimeType)) throw new Error('unsupported ' + mimeType);
  const rec = new MediaRecorder(stream, { mimeType, videoBitsPerSecond: 600000, videoKeyFrameIntervalDuration: 2000 });
  let n = 0;
  let pending = Promise.resolve();
  rec.ondataavailable = (e) => {
    const i = n++;
    pending = pending.then(async () => post('/chunk/' + i, await e.data.arrayBuffer()));
  };
  rec.onstop = async () => { await pending; await post('/done', rec.mimeType); };
  rec.start(${timeslice});
  setTimeout(() => rec.stop(), ${seconds * 1000});
} catch (e) {
  await post('/error', String(e));
}
</script>`;
}

/**
 * Records `seconds` of fake camera and microphone with MediaRecorder in `mimeType`.
 * @param {{mimeType: string, seconds?: number, timeslice?: number, timeoutMs?: number}} o
 * @returns {Promise<{mimeType: string, chunks: Uint8Array[]}>}
 */
export async function recordInChromium(o) {
  /** @type {Map<number, Uint8Array>} */
  const got = new Map();
  const html = page(o.mimeType, o.seconds ?? 7, o.timeslice ?? 1000);
  const profile = mkdtempSync(join(tmpdir(), 'custody-chromium-'));
  /** @type {(v: {mimeType: string, chunks: Uint8Array[]}) => void} */
  let done = () => {};
  /** @type {(e: Error) => void} */
  let fail = () => {};
  const result = new Promise((res, rej) => {
    done = res;
    fail = rej;
  });
  const server = createServer((req, res) => {
    const parts = [];
    req.on('data', (c) => parts.push(c));
    req.on('end', () => {
      const body = Buffer.concat(parts);
      const url = req.url ?? '/';
      res.setHeader('Cache-Control', 'no-store');
      if (req.method === 'GET') res.setHeader('Content-Type', 'text/html').end(html);
      else {
        res.end('ok');
        if (url.startsWith('/chunk/')) got.set(Number(url.slice(7)), new Uint8Array(body));
        else if (url === '/done') done({ mimeType: body.toString(), chunks: [...got.keys()].sort((a, b) => a - b).map((k) => /** @type {Uint8Array} */ (got.get(k))) });
        else if (url === '/error') fail(new Error(`the page failed: ${body}`));
      }
    });
  });
  await new Promise((res) => server.listen(0, '127.0.0.1', () => res(null)));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const child = spawn(CHROMIUM, [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', '--no-default-browser-check',
    '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
    `--user-data-dir=${profile}`, `http://127.0.0.1:${port}/`,
  ], { stdio: 'ignore', detached: true });
  const timer = setTimeout(() => fail(new Error('Chromium did not finish recording in time')), o.timeoutMs ?? 60_000);
  try {
    return await result;
  } finally {
    clearTimeout(timer);
    // The browser and every helper process it started (its own process group): a helper
    // left alive goes on writing the profile after the browser has exited.
    const exited = new Promise((res) => (child.exitCode !== null || child.signalCode !== null ? res(null) : child.once('exit', () => res(null))));
    if (child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // The whole group has exited already.
      }
    }
    await exited;
    server.close();
    await removeProfile(profile);
  }
}

/** Whether Chromium is here to record with. */
export const haveChromium = existsSync(CHROMIUM);

/**
 * Removes a Chromium profile directory, listing it afresh on each of up to 20 tries 100 ms
 * apart: a killed helper process's last writes may land between one listing and the
 * removal of the directory (ENOTEMPTY), which retrying the same removal cannot cure.
 * @param {string} dir
 */
async function removeProfile(dir) {
  for (let attempt = 1; ; attempt++) {
    try {
      rmSync(dir, { recursive: true, force: true });
      return;
    } catch (e) {
      if (attempt >= 20) throw e;
      await new Promise((res) => setTimeout(res, 100));
    }
  }
}
