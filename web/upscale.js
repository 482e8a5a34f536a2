/* Upscale: super-resolution in the browser. The one module pages import.
 *
 *   import { Upscaler } from './upscale.js';
 *   const up = new Upscaler();       // model 'auto': chosen per image, x2
 *   const info = await up.ready;   // { backend, reason, model, auto, tile, workers, timings, versions }
 *   const out = await up.upscale(file, { onProgress, signal });   // ImageData, size x scale
 *   out.model, out.reason;         // what ran, and why ('JPEG, quality ≈ 78, 4:2:0')
 *   up.dispose();
 *
 * All the work happens in a Web Worker (Pyodide + TF.js); this thread only moves buffers.
 */

// web/rpc.js: the build writes it here (the message protocol the workers speak too).

// Where the engine's files are by default: the assets root (the web folder web-<hash>/, with
// vendor/ and models/ beside it) and the web folder's name. In dist/ this module sits in the
// web folder itself; build.py rewrites this line in the modules that sit above it (embed.js,
// the npm package's index.js), which know the folder's name.
const HOME = { root: new URL('../', import.meta.url), web: new URL('./', import.meta.url).pathname.split('/').at(-2) + '/' };

// 'auto': each image gets the model that enlarges its kind best (the file's format, a JPEG's
// quality), as the bench measured it (routing.json; upscale.routing decides in the worker).
export const DEFAULT_MODEL = 'auto';

/** Thrown when an Upscaler is used after dispose() or its worker died. */
export class UpscaleError extends Error {
  constructor(message, { name = 'UpscaleError' } = {}) {
    super(message);
    this.name = name;
  }
}

const BAD_ASSETS_URL = 'assetsURL must be the address of the folder that holds the engine\'s files (the package\'s assets/), not';
const MOVED_MODULE = 'this module was bundled away from the engine\'s files: pass assetsURL, the address where you serve the package\'s assets/ folder';

/**
 * The engine's web folder (worker.js, the catalogue, the routing table) under `assetsURL`,
 * the address of the assets root (the package's assets/ folder, wherever it is served: the
 * site itself, a CDN, a bundler's output folder); by default, where this module's files are.
 */
function engineHome(assetsURL) {
  let root = HOME.root;
  if (assetsURL != null && assetsURL !== '') {
    try {
      root = new URL(String(assetsURL), self.location.href);
    } catch (error) {
      throw new UpscaleError(`${BAD_ASSETS_URL} ${JSON.stringify(String(assetsURL))}`, { name: 'InvalidOptions' });
    }
    if (!['http:', 'https:', 'blob:', 'file:'].includes(root.protocol)) {
      throw new UpscaleError(`${BAD_ASSETS_URL} ${root.href}`, { name: 'InvalidOptions' });
    }
    if (!root.pathname.endsWith('/')) root.pathname += '/';
  } else if (root.protocol === 'file:' && self.location.protocol !== 'file:') {
    // A bundler that inlines import.meta.url writes the module's place on the build machine.
    throw new UpscaleError(`${MOVED_MODULE} (it believes it is at ${root.href})`, { name: 'InvalidOptions' });
  }
  return new URL(HOME.web, root);
}

function abortError(signal) {
  if (signal && signal.reason instanceof Error && signal.reason.name === 'AbortError') {
    return signal.reason;
  }
  return new DOMException('The upscale was cancelled.', 'AbortError');
}

/** A copy of a file's bytes (Python reads the header: its format and a JPEG's quality). */
async function headerOf(file) {
  if (file instanceof Blob) return file.arrayBuffer();
  if (file instanceof ArrayBuffer) return file.slice(0);
  if (ArrayBuffer.isView(file)) return file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength);
  throw new UpscaleError('file must be a Blob or an ArrayBuffer: the file the pixels came from', { name: 'InvalidOptions' });
}

/** Turn whatever the caller has into a message the worker understands, plus transferables. */
async function toPayload(input) {
  if (input == null) throw new UpscaleError('no input: pass a Blob, File, ImageData, image, canvas or URL', { name: 'InvalidInput' });
  if (typeof input === 'string' || input instanceof URL) {
    let response;
    try {
      response = await fetch(input, { mode: 'cors', credentials: 'same-origin' });
    } catch (error) {
      throw new UpscaleError(
        `could not fetch ${input}: the server is unreachable or does not allow cross-origin reads (CORS)`,
        { name: 'FetchError' },
      );
    }
    if (!response.ok) {
      throw new UpscaleError(`could not fetch ${input}: HTTP ${response.status}`, { name: 'FetchError' });
    }
    return toPayload(await response.blob());
  }
  if (input instanceof Blob) {
    const bytes = await input.arrayBuffer();
    return { payload: { kind: 'encoded', bytes, name: input.name || null }, transfer: [bytes] };
  }
  if (typeof ImageData !== 'undefined' && input instanceof ImageData) {
    const data = input.data.slice().buffer; // the caller keeps its ImageData intact
    return { payload: { kind: 'rgba', data, width: input.width, height: input.height }, transfer: [data] };
  }
  const drawable =
    (typeof HTMLImageElement !== 'undefined' && input instanceof HTMLImageElement) ||
    (typeof HTMLCanvasElement !== 'undefined' && input instanceof HTMLCanvasElement) ||
    (typeof OffscreenCanvas !== 'undefined' && input instanceof OffscreenCanvas) ||
    (typeof ImageBitmap !== 'undefined' && input instanceof ImageBitmap);
  if (drawable) {
    if (input instanceof HTMLImageElement) {
      try {
        await input.decode();
      } catch (error) {
        throw new UpscaleError(`the image ${input.currentSrc || input.src} could not be decoded`, { name: 'DecodeError' });
      }
    }
    let bitmap;
    try {
      bitmap = await createImageBitmap(input, { premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
    } catch (error) {
      throw new UpscaleError(`could not read pixels from the ${input.constructor.name}: ${error.message}`, { name: 'DecodeError' });
    }
    return { payload: { kind: 'bitmap', bitmap }, transfer: [bitmap] };
  }
  throw new UpscaleError(
    `unsupported input ${Object.prototype.toString.call(input)}: pass a Blob, File, ImageData, ImageBitmap, <img>, <canvas> or URL`,
    { name: 'InvalidInput' },
  );
}

/** The width and height of an input that has pixels already (not a file), else null. */
function sizeOf(input) {
  if (typeof HTMLImageElement !== 'undefined' && input instanceof HTMLImageElement) {
    return input.naturalWidth ? { width: input.naturalWidth, height: input.naturalHeight } : null;
  }
  const sized = ['ImageData', 'ImageBitmap', 'HTMLCanvasElement', 'OffscreenCanvas', 'HTMLVideoElement']
    .some((name) => typeof self[name] !== 'undefined' && input instanceof self[name]);
  return sized && input.width && input.height ? { width: input.width, height: input.height } : null;
}

/** The bytes of a URL, Blob or ArrayBuffer (a model file the user brought, a file to inspect). */
async function toBuffer(source, what) {
  if (source instanceof ArrayBuffer) return source.slice(0);
  if (ArrayBuffer.isView(source)) return source.buffer.slice(source.byteOffset, source.byteOffset + source.byteLength);
  if (typeof Blob !== 'undefined' && source instanceof Blob) return source.arrayBuffer();
  if (typeof source === 'string' || source instanceof URL) {
    let response;
    try {
      response = await fetch(source);
    } catch (error) {
      throw new UpscaleError(`could not fetch the ${what} from ${source}: ${error.message}`, { name: 'FetchError' });
    }
    if (!response.ok) throw new UpscaleError(`could not fetch the ${what} from ${source}: HTTP ${response.status}`, { name: 'FetchError' });
    return response.arrayBuffer();
  }
  throw new UpscaleError(`the ${what} must be a URL, Blob or ArrayBuffer`, { name: 'InvalidOptions' });
}

// Written by build.py: the Subresource Integrity value of every file the engine runs, by
// address relative to this folder (its scripts, Pyodide, TF.js, the catalogue and the lock).
// The wheels and the models are checked against the sha256 the lock and the catalogue give.
const INTEGRITY = {};

/**
 * The worker, from this module's own folder. A page on another origin (a shop using the
 * embed) may not start a worker from here directly, so it gets a blob: worker that checks
 * ours against INTEGRITY before running it (checkedStart); the assets' server then has to
 * allow cross-origin reads (build.py serve does). On our own origin the page itself came from
 * the same server as the scripts, so checking them would add nothing.
 */
function startWorker(home) {
  const script = new URL('worker.js', home);
  if (script.origin === self.location.origin) return { worker: new Worker(script, { name: 'upscale' }), url: null };
  const integrity = Object.fromEntries(
    Object.entries(INTEGRITY).map(([path, hash]) => [new URL(path, home).href, hash]));
  const config = {
    ns: Rpc.NS, base: home.href, integrity, main: script.href,
    // What worker.js imports at its start; TF.js comes later, if this worker runs the model.
    scripts: Object.keys(integrity).length
      ? Object.keys(integrity).filter((url) => url.endsWith('.js') && !url.includes('/vendor/tfjs-'))
      : null,
  };
  const boot = `(${checkedStart})(${JSON.stringify(config)}, ${fetchListed});`;
  const url = URL.createObjectURL(new Blob([boot], { type: 'text/javascript' }));
  return { worker: new Worker(url, { name: 'upscale' }), url };
}

/**
 * `fetchFile(resource, init)` checked against `integrity`: a file that is not the one built
 * rejects with IntegrityError, a failed download with fetch's own error (the two look alike
 * to fetch; a second, unchecked look tells them apart). Workers run it too (checkedStart):
 * it uses nothing else of this module.
 */
async function fetchListed(fetchFile, resource, init, integrity) {
  try {
    return await fetchFile(resource, { ...init, integrity });
  } catch (error) {
    const url = String(resource instanceof Request ? resource.url : resource);
    const plain = await fetchFile(url).catch(() => null);
    if (!plain || !plain.ok) throw error;
    throw Object.assign(new Error(
      `${url.slice(url.lastIndexOf('/') + 1)} is not the file this build of Upscale was made with (${url})`,
    ), { name: 'IntegrityError' });
  }
}

/**
 * Run first in a blob: worker whose scripts come from another origin: every script it imports
 * and every file it fetches that `integrity` lists is checked against its hash before use.
 * A mismatch, or a start that fails, is reported as { type: 'fatal', name, message }: the page
 * then stops the engine. The page's policy governs such a worker: what it blocks is reported as
 * { type: 'csp' }. The engine worker starts its tile workers with the same code
 * (self.UPSCALE_CHECKED.script).
 *
 * importScripts() cannot check a hash, so `scripts` are fetched with `integrity` first and run
 * from blob: copies of the checked bytes; messages that arrive meanwhile wait for `main`.
 * Without `scripts` (no integrity list: a build that has none), `main` is imported as it is.
 */
function checkedStart({ ns, base, integrity, scripts, main }, fetchListed) {
  const report = (message) => self.postMessage({ ns, ...message });
  self.addEventListener('securitypolicyviolation', (e) => report(
    { type: 'csp', directive: e.effectiveDirective, blocked: e.blockedURI }));
  self.UPSCALE_BASE = base;
  if (!scripts) {
    importScripts(main);
    return;
  }
  const early = [];
  const wait = (event) => early.push(event);
  self.addEventListener('message', wait);
  const fetchFile = self.fetch.bind(self);
  const importFile = self.importScripts.bind(self);
  const checked = new Map(); // address -> blob: URL of its checked bytes, until it runs
  const address = (resource) => new URL(resource instanceof Request ? resource.url : String(resource), base).href;
  const named = (name, message) => Object.assign(new Error(message), { name });

  /** fetch(), with the listed hash as `integrity`: a changed file never reaches its caller. */
  async function fetchChecked(resource, init = {}) {
    const hash = integrity[address(resource)];
    if (!hash || init.integrity) return fetchFile(resource, init);
    try {
      return await fetchListed(fetchFile, resource, init, hash);
    } catch (error) {
      if (error.name === 'IntegrityError') report({ type: 'fatal', name: error.name, message: error.message });
      throw error;
    }
  }

  /** Fetch and check `urls`, so that importScripts() may run them. */
  async function check(urls) {
    await Promise.all(urls.filter((url) => !checked.has(url)).map(async (url) => {
      if (!integrity[url]) throw named('IntegrityError', `${url} is not in this build's integrity list`);
      const response = await fetchChecked(url);
      if (!response.ok) throw named('FetchError', `could not load ${url}: HTTP ${response.status}`);
      checked.set(url, URL.createObjectURL(new Blob([await response.blob()], { type: 'text/javascript' })));
    }));
  }

  self.fetch = fetchChecked;
  self.importScripts = (...urls) => {
    const hrefs = urls.map(address);
    const unchecked = hrefs.find((href) => !checked.has(href));
    if (unchecked) throw named('IntegrityError', `${unchecked} was to run before it was checked`);
    try {
      importFile(...hrefs.map((href) => checked.get(href)));
    } finally {
      for (const href of hrefs) URL.revokeObjectURL(checked.get(href));
      for (const href of hrefs) checked.delete(href);
    }
  };
  self.UPSCALE_CHECKED = {
    check,
    script: (config) => `(${checkedStart})(${JSON.stringify({ ns, integrity, ...config })}, ${fetchListed});`,
  };
  check([...new Set([...scripts, main])]).then(() => {
    importScripts(main);
    self.removeEventListener('message', wait);
    for (const event of early) self.dispatchEvent(new MessageEvent('message', { data: event.data }));
  }).catch((error) => report({
    type: 'fatal', name: error.name === 'IntegrityError' ? error.name : 'WorkerCrashed',
    message: `the Upscale engine did not start: ${error.message}`,
  }));
}

// Violations on the page itself (a worker-src that refuses the engine's worker), by time.
const pageViolations = [];
if (self.document) {
  document.addEventListener('securitypolicyviolation', (e) => pageViolations.push(
    { directive: e.effectiveDirective, blocked: e.blockedURI, at: performance.now() }));
}

// Calls that load: while one is in flight the worker is allowed the step limit's silence.
const LOADING = new Set(['init', 'setModel']);

/** One worker and the requests in flight on it. A crash rejects every one of them. */
class Connection {
  /**
   * A worker can also vanish without an error event (the browser reclaims it, or it closes
   * itself): while calls are pending, it is pinged, and `stallMs` of silence counts as a crash.
   */
  constructor(home, onCrash, stallMs, stepMs) {
    this.dead = null;
    this.onCrash = onCrash;
    this.stallMs = stallMs;
    // The step limit: how long the worker may take to say its first word, or stay silent in a
    // synchronous step it announced (busy: decoding a large file, converting a model).
    this.stepMs = stepMs;
    this.busy = null;
    // Loading (init, setModel) is judged as a synchronous step is: Python's start, a model's
    // weights going to the GPU and its first run answer no ping for a second or more on a slow
    // or loaded device. The count of such calls in flight.
    this.loading = 0;
    this.born = performance.now();
    this.heard = performance.now();
    this.spoken = false; // until its first word, only whether its scripts load in time is judged
    this.watch = null;
    const { worker, url } = startWorker(home);
    this.home = home;
    this.worker = worker;
    this.bootUrl = url; // a blob: URL to free when this worker goes
    this.client = new Rpc.Client(worker, {
      makeError: (message) => new UpscaleError(message),
      // An event about no call: the worker's own uncaught error. Said, not dropped.
      onStray: ({ name, data }) => console.error(`Upscale engine ${name}:`, data && data.name, data && data.message),
    });
    this.worker.onmessage = (event) => this.receive(event.data);
    this.worker.onerror = (event) => {
      event.preventDefault();
      if (!this.spoken && !event.message) {
        // A worker whose script did not load says nothing more: the address is the news.
        this.die(`${NO_WORKER} ${new URL('worker.js', this.home).href}: ${NO_WORKER_FIX}`, 'FetchError');
      } else {
        this.die(`the Upscale worker crashed: ${event.message || 'unknown error'}`);
      }
    };
    this.worker.onmessageerror = () => this.die('a message from the worker could not be read');
  }

  die(message, name = 'WorkerCrashed') {
    if (this.dead) return;
    const blocked = this.violation || pageViolations.find((v) => v.at >= this.born);
    if (blocked && !this.spokenBeyondCsp) {
      this.crash(new UpscaleError(
        `the page's Content-Security-Policy stopped the Upscale engine: ${blocked.directive} does not allow ${blocked.blocked || 'it'}`,
        { name: 'SecurityError' },
      ));
    } else {
      this.crash(new UpscaleError(message, { name }));
    }
    this.onCrash(this.dead);
  }

  /** Ping while calls are pending; give up on a worker that stays silent for stallMs. */
  keepWatch() {
    if (this.watch || this.dead) return;
    this.heard = performance.now(); // silence is counted from the first call in flight
    this.watch = setInterval(() => {
      if (!this.client.size || this.dead) {
        clearInterval(this.watch);
        this.watch = null;
      } else if (this.spoken && performance.now() - this.heard > this.silenceLimit()) {
        const step = this.busy || (this.loading ? 'loading' : null);
        const silent = Math.round(this.silenceLimit() / 1000);
        this.die(`the Upscale worker stopped answering${step ? ` while ${step}` : ''} (silent for ${silent} s)`);
      } else if (!this.spoken && performance.now() - this.born > this.stepMs) {
        this.crash(new UpscaleError(
          `the Upscale worker did not start: its scripts did not load within ${Math.round(this.stepMs / 1000)} s`,
          { name: 'Stalled' },
        ));
        this.onCrash(this.dead);
      } else {
        Rpc.post(this.worker, { type: 'ping' });
      }
    }, Math.min(5000, this.stallMs / 4));
  }

  /** How long the worker may stay silent now: the step limit in a step, else stallMs. */
  silenceLimit() {
    return this.busy || this.loading ? this.stepMs : this.stallMs;
  }

  receive(message) {
    if (!Rpc.ours(message)) return;
    this.heard = performance.now();
    this.spoken = true;
    if (message.type === 'csp') {
      this.violation = this.violation || message;
      return;
    }
    if (message.type === 'info') {
      if (this.onInfo) this.onInfo(message.value);
      return;
    }
    if (message.type === 'busy') {
      this.busy = message.what; // a synchronous step: no pong until it ends
      return;
    }
    if (message.type === 'fatal') {
      this.die(message.message, message.name); // a changed file, or a start that failed
      return;
    }
    this.spokenBeyondCsp = true;
    if (message.type !== 'pong') this.client.receive(message);
  }

  call(method, params = {}, { transfer = [], onEvent = null, signal = null } = {}) {
    if (this.dead) return Promise.reject(this.dead);
    if (signal && signal.aborted) return Promise.reject(abortError(signal));
    const reply = this.client.call(method, params, { transfer, onEvent, signal, aborted: () => abortError(signal) });
    if (LOADING.has(method)) {
      this.loading += 1;
      const settled = () => { this.loading -= 1; };
      reply.then(settled, settled);
    }
    this.keepWatch();
    return reply;
  }

  crash(error) {
    if (this.dead) return;
    this.dead = error;
    this.client.failAll(error);
    if (this.watch) clearInterval(this.watch);
    this.watch = null;
    this.worker.terminate();
    if (this.bootUrl) URL.revokeObjectURL(this.bootUrl);
  }
}

const MIN_STALL_MS = 1000;
// The Cache Storage cache the worker keeps Python's snapshots in (web/pysnapshot.js CACHE_NAME).
const PYTHON_CACHE = 'upscale-python';
const NO_WORKER = 'the Upscale engine\'s worker did not load from';
const NO_WORKER_FIX = 'serve the package\'s assets/ folder there, or pass assetsURL (where it is served)';
// Failures that a fresh worker would meet again: a bad option, a backend this browser lacks,
// the page's own policy, or an engine file that is not the one built (the host serving it is
// not to be trusted).
const LASTING_FAILURES = new Set(['InvalidOptions', 'UnknownModel', 'SecurityError', 'IntegrityError', 'BackendUnavailable']);

export class Upscaler {
  /**
   * @param {{ model?: string, scale?: number, backend?: 'auto'|'webgpu'|'webgl'|'wasm'|'cpu',
   *           workers?: 'auto'|number, stallMs?: number, stepLimitMs?: number,
   *           tfFlags?: object, patchSize?: number, assetsURL?: string|URL }} options
   * `model`: 'auto' (each image gets the model that suits it, see `upscale()`) or a catalogue
   * id; `scale`: the enlargement 'auto' makes (2 or 4), unless a job asks for another.
   * `workers`: on WebAssembly, how many tile workers (TF.js instances) share the tiles;
   * 'auto' is one per logical core, 1 runs the model in the engine worker itself.
   * `stepLimitMs`: the longest one step of loading may take (the worker's scripts, Python,
   * the backend, a download that stops moving, the model's first run); past it, `ready`
   * rejects with a `Stalled` error naming the step, and the next call starts afresh.
   * `tfFlags`: TF.js flags for the engine's backend, e.g. { WEBGL_FORCE_F16_TEXTURES: true }
   * to see what a phone without float32 render targets gets; an unknown one is InvalidOptions.
   * `patchSize`: the tile every job runs at unless it asks for another, and the one each model
   * is compiled for on a GPU (default: the model's own on a GPU, chosen per image on WASM).
   * `assetsURL`: where the engine's files are served (the npm package's assets/ folder: the
   * site itself, a CDN or a bundler's output folder); default: beside this module. Files
   * from another origin are checked against this module's integrity list before they run.
   */
  constructor({ model = DEFAULT_MODEL, scale = 2, backend = 'auto', workers = 'auto', stallMs = 60_000,
                stepLimitMs = null, tfFlags = null, patchSize = null, assetsURL = null } = {}) {
    if (!(Number(stallMs) >= MIN_STALL_MS)) {
      // 0 or NaN would ping the worker without pause and judge it dead at once
      throw new UpscaleError(`stallMs must be at least ${MIN_STALL_MS} (ms), not ${stallMs}`, { name: 'InvalidOptions' });
    }
    this.home = engineHome(assetsURL);
    this.options = { model, scale, backend, workers, stepLimitMs: stepLimitMs ?? 180_000, tfFlags, patchSize };
    this.stallMs = stallMs; // silence that counts as a dead worker while a call is pending
    this.disposed = false;
    this.connection = null;
    this.ready = this.start();
  }

  /**
   * Start a worker and initialise it; also used to replace a worker that died, which then
   * gets the model the user brought again, if one was in use.
   */
  start() {
    const connection = new Connection(this.home, (error) => {
      if (!LASTING_FAILURES.has(error.name)) this.ready = null; // the next call starts afresh
    }, this.stallMs, this.options.stepLimitMs);
    connection.onInfo = (info) => {
      if (this.connection === connection) this.ready = Promise.resolve(info);
    };
    this.connection = connection;
    let ready = connection.call('init', this.options);
    if (this.custom) ready = ready.then(() => this.sendCustom(connection, this.custom));
    ready.catch((error) => {
      // Callers see the rejection through `ready`. That worker goes (a stalled step may still
      // hold it, a script half-loaded), and the next call starts a fresh one: a download that
      // failed may work then. Only lasting failures stay: they would fail again.
      if (LASTING_FAILURES.has(error.name)) return;
      if (!connection.dead) connection.crash(error);
      if (this.connection === connection) this.ready = null;
    });
    return ready;
  }

  /** Hand a brought model to the worker (copies: the Upscaler keeps its own for restarts). */
  sendCustom(connection, custom) {
    const param = custom.param.slice(0);
    const bin = custom.bin.slice(0);
    const { scale, inputRange, name } = custom;
    return connection.call('setModel', { ncnn: { param, bin }, scale, inputRange, name },
      { transfer: [param, bin] });
  }

  /** The connection to this Upscaler's engine worker, started (or restarted) when needed. */
  async connected() {
    if (this.disposed) throw new UpscaleError('this Upscaler was disposed', { name: 'Disposed' });
    const dead = this.connection && this.connection.dead;
    if (dead && LASTING_FAILURES.has(dead.name)) throw dead; // a fresh worker would fail alike
    if (!this.ready || dead) this.ready = this.start();
    await this.ready;
    return this.connection;
  }

  /**
   * Upscale an image. Resolves to ImageData of (width x scale) x (height x scale), alpha kept,
   * which also says what ran: `model` (its id), `reason` (why: 'JPEG, quality ≈ 78, 4:2:0',
   * 'PNG: no compression noise', 'named by the caller') and `tiling` ({ patchSize, padding }).
   * `model`: this job's model, 'auto' or an id (default: the Upscaler's); with 'auto' the
   * engine reads the file's header (format, a JPEG's quality) and runs the model the bench
   * measured best for such files at `scale`; pixels (ImageData, a canvas) count as lossless,
   * unless `file` (a Blob or ArrayBuffer) is the file they were decoded from: its header is read.
   * Models a job switches to stay loaded within a memory budget, so the next switch is free.
   * @param input Blob | File | ImageData | ImageBitmap | HTMLImageElement | HTMLCanvasElement | string | URL
   * With `preview: true`, each progress event also carries `preview: { x, y, image }`: the
   * finished tile's output pixels (ImageData, opaque, not yet blended) to paint at (x, y).
   * @param {{ model?: string, scale?: number, file?: Blob|ArrayBuffer, patchSize?: number, padding?: number, signal?: AbortSignal,
   *           preview?: boolean, onProgress?: (p: { done: number, total: number, tile: object,
   *           preview?: object, model: string, reason: string }) => void }} options
   */
  async upscale(input, { model, scale, file, patchSize, padding, signal, onProgress, preview = false } = {}) {
    if (signal && signal.aborted) throw abortError(signal);
    const connection = await this.connected();
    const size = sizeOf(input);
    // A canvas or bitmap the engine would refuse is refused before its pixels are copied.
    if (size) await connection.call('check', { ...size, patchSize }, { signal });
    const { payload, transfer } = await toPayload(input);
    const options = { preview: Boolean(preview && onProgress) };
    if (patchSize != null) options.patchSize = patchSize;
    if (padding != null) options.padding = padding;
    if (model != null) options.model = model;
    if (scale != null) options.scale = scale;
    if (file != null) options.header = await headerOf(file);
    const onEvent = onProgress ? (name, data) => {
      if (name !== 'progress') return;
      const tile = data.preview;
      if (tile) {
        data.preview = {
          x: tile.x, y: tile.y,
          image: new ImageData(new Uint8ClampedArray(tile.data), tile.width, tile.height),
        };
      }
      onProgress(data);
    } : null;
    if (options.header) transfer.push(options.header);
    const result = await connection.call('upscale', { input: payload, options }, { transfer, onEvent, signal });
    this.lastTiling = result.tiling; // { patchSize, padding } the job ran with
    const image = new ImageData(new Uint8ClampedArray(result.data), result.width, result.height);
    return Object.assign(image, { model: result.model, reason: result.reason, tiling: result.tiling });
  }

  /**
   * One zip of `files` ([{ name, blob }]: results already encoded), as a Blob. Made in the
   * worker by Python's zipfile, stored (the images are compressed already); a repeated name
   * gets a number; a batch too large for this device's memory rejects with ImageTooLarge.
   */
  async zip(files) {
    const connection = await this.connected();
    const loaded = await Promise.all(files.map(async ({ name, blob }) => ({ name: String(name), data: await blob.arrayBuffer() })));
    const data = await connection.call('zip', { files: loaded }, { transfer: loaded.map((file) => file.data) });
    return new Blob([data], { type: 'application/zip' });
  }

  /**
   * An image (an upscale's result: ImageBitmap, ImageData or canvas) as a file, a Blob of
   * `type` ('image/png', 'image/jpeg' or 'image/webp'; `quality` from 0 to 1 for the last
   * two). Encoded in the worker, off the page's thread: PNG by Pillow (RGB where every pixel is
   * opaque; a third smaller than the browser's own PNG), JPEG and WebP by the browser. No
   * metadata of the source is written. A bad type or quality rejects with InvalidOptions.
   */
  async encode(image, { type = 'image/png', quality = 0.92 } = {}) {
    const connection = await this.connected();
    const bitmap = await createImageBitmap(image); // the worker's copy: the page keeps its own
    const data = await connection.call('encode', { image: bitmap, type, quality }, { transfer: [bitmap] });
    return new Blob([data], { type });
  }

  /**
   * Resolves if the current model may upscale a `width` x `height` image on this device;
   * rejects with ImageTooLarge, saying which limit, if not (see info.limits).
   */
  async check({ width, height, patchSize } = {}) {
    const connection = await this.connected();
    await connection.call('check', { width, height, patchSize });
  }

  /**
   * Switch to another model, keeping the worker (Python and the backend stay loaded).
   * Resolves to the same info as `ready`; on failure the old model stays.
   *
   * `model` is an id from listModels(), or a model of your own in ncnn's format:
   * `{ ncnn: { param, bin }, scale, inputRange, name }`, where `param` and `bin` are URLs,
   * Blobs or ArrayBuffers. It is converted to TF.js in the worker; `scale` (checked against
   * the network when given) and the margin it reads around each tile are inferred;
   * `inputRange` defaults to [0, 1], ncnn's convention for super-resolution. A malformed pair
   * rejects with InvalidModel, one using a layer Upscale does not run with UnsupportedModel.
   * 'auto' chooses per image again, at `scale` (default: the Upscaler's).
   */
  async setModel(model, { scale } = {}) {
    if (model && typeof model === 'object' && model.ncnn) return this.setOwnModel(model);
    const connection = await this.connected();
    const info = await connection.call('setModel', { model, scale: scale ?? this.options.scale });
    this.options.model = model;
    if (info.auto) this.options.scale = info.auto.scale;
    this.custom = null;
    this.ready = Promise.resolve(info);
    return info;
  }

  async setOwnModel({ ncnn, scale = null, inputRange = [0, 1], name = null }) {
    const [param, bin] = await Promise.all([toBuffer(ncnn.param, '.param'), toBuffer(ncnn.bin, '.bin')]);
    const label = name || (typeof ncnn.param === 'object' && ncnn.param.name) || 'model';
    const custom = { param, bin, scale, inputRange, name: String(label).replace(/\.param$/i, '') };
    const connection = await this.connected();
    const info = await this.sendCustom(connection, custom);
    this.custom = custom;
    this.ready = Promise.resolve(info);
    return info;
  }

  /**
   * What a file is, from its header alone: `{ format, width, height, jpegQuality, denoise }`;
   * for a JPEG, its estimated libjpeg quality and the waifu2x noise level that suits it (null
   * when it needs none). Answered at once, also while an upscale runs.
   */
  async inspect(blob) {
    const connection = await this.connected();
    const bytes = await toBuffer(blob, 'file');
    return connection.call('inspect', { bytes }, { transfer: [bytes] });
  }

  /** Tensors and bytes held by TF.js, and the size of the Python heap, in the worker. */
  async memory() {
    const connection = await this.connected();
    return connection.call('memory');
  }

  /** Stop the worker and free everything it holds. The Upscaler cannot be used afterwards. */
  dispose() {
    if (this.disposed) return;
    this.disposed = true;
    if (this.connection) this.connection.crash(new UpscaleError('this Upscaler was disposed', { name: 'Disposed' }));
  }

  /**
   * The Python snapshots this origin keeps (a returning visit restores Python from one: see
   * info.python), as { bytes } (compressed, all builds'). With `{ drop: true }` they are deleted
   * first: the next start is a fresh one. The embed counts them against its cache cap.
   */
  static async pythonSnapshots({ drop = false } = {}) {
    if (typeof caches === 'undefined') return { bytes: 0 };
    const cache = await caches.open(PYTHON_CACHE);
    if (drop) await Promise.all((await cache.keys()).map((request) => cache.delete(request)));
    const kept = await Promise.all((await cache.keys()).map((request) => cache.match(request)));
    return { bytes: kept.reduce((sum, r) => sum + (Number(r && r.headers.get('x-upscale-bytes')) || 0), 0) };
  }

  /** The model manifests this site serves (or `assetsURL`'s), each `url` absolute. */
  static async listModels({ assetsURL } = {}) {
    const catalogue = new URL('models.json', engineHome(assetsURL));
    return withAbsoluteUrls(await (await engineFile(catalogue)).json(), catalogue);
  }

  /**
   * The routing table `auto` decides by ({ version, measured, scales }; see
   * upscale.routing), as `text` and `table`: the same bytes give the same choice for a file, so
   * a result made by `auto` may be keyed by the text's hash instead of the model (embed.js).
   */
  static async routing({ assetsURL } = {}) {
    const text = await (await engineFile(new URL('routing.json', engineHome(assetsURL)))).text();
    return { text, table: JSON.parse(text) };
  }
}

/**
 * One of the engine's data files (the catalogue, the routing table), checked where they come
 * from another origin (see startWorker). Every failure is an UpscaleError: FetchError (the
 * network, CORS, an HTTP status) or IntegrityError (not the file built).
 */
async function engineFile(url) {
  const name = url.pathname.split('/').pop();
  const integrity = url.origin !== self.location.origin && INTEGRITY[name];
  let response;
  try {
    response = integrity ? await fetchListed(fetch, url, {}, integrity) : await fetch(url);
  } catch (error) {
    if (error.name === 'IntegrityError') throw new UpscaleError(error.message, { name: error.name });
    throw new UpscaleError(`could not fetch ${url.href}: ${error.message}`, { name: 'FetchError' });
  }
  if (!response.ok) throw new UpscaleError(`could not fetch ${url.href}: HTTP ${response.status}`, { name: 'FetchError' });
  return response;
}

/** Catalogue entries name their model.json relative to the catalogue; callers get it whole. */
function withAbsoluteUrls(entries, catalogue) {
  return entries.map((entry) => ({ ...entry, url: new URL(entry.url, catalogue).href }));
}
