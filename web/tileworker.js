/* A tile worker: one TF.js WebAssembly instance that runs models on the tiles it is sent.
 *
 * Without a real GPU the engine worker starts one of these per core (see tilepool.js) and
 * feeds them tiles from the Python tiler, so every core runs the model: TF.js's own WASM
 * threads stop at half the cores. Each runs single-threaded SIMD WASM.
 *
 * Protocol, engine worker <-> tile worker (one reply per message, by id):
 *   { id, type: 'load', manifest, base, artifacts }  -> { id, ok, value: { ms, flavour, tfjs } }
 *   { id, type: 'predict', model, pixels, height, width } -> { id, ok, value: pixels } (moved)
 *   { id, type: 'unload', model }                     -> { id, ok }
 *   { id, type: 'memory' }                            -> { id, ok, value: { tensors, bytes } }
 * Errors reply { id, ok: false, error: { name, message } }.
 */
'use strict';

const BASE = self.UPSCALE_BASE || new URL('./', self.location.href).href;

importScripts(BASE + 'assets.js');
const TF_BASE = new URL(self.UPSCALE_ASSETS.tfjs, BASE).href;
importScripts(TF_BASE + 'tf.es2017.min.js', TF_BASE + 'tf-backend-wasm.es2017.min.js', BASE + 'tfbridge.js');

const models = new Map(); // manifest key (else id) -> TfBridge.Model
let backendReady = null;

async function setUpBackend() {
  // One thread each: the threaded build would start a pthread pool in every tile worker.
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  tf.wasm.setWasmPaths(TF_BASE);
  if (!(await tf.setBackend('wasm'))) {
    throw new Error('the WebAssembly backend could not be initialised in a tile worker');
  }
}

const handlers = {
  async load({ manifest, base, artifacts }) {
    const started = performance.now();
    backendReady = backendReady || setUpBackend();
    await backendReady;
    const key = manifest.key || manifest.id; // a model the user brought has a key per upload
    if (!models.has(key)) models.set(key, await TfBridge.Model.load(manifest, base, artifacts));
    return { value: { ms: performance.now() - started, flavour: TfBridge.wasmFlavour(), tfjs: tf.version.tfjs } };
  },

  async predict({ model, pixels, height, width }) {
    const out = await models.get(model).predict(new Uint8Array(pixels), height, width);
    return { value: out.buffer, transfer: [out.buffer] };
  },

  async unload({ model }) {
    const loaded = models.get(model);
    models.delete(model);
    if (loaded) loaded.dispose();
    return {};
  },

  async memory() {
    return { value: TfBridge.memory() };
  },
};

self.onmessage = async (event) => {
  const { id, type, ...params } = event.data;
  try {
    const { value, transfer = [] } = await handlers[type](params);
    self.postMessage({ id, ok: true, value }, transfer);
  } catch (error) {
    self.postMessage({ id, ok: false, error: { name: error.name, message: error.message } });
  }
};
