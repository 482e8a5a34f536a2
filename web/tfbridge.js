/* TF.js side of the workers: backend choice, model loading, custom layers, predict().
 *
 * Loaded with importScripts(); exposes one global, TfBridge, in the worker's scope (the bench
 * also loads it on its page, for the same software-renderer checks). The
 * TF.js bundles themselves load on first need (loadTf): an engine worker whose tile workers
 * run the model never parses them. Python never sees a tensor: it hands over uint8 RGB tiles
 * and gets uint8 RGB tiles back.
 */
'use strict';

const TfBridge = (() => {
  const SOFTWARE_GL = /swiftshader|llvmpipe|softpipe|software|basic render|microsoft basic/i;
  const BACKENDS = ['webgpu', 'webgl', 'wasm', 'cpu'];

  let layersRegistered = false;

  /** RRDN models serialise two layers TF.js does not know; define them once. */
  function registerCustomLayers() {
    if (layersRegistered) return;
    const first = (inputs) => (Array.isArray(inputs) ? inputs[0] : inputs);

    class MultiplyBeta extends tf.layers.Layer {
      static className = 'MultiplyBeta';
      constructor(config) {
        super(config);
        this.beta = 0.2; // the residual scaling the RRDN paper fixes; not stored in the weights
      }
      call(inputs) {
        return tf.mul(first(inputs), this.beta);
      }
    }
    tf.serialization.registerClass(MultiplyBeta);

    for (const scale of [2, 3, 4, 8]) {
      class PixelShuffle extends tf.layers.Layer {
        static className = `PixelShuffle${scale}x`;
        computeOutputShape(shape) {
          const grow = (n) => (n == null ? n : n * scale);
          return [shape[0], grow(shape[1]), grow(shape[2]), shape[3] / (scale * scale)];
        }
        call(inputs) {
          return tf.depthToSpace(first(inputs), scale, 'NHWC');
        }
      }
      tf.serialization.registerClass(PixelShuffle);
    }
    layersRegistered = true;
  }

  async function webgpuVerdict() {
    if (!self.navigator || !navigator.gpu) return { ok: false, why: 'WebGPU: not available' };
    let adapter = null;
    try {
      adapter = await navigator.gpu.requestAdapter();
    } catch (error) {
      return { ok: false, why: `WebGPU: ${error.message}` };
    }
    if (!adapter) return { ok: false, why: 'WebGPU: no adapter' };
    const info = adapter.info || {};
    const software = softwareAdapter(adapter);
    if (software) return { ok: false, why: `WebGPU: ${software}` };
    return { ok: true, why: `WebGPU: ${info.vendor || 'hardware'} ${info.architecture || ''}`.trim() };
  }

  /**
   * Why a WebGPU adapter is software (far slower than WASM), or null: it says it is a fallback
   * (isFallbackAdapter, where the browser has it), or its vendor, architecture, device or
   * description names a software renderer (SwiftShader, llvmpipe, ...).
   */
  function softwareAdapter(adapter) {
    const info = adapter.info || {};
    if (adapter.isFallbackAdapter || info.isFallbackAdapter) return 'software fallback adapter';
    const named = [info.vendor, info.architecture, info.device, info.description].find(
      (text) => text && softwareRenderer(text));
    return named ? `software adapter (${named})` : null;
  }

  /** Whether a renderer's name is a software one (SwiftShader, llvmpipe, ...). */
  function softwareRenderer(name) {
    return SOFTWARE_GL.test(name);
  }

  /** What renders WebGL2 here (its unmasked renderer string), or null without a context. */
  function webglRenderer() {
    const gl = new OffscreenCanvas(1, 1).getContext('webgl2');
    if (!gl) return null;
    const debug = gl.getExtension('WEBGL_debug_renderer_info');
    const renderer = debug ? gl.getParameter(debug.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER);
    const lose = gl.getExtension('WEBGL_lose_context');
    if (lose) lose.loseContext();
    return renderer;
  }

  function webglVerdict() {
    let renderer = null;
    try {
      renderer = webglRenderer();
    } catch (error) {
      return { ok: false, why: `WebGL: ${error.message}` };
    }
    if (!renderer) return { ok: false, why: 'WebGL: no WebGL2 context' };
    if (softwareRenderer(renderer)) {
      return { ok: false, why: `WebGL: software renderer (${renderer}), far slower than WASM` };
    }
    return { ok: true, why: `WebGL: ${renderer}` };
  }

  /**
   * The TF.js bundles (core + layers, WASM, WebGPU) from `base`, once; checked against the
   * build's integrity list first where the worker started from another origin.
   */
  async function loadTf(base) {
    if (typeof self.tf !== 'undefined') return;
    const bundles = ['tf.es2017.min.js', 'tf-backend-wasm.es2017.min.js', 'tf-backend-webgpu.es2017.min.js']
      .map((name) => base + name);
    if (self.UPSCALE_CHECKED) await self.UPSCALE_CHECKED.check(bundles);
    if (typeof self.tf === 'undefined') importScripts(...bundles);
  }

  // TF.js flags the caller set (Upscaler's tfFlags), applied once TF.js is loaded.
  let flags = {};

  /**
   * Keep `wanted` ({ NAME: boolean or number }) for the backends this worker starts; e.g.
   * WEBGL_FORCE_F16_TEXTURES: true runs WebGL as a phone without float32 render targets does.
   */
  function useFlags(wanted) {
    const bad = Object.entries(wanted || {}).find(([, value]) => !['boolean', 'number'].includes(typeof value));
    if (bad) throw Object.assign(new Error(`tfFlags.${bad[0]} must be a boolean or a number`), { name: 'InvalidOptions' });
    flags = { ...(wanted || {}) };
  }

  function applyFlags() {
    for (const [name, value] of Object.entries(flags)) {
      try {
        tf.env().set(name, value);
      } catch (error) {
        throw Object.assign(new Error(`tfFlags: ${error.message}`), { name: 'InvalidOptions' });
      }
    }
  }

  async function tryBackend(name, wasmBase) {
    await loadTf(wasmBase);
    applyFlags();
    if (name === 'wasm') {
      tf.wasm.setWasmPaths(wasmBase);
      if (self.crossOriginIsolated) tf.wasm.setThreadsCount(navigator.hardwareConcurrency || 1);
    }
    try {
      return await tf.setBackend(name);
    } catch (error) {
      return false;
    }
  }

  function wasmFlavour() {
    const simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT');
    const threaded = simd && self.crossOriginIsolated && tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT');
    // TF.js sizes its pool itself (half the logical cores), so report what it actually runs.
    const threads = tf.wasm.getThreadsCount();
    const build = threaded ? 'threaded SIMD' : simd ? 'SIMD' : 'scalar';
    return `WASM ${build}, ${threads} thread${threads === 1 ? '' : 's'}`;
  }

  /**
   * Pick and initialise a backend. `wanted` is 'auto' or one of BACKENDS; an explicit choice
   * is honoured or fails loudly. With `tileWorkers` > 1, WebAssembly runs in tile workers, so
   * it is chosen here without initialising it in this worker (local: false).
   * Returns { backend, reason, local }.
   */
  const named = (name, message) => Object.assign(new Error(message), { name });

  async function chooseBackend(wanted, wasmBase, tileWorkers = 1) {
    if (wanted !== 'auto') {
      if (!BACKENDS.includes(wanted)) {
        throw named('InvalidOptions', `unknown backend "${wanted}": use auto, ${BACKENDS.join(', ')}`);
      }
      if (wanted === 'wasm' && tileWorkers > 1) {
        return { backend: 'wasm', reason: 'asked for wasm', local: false };
      }
      if (!(await tryBackend(wanted, wasmBase))) {
        throw named('BackendUnavailable', `backend "${wanted}" could not be initialised in this browser`);
      }
      const detail = wanted === 'wasm' ? ` (${wasmFlavour()})` : '';
      return { backend: wanted, reason: `asked for ${wanted}${detail}`, local: true };
    }
    const notes = [];
    const gpu = await webgpuVerdict();
    notes.push(gpu.why);
    if (gpu.ok && (await tryBackend('webgpu', wasmBase))) {
      return { backend: 'webgpu', reason: notes.join('; '), local: true };
    }
    const gl = webglVerdict();
    notes.push(gl.why);
    if (gl.ok && (await tryBackend('webgl', wasmBase))) {
      return { backend: 'webgl', reason: notes.join('; '), local: true };
    }
    if (tileWorkers > 1) return { backend: 'wasm', reason: notes.join('; '), local: false };
    if (await tryBackend('wasm', wasmBase)) {
      notes.push(wasmFlavour());
      return { backend: 'wasm', reason: notes.join('; '), local: true };
    }
    notes.push('WASM: failed to initialise');
    await tryBackend('cpu', wasmBase);
    return { backend: 'cpu', reason: notes.join('; '), local: true };
  }

  /**
   * Whether the current backend holds tensors in half floats: WebGL on a GPU without float32
   * render targets (many phones), or told to (WEBGL_FORCE_F16_TEXTURES). Float16 stops at 65504.
   */
  function halfFloat() {
    return tf.getBackend() === 'webgl' && !tf.env().getBool('WEBGL_RENDER_FLOAT32_ENABLED');
  }

  /**
   * The limits that bound a tile on the current GPU backend (Python turns them into a patch:
   * upscale.policy.gpu_side): WebGL's texture side as TF.js uses it (tfFlags may lower it),
   * WebGPU's largest buffer. Empty off the GPU.
   */
  function gpuLimits() {
    if (typeof self.tf === 'undefined') return {};
    const backend = tf.getBackend();
    if (backend === 'webgl') return { maxTextureSize: tf.env().getNumber('WEBGL_MAX_TEXTURE_SIZE') };
    if (backend === 'webgpu') {
      const { maxStorageBufferBindingSize, maxBufferSize } = tf.backend().device.limits;
      return { maxStorageBufferBindingSize, maxBufferSize };
    }
    return {};
  }

  /**
   * Call `onLost()` once if the GPU context behind the current backend goes away (a driver
   * reset, the OS reclaiming the GPU, WEBGL_lose_context). TF.js itself would wait forever.
   * On WebGPU an error nobody captured counts too (a buffer past the device's limits, out of
   * memory): the work it hit gives wrong numbers without an exception, so the results of that
   * device are no longer trusted.
   */
  function watchGpuLoss(onLost) {
    if (typeof self.tf === 'undefined') return; // tile workers run the model: no GPU here
    const backend = tf.getBackend();
    if (backend === 'webgl') {
      const canvas = tf.backend().gpgpu.gl.canvas;
      canvas.addEventListener('webglcontextlost', (event) => {
        event.preventDefault();
        onLost('the WebGL context was lost');
      }, { once: true });
    } else if (backend === 'webgpu') {
      const { device } = tf.backend();
      let told = false;
      const once = (what) => {
        if (!told) onLost(what);
        told = true;
      };
      device.lost.then((info) => once(`the WebGPU device was lost (${info.message || info.reason})`));
      device.addEventListener('uncapturederror', (event) => once(
        `the WebGPU device reported an error (${event.error.constructor.name}: ${event.error.message})`));
    }
  }

  /**
   * `topology` with each of the converter's centred sigmoids ([Sigmoid node, Sub node, its
   * 0.5 constant]: sigmoid(z) - 0.5, read by nothing else) run as tanh(z / 2) / 2, with that
   * same 0.5: z * 0.5, Tanh, * 0.5. The same values; on half floats sigmoid(z) is rounded to
   * 2^-12 near 0.5 before 0.5 goes, and SPAN's six attention blocks multiply that on hard
   * edges (upscale.ncnn). A triple that does not match the graph is an IntegrityError.
   */
  function centredSigmoidsAsTanh(topology, centred) {
    const nodes = topology.node.map((node) => ({ ...node, input: node.input && [...node.input] }));
    const byName = new Map(nodes.map((node) => [node.name, node]));
    const moved = new Map(); // Sub node name -> the nodes now before it: z * 0.5, its Tanh
    const readers = new Map(); // node name -> how many inputs name it
    for (const node of nodes) {
      for (const input of node.input || []) {
        const name = input.split(':')[0];
        readers.set(name, (readers.get(name) || 0) + 1);
      }
    }
    for (const triple of centred) {
      const [sigmoid, sub, half] = Array.isArray(triple) ? triple : [];
      const s = byName.get(sigmoid);
      const d = byName.get(sub);
      const c = byName.get(half);
      if (!s || !d || !c || s.op !== 'Sigmoid' || d.op !== 'Sub' || c.op !== 'Const'
          || d.input[0] !== sigmoid || d.input[1] !== half || readers.get(sigmoid) !== 1) {
        throw Object.assign(new Error(`the model's centredSigmoids name no sigmoid(z) - 0.5 in its graph: ${JSON.stringify(triple)}`), { name: 'IntegrityError' });
      }
      s.op = 'Mul';
      s.input = [s.input[0], half];
      moved.set(sub, [s, { name: `${sigmoid}/tanh`, op: 'Tanh', input: [sigmoid], attr: s.attr }]);
      d.op = 'Mul';
      d.input = [`${sigmoid}/tanh`, half];
    }
    // In an order that runs as listed: the 0.5 may come after the sigmoid, never after the Sub.
    const halved = new Set([...moved.values()].map(([s]) => s));
    const out = nodes.filter((node) => !halved.has(node))
      .flatMap((node) => [...(moved.get(node.name) || []), node]);
    return { ...topology, node: out };
  }

  /** A loaded model: predict() maps a uint8 RGB tile to a uint8 RGB tile `scale` times larger. */
  class Model {
    constructor(manifest, layersModel) {
      this.manifest = manifest;
      this.net = layersModel;
      this.inScale = manifest.inputRange[1] / 255;
      this.outScale = 255 / manifest.outputRange[1];
      // Rejected by abandon(): every predict() races it, so none waits on a dead GPU.
      this.gone = new Promise((resolve, reject) => {
        this.reject = reject;
      });
      this.gone.catch(() => {});
      this.inflight = new Set(); // output tensors predict() calls are reading back
    }

    /** The GPU is gone: fail the predict in flight (and all later ones) with `error`. */
    abandon(error) {
      for (const tensor of this.inflight) tensor.dispose(); // their textures went with the context
      this.inflight.clear();
      this.reject(error);
    }

    /**
     * Models converted from ncnn are graph models; the UpscalerJS ones are layers models.
     * `artifacts` ({ modelTopology, weightSpecs, weightData }) loads one from memory: a model
     * the user brought, converted in this worker.
     */
    static async load(manifest, baseUrl, artifacts = null) {
      if (manifest.customLayers && manifest.customLayers.length) registerCustomLayers();
      const centred = artifacts && artifacts.userDefinedMetadata
        && artifacts.userDefinedMetadata.centredSigmoids;
      if (centred && centred.length && halfFloat()) {
        artifacts = { ...artifacts, modelTopology: centredSigmoidsAsTanh(artifacts.modelTopology, centred) };
      }
      const source = artifacts ? tf.io.fromMemory(artifacts) : new URL(manifest.url, baseUrl).href;
      const net = manifest.format === 'ncnn'
        ? await tf.loadGraphModel(source)
        : await tf.loadLayersModel(source);
      return new Model(manifest, net);
    }

    /**
     * pixels: Uint8Array of height*width*3. Resolves to a Uint8Array of the upscaled tile:
     * (height - 2 * margin) * scale rows, a model with a margin reading that much beyond it.
     */
    predict(pixels, height, width) {
      return Promise.race([this.run(pixels, height, width), this.gone]);
    }

    async run(pixels, height, width) {
      const result = tf.tidy(() => {
        // Copy out of the caller's buffer now: it may be a view into Pyodide's heap.
        let x = tf.tensor4d(new Float32Array(pixels), [1, height, width, 3], 'float32');
        if (this.inScale !== 1) x = tf.mul(x, this.inScale);
        let y = this.net.predict(x);
        if (this.outScale !== 1) y = tf.mul(y, this.outScale);
        return tf.cast(tf.round(tf.clipByValue(y, 0, 255)), 'int32');
      });
      this.inflight.add(result);
      try {
        return new Uint8Array(await result.data());
      } finally {
        if (this.inflight.delete(result)) result.dispose();
      }
    }

    /** Run one tile of the given patch size so the first real tile pays no compile cost. */
    async warmUp(patch) {
      const size = patch + 2 * (this.manifest.margin || 0);
      await this.predict(new Uint8Array(size * size * 3), size, size);
    }

    dispose() {
      this.net.dispose();
    }
  }

  /** Live tensors, and the WASM heap's size: it only grows, so it is this instance's peak. */
  function memory() {
    if (typeof self.tf === 'undefined') return { tensors: 0, bytes: 0, heapBytes: 0 };
    const m = tf.memory();
    const heapBytes = tf.getBackend() === 'wasm' ? tf.backend().wasm.HEAPU8.length : 0;
    return { tensors: m.numTensors, bytes: m.numBytes, heapBytes };
  }

  return {
    chooseBackend, useFlags, wasmFlavour, watchGpuLoss, softwareAdapter, softwareRenderer, webglRenderer,
    halfFloat, gpuLimits, Model, memory, centredSigmoidsAsTanh,
  };
})();
