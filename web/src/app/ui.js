// What the page shows: the words of each screen, and the record screen's state drawn from
// the device's status and the running capture. The formatting helpers are pure (tested in
// node); the rest touches the DOM only through `document`.

import { t, STRINGS } from './i18n.js';

/** @typedef {import('./i18n.js').Lang} Lang */

/**
 * A duration as the page says it: 0:34, 12:05, 1:02:09.
 * @param {number} us microseconds
 */
export function formatDuration(us) {
  const total = Math.max(0, Math.floor((Number(us) || 0) / 1e6));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/**
 * A byte count, short: 0 B, 840 KB, 12.3 MB, 2.1 GB (decimal units, as phones show them).
 * @param {number} n
 */
export function formatBytes(n) {
  const v = Math.max(0, Number(n) || 0);
  if (v < 1000) return `${v} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let x = v;
  let i = -1;
  while (x >= 1000 && i < units.length - 1) {
    x /= 1000;
    i++;
  }
  return `${x < 10 ? x.toFixed(1) : Math.round(x)} ${units[i]}`;
}

/**
 * The state of the record screen as words, from the device's status and the capture.
 * Pure, so that node tests can check what a frightened user reads.
 * @param {Lang} lang
 * @param {{status: any, recordingId: string | null, elapsedMs: number, recording: boolean}} s
 */
export function describe(lang, s) {
  const st = s.status ?? {};
  const recs = Array.isArray(st.recordings) ? st.recordings : [];
  const current = (s.recordingId && recs.find((r) => r.id === s.recordingId))
    ?? (recs.length ? recs[recs.length - 1] : null);
  const safeUs = current?.safeUpToUs;
  const safe = typeof safeUs === 'number' && (current?.receipted ?? 0) > 0
    ? { text: t(lang, 'record.safe', { time: formatDuration(safeUs) }), none: false }
    : { text: t(lang, 'record.safe.none'), none: true };
  const counts = current
    ? `${t(lang, 'record.sealed', { n: current.segments ?? 0 })} · ${t(lang, 'record.receipted', { n: current.receipted ?? 0 })}`
    : '';
  const outbox = st.outbox ?? { count: 0, bytes: 0 };
  const waiting = outbox.count > 0 ? t(lang, 'record.waiting', { n: outbox.count, size: formatBytes(outbox.bytes) }) : '';
  const online = st.online !== false;
  const network = online ? t(lang, 'record.online') : t(lang, 'record.offline');
  let storage = '';
  if (st.quota && st.quota.quota > 0) {
    storage = `${t(lang, 'record.storage', { used: formatBytes(st.quota.usage), quota: formatBytes(st.quota.quota) })}, ${
      t(lang, st.quota.persisted ? 'record.storage.persisted' : 'record.storage.notpersisted')}`;
  }
  return {
    safe,
    counts,
    waiting,
    network,
    online,
    storage,
    elapsed: formatDuration(s.elapsedMs * 1000),
    button: t(lang, s.recording ? 'record.stop' : 'record.start'),
  };
}

/**
 * @param {string} id
 * @returns {HTMLElement}
 */
export function el(id) {
  const e = document.getElementById(id);
  if (!e) throw new Error(`the page has no #${id}`);
  return e;
}

/**
 * Puts every `data-t` element's words in `lang`, and the page's language attribute.
 * @param {Lang} lang
 */
export function applyTexts(lang) {
  document.documentElement.lang = lang;
  for (const node of document.querySelectorAll('[data-t]')) {
    const key = /** @type {HTMLElement} */ (node).dataset.t ?? '';
    if (key in STRINGS.en) node.textContent = t(lang, key);
  }
}

/**
 * Shows one screen and hides the others.
 * @param {'loading' | 'enroll' | 'record'} name
 */
export function showScreen(name) {
  for (const s of ['loading', 'enroll', 'record']) el(`screen-${s}`).hidden = s !== name;
}

/**
 * The always-visible status line at the bottom: an error (red), good news (green) or a
 * note (blue); empty hides it.
 * @param {string} text
 * @param {'error' | 'ok' | 'info'} [kind]
 */
export function setStatus(text, kind = 'error') {
  const s = el('status');
  s.textContent = text;
  s.className = `status ${kind === 'error' ? '' : kind}`.trim();
  s.hidden = !text;
}

/**
 * Draws the record screen.
 * @param {ReturnType<typeof describe>} d
 * @param {boolean} recording
 */
export function drawRecord(d, recording) {
  const safe = el('safe');
  safe.textContent = d.safe.text;
  safe.classList.toggle('none', d.safe.none);
  el('counts').textContent = d.counts;
  el('waiting').textContent = d.waiting;
  const net = el('network');
  net.textContent = d.network;
  net.classList.toggle('offline', !d.online);
  el('storage').textContent = d.storage;
  el('elapsed').textContent = d.elapsed;
  el('rec-badge').hidden = !recording;
  el('record-label').textContent = d.button;
  el('record').setAttribute('aria-pressed', recording ? 'true' : 'false');
}
