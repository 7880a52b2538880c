// The build (build.mjs) and what it ships: deterministic bytes, content-hashed names that
// index.html and the service worker name, nothing the CSP would block, under the size
// target; the manifest; and the service worker never answering for the API.

import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import vm from 'node:vm';
import { gzipSync } from 'node:zlib';

import { build, iconPng } from '../build.mjs';

const tmp = mkdtempSync(join(tmpdir(), 'custody-app-build-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

/** Every file under `dir`, path → bytes. */
function tree(dir) {
  /** @type {Map<string, Buffer>} */
  const out = new Map();
  const walk = (d) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.set(relative(dir, p), readFileSync(p));
    }
  };
  walk(dir);
  return out;
}

const a = join(tmp, 'a');
const b = join(tmp, 'b');
await build({ out: a, quiet: true });
await build({ out: b, quiet: true });
const files = tree(a);

test('two builds of the same sources are the same bytes', () => {
  const other = tree(b);
  assert.deepEqual([...other.keys()], [...files.keys()]);
  for (const [name, bytes] of files) assert.ok(bytes.equals(/** @type {Buffer} */ (other.get(name))), name);
});

test('index.html names the hashed script and style, and holds nothing the CSP blocks', () => {
  const html = String(files.get('index.html'));
  const js = [...files.keys()].filter((k) => /^app-[0-9a-f]{12}\.js$/.test(k));
  const css = [...files.keys()].filter((k) => /^style-[0-9a-f]{12}\.css$/.test(k));
  assert.equal(js.length, 1);
  assert.equal(css.length, 1);
  assert.ok(html.includes(`<script type="module" src="/capture/${js[0]}"></script>`));
  assert.ok(html.includes(`href="/capture/${css[0]}"`));
  for (const inline of ['<script>', '<style', ' style=', 'onclick=', 'onload=', 'javascript:']) {
    assert.ok(!html.includes(inline), `index.html holds ${inline}`);
  }
  // Every local URL it names is a file of the build.
  for (const m of html.matchAll(/(?:src|href)="\/capture\/([^"]+)"/g)) assert.ok(files.has(m[1]), m[1]);
  // One module, and it contains the page (the real modules, not a stand-in).
  const bundle = String(files.get(js[0]));
  assert.ok(bundle.includes('custody capture page'));
  assert.ok(!/stand-?in device/i.test(bundle));
});

test('the page is under 300 KB compressed', () => {
  let gz = 0;
  for (const bytes of files.values()) gz += gzipSync(bytes, { level: 9 }).length;
  assert.ok(gz < 300_000, `${gz} bytes compressed`);
});

test('the manifest makes it installable: name, start URL, standalone, dark, icons that exist', () => {
  const m = JSON.parse(String(files.get('manifest.webmanifest')));
  assert.equal(m.start_url, '/capture/');
  assert.equal(m.scope, '/capture/');
  assert.equal(m.display, 'standalone');
  assert.equal(m.theme_color, '#000000');
  assert.ok(m.name && m.short_name);
  const sizes = m.icons.map((i) => i.sizes);
  assert.ok(sizes.includes('192x192') && sizes.includes('512x512'));
  for (const icon of m.icons) assert.ok(files.has(icon.src.replace('/capture/', '')), icon.src);
});

test('the drawn icons are PNGs of the size they say', () => {
  for (const size of [192, 512]) {
    const png = iconPng(size, false);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.equal(png.readUInt32BE(16), size);
    assert.equal(png.readUInt32BE(20), size);
  }
});

/** Runs the built sw.js in a stand-in worker scope and returns its listeners. */
function loadWorker() {
  /** @type {Record<string, Function>} */
  const listeners = {};
  const opened = [];
  const scope = {
    location: { origin: 'https://legal.example' },
    addEventListener: (type, fn) => {
      listeners[type] = fn;
    },
    skipWaiting: async () => {},
    clients: { claim: async () => {} },
  };
  const context = vm.createContext({
    self: scope,
    URL,
    Promise,
    setTimeout,
    caches: {
      open: async (name) => {
        opened.push(name);
        return { addAll: async (list) => opened.push(list) };
      },
      keys: async () => [],
      match: async () => undefined,
    },
    fetch: async () => new Response('net'),
  });
  vm.runInContext(String(files.get('sw.js')), context);
  return { listeners, opened };
}

test('the service worker caches the shell and never answers for the API or another origin', async () => {
  const { listeners, opened } = loadWorker();
  const sw = String(files.get('sw.js'));
  assert.ok(!sw.includes("version: 'dev'"), 'the build put its version in');
  // install: caches exactly the shell (every built file but sw.js, and the page itself).
  let waited;
  listeners.install({ waitUntil: (p) => (waited = p) });
  await waited;
  const shell = opened[1];
  const expected = ['/capture/', ...[...files.keys()].filter((k) => k !== 'index.html' && k !== 'sw.js').map((k) => `/capture/${k}`)];
  assert.deepEqual([...shell].sort(), expected.sort());
  assert.match(opened[0], /^custody-shell-[0-9a-f]{12}$/);

  const answered = (url, method = 'GET', mode = 'cors') => {
    let responded = false;
    listeners.fetch({ request: { url, method, mode }, respondWith: () => (responded = true) });
    return responded;
  };
  assert.equal(answered('https://legal.example/v1/recordings/ab/records/1', 'PUT'), false);
  assert.equal(answered('https://legal.example/v1/server'), false);
  assert.equal(answered('https://legal.example/v1/log/head'), false);
  assert.equal(answered('https://legal.example/enroll', 'GET', 'navigate'), false);
  assert.equal(answered('https://elsewhere.example/capture/app.js'), false);
  assert.equal(answered('https://legal.example/capture/x.js', 'POST'), false);
  assert.equal(answered('https://legal.example/capture/', 'GET', 'navigate'), true);
  assert.equal(answered('https://legal.example/capture/icons/icon.svg'), true);
});
