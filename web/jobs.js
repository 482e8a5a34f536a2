/* The upscaler page's jobs: what each photo is, where it stands, and the queue that runs them
 * one at a time. No DOM here: app.js draws each job from these fields and calls these
 * methods, so a job's state changes in one place whatever button asked for it.
 *
 * A job goes queued -> running -> done | error | cancelled; Retry (and a rerun with another
 * model) puts it back in the queue. Removed jobs wait UNDO_MS for Undo before their pixels go.
 */
import { UpscaleError } from './upscale.js';

// Removed jobs (✕, Clear) wait this long for Undo before their pixels are let go.
export const UNDO_MS = 10_000;

// A crashed engine or a lost GPU is worth another try; other failures would fail again.
const RETRYABLE = new Set(['WorkerCrashed', 'ContextLost']);

export class Job {
  /** @param {{ name: string, blob?: Blob, url?: string }} source */
  constructor(id, source) {
    this.id = id;
    this.name = source.name;
    this.blob = source.blob || null;
    this.url = source.url || null;
    this.state = 'queued';
    this.done = 0;
    this.total = 0;
    this.image = null; // HTMLImageElement of the original, when the browser can show it
    this.thumbUrl = null;
    this.result = null; // ImageBitmap of the output: shown and encoded from, nothing else kept
    this.encoded = new Map(); // one encoding of the result, by "format:quality"
    this.error = null; // { name, message }
    this.model = null; // the manifest it runs (or ran) with
    this.reason = null;
    this.ms = 0;
    this.controller = null;
    this.jpeg = null; // { quality, denoise } when the file is a JPEG that noise removal would help
    this.facts = null; // what the engine read of the file's header (upscaler.inspect)
    this.rerun = false; // cancelled only to run again (with another model)
    this.saved = false; // its result was downloaded (alone or in the zip)
  }

  /** A result to show, or one on its way. */
  get visible() {
    return this.state === 'done' || this.state === 'running';
  }

  get retryable() {
    return this.state === 'cancelled' || (this.state === 'error' && RETRYABLE.has(this.error.name));
  }

  /** It starts running with `model`: returns the signal that cancels it. */
  start(model) {
    this.model = model;
    this.reason = null; // why `auto` chose the model that ran, once it ran
    this.state = 'running';
    this.done = 0;
    this.total = 0;
    this.controller = new AbortController();
    return this.controller.signal;
  }

  progress(done, total) {
    this.done = done;
    this.total = total;
  }

  succeed(result, ms) {
    if (this.result) this.result.close();
    this.result = result;
    this.ms = ms;
    this.state = 'done';
  }

  /** It stopped with `error`: cancelled (back in the queue if only to run again), or failed. */
  fail(error) {
    if (error.name === 'AbortError') {
      this.state = this.rerun ? 'queued' : 'cancelled';
    } else {
      this.state = 'error';
      this.error = { name: error.name || 'Error', message: error.message || String(error) };
    }
  }

  /** The run is over, however it ended. */
  settle() {
    this.controller = null;
    this.rerun = false;
  }

  cancel() {
    if (this.controller) this.controller.abort();
  }

  /** Back to the queue, its old result and error let go. */
  requeue() {
    this.state = 'queued';
    this.error = null;
    if (this.result) this.result.close();
    this.result = null;
    this.encoded.clear();
  }

  /** Run again with the model now chosen; a running job stops first. Returns whether it was requeued now. */
  runAgain() {
    if (this.state === 'running') {
      this.rerun = true;
      this.cancel();
      return false;
    }
    if (this.state === 'queued') return false;
    this.requeue();
    return true;
  }

  /** Gone for good: its thumbnail and result are freed. */
  release() {
    if (this.thumbUrl) URL.revokeObjectURL(this.thumbUrl);
    if (this.result) this.result.close();
    this.result = null;
  }
}

/**
 * The jobs in their order, run one at a time. `run(job)` runs one (app.js: the engine and the
 * viewer); `canRun()` says whether the engine takes jobs yet; `changed()` follows every change
 * of the list or of which job runs.
 */
export class JobQueue {
  constructor({ run, canRun, changed }) {
    this.jobs = [];
    this.running = null;
    this.removal = null; // { entries: [{ job, index }], timer }: what Undo brings back
    this.nextId = 1;
    this.hooks = { run, canRun, changed };
  }

  add(source) {
    const job = new Job(this.nextId++, source);
    this.jobs.push(job);
    this.hooks.changed();
    return job;
  }

  /** Run queued jobs, one at a time, until none is left (a no-op while one runs). */
  async pump() {
    if (this.running || !this.hooks.canRun()) return;
    const job = this.jobs.find((j) => j.state === 'queued');
    if (!job) return;
    this.running = job;
    try {
      await this.hooks.run(job);
    } finally {
      this.running = null;
      this.hooks.changed();
      this.pump();
    }
  }

  /**
   * Take `list` out (running ones are cancelled); Undo can bring them back for UNDO_MS, then
   * `expired` is called and they are released. Returns the entries removed.
   */
  remove(list, expired) {
    this.finishRemoval(); // an earlier removal can no longer be undone
    const entries = list.map((job) => ({ job, index: this.jobs.indexOf(job) }));
    for (const { job } of entries) {
      job.cancel();
      this.jobs.splice(this.jobs.indexOf(job), 1);
    }
    this.removal = { entries, expired, timer: setTimeout(() => this.finishRemoval(), UNDO_MS) };
    this.hooks.changed();
    return entries;
  }

  /** Put the last removal back where each job was; returns its entries (none: nothing to undo). */
  undo() {
    if (!this.removal) return [];
    clearTimeout(this.removal.timer);
    const entries = [...this.removal.entries].sort((a, b) => a.index - b.index);
    for (const entry of entries) {
      entry.index = Math.min(entry.index, this.jobs.length);
      this.jobs.splice(entry.index, 0, entry.job);
    }
    this.removal = null;
    this.hooks.changed();
    this.pump();
    return entries;
  }

  /** Let the removed jobs go for good. */
  finishRemoval() {
    if (!this.removal) return;
    const { entries, expired, timer } = this.removal;
    clearTimeout(timer);
    for (const { job } of entries) job.release();
    this.removal = null;
    if (expired) expired();
  }

  /** The newest job with something to show, other than `except`. */
  newestVisible(except = null) {
    return [...this.jobs].reverse().find((job) => job !== except && job.visible);
  }

  get finished() {
    return this.jobs.filter((job) => job.state === 'done');
  }

  get unsaved() {
    return this.jobs.some((job) => job.state === 'done' && !job.saved);
  }
}

/* ---------- getting files in ---------- */

// What a saved file may be called, whatever an address or a dropped file said: a base name (no
// folders: "..%2F..%2Fx.png" is x.png), no control or reserved characters (NUL, "C:\", "|"),
// no leading or trailing dots, not a name Windows reserves, at most 100 characters.
const UNSAFE_CHARACTERS = /[\u0000-\u001f\u007f<>:"|?*]+/g;
const RESERVED_NAME = /^(con|prn|aux|nul|com\d|lpt\d)(\.|$)/i;

export function safeName(text) {
  const base = String(text).split(/[/\\]/).filter(Boolean).pop() || '';
  let name = base.replace(UNSAFE_CHARACTERS, '_').replace(/^[.\s]+|[.\s]+$/g, '').slice(0, 100);
  if (RESERVED_NAME.test(name)) name = `_${name}`;
  return name || 'image';
}

/** A path segment decoded; one with a malformed % escape stays as it was. */
function decoded(segment) {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** The name a job gets from an http(s) address, or null for anything else. */
export function nameFromAddress(text, base) {
  let url;
  try {
    url = new URL(text.trim(), base);
  } catch {
    return null;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
  return { name: safeName(decoded(url.pathname.split('/').filter(Boolean).pop() || '') || url.host), url: url.href };
}

// An image fetched by address: given up after this long, or past this many bytes (the largest
// input, 4096 x 4096, is under 70 MB even as an uncompressed PNG).
const FETCH_LIMIT_MS = 60_000;
const FETCH_LIMIT_BYTES = 100 * 2 ** 20;

/**
 * Fetch an image the user gave by address; a failure says what to do instead. Cancel (the
 * job's `signal`) stops it; so do a server that takes longer than FETCH_LIMIT_MS and a body
 * larger than FETCH_LIMIT_BYTES, which is never read whole.
 */
export async function fetchSource(address, signal) {
  const host = new URL(address).host;
  const slow = AbortSignal.timeout(FETCH_LIMIT_MS);
  const both = AbortSignal.any([signal, slow]);
  const tooSlow = () => new UpscaleError(
    `${host} did not send the image within ${FETCH_LIMIT_MS / 1000} s; try again, or save it and drop the file here`,
    { name: 'FetchError' },
  );
  const tooLarge = () => new UpscaleError(
    `the file at ${host} is larger than ${FETCH_LIMIT_BYTES / 2 ** 20} MB, more than any image Upscale takes`,
    { name: 'FetchError' },
  );
  let response;
  try {
    response = await fetch(address, { mode: 'cors', credentials: 'omit', signal: both });
  } catch (error) {
    signal.throwIfAborted();
    if (slow.aborted) throw tooSlow();
    throw new UpscaleError(
      `${host} did not let this page read the image: the site is unreachable or does not allow other sites to use its images (CORS). Save the image and drop the file here instead`,
      { name: 'FetchError' },
    );
  }
  if (!response.ok) throw new UpscaleError(`the server answered HTTP ${response.status} for ${address}`, { name: 'FetchError' });
  if (Number(response.headers.get('Content-Length')) > FETCH_LIMIT_BYTES) {
    response.body.cancel().catch(() => {});
    throw tooLarge();
  }
  const reader = response.body.getReader();
  const chunks = [];
  let received = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      received += value.length;
      if (received > FETCH_LIMIT_BYTES) {
        reader.cancel().catch(() => {});
        throw tooLarge();
      }
      chunks.push(value);
    }
  } catch (error) {
    if (error instanceof UpscaleError) throw error;
    signal.throwIfAborted();
    throw slow.aborted ? tooSlow() : new UpscaleError(`the download from ${host} broke off (${error.message})`, { name: 'FetchError' });
  }
  return new Blob(chunks, { type: response.headers.get('Content-Type') || '' });
}
