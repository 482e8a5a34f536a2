/* The upscaler page: files in (drop, choose, paste, address), a queue run one job at a time
 * by one Upscaler, a live before/after viewer, downloads one by one or as a zip.
 *
 * All image work happens in the Upscaler's worker; this thread only routes buffers, paints
 * finished tiles and keeps the DOM current.
 */
import { CompareView } from './compare.js';
import { DEFAULT_MODEL, UpscaleError, Upscaler } from './upscale.js';
import { zipFiles } from './zip.js';

const $ = (id) => document.getElementById(id);
const SETTINGS_KEY = 'upscale:settings';
// Until the engine reports this device's limits (info.limits), the engine's own defaults.
// Beyond them the page draws no preview either: decoding a bomb for it is the same hazard.
let limits = { inputPixels: 16_777_216, outputPixels: 67_108_864 };
const EXTENSIONS = { 'image/png': 'png', 'image/webp': 'webp', 'image/jpeg': 'jpg' };
const FORMAT_NAMES = { 'image/png': 'PNG', 'image/webp': 'WebP', 'image/jpeg': 'JPEG' };
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
const RETRYABLE = new Set(['WorkerCrashed', 'ContextLost']);

const ui = {
  drop: $('drop'), file: $('file'), urlForm: $('url-form'), url: $('url'),
  model: $('model'), modelHint: $('model-hint'), format: $('format'), quality: $('quality'),
  qualityValue: $('quality-value'), qualityField: $('quality-field'),
  engine: $('engine'), engineText: $('engine-text'), engineWhy: $('engine-why'), engineReason: $('engine-reason'),
  queue: $('queue'), queueEmpty: $('queue-empty'), downloadAll: $('download-all'), clear: $('clear'),
  viewer: $('viewer'), viewerTitle: $('viewer-title'), viewerMeta: $('viewer-meta'),
  progressRow: $('progress-row'), progress: $('progress'), progressText: $('progress-text'), cancel: $('cancel'),
  compare: $('compare'), download: $('download'), versions: $('versions'),
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

/* ---------- the engine ---------- */

let models = [];
let upscaler = null;
let engineReady = false;

function setEngine(state, text) {
  ui.engine.dataset.state = state;
  ui.engineText.textContent = text;
}

function megabytes(bytes) {
  return `${(bytes / 1e6).toFixed(bytes < 1e7 ? 1 : 0)} MB`;
}

function fillModelPicker() {
  ui.model.textContent = '';
  const byScale = new Map();
  for (const manifest of models) {
    if (!byScale.has(manifest.scale)) byScale.set(manifest.scale, []);
    byScale.get(manifest.scale).push(manifest);
  }
  const order = { slim: 0, medium: 1, thick: 2, legacy: 3 };
  for (const scale of [...byScale.keys()].sort((a, b) => a - b)) {
    const group = document.createElement('optgroup');
    group.label = `×${scale}: ${scale} times wider and taller`;
    const members = byScale.get(scale).sort((a, b) => (order[a.size] ?? 9) - (order[b.size] ?? 9));
    for (const manifest of members) {
      const option = new Option(`${manifest.label} · ${megabytes(manifest.weightBytes)}`, manifest.id);
      group.append(option);
    }
    ui.model.append(group);
  }
  ui.model.value = settings.model;
  ui.model.disabled = false;
  showModelHint();
}

function manifestOf(id) {
  return models.find((m) => m.id === id);
}

function showModelHint() {
  const manifest = manifestOf(ui.model.value);
  ui.modelHint.textContent = manifest ? `${manifest.hint || ''} Download ${megabytes(manifest.weightBytes)}.` : '';
}

async function startEngine() {
  try {
    models = await Upscaler.listModels();
  } catch (error) {
    setEngine('error', `The model list could not be loaded: ${error.message}`);
    return;
  }
  if (!manifestOf(settings.model)) settings.model = DEFAULT_MODEL;
  fillModelPicker();
  upscaler = new Upscaler({ model: settings.model });
  try {
    const info = await upscaler.ready;
    engineReady = true;
    if (info.limits) limits = info.limits;
    showEngine(info);
    const v = info.versions;
    ui.versions.textContent = `Pyodide ${v.pyodide} (Python ${v.python}), numpy ${v.numpy}, Pillow ${v.pillow}, TensorFlow.js ${v.tfjs}.`;
  } catch (error) {
    setEngine('error', `The engine could not start: ${error.message}`);
    return;
  }
  pump();
}

function showEngine(info) {
  const names = { webgpu: 'WebGPU', webgl: 'WebGL', wasm: 'WebAssembly', cpu: 'plain JavaScript (slow)' };
  setEngine('ready', `Ready: ${info.model.label} on ${names[info.backend] || info.backend}`);
  ui.engine.dataset.backend = info.backend;
  ui.engineReason.textContent = info.reason;
  ui.engineWhy.hidden = false;
}

/** Make the engine run the model the picker shows; the old model stays if loading fails. */
async function useChosenModel() {
  if (upscaler.options.model === settings.model) return;
  const manifest = manifestOf(settings.model);
  setEngine('loading', `Loading ${manifest.label} (${megabytes(manifest.weightBytes)})…`);
  try {
    showEngine(await upscaler.setModel(settings.model));
  } catch (error) {
    settings.model = upscaler.options.model;
    ui.model.value = settings.model;
    showModelHint();
    saveSettings();
    setEngine('error', `${manifest.label} could not be loaded (${error.message}); still using ${manifestOf(settings.model).label}.`);
  }
}

/* ---------- jobs ---------- */

let nextJobId = 1;
const jobs = [];
let running = null; // the job the engine works on
let shown = null; // the job in the viewer
let shownByUser = false;

/**
 * @param {{ name: string, blob?: Blob, url?: string }} source
 */
function addJob(source) {
  const job = {
    id: nextJobId++,
    name: source.name,
    blob: source.blob || null,
    url: source.url || null,
    state: 'queued',
    done: 0,
    total: 0,
    image: null, // HTMLImageElement of the original, when the browser can show it
    thumbUrl: null,
    result: null, // ImageBitmap of the output: shown and encoded from, nothing else kept
    encoded: new Map(),
    error: null,
    model: null,
    ms: 0,
    controller: null,
  };
  job.element = renderJob(job);
  jobs.push(job);
  ui.queue.append(job.element);
  updateQueueChrome();
  pump();
  return job;
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
  const state = document.createElement('div');
  state.className = 'state';
  const bar = document.createElement('div');
  bar.className = 'bar';
  bar.append(document.createElement('span'));
  info.append(name, state, bar);
  const actions = document.createElement('div');
  actions.className = 'actions';
  item.append(thumb, info, actions);
  job.parts = { item, thumb, name, state, bar, actions };
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
  const { item, state, bar, actions, name } = job.parts;
  item.dataset.state = job.state;
  item.classList.toggle('selected', job === shown);
  name.disabled = !(job.state === 'done' || job.state === 'running');
  name.setAttribute('aria-label', `${job.name}: show in the viewer`);
  bar.hidden = job.state !== 'running';
  actions.textContent = '';
  state.textContent = '';
  if (job.state === 'queued') state.textContent = 'Waiting…';
  if (job.state === 'running') updateJobProgress(job);
  if (job.state === 'cancelled') state.textContent = 'Cancelled';
  if (job.state === 'done') {
    state.textContent = `×${job.model.scale} · ${outputSize(job)} · ${seconds(job.ms)}`;
    actions.append(button('Download', () => downloadJob(job), `Download ${job.name} upscaled`));
  }
  if (job.state === 'error') {
    item.dataset.error = job.error.name;
    const title = document.createElement('span');
    title.className = 'error-title';
    title.textContent = `${ERROR_TITLES[job.error.name] || 'Failed'}: `;
    state.append(title, sentence(job.error.message));
    state.setAttribute('role', 'alert');
  }
  if (job.state === 'cancelled' || (job.state === 'error' && RETRYABLE.has(job.error.name))) {
    actions.append(button('Retry', () => retryJob(job), `Retry ${job.name}`));
  }
  if (job.state === 'running') {
    actions.append(button('Cancel', () => cancelJob(job), `Cancel ${job.name}`));
  } else {
    actions.append(button('✕', () => removeJob(job), `Remove ${job.name}`));
  }
}

/** Per tile only the bar and its line change: the item's buttons (and keyboard focus) stay. */
function updateJobProgress(job) {
  const { state, bar } = job.parts;
  bar.firstChild.style.width = `${job.total ? (100 * job.done) / job.total : 0}%`;
  state.textContent = job.total ? `Upscaling: ${job.done} of ${job.total} tiles` : 'Reading…';
}

function sentence(text) {
  const trimmed = String(text || '').trim();
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

function updateQueueChrome() {
  ui.queueEmpty.hidden = jobs.length > 0;
  ui.downloadAll.disabled = !jobs.some((job) => job.state === 'done');
  ui.clear.disabled = jobs.length === 0;
}

function retryJob(job) {
  job.state = 'queued';
  job.error = null;
  delete job.parts.item.dataset.error;
  job.parts.state.removeAttribute('role');
  updateJob(job);
  pump();
}

function cancelJob(job) {
  if (job.controller) job.controller.abort();
}

function removeJob(job) {
  cancelJob(job);
  jobs.splice(jobs.indexOf(job), 1);
  job.parts.item.remove();
  if (job.thumbUrl) URL.revokeObjectURL(job.thumbUrl);
  if (job.result) job.result.close();
  if (shown === job) showAnother(job);
  updateQueueChrome();
}

/** The viewer leaves `job` (removed, or it failed): show the newest finished or running job. */
function showAnother(job) {
  shown = null;
  const next = [...jobs].reverse().find((j) => j !== job && (j.state === 'done' || j.state === 'running'));
  if (next) showJob(next, false);
  else ui.viewer.hidden = true;
  updateJob(job);
}

function clearAll() {
  for (const job of [...jobs]) removeJob(job);
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

/** Fetch an image the user gave by address; a failure says what to do instead. */
async function fetchSource(address) {
  let response;
  try {
    response = await fetch(address, { mode: 'cors', credentials: 'omit' });
  } catch {
    const host = new URL(address).host;
    throw new UpscaleError(
      `${host} did not let this page read the image: the site is unreachable or does not allow other sites to use its images (CORS). Save the image and drop the file here instead`,
      { name: 'FetchError' },
    );
  }
  if (!response.ok) throw new UpscaleError(`the server answered HTTP ${response.status} for ${address}`, { name: 'FetchError' });
  return response.blob();
}

async function pump() {
  if (running || !engineReady) return;
  const job = jobs.find((j) => j.state === 'queued');
  if (!job) return;
  running = job;
  try {
    await useChosenModel();
    await runJob(job);
  } finally {
    running = null;
    updateQueueChrome();
    pump();
  }
}

async function runJob(job) {
  const manifest = manifestOf(upscaler.options.model);
  job.model = manifest;
  job.state = 'running';
  job.done = 0;
  job.total = 0;
  job.controller = new AbortController();
  const { signal } = job.controller;
  if (!shown || !shownByUser || shown.state !== 'done') showJob(job, false);
  updateJob(job);
  const started = performance.now();
  try {
    if (!job.blob) job.blob = await fetchSource(job.url);
    signal.throwIfAborted();
    if (!job.image) {
      const seen = await probe(job.blob);
      const pixels = seen ? seen.image.naturalWidth * seen.image.naturalHeight : 0;
      if (seen && pixels <= limits.inputPixels && pixels * manifest.scale ** 2 <= limits.outputPixels) {
        job.image = seen.image;
        job.thumbUrl = seen.url;
        const thumb = document.createElement('img');
        thumb.src = seen.url;
        thumb.alt = '';
        job.parts.thumb.replaceWith(thumb);
        job.parts.thumb = thumb;
      } else if (seen) {
        URL.revokeObjectURL(seen.url);
      }
    }
    if (shown === job && job.image) {
      prepareViewer(job, job.image.naturalWidth * manifest.scale, job.image.naturalHeight * manifest.scale);
    }
    const output = await upscaler.upscale(job.blob, {
      signal,
      preview: true,
      onProgress: ({ done, total, preview }) => {
        job.done = done;
        job.total = total;
        updateJobProgress(job);
        if (shown !== job) return;
        if (preview) view.paintTile(preview.x, preview.y, preview.image);
        showProgress(job, performance.now() - started);
      },
    });
    job.result = await createImageBitmap(output);
    job.ms = performance.now() - started;
    job.state = 'done';
    if (engineRestarted) {
      engineRestarted = false;
      showEngine(await upscaler.ready);
    }
  } catch (error) {
    if (error.name === 'AbortError') {
      job.state = 'cancelled';
    } else {
      job.state = 'error';
      job.error = { name: error.name || 'Error', message: error.message || String(error) };
      if (error.name === 'WorkerCrashed') engineCrashed(error);
    }
  } finally {
    job.controller = null;
  }
  updateJob(job);
  if (shown !== job) return;
  if (job.state === 'error') showAnother(job);
  else showJob(job, shownByUser);
}

let engineRestarted = false;

function engineCrashed(error) {
  engineRestarted = true;
  setEngine('loading', `The engine stopped (${error.message}); it restarts with the next photo.`);
}

/* ---------- the viewer ---------- */

let viewing = null; // { job, bicubic }: whose pictures the view's canvases hold

/**
 * Size the view for `job` and draw its bicubic enlargement. The resampling runs off the main
 * thread (createImageBitmap with resizeQuality 'high'); the canvas only blits the result.
 */
async function prepareViewer(job, width, height) {
  if (viewing && viewing.job === job) return;
  if (viewing && viewing.bicubic) viewing.bicubic.close();
  const mine = { job, bicubic: null };
  viewing = mine;
  view.reset(width, height);
  if (!job.image) return; // the browser cannot show this file: no bicubic side
  try {
    mine.bicubic = await createImageBitmap(job.blob, { resizeWidth: width, resizeHeight: height, resizeQuality: 'high' });
  } catch {
    return;
  }
  if (viewing === mine) view.drawBefore(mine.bicubic);
  else mine.bicubic.close();
}

function showJob(job, byUser) {
  shownByUser = byUser;
  const previous = shown;
  shown = job;
  if (previous && previous !== job) updateJob(previous);
  ui.viewer.hidden = false;
  ui.viewerTitle.textContent = job.name;
  const isRunning = job.state === 'running';
  view.setRunning(isRunning);
  ui.progressRow.hidden = !isRunning;
  ui.download.disabled = job.state !== 'done';
  if (job.state === 'done') {
    prepareViewer(job, job.result.width, job.result.height);
    view.drawAfter(job.result);
    const input = `${job.result.width / job.model.scale}×${job.result.height / job.model.scale}`;
    ui.viewerMeta.textContent = `${input} → ${outputSize(job)} · ${job.model.label} · ${seconds(job.ms)}`;
    ui.download.textContent = `Download ${fileName(job)}`;
  } else if (isRunning) {
    if (job.image) {
      prepareViewer(job, job.image.naturalWidth * job.model.scale, job.image.naturalHeight * job.model.scale);
    }
    ui.viewerMeta.textContent = job.model.label;
    ui.download.textContent = 'Download';
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

async function encode(job) {
  const key = `${settings.format}:${settings.quality}`;
  if (!job.encoded.has(key)) {
    const canvas = document.createElement('canvas');
    canvas.width = job.result.width;
    canvas.height = job.result.height;
    canvas.getContext('2d').drawImage(job.result, 0, 0);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, settings.format, settings.quality / 100));
    if (!blob) throw new Error(`this browser cannot save ${FORMAT_NAMES[settings.format]}`);
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

async function downloadJob(job) {
  try {
    save(await encode(job), fileName(job));
  } catch (error) {
    setEngine('error', `Saving ${job.name} failed: ${error.message}`);
  }
}

async function downloadAll() {
  const done = jobs.filter((job) => job.state === 'done');
  if (!done.length) return;
  ui.downloadAll.disabled = true;
  const label = ui.downloadAll.textContent;
  ui.downloadAll.textContent = 'Zipping…';
  try {
    const used = new Set();
    const files = [];
    for (const job of done) {
      let name = fileName(job);
      for (let n = 2; used.has(name); n++) name = fileName(job).replace(/(\.\w+)$/, ` (${n})$1`);
      used.add(name);
      files.push({ name, blob: await encode(job) });
    }
    save(await zipFiles(files), 'upscaled.zip');
  } catch (error) {
    setEngine('error', `The zip could not be made: ${error.message}`);
  } finally {
    ui.downloadAll.textContent = label;
    updateQueueChrome();
  }
}

/* ---------- getting files in ---------- */

function addFiles(fileList) {
  for (const file of fileList) addJob({ name: file.name || 'pasted image', blob: file });
}

function addAddress(text) {
  let url;
  try {
    url = new URL(text.trim(), location.href);
  } catch {
    return false;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  const last = decodeURIComponent(url.pathname.split('/').filter(Boolean).pop() || '') || url.host;
  addJob({ name: last, url: url.href });
  return true;
}

function hasFiles(event) {
  return event.dataTransfer && [...event.dataTransfer.types].some((t) => t === 'Files' || t === 'text/uri-list');
}

let dragDepth = 0;
document.addEventListener('dragenter', (event) => {
  if (!hasFiles(event)) return;
  dragDepth++;
  ui.drop.classList.add('dragging');
});
document.addEventListener('dragleave', () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (!dragDepth) ui.drop.classList.remove('dragging');
});
document.addEventListener('dragover', (event) => {
  if (!hasFiles(event)) return;
  event.preventDefault(); // accept drops anywhere, so a missed drop never navigates away
  event.dataTransfer.dropEffect = 'copy';
});
document.addEventListener('drop', (event) => {
  if (!hasFiles(event)) return;
  event.preventDefault();
  dragDepth = 0;
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
  for (const job of jobs) if (job.state === 'done') updateJob(job);
  if (shown && shown.state === 'done') ui.download.textContent = `Download ${fileName(shown)}`;
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
  settings.model = ui.model.value;
  saveSettings();
  showModelHint();
  if (engineReady && !running) useChosenModel();
});

ui.cancel.addEventListener('click', () => shown && cancelJob(shown));
ui.download.addEventListener('click', () => shown && shown.state === 'done' && downloadJob(shown));
ui.downloadAll.addEventListener('click', downloadAll);
ui.clear.addEventListener('click', clearAll);
document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && running) cancelJob(running);
});

startEngine();
