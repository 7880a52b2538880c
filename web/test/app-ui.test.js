// What the page says (src/app/i18n.js, src/app/ui.js): both languages complete, the
// language chosen from the browser, each enrollment error's words, and the record screen's
// state sentences from a device status.

import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { STRINGS, errorKey, pickLanguage, t } from '../src/app/i18n.js';
import { describe, formatBytes, formatDuration } from '../src/app/ui.js';

test('English and Spanish have the same keys, none empty, with the same placeholders', () => {
  const en = Object.keys(STRINGS.en).sort();
  assert.deepEqual(Object.keys(STRINGS.es).sort(), en);
  const holes = (s) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
  for (const k of en) {
    assert.ok(STRINGS.en[k].length > 0 && STRINGS.es[k].length > 0, k);
    assert.deepEqual(holes(STRINGS.es[k]), holes(STRINGS.en[k]), k);
  }
});

test('every data-t key in index.html has words', () => {
  const html = readFileSync(fileURLToPath(new URL('../index.html', import.meta.url)), 'utf8');
  const keys = [...html.matchAll(/data-t="([^"]+)"/g)].map((m) => m[1]);
  assert.ok(keys.length > 10);
  for (const k of keys) assert.ok(k in STRINGS.en, `index.html names ${k}`);
});

test('the language is the first of the browser\'s we have', () => {
  assert.equal(pickLanguage(['es-MX', 'en-US']), 'es');
  assert.equal(pickLanguage(['en-GB', 'es']), 'en');
  assert.equal(pickLanguage(['fr-FR', 'es-419']), 'es');
  assert.equal(pickLanguage(['de']), 'en');
  assert.equal(pickLanguage([]), 'en');
  assert.equal(t('es', 'record.safe', { time: '0:34' }), 'A salvo con el equipo legal hasta 0:34');
  assert.equal(t('en', 'record.safe', { time: '0:34' }), 'Safe with the legal team up to 0:34');
  assert.equal(t('en', 'no.such.key'), 'no.such.key');
});

test('each enrollment failure has its own plain message', () => {
  const cases = {
    'link.invalid': 'error.link.invalid',
    'link.scheme': 'error.link.invalid',
    'server.fingerprint.mismatch': 'error.server.fingerprint.mismatch',
    'recipients.forged': 'error.recipients.forged',
    'cert.invalid': 'error.recipients.forged',
    network: 'error.network',
    'enroll.token_used': 'error.enroll.token.used',
    'enroll.token_expired': 'error.enroll.token.expired',
    'enroll.token_unknown': 'error.enroll.token.unknown',
    quota: 'error.quota',
    'something.new': 'error.unknown',
  };
  for (const [code, key] of Object.entries(cases)) assert.equal(errorKey(code), key, code);
  assert.equal(errorKey(undefined), 'error.unknown');
  // Distinct words for distinct failures.
  const words = new Set(Object.values(cases).map((k) => t('en', k, { detail: 'x' })));
  assert.equal(words.size, new Set(Object.values(cases)).size);
});

test('durations and sizes as the page shows them', () => {
  assert.equal(formatDuration(0), '0:00');
  assert.equal(formatDuration(34_900_000), '0:34');
  assert.equal(formatDuration(605_000_000), '10:05');
  assert.equal(formatDuration(3_729_000_000), '1:02:09');
  assert.equal(formatDuration(-5), '0:00');
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(999), '999 B');
  assert.equal(formatBytes(840_000), '840 KB');
  assert.equal(formatBytes(12_300_000), '12 MB');
  assert.equal(formatBytes(2_100_000_000), '2.1 GB');
});

test('the record screen says what is safe, what waits, and when it is offline', () => {
  const status = {
    recordings: [
      { id: 'old', segments: 5, receipted: 5, ended: true, safeUpToUs: 10_000_000 },
      { id: 'cur', segments: 17, receipted: 15, ended: false, safeUpToUs: 34_200_000 },
    ],
    outbox: { count: 2, bytes: 240_000 },
    online: false,
    quota: { usage: 12_000_000, quota: 2_000_000_000, persisted: false },
  };
  const d = describe('en', { status, recordingId: 'cur', elapsedMs: 38_000, recording: true });
  assert.equal(d.safe.text, 'Safe with the legal team up to 0:34');
  assert.equal(d.counts, 'Sealed: 17 · With the legal team: 15');
  assert.equal(d.waiting, 'Waiting to send: 2 (240 KB)');
  assert.match(d.network, /^Offline/);
  assert.equal(d.online, false);
  assert.match(d.storage, /12 MB used of 2.0 GB, the browser may clear it/);
  assert.equal(d.elapsed, '0:38');
  assert.equal(d.button, 'Stop');

  const none = describe('es', { status: { recordings: [{ id: 'n', segments: 1, receipted: 0, safeUpToUs: 0 }], outbox: { count: 1, bytes: 10 }, online: true }, recordingId: 'n', elapsedMs: 0, recording: false });
  assert.equal(none.safe.none, true);
  assert.equal(none.safe.text, 'Aún nada con el equipo legal');
  assert.equal(none.network, 'En línea');
  assert.equal(none.button, 'Grabar');

  const empty = describe('en', { status: null, recordingId: null, elapsedMs: 0, recording: false });
  assert.equal(empty.counts, '');
  assert.equal(empty.waiting, '');
});
