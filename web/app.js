/* The upscaler page: files in (drop, choose, paste, address), a queue run one job at a time
 * by one Upscaler, a live before/after viewer, downloads one by one or as a zip.
 *
 * All image work happens in the Upscaler's worker; this thread only routes buffers, paints
 * finished tiles and keeps the DOM current.
 */
import { CompareView } from './compare.js';
import { JobQueue, fetchSource, nameFromAddress, safeName } from './jobs.js';
import { DEFAULT_MODEL, Upscaler } from './upscale.js';

const $ = (id) => document.getElementById(id);
const SETTINGS_KEY = 'upscale:settings';
const EXTENSIONS = { 'image/png': 'png', 'image/webp': 'webp', 'image/jpeg': 'jpg' };
const ERROR_TITLES = {
  EmptyFile: 'Empty file',
  NotAnImage: 'Not an image',
  UnsupportedFormat: 'Unsupported format',
  CorruptImage: 'Damaged file',
  ImageTooLarge: 'Too large for this device',
  FetchError: 'Could not load',
  InvalidInput: 'Not an image',
  WorkerCrashed: 'The engine stopped',
  ContextLost: 'The GPU was reset',
};
// Failures of the engine rather than of the file: trying again can work.

// The picker's groups, in this order: what a model is for matters more than its size.
const PURPOSES = [
  ['sharpest', 'Sharpest (photos)'],
  ['fastest', 'Fastest'],
  ['jpeg', 'For JPEG noise'],
  ['restore', 'Blurry or noisy photos'],
  ['illustration', 'For illustrations'],
  ['detail', 'Most detail (needs a GPU)'],
  ['legacy', 'Older models'],
];
const OTHER_PURPOSE = 'Other models';
// 'Automatic' heads the picker: each photo gets the model the bench measured best for its kind
// of file (upscale.routing, in the engine), and its queue entry says which ran and why.
const AUTO_SCALES = { auto: 2, 'auto-x4': 4 };
const AUTO_GROUP = 'Automatic';
const AUTO_LABEL = (scale) => `Automatic ×${scale}: the best model for each photo`;
const AUTO_HINT = 'Chooses per photo from what its file says: SPAN for clean photos, JPEG noise removal by how compressed a JPEG is, restoring for blurred ones, and plain bicubic for a faint photo no model improves. Each result says which model ran and why.';
const OWN_GROUP = 'Your model';
// The bench measures msPerMegapixel on WebAssembly on a 2-core machine: say so, not more.
const SPEED_HINT = (time) => `About ${time} per megapixel on a computer without a GPU (measured on 2 CPU cores).`;
const JPEG_NOTE = (quality, level) =>
  `Compressed JPEG (quality ≈ ${quality}): waifu2x with noise removal level ${level} cleans its blocks.`;

// A model the user brings: ncnn's .param (the network, text) and .bin (the weights).
const OWN_PREFIX = 'custom:'; // picker values of brought models; no catalogue id starts so
const OWN_LABEL = (name, scale) => `Your model: ${name} (×${scale})`;
const OWN_HINT = 'Your own ncnn model, converted in this browser; it is kept until this tab closes.';
const OWN_LOADING = (name) => `Converting and loading ${name}…`;
const OWN_FAILED = (name, message, still) => `${name} could not be used: ${clause(message)}. Still using ${still}.`;
const OWN_NO_BIN = (name) =>
  `${name}.param came without its weights: choose or drop its .bin file together with it.`;
const OWN_NO_PARAM = (name) =>
  `${name}.bin came without its network: choose or drop its .param file together with it.`;
const OWN_NOT_A_PAIR = 'A model of your own is one .param file and one .bin file: choose or drop exactly those two.';
// The pair lasts for this tab's session: the files in IndexedDB, the mark in sessionStorage
// (gone when the tab closes, so a new session starts clean).
const OWN_SESSION_KEY = 'upscale:own-model';
const OWN_DB = 'upscale-own-model';
const OWN_STORE = 'pairs';
// Files of tabs closed long ago are deleted; younger ones may belong to another open tab.
const OWN_STALE_MS = 24 * 3600 * 1000;

const ui = {
  drop: $('drop'), file: $('file'), urlForm: $('url-form'), url: $('url'),
  model: $('model'), modelHint: $('model-hint'), ownModel: $('own-model'),
  format: $('format'), quality: $('quality'),
  qualityValue: $('quality-value'), qualityField: $('quality-field'),
  engine: $('engine'), engineText: $('engine-text'), engineWhy: $('engine-why'), engineReason: $('engine-reason'),
  queue: $('queue'), queueEmpty: $('queue-empty'), downloadAll: $('download-all'), clear: $('clear'),
  viewer: $('viewer'), viewerTitle: $('viewer-title'), viewerMeta: $('viewer-meta'),
  progressRow: $('progress-row'), progress: $('progress'), progressText: $('progress-text'), cancel: $('cancel'),
  compare: $('compare'), download: $('download'), versions: $('versions'),
  undo: $('undo'), undoText: $('undo-text'), undoButton: $('undo-button'),
};

const view = new CompareView(ui.compare, {
  before: $('before-canvas'), after: $('after-canvas'), split: $('split'), level: $('zoom-level'),
  zoomIn: $('zoom-in'), zoomOut: $('zoom-out'), fit: $('zoom-fit'), actual: $('zoom-actual'),
});

/* ---------- settings that persist across visits ---------- */

function loadSettings() {
  const defaults = { model: DEFAULT_MODEL, format: 'image/png', quality: 92 };
  try {
    return { ...defaults, ...JSON.parse(localStorage.getItem(SETTINGS_KEY) || '{}') };
  } catch {
    return defaults; // storage blocked or unreadable: start from the defaults
  }
}

function saveSettings() {
  try {
    localStorage.setItem(SETTINGS_KEY, JSON.stringify(settings));
  } catch {
    // private browsing or storage full: the settings last for this visit only
  }
}

const settings = loadSettings();

/* ---------- the page's state: everything that changes, in one place ---------- */

const state = {
  models: [], // the catalogue
  upscaler: null, // the engine: the one Upscaler every job runs on
  engineReady: false,
  markEngineUp: null,
  engineUp: null, // resolves once the engine has first started
  chosen: settings.model, // the model the picker shows and the next job runs with
  loaded: null, // the model the engine runs now
  ownModel: null, // { name, scale, param: Blob, bin: Blob }: the pair brought in this tab
  modelWork: Promise.resolve(), // model changes, one at a time
  offline: null, // the service worker's registration, once made
  queue: new JobQueue({ run: runJob, canRun: () => state.engineReady, changed: updateQueueChrome }),
  parts: new WeakMap(), // each job's elements in the queue (renderJob)
  saving: new Set(), // jobs whose file is being written for a download
  shown: null, // the job in the viewer
  shownByUser: false,
  engineRestarted: false,
  viewing: null, // { job, bicubic }: whose pictures the view's canvases hold
  dragDepth: 0,
};
state.engineUp = new Promise((resolve) => { state.markEngineUp = resolve; });

/* ---------- the engine and its model ---------- */

// Model ids: a catalogue id, or OWN_PREFIX + name for the model the user brought.

function setEngine(status, text) {
  ui.engine.dataset.state = status;
  ui.engineText.textContent = text;
}

function megabytes(bytes) {
  return `${(bytes / 1e6).toFixed(bytes < 1e7 ? 1 : 0)} MB`;
}

/** A duration as a person says it: "0.7 s", "4 s", "35 s", "3 min". */
function roughly(ms) {
  if (ms < 10_000) return `${Number((ms / 1000).toPrecision(1))} s`;
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  return `${Math.round(ms / 60_000)} min`;
}

/** "layer type X is not supported." and "… supported" read the same inside a sentence. */
function clause(text) {
  return String(text || '').trim().replace(/[.\s]+$/, '');
}

function isOwn(id) {
  return typeof id === 'string' && id.startsWith(OWN_PREFIX);
}

function ownId(own) {
  return `${OWN_PREFIX}${own.name}`;
}

function ownManifest(own) {
  return {
    id: ownId(own), label: OWN_LABEL(own.name, own.scale), hint: OWN_HINT,
    scale: own.scale, weightBytes: own.bin.size, custom: true,
  };
}

/** The picker's stand-in for `auto` at one scale: the model is known once a photo ran. */
function autoManifest(id) {
  const scale = AUTO_SCALES[id];
  return { id, label: AUTO_LABEL(scale), hint: AUTO_HINT, scale, auto: true };
}

/** What a result of `auto` names when no model ran: a faint photo gets bicubic (routing.PLAIN). */
const PLAIN_MODEL = 'bicubic';

function plainManifest(scale) {
  return { id: PLAIN_MODEL, label: `Bicubic ×${scale}, no model`, scale };
}

function manifestOf(id) {
  if (id in AUTO_SCALES) return autoManifest(id);
  if (isOwn(id)) return state.ownModel && ownId(state.ownModel) === id ? ownManifest(state.ownModel) : undefined;
  return state.models.find((m) => m.id === id);
}

/** Catalogue entries by purpose, in PURPOSES' order; each group by scale, then noise level. */
function groupByPurpose(entries) {
  const known = new Map(PURPOSES);
  const groups = new Map(PURPOSES.map(([, title]) => [title, []]));
  for (const manifest of entries) {
    const title = known.get(manifest.purpose) || OTHER_PURPOSE;
    if (!groups.has(title)) groups.set(title, []);
    groups.get(title).push(manifest);
  }
  const order = (m) => [m.scale, m.denoise ?? -1];
  for (const members of groups.values()) {
    members.sort((a, b) => {
      const [x, y] = [order(a), order(b)];
      return x[0] - y[0] || x[1] - y[1] || a.label.localeCompare(b.label);
    });
  }
  return [...groups].filter(([, members]) => members.length);
}

function fillModelPicker() {
  ui.model.textContent = '';
  const auto = document.createElement('optgroup');
  auto.label = AUTO_GROUP;
  for (const id of Object.keys(AUTO_SCALES)) auto.append(new Option(autoManifest(id).label, id));
  ui.model.append(auto);
  for (const [title, members] of groupByPurpose(state.models)) {
    const group = document.createElement('optgroup');
    group.label = title;
    for (const manifest of members) {
      group.append(new Option(`${manifest.label} · ${megabytes(manifest.weightBytes)}`, manifest.id));
    }
    ui.model.append(group);
  }
  if (state.ownModel) {
    const group = document.createElement('optgroup');
    group.label = OWN_GROUP;
    group.append(new Option(OWN_LABEL(state.ownModel.name, state.ownModel.scale), ownId(state.ownModel)));
    ui.model.append(group);
  }
  ui.model.value = state.chosen;
  ui.model.disabled = false;
  showModelHint();
}

function showModelHint() {
  const manifest = manifestOf(state.chosen);
  if (!manifest) {
    ui.modelHint.textContent = '';
    return;
  }
  if (manifest.auto) {
    ui.modelHint.textContent = manifest.hint;
    return;
  }
  const size = megabytes(manifest.weightBytes);
  const parts = [manifest.hint || '', manifest.custom ? `Weights ${size}.` : `Download ${size}.`];
  if (manifest.msPerMegapixel > 0) parts.push(SPEED_HINT(roughly(manifest.msPerMegapixel)));
  ui.modelHint.textContent = parts.filter(Boolean).join(' ');
}

/** Make `id` the picker's choice; catalogue choices are remembered across visits. */
function choose(id) {
  state.chosen = id;
  ui.model.value = id;
  if (!isOwn(id)) {
    settings.model = id;
    saveSettings();
  }
  if (state.ownModel) rememberOwnChoice(isOwn(id));
  showModelHint();
  refreshNotes();
}

async function startEngine() {
  try {
    state.models = await Upscaler.listModels();
  } catch (error) {
    setEngine('error', `The model list could not be loaded: ${error.message}`);
    return;
  }
  if (!manifestOf(settings.model)) settings.model = DEFAULT_MODEL;
  state.chosen = settings.model;
  await restoreOwnModel();
  fillModelPicker();
  state.upscaler = new Upscaler(engineChoice(settings.model));
  let info;
  try {
    info = await state.upscaler.ready;
    state.engineReady = true;
    state.loaded = settings.model;
    showEngine(info);
    const v = info.versions;
    ui.versions.textContent = `Pyodide ${v.pyodide} (Python ${v.python}), numpy ${v.numpy}, Pillow ${v.pillow || '(loaded for the first file)'}, TensorFlow.js ${v.tfjs}.`;
  } catch (error) {
    setEngine('error', `The engine could not start: ${error.message}`);
    return;
  }
  state.markEngineUp();
  keepForOffline(info.model.id);
  await useChosenModel(); // a brought model chosen before a reload loads again now
  state.queue.pump();
}

function showEngine(info) {
  const names = { webgpu: 'WebGPU', webgl: 'WebGL', wasm: 'WebAssembly', cpu: 'plain JavaScript (slow)' };
  const model = info.auto ? AUTO_LABEL(info.auto.scale) : info.model.label;
  setEngine('ready', `Ready: ${model} on ${names[info.backend] || info.backend}`);
  ui.engine.dataset.backend = info.backend;
  ui.engineReason.textContent = info.reason;
  ui.engineWhy.hidden = false;
}

// Model switches run one after another: a job starting, a picker change and a brought pair
// must not interleave their setModel calls.

function exclusive(task) {
  const run = state.modelWork.then(task);
  state.modelWork = run.catch(() => {});
  return run;
}

/** What the Upscaler is told for a picker choice: a model, and for `auto` its scale. */
function engineChoice(id) {
  return id in AUTO_SCALES ? { model: 'auto', scale: AUTO_SCALES[id] } : { model: id };
}

/** Make the engine run the model the picker shows; the old model stays if loading fails. */
function useChosenModel() {
  return exclusive(async () => {
    const wanted = state.chosen;
    if (wanted === state.loaded) return;
    const manifest = manifestOf(wanted);
    const own = isOwn(wanted);
    setEngine('loading', own ? OWN_LOADING(state.ownModel.name)
      : `Loading ${manifest.label}${manifest.auto ? '' : ` (${megabytes(manifest.weightBytes)})`}…`);
    try {
      const { model, scale } = engineChoice(wanted);
      const info = await state.upscaler.setModel(own ? ownRequest(state.ownModel) : model, { scale });
      state.loaded = wanted;
      showEngine(info);
      if (!own) keepForOffline(info.model.id);
    } catch (error) {
      if (state.chosen === wanted) choose(state.loaded);
      const still = manifestOf(state.loaded).label;
      setEngine('error', own
        ? OWN_FAILED(state.ownModel.name, error.message, still)
        : `${manifest.label} could not be loaded (${error.message}); still using ${still}.`);
    }
  });
}

/* ---------- offline: the service worker ---------- */

// Registered once the engine is ready, so the worker fills its cache from the HTTP cache, not
// the network; every model the page loads is named to it to keep (see sw.js).

function keepForOffline(modelId) {
  if (!('serviceWorker' in navigator)) return;
  state.offline = state.offline || navigator.serviceWorker.register(new URL('../sw.js', import.meta.url))
    .then(() => navigator.serviceWorker.ready);
  state.offline.then((registration) => registration.active.postMessage({ type: 'keep-model', id: modelId }))
    .catch((error) => console.warn(`Upscale: offline use is not available (${error.message})`));
}

/** The model the engine runs now, as the page describes it. */
function loadedManifest() {
  return manifestOf(state.loaded);
}

/* ---------- a model of the user's own ---------- */

function ownRequest(own) {
  return { ncnn: { param: own.param, bin: own.bin }, name: own.name };
}

function extension(file) {
  const match = /\.([^.]+)$/.exec(file.name || '');
  return match ? match[1].toLowerCase() : '';
}

function stem(file) {
  return (file.name || 'model').replace(/\.[^.]+$/, '') || 'model';
}

/** Files that are all ncnn model halves go to the model, not to the image queue. */
function isModelFiles(files) {
  return files.length > 0 && files.every((file) => ['param', 'bin'].includes(extension(file)));
}

/** One .param and one .bin: load them as the model; anything else says what is missing. */
function useOwnFiles(files) {
  const params = files.filter((file) => extension(file) === 'param');
  const bins = files.filter((file) => extension(file) === 'bin');
  if (params.length === 1 && bins.length === 1) {
    loadOwnModel({ name: stem(params[0]), param: params[0], bin: bins[0] });
  } else if (params.length === 1 && !bins.length) {
    setEngine('error', OWN_NO_BIN(stem(params[0])));
  } else if (bins.length === 1 && !params.length) {
    setEngine('error', OWN_NO_PARAM(stem(bins[0])));
  } else {
    setEngine('error', OWN_NOT_A_PAIR);
  }
}

/** Convert and load a brought pair; only once it runs does it join the picker. */
async function loadOwnModel(candidate) {
  await state.engineUp;
  return exclusive(async () => {
    setEngine('loading', OWN_LOADING(candidate.name));
    let info;
    try {
      info = await state.upscaler.setModel(ownRequest(candidate));
    } catch (error) {
      const still = loadedManifest();
      setEngine('error', OWN_FAILED(candidate.name, error.message, still ? still.label : 'the previous model'));
      return;
    }
    state.ownModel = { ...candidate, scale: info.model.scale };
    state.loaded = ownId(state.ownModel);
    fillModelPicker();
    choose(state.loaded);
    showEngine(info);
    keepOwnModel(state.ownModel);
  });
}

/** The session mark: { key, name, scale, selected }, or null in a new session. */
function readOwnMark() {
  try {
    return JSON.parse(sessionStorage.getItem(OWN_SESSION_KEY) || 'null');
  } catch {
    return null;
  }
}

function writeOwnMark(mark) {
  try {
    sessionStorage.setItem(OWN_SESSION_KEY, JSON.stringify(mark));
  } catch {
    // storage blocked: the pair lasts until this page closes
  }
}

function rememberOwnChoice(selected) {
  const mark = readOwnMark();
  if (mark) writeOwnMark({ ...mark, selected });
}

/** Run `act(store)` in one IndexedDB transaction; resolves to its request's result. */
function ownStore(mode, act) {
  return new Promise((resolve, reject) => {
    const opening = indexedDB.open(OWN_DB, 1);
    opening.onupgradeneeded = () => opening.result.createObjectStore(OWN_STORE);
    opening.onerror = () => reject(opening.error);
    opening.onsuccess = () => {
      const db = opening.result;
      const tx = db.transaction(OWN_STORE, mode);
      const request = act(tx.objectStore(OWN_STORE));
      tx.oncomplete = () => {
        db.close();
        resolve(request.result);
      };
      tx.onerror = tx.onabort = () => {
        db.close();
        reject(tx.error);
      };
    };
  });
}

async function keepOwnModel(own) {
  const key = (readOwnMark() || {}).key || crypto.randomUUID();
  writeOwnMark({ key, name: own.name, scale: own.scale, selected: state.chosen === ownId(own) });
  try {
    const record = { name: own.name, param: own.param, bin: own.bin, savedAt: Date.now() };
    await ownStore('readwrite', (store) => store.put(record, key));
  } catch (error) {
    console.debug('the brought model is not kept for a reload:', error);
  }
}

/** In this tab's session, the pair brought before a reload; in a new one, nothing. */
async function restoreOwnModel() {
  const mark = readOwnMark();
  try {
    if (!mark) {
      await forgetStaleOwnModels();
      return;
    }
    const record = await ownStore('readonly', (store) => store.get(mark.key));
    if (!record) return;
    state.ownModel = { name: mark.name, scale: mark.scale, param: record.param, bin: record.bin };
    if (mark.selected) state.chosen = ownId(state.ownModel);
  } catch (error) {
    console.debug('no brought model restored:', error);
  }
}

function forgetStaleOwnModels() {
  return ownStore('readwrite', (store) => {
    const walk = store.openCursor();
    walk.onsuccess = () => {
      const cursor = walk.result;
      if (!cursor) return;
      if (!(Date.now() - cursor.value.savedAt < OWN_STALE_MS)) cursor.delete();
      cursor.continue();
    };
    return walk;
  });
}

/* ---------- the queue, drawn (jobs.js holds what each job is) ---------- */

/** A new job from `source`: it joins the queue and runs when its turn comes. */
function addJob(source) {
  const job = state.queue.add(source);
  ui.queue.append(renderJob(job));
  state.queue.pump();
  inspectJob(job);
  return job;
}

function partsOf(job) {
  return state.parts.get(job);
}

function renderJob(job) {
  const item = document.createElement('li');
  item.className = 'item';
  item.dataset.id = String(job.id);
  const thumb = document.createElement('span');
  thumb.className = 'thumb';
  const info = document.createElement('div');
  const name = document.createElement('button');
  name.type = 'button';
  name.className = 'name';
  name.textContent = job.name;
  name.title = job.name;
  name.addEventListener('click', () => showJob(job, true));
  const line = document.createElement('div');
  line.className = 'state';
  const bar = document.createElement('div');
  bar.className = 'bar';
  bar.append(document.createElement('span'));
  const note = document.createElement('p');
  note.className = 'note';
  note.hidden = true;
  info.append(name, line, bar);
  const actions = document.createElement('div');
  actions.className = 'actions';
  item.append(thumb, info, actions, note);
  state.parts.set(job, { item, thumb, name, line, bar, note, actions });
  updateJob(job);
  return item;
}

function button(label, onClick, aria) {
  const element = document.createElement('button');
  element.type = 'button';
  element.textContent = label;
  if (aria) element.setAttribute('aria-label', aria);
  element.addEventListener('click', onClick);
  return element;
}

function seconds(ms) {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

function outputSize(job) {
  return `${job.result.width}×${job.result.height}`;
}

function updateJob(job) {
  const { item, line, bar, actions, name } = partsOf(job);
  item.dataset.state = job.state;
  item.classList.toggle('selected', job === state.shown);
  name.disabled = !job.visible;
  name.setAttribute('aria-label', `${job.name}: show in the viewer`);
  bar.hidden = job.state !== 'running';
  actions.textContent = '';
  line.textContent = '';
  delete item.dataset.error;
  line.removeAttribute('role');
  if (job.state === 'queued') line.textContent = 'Waiting…';
  if (job.state === 'running') updateJobProgress(job);
  if (job.state === 'cancelled') line.textContent = 'Cancelled';
  if (job.state === 'done') {
    line.textContent = `×${job.model.scale} · ${outputSize(job)} · ${seconds(job.ms)}`;
    if (job.reason) {
      const ran = document.createElement('span');
      ran.className = 'ran';
      ran.textContent = `${job.model.label} (${job.reason})`;
      line.append(' · ', ran);
    }
    const saving = state.saving.has(job);
    const download = button(saving ? 'Writing…' : 'Download', () => downloadJob(job), `Download ${job.name} upscaled`);
    download.disabled = saving;
    actions.append(download);
    const restore = restoreEntry(job.model);
    if (restore) {
      actions.append(button('Restore blur', () => useDenoise(job, restore),
        `Restore ${job.name}: sharpen a blurry or noisy photo with ${restore.label}`));
    }
  }
  if (job.state === 'error') {
    item.dataset.error = job.error.name;
    const title = document.createElement('span');
    title.className = 'error-title';
    title.textContent = `${ERROR_TITLES[job.error.name] || 'Failed'}: `;
    line.append(title, sentence(job.error.message));
    line.setAttribute('role', 'alert');
  }
  if (job.retryable) actions.append(button('Retry', () => retryJob(job), `Retry ${job.name}`));
  if (job.state === 'running') {
    actions.append(button('Cancel', () => job.cancel(), `Cancel ${job.name}`));
  } else {
    actions.append(button('✕', () => removeJobs([job]), `Remove ${job.name}`));
  }
  renderNote(job);
}

/** Per tile only the bar and its line change: the item's buttons (and keyboard focus) stay. */
function updateJobProgress(job) {
  const { line, bar } = partsOf(job);
  bar.firstChild.style.width = `${job.total ? (100 * job.done) / job.total : 0}%`;
  line.textContent = job.total ? `Upscaling: ${job.done} of ${job.total} tiles` : 'Reading…';
}

function sentence(text) {
  const trimmed = String(text || '').trim();
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

function updateQueueChrome() {
  const { jobs } = state.queue;
  ui.queueEmpty.hidden = jobs.length > 0;
  ui.downloadAll.disabled = !state.queue.finished.length;
  ui.clear.disabled = jobs.length === 0;
}

function retryJob(job) {
  job.requeue();
  requeued(job);
}

/** Run a job again with the model now chosen; a running one stops first (and comes back). */
function rerunJob(job) {
  if (job.runAgain()) requeued(job);
}

function requeued(job) {
  forgetViewer(job);
  updateJob(job);
  updateQueueChrome();
  state.queue.pump();
}

function removeJobs(list) {
  if (!list.length) return;
  const entries = state.queue.remove(list, () => {
    ui.undo.hidden = true;
  });
  for (const { job } of entries) {
    partsOf(job).item.remove();
    if (state.shown === job) showAnother(job);
  }
  ui.undoText.textContent = list.length === 1 ? `Removed ${list[0].name}.` : `Removed ${list.length} photos.`;
  ui.undo.hidden = false;
}

function undoRemoval() {
  const entries = state.queue.undo();
  if (!entries.length) return;
  const { jobs } = state.queue;
  // from the last back: each goes before the job now after it, which is already in place
  for (const { job, index } of [...entries].reverse()) {
    ui.queue.insertBefore(partsOf(job).item, jobs[index + 1] ? partsOf(jobs[index + 1]).item : null);
  }
  ui.undo.hidden = true;
  if (!state.shown) {
    const back = state.queue.newestVisible();
    if (back) showJob(back, false);
  }
  state.queue.pump();
}

/** The viewer leaves `job` (removed, or it failed): show the newest finished or running job. */
function showAnother(job) {
  state.shown = null;
  const next = state.queue.newestVisible(job);
  if (next) showJob(next, false);
  else ui.viewer.hidden = true;
  updateJob(job);
}

function clearAll() {
  removeJobs([...state.queue.jobs]);
}

// Closing the tab with results nobody saved asks first (browsers show their own wording).
function warnBeforeLeaving(event) {
  if (state.queue.unsaved) {
    event.preventDefault();
    event.returnValue = '';
  }
}

/** Name, size and a drawable of the original, if the browser can decode it at all. */
function probe(blob) {
  return new Promise((resolve) => {
    const url = URL.createObjectURL(blob);
    const image = new Image();
    image.onload = () => resolve({ image, url });
    image.onerror = () => {
      URL.revokeObjectURL(url);
      resolve(null);
    };
    image.src = url;
  });
}

/** Run `job` on the engine with the model the picker shows (the queue calls this, one at a time). */
async function runJob(job) {
  await useChosenModel();
  const manifest = loadedManifest();
  const signal = job.start(manifest);
  if (!state.shown || !state.shownByUser || state.shown.state !== 'done') showJob(job, false);
  updateJob(job);
  const started = performance.now();
  try {
    if (!job.blob) {
      job.blob = await fetchSource(job.url, signal);
      inspectJob(job);
    }
    signal.throwIfAborted();
    if (!job.image) {
      const seen = await probe(job.blob);
      // Beyond the engine's limits the page draws no preview either (a canvas that size is the
      // same hazard); the job then fails with the engine's own ImageTooLarge.
      const fits = seen && await state.upscaler.check(
        { width: seen.image.naturalWidth, height: seen.image.naturalHeight }).then(() => true, () => false);
      if (fits) {
        job.image = seen.image;
        job.thumbUrl = seen.url;
        const thumb = document.createElement('img');
        thumb.src = seen.url;
        thumb.alt = '';
        const parts = partsOf(job);
        parts.thumb.replaceWith(thumb);
        parts.thumb = thumb;
      } else if (seen) {
        URL.revokeObjectURL(seen.url);
      }
    }
    if (state.shown === job && job.image) {
      prepareViewer(job, job.image.naturalWidth * manifest.scale, job.image.naturalHeight * manifest.scale);
    }
    const output = await state.upscaler.upscale(job.blob, {
      signal,
      preview: true,
      onProgress: ({ done, total, preview }) => {
        job.progress(done, total);
        updateJobProgress(job);
        if (state.shown !== job) return;
        if (preview) view.paintTile(preview.x, preview.y, preview.image);
        showProgress(job, performance.now() - started);
      },
    });
    if (manifest.auto) {
      // what ran: the queue entry, the viewer and the file name follow it
      const plain = output.model === PLAIN_MODEL;
      job.model = plain ? plainManifest(manifest.scale) : manifestOf(output.model) || job.model;
      job.reason = output.reason;
      if (!plain) keepForOffline(output.model);
    }
    job.succeed(await createImageBitmap(output), performance.now() - started);
    if (state.engineRestarted) {
      state.engineRestarted = false;
      showEngine(await state.upscaler.ready);
    }
  } catch (error) {
    job.fail(error);
    if (error.name === 'WorkerCrashed') engineCrashed(error);
  } finally {
    job.settle();
  }
  updateJob(job);
  if (state.shown !== job) return;
  if (job.state === 'error') showAnother(job);
  else showJob(job, state.shownByUser);
}


function engineCrashed(error) {
  state.engineRestarted = true;
  setEngine('loading', `The engine stopped (${error.message}); it restarts with the next photo.`);
}

/* ---------- what a file is: JPEG noise (and the waifu2x model for it), animation, colour ---------- */

/**
 * Ask the engine about a file: how compressed a JPEG is, how many frames, which colour
 * profile. The answer comes from the file's header, beside any running upscale, so the queue
 * never waits for it; a file it cannot read just gets no note.
 */
async function inspectJob(job) {
  if (!job.blob) return;
  try {
    await state.engineUp;
    const facts = await state.upscaler.inspect(job.blob);
    job.facts = facts;
    if (facts.format === 'JPEG' && facts.denoise != null) {
      job.jpeg = { quality: facts.jpegQuality, denoise: facts.denoise };
    }
    renderNote(job);
  } catch (error) {
    console.debug(`no look at ${job.name} before its upscale:`, error); // the upscale says what is wrong
  }
}

/** What the page says of a file as it is read: an animation, a colour profile converted. */
function remarks(facts) {
  const out = [];
  if (!facts) return out;
  if (facts.frames > 1) out.push(`Animated (${facts.frames} frames): only the first frame is upscaled.`);
  if (facts.colourProfile && facts.colourConverted) {
    out.push(`Converted from its colour profile (${facts.colourProfile}) to sRGB.`);
  } else if (facts.colourProfile) {
    out.push(`Its colour profile (${facts.colourProfile}) could not be converted: colours may look different.`);
  }
  return out;
}

/**
 * The catalogue's model for blurry or noisy photos at `model`'s scale, for the one-click rerun
 * of a result that came back as soft as it went in; none for a result it made already.
 */
function restoreEntry(model) {
  if (!model || model.purpose === 'restore') return undefined;
  return state.models.find((m) => m.purpose === 'restore' && m.scale === model.scale);
}

/** The catalogue's waifu2x entry that removes noise of `level`. */
function denoiseEntry(level) {
  return state.models.find((m) => m.purpose === 'jpeg' && m.denoise === level);
}

/** The model a job's result came from, or for one still to run, the one chosen. */
function modelFor(job) {
  return job.visible && job.model ? job.model : manifestOf(state.chosen);
}

/** A compressed JPEG that a model without noise removal runs (or ran) gets the suggestion. */
function renderNote(job) {
  const { note } = partsOf(job);
  const model = modelFor(job);
  const entry = job.jpeg && denoiseEntry(job.jpeg.denoise);
  // `auto` removes JPEG noise itself: only a model chosen by hand gets the suggestion
  const helps = entry && job.state !== 'error' && !(model && (model.denoise != null || model.auto));
  const said = job.state === 'error' ? [] : remarks(job.facts);
  note.hidden = !helps && !said.length;
  note.textContent = '';
  for (const remark of said) {
    const line = document.createElement('span');
    line.className = 'remark';
    line.textContent = remark;
    note.append(line, ' ');
  }
  if (!helps) return;
  const text = document.createElement('span');
  text.textContent = JPEG_NOTE(job.jpeg.quality, job.jpeg.denoise);
  note.append(text, button('Use it', () => useDenoise(job, entry), `Use it: upscale ${job.name} with ${entry.label}`));
}

function refreshNotes() {
  for (const job of state.queue.jobs) renderNote(job);
}

function useDenoise(job, entry) {
  choose(entry.id);
  rerunJob(job);
  if (state.engineReady && !state.queue.running) useChosenModel();
}

/* ---------- the viewer ---------- */


/** A job runs again: its next result may differ in size, so the view is prepared afresh. */
function forgetViewer(job) {
  if (!state.viewing || state.viewing.job !== job) return;
  if (state.viewing.bicubic) state.viewing.bicubic.close();
  state.viewing = null;
}

/**
 * Size the view for `job` and draw its bicubic enlargement. The resampling runs off the main
 * thread (createImageBitmap with resizeQuality 'high'); the canvas only blits the result.
 */
async function prepareViewer(job, width, height) {
  if (state.viewing && state.viewing.job === job) return;
  if (state.viewing && state.viewing.bicubic) state.viewing.bicubic.close();
  const mine = { job, bicubic: null };
  state.viewing = mine;
  view.reset(width, height);
  if (!job.image) return; // the browser cannot show this file: no bicubic side
  try {
    mine.bicubic = await createImageBitmap(job.blob, { resizeWidth: width, resizeHeight: height, resizeQuality: 'high' });
  } catch {
    return;
  }
  if (state.viewing === mine) view.drawBefore(mine.bicubic);
  else mine.bicubic.close();
}

function showJob(job, byUser) {
  state.shownByUser = byUser;
  const previous = state.shown;
  state.shown = job;
  if (previous && previous !== job) updateJob(previous);
  ui.viewer.hidden = false;
  ui.viewerTitle.textContent = job.name;
  const isRunning = job.state === 'running';
  view.setRunning(isRunning);
  ui.progressRow.hidden = !isRunning;
  showDownload(job);
  if (job.state === 'done') {
    prepareViewer(job, job.result.width, job.result.height);
    view.drawAfter(job.result);
    const input = `${job.result.width / job.model.scale}×${job.result.height / job.model.scale}`;
    ui.viewerMeta.textContent = `${input} → ${outputSize(job)} · ${job.model.label} · ${seconds(job.ms)}`;
  } else if (isRunning) {
    if (job.image) {
      prepareViewer(job, job.image.naturalWidth * job.model.scale, job.image.naturalHeight * job.model.scale);
    }
    ui.viewerMeta.textContent = job.model.label;
    showProgress(job, 0);
  } else {
    ui.viewerMeta.textContent = job.state === 'cancelled' ? 'Cancelled' : '';
  }
  updateJob(job);
}

function showProgress(job, elapsed) {
  ui.progress.max = Math.max(1, job.total);
  ui.progress.value = job.done;
  if (!job.total) {
    ui.progressText.textContent = 'Reading the image…';
    return;
  }
  let text = `${job.done} of ${job.total} tiles · ${seconds(elapsed)}`;
  if (job.done > 0 && job.done < job.total) {
    text += ` · about ${seconds((elapsed / job.done) * (job.total - job.done))} left`;
  }
  ui.progressText.textContent = text;
}

/* ---------- downloads ---------- */

function fileName(job, format = settings.format) {
  const stem = job.name.replace(/\.[A-Za-z0-9]{1,5}$/, '') || 'image';
  return `${stem}@${job.model.scale}x.${EXTENSIONS[format]}`;
}

/** The job's result as a file of the chosen format, encoded in the engine's worker (once). */
async function encode(job) {
  const key = `${settings.format}:${settings.quality}`;
  if (!job.encoded.has(key)) {
    const blob = await state.upscaler.encode(job.result, { type: settings.format, quality: settings.quality / 100 });
    job.encoded.clear(); // keep one encoding per job: results can be large
    job.encoded.set(key, blob);
  }
  return job.encoded.get(key);
}

function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** The viewer's Download button for `job`: the file it saves, or that it is being written. */
function showDownload(job) {
  const saving = state.saving.has(job);
  ui.download.disabled = job.state !== 'done' || saving;
  if (job.state !== 'done') ui.download.textContent = 'Download';
  else ui.download.textContent = saving ? `Writing ${fileName(job)}…` : `Download ${fileName(job)}`;
}

async function downloadJob(job) {
  if (state.saving.has(job)) return;
  const shown = () => {
    updateJob(job);
    if (state.shown === job) showDownload(job);
  };
  state.saving.add(job); // a large PNG takes a while (Pillow: about 0.4 s a megapixel)
  shown();
  try {
    save(await encode(job), fileName(job));
    job.saved = true;
  } catch (error) {
    setEngine('error', `Saving ${job.name} failed: ${error.message}`);
  } finally {
    state.saving.delete(job);
    shown();
  }
}

async function downloadAll() {
  const done = state.queue.finished;
  if (!done.length) return;
  ui.downloadAll.disabled = true;
  const label = ui.downloadAll.textContent;
  ui.downloadAll.textContent = 'Zipping…';
  try {
    const files = [];
    for (const job of done) files.push({ name: fileName(job), blob: await encode(job) });
    save(await state.upscaler.zip(files), 'upscaled.zip'); // repeated names get a number there
    for (const job of done) job.saved = true;
  } catch (error) {
    setEngine('error', `The zip could not be made: ${error.message}`);
  } finally {
    ui.downloadAll.textContent = label;
    updateQueueChrome();
  }
}

/* ---------- getting files in ---------- */

/** Files from any route: an ncnn pair becomes the model, everything else joins the queue. */
function addFiles(fileList) {
  const files = [...fileList];
  if (isModelFiles(files)) {
    useOwnFiles(files);
    return;
  }
  for (const file of files) addJob({ name: safeName(file.name || 'pasted image'), blob: file });
}

function addAddress(text) {
  const source = nameFromAddress(text, location.href);
  if (source) addJob(source);
  return Boolean(source);
}

function hasFiles(event) {
  return event.dataTransfer && [...event.dataTransfer.types].some((t) => t === 'Files' || t === 'text/uri-list');
}

document.addEventListener('dragenter', (event) => {
  if (!hasFiles(event)) return;
  state.dragDepth++;
  ui.drop.classList.add('dragging');
});
document.addEventListener('dragleave', () => {
  state.dragDepth = Math.max(0, state.dragDepth - 1);
  if (!state.dragDepth) ui.drop.classList.remove('dragging');
});
document.addEventListener('dragover', (event) => {
  if (!hasFiles(event)) return;
  event.preventDefault(); // accept drops anywhere, so a missed drop never navigates away
  event.dataTransfer.dropEffect = 'copy';
});
document.addEventListener('drop', (event) => {
  if (!hasFiles(event)) return;
  event.preventDefault();
  state.dragDepth = 0;
  ui.drop.classList.remove('dragging');
  const { files } = event.dataTransfer;
  if (files.length) addFiles(files);
  else addAddress(event.dataTransfer.getData('text/uri-list').split('\n').find((l) => l && !l.startsWith('#')) || '');
});

ui.file.addEventListener('change', () => {
  addFiles(ui.file.files);
  ui.file.value = ''; // choosing the same file again is a new job
});

document.addEventListener('paste', (event) => {
  const data = event.clipboardData;
  if (!data) return;
  const files = [...data.files];
  if (files.length) {
    event.preventDefault();
    addFiles(files);
    return;
  }
  const editing = event.target instanceof HTMLInputElement || event.target instanceof HTMLTextAreaElement;
  if (!editing && addAddress(data.getData('text/plain'))) event.preventDefault();
});

ui.urlForm.addEventListener('submit', (event) => {
  event.preventDefault();
  if (addAddress(ui.url.value)) ui.url.value = '';
  else ui.url.setCustomValidity('Enter an http:// or https:// address of an image');
  ui.url.reportValidity();
});
ui.url.addEventListener('input', () => ui.url.setCustomValidity(''));

/* ---------- settings controls ---------- */

function showQuality() {
  ui.qualityValue.value = String(settings.quality);
  const lossy = settings.format !== 'image/png';
  ui.quality.disabled = !lossy;
  ui.qualityField.classList.toggle('off', !lossy);
  for (const job of state.queue.finished) updateJob(job);
  if (state.shown) showDownload(state.shown);
}

ui.format.value = settings.format in EXTENSIONS ? settings.format : 'image/png';
settings.format = ui.format.value;
ui.quality.value = String(settings.quality);
settings.quality = Number(ui.quality.value);
showQuality();

ui.format.addEventListener('change', () => {
  settings.format = ui.format.value;
  saveSettings();
  showQuality();
});
ui.quality.addEventListener('input', () => {
  settings.quality = Number(ui.quality.value);
  saveSettings();
  showQuality();
});
ui.model.addEventListener('change', () => {
  choose(ui.model.value);
  if (state.engineReady && !state.queue.running) useChosenModel();
});
ui.ownModel.addEventListener('change', () => {
  useOwnFiles([...ui.ownModel.files]);
  ui.ownModel.value = ''; // choosing the same pair again tries again
});

ui.cancel.addEventListener('click', () => state.shown && state.shown.cancel());
ui.download.addEventListener('click', () => state.shown && state.shown.state === 'done' && downloadJob(state.shown));
ui.downloadAll.addEventListener('click', downloadAll);
ui.clear.addEventListener('click', clearAll);
ui.undoButton.addEventListener('click', undoRemoval);
window.addEventListener('beforeunload', warnBeforeLeaving);
document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && state.queue.running) state.queue.running.cancel();
});

startEngine();
