/**
 * `<upscale-img>`: a shop serves a small product photo; the shopper's browser paints it large.
 *
 * ```ts
 * import '@upscale-web/upscale/embed';   // defines <upscale-img>
 * // <upscale-img src="/p/mug-150.jpg" alt="Blue mug" width="300" height="300"></upscale-img>
 * document.querySelector('upscale-img')!
 *   .addEventListener('upscale-done', (event) => console.log(event.detail.model));
 * ```
 *
 * Written by hand from web/embed.js; tests/typed/example.ts uses all of it.
 */

import type { AssetsOptions, UpscaleErrorName } from './index.js';

/**
 * The `<upscale-img>` element. The original shows at once in the reserved box; near the
 * viewport the element queues itself on the page's one shared engine (visible images first)
 * and swaps the enlargement in. Any failure leaves the original in place.
 *
 * Configured by attributes only (no properties of its own; use `setAttribute`):
 * - `src`: the photo (same origin, or served with CORS).
 * - `alt`: its text alternative.
 * - `width`, `height`: the display size, CSS px (the space is reserved: nothing shifts).
 * - `scale`: `2`, `3` or `4`; default: what the display size and `devicePixelRatio` need.
 * - `model`: a catalogue id; default `auto` (the model the bench measured best for the file).
 *
 * Changing `src`, `scale` or `model` starts over. Its events bubble and cross shadow roots:
 * {@link UpscaleImgEventMap}. Shadow parts: `image` (both pictures), `large` (the enlargement).
 */
export interface UpscaleImgElement extends HTMLElement {}

/** Options of {@link define}. */
export interface DefineOptions extends AssetsOptions {}

/**
 * Define `<upscale-img>` (importing this module already does) and say where its engine's files
 * are served (`assetsURL`, as `new Upscaler()` takes it; default: the package's own `assets/`
 * folder). Call it before the first image upscales: the page's one engine starts then.
 */
export function define(options?: DefineOptions): void;

/** `upscale-start`: the element came near the viewport and begins. */
export interface UpscaleStartDetail {
  /** The photo's absolute address. */
  src: string;
}

/** `upscale-progress`: a tile went through the model. */
export interface UpscaleProgressDetail {
  done: number;
  total: number;
}

/** `upscale-done`: the enlargement is shown. */
export interface UpscaleDoneDetail {
  /** Shown from the result cache, without starting the engine. */
  fromCache: boolean;
  /** How long the upscale took (0 from the cache). */
  ms: number;
  /** The enlargement's pixel size. */
  width: number;
  height: number;
  /**
   * The model that ran (`null` for a result cached by an older build); `'bicubic'` where
   * `auto` found the photo too faint for any model (see `UpscaleResult.model`).
   */
  model: string | null;
  /** Why that model, e.g. `'JPEG, quality ≈ 78, 4:2:0'` (`null` as `model`). */
  reason: string | null;
}

/**
 * The names an `upscale-error` may carry: the engine's ({@link UpscaleErrorName}), or
 * `LoadError` (the photo, or the model list, could not be loaded).
 */
export type UpscaleImgErrorName = UpscaleErrorName | 'LoadError';

/** `upscale-error`: the original stays. */
export interface UpscaleErrorDetail {
  name: UpscaleImgErrorName | (string & {});
  message: string;
}

/** `upscale-skip`: the original stays, on purpose. */
export interface UpscaleSkipDetail {
  /** Why, in words: data saving, little memory, already sharp at this size. */
  reason: string;
}

/** The events of `<upscale-img>`, all `CustomEvent`s that bubble (composed). */
export interface UpscaleImgEventMap {
  'upscale-start': CustomEvent<UpscaleStartDetail>;
  'upscale-progress': CustomEvent<UpscaleProgressDetail>;
  'upscale-done': CustomEvent<UpscaleDoneDetail>;
  'upscale-error': CustomEvent<UpscaleErrorDetail>;
  'upscale-skip': CustomEvent<UpscaleSkipDetail>;
}

declare global {
  interface HTMLElementTagNameMap {
    'upscale-img': UpscaleImgElement;
  }
  /** The events bubble: listen on the element or any ancestor. */
  interface HTMLElementEventMap extends UpscaleImgEventMap {}
  /** ...or on the document. */
  interface DocumentEventMap extends UpscaleImgEventMap {}
  /** ...or on the window. */
  interface WindowEventMap extends UpscaleImgEventMap {}
}
