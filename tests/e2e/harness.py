"""Drive `Upscaler` in a page and bring results back as numpy arrays."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

BOOT_TIMEOUT_MS = 120_000

# In-page JS: bytes as base64, much quicker to move out of the page than a number array.
TO_BASE64 = """
  const toBase64 = (bytes) => {
    let text = '';
    for (let i = 0; i < bytes.length; i += 0x8000) {
      text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(text);
  };
"""

# Runs in the page: the page's Upscaler for `backend` (started by the first call, kept for the
# next: see conftest.shared_app), switched to `model`; several jobs, results as base64 RGBA.
RUN_JOBS = """async ({ model, backend, jobs }) => {
  const { Upscaler } = await import('./upscale.js');
""" + TO_BASE64 + """
  window.__engines = window.__engines || {};
  const up = window.__engines[backend] || new Upscaler({ model, backend });
  window.__engines[backend] = up;
  let info = await up.ready;
  if (info.model.id !== model) info = await up.setModel(model);
  {
    const before = await up.memory();
    const results = [];
    for (const job of jobs) {
      const blob = await (await fetch(job.url)).blob();
      const t0 = performance.now();
      const out = await up.upscale(blob, job.options || {});
      results.push({ ms: performance.now() - t0, width: out.width, height: out.height,
                     rgba: toBase64(new Uint8Array(out.data.buffer)) });
    }
    const after = await up.memory();
    return { info, before, after, results };
  }
}"""


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def photo_crop(photos, name: str, size: int, left: int = 0, top: int = 0,
               height: int | None = None) -> np.ndarray:
    """A size x (height or size) RGB crop of one of build.ensure_photos()'s photos."""
    image = Image.open(photos[name]).convert("RGB")
    return np.asarray(image.crop((left, top, left + size, top + (height or size))))


def serve_bytes(page, path: str, data: bytes, content_type: str = "image/png") -> str:
    """Make `data` available to the page at a same-origin URL."""
    page.route(f"**/__test__/{path}", lambda route: route.fulfill(body=data,
                                                                 content_type=content_type))
    return f"__test__/{path}"


def run_jobs(page, model: str, jobs: list[dict], backend: str = "wasm") -> dict:
    page.set_default_timeout(BOOT_TIMEOUT_MS)
    outcome = page.evaluate(RUN_JOBS, {"model": model, "backend": backend, "jobs": jobs})
    for result in outcome["results"]:
        flat = np.frombuffer(base64.b64decode(result.pop("rgba")), np.uint8)
        result["image"] = flat.reshape(result["height"], result["width"], 4)
    return outcome


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))
