"""The one module that talks to JavaScript: the entry points the worker calls.

Pixels cross the boundary once each way: the input is copied from a JS buffer straight into
a numpy array, each tile goes to TF.js as a zero-copy view of the wasm heap, and the result is
handed back as a numpy array the worker copies out once.
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np
from pyodide.ffi import JsProxy

from . import __version__
from .imaging import Limits, decode, describe_file
from .ncnn import convert_to_json
from .pipeline import Options, upscale
from .tiling import Region, check_integer


def versions() -> dict[str, str | None]:
    """What runs; Pillow's version once it is installed (the worker loads it on first need)."""
    try:  # the package only (its version); PIL.Image is imported when a file is decoded
        from PIL import __version__ as pillow
    except ImportError:
        pillow = None
    return {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "pillow": pillow,
        "upscale": __version__,
    }


def check_size(width: int, height: int, scale: int, device_memory: float | None,
               patch: int | None = None) -> None:
    """Raise ImageTooLarge if a `width` x `height` image may not be upscaled `scale` times on
    this device: asked before the pixels of a canvas or bitmap are read."""
    width = check_integer("width", width, 1, 1 << 16)
    height = check_integer("height", height, 1, 1 << 16)
    Limits.for_device(device_memory).check(width, height, scale, patch)


def device_limits(device_memory: float | None) -> dict[str, int]:
    """The limits on a device with this much memory (navigator.deviceMemory), for info."""
    return Limits.for_device(device_memory).describe()


def _rgba_from_js(data: JsProxy, width: int, height: int, limits: Limits, scale: int,
                  patch: int | None):
    width = check_integer("width", width, 1, 1 << 16)
    height = check_integer("height", height, 1, 1 << 16)
    limits.check(width, height, scale, patch)
    pixels = np.empty((height, width, 4), np.uint8)
    data.assign_to(pixels)  # the one copy in; raises if the byte count does not match
    return pixels


def _with_alpha(image: np.ndarray) -> np.ndarray:
    """ImageData is always RGBA: give an RGB input an opaque alpha (input-sized, so cheap)."""
    if image.shape[2] == 4:
        return image
    out = np.empty(image.shape[:2] + (4,), np.uint8)
    out[..., :3] = image
    out[..., 3] = 255
    return out


# What `busy` is told while a job runs synchronously (no tile in flight): the worker cannot
# answer the page's pings meanwhile, so the page allows it its step limit.
DECODING = "decoding the image"
FINISHING = "finishing the image"


async def run(source: JsProxy, options: JsProxy, predict: JsProxy, progress: JsProxy,
              cancelled: JsProxy, paint: JsProxy | None = None,
              busy: JsProxy | None = None) -> np.ndarray:
    """Upscale what the page sent; returns an (H*s, W*s, 4) uint8 array.

    With `paint`, each finished tile's owned output pixels go to `paint(x, y, width, height,
    rgba)` (an opaque RGBA array the callee copies before returning) for a live preview.
    `busy(what)` is told when a long synchronous part starts (DECODING, FINISHING), and
    `busy(None)` when the first tile goes to the model; the caller ends the last one.
    """

    def mark(what: str | None) -> None:
        if busy is not None:
            busy(what)

    opts = options.to_py()
    patch = opts["patchSize"]
    settings = Options(int(opts["scale"]), None if patch == "auto" else patch, opts["padding"],
                       int(opts.get("parallel", 1)), int(opts.get("largestPatch", 320)),
                       int(opts.get("margin", 0)))
    limits = Limits.for_device(opts.get("deviceMemory"))
    mark(DECODING)
    if source.kind == "encoded":
        image = decode(source.bytes.to_bytes(), settings.scale, limits, settings.patch_size)
    else:
        image = _rgba_from_js(source.data, source.width, source.height, limits, settings.scale,
                              settings.patch_size)

    decoding = True

    async def predict_tile(tile: np.ndarray) -> np.ndarray:
        nonlocal decoding
        if decoding:  # the image is read, alpha split off, padded: the tiles begin
            decoding = False
            mark(None)
        result = await predict(tile, tile.shape[0], tile.shape[1])
        inner = 2 * settings.margin
        pixels = np.empty(((tile.shape[0] - inner) * settings.scale,
                           (tile.shape[1] - inner) * settings.scale, 3), np.uint8)
        result.assign_to(pixels)
        return pixels

    def report(done: int, total: int, window: Region) -> None:
        progress(done, total, window.x, window.y, window.width, window.height)
        if done == total:
            mark(FINISHING)  # the stitch's last rows and the alpha plane follow at once

    def paint_tile(region: Region, pixels: np.ndarray) -> None:
        paint(region.x, region.y, region.width, region.height, _with_alpha(pixels))

    return await upscale(_with_alpha(image), predict_tile, settings, report, lambda: cancelled(),
                         paint_tile if paint is not None else None)


def convert_ncnn(param: JsProxy, weights: JsProxy):
    """A model the user brought, as (model.json text, weight bytes, {scale, margin, ...})."""
    return convert_to_json(param.to_bytes(), weights.to_bytes())


def inspect(data: JsProxy) -> dict:
    """What the page may want to know about a file before upscaling it (see describe_file)."""
    return describe_file(data.to_bytes())


def sha256(data: JsProxy) -> str:
    """The hex digest of a downloaded model file, where the browser has no SubtleCrypto (a
    page on plain http from another host is not a secure context)."""
    return hashlib.sha256(data.to_bytes()).hexdigest()
