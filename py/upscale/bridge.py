"""The one module that talks to JavaScript: the entry points the worker calls.

Pixels cross the boundary once each way: the input is copied from a JS buffer straight into
a numpy array, each tile goes to TF.js as a zero-copy view of the wasm heap, and the result is
handed back as a numpy array the worker copies out once.

An UpscaleError does not cross as an exception (JS would see a PythonError and its traceback
as text): each entry point returns it as a `Refusal`, which the worker throws as an Error of
that name and message (worker.js `fromPython`). Any other exception is a bug, and crosses
with its traceback.
"""

from __future__ import annotations

import functools
import hashlib
import inspect as introspect
import json
import sys
from dataclasses import dataclass, replace

import numpy as np
from pyodide.ffi import JsProxy

from . import __version__
from .archive import zip_files
from .errors import (
    BAD_PIXEL_COUNT,
    BAD_RANGE,
    BAD_RUN_SCALE,
    BOTH_FILES,
    NO_AUTO_SCALE,
    WRONG_SCALE,
    Cancelled,
    ImageTooLarge,
    InvalidImage,
    InvalidOptions,
    UpscaleError,
)
from .imaging import Limits, check_encoding, decode, describe_file, encode_png
from .pipeline import Options, enlarge_plainly, upscale
from .policy import TileRule, check_patch, gpu_patch, gpu_side, smaller_patch, tile_rule
from .routing import (
    BROWSER_FORMATS,
    HEADER_BYTES,
    PLAIN,  # noqa: F401 (worker.js names a plain result by it: state.bridge.PLAIN)
    Facts,
    RoutingTable,
    blur_route,
    plain_below,
    plain_reason,
    read_facts,
    restore_reason,
    route,
    sniff,
)
from .tiling import Region, check_integer


@dataclass(frozen=True)
class Refusal:
    """An UpscaleError on its way to JavaScript. `name` is the error class's name, except that
    a cancelled job is the web's AbortError; `tiles` says how far a cancelled job got."""

    name: str
    message: str
    tiles: dict | None = None

    @classmethod
    def of(cls, error: UpscaleError) -> Refusal:
        if isinstance(error, Cancelled):
            return cls("AbortError", str(error), {"done": error.done, "total": error.total})
        return cls(type(error).__name__, str(error))


def crossing(function):
    """Return an UpscaleError raised by `function` (sync or async) as a Refusal."""
    if introspect.iscoroutinefunction(function):
        @functools.wraps(function)
        async def refusing(*args, **kwargs):
            try:
                return await function(*args, **kwargs)
            except UpscaleError as error:
                return Refusal.of(error)
    else:
        @functools.wraps(function)
        def refusing(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except UpscaleError as error:
                return Refusal.of(error)
    return refusing


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


async def self_check() -> str:
    """A digest of a small tiled enlargement (a fake model) and a few of numpy's compiled
    kernels (ufuncs, sorting, LAPACK): the same on every sound start of one build. The engine
    keeps it with a Python snapshot and compares a restored Python's against it, since a
    library restored at the wrong place fails there, not at import."""
    image = (np.arange(37 * 29 * 3, dtype=np.uint64) * 2654435761 % 251).astype(np.uint8)
    image = image.reshape(37, 29, 3)

    async def nearest(tile: np.ndarray) -> np.ndarray:
        return tile.repeat(2, axis=0).repeat(2, axis=1)

    enlarged = await upscale(image, nearest, Options(2, 16, 3))
    kernels = np.sort(np.sin(image[:8, :8, 0].astype(np.float64)), axis=None)
    singular = np.linalg.svd(image[:8, :8, 1].astype(np.float64), compute_uv=False)
    digest = hashlib.sha256(enlarged.tobytes())
    digest.update(kernels.tobytes())
    digest.update(np.round(singular, 6).tobytes())
    return digest.hexdigest()


@crossing
def check_size(width: int, height: int, tile: JsProxy, patch_size: object,
               device_memory: float | None) -> None:
    """Refuse (ImageTooLarge) a `width` x `height` image the current model may not upscale on
    this device, or (InvalidOptions) a patchSize it may not run at: asked before the pixels of
    a canvas or bitmap are read."""
    width = check_integer("width", width, 1, 1 << 16)
    height = check_integer("height", height, 1, 1 << 16)
    options = _job(tile, patch_size)
    Limits.for_device(device_memory).check(width, height, options.result_scale,
                                           options.patch_size, options.scale)


def device_limits(device_memory: float | None) -> dict[str, int]:
    """The limits on a device with this much memory (navigator.deviceMemory), for info."""
    return Limits.for_device(device_memory).describe()


@crossing
def tile_for(manifest: JsProxy, widths: JsProxy, backend: str, tile_workers: int, warmed: int,
             too_large: int | None, asked: bool, side: int | None) -> dict:
    """The tile `manifest`'s model runs at here, once warmed up (see policy.tile_rule). The
    tiles are the network's: a manifest with a `runScale` (a x4 network serving x2) is tiled
    at that scale, and the rule says by how much the stitched output is reduced (`reduce`)."""
    manifest = manifest.to_py()
    scale = check_integer("scale", manifest["scale"], 1, 16)
    run_scale = check_integer("runScale", manifest.get("runScale") or scale, scale, 16)
    if run_scale % scale:
        raise InvalidOptions(BAD_RUN_SCALE.format(run_scale=run_scale, scale=scale))
    rule = tile_rule({**manifest, "scale": run_scale}, widths.to_py(), backend, tile_workers,
                     warmed, too_large, asked, side)
    return {**rule.to_js(), "reduce": run_scale // scale}


def _job(tile: JsProxy, patch_size: object = None, padding: object = None) -> Options:
    """The options of one job: the current model's tile rule (as tile_for made it) and what
    the caller asked for."""
    rule = tile.to_py()
    options = TileRule.from_js(rule).job(patch_size, padding)
    return replace(options, reduce=int(rule.get("reduce") or 1))


@crossing
def gpu_fit(topology: str, backend: str, limits: JsProxy, wanted: int, margin: int) -> dict:
    """Where a GPU warms a model up: `topology` is its model.json's modelTopology (as JSON),
    `limits` the GPU's (see policy.gpu_side), `wanted` the patch it would run at. Returns
    {patch, side}: the patch to warm up at, and the widest tile these limits hold (None:
    unknown), for tile_for."""
    from .footprint import footprint  # see convert_ncnn

    side = gpu_side(footprint(json.loads(topology)), backend, limits.to_py())
    return {"patch": gpu_patch(wanted, side, margin), "side": side}


@crossing
def patch_asked(patch: object) -> int:
    """The Upscaler's own patchSize, checked (see policy.check_patch)."""
    return check_patch(patch)


def next_patch(patch: int) -> int | None:
    """The patch to warm up at after `patch` did not fit the GPU (None: give up)."""
    return smaller_patch(patch)


def _rgba_from_js(data: JsProxy, width: int, height: int, limits: Limits | None = None,
                  scale: int = 1, patch: int | None = None, run_scale: int | None = None):
    """RGBA pixels copied in from a JS buffer; an input to upscale is checked against
    `limits` first."""
    width = check_integer("width", width, 1, 1 << 16)
    height = check_integer("height", height, 1, 1 << 16)
    if limits is not None:
        limits.check(width, height, scale, patch, run_scale)
    if data.byteLength != width * height * 4:
        raise InvalidImage(BAD_PIXEL_COUNT.format(width=width, height=height,
                                                  want=width * height * 4, got=data.byteLength))
    pixels = np.empty((height, width, 4), np.uint8)
    data.assign_to(pixels)  # the one copy in
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


@dataclass(frozen=True)
class Result:
    """A finished job: the (H*s, W*s, 4) pixels, and the tiling it ran with."""

    pixels: np.ndarray
    patch: int
    padding: int


@crossing
async def run(source: JsProxy, tile: JsProxy, asked: JsProxy, predict: JsProxy,
              progress: JsProxy, cancelled: JsProxy, paint: JsProxy | None = None,
              busy: JsProxy | None = None, reroute: JsProxy | None = None,
              plain: JsProxy | None = None, plain_under: float | None = None) -> Result:
    """Upscale what the page sent with the current model's `tile` rule and the options the
    caller `asked` for ({patchSize, padding, deviceMemory}; each may be null).

    With `paint`, each finished tile's owned output pixels go to `paint(x, y, width, height,
    rgba)` (an opaque RGBA array the callee copies before returning) for a live preview.
    `busy(what)` is told when a long synchronous part starts (DECODING, FINISHING), and
    `busy(None)` when the first tile goes to the model; the caller ends the last one.

    With `reroute` (an `auto` job whose table routes blurred files elsewhere; see
    choose_model), the decoded pixels are scored (routing.restore_reason); if they read blurred
    and hold enough contrast to restore, `await reroute(why)` switches the job to that model
    and answers its tile rule, which the job then runs with, if this device may run it on this
    image (else `await reroute(None)` switches back).

    With `plain` (an `auto` job whose file may be too faint for any model; choose_model's
    `plain`, the contrast `plain_under`), pixels that are not rerouted and read fainter than
    that are enlarged with no model (pipeline.enlarge_plainly): `plain(why)` is told first, and
    the result says patch 0, padding 0.
    """

    def mark(what: str | None) -> None:
        if busy is not None:
            busy(what)

    asked = asked.to_py()
    settings = _job(tile, asked.get("patchSize"), asked.get("padding"))
    limits = Limits.for_device(asked.get("deviceMemory"))
    mark(DECODING)
    if source.kind == "encoded":
        image = decode(source.bytes.to_bytes(), settings.result_scale, limits,
                       settings.patch_size, settings.scale)
    else:
        image = _rgba_from_js(source.data, source.width, source.height, limits,
                              settings.result_scale, settings.patch_size, settings.scale)
    if reroute is not None:
        rerouted = await _rerouted(image, settings, asked, limits, reroute)
        if rerouted is not settings:
            plain, settings = None, rerouted
    if plain is not None and (why := plain_reason(image[..., :3], plain_under)):
        plain(why)
        progress(1, 1, 0, 0, image.shape[1], image.shape[0])
        mark(FINISHING)
        return Result(enlarge_plainly(_with_alpha(image), settings.result_scale), 0, 0)
    settings = settings.for_image(image.shape[0], image.shape[1])

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

    pixels = await upscale(_with_alpha(image), predict_tile, settings, report,
                           lambda: cancelled(), paint_tile if paint is not None else None)
    return Result(pixels, settings.patch_size, settings.padding)


async def _rerouted(image: np.ndarray, settings: Options, asked: dict, limits: Limits,
                    reroute: JsProxy) -> Options:
    """The job's options after the blur check: the blurry route's where `image` reads blurred
    (with the contrast to restore) and fits this device's limits with that model, else
    `settings` as they were."""
    why = restore_reason(image[..., :3], settings.result_scale)
    if why is None:
        return settings
    other = _job(await reroute(why), asked.get("patchSize"), asked.get("padding"))
    try:
        limits.check(image.shape[1], image.shape[0], other.result_scale, other.patch_size,
                     other.scale)
    except ImageTooLarge:
        await reroute(None)
        return settings
    return other


@crossing
def convert_ncnn(param: JsProxy | None, weights: JsProxy | None, scale: object,
                 input_range: JsProxy | None):
    """A model the user brought, as (model.json text, weight bytes, {scale, margin, ...}).
    `scale` and `input_range` ([0, max]), where given, must fit the network."""
    if not all(isinstance(f, JsProxy) and hasattr(f, "to_bytes") for f in (param, weights)):
        raise InvalidOptions(BOTH_FILES)
    low, high = (0, 1) if input_range is None else _pair(input_range)
    if low != 0 or not high > 0:
        raise InvalidOptions(BAD_RANGE.format(got=_pair(input_range)))
    # Imported when first needed, as footprint is for a GPU: the start of every engine waits for
    # this module's imports, and in Pyodide each dataclass of theirs costs a few ms to build.
    from .ncnn import convert_to_json

    text, data, meta = convert_to_json(param.to_bytes(), weights.to_bytes())
    if scale is not None and scale != meta["scale"]:
        raise InvalidOptions(WRONG_SCALE.format(scale=scale, actual=meta["scale"]))
    return text, data, meta


def _pair(value: JsProxy) -> list:
    items = value.to_py() if hasattr(value, "to_py") else value
    if not isinstance(items, list) or len(items) != 2 \
            or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in items):
        raise InvalidOptions(BAD_RANGE.format(got=items))
    return items


@crossing
def zip_results(names: JsProxy, files: JsProxy, device_memory: float | None) -> memoryview:
    """One stored zip of the page's results (see archive.zip_files); each file is copied into
    Python only as it is written."""
    entries = [(name, data.byteLength, data.to_bytes)
               for name, data in zip(names.to_py(), files, strict=True)]
    return zip_files(entries, Limits.for_device(device_memory).memory_bytes)


@crossing
def encoding(kind: object, quality: object) -> dict:
    """{type, quality} of a result file, checked (see imaging.check_encoding)."""
    kind, quality = check_encoding(kind, quality)
    return {"type": kind, "quality": quality}


@crossing
def png(data: JsProxy, width: int, height: int) -> memoryview:
    """A result's RGBA pixels as a PNG file (see imaging.encode_png)."""
    return memoryview(encode_png(_rgba_from_js(data, width, height)))


@crossing
def inspect(data: JsProxy) -> dict:
    """What the page may want to know about a file before upscaling it (see describe_file)."""
    return describe_file(data.to_bytes())


def browser_format(head: JsProxy) -> bool:
    """Whether a file Pillow does not read, by its first bytes, is one a browser may decode
    (AVIF; HEIF in Safari): the worker then hands over the browser's pixels instead."""
    return sniff(head.to_bytes()) in BROWSER_FORMATS


@functools.lru_cache(maxsize=2)
def _routing(text: str) -> RoutingTable:
    return RoutingTable.from_json(json.loads(text))


@crossing
def auto_scale(scale: object, table: str) -> int:
    """The scale an `auto` job asked for, checked against those the table routes."""
    known = sorted(_routing(table).scales)
    if isinstance(scale, bool) or scale not in known:
        raise InvalidOptions(NO_AUTO_SCALE.format(scale=scale, known=", ".join(map(str, known))))
    return int(scale)


@crossing
def choose_model(header: JsProxy | None, scale: int, table: str) -> dict:
    """`model: 'auto'`: the model for a file whose first bytes (HEADER_BYTES, cut by the
    caller) are `header` (None: pixels with no file) at `scale`, and why: {model, reason,
    facts, blurry, plain}. The facts (format, a JPEG's quality and subsampling) come from the
    header alone, with no Pillow; see routing.read_facts. `blurry`: the model to run instead if the
    decoded pixels read blurred (run() checks them), or None where the table has no such route
    for this file. `plain`: the contrast under which run() gives the decoded pixels no model,
    only bicubic (routing.plain_below), or None."""
    facts = Facts() if header is None else read_facts(header.to_bytes()[:HEADER_BYTES])
    routes = _routing(table)
    return {**route(facts, scale, routes).to_js(), "facts": facts.to_js(),
            "blurry": blur_route(facts, scale, routes), "plain": plain_below(facts, scale)}


def sha256(data: JsProxy) -> str:
    """The hex digest of a downloaded model file, where the browser has no SubtleCrypto (a
    page on plain http from another host is not a secure context)."""
    return hashlib.sha256(data.to_bytes()).hexdigest()
