/* A tile worker: one TF.js WebAssembly instance that runs models on the tiles it is sent.
 *
 * Without a real GPU the engine worker starts one of these per core (see tilepool.js) and
 * feeds them tiles from the Python tiler, so every core runs the model: TF.js's own WASM
 * threads stop at half the cores. Each runs single-threaded SIMD WASM.
 *
 * Requests (rpc.js), from the engine worker:
 *   load { manifest, base, artifacts }          -> { ms, flavour, tfjs }
 *   predict { model, pixels, height, width }    -> the output pixels (both buffers moved)
 *   unload { model }, memory {}                 -> nothing, { tensors, bytes, heapBytes }
 */
'use strict';

const BASE = self.UPSCALE_BASE || new URL('./', self.location.href).href;

importScripts(BASE + 'assets.js');
const TF_BASE = new URL(self.UPSCALE_ASSETS.tfjs, BASE).href;
importScripts(BASE + 'rpc.js', TF_BASE + 'tf.es2017.min.js', TF_BASE + 'tf-backend-wasm.es2017.min.js',
  BASE + 'tfbridge.js');

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
    return { ms: performance.now() - started, flavour: TfBridge.wasmFlavour(), tfjs: tf.version.tfjs };
  },

  async predict({ model, pixels, height, width }) {
    const out = await models.get(model).predict(new Uint8Array(pixels), height, width);
    return Rpc.moved(out.buffer, [out.buffer]);
  },

  async unload({ model }) {
    const loaded = models.get(model);
    models.delete(model);
    if (loaded) loaded.dispose();
  },

  async memory() {
    return TfBridge.memory();
  },
};

self.onmessage = (event) => {
  const message = Rpc.ours(event.data);
  if (!message || message.type !== 'request') return;
  Rpc.answer(self, message.id, () => {
    const handle = handlers[message.method];
    if (!handle) throw new Error(`unknown method "${message.method}"`);
    return handle(message.params);
  });
};
