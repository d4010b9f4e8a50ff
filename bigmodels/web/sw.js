// Offline use after the first load: every same-origin GET is fetched from the network when it
// answers and kept in the cache, and served from the cache when it does not. Network first, so a
// new bundle or page is picked up whenever the server is there; the page checks every bundle
// file's sha256 itself, so a cached copy is never trusted more than a fresh one.
const CACHE = 'bigmodels-web-v1';
const SHELL = ['./', 'index.html', 'app.js', 'bundle.js', 'zip.js', 'sha256.js', 'model.js', 'tflite_file.js',
  'tokenizer.js', 'selftest.js', 'images.js', 'resize.js', 'manifest.webmanifest', 'icon.svg', 'runtime/unicode_tables.js',
  'runtime/litert/core/index.js', 'runtime/litert/wasm-utils/index.js'];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

// The page sends what it loaded once it is ready; each is fetched again and kept.
self.addEventListener('message', (event) => {
  const urls = event.data?.keep ?? [];
  event.waitUntil(caches.open(CACHE).then(async (cache) => {
    const kept = await Promise.all(urls.map((url) => cache.add(url).then(() => true, () => false)));
    event.ports[0]?.postMessage({kept: kept.filter(Boolean).length, of: urls.length});
  }));
});

self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET' || new URL(request.url).origin !== self.location.origin) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    try {
      const response = await fetch(request);
      if (response.ok) await cache.put(request, response.clone());
      return response;
    } catch (error) {
      const cached = await cache.match(request, {ignoreSearch: true});
      if (cached) return cached;
      throw error;
    }
  })());
});
