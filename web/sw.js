/* The upscaler page's service worker: the page and its engine work offline on a second visit.
 *
 * What it keeps: the shell (the page, its scripts, Pyodide, TF.js: UPSCALE_ASSETS.shell, listed
 * by build.py) in a cache named after this build's web folder, and the files of every model the
 * page used in one cache all builds share (a model's folder is named by its content). The page
 * registers this worker once its engine is ready, so filling the shell takes its files from the
 * HTTP cache, not from the network a second time; it names each model it loads (keep-model),
 * because the engine that fetched it started before this worker controlled the page.
 * How it answers: content-hashed addresses from its caches first (they never change), the fixed
 * ones (the page, upscale.js, embed.js) from the network first and from the cache offline.
 */
'use strict';

// web-HASH/ is the content-hashed web folder; build.py writes its name here.
const WEB = new URL('web-HASH/', self.location.href).href;
importScripts(WEB + 'assets.js');
const SCOPE = self.registration.scope;
const SHELL_CACHE = `upscale-shell-${WEB.slice(SCOPE.length, -1)}`;
const MODEL_CACHE = 'upscale-models';
const shell = () => self.UPSCALE_ASSETS.shell.map((path) => new URL(path, WEB).href);
const hashed = (href) => self.UPSCALE_ASSETS.hashed.some((prefix) => href.startsWith(SCOPE + prefix));

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(SHELL_CACHE).then((cache) => cache.addAll(shell())));
  self.skipWaiting();
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    // Older builds' shells go; model files stay only for the models this build lists.
    for (const name of await caches.keys()) {
      if (name.startsWith('upscale-shell-') && name !== SHELL_CACHE) await caches.delete(name);
    }
    const folders = (await catalogue()).map((entry) => new URL('./', new URL(entry.url, WEB)).href);
    const models = await caches.open(MODEL_CACHE);
    for (const request of await models.keys()) {
      if (!folders.some((folder) => request.url.startsWith(folder))) await models.delete(request);
    }
    await self.clients.claim();
  })());
});

async function catalogue() {
  const response = await caches.match(WEB + 'models.json', { cacheName: SHELL_CACHE });
  return response ? response.json() : [];
}

self.addEventListener('message', (event) => {
  if (event.data && event.data.type === 'keep-model') event.waitUntil(keepModel(event.data.id));
});

/** Cache a catalogue model's files (from the HTTP cache when the engine just fetched them). */
async function keepModel(id) {
  const entry = (await catalogue()).find((model) => model.id === id);
  if (!entry) return;
  const modelJson = new URL(entry.url, WEB);
  const urls = Object.keys(entry.files).map((name) => new URL(name, modelJson).href);
  const cache = await caches.open(MODEL_CACHE);
  for (const url of urls) {
    if (!(await cache.match(url, { ignoreVary: true }))) await cache.add(url);
  }
}

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET' || !request.url.startsWith(SCOPE)) return;
  if (hashed(request.url)) event.respondWith(cacheFirst(request));
  else event.respondWith(networkFirst(request));
});

async function cacheFirst(request) {
  const hit = await caches.match(request, { ignoreVary: true });
  if (hit) return hit;
  const response = await fetch(request);
  if (response.status === 200) {
    const name = request.url.startsWith(SCOPE + 'models/') ? MODEL_CACHE : SHELL_CACHE;
    const copy = response.clone();
    caches.open(name).then((cache) => cache.put(request, copy)).catch(() => {});
  }
  return response;
}

async function networkFirst(request) {
  try {
    const response = await fetch(request);
    if (response.status === 200 && shell().includes(request.url)) {
      const copy = response.clone();
      caches.open(SHELL_CACHE).then((cache) => cache.put(request, copy)).catch(() => {});
    }
    return response;
  } catch (error) {
    const hit = await caches.match(request, { ignoreVary: true, cacheName: SHELL_CACHE });
    if (hit) return hit;
    throw error;
  }
}
