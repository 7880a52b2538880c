// The capture page: enrollment from the legal team's link, then one big button that
// records, seals and uploads, and a second one that photographs a paper. Everything the
// device does (keys, sealing, the outbox, uploads, log checks) is web-core's Device; this
// file joins it to the camera and the screen.

import { Device } from '../device.js';
import { pickLanguage, t, errorKey } from './i18n.js';
import { applyTexts, describe, drawRecord, el, setStatus, showScreen } from './ui.js';
import { Capture, CONSTRAINTS, WakeLock } from './recorder.js';
import { sealPhoto, takeJpeg } from './photo.js';

/** @typedef {import('./i18n.js').Lang} Lang */

const LANG_KEY = 'custody.lang';

const app = {
  /** @type {Lang} */
  lang: 'en',
  /** @type {any} */
  device: null,
  /** @type {string | null} the enrollment link read from the address bar */
  link: null,
  /** @type {MediaStream | null} */
  stream: null,
  /** @type {Capture | null} */
  capture: null,
  /** @type {string | null} */
  recordingId: null,
  wake: new WakeLock(),
  stoppedByBackground: false,
  persisted: /** @type {boolean | null} */ (null),
};

/** What tests and benchmarks read (read-only use): the current and past captures'
 * statistics, the photos, and the device's status. */
const stats = {
  /** @type {ReturnType<typeof import('./recorder.js').newStats> | null} */
  current: null,
  /** @type {ReturnType<typeof import('./recorder.js').newStats>[]} */
  recordings: [],
  /** @type {{id: string, bytes: number, atMs: number}[]} */
  photos: [],
  /** @type {{atMs: number, reason: string}[]} */
  stops: [],
  status: () => app.device?.status() ?? null,
};
/** @type {any} */ (globalThis).custodyStats = stats;

/** @param {string} key @param {Record<string, string|number>} [p] */
const say = (key, p) => t(app.lang, key, p);

/**
 * The enrollment link in the address bar (`/enroll#token=..&fp=..`), removed from it at
 * once so it is not left in history or shown to someone looking at the screen.
 * @returns {string | null}
 */
function takeLinkFromAddress() {
  const hash = location.hash;
  if (!hash.includes('token=')) return null;
  const link = `${location.origin}${location.pathname}${hash}`;
  history.replaceState(null, '', location.pathname);
  return link;
}

/**
 * The server fingerprint a link carries, for showing before enrolling.
 * @param {string} link
 */
function fingerprintOf(link) {
  const i = link.indexOf('#');
  if (i < 0) return null;
  return new URLSearchParams(link.slice(i + 1)).get('fp');
}

/** @param {any} e */
function errorText(e) {
  if (e?.name === 'QuotaExceededError') return say('error.quota');
  const key = errorKey(e?.code);
  const detail = String(e?.message ?? e);
  return key === 'error.unknown' ? say(key, { detail }) : say(key);
}

function setLanguage(/** @type {Lang} */ lang) {
  app.lang = lang;
  try {
    localStorage.setItem(LANG_KEY, lang);
  } catch {
    // A preference only: private mode may refuse it.
  }
  applyTexts(lang);
  refresh();
}

// ---- enrollment -------------------------------------------------------------------

function showEnroll() {
  showScreen('enroll');
  const fp = app.link ? fingerprintOf(app.link) : null;
  el('enroll-fp-box').hidden = !fp;
  el('enroll-fp').textContent = fp ?? '';
  el('enroll-paste-box').hidden = !!app.link;
}

/** Camera and microphone permission is asked here, not at the moment of recording. */
async function askPermission() {
  if (!navigator.mediaDevices?.getUserMedia) throw Object.assign(new Error(say('enroll.permission.none')), { code: 'camera.none' });
  try {
    const s = await navigator.mediaDevices.getUserMedia(CONSTRAINTS);
    for (const track of s.getTracks()) track.stop();
  } catch (e) {
    const denied = e?.name === 'NotAllowedError' || e?.name === 'SecurityError';
    throw Object.assign(new Error(say(denied ? 'enroll.permission.denied' : 'error.camera', { detail: String(e?.message ?? e) })), { code: 'camera' });
  }
}

async function enroll() {
  const button = /** @type {HTMLButtonElement} */ (el('enroll-go'));
  const step = el('enroll-step');
  const link = app.link ?? /** @type {HTMLInputElement} */ (el('enroll-link')).value.trim();
  setStatus('');
  button.disabled = true;
  try {
    step.textContent = say('enroll.step.permission');
    await askPermission();
    // May be refused (Chromium headless always refuses); the record screen says which.
    app.persisted = await app.device.requestPersistence().catch(() => false);
    step.textContent = say('enroll.step.enrolling');
    await app.device.enroll(link, { onStep: () => {} });
    step.textContent = '';
    // The page lives at /capture/ from now on (the service worker's scope, the manifest's
    // start URL), without loading it again.
    history.replaceState(null, '', '/capture/');
    app.link = null;
    app.device.startUploading();
    await showRecord();
    setStatus(say('enroll.done'), 'ok');
  } catch (e) {
    step.textContent = '';
    setStatus(e?.code === 'camera' || e?.code === 'camera.none' ? e.message : errorText(e));
  } finally {
    button.disabled = false;
  }
}

// ---- recording --------------------------------------------------------------------

async function openCamera() {
  if (app.stream && app.stream.getTracks().every((tr) => tr.readyState === 'live')) return app.stream;
  app.stream = await navigator.mediaDevices.getUserMedia(CONSTRAINTS);
  const video = /** @type {HTMLVideoElement} */ (el('preview'));
  video.srcObject = app.stream;
  await video.play().catch(() => {});
  return app.stream;
}

function closeCamera() {
  for (const track of app.stream?.getTracks() ?? []) track.stop();
  app.stream = null;
  /** @type {HTMLVideoElement} */ (el('preview')).srcObject = null;
}

async function showRecord() {
  showScreen('record');
  refresh();
  await openCamera().catch((e) => setStatus(say('error.camera', { detail: String(e?.message ?? e) })));
}

const recording = () => app.capture?.state === 'recording';

async function toggleRecord() {
  if (recording()) {
    await stopRecording({ reason: 1 }, 'stopped');
    setStatus(say('record.ended'), 'ok');
    return;
  }
  const tapAt = performance.now();
  setStatus('');
  el('stopped').hidden = true;
  app.stoppedByBackground = false;
  try {
    const stream = await openCamera();
    const capture = new Capture({ device: app.device, stream });
    capture.stats.tapAtMs = tapAt;
    capture.addEventListener('change', () => {
      app.recordingId = capture.recording?.id ?? app.recordingId;
      if (capture.error) setStatus(errorText(capture.error));
      refresh();
    });
    app.capture = capture;
    stats.current = capture.stats;
    stats.recordings.push(capture.stats);
    // The camera going away (another app took it, the track ended) ends the recording.
    for (const track of stream.getTracks()) {
      track.addEventListener('ended', () => void stopRecording({ reason: 2, message: 'the camera or microphone stopped' }, 'track'), { once: true });
    }
    capture.start();
    await app.wake.acquire();
    if (!WakeLock.supported) setStatus(say('record.wakelock.none'), 'info');
  } catch (e) {
    setStatus(errorText(e));
  }
  refresh();
}

/**
 * @param {{reason: number, message?: string}} how
 * @param {string} why for the statistics
 */
async function stopRecording(how, why) {
  const capture = app.capture;
  if (!capture || capture.state !== 'recording') return;
  stats.stops.push({ atMs: performance.now(), reason: why });
  const done = capture.stop(how);
  await app.wake.release();
  await done;
  refresh();
}

async function photo() {
  const button = /** @type {HTMLButtonElement} */ (el('photo'));
  button.disabled = true;
  setStatus(say('record.photo.busy'), 'info');
  try {
    const stream = await openCamera();
    const track = stream.getVideoTracks()[0];
    const jpeg = await takeJpeg(track, /** @type {HTMLVideoElement} */ (el('preview')), { recording: recording() });
    const { id } = await sealPhoto(app.device, jpeg, Date.now() * 1000);
    stats.photos.push({ id, bytes: jpeg.length, atMs: performance.now() });
    setStatus(say('record.photo.sealed'), 'ok');
  } catch (e) {
    setStatus(errorText(e));
  } finally {
    button.disabled = false;
  }
}

/** Mobile browsers stop the camera in the background and freeze the page: end the
 * recording honestly, sealed and saved, instead of leaving a hole in it. */
function onHidden() {
  if (recording()) {
    app.stoppedByBackground = true;
    void stopRecording({ reason: 2, message: 'the page went to the background' }, 'background');
  }
  if (!recording()) closeCamera();
}

function onVisible() {
  if (!app.device?.enrollment) return;
  if (app.stoppedByBackground) {
    el('stopped-text').textContent = say('record.stopped.background');
    el('stopped').hidden = false;
  }
  void app.wake.reacquire();
  if (!el('screen-record').hidden) void openCamera().catch(() => {});
  refresh();
}

// ---- drawing ----------------------------------------------------------------------

function refresh() {
  if (!app.device || el('screen-record').hidden) return;
  let status = null;
  try {
    status = app.device.status();
  } catch {
    status = null;
  }
  const d = describe(app.lang, {
    status,
    recordingId: app.recordingId,
    elapsedMs: app.capture && app.capture.state !== 'idle' && app.capture.state !== 'ended' ? app.capture.elapsedMs : 0,
    recording: recording(),
  });
  drawRecord(d, recording());
  if (status?.inconsistent) setStatus(say('record.inconsistent'));
  else if (status?.lastError && (status.lastError.name === 'QuotaExceededError' || errorKey(status.lastError.code) === 'error.quota')) setStatus(say('error.quota'));
}

// ---- start ------------------------------------------------------------------------

async function boot() {
  let saved = null;
  try {
    saved = localStorage.getItem(LANG_KEY);
  } catch {
    saved = null;
  }
  app.lang = saved === 'es' || saved === 'en' ? saved : pickLanguage(navigator.languages ?? [navigator.language]);
  applyTexts(app.lang);
  el('lang').addEventListener('click', () => setLanguage(app.lang === 'en' ? 'es' : 'en'));
  el('enroll-go').addEventListener('click', () => void enroll());
  el('record').addEventListener('click', () => void toggleRecord());
  el('again').addEventListener('click', () => void toggleRecord());
  el('photo').addEventListener('click', () => void photo());
  document.addEventListener('visibilitychange', () => (document.visibilityState === 'hidden' ? onHidden() : onVisible()));
  window.addEventListener('pagehide', onHidden);
  document.addEventListener('freeze', onHidden);
  // Back from frozen while still visible (Page Lifecycle): say what happened.
  document.addEventListener('resume', onVisible);
  if ('serviceWorker' in navigator) {
    // The app shell, so the page opens offline; it never touches /v1/.
    navigator.serviceWorker.register('/capture/sw.js', { scope: '/capture/' }).catch(() => {});
  }
  app.link = takeLinkFromAddress();
  // A link opened (or pasted into the address bar) while the page is open changes only
  // the fragment: no reload, so read it here too.
  window.addEventListener('hashchange', () => {
    const link = takeLinkFromAddress();
    if (!link) return;
    app.link = app.device?.enrollment ? null : link;
    if (app.device && !app.device.enrollment) {
      setStatus('');
      showEnroll();
    } else history.replaceState(null, '', '/capture/');
  });
  try {
    app.device = await Device.open();
  } catch (e) {
    showScreen('enroll');
    setStatus(errorText(e));
    return;
  }
  app.device.addEventListener('change', refresh);
  setInterval(refresh, 500);
  if (!app.device.enrollment) {
    showEnroll();
    return;
  }
  if (app.link) {
    // Already enrolled here: the old link is not needed (and enrolling again would make a
    // second device key); say so instead of failing.
    app.link = null;
    history.replaceState(null, '', '/capture/');
  }
  app.device.startUploading();
  await showRecord();
}

void boot();
