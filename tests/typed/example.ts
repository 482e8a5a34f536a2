// Every option, method and event of @upscale-web/upscale and its embed, as a user writes them:
// tests/unit/test_types.py compiles this against the package's declarations (never runs it).
// The `@ts-expect-error` lines are wrong uses the declarations must reject.

import {
  DEFAULT_MODEL,
  type FileInfo,
  type MemoryInfo,
  type ModelManifest,
  type RoutingTable,
  type UpscaleErrorName,
  UpscaleError,
  type UpscaleProgress,
  Upscaler,
  type UpscalerInfo,
  type UpscaleResult,
} from '@upscale-web/upscale';
import {
  define,
  type UpscaleDoneDetail,
  type UpscaleImgElement,
} from '@upscale-web/upscale/embed';

const assetsURL = new URL('/static/upscale/assets/', location.href);

const model: 'auto' = DEFAULT_MODEL;
const up = new Upscaler({
  model,
  scale: 2,
  backend: 'auto',
  workers: 'auto',
  stallMs: 60_000,
  stepLimitMs: 180_000,
  tfFlags: { WEBGL_FORCE_F16_TEXTURES: true, WEBGL_MAX_TEXTURE_SIZE: 4096 },
  patchSize: 128,
  assetsURL,
});
new Upscaler();
new Upscaler({ model: 'span-x2', backend: 'webgpu', workers: 4, assetsURL: '/assets/' });

// @ts-expect-error: no such backend
new Upscaler({ backend: 'cuda' });
// @ts-expect-error: a misspelled option
new Upscaler({ patchsize: 128 });
// @ts-expect-error: scale is a number
new Upscaler({ scale: '2' });
// @ts-expect-error: workers is 'auto' or a count
new Upscaler({ workers: 'all' });
// @ts-expect-error: a TF.js flag is a boolean or a number
new Upscaler({ tfFlags: { WEBGL_PACK: 'yes' } });

function describe(info: UpscalerInfo): string {
  const { backend, reason, model, auto, tile, workers, limits, timings, versions } = info;
  const scale = auto ? auto.scale : model.scale;
  const own = 'custom' in model ? model.layerTypes.join(', ') : model.license;
  const patch = tile.patchSize ?? `per image, up to ${tile.largestPatch}`;
  const gpuMost = tile.maxPatchSize === null ? 'unknown' : String(tile.maxPatchSize);
  const sizes = [tile.largestSide, tile.padding, tile.margin, tile.parallel, tile.reduce];
  const pillow = versions.pillow ?? 'not loaded';
  return [
    backend, reason, model.id, model.label, scale, own, patch, gpuMost, sizes.join('/'), workers,
    limits.inputPixels, limits.outputSide, limits.memoryBytes, timings.pythonMs,
    timings.backendMs, timings.modelMs, timings.warmupMs, timings.totalMs, versions.tfjs,
    versions.pyodide, versions.python, versions.numpy, pillow, versions.upscale, tile.model,
    tile.scale,
  ].join(' ');
}

async function main(file: File, canvas: HTMLCanvasElement, image: HTMLImageElement) {
  const info: UpscalerInfo = await up.ready;
  console.log(describe(info));
  // @ts-expect-error: the backend is one of four, never 'auto'
  const never: 'auto' = info.backend;

  await up.check({ width: 4096, height: 4096 });
  await up.check({ width: 512, height: 512, patchSize: 64 });

  const controller = new AbortController();
  const out: UpscaleResult = await up.upscale(file, {
    model: 'auto',
    scale: 4,
    file,
    patchSize: 128,
    padding: 8,
    signal: controller.signal,
    preview: true,
    onProgress: (progress: UpscaleProgress) => {
      const { done, total, tile, preview, model: ran, reason } = progress;
      console.log(done / total, tile.x, tile.y, tile.width, tile.height, ran, reason);
      if (preview) canvas.getContext('2d')?.putImageData(preview.image, preview.x, preview.y);
    },
  });
  const pixels: ImageData = out;
  console.log(pixels.width, out.model, out.reason, out.tiling.patchSize, out.tiling.padding);
  console.log(up.lastTiling?.patchSize);
  controller.abort();

  await up.upscale(canvas, { file: await file.arrayBuffer() });
  await up.upscale(image);
  await up.upscale(await createImageBitmap(file));
  await up.upscale(new ImageData(8, 8));
  await up.upscale(new OffscreenCanvas(8, 8));
  await up.upscale('https://example.com/photo.jpg');
  await up.upscale(new URL('https://example.com/photo.png'));
  // @ts-expect-error: a number is no image
  await up.upscale(42);
  // @ts-expect-error: a misspelled job option
  await up.upscale(file, { onprogress: () => {} });

  const png = await up.encode(out);
  const jpeg = await up.encode(out, { type: 'image/jpeg', quality: 0.9 });
  await up.encode(canvas, { type: 'image/webp' });
  // @ts-expect-error: GIF is not written
  await up.encode(out, { type: 'image/gif' });
  const zip: Blob = await up.zip([
    { name: 'a@2x.png', blob: png },
    { name: 'a@2x.jpg', blob: jpeg },
  ]);
  console.log(zip.size);

  let changed: UpscalerInfo = await up.setModel('esrgan-medium-x4');
  changed = await up.setModel('auto', { scale: 4 });
  changed = await up.setModel({
    ncnn: { param: '/models/mine.param', bin: new URL('/models/mine.bin', location.href) },
  });
  changed = await up.setModel({
    ncnn: { param: file, bin: await file.arrayBuffer() },
    scale: 2,
    inputRange: [0, 1],
    name: 'mine',
  });
  // @ts-expect-error: an own model needs both files
  await up.setModel({ ncnn: { param: file } });
  console.log(changed.model.id, changed.auto?.scale);

  const facts: FileInfo = await up.inspect(file);
  console.log(facts.format, facts.width, facts.height, facts.jpegQuality, facts.denoise,
    facts.frames, facts.colourProfile, facts.colourConverted, facts.facts.format,
    facts.facts.quality, facts.facts.subsampling, facts.facts.lossless);
  await up.inspect('https://example.com/photo.jpg');

  const memory: MemoryInfo = await up.memory();
  const { tensors, bytes, tfHeapBytes, pyHeapBytes, tilesRun } = memory;
  console.log(tensors, bytes, tfHeapBytes, pyHeapBytes, tilesRun);

  up.dispose();

  const models: ModelManifest[] = await Upscaler.listModels();
  await Upscaler.listModels({ assetsURL: '/assets/' });
  for (const entry of models) {
    const where = entry.format === 'ncnn'
      ? `${entry.source.pypi ?? entry.source.npm}@${entry.source.version} (${entry.credit})`
      : `${entry.package}@${entry.version}/${entry.path}`;
    console.log(entry.id, entry.label, entry.hint, entry.purpose, entry.scale, entry.runScale,
      entry.architecture, entry.inputRange[1], entry.outputRange[1], entry.customLayers,
      entry.patchSize, entry.padding, entry.weightBytes, entry.license, entry.url,
      Object.keys(entry.files), entry.msPerMegapixel, entry.float16, entry.denoise, where);
  }
  const { text, table }: { text: string; table: RoutingTable } =
    await Upscaler.routing({ assetsURL });
  const routes = table.scales['2'];
  console.log(text.length, table.version, table.measured, routes?.lossless,
    routes?.jpeg.map((band) => `${band.atLeast}: ${band.model} (${band.condition})`),
    routes?.lossy['webp']);
}

async function careful(up: Upscaler, file: Blob) {
  try {
    await up.upscale(file);
  } catch (error) {
    if (error instanceof DOMException && error.name === 'AbortError') return 'cancelled';
    if (error instanceof UpscaleError) {
      const name: UpscaleErrorName | (string & {}) = error.name;
      if (name === 'ImageTooLarge') return `too large: ${error.message}`;
    }
    throw error;
  }
  throw new UpscaleError('a refusal of our own', { name: 'InvalidOptions' });
}

// The embed: <upscale-img>, its attributes and its events.
define();
define({ assetsURL: 'https://assets.example.com/upscale/assets/' });
// @ts-expect-error: define takes options, not a URL
define('https://assets.example.com/upscale/assets/');

const element: UpscaleImgElement = document.createElement('upscale-img');
element.setAttribute('src', '/photos/mug-150.jpg');
element.setAttribute('alt', 'Blue mug');
element.setAttribute('width', '300');
element.setAttribute('height', '300');
element.setAttribute('scale', '2');
element.setAttribute('model', 'auto');
document.body.append(element);
const found: UpscaleImgElement | null = document.querySelector('upscale-img');

element.addEventListener('upscale-start', (event) => console.log(event.detail.src));
element.addEventListener('upscale-progress', (event) => {
  const { done, total } = event.detail;
  console.log(`${done} of ${total}`);
});
element.addEventListener('upscale-done', (event) => {
  const detail: UpscaleDoneDetail = event.detail;
  console.log(detail.fromCache, detail.ms, detail.width, detail.height, detail.model ?? 'unknown',
    detail.reason ?? 'unknown');
});
element.addEventListener('upscale-error', (event) => {
  if (event.detail.name === 'LoadError' || event.detail.name === 'IntegrityError') {
    console.warn(event.detail.message);
  }
});
element.addEventListener('upscale-skip', (event) => console.log(event.detail.reason));
// They bubble: a shop listens once, on the document or the window.
document.addEventListener('upscale-done', (event) => console.log(event.detail.model));
window.addEventListener('upscale-error', (event) => console.log(event.detail.name));
element.addEventListener('upscale-done', (event) => {
  // @ts-expect-error: upscale-done's detail has no `scale`
  console.log(event.detail.scale);
});
// @ts-expect-error: progress is { done, total }, not a fraction
found?.addEventListener('upscale-progress', (event) => event.detail.toFixed(2));

export { careful, main };
