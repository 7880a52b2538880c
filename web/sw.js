// The capture page's service worker: keeps the app shell (the page's own files) so that it
// opens without a network, e.g. in a dead zone where the observer needs to start recording
// now and upload later. It never caches or answers anything under /v1/ (the API): those
// requests are not even looked at, so uploads, receipts and log checks always reach the
// server (or fail, and the outbox keeps them). Its scope is /capture/.

// Replaced by build.mjs: the build's version and the shell's files.
const BUILD = /** @type {{version: string, shell: string[]}} */ ({ version: 'dev', shell: [] });

const PREFIX = 'custody-shell-';
const CACHE = PREFIX + BUILD.version;
/** How long a navigation waits for the network before the cached page is shown. */
const NETWORK_WAIT_MS = 3000;

// ServiceWorkerGlobalScope is in the WebWorker lib, which cannot be checked beside DOM.
const sw = /** @type {any} */ (self);

sw.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(BUILD.shell)).then(() => sw.skipWaiting()));
});

sw.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith(PREFIX) && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => sw.clients.claim()),
  );
});

/**
 * Whether the shell answers this request: a GET of this origin under /capture/, never
 * the API.
 * @param {Request} request
 */
function isShellRequest(request) {
  const url = new URL(request.url);
  return request.method === 'GET' && url.origin === sw.location.origin
    && url.pathname.startsWith('/capture/') && !url.pathname.startsWith('/v1/');
}

sw.addEventListener('fetch', (event) => {
  const request = event.request;
  if (!isShellRequest(request)) return; // the browser does it, as if there were no worker
  if (request.mode === 'navigate') {
    event.respondWith(navigation(request));
    return;
  }
  // Assets have content-hashed names: the cached copy is the right one.
  event.respondWith(caches.match(request).then((hit) => hit ?? fetch(request)));
});

/**
 * The page itself: the network first (so a new server's page replaces the old one), the
 * cached page when the network fails or is too slow.
 * @param {Request} request
 */
async function navigation(request) {
  const cached = caches.match('/capture/');
  try {
    const fresh = await Promise.race([
      fetch(request),
      new Promise((_, reject) => setTimeout(() => reject(new Error('slow network')), NETWORK_WAIT_MS)),
    ]);
    if (/** @type {Response} */ (fresh).ok) return /** @type {Response} */ (fresh);
    return (await cached) ?? /** @type {Response} */ (fresh);
  } catch (e) {
    const hit = await cached;
    if (hit) return hit;
    throw e;
  }
}
