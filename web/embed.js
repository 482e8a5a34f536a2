/* <upscale-img>: a shop serves a small product photo; the shopper's browser paints it large.
 *
 *   <script type="module" src="https://assets.example/embed.js"></script>
 *   <upscale-img src="/p/mug-150.jpg" alt="Blue mug" width="300" height="300"></upscale-img>
 *
 * The original shows at once, scaled to width x height (the space is reserved, so nothing
 * shifts). Near the viewport, the element asks the page's one shared engine (one worker, one
 * model loaded at a time, a queue with visible images first) for the enlargement, then swaps it
 * in. Results are cached (Cache API) by image URL and content and by model (package, version,
 * path), or for `auto` by the routing table's hash, so the next visit paints the large version
 * at once without starting the engine. Any failure leaves
 * the original in place and says why in an `upscale-error` event.
 *
 * The width and height attributes size the element's box as they size an <img>'s: the space
 * is reserved before the photo arrives, the page's CSS overrides either, a side it sets to
 * auto follows their ratio (then the photo's, once it has arrived), and a value that is not
 * a positive number is ignored.
 *
 * Attributes: src, alt, width, height (display size, CSS px), scale (2, 3 or 4; default: what
 * the display size and devicePixelRatio need), model (a model id; default 'auto': the engine
 * reads the photo's header, the bytes fetched here, and runs the model the bench measured best
 * for such a file, e.g. JPEG noise removal for a compressed JPEG, SPAN for a PNG).
 * Events (bubbling, composed): upscale-start, upscale-progress {done, total}, upscale-done
 * {fromCache, ms, width, height, model, reason}, upscale-error {name, message},
 * upscale-skip {reason}.
 *
 * Where the engine's files are: beside this file, unless the page names the folder with
 * <meta name="upscale-assets" content="https://cdn.example/upscale/"> or a bundled app calls
 * define({ assetsURL }) (the npm package: `import { define } from '@upscale-web/upscale/embed'`).
 */
// The engine's module, from this build's content-hashed folder (web-HASH/). build.py puts
// the module itself here, so that the integrity value a shop gives this file covers it too.
import { Upscaler } from './web-HASH/upscale.js';

const CACHE_NAME = 'upscale-img';
const CACHE_VERSION = '3'; // part of every key: bump it to retire all cached results
// The results kept, at most (least recently shown go first); a shop may set its own with
// <meta name="upscale-img-cache-mb" content="20">.
const CACHE_LIMIT_MB = 50;
const INDEX_KEY = 'upscale-img:index'; // localStorage: { [key]: { src, bytes, used } }
const NEAR_VIEWPORT = '200px'; // start this far before an image scrolls into view
const SCALES = [2, 3, 4];
// `auto` routes x2 and x4 (routing.json). A x3 box gets the x4 result: there is no SPAN x3, and
// its x4 result, shown in a x3 box, is sharper than any x3 model served (about 0 dB).
const AUTO_SCALES = { 2: 2, 3: 4, 4: 4 };
const LOW_MEMORY_GB = 1; // navigator.deviceMemory at or below this: leave originals alone

const STYLE = `
:host { display: inline-block; position: relative; overflow: hidden; vertical-align: bottom; line-height: 0; }
:host([hidden]) { display: none; }
/* The box's height where it has one; where it is auto, the <img>'s own: its width and height
 * attributes' ratio until the photo arrives, then the photo's (as a page's <img> does). */
img { display: block; width: 100%; height: 100%; object-fit: cover; }
.large { position: absolute; inset: 0; height: 100%; object-fit: cover; opacity: 0; }
.large.shown { opacity: 1; }
`;

/* ---------- one engine per page, shared by every element ---------- */

const settings = { assetsURL: null }; // define()'s

/** The engine's files: define()'s assetsURL, else the page's <meta name="upscale-assets">. */
function assetsURL() {
  if (settings.assetsURL != null) return settings.assetsURL;
  const meta = document.querySelector('meta[name="upscale-assets"]');
  return meta && meta.content ? new URL(meta.content, document.baseURI).href : null;
}

const engine = {
  upscaler: null,
  queue: [], // jobs waiting: { element, run }
  busy: false,
  // Why the engine cannot run on this page, for good: the page's Content-Security-Policy
  // refused it (SecurityError), or a file of the engine is not the one built (IntegrityError).
  blocked: null,
};

function inViewport(element) {
  const box = element.getBoundingClientRect();
  return box.bottom > 0 && box.right > 0 && box.top < innerHeight && box.left < innerWidth;
}

/** Run `job.run(upscaler)` when the engine is free; visible images go first. */
function enqueue(job) {
  engine.queue.push(job);
  drain();
}

function dequeue(element) {
  engine.queue = engine.queue.filter((job) => job.element !== element);
}

async function drain() {
  if (engine.busy || !engine.queue.length) return;
  engine.busy = true;
  try {
    while (engine.queue.length) {
      const visible = engine.queue.findIndex((job) => inViewport(job.element));
      const [job] = engine.queue.splice(visible >= 0 ? visible : 0, 1);
      if (engine.blocked) {
        job.element.fail(engine.blocked);
        continue;
      }
      // Each job names its model (or 'auto' and a scale): the engine keeps the models it
      // switches to loaded, so no job waits for another's setModel.
      engine.upscaler ??= new Upscaler({ model: 'auto', scale: job.scale || 2, assetsURL: assetsURL() });
      await job.run(engine.upscaler); // a model that cannot load fails its own job only
    }
  } finally {
    engine.busy = false;
  }
}

/* ---------- the result cache ---------- */

let catalogue = null;

/** The served model manifests, fetched once per page (no engine needed for this). */
function models() {
  catalogue ??= Upscaler.listModels({ assetsURL: assetsURL() }).catch((error) => {
    // A failed download is tried again for the next image; a changed file is not.
    if (error.name !== 'IntegrityError') catalogue = null;
    throw error;
  });
  return catalogue;
}

let routing = null;

/** The hash of the routing table `auto` decides by, fetched once per page (no engine needed). */
function routingKey() {
  routing ??= Upscaler.routing({ assetsURL: assetsURL() }).then(({ text }) => sha256(new TextEncoder().encode(text))).catch((error) => {
    if (error.name !== 'IntegrityError') routing = null;
    throw error;
  });
  return routing;
}

/** What identifies a model's weights: its registry package, version and file. */
function modelKey(manifest) {
  const { source } = manifest;
  if (source) return `pypi:${source.pypi}@${source.version}/${source.model}`; // converted from ncnn
  return `${manifest.package}@${manifest.version}/${manifest.path}`;
}

/**
 * A result is keyed by the photo's content (its sha-256), not only its address: a photo
 * replaced at the same URL gets a new enlargement, and the old one is dropped. For `auto`,
 * the model is what the routing table (by its hash) gives these bytes at this scale: the same
 * key, the same model, with no engine needed to look it up.
 */
function cacheKey(src, digest, model) {
  const params = new URLSearchParams({ src, sha256: digest, model, v: CACHE_VERSION });
  return new URL(`/__upscale-img__/?${params}`, location.origin).href;
}

async function sha256(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * The Cache API store of results, with an index in localStorage (size and last use of each
 * entry) so that it stays under its cap. Without the Cache API (an insecure context, storage
 * blocked) nothing is cached; without localStorage nothing is evicted.
 */
const results = {
  pruned: false,
  async open() {
    let cache;
    try {
      cache = crypto.subtle ? await caches.open(CACHE_NAME) : null;
    } catch {
      return null;
    }
    if (cache && !this.pruned) {
      this.pruned = true;
      await this.prune(cache).catch(() => {});
    }
    return cache;
  },
  /** Once per page: drop what the index does not know (an older CACHE_VERSION's results). */
  async prune(cache) {
    localStorage.getItem(INDEX_KEY); // throws where storage is blocked: then keep everything
    await this.resultBytes(); // a Python snapshot over the whole cap goes
    const index = this.index();
    const orphans = (await cache.keys()).filter((request) => !index[request.url]);
    await Promise.all(orphans.map((request) => cache.delete(request)));
  },
  limitBytes() {
    const meta = document.querySelector('meta[name="upscale-img-cache-mb"]');
    const mb = meta ? Number(meta.content) : CACHE_LIMIT_MB;
    return (Number.isFinite(mb) && mb >= 0 ? mb : CACHE_LIMIT_MB) * 2 ** 20;
  },
  index() {
    try {
      return JSON.parse(localStorage.getItem(INDEX_KEY)) || {};
    } catch {
      return {};
    }
  },
  save(index) {
    try {
      localStorage.setItem(INDEX_KEY, JSON.stringify(index));
    } catch {
      // storage full or blocked: the cache still works, it is just not trimmed
    }
  },
  async get(cache, key) {
    const hit = await cache.match(key);
    if (hit) {
      const index = this.index();
      if (index[key]) index[key].used = Date.now();
      this.save(index);
    }
    return hit;
  },
  /**
   * What the cap leaves the results: the engine's Python snapshot (a returning visit starts
   * from it) counts against it too; one larger than the whole cap is deleted.
   */
  async resultBytes() {
    const limit = this.limitBytes();
    const python = await Upscaler.pythonSnapshots().catch(() => ({ bytes: 0 }));
    if (python.bytes <= limit) return limit - python.bytes;
    await Upscaler.pythonSnapshots({ drop: true }).catch(() => {});
    return limit;
  },
  /** Keep `blob` under `key`: older results for the same address go, then the least recently
   * shown ones until everything fits under the cap. */
  async put(cache, key, src, blob, ran = {}) {
    const limit = await this.resultBytes();
    const index = this.index();
    const drop = Object.keys(index).filter((other) => other !== key && index[other].src === src);
    index[key] = { src, bytes: blob.size, used: Date.now() };
    const byAge = Object.keys(index).sort((a, b) => index[a].used - index[b].used);
    let total = byAge.reduce((sum, k) => sum + index[k].bytes, 0);
    for (const old of byAge) {
      if (total <= limit) break;
      if (drop.includes(old)) continue;
      drop.push(old);
      total -= index[old].bytes;
    }
    if (drop.includes(key)) return; // larger than the whole cap: not kept
    for (const old of drop) delete index[old];
    this.save(index);
    await Promise.all(drop.map((old) => cache.delete(old)));
    // what ran, for the next visit's upscale-done (percent-encoded: a header is Latin-1)
    const headers = { 'Content-Type': 'image/png', 'X-Upscale-Ran': encodeURIComponent(JSON.stringify(ran)) };
    await cache.put(key, new Response(blob, { headers }));
  },
};

/* ---------- the element ---------- */

let observer = null;

function visibility() {
  observer ??= new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      observer.unobserve(entry.target);
      entry.target.nearViewport();
    }
  }, { rootMargin: NEAR_VIEWPORT });
  return observer;
}

function whyNot() {
  const connection = navigator.connection;
  if (connection && connection.saveData) return 'the browser asks to save data';
  if (navigator.deviceMemory && navigator.deviceMemory <= LOW_MEMORY_GB) {
    return `this device has little memory (${navigator.deviceMemory} GB)`;
  }
  return null;
}

class UpscaleImg extends HTMLElement {
  static get observedAttributes() {
    return ['src', 'alt', 'width', 'height', 'scale', 'model'];
  }

  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(STYLE);
    // width and height as the box, under the page's CSS (a :host rule loses to the page's)
    this.size = new CSSStyleSheet();
    root.adoptedStyleSheets = [sheet, this.size];
    this.original = document.createElement('img');
    this.original.part = 'image';
    this.original.decoding = 'async';
    this.large = document.createElement('img');
    this.large.className = 'large';
    this.large.alt = '';
    this.large.setAttribute('aria-hidden', 'true');
    this.large.part = 'image large';
    root.append(this.original, this.large);
    this.largeUrl = null;
    this.controller = null;
    this.state = 'idle'; // idle | waiting | working | done | failed | skipped
    this.live = false; // between connectedCallback and disconnectedCallback
  }

  connectedCallback() {
    this.live = true;
    this.render();
    this.reset();
  }

  disconnectedCallback() {
    this.live = false;
    this.stop();
  }

  attributeChangedCallback(name, before, after) {
    // Upgrades report every parsed attribute before connectedCallback: nothing to redo yet.
    if (before === after || !this.live) return;
    this.render();
    if (name === 'src' || name === 'scale' || name === 'model') this.reset();
  }

  render() {
    const { original } = this;
    if (original.getAttribute('src') !== this.getAttribute('src')) original.src = this.getAttribute('src') || '';
    original.alt = this.getAttribute('alt') || '';
    const box = [];
    for (const side of ['width', 'height']) {
      const value = this.dimension(side);
      if (value) {
        original.setAttribute(side, value);
        box.push(`${side}: ${value}px;`);
      } else {
        original.removeAttribute(side);
      }
    }
    this.size.replaceSync(`:host { ${box.join(' ')} }`);
  }

  /** The `width` or `height` attribute in CSS px, or null where it is not a positive number. */
  dimension(side) {
    const value = Number(this.getAttribute(side)); // absent: 0, ignored
    return Number.isFinite(value) && value > 0 ? value : null;
  }

  /** Forget any previous result and wait to come near the viewport again. */
  reset() {
    this.stop();
    this.large.classList.remove('shown');
    this.state = 'idle';
    if (!this.getAttribute('src')) return;
    const reason = whyNot();
    if (reason) {
      this.state = 'skipped';
      this.emit('upscale-skip', { reason });
      return;
    }
    visibility().observe(this);
  }

  stop() {
    if (observer) observer.unobserve(this);
    dequeue(this);
    if (this.controller) this.controller.abort();
    this.controller = null;
    if (this.largeUrl) URL.revokeObjectURL(this.largeUrl);
    this.largeUrl = null;
    this.large.removeAttribute('src');
  }

  emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail, bubbles: true, composed: true }));
  }

  fail(error) {
    this.state = 'failed';
    this.emit('upscale-error', { name: error.name || 'Error', message: error.message || String(error) });
  }

  /** How much larger the picture must be to fill its box on this screen. */
  async chooseScale() {
    const asked = Number(this.getAttribute('scale'));
    if (SCALES.includes(asked)) return asked;
    await this.original.decode();
    const natural = this.original.naturalWidth;
    // The box as laid out (the attributes' size, or the page's CSS where it overrides them).
    const shown = (this.getBoundingClientRect().width || this.dimension('width')) * (devicePixelRatio || 1);
    const need = Math.ceil(shown / natural - 0.05);
    if (need < 2) return 1;
    return SCALES.find((s) => s >= need) || SCALES[SCALES.length - 1];
  }

  async nearViewport() {
    const src = this.original.src; // absolute
    this.state = 'waiting';
    this.controller = new AbortController();
    const { signal } = this.controller; // aborted by reset(): a new src, scale or model
    this.emit('upscale-start', { src });
    let scale;
    try {
      scale = await this.chooseScale();
    } catch {
      this.fail(Object.assign(new Error(`the image ${src} could not be loaded`), { name: 'LoadError' }));
      return;
    }
    if (signal.aborted) return;
    if (scale === 1) {
      this.state = 'skipped';
      this.emit('upscale-skip', { reason: 'the original is already sharp at this size' });
      return;
    }
    const model = this.getAttribute('model') || 'auto';
    let manifest;
    let modelKeyed;
    try {
      if (model === 'auto') {
        manifest = { id: 'auto', scale: AUTO_SCALES[scale] };
        modelKeyed = `auto@${manifest.scale}:routing-${await routingKey()}`;
      } else {
        manifest = (await models()).find((m) => m.id === model);
        modelKeyed = manifest && modelKey(manifest);
      }
    } catch (error) {
      this.fail(error.name === 'IntegrityError' ? error : Object.assign(
        new Error(`the model list could not be loaded: ${error.message}`), { name: 'LoadError' }));
      return;
    }
    if (signal.aborted) return;
    if (!manifest) {
      this.fail(Object.assign(new Error(`unknown model "${model}"`), { name: 'UnknownModel' }));
      return;
    }
    let photo;
    try {
      // The bytes <img> just loaded (chooseScale waited for it, revalidating as the shop's
      // headers say): from the HTTP cache, without asking the network a second time.
      const response = await fetch(src, { signal, cache: 'force-cache' });
      if (!response.ok) throw Object.assign(new Error(`the image ${src} answered HTTP ${response.status}`), { name: 'LoadError' });
      photo = await response.blob();
    } catch (error) {
      if (error.name !== 'AbortError') this.fail(error);
      return;
    }
    const cache = await results.open();
    const key = cache && cacheKey(src, await sha256(await photo.arrayBuffer()), modelKeyed);
    const hit = cache && (await results.get(cache, key));
    if (signal.aborted) return;
    if (hit) {
      let ran = {};
      try {
        ran = JSON.parse(decodeURIComponent(hit.headers.get('X-Upscale-Ran') || '%7B%7D'));
      } catch {
        // a result kept by an older build: what ran is not known
      }
      await this.show(await hit.blob(), { fromCache: true, ms: 0, ...ran }, signal);
      return;
    }
    const job = model === 'auto' ? { model, scale: manifest.scale } : { model };
    enqueue({ element: this, scale: job.scale, run: (upscaler) => this.upscaleWith(upscaler, { src, photo }, job, cache, key, signal) });
  }

  async upscaleWith(upscaler, { src, photo }, job, cache, key, signal) {
    if (signal.aborted) return;
    this.state = 'working';
    const started = performance.now();
    try {
      const input = await decoded(photo);
      let output;
      try {
        output = await upscaler.upscale(input, {
          ...job,
          file: photo, // `auto` reads the photo's header: JPEG or not, and how compressed
          signal,
          onProgress: ({ done, total }) => this.emit('upscale-progress', { done, total }),
        });
      } finally {
        if (input.close) input.close(); // an ImageBitmap: the engine has its own copy
      }
      const blob = await encodePng(output);
      const ran = { model: output.model, reason: output.reason };
      if (cache) await results.put(cache, key, src, blob, ran).catch(() => {});
      await this.show(blob, { fromCache: false, ms: performance.now() - started, ...ran }, signal);
    } catch (error) {
      if (['SecurityError', 'IntegrityError'].includes(error.name)) engine.blocked = error;
      if (error.name !== 'AbortError') this.fail(error);
    }
  }

  /**
   * Decode the large picture first, then swap it in: no flash, no layout change. Nothing is
   * shown once `signal` is aborted: the element moved on to another photo meanwhile.
   */
  async show(blob, { fromCache, ms, model = null, reason = null }, signal) {
    if (signal.aborted) return;
    const url = URL.createObjectURL(blob);
    this.large.src = url;
    try {
      await this.large.decode();
    } catch {
      URL.revokeObjectURL(url);
      if (!signal.aborted) this.fail(Object.assign(new Error('the cached result could not be decoded'), { name: 'DecodeError' }));
      return;
    }
    if (signal.aborted) {
      URL.revokeObjectURL(url); // reset() already cleared this.large
      return;
    }
    if (this.largeUrl) URL.revokeObjectURL(this.largeUrl);
    this.largeUrl = url;
    this.large.classList.add('shown');
    this.state = 'done';
    this.controller = null;
    this.emit('upscale-done', {
      fromCache, ms, width: this.large.naturalWidth, height: this.large.naturalHeight, model, reason,
    });
  }
}

/**
 * The photo decoded by the browser (EXIF orientation applied, as <img> shows it), so the
 * engine never has to load Pillow for it; a format the browser cannot decode goes to the
 * engine as it is, which names what is wrong with it.
 */
async function decoded(blob) {
  try {
    return await createImageBitmap(blob, { premultiplyAlpha: 'none' });
  } catch {
    return blob;
  }
}

async function encodePng(imageData) {
  const canvas = new OffscreenCanvas(imageData.width, imageData.height);
  canvas.getContext('2d').putImageData(imageData, 0, 0);
  return canvas.convertToBlob({ type: 'image/png' });
}

/**
 * Define <upscale-img> (importing this module already does) and say where the engine's files
 * are served: `assetsURL`, as Upscaler takes it. Call it before the first image upscales.
 */
export function define({ assetsURL: where = null } = {}) {
  if (where != null) settings.assetsURL = String(where);
  if (!customElements.get('upscale-img')) customElements.define('upscale-img', UpscaleImg);
}

define();
