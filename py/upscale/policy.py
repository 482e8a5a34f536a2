"""The tile a model runs at on a device, and the job options it accepts.

The worker reports facts (the backend, how many tile workers run the model, the model's
manifest and the widths of its weights, the device's memory) and gets decisions back, so no
tiling or limit number lives in JavaScript. A `TileRule` crosses to JS as a plain object
(`to_js`) and comes back with each job (`from_js`): the worker keeps no rule of its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import BAD_BACKEND, GPU_PATCH, PATCH_MEMORY, InvalidOptions
from .pipeline import Options
from .tiling import MAX_PATCH, check_integer

if TYPE_CHECKING:
    from .footprint import Footprint

# What one tile may ask of memory. Its widest activation (the widest layer's channels, or the
# output's 3 x scale² before the pixel shuffle, per input pixel, as float32) lives a few times
# over (a layer's input, its output, a temporary); past this, a WebAssembly heap (4 GiB at
# most) traps, so a patch that large is refused before it runs.
TILE_MEMORY_BYTES = 1 << 30
LIVE_ACTIVATIONS = 4

# On WebAssembly a new tile shape costs nothing to set up, so each image gets the patch that
# shares it best between the tile workers (tiling.choose_patch), up to 320 px and an output
# tile of 1024 px: the activations grow with the output (an x8 model's last layers at 2560 px
# would need gigabytes).
LARGEST_AUTO_PATCH = 320
LARGEST_AUTO_OUTPUT = 1024

# A GPU compiles its programs for one tile shape, so it keeps the model's patch; where its
# textures cannot hold that, the warm-up halves it down to this.
SMALLEST_PATCH = 16

# WebGL holds a tensor in a texture of at most MAX_TEXTURE_SIZE² texels, four values to a
# texel (TF.js packs them 2 x 2); its largest is a convolution's unrolled input (im2col). The
# ops that do not pack (DepthToSpace) sit next to convolutions that unroll more. WebGPU holds
# each tensor, float32, in one storage buffer.
WEBGL_VALUES_PER_TEXEL = 4
WEBGPU_BYTES_PER_VALUE = 4

# The patch a GPU's limits cut down to is a multiple of this (the published patches are).
GPU_PATCH_STEP = 8

# On a GPU two tiles are in flight: the next one uploads and queues its work while the last
# one reads back (TF.js's data() waits for the GPU without blocking the worker).
GPU_TILES_IN_FLIGHT = 2

GPU_BACKENDS = frozenset({"webgl", "webgpu"})
BACKENDS = GPU_BACKENDS | {"wasm", "cpu"}


@dataclass(frozen=True)
class TileRule:
    """How the current model is tiled on this device.

    `patch` None: each image gets its own patch (tiling.choose_patch), up to `largest_patch`.
    `max_patch`: the largest patch the GPU's textures held, where a larger one failed.
    `largest_side`: the widest tile (patch, padding and margin) memory allows.
    """

    model: str  # the manifest's id, for messages
    scale: int
    padding: int
    margin: int
    patch: int | None
    largest_patch: int
    largest_side: int
    max_patch: int | None
    parallel: int

    def to_js(self) -> dict:
        """info.tile, and what the worker hands back with each job."""
        return {key: getattr(self, field) for field, key in _JS_KEYS.items()}

    @classmethod
    def from_js(cls, tile: Mapping) -> TileRule:
        values = {field: tile[key] for field, key in _JS_KEYS.items()}
        return cls(**{field: value if value is None or field == "model" else int(value)
                      for field, value in values.items()})

    def padding_for(self, patch: int | None) -> int:
        """The model's padding, unless an explicit patch is too small to hold it (a patch must
        be more than twice its padding): then a quarter of the patch, as the GPU's shrunken
        tiles get, rather than a refusal."""
        if patch is None or patch > 2 * self.padding:
            return self.padding
        return patch // 4

    def job(self, patch_size: object = None, padding: object = None) -> Options:
        """The options one job runs with: the caller's patchSize and padding where given
        (None: not given), checked against what this model may run at here."""
        patch = self.patch if patch_size is None else check_integer(
            "patchSize", patch_size, 1, MAX_PATCH)
        padding = self.padding_for(patch) if padding is None else check_integer(
            "padding", padding, 0, MAX_PATCH)
        widest = patch or self.largest_patch
        if widest + 2 * (padding + self.margin) > self.largest_side:
            raise InvalidOptions(PATCH_MEMORY.format(
                patch=widest, padding=padding, model=self.model,
                gib=TILE_MEMORY_BYTES // 2**30,
                most=self.largest_side - 2 * (padding + self.margin)))
        if self.max_patch is not None and patch is not None and patch > self.max_patch:
            raise InvalidOptions(GPU_PATCH.format(patch=patch, model=self.model,
                                                  most=self.max_patch))
        return Options(self.scale, patch, padding, self.parallel, self.largest_patch,
                       self.margin)


# TileRule's fields by their names in JavaScript (info.tile).
_JS_KEYS = {"model": "model", "scale": "scale", "padding": "padding", "margin": "margin",
            "patch": "patchSize", "largest_patch": "largestPatch", "largest_side": "largestSide",
            "max_patch": "maxPatchSize", "parallel": "parallel"}


def largest_side(scale: int, widths: Iterable[int]) -> int:
    """The widest tile whose activations fit TILE_MEMORY_BYTES: `widths` are the output
    channels of the model's convolutions."""
    widest = max([3 * scale**2, *widths])
    return math.isqrt(TILE_MEMORY_BYTES // (widest * 4 * LIVE_ACTIVATIONS))


def largest_auto_patch(scale: int, patch: int) -> int:
    """The per-image patch's bound: 320 px, or an output tile of 1024 px, but never less than
    the patch the model was published with."""
    by_output = 8 * (LARGEST_AUTO_OUTPUT // scale // 8)
    return min(LARGEST_AUTO_PATCH, max(patch, by_output))


def check_patch(patch: object) -> int:
    """A patch asked for up front (Upscaler's `patchSize`): the tile every job runs at."""
    return check_integer("patchSize", patch, SMALLEST_PATCH, MAX_PATCH)


def gpu_side(footprint: Footprint | None, backend: str, limits: Mapping) -> int | None:
    """The widest tile (input side, margin included) whose tensors fit this GPU's limits:
    `limits` holds WebGL's maxTextureSize, or WebGPU's maxStorageBufferBindingSize and
    maxBufferSize. None where the model's footprint or the limit is unknown: the warm-up then
    finds it by failing."""
    if footprint is None:
        return None
    if backend == "webgl" and limits.get("maxTextureSize"):
        texels = max(footprint.unrolled, footprint.values) / WEBGL_VALUES_PER_TEXEL
        return math.floor(int(limits["maxTextureSize"]) / math.sqrt(texels))
    if backend == "webgpu" and limits.get("maxStorageBufferBindingSize"):
        largest = min(int(limits["maxStorageBufferBindingSize"]),
                      int(limits.get("maxBufferSize") or limits["maxStorageBufferBindingSize"]))
        return math.isqrt(largest // (footprint.values * WEBGPU_BYTES_PER_VALUE))
    return None


def gpu_patch(wanted: int, side: int | None, margin: int) -> int:
    """The patch to warm up at: `wanted`, or where its tile would not fit in `side` (see
    gpu_side), the largest multiple of GPU_PATCH_STEP that does (SMALLEST_PATCH at least: a
    model that does not fit even there fails its warm-up by name)."""
    if side is None or wanted + 2 * margin <= side:
        return wanted
    fits = (side - 2 * margin) // GPU_PATCH_STEP * GPU_PATCH_STEP
    return max(SMALLEST_PATCH, fits)


def smaller_patch(patch: int) -> int | None:
    """The next patch to warm up at after `patch` did not fit the GPU's textures, if any."""
    half = patch // 2
    return half if half >= SMALLEST_PATCH else None


def tile_rule(manifest: Mapping, widths: Iterable[int], backend: str, tile_workers: int,
              warmed: int, too_large: int | None = None, asked: bool = False,
              side: int | None = None) -> TileRule:
    """The rule for `manifest`'s model on `backend`, once it warmed up at patch `warmed`
    (`too_large`: the smallest patch that did not fit the GPU, if one failed; `asked`: the
    caller fixed the patch up front, see check_patch; `side`: the widest tile the GPU's
    limits hold, see gpu_side). `tile_workers`: how many workers run the model side by side
    (0: the engine worker itself). A GPU keeps the patch it compiled for; WebAssembly chooses
    one per image unless one was asked for."""
    if backend not in BACKENDS:
        raise InvalidOptions(BAD_BACKEND.format(backend=backend, known=", ".join(sorted(BACKENDS))))
    scale = check_integer("scale", manifest["scale"], 1, 16)
    published = check_integer("patchSize", manifest["patchSize"], SMALLEST_PATCH, MAX_PATCH)
    tile_workers = check_integer("tile workers", tile_workers, 0, 64)
    gpu = backend in GPU_BACKENDS
    warmed = check_patch(warmed)
    patch = warmed if gpu or asked else None
    parallel = tile_workers or (GPU_TILES_IN_FLIGHT if gpu else 1)
    padding = min(int(manifest["padding"]), warmed // 4)
    margin = int(manifest.get("margin") or 0)
    most = None
    if gpu and too_large is not None:
        most = warmed
    elif gpu and side is not None:
        most = max(warmed, side - 2 * margin)
    memory_side = largest_side(scale, widths)
    return TileRule(
        model=str(manifest["id"]),
        scale=scale,
        padding=padding,
        margin=margin,
        patch=patch,
        # the per-image patch stays within what memory allows, at the model's own padding
        largest_patch=min(largest_auto_patch(scale, published),
                          memory_side - 2 * (padding + margin)),
        largest_side=memory_side,
        max_patch=most,
        parallel=parallel,
    )

