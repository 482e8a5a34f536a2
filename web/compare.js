/* Before/after viewer: two same-size canvases under one zoom and pan, split by a divider.
 *
 * The "before" canvas holds the bicubic enlargement, the "after" canvas the model's output
 * (painted tile by tile while a job runs). Both are drawn at output resolution and placed with
 * one CSS transform, so zooming never resamples the pixels being compared.
 */

const MAX_ZOOM = 16;
const STEP = 1.25;
const PAN_STEP = 48;
const PIXELATED_FROM = 2; // CSS px per image px from which pixels are shown as squares

export class CompareView {
  /**
   * @param {HTMLElement} root  the .compare element (focusable)
   * @param {{ before: HTMLCanvasElement, after: HTMLCanvasElement, split: HTMLInputElement,
   *           level: HTMLOutputElement, zoomIn, zoomOut, fit, actual: HTMLButtonElement }} parts
   */
  constructor(root, parts) {
    this.root = root;
    this.parts = parts;
    this.before = parts.before.getContext('2d');
    this.after = parts.after.getContext('2d');
    this.divider = root.querySelector('.divider');
    this.afterLayer = root.querySelector('.layer.after');
    this.width = 1;
    this.height = 1;
    this.zoom = 1;
    this.fitted = true;
    this.tx = 0;
    this.ty = 0;
    this.pointers = new Map();
    this.drag = null;
    this.listen();
    this.setSplit(Number(parts.split.value));
  }

  listen() {
    const { root, parts } = this;
    parts.split.addEventListener('input', () => this.setSplit(Number(parts.split.value)));
    parts.zoomIn.addEventListener('click', () => this.zoomAt(this.zoom * STEP));
    parts.zoomOut.addEventListener('click', () => this.zoomAt(this.zoom / STEP));
    parts.fit.addEventListener('click', () => this.fit());
    parts.actual.addEventListener('click', () => this.zoomAt(1));
    root.addEventListener('wheel', (event) => {
      event.preventDefault();
      const factor = Math.exp(-event.deltaY * (event.deltaMode === 1 ? 0.05 : 0.0015));
      const box = root.getBoundingClientRect();
      this.zoomAt(this.zoom * factor, event.clientX - box.left, event.clientY - box.top);
    }, { passive: false });
    root.addEventListener('pointerdown', (event) => this.pointerDown(event));
    root.addEventListener('pointermove', (event) => this.pointerMove(event));
    for (const type of ['pointerup', 'pointercancel']) {
      root.addEventListener(type, (event) => this.pointerUp(event));
    }
    root.addEventListener('keydown', (event) => this.key(event));
    new ResizeObserver(() => (this.fitted ? this.fit() : this.apply())).observe(root);
  }

  /** Size both canvases for an output of width x height, clear them, and fit to the view. */
  reset(width, height) {
    for (const canvas of [this.parts.before, this.parts.after]) {
      canvas.width = width;
      canvas.height = height;
    }
    this.width = width;
    this.height = height;
    this.root.style.aspectRatio = `${width} / ${height}`; // the view hugs the picture
    this.fit();
  }

  /** The bicubic enlargement of `source` (any drawable) across the whole canvas. */
  drawBefore(source) {
    this.before.imageSmoothingEnabled = true;
    this.before.imageSmoothingQuality = 'high';
    this.before.clearRect(0, 0, this.width, this.height);
    this.before.drawImage(source, 0, 0, this.width, this.height);
  }

  paintTile(x, y, image) {
    this.after.putImageData(image, x, y);
  }

  /** The finished output (ImageBitmap) replaces the tile-by-tile preview. */
  drawAfter(bitmap) {
    this.after.clearRect(0, 0, this.width, this.height);
    if (bitmap) this.after.drawImage(bitmap, 0, 0);
  }

  /** While running, the output covers the whole view and tiles sharpen the bicubic beneath. */
  setRunning(running) {
    this.root.classList.toggle('running', running);
    this.setSplit(running ? 0 : Number(this.parts.split.value));
  }

  setSplit(percent) {
    const value = Math.min(100, Math.max(0, percent));
    this.afterLayer.style.clipPath = `inset(0 0 0 ${value}%)`;
    this.divider.style.left = `${value}%`;
  }

  fit() {
    const { clientWidth: w, clientHeight: h } = this.root;
    this.zoom = Math.min(w / this.width, h / this.height) || 1;
    this.fitted = true;
    this.tx = (w - this.width * this.zoom) / 2;
    this.ty = (h - this.height * this.zoom) / 2;
    this.apply();
  }

  /** Zoom to `zoom`, keeping the image point under view position (cx, cy) where it is. */
  zoomAt(zoom, cx = this.root.clientWidth / 2, cy = this.root.clientHeight / 2) {
    const { clientWidth: w, clientHeight: h } = this.root;
    const smallest = Math.min(1, Math.min(w / this.width, h / this.height));
    const next = Math.min(MAX_ZOOM, Math.max(smallest, zoom));
    const ix = (cx - this.tx) / this.zoom;
    const iy = (cy - this.ty) / this.zoom;
    this.zoom = next;
    this.fitted = false;
    this.tx = cx - ix * next;
    this.ty = cy - iy * next;
    this.apply();
  }

  panBy(dx, dy) {
    this.tx += dx;
    this.ty += dy;
    this.fitted = false;
    this.apply();
  }

  /** Keep the image on screen: centred along an axis where it is smaller than the view. */
  clamp() {
    const { clientWidth: w, clientHeight: h } = this.root;
    const sw = this.width * this.zoom;
    const sh = this.height * this.zoom;
    this.tx = sw <= w ? (w - sw) / 2 : Math.min(0, Math.max(w - sw, this.tx));
    this.ty = sh <= h ? (h - sh) / 2 : Math.min(0, Math.max(h - sh, this.ty));
  }

  apply() {
    this.clamp();
    const transform = `translate(${this.tx}px, ${this.ty}px) scale(${this.zoom})`;
    this.parts.before.style.transform = transform;
    this.parts.after.style.transform = transform;
    this.root.classList.toggle('pixels', this.zoom >= PIXELATED_FROM);
    // At fit there is nothing to pan: let a finger scroll the page past the viewer.
    this.root.classList.toggle('zoomed', !this.fitted);
    this.parts.level.value = this.fitted ? 'fit' : `${Math.round(this.zoom * 100)}%`;
  }

  splitFromPointer(event) {
    const box = this.root.getBoundingClientRect();
    const percent = ((event.clientX - box.left) / box.width) * 100;
    this.parts.split.value = String(Math.round(percent));
    this.setSplit(percent);
  }

  pointerDown(event) {
    if (event.button !== 0 && event.pointerType === 'mouse') return;
    this.root.setPointerCapture(event.pointerId);
    this.pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    const onDivider = this.divider.contains(event.target) && !this.root.classList.contains('running');
    if (this.pointers.size === 1) {
      this.drag = onDivider ? 'split' : 'pan';
      this.root.classList.toggle('panning', this.drag === 'pan');
    }
    if (this.pointers.size === 2) this.drag = 'pinch';
  }

  pointerMove(event) {
    const last = this.pointers.get(event.pointerId);
    if (!last) return;
    if (this.drag === 'split') {
      this.splitFromPointer(event);
    } else if (this.drag === 'pan') {
      this.panBy(event.clientX - last.x, event.clientY - last.y);
    } else if (this.drag === 'pinch') {
      const [a, b] = [...this.pointers.values()];
      const before = Math.hypot(a.x - b.x, a.y - b.y);
      last.x = event.clientX;
      last.y = event.clientY;
      const [c, d] = [...this.pointers.values()];
      const after = Math.hypot(c.x - d.x, c.y - d.y);
      const box = this.root.getBoundingClientRect();
      if (before > 0) {
        this.zoomAt(this.zoom * (after / before), (c.x + d.x) / 2 - box.left, (c.y + d.y) / 2 - box.top);
      }
      return;
    }
    last.x = event.clientX;
    last.y = event.clientY;
  }

  pointerUp(event) {
    this.pointers.delete(event.pointerId);
    if (this.pointers.size === 0) {
      this.drag = null;
      this.root.classList.remove('panning');
    } else if (this.pointers.size === 1) {
      this.drag = 'pan';
    }
  }

  key(event) {
    const moves = {
      ArrowLeft: [PAN_STEP, 0], ArrowRight: [-PAN_STEP, 0], ArrowUp: [0, PAN_STEP], ArrowDown: [0, -PAN_STEP],
    };
    if (moves[event.key]) this.panBy(...moves[event.key]);
    else if (event.key === '+' || event.key === '=') this.zoomAt(this.zoom * STEP);
    else if (event.key === '-' || event.key === '_') this.zoomAt(this.zoom / STEP);
    else if (event.key === '0') this.fit();
    else if (event.key === '1') this.zoomAt(1);
    else return;
    event.preventDefault();
  }
}
