/* TilePool: the engine worker's tile workers, one TF.js WASM instance per core.
 *
 * Loaded with importScripts() into the engine worker; exposes one global, TilePool. The pool
 * hands each tile to an idle tile worker (tileworker.js); PoolModel gives a model loaded in
 * all of them the same interface as TfBridge.Model, so the engine uses either alike.
 */
'use strict';

const TilePool = (() => {
  const MAX_WORKERS = 8;

  /**
   * Whether a tile worker's TF.js is broken beyond use: a WebAssembly trap ("memory access out
   * of bounds", "table index is out of bounds") or a failed allocation leaves its heap
   * corrupted, and every later call on it would fail too.
   */
  function broken(error) {
    return error.name === 'RuntimeError' || error.name === 'RangeError' || /out of memory/i.test(error.message);
  }

  /** How many tile workers this device gets: one per logical core, 1 meaning "no pool". */
  function size(wanted) {
    const cores = navigator.hardwareConcurrency || 1;
    if (wanted === 'auto' || wanted == null) return Math.min(cores, MAX_WORKERS);
    const n = Number(wanted);
    if (!Number.isInteger(n) || n < 1 || n > MAX_WORKERS) {
      throw Object.assign(new Error(`workers must be 'auto' or 1 to ${MAX_WORKERS}, not ${wanted}`),
        { name: 'InvalidOptions' });
    }
    return n;
  }

  /**
   * A Worker running tileworker.js from `base`, and the blob: URL that started it (or null).
   * From another origin it starts as the engine worker did: its scripts checked against the
   * build's integrity list first (self.UPSCALE_CHECKED, set up by upscale.js).
   */
  function startWorker(base) {
    const script = new URL('tileworker.js', base);
    if (script.origin === self.location.origin) return { worker: new Worker(script.href), url: null };
    const tf = new URL(self.UPSCALE_ASSETS.tfjs, base).href;
    const boot = self.UPSCALE_CHECKED
      ? self.UPSCALE_CHECKED.script({ base, main: script.href, scripts: [
        'assets.js', 'rpc.js', 'tfbridge.js', `${tf}tf.es2017.min.js`, `${tf}tf-backend-wasm.es2017.min.js`,
      ].map((path) => new URL(path, base).href) })
      : `self.UPSCALE_BASE = ${JSON.stringify(base)}; importScripts(${JSON.stringify(script.href)});`;
    const url = URL.createObjectURL(new Blob([boot], { type: 'text/javascript' }));
    return { worker: new Worker(url), url };
  }

  class Member {
    /** `onCrash(member)`: called once if the worker dies (an uncaught error, a crash). */
    constructor(base, onCrash) {
      const { worker, url } = startWorker(base);
      this.worker = worker;
      this.bootUrl = url;
      this.client = new Rpc.Client(worker);
      this.busy = false;
      this.worker.onmessage = ({ data }) => {
        const message = Rpc.ours(data);
        // What its start reports (a blocked or changed script) is the page's to know.
        if (message && !this.client.receive(message)) self.postMessage(message);
      };
      this.worker.onerror = (event) => {
        event.preventDefault();
        if (this.dead) return;
        this.fail(`a tile worker crashed: ${event.message || 'unknown error'}`);
        onCrash(this);
      };
    }

    call(method, params = {}, transfer = []) {
      if (this.dead) return Promise.reject(this.dead);
      return this.client.call(method, params, { transfer });
    }

    fail(message) {
      this.dead = Object.assign(new Error(message), { name: 'WorkerCrashed' });
      this.client.failAll(this.dead);
      this.worker.terminate();
      if (this.bootUrl) URL.revokeObjectURL(this.bootUrl);
    }
  }

  class Pool {
    constructor(count, base) {
      this.base = base;
      this.members = Array.from({ length: count }, () => this.newMember());
      this.waiting = []; // tiles waiting for an idle member: { run, resolve, reject }
      this.loaded = new Map(); // model key -> { manifest, artifacts }: what a new member loads
    }

    newMember() {
      return new Member(this.base, (member) => this.replace(member));
    }

    /**
     * Swap a broken or crashed member for a fresh worker, which loads every model the pool
     * holds before it takes a tile; the other members carry on meanwhile.
     */
    replace(member) {
      const index = this.members.indexOf(member);
      if (index < 0) return;
      if (!member.dead) member.fail('this tile worker was replaced');
      const fresh = this.newMember();
      fresh.busy = true; // until its models are loaded
      this.members[index] = fresh;
      const loads = [...this.loaded.values()].map(({ manifest, artifacts }) => fresh.call(
        'load', { manifest, base: this.base, artifacts }));
      Promise.all(loads).then(() => {
        fresh.busy = false;
        this.drain();
      }, (error) => {
        fresh.fail(`a new tile worker could not load the model: ${error.message}`);
        this.drain();
      });
    }

    get size() {
      return this.members.length;
    }

    /** For info.reason: what runs the model. */
    describe() {
      const each = (this.flavour || 'WASM').replace(/, 1 thread$/, '');
      return `${each}, ${this.size} threads: one single-threaded tile worker per core`;
    }

    /** Run `job(member)` on the first idle member; resolves with its result. */
    schedule(job) {
      return new Promise((resolve, reject) => {
        this.waiting.push({ job, resolve, reject });
        this.drain();
      });
    }

    drain() {
      for (const member of this.members) {
        if (!this.waiting.length) return;
        if (member.busy || member.dead) continue;
        const { job, resolve, reject } = this.waiting.shift();
        member.busy = true;
        job(member).then(resolve, reject).finally(() => {
          member.busy = false;
          this.drain();
        });
      }
      if (this.waiting.length && this.members.every((m) => m.dead)) {
        for (const { reject } of this.waiting.splice(0)) reject(this.members[0].dead);
      }
    }

    everyMember(type, params) {
      return Promise.all(this.members.map((member) => member.call(type, params)));
    }

    async memory() {
      const each = await this.everyMember('memory');
      return {
        tensors: each.reduce((sum, m) => sum + m.tensors, 0),
        bytes: each.reduce((sum, m) => sum + m.bytes, 0),
        heapBytes: each.reduce((sum, m) => sum + m.heapBytes, 0),
      };
    }
  }

  /** A model loaded in every member of a pool; the same interface as TfBridge.Model. */
  class PoolModel {
    constructor(pool, manifest) {
      this.pool = pool;
      this.manifest = manifest;
      this.key = manifest.key || manifest.id;
    }

    /** `artifacts`: a model held in memory (see TfBridge.Model.load), copied to each member. */
    static async load(pool, manifest, artifacts = null) {
      const [first] = await pool.everyMember('load', { manifest, base: pool.base, artifacts });
      pool.flavour = first.flavour; // e.g. 'WASM SIMD, 1 thread': what each member runs
      pool.tfjs = first.tfjs;
      pool.loaded.set(manifest.key || manifest.id, { manifest, artifacts });
      return new PoolModel(pool, manifest);
    }

    /**
     * Run one tile on `member`; `buffer` (an ArrayBuffer of the tile's RGB) is moved there. A
     * tile that breaks its worker fails as OutOfMemory, and the worker is replaced, so the
     * next job runs as usual.
     */
    runOn(member, buffer, height, width) {
      return member.call('predict', { model: this.key, pixels: buffer, height, width }, [buffer])
        .then((out) => new Uint8Array(out), (error) => {
          if (!broken(error)) throw error;
          this.pool.replace(member);
          throw Object.assign(new Error(
            `${this.manifest.id} ran out of memory on a ${width}×${height} px tile (${error.message}); ` +
            'its tile worker was replaced: use a smaller patchSize',
          ), { name: 'OutOfMemory' });
        });
    }

    /**
     * pixels: Uint8Array of height*width*3, run on the first idle member. Copied now, before
     * it waits: it may be a view of Python's heap, released when this returns.
     */
    predict(pixels, height, width) {
      const copy = pixels.slice().buffer;
      return this.pool.schedule((member) => this.runOn(member, copy, height, width));
    }

    /** One tile of this patch size on every member, so no real tile pays a compile cost. */
    async warmUp(patch) {
      const size = patch + 2 * (this.manifest.margin || 0);
      await Promise.all(this.pool.members.map(
        (member) => this.runOn(member, new ArrayBuffer(size * size * 3), size, size),
      ));
    }

    abandon() {} // no GPU behind it: nothing to lose

    dispose() {
      this.pool.loaded.delete(this.key);
      this.pool.everyMember('unload', { model: this.key }).catch(() => {});
    }
  }

  return { size, Pool, PoolModel };
})();
