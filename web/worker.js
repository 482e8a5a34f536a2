/* The Upscale worker: hosts Pyodide (the image work) and TF.js (the model).
 *
 * Messages (rpc.js): requests from the page, one reply each, and 'progress' events; a
 * 'cancel' stops its request between tiles. The notices of this pair:
 *   page -> worker  { type: 'ping' }          answered with { type: 'pong' }
 *   worker -> page  { type: 'info', value }   the engine moved (a lost GPU): what `ready` gives now
 *                   { type: 'busy', what }    a synchronous step starts (what) or ends (null)
 *                   { type: 'fatal', name, message }   this worker cannot go on; the page ends it
 * Requests run one at a time in arrival order; a cancelled one rejects with AbortError.
 */
'use strict';

// A Content-Security-Policy violation here goes to the page, which names it if the start fails.
self.addEventListener('securitypolicyviolation', (e) => self.postMessage(
  { ns: 'upscale', type: 'csp', directive: e.effectiveDirective, blocked: e.blockedURI }));

// Where this build's files live: this worker's folder (web-<hash>/), whose assets.js says where
// Pyodide and TF.js are. A page on another origin cannot start this file as a worker, so it
// starts a blob: worker that sets UPSCALE_BASE and imports this file (see upscale.js).
const BASE = self.UPSCALE_BASE || new URL('./', self.location.href).href;
importScripts(BASE + 'assets.js');
const PYODIDE_BASE = new URL(self.UPSCALE_ASSETS.pyodide, BASE).href;
const TF_BASE = new URL(self.UPSCALE_ASSETS.tfjs, BASE).href;

// TF.js itself loads only if this worker runs the model (TfBridge.loadTf): on WebAssembly with
// several cores the tile workers do, and this worker's thread is left to Python.
importScripts(BASE + 'rpc.js', PYODIDE_BASE + 'pyodide.js', BASE + 'tfbridge.js',
  BASE + 'tilepool.js', BASE + 'modelfiles.js', BASE + 'pysnapshot.js');

const state = {
  bridge: null, // the Python module upscale.bridge
  pyodide: null,
  model: null, // TfBridge.Model, or TilePool.PoolModel when tile workers run the model
  // The engine's default: a catalogue id, or 'auto' (each job's model chosen by Python from
  // the file and routing.json), at `autoScale` unless a job asks for another scale.
  defaultModel: null,
  autoScale: 2,
  routing: null, // routing.json's text: which model `auto` runs for which input (Python reads it)
  autoFirst: null, // routing.json's lossless model by scale: what `auto` loads first
  // Catalogue models kept loaded, the current one among them (see keep()):
  // id -> { model, tile, bytes, used }.
  loaded: new Map(),
  files: new Map(), // id -> promise of a catalogue model's files, downloaded once
  running: null, // the model the job in flight runs on (a lost GPU abandons it)
  pool: null, // TilePool.Pool: one TF.js WASM instance per core, when there is no GPU
  ownArtifacts: null, // the converted model the user brought, kept to reload it after a GPU loss
  backend: null, // the backend the model runs on
  workers: 'auto', // how many tile workers were asked for
  catalogue: [],
  // The tile rule of the current model on this device, decided in Python (upscale.policy):
  // { patchSize, padding, maxPatchSize, largestSide, ... }; patchSize null: chosen per image.
  tile: null,
  tilesRun: 0, // tiles handed to the model since this engine started (memory() says it)
  patchSize: null, // the tile the page asked every job to run at (Upscaler's patchSize), if any
  // The longest one step of loading may take (Python's start, the backend, a download that
  // stops moving, loading into TF.js, the first run): past it, the step fails as Stalled.
  stepLimitMs: 180_000,
  info: null,
  cancelled: new Set(),
  // Python's snapshot (pysnapshot.js): where this start's Python came from ({ from: 'snapshot'
  // or 'fresh', note: why a snapshot was not used, or null }), the entry's address, and on a
  // fresh start that may keep one, the library recorder (null once made or given up).
  pythonStart: null,
  snapshotKey: null,
  snapshotPlan: null,
  snapshotMade: null,
};

const SNAPSHOT_DROPPED = (why) => `the saved Python could not be used (${why}), so Python started fresh`;
const SELF_CHECK_DIFFERS = 'its self-check differs from the start that saved it';

function post(message, transfer = []) {
  Rpc.post(self, message, transfer);
}

/**
 * Tell the page a synchronous step starts (`what`: "decoding the image") or ended (null). Inside
 * one this worker cannot answer pings, so the page allows it the step limit, not stallMs.
 */
function busy(what) {
  post({ type: 'busy', what: what || null });
}

function whileBusy(what, step) {
  busy(what);
  try {
    return step();
  } finally {
    busy(null);
  }
}

/**
 * `error` as the page should see it. A PythonError is not an UpscaleError (those come back as
 * Refusals: see fromPython) but a bug: its traceback goes to the console, and the page gets
 * the exception's type and its own line.
 */
function plain(error) {
  if (!(error && error.type && state.pyodide && error instanceof state.pyodide.ffi.PythonError)) return error;
  console.error(error.message);
  const lines = String(error.message).trim().split('\n');
  return Object.assign(new Error(lines[lines.length - 1]), { name: error.type });
}

/**
 * What a Python entry point returned, or its Refusal (an UpscaleError: see upscale.bridge)
 * thrown as an Error of that name and message.
 */
function fromPython(value) {
  if (!(value instanceof state.pyodide.ffi.PyProxy) || value.type !== 'Refusal') return value;
  try {
    const tiles = value.tiles ? dictFromPython(value.tiles) : null; // { done, total } of a cancel
    throw Object.assign(new Error(value.message), { name: value.name }, tiles ? { tiles } : {});
  } finally {
    value.destroy();
  }
}

/** A Python buffer (a memoryview) as an ArrayBuffer moved to the page: the one copy out. */
function movedFromPython(value) {
  const proxy = fromPython(value);
  try {
    const view = proxy.getBuffer('u8');
    try {
      const data = view.data.slice();
      return Rpc.moved(data.buffer, [data.buffer]);
    } finally {
      view.release();
    }
  } finally {
    proxy.destroy();
  }
}

/** A Python dict an entry point returned (or its Refusal thrown), as a plain object. */
function dictFromPython(value) {
  const proxy = fromPython(value);
  try {
    return proxy.toJs({ dict_converter: Object.fromEntries });
  } finally {
    proxy.destroy();
  }
}

async function loadPython() {
  const started = performance.now();
  let pyodide = null;
  let note = null;
  const keeps = PySnapshot.usable();
  if (keeps) {
    state.snapshotKey = await PySnapshot.key(BASE, PYODIDE_BASE);
    try {
      pyodide = await restoredPython(state.snapshotKey);
    } catch (error) {
      note = SNAPSHOT_DROPPED(error && error.message ? error.message : String(error));
      console.warn(note);
      await PySnapshot.drop(state.snapshotKey);
    }
  }
  state.pythonStart = { from: pyodide ? 'snapshot' : 'fresh', note };
  if (!pyodide) pyodide = await freshPython(keeps);
  state.pyodide = pyodide;
  state.bridge = pyodide.pyimport('upscale.bridge');
  return performance.now() - started;
}

/** Python started as usual; with `keeping`, able to make a snapshot later (makeSnapshot). */
async function freshPython(keeping) {
  const pyodide = await loadPyodide({
    indexURL: PYODIDE_BASE,
    lockFileURL: BASE + 'pyodide-lock.json',
    _makeSnapshot: keeping,
  });
  if (keeping) {
    const place = PySnapshot.recorder();
    pyodide._module.placeLibrary = place; // every library from here on, Pillow's included
    state.snapshotPlan = { place };
  }
  await pyodide.loadPackage(['numpy', 'upscale'], { messageCallback: () => {} });
  return pyodide;
}

// What every snapshot holds (the engine loads them at its start): their wheels are fetched
// while the entry unpacks, before its list of packages can be read.
const SNAPSHOT_PACKAGES = ['numpy', 'upscale'];

/**
 * Python restored from the entry at `key` (null when there is none), checked against the
 * self-check of the start that saved it. The entry unpacks and the wheels download while
 * Pyodide loads its own script: Pyodide wants the heap only to size its memory.
 */
async function restoredPython(key) {
  const found = await PySnapshot.find(key);
  if (!found) return null;
  const saved = PySnapshot.unpack(found, key);
  const wheels = fetch(BASE + 'pyodide-lock.json').then(async (response) => {
    if (!response.ok) throw new Error(`pyodide-lock.json: HTTP ${response.status}`);
    return PySnapshot.wheels(await response.json(), PYODIDE_BASE);
  });
  wheels.then((fetcher) => fetcher(SNAPSHOT_PACKAGES)).catch(() => {}); // a head start
  let restore = null;
  const heap = saved.then(async ({ meta, heap }) => {
    const members = await (await wheels)(Object.keys(meta.packages));
    restore = PySnapshot.beforeHeapRestore(meta, members);
    return heap;
  });
  heap.catch(() => {}); // loadPyodide reports it (a failure before it asks would go unheard)
  const pyodide = await loadPyodide({
    indexURL: PYODIDE_BASE,
    lockFileURL: BASE + 'pyodide-lock.json',
    _loadSnapshot: heap,
    _beforeHeapRestore: (module) => restore(module),
  });
  const { meta } = await saved;
  // Pyodide forgets what it installed: its record is empty in a snapshot (heapCopy).
  Object.assign(pyodide.loadedPackages, meta.packages);
  const check = await pyodide.pyimport('upscale.bridge').self_check();
  if (check !== meta.check) throw new Error(SELF_CHECK_DIFFERS);
  return pyodide;
}

/**
 * After the first job, between requests: zero the heap's free memory and copy the heap (both
 * synchronous, so nothing of Python runs meanwhile), then compress and keep it without holding
 * up the next request.
 * Once per engine; a failure costs nothing but the next visit's shortcut.
 */
async function makeSnapshot() {
  const plan = state.snapshotPlan;
  if (!plan) return;
  state.snapshotPlan = null;
  const started = performance.now();
  try { // this runs in the request queue, which must never reject
    const zeroedBytes = PySnapshot.scrub(state.pyodide._module);
    const copy = PySnapshot.heapCopy(state.pyodide);
    const copyMs = performance.now() - started;
    const check = await state.bridge.self_check();
    const blob = PySnapshot.pack(state.pyodide, copy.heap, {
      key: state.snapshotKey, libs: plan.place.libs, packages: copy.packages, check,
      heapLength: copy.heap.length,
    });
    PySnapshot.save(state.snapshotKey, blob).then((bytes) => {
      state.snapshotMade = { bytes, heapBytes: copy.heap.length, zeroedBytes, copyMs, totalMs: performance.now() - started };
    }, (error) => console.warn(`the Python snapshot was not kept: ${error && error.message}`));
  } catch (error) {
    console.warn(`no Python snapshot: ${error && error.message}`);
  }
}

/**
 * Pillow, loaded the first time a file has to be decoded (or a transparent image's alpha
 * resized): pixels handed over as ImageData, ImageBitmap or <img> never need it, so a
 * storefront's engine does not download it.
 */
function ensurePillow() {
  state.pillow = state.pillow || withinLimit('loading Pillow', (async () => {
    // Unpacking the wheel and loading its libraries answer no ping: 0.2 s here, more under load.
    busy('loading Pillow');
    try {
      await state.pyodide.loadPackage('pillow', { messageCallback: () => {} });
    } finally {
      busy(null);
    }
    if (state.info) state.info.versions = { ...state.info.versions, ...versionsNow() };
  })());
  state.pillow.catch(() => {
    state.pillow = null; // the next file tries again
  });
  return state.pillow;
}

function versionsNow() {
  return state.bridge.versions().toJs({ dict_converter: Object.fromEntries });
}

/** Whether RGBA pixels have any transparency (its alpha is then resized with Pillow). */
function hasTransparency(rgba) {
  for (let i = 3; i < rgba.length; i += 4) if (rgba[i] !== 255) return true;
  return false;
}

async function loadCatalogue() {
  const [models, routing] = await Promise.all(['models.json', 'routing.json'].map(async (name) => {
    const response = await fetch(BASE + name);
    if (!response.ok) throw new Error(`model catalogue: ${name}: HTTP ${response.status}`);
    return response.text();
  }));
  state.routing = routing;
  state.autoFirst = Object.fromEntries(Object.entries(JSON.parse(routing).scales)
    .map(([scale, routes]) => [scale, routes.lossless]));
  // Each entry names its model.json relative to the catalogue; info.model.url says it whole.
  return JSON.parse(models).map((entry) => ({ ...entry, url: new URL(entry.url, BASE).href }));
}

/**
 * The model `auto` loads first at `scale`: the one routing.json gives lossless input (pixels
 * and PNGs), so the first job of a page that hands over pixels switches nothing. Read here, not
 * asked of Python: the start downloads it while Python starts (the message is NO_AUTO_SCALE's).
 */
function autoModel(scale) {
  const first = state.autoFirst[String(scale)];
  if (!first) {
    const known = Object.keys(state.autoFirst).join(', ');
    throw invalidOptions(`model 'auto' needs a scale it routes: ${JSON.stringify(scale)} is not one of ${known}`);
  }
  return first;
}

/**
 * `promise`, or a Stalled error naming `step` if it has not settled within the step limit.
 * The work itself may go on (a script cannot be stopped half-loaded); the caller is told.
 */
function withinLimit(step, promise) {
  const ms = state.stepLimitMs;
  let timer;
  const limit = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(Object.assign(
      new Error(`${step} did not finish within ${Math.round(ms / 1000)} s`), { name: 'Stalled' },
    )), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

/** A catalogue model's files, downloaded once here and checked against their sha256. */
function downloadModel(manifest) {
  if (manifest.custom) return fetchModelFiles(manifest);
  let files = state.files.get(manifest.id);
  if (!files) {
    files = fetchModelFiles(manifest);
    state.files.set(manifest.id, files);
    files.catch(() => state.files.delete(manifest.id)); // a failed download is tried again
  }
  return files;
}

function fetchModelFiles(manifest) {
  const sha256 = async (bytes) => {
    await state.pythonReady;
    if (!state.bridge) throw new Error('no SubtleCrypto here, and Python did not start to check the model files');
    return state.bridge.sha256(new Uint8Array(bytes));
  };
  return ModelFiles.fetchModel(manifest, BASE, { stallMs: state.stepLimitMs, sha256 });
}

// What the device says of its memory, in GB (rounded; at most 8), or null: Python derives the
// limits from it (upscale.imaging.Limits.for_device).
const DEVICE_MEMORY = navigator.deviceMemory ?? null;

/**
 * Throws ImageTooLarge if the current model may not take a `width` x `height` image here, or
 * InvalidOptions if it may not run at `patchSize`.
 */
function checkSize({ width, height }, patchSize = null) {
  fromPython(state.bridge.check_size(width, height, state.tile, patchSize ?? null, DEVICE_MEMORY));
}

function findModel(modelId) {
  const manifest = state.catalogue.find((m) => m.id === modelId);
  if (!manifest) {
    const known = state.catalogue.map((m) => m.id).join(', ');
    throw Object.assign(new Error(`unknown model "${modelId}"; known models: ${known}`), {
      name: 'UnknownModel',
    });
  }
  return manifest;
}

// Catalogue models kept loaded, so that `auto` and jobs that name a model switch without
// downloading or compiling again: at most MODELS_KEPT of them, and MODEL_BUDGET_BYTES of weights
// (the catalogue's weightBytes; TF.js holds them as float32). The models `auto` routes photos to
// at one scale are SPAN and waifu2x, 0.5 to 2.2 MB each; a GPU also keeps each one's compiled
// programs. The least recently used goes first; the current model always stays.
const MODELS_KEPT = 5; // auto's five at x2: SPAN, SPAN wide, two waifu2x, restore
const MODEL_BUDGET_BYTES = 64 * 2 ** 20;

/** Keep `entry` loaded under `id`, freeing the least recently used over the budget. */
function keep(id, entry) {
  state.loaded.set(id, entry);
  const total = () => [...state.loaded.values()].reduce((sum, e) => sum + e.bytes, 0);
  const byAge = [...state.loaded.entries()].sort((a, b) => a[1].used - b[1].used);
  for (const [other, old] of byAge) {
    if (state.loaded.size <= MODELS_KEPT && total() <= MODEL_BUDGET_BYTES) break;
    if (other === id || old.model === state.model) continue;
    state.loaded.delete(other);
    state.files.delete(other);
    old.model.dispose();
  }
}

/** Free every kept model (a lost GPU took their textures along). */
function forgetLoaded() {
  for (const [id, entry] of state.loaded) {
    state.loaded.delete(id);
    try {
      entry.model.dispose();
    } catch {
      // its context is gone with the GPU
    }
  }
}

/**
 * `manifest`'s model loaded and warmed up (kept, see keep()), with its tile rule and what the
 * load took ({ modelMs, warmupMs }: zero when it was loaded already).
 */
async function loaded(manifest, artifacts = null) {
  const kept = !manifest.custom && state.loaded.get(manifest.id);
  if (kept) {
    kept.used = performance.now();
    return { ...kept, modelMs: 0, warmupMs: 0 };
  }
  const entry = await loadModel(manifest, artifacts);
  if (!manifest.custom) {
    keep(manifest.id, { model: entry.model, tile: entry.tile, bytes: manifest.weightBytes || 0, used: performance.now() });
  }
  return entry;
}

/**
 * Make `manifest`'s model the current one (loaded, or taken from those kept); a model the user
 * brought that it replaces is freed. `artifacts`: the model held in memory (see
 * TfBridge.Model.load), or a promise of it; downloaded when not given.
 */
async function switchModel(manifest, artifacts = null) {
  const { model, tile, modelMs, warmupMs } = await loaded(manifest, artifacts);
  const old = state.model;
  state.model = model;
  state.tile = tile;
  if (old && old !== model && old.manifest.custom) old.dispose();
  return { modelMs, warmupMs };
}

/** Load and warm up `manifest`'s model: { model, tile, modelMs, warmupMs }. */
async function loadModel(manifest, artifacts = null) {
  const m0 = performance.now();
  const files = await (artifacts || downloadModel(manifest));
  const model = await withinLimit(`loading ${manifest.id} into TF.js`, state.pool
    ? TilePool.PoolModel.load(state.pool, manifest, files)
    : TfBridge.Model.load(manifest, BASE, files));
  const modelMs = performance.now() - m0;
  const w0 = performance.now();
  let tile;
  try {
    tile = await withinLimit(`the first run of ${manifest.id} (its warm-up)`, largestTile(model, manifest, files));
  } catch (error) {
    model.dispose();
    throw error;
  }
  return { model, tile, modelMs, warmupMs: performance.now() - w0 };
}

const TEXTURE_TOO_LARGE = /texture size .* greater than WebGL maximum/i;

// The first run's side off the GPU. A CPU compiles nothing per shape, so the first run only has
// to show the model runs and get V8 to compile its kernels at full speed; a full tile there
// would take the cores from Python's start, which the first result waits for. Measured on 2
// cores, esrgan-slim-x2: the bench's cold start 2.54 s -> 2.33 s on a first visit, 2.29 s ->
// 2.11 s on a second (6 runs each); the first three 128 px jobs after it 197, 133, 135 ms with
// a full tile first, 249, 143, 137 with 32 px, 280, 187, 152 with 8 px. Not a tile size.
const FIRST_RUN_SIDE_OFF_GPU = 32;

/**
 * Warm the model up on a GPU at its patch size, or at the largest patch its limits hold
 * (Python reads them against the model's graph: an x8 model at 128 px would ask WebGL for a
 * texture over 20000 x 20000). Where the GPU still cannot hold a tile, the patch halves (as
 * Python says) until one fits. Off the GPU the first run is a small one. Returns the tile rule
 * Python decides for this model here (upscale.policy.tile_rule).
 */
async function largestTile(model, manifest, files) {
  let patchSize = state.patchSize ?? manifest.patchSize;
  let tooLarge = null; // the smallest patch seen to fail, when one did
  let side = null; // the widest tile the GPU's limits hold, when Python could tell
  const limits = state.pool ? {} : TfBridge.gpuLimits();
  const onGpu = Object.keys(limits).length > 0;
  if (onGpu && files && files.modelTopology) {
    await state.python;
    ({ patch: patchSize, side } = dictFromPython(state.bridge.gpu_fit(
      JSON.stringify(files.modelTopology), state.backend, limits, patchSize, manifest.margin || 0)));
  }
  for (;;) {
    try {
      await model.warmUp(onGpu ? patchSize : FIRST_RUN_SIDE_OFF_GPU);
      break;
    } catch (error) {
      if (!TEXTURE_TOO_LARGE.test(error.message)) throw error;
      await state.python; // the warm-up may beat Python's start
      const smaller = state.bridge.next_patch(patchSize);
      if (smaller == null) throw error;
      tooLarge = patchSize;
      patchSize = smaller;
    }
  }
  await state.python;
  // The facts Python decides from: the output channels of each convolution.
  const widths = ((files && files.weightSpecs) || [])
    .filter((w) => w.shape.length === 4).map((w) => w.shape[3]);
  return dictFromPython(state.bridge.tile_for(manifest, widths, state.backend,
    state.pool ? state.pool.size : 0, patchSize, tooLarge, state.patchSize != null, side));
}

/**
 * Choose the backend. On WebAssembly with more than one core the model runs in tile workers,
 * one per core, started here; otherwise in this worker. Returns chooseBackend's answer.
 */
async function startBackend(wanted) {
  const count = TilePool.size(state.workers);
  const choice = await TfBridge.chooseBackend(wanted, TF_BASE, count);
  state.backend = choice.backend;
  if (!choice.local) state.pool = new TilePool.Pool(count, BASE);
  return choice;
}

/** info.reason once the model is loaded (tile workers say what they run). */
function reasonFor(choice) {
  if (choice.local) return choice.reason;
  return [choice.reason, state.pool.describe()].filter(Boolean).join('; ');
}

/**
 * The GPU went away: stop the job that was waiting on it with a clear error, move the engine
 * to WebAssembly and load the model again there; the next request waits for that.
 */
function gpuLost(what) {
  const error = Object.assign(
    new Error(`${what}; this job stopped and the engine moved to WebAssembly: run it again`),
    { name: 'ContextLost' },
  );
  state.lost = error;
  const model = state.model;
  if (state.running && state.running !== model) state.running.abandon(error);
  model.abandon(error);
  // A model the user brought has no URL: it is loaded again from what was converted.
  state.recovering = moveToWasm(what, model.manifest, model.manifest.custom ? state.ownArtifacts : null)
    .then(() => {
      state.recovering = null;
    });
  // WebAssembly failed too (a download, memory): this worker is done for. The page replaces
  // it, and the next call starts afresh, on whatever backend works then.
  state.recovering.catch((failure) => post({
    type: 'fatal', name: 'ContextLost',
    message: `${what}, and moving the model to WebAssembly failed (${failure.message}); the next call starts a fresh engine`,
  }));
}

/**
 * Move the engine to WebAssembly with `manifest`'s model (`artifacts`: it in memory, else it
 * is downloaded), because of `why`: a lost GPU, or a model that overflows its half floats.
 * `ready` then says where the model runs.
 */
async function moveToWasm(why, manifest, artifacts = null) {
  const old = state.model;
  const choice = await startBackend('wasm');
  state.model = null;
  forgetLoaded(); // their files stay: loaded again from memory on WebAssembly
  try {
    if (old && old.manifest.custom) old.dispose();
  } catch {
    // a lost GPU took its textures along
  }
  const timings = await switchModel(manifest, artifacts);
  state.info = {
    ...state.info,
    backend: choice.backend,
    reason: `${why}; now ${reasonFor(choice)}`,
    model: manifest,
    tile: state.tile,
    workers: state.pool ? state.pool.size : 1,
  };
  if (state.info.timings) state.info.timings = { ...state.info.timings, ...timings };
  post({ type: 'info', value: state.info });
}

/**
 * A model that half floats would break (tensors past float16's 65504, or rounding its layers
 * multiply) says `"float16": false`; on a half-float WebGL (a phone without float32 render
 * targets) the engine runs it on WebAssembly. No catalogue model says so today. SPAN did, for
 * a black and white pattern, but nothing in it comes near 65504 on photos, where it keeps 60 dB
 * of float32, nor on black and white bars (57 dB; span-x4 50 dB, its attention run as tanh there:
 * TfBridge.centredSigmoidsAsTanh); on checkerboards SPAN's own float32 output is noise, which
 * half floats only change into other noise. README: Models.
 */
function overflowsHere(manifest) {
  return manifest.float16 === false && state.backend === 'webgl' && !state.pool && TfBridge.halfFloat();
}

let ownModels = 0; // each model the user brings gets its own key in the tile workers

/**
 * Convert an ncnn pair in Python; returns the manifest the engine runs it by and the TF.js
 * artifacts to load it from memory. A wrong `scale` or `inputRange` is refused by name.
 */
function convertOwnModel({ param, bin }, { scale, inputRange, name }) {
  const result = fromPython(whileBusy('converting the model',
    () => state.bridge.convert_ncnn(param ?? null, bin ?? null, scale ?? null, inputRange ?? null)));
  let text, weights, meta;
  try {
    const [jsonText, data, info] = result.toJs({ dict_converter: Object.fromEntries, create_proxies: false });
    text = jsonText;
    weights = data.slice().buffer; // out of Python's heap: TF.js keeps it
    meta = info;
  } finally {
    result.destroy();
  }
  const model = JSON.parse(text);
  const label = String(name || 'model').slice(0, 80);
  ownModels += 1;
  const manifest = {
    id: `custom:${label}`,
    key: `custom:${ownModels}`,
    label: `Your model: ${label} (×${meta.scale})`,
    custom: true,
    format: 'ncnn',
    scale: meta.scale,
    margin: meta.margin,
    layerTypes: meta.layerTypes,
    inputRange: inputRange ?? [0, 1],
    outputRange: inputRange ?? [0, 1],
    customLayers: [],
    patchSize: 128,
    padding: 16,
    weightBytes: weights.byteLength,
  };
  const artifacts = {
    modelTopology: model.modelTopology,
    weightSpecs: model.weightsManifest[0].weights,
    weightData: weights,
    format: 'graph-model',
    userDefinedMetadata: model.userDefinedMetadata,
  };
  return { manifest, artifacts };
}

function invalidOptions(message) {
  return Object.assign(new Error(message), { name: 'InvalidOptions' });
}

/** Pixels of a transferred ImageBitmap, read through an OffscreenCanvas. */
function bitmapToRgba(bitmap) {
  const { width, height } = bitmap;
  const context = new OffscreenCanvas(width, height).getContext('2d', { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  const data = context.getImageData(0, 0, width, height).data;
  return { kind: 'rgba', data: data.buffer, width, height };
}

const methods = {
  async init({ model: modelId, scale = 2, backend = 'auto', workers = 'auto', stepLimitMs, tfFlags = null, patchSize = null }) {
    const t0 = performance.now();
    TilePool.size(workers); // a bad count fails here, before anything loads
    TfBridge.useFlags(tfFlags);
    state.workers = workers;
    if (stepLimitMs != null) {
      if (!(Number(stepLimitMs) >= 1000)) throw invalidOptions(`stepLimitMs must be at least 1000, not ${stepLimitMs}`);
      state.stepLimitMs = Number(stepLimitMs);
    }
    const python = withinLimit('starting Python (Pyodide, numpy)', loadPython());
    state.python = python; // the tile rule waits for it (and fails with it)
    state.pythonReady = python.catch(() => {});
    const tfReady = withinLimit('starting the TF.js backend', (async () => {
      const started = performance.now();
      const choice = await startBackend(backend);
      return { choice, ms: performance.now() - started };
    })());
    tfReady.catch(() => {}); // awaited below, after the catalogue; its failure is reported there
    state.catalogue = await withinLimit('loading the model catalogue', loadCatalogue());
    state.defaultModel = modelId;
    if (modelId === 'auto') state.autoScale = scale;
    const manifest = findModel(modelId === 'auto' ? autoModel(scale) : modelId);
    // The weights download while the backend starts: neither waits for the other.
    const files = downloadModel(manifest);
    files.catch(() => {});
    if (patchSize != null) {
      // Every model's warm-up and every job's tile: Python checks it before a model compiles.
      await python;
      state.patchSize = fromPython(state.bridge.patch_asked(patchSize));
    }
    let { choice, ms: tfMs } = await tfReady;
    let halfFloatNote = '';
    if (overflowsHere(manifest)) {
      halfFloatNote = `; ${manifest.id} overflows WebGL's half floats here, so WebAssembly`;
      choice = await startBackend('wasm');
    }
    const { modelMs, warmupMs } = await switchModel(manifest, files);
    if (!state.pool) TfBridge.watchGpuLoss(gpuLost);
    const pythonMs = await python;
    state.info = {
      backend: choice.backend,
      reason: reasonFor(choice) + halfFloatNote + (state.pythonStart.note ? `; ${state.pythonStart.note}` : ''),
      python: state.pythonStart,
      model: manifest,
      auto: state.defaultModel === 'auto' ? { scale: state.autoScale } : null,
      limits: state.bridge.device_limits(DEVICE_MEMORY).toJs({ dict_converter: Object.fromEntries }),
      tile: state.tile,
      workers: state.pool ? state.pool.size : 1,
      versions: {
        tfjs: self.tf ? tf.version.tfjs : state.pool.tfjs,
        pyodide: state.pyodide.version,
        ...versionsNow(),
      },
      timings: {
        pythonMs,
        backendMs: tfMs,
        modelMs,
        warmupMs,
        totalMs: performance.now() - t0,
      },
    };
    return state.info;
  },

  /**
   * Replace the model, keeping Python and the backend; the old one stays if this fails.
   * `ncnn: { param, bin }` (ArrayBuffers) is a model the user brought: converted by Python.
   */
  async setModel({ model: modelId, ncnn, scale, inputRange, name }) {
    if (state.recovering) await state.recovering;
    if (ncnn) {
      const { manifest, artifacts } = convertOwnModel(ncnn, { scale, inputRange, name });
      const { modelMs, warmupMs } = await switchModel(manifest, artifacts);
      state.ownArtifacts = artifacts;
      state.defaultModel = manifest.id;
      state.info = {
        ...state.info, model: manifest, auto: null, tile: state.tile,
        timings: { ...state.info.timings, modelMs, warmupMs },
      };
      return state.info;
    }
    const auto = modelId === 'auto';
    const autoScale = auto ? (scale ?? state.autoScale) : state.autoScale;
    const manifest = findModel(auto ? autoModel(autoScale) : modelId);
    if (overflowsHere(manifest)) {
      await moveToWasm(`${manifest.id} overflows WebGL's half floats here`, manifest);
    } else if (manifest.id !== state.model.manifest.id) {
      const { modelMs, warmupMs } = await switchModel(manifest);
      state.info = {
        ...state.info, model: manifest, tile: state.tile, timings: { ...state.info.timings, modelMs, warmupMs },
      };
    }
    state.defaultModel = modelId; // only once the model loaded: on failure the old one stays
    state.autoScale = autoScale;
    state.info = { ...state.info, auto: auto ? { scale: autoScale } : null };
    return state.info;
  },

  async upscale(params, id) {
    if (state.recovering) await state.recovering;
    state.lost = null;
    state.tileFailure = null;
    try {
      return await upscaleNow(params, id);
    } catch (error) {
      // A lost GPU or a tile worker out of memory surfaces as itself, not as a Python traceback.
      throw state.lost || state.tileFailure || error;
    }
  },

  /** One stored zip of `files` ([{ name, data: ArrayBuffer }]), written by Python's zipfile. */
  async zip({ files }) {
    await state.python;
    return movedFromPython(whileBusy('zipping the results', () => state.bridge.zip_results(
      files.map((file) => file.name), files.map((file) => new Uint8Array(file.data)), DEVICE_MEMORY)));
  },

  /**
   * A result (`image`, an ImageBitmap) as a file of `type`, encoded here, off the page's
   * thread: PNG by Pillow, JPEG and WebP by the browser's encoders (see
   * upscale.imaging.encode_png). Returns its bytes (a Blob, or for a PNG an ArrayBuffer).
   */
  async encode({ image, type, quality }) {
    try {
      await state.python;
      ({ type, quality } = dictFromPython(state.bridge.encoding(type, quality)));
      const canvas = new OffscreenCanvas(image.width, image.height);
      const context = canvas.getContext('2d');
      context.drawImage(image, 0, 0);
      if (type !== 'image/png') {
        const blob = await canvas.convertToBlob({ type, quality });
        if (blob.type !== type) {
          throw Object.assign(new Error(`this browser cannot write ${type} files`), { name: 'UnsupportedFormat' });
        }
        return blob; // posted as a handle to the browser's bytes, not copied
      }
      await ensurePillow();
      const { data, width, height } = context.getImageData(0, 0, image.width, image.height);
      return movedFromPython(whileBusy('encoding the PNG', () => state.bridge.png(
        new Uint8Array(data.buffer), width, height)));
    } finally {
      image.close();
    }
  },

  /** Whether an image of this size may be upscaled: asked before a page reads its pixels. */
  async check({ width, height, patchSize }) {
    if (state.recovering) await state.recovering;
    checkSize({ width, height }, patchSize);
  },

  async memory() {
    const here = TfBridge.memory();
    const pool = state.pool ? await state.pool.memory() : { tensors: 0, bytes: 0, heapBytes: 0 };
    return {
      tilesRun: state.tilesRun, // tiles handed to the model so far: a cancelled job stops adding
      tensors: here.tensors + pool.tensors, // every TF.js instance's live tensors
      bytes: here.bytes + pool.bytes,
      tfHeapBytes: here.heapBytes + pool.heapBytes, // their WASM heaps (each only grows)
      pyHeapBytes: state.pyodide ? state.pyodide._module.HEAP8.length : 0,
      // the Python snapshot this engine kept ({ bytes compressed, heapBytes, copyMs, totalMs }), if any
      pythonSnapshot: state.snapshotMade || null,
    };
  },
};

/**
 * A file Pillow does not read but the browser may (AVIF; HEIC in Safari), as RGBA pixels
 * decoded by the browser; other files as they are. A file neither reads is refused by Python,
 * by name, as before.
 */
async function browserDecoded(source) {
  if (source.kind !== 'encoded' || !state.bridge.browser_format(new Uint8Array(source.bytes, 0, Math.min(64, source.bytes.byteLength)))) {
    return source;
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(new Blob([source.bytes]));
  } catch {
    return source; // Python names the format it cannot read
  }
  return whileBusy('reading the image', () => bitmapToRgba(bitmap));
}

/**
 * The model a job runs on and why: the one it names, else the engine's default; for 'auto',
 * the one Python chooses from the file (upscale.routing) at the job's scale. Loaded (or taken
 * from those kept) and announced as busy meanwhile: a GPU compiles it without answering.
 */
async function jobModel(header, options) {
  const named = options.model ?? state.defaultModel;
  if (named !== 'auto' && (options.model == null || named === state.model.manifest.id)) {
    return { model: state.model, tile: state.tile, reason: 'named by the caller', blurry: null, plain: null };
  }
  let id = named;
  let reason = 'named by the caller'; // the job's model, or the engine's (setModel)
  let blurry = null; // 'auto': the model for this file if its pixels read blurred
  let plain = null; // 'auto': the contrast under which its pixels get bicubic, no model
  if (named === 'auto') {
    const scale = fromPython(state.bridge.auto_scale(options.scale ?? state.autoScale, state.routing));
    // The first bytes only, cut here: Python calls no method of a JS object it is handed (a
    // method's proxy outlived the call, and Python's snapshot refuses a JS object it holds).
    const head = header && header.subarray(0, state.bridge.HEADER_BYTES);
    const chosen = dictFromPython(state.bridge.choose_model(head, scale, state.routing));
    ({ model: id, reason, blurry, plain } = chosen);
  }
  return { ...(await modelFor(id, reason)), blurry, plain };
}

/** The loaded model `id` (or the one in use), as a job's { model, tile, reason }. */
async function modelFor(id, reason) {
  const manifest = findModel(id);
  if (manifest.id === state.model.manifest.id) return { model: state.model, tile: state.tile, reason };
  if (overflowsHere(manifest)) {
    await moveToWasm(`${manifest.id} overflows WebGL's half floats here`, state.model.manifest,
      state.model.manifest.custom ? state.ownArtifacts : null);
  }
  busy(`loading ${manifest.id}`);
  try {
    const { model, tile } = await withinLimit(`loading ${manifest.id}`, loaded(manifest));
    return { model, tile, reason };
  } finally {
    busy(null);
  }
}

/** One upscale on the job's model: the request handler without its GPU-loss wrapper. */
async function upscaleNow({ input, options = {} }, id) {
  if (input.kind === 'bitmap') checkSize(input.bitmap, options.patchSize); // before its pixels are read
  const read = whileBusy('reading the image', () => (input.kind === 'bitmap' ? bitmapToRgba(input.bitmap) : input));
  // `auto` reads the file's first bytes: this file's, or those of the file the caller's
  // pixels came from (options.header)
  const file = read.kind === 'encoded' ? read.bytes : options.header;
  const header = file ? new Uint8Array(file) : null;
  let job = await jobModel(header, options);
  const source = await browserDecoded(read);
  const transparent = source.kind === 'rgba' && hasTransparency(new Uint8Array(source.data));
  if (source.kind === 'encoded' || transparent) await ensurePillow();
  const pyInput = {
    kind: source.kind,
    bytes: source.kind === 'encoded' ? new Uint8Array(source.bytes) : undefined,
    data: source.kind === 'rgba' ? new Uint8Array(source.data) : undefined,
    width: source.width,
    height: source.height,
  };
  const ran = { model: job.model.manifest.id, reason: job.reason };
  state.running = job.model;
  // `auto`: Python scores the decoded pixels and, if they read blurred, switches the job to the
  // table's blurry route (or back, with null, where that model may not run this image here).
  const routed = job;
  const reroute = job.blurry ? async (why) => {
    // (modelFor, also going back: loading the other may have let the first go)
    job = why == null
      ? { ...(await modelFor(routed.model.manifest.id, routed.reason)), blurry: null }
      : await modelFor(routed.blurry, `${routed.reason}; ${why}`);
    Object.assign(ran, { model: job.model.manifest.id, reason: job.reason });
    state.running = job.model;
    return job.tile;
  } : null;
  // `auto`: Python measures the decoded pixels' contrast and, if the file is too faint for any
  // model, enlarges it with bicubic instead; the result then says so.
  const plain = job.plain != null ? (why) => {
    Object.assign(ran, { model: state.bridge.PLAIN, reason: `${routed.reason}; ${why}` });
  } : null;
  // What the caller asked for; Python checks it against the tile rule (upscale.policy).
  const asked = { patchSize: options.patchSize ?? null, padding: options.padding ?? null, deviceMemory: DEVICE_MEMORY };
  // The tile is a numpy array proxied from Python: read it in place, synchronously.
  const predict = (tile, height, width) => {
    const view = tile.getBuffer('u8');
    state.tilesRun += 1;
    try {
      return job.model.predict(view.data, height, width).catch((error) => {
        if (error.name === 'OutOfMemory') state.tileFailure = state.tileFailure || error;
        throw error;
      });
    } finally {
      view.release();
    }
  };
  // paint() (preview only) runs just before progress() for the same tile; they go as one event.
  let preview = null;
  const paint = (x, y, width, height, rgba) => {
    const view = rgba.getBuffer('u8');
    try {
      preview = { x, y, width, height, data: view.data.slice().buffer };
    } finally {
      view.release();
    }
  };
  const progress = (done, total, x, y, width, height) => {
    const data = { done, total, tile: { x, y, width, height }, preview, ...ran };
    post({ type: 'event', id, name: 'progress', data }, preview ? [preview.data] : []);
    preview = null;
  };
  const cancelled = () => state.cancelled.has(id);
  // Python says when it decodes and when it finishes the image (busy): both synchronous.
  let result;
  try {
    result = fromPython(await state.bridge.run(
      pyInput, job.tile, asked, predict, progress, cancelled, options.preview ? paint : null, busy,
      reroute, plain, job.plain,
    ));
  } finally {
    busy(null);
    state.running = null;
  }
  const pixels = result.pixels;
  try {
    const [height, width] = pixels.shape.toJs();
    const data = whileBusy('handing over the result', () => {
      const view = pixels.getBuffer('u8');
      try {
        return view.data.slice(); // the one copy out, into a transferable buffer
      } finally {
        view.release();
      }
    });
    const tiling = { patchSize: result.patch, padding: result.padding };
    return Rpc.moved({ data: data.buffer, width, height, tiling, ...ran }, [data.buffer]);
  } finally {
    pixels.destroy();
    result.destroy();
  }
}

// One request at a time, in arrival order.
let queue = Promise.resolve();

self.onmessage = (event) => {
  const message = Rpc.ours(event.data);
  if (!message) return;
  if (message.type === 'cancel') {
    state.cancelled.add(message.id);
    return;
  }
  if (message.type === 'ping') {
    post({ type: 'pong' }); // answered between tiles: a busy worker is still a live one
    return;
  }
  if (message.type !== 'request') return;
  const { id, method, params } = message;
  if (method === 'inspect') {
    Rpc.answer(self, id, () => inspectNow(params).catch((error) => { throw plain(error); }));
    return; // reads a header: no need to wait behind a running upscale
  }
  queue = queue.then(() => Rpc.answer(self, id, async () => {
    try {
      if (state.cancelled.has(id)) throw Object.assign(new Error('cancelled'), { name: 'AbortError' });
      const run = methods[method];
      if (!run) throw new Error(`unknown method "${method}"`);
      if (method !== 'init' && method !== 'memory' && !state.model && !state.recovering) {
        throw new Error('the engine is not initialised');
      }
      const result = await run(params || {}, id);
      if (method === 'upscale' && state.snapshotPlan) queue = queue.then(makeSnapshot);
      return result;
    } catch (error) {
      throw plain(error);
    } finally {
      state.cancelled.delete(id);
    }
  }));
};

async function inspectNow({ bytes }) {
  await state.pythonReady;
  if (!state.bridge) throw new Error('the engine is not initialised');
  await ensurePillow();
  return dictFromPython(whileBusy('reading the file', () => state.bridge.inspect(new Uint8Array(bytes))));
}

self.addEventListener('unhandledrejection', (event) => {
  post({ type: 'event', id: null, name: 'error', data: Rpc.describe(plain(event.reason)) });
});
