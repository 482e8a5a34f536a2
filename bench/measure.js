/* Measurements run inside the benchmark's harness page (bench.py serves it on the site's
 * origin, without the site's CSP: TF.js on a page starts its WASM threads from blob: URLs).
 * Defines window.bench; every function resolves to plain data for bench.py.
 */
'use strict';

(() => {
  const stats = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    const mid = (s.length - 1) / 2;
    const median = (s[Math.floor(mid)] + s[Math.ceil(mid)]) / 2;
    return { median, min: s[0], max: s[s.length - 1], runs: s };
  };

  // Every long task (>= 50 ms, the browser's definition) since the page opened.
  const longTasks = [];
  const keep = (entries) => {
    for (const e of entries) longTasks.push({ start: e.startTime, ms: e.duration });
  };
  const observer = new PerformanceObserver((list) => keep(list.getEntries()));
  observer.observe({ type: 'longtask', buffered: true });
  const longestBetween = (from, to) => {
    keep(observer.takeRecords()); // entries not yet delivered to the callback
    return Math.max(0, ...longTasks.filter((t) => t.start < to && t.start + t.ms > from)
      .map((t) => t.ms));
  };

  async function script(src) {
    await new Promise((resolve, reject) => {
      const tag = Object.assign(document.createElement('script'), { src });
      tag.onload = resolve;
      tag.onerror = () => reject(new Error(`could not load ${src}`));
      document.head.append(tag);
    });
  }

  let tfReady = null;
  /** TF.js on this page, on WASM: for "the limit" and for UpscalerJS. */
  function pageTf() {
    tfReady = tfReady || (async () => {
      const folder = new URL(window.BENCH_FOLDERS.tfjs, location.href).href;
      await script(folder + 'tf.es2017.min.js');
      await script(folder + 'tf-backend-wasm.es2017.min.js');
      tf.wasm.setWasmPaths(folder);
      if (!(await tf.setBackend('wasm'))) throw new Error('no WASM backend on the page');
    })();
    return tfReady;
  }

  /** A catalogue model on the page's TF.js: converted from ncnn, a graph model; else layers. */
  async function loadNet(manifest) {
    const url = new URL(manifest.url, location.href).href;
    return manifest.format === 'ncnn' ? tf.loadGraphModel(url) : tf.loadLayersModel(url);
  }

  let photo = null;
  /** The benchmark photo (the whole astronaut) resampled to size x size. */
  async function crop(size) {
    photo = photo || await createImageBitmap(await (await fetch('__bench__/photo.png')).blob());
    const context = new OffscreenCanvas(size, size).getContext('2d');
    context.imageSmoothingQuality = 'high';
    context.drawImage(photo, 0, 0, size, size);
    return context.getImageData(0, 0, size, size);
  }

  /**
   * PSNR in dB (Infinity when identical) of two pixel buffers with `channels` values a pixel
   * (4: RGBA, alpha skipped; 3: RGB), values rounded and clamped to 0..255 first.
   */
  function psnr(a, b, channels) {
    const byte = (v) => Math.min(255, Math.max(0, Math.round(v)));
    let sum = 0;
    let n = 0;
    for (let i = 0; i < a.length; i++) {
      if (i % channels === 3) continue;
      const d = byte(a[i]) - byte(b[i]);
      sum += d * d;
      n += 1;
    }
    return sum ? 10 * Math.log10((255 * 255 * n) / sum) : Infinity;
  }

  /** Time `run()` `repeats` times (after `warm` unmeasured runs); longest task during them. */
  async function timed(run, repeats, warm = 0) {
    for (let i = 0; i < warm; i++) await run();
    const times = [];
    let longest = 0;
    for (let i = 0; i < repeats; i++) {
      const start = performance.now();
      await run();
      const end = performance.now();
      times.push(end - start);
      await new Promise((resolve) => setTimeout(resolve, 0)); // let the observer report
      longest = Math.max(longest, longestBetween(start, end));
    }
    return { ...stats(times), longestTaskMs: longest };
  }

  const attempt = async (what) => {
    try {
      return await what();
    } catch (error) {
      return { error: `${error.name}: ${error.message}` };
    }
  };

  /** Upscale at its defaults, then one predict on the whole image, then UpscalerJS. */
  async function contenders({ model, sizes, repeats, seamSize }) {
    const { Upscaler } = await import('./upscale.js');
    const out = { upscale: {}, limit: {}, upscalerjs: {}, seam: {} };
    const up = new Upscaler({ model, backend: 'wasm' });
    const info = await up.ready;
    out.info = { backend: info.backend, reason: info.reason, workers: info.workers, tile: info.tile };
    for (const size of sizes) {
      const image = await crop(size);
      out.upscale[size] = await attempt(() => timed(() => up.upscale(image), repeats[size]));
    }
    const seamImage = await crop(seamSize);
    const whole = await up.upscale(seamImage, { patchSize: seamSize, padding: 0 });
    out.seam.upscale = psnr((await up.upscale(seamImage)).data, whole.data, 4);
    up.dispose();

    await pageTf();
    const net = await loadNet(info.model);
    // The model's input range (ncnn models take [0, 1]), applied before the clock starts.
    const inScale = info.model.inputRange ? info.model.inputRange[1] / 255 : 1;
    for (const size of sizes) {
      const image = await crop(size);
      const x = tf.tidy(() => tf.browser.fromPixels(image).toFloat().mul(inScale).expandDims(0));
      const run = async () => {
        const y = net.predict(x);
        await y.data();
        y.dispose();
      };
      // The first call for a shape pays for set-up; small enough to warm up first.
      out.limit[size] = await attempt(() => timed(run, repeats[size], size <= 256 ? 1 : 0));
      x.dispose();
    }
    net.dispose();

    // UpscalerJS 1.0.0 with the same model file, at its documented patchSize 128, padding 2.
    // Its UMD bundle picks up the global tf when it loads, so it comes after TF.js.
    if (!window.Upscaler) await script('__bench__/upscaler.min.js');
    const theirs = new window.Upscaler({
      model: {
        path: new URL(info.model.url, new URL(window.BENCH_FOLDERS.web, location.href)).href,
        scale: info.model.scale,
        modelType: info.model.format === 'ncnn' ? 'graph' : 'layers',
        inputRange: info.model.inputRange,
        outputRange: info.model.outputRange,
      },
    });
    await theirs.ready;
    const runTheirs = async (image, options) => {
      const y = await theirs.execute(image, { output: 'tensor', ...options });
      const data = await y.data();
      y.dispose();
      return data;
    };
    const recommended = { patchSize: 128, padding: 2 };
    for (const size of sizes) {
      const image = await crop(size);
      out.upscalerjs[size] = await attempt(() => timed(() => runTheirs(image, recommended), repeats[size]));
    }
    const theirWhole = await runTheirs(seamImage, {});
    const theirTiled = await runTheirs(seamImage, recommended);
    out.seam.upscalerjs = psnr(theirTiled, theirWhole, 3);
    await theirs.dispose();
    out.pageTensorsLeft = tf.memory().numTensors;
    return out;
  }

  /** From navigation to the first upscaled `size` px image (this page load's engine). */
  async function firstResult({ model, size, keep = false }) {
    const { Upscaler } = await import('./upscale.js');
    const image = await crop(size);
    const up = new Upscaler({ model });
    const info = await up.ready;
    const readyAt = performance.now();
    const result = await up.upscale(image);
    const doneAt = performance.now();
    // With `keep`, the Python snapshot the engine keeps after its first job, once kept: the
    // next visit's start depends on it (it is made after the result, so `ms` is unchanged).
    let snapshot = null;
    for (let i = 0; keep && !snapshot && i < 600; i++) {
      snapshot = (await up.memory()).pythonSnapshot;
      if (!snapshot) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    up.dispose();
    return { ms: doneAt, readyMs: readyAt, width: result.width, timings: info.timings, workers: info.workers,
             python: info.python, snapshot };
  }

  /**
   * A bare loadPyodide() (no packages) in a worker, as the engine starts it: Pyodide's own
   * start, from navigation to ready, the yardstick of the cold start.
   */
  async function barePyodide() {
    const folder = new URL(window.BENCH_FOLDERS.pyodide, location.href).href;
    const lock = new URL(window.BENCH_FOLDERS.web + 'pyodide-lock.json', location.href).href;
    const source = `importScripts(${JSON.stringify(folder + 'pyodide.js')});
      loadPyodide({ indexURL: ${JSON.stringify(folder)}, lockFileURL: ${JSON.stringify(lock)} })
        .then(() => postMessage(performance.timeOrigin + performance.now()),
              (error) => postMessage({ error: String(error) }));`;
    const worker = new Worker(URL.createObjectURL(new Blob([source], { type: 'text/javascript' })));
    const at = await new Promise((resolve) => { worker.onmessage = (event) => resolve(event.data); });
    worker.terminate();
    if (at.error) throw new Error(`loadPyodide: ${at.error}`);
    return { ms: at - performance.timeOrigin };
  }

  /** One large upscale; the engine's memory afterwards (WASM heaps only grow: their peak). */
  async function large({ model, size, workers }) {
    const { Upscaler } = await import('./upscale.js');
    const image = await crop(size);
    const up = new Upscaler({ model, backend: 'wasm', workers });
    await up.ready;
    const start = performance.now();
    const result = await attempt(() => up.upscale(image));
    const ms = performance.now() - start;
    const memory = await up.memory();
    up.dispose();
    if (result.error) return { size, error: result.error };
    return { size, ms, width: result.width, height: result.height, memory, outputBytes: result.data.length };
  }

  /**
   * What renders a backend here, and whether it is software (SwiftShader, llvmpipe, a WebGPU
   * fallback adapter): such numbers say nothing of a real GPU's.
   */
  let bridgeReady = null;
  async function device(name) {
    // The engine's own checks (tfbridge.js), so the bench labels what `auto` passes over.
    bridgeReady = bridgeReady || script(new URL(window.BENCH_FOLDERS.web, location.href).href + 'tfbridge.js');
    await bridgeReady;
    if (name === 'webgl') {
      const renderer = TfBridge.webglRenderer() || 'none';
      return { device: renderer, software: TfBridge.softwareRenderer(renderer) };
    }
    if (name === 'webgpu') {
      const adapter = navigator.gpu && await navigator.gpu.requestAdapter();
      if (!adapter) return { device: 'no adapter', software: false };
      const info = adapter.info || {};
      const label = [info.vendor, info.architecture, info.description].filter(Boolean).join(' ');
      return { device: label, software: Boolean(TfBridge.softwareAdapter(adapter)) };
    }
    return { device: name === 'wasm' ? 'WebAssembly, every core' : 'plain JavaScript', software: false };
  }

  /** One backend on `model`: ms per megapixel of input at `size` px, after a warm run. */
  async function backend({ model, backend: name, size, repeats }) {
    const { Upscaler } = await import('./upscale.js');
    const image = await crop(size);
    const up = new Upscaler({ model, backend: name, patchSize: size }); // one tile of the image
    try {
      const info = await attempt(() => up.ready);
      if (info.error) return { error: info.error, ...(await device(name)) };
      // The warm run compiles the GPU's shaders for this tile shape: a cost paid once.
      const run = await timed(() => up.upscale(image), repeats, 1);
      return { ...run, msPerMegapixel: run.median / ((size * size) / 1e6), reason: info.reason, ...(await device(name)) };
    } finally {
      up.dispose();
    }
  }

  /** Time the limit and Upscale on this page as it is (isolated or not), for the threads test. */
  async function threads({ model, size, repeats }) {
    const { Upscaler } = await import('./upscale.js');
    const image = await crop(size);
    const up = new Upscaler({ model, backend: 'wasm' });
    const info = await up.ready;
    const upscale = await timed(() => up.upscale(image), repeats);
    up.dispose();
    await pageTf();
    const net = await loadNet(info.model);
    const x = tf.tidy(() => tf.browser.fromPixels(image).toFloat().expandDims(0));
    const limit = await timed(async () => {
      const y = net.predict(x);
      await y.data();
      y.dispose();
    }, repeats);
    x.dispose();
    net.dispose();
    return {
      isolated: self.crossOriginIsolated,
      pageThreads: tf.wasm.getThreadsCount(),
      flavour: info.reason,
      upscale,
      limit,
    };
  }

  const decode = (base64, type = 'image/png') => {
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    return new Blob([bytes], { type });
  };

  /** An upscaled image's RGB bytes (base64), for bench.py to measure. */
  function rgbOf(result) {
    const rgb = new Uint8Array(result.width * result.height * 3);
    for (let i = 0, j = 0; i < result.data.length; i += 4, j += 3) {
      rgb[j] = result.data[i];
      rgb[j + 1] = result.data[i + 1];
      rgb[j + 2] = result.data[i + 2];
    }
    let binary = '';
    for (let i = 0; i < rgb.length; i += 0x8000) binary += String.fromCharCode(...rgb.subarray(i, i + 0x8000));
    return { width: result.width, height: result.height, rgb: btoa(binary) };
  }

  /** A PNG (base64) as ImageData, so that a timed upscale does not include decoding it. */
  async function pixels(base64) {
    const bitmap = await createImageBitmap(decode(base64));
    const context = new OffscreenCanvas(bitmap.width, bitmap.height).getContext('2d');
    context.drawImage(bitmap, 0, 0);
    return context.getImageData(0, 0, bitmap.width, bitmap.height);
  }

  /**
   * Upscale each low-resolution PNG with each model (RGB bytes back for bench.py), then time
   * one upscale of `speed[model].photo` (a PNG, base64), after an untimed one of
   * `speed[model].warm` (the model's first images pay for setting up its buffers).
   */
  async function quality({ models, photos, speed }) {
    const { Upscaler } = await import('./upscale.js');
    const up = new Upscaler({ model: models[0], backend: 'wasm' });
    await up.ready;
    const out = {};
    for (const model of models) {
      await up.setModel(model);
      out[model] = { photos: {} };
      for (const [name, base64] of Object.entries(photos[model])) {
        out[model].photos[name] = rgbOf(await up.upscale(decode(base64)));
      }
      if (speed && speed[model]) {
        out[model].speed = await attempt(async () => {
          const [warm, image] = [await pixels(speed[model].warm), await pixels(speed[model].photo)];
          await up.upscale(warm);
          const start = performance.now();
          const result = await up.upscale(image);
          const ms = performance.now() - start;
          return { ms, width: image.width, height: image.height, outWidth: result.width };
        });
      }
    }
    up.dispose();
    return out;
  }

  let realEngine = null;
  /**
   * Real inputs: each file (base64, with its MIME type) handed to the engine as a Blob, as a
   * user's file is, with `model` (an id, or 'auto' at `scale`); what ran and why comes back
   * with the pixels. One engine for every call, so the models a job switches to stay loaded.
   */
  async function realInputs({ model, scale, files }) {
    const { Upscaler } = await import('./upscale.js');
    realEngine = realEngine || new Upscaler({ backend: 'wasm' });
    await realEngine.ready;
    const options = model === 'auto' ? { model, scale } : { model };
    const out = {};
    for (const [name, file] of Object.entries(files)) {
      out[name] = await attempt(async () => {
        const result = await realEngine.upscale(decode(file.data, file.type), options);
        return { ...rgbOf(result), model: result.model, reason: result.reason };
      });
    }
    return out;
  }

  window.bench = { contenders, firstResult, barePyodide, large, threads, quality, backend, realInputs };
})();
