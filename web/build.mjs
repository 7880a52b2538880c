// Builds the capture page into web/dist, which the server embeds (server/build.rs):
//   app-<hash>.js      src/app/main.js and everything it imports, one minified ES module
//   style-<hash>.css   style.css
//   index.html         with those names put in
//   sw.js              with the build's version and the app shell's file list put in
//   manifest.webmanifest, icons/ (icon.svg, and PNGs drawn here)
// The output is deterministic (same sources, same bytes: no dates, sorted lists), which a
// node test checks by building twice. Prints each file's size and the gzip total.
//
// usage: node build.mjs [--out DIR]

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync, gzipSync } from 'node:zlib';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));

/** The target: what the page promises to load in (WebCrypto Ed25519 browsers). */
const TARGETS = ['chrome120', 'firefox129', 'safari17'];

/** @param {Uint8Array | string} bytes */
const hash = (bytes) => createHash('sha256').update(bytes).digest('hex').slice(0, 12);

/**
 * Replaces `from` in `text` exactly once, or fails the build (a template that changed
 * shape must not silently ship unreplaced).
 * @param {string} text @param {string} from @param {string} to @param {string} what
 */
function replaceOnce(text, from, to, what) {
  const first = text.indexOf(from);
  if (first < 0 || text.indexOf(from, first + 1) >= 0) {
    throw new Error(`build: ${what}: expected exactly one ${JSON.stringify(from)}`);
  }
  return text.slice(0, first) + to + text.slice(first + from.length);
}

// ---- icons: PNGs drawn in code, so the repository holds no binary ------------------

/**
 * CRC-32 (ISO 3309, as PNG uses it; zlib.crc32 is only in newer node).
 * @param {Buffer} b
 */
function crc32(b) {
  let c = ~0;
  for (const x of b) {
    c ^= x;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

/**
 * The icon (a white ring round a red dot on black) as an RGBA PNG, antialiased by 4x4
 * supersampling. `maskable` keeps the drawing inside the safe zone and fills the square.
 * @param {number} size
 * @param {boolean} maskable
 */
export function iconPng(size, maskable) {
  const scale = maskable ? 0.8 : 1;
  const c = size / 2;
  const ringR = (176 / 512) * size * scale;
  const ringW = (36 / 512) * size * scale;
  const dotR = (108 / 512) * size * scale;
  const corner = maskable ? 0 : (96 / 512) * size;
  const raw = Buffer.alloc((size * 4 + 1) * size);
  for (let y = 0; y < size; y++) {
    raw[y * (size * 4 + 1)] = 0; // filter: none
    for (let x = 0; x < size; x++) {
      let white = 0;
      let red = 0;
      let inside = 0;
      for (let sy = 0; sy < 4; sy++) {
        for (let sx = 0; sx < 4; sx++) {
          const px = x + (sx + 0.5) / 4;
          const py = y + (sy + 0.5) / 4;
          const qx = Math.max(corner - px, px - (size - corner), 0);
          const qy = Math.max(corner - py, py - (size - corner), 0);
          if (corner > 0 && qx * qx + qy * qy > corner * corner) continue;
          inside++;
          const d = Math.hypot(px - c, py - c);
          if (d <= dotR) red++;
          else if (Math.abs(d - ringR) <= ringW / 2) white++;
        }
      }
      const o = y * (size * 4 + 1) + 1 + x * 4;
      const r = (white * 255 + red * 255) / 16;
      const g = (white * 255 + red * 59) / 16;
      const b = (white * 255 + red * 48) / 16;
      raw[o] = Math.round(inside ? (r * 16) / inside : 0);
      raw[o + 1] = Math.round(inside ? (g * 16) / inside : 0);
      raw[o + 2] = Math.round(inside ? (b * 16) / inside : 0);
      raw[o + 3] = Math.round((inside * 255) / 16);
    }
  }
  /** @param {string} type @param {Buffer} data */
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

// ---- the build ----------------------------------------------------------------------

/**
 * Builds the page into `out`; returns the files written (path → bytes).
 * @param {{out?: string, quiet?: boolean}} [options]
 */
export async function build({ out = join(here, 'dist'), quiet = false } = {}) {
  const bundle = await esbuild.build({
    entryPoints: [join(here, 'src/app/main.js')],
    bundle: true,
    format: 'esm',
    minify: true,
    target: TARGETS,
    platform: 'browser',
    write: false,
    // Licences of bundled packages (age-encryption, @noble) stay, at the end of the file.
    legalComments: 'eof',
    charset: 'utf8',
    absWorkingDir: here,
    logLevel: 'warning',
  });
  if (bundle.outputFiles.length !== 1) throw new Error(`build: esbuild wrote ${bundle.outputFiles.length} files, not 1`);
  const js = bundle.outputFiles[0].contents;
  const css = readFileSync(join(here, 'style.css'));

  /** @type {Map<string, Uint8Array>} */
  const files = new Map();
  const jsName = `app-${hash(js)}.js`;
  const cssName = `style-${hash(css)}.css`;
  files.set(jsName, js);
  files.set(cssName, css);
  files.set('manifest.webmanifest', readFileSync(join(here, 'manifest.webmanifest')));
  for (const name of readdirSync(join(here, 'icons')).sort()) {
    if (name.endsWith('.svg')) files.set(`icons/${name}`, readFileSync(join(here, 'icons', name)));
  }
  files.set('icons/icon-192.png', iconPng(192, false));
  files.set('icons/icon-512.png', iconPng(512, false));
  files.set('icons/icon-maskable-512.png', iconPng(512, true));

  let html = readFileSync(join(here, 'index.html'), 'utf8');
  html = replaceOnce(html, '/capture/app.js', `/capture/${jsName}`, 'index.html');
  html = replaceOnce(html, '/capture/style.css', `/capture/${cssName}`, 'index.html');
  files.set('index.html', Buffer.from(html));

  // The shell: the page and every file it needs, under the worker's scope.
  const shell = ['/capture/', ...[...files.keys()].filter((k) => k !== 'index.html').sort().map((k) => `/capture/${k}`)];
  const version = hash([...files.keys()].sort().map((k) => `${k}:${hash(/** @type {Uint8Array} */ (files.get(k)))}`).join('\n'));
  let sw = readFileSync(join(here, 'sw.js'), 'utf8');
  sw = replaceOnce(sw, "({ version: 'dev', shell: [] })", `(${JSON.stringify({ version, shell })})`, 'sw.js');
  files.set('sw.js', Buffer.from(sw));

  rmSync(out, { recursive: true, force: true });
  for (const [name, bytes] of [...files.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    mkdirSync(dirname(join(out, name)), { recursive: true });
    writeFileSync(join(out, name), bytes);
  }
  if (!quiet) {
    let raw = 0;
    let gz = 0;
    for (const [name, bytes] of [...files.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const z = gzipSync(bytes, { level: 9 }).length;
      raw += bytes.length;
      gz += z;
      console.log(`  ${name.padEnd(32)} ${String(bytes.length).padStart(8)} B  gzip ${String(z).padStart(7)} B`);
    }
    const jsGz = gzipSync(js, { level: 9 }).length;
    console.log(`build: web/dist (version ${version}): ${raw} B, ${gz} B gzip-compressed in all; the script ${jsGz} B compressed (target < 300 KB)`);
    if (gz > 300_000) console.log('build: WARNING: the page is over the 300 KB compressed target');
  }
  return files;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const i = process.argv.indexOf('--out');
  await build(i > 0 ? { out: process.argv[i + 1] } : {});
}
