// Records N seconds from Chromium's fake camera and microphone with a real MediaRecorder,
// as the capture page does (start(1000), videoKeyFrameIntervalDuration 2000), and writes
// the recorder's output, concatenated, to OUT. Usage: node record.mjs MIME SECONDS OUT
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [mimeType, seconds, out] = process.argv.slice(2);
const html = `<!doctype html><meta charset="utf-8"><script type="module">
const post = (path, body) => fetch(path, { method: 'POST', body });
try {
  const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 }, audio: true });
  const rec = new MediaRecorder(stream, { mimeType: ${JSON.stringify(mimeType)}, videoBitsPerSecond: 200000, audioBitsPerSecond: 32000, videoKeyFrameIntervalDuration: 2000 });
  let n = 0; let pending = Promise.resolve();
  rec.ondataavailable = (e) => { const i = n++; pending = pending.then(async () => post('/chunk/' + i, await e.data.arrayBuffer())); };
  rec.onstop = async () => { await pending; await post('/done', rec.mimeType); };
  rec.start(1000);
  setTimeout(() => rec.stop(), ${Number(seconds) * 1000});
} catch (e) { await post('/error', String(e)); }
</script>`;
const got = new Map();
const profile = mkdtempSync(join(tmpdir(), 'rec-chromium-'));
let done, fail;
const result = new Promise((res, rej) => { done = res; fail = rej; });
const server = createServer((req, res) => {
  const parts = [];
  req.on('data', (c) => parts.push(c));
  req.on('end', () => {
    const body = Buffer.concat(parts);
    if (req.method === 'GET') { res.setHeader('Content-Type', 'text/html'); res.end(html); return; }
    res.end('ok');
    if (req.url.startsWith('/chunk/')) got.set(Number(req.url.slice(7)), body);
    else if (req.url === '/done') done(body.toString());
    else if (req.url === '/error') fail(new Error(body.toString()));
  });
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const child = spawn('/usr/bin/chromium', ['--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--user-data-dir=${profile}`,
  `http://127.0.0.1:${server.address().port}/`], { stdio: 'ignore' });
try {
  const used = await result;
  const keys = [...got.keys()].sort((a, b) => a - b);
  writeFileSync(out, Buffer.concat(keys.map((k) => got.get(k))));
  console.log(used, keys.length, 'chunks');
} finally {
  child.kill('SIGTERM');
  server.close();
  setTimeout(() => rmSync(profile, { recursive: true, force: true }), 500);
}
