"""upscale(): cut an image into tiles, run the injected model on each, stitch the result.

The model call is injected (`predict(tile) -> awaitable tile`), so the same code runs with
TF.js in the browser and with a fake model in the unit tests.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from .errors import BAD_SHAPE, MODEL_OUTPUT, Cancelled, InvalidImage, ModelOutputError
from .imaging import resize_alpha
from .stitch import Stitcher
from .tiling import Region, TilePlan, pad_up

Predict = Callable[[np.ndarray], Awaitable[np.ndarray]]
Progress = Callable[[int, int, Region], None]
Paint = Callable[[Region, np.ndarray], None]


@dataclass(frozen=True)
class Options:
    scale: int
    patch_size: int = 128
    padding: int = 16


async def upscale(
    image: np.ndarray,
    predict: Predict,
    options: Options,
    on_progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    on_tile: Paint | None = None,
) -> np.ndarray:
    """Return `image` (H, W, 3 or 4, uint8) enlarged `options.scale` times.

    RGB goes through the model tile by tile; an alpha plane that is not fully opaque is
    resized with Pillow. `on_progress(done, total, window)` follows every tile, `window` being
    the input pixels that tile read (clipped to the image). `cancelled()` is asked before
    each tile; when it says yes, Cancelled is raised and nothing more runs. `on_tile(region,
    pixels)`, for live previews, gets the output pixels each tile owns (RGB, unblended).
    """
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
        raise InvalidImage(BAD_SHAPE.format(shape=image.shape, dtype=image.dtype))
    height, width, channels = image.shape
    scale = options.scale
    plan = TilePlan(height, width, options.patch_size, options.padding, scale)
    output = np.empty((height * scale, width * scale, channels), np.uint8)
    source = pad_up(image[..., :3], *plan.padded_shape)
    stitcher = Stitcher(output[..., :3], plan.patch * scale)
    want = (plan.patch * scale, plan.patch * scale, 3)
    total = len(plan)
    for tile in plan:
        if cancelled is not None and cancelled():
            raise Cancelled()
        pixels = await predict(np.ascontiguousarray(source[tile.window.slices()]))
        if pixels.shape != want:
            raise ModelOutputError(MODEL_OUTPUT.format(got=pixels.shape, want=want))
        stitcher.add(tile, pixels, scale)
        if on_tile is not None:
            owned = plan.owned(tile)
            within = owned.shifted(-tile.window.y * scale, -tile.window.x * scale)
            on_tile(owned, pixels[within.slices()])
        if on_progress is not None:
            on_progress(tile.index + 1, total, tile.window.clipped(height, width))
    stitcher.finish()
    if channels == 4:
        output[..., 3] = resize_alpha(image[..., 3], scale)
    return output
