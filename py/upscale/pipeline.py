"""upscale(): cut an image into tiles, run the injected model on each, stitch the result.

The model call is injected (`predict(tile) -> awaitable tile`), so the same code runs with
TF.js in the browser and with a fake model in the unit tests.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import numpy as np

from .errors import BAD_SHAPE, MODEL_OUTPUT, Cancelled, InvalidImage, ModelOutputError
from .imaging import resize_alpha
from .stitch import Stitcher
from .tiling import Region, Tile, TilePlan, choose_patch, cut, pad_up

Predict = Callable[[np.ndarray], Awaitable[np.ndarray]]
Progress = Callable[[int, int, Region], None]
Paint = Callable[[Region, np.ndarray], None]


@dataclass(frozen=True)
class Options:
    scale: int
    patch_size: int | None = 128  # None: chosen per image (choose_patch), at most largest_patch
    padding: int = 16
    parallel: int = 1  # tiles in flight at once (one per tile worker)
    largest_patch: int = 320
    margin: int = 0  # pixels the model reads beyond its output on each side (waifu2x: 7)

    def for_image(self, height: int, width: int) -> Options:
        """These options with the patch fixed for a `height` x `width` image."""
        if self.patch_size is not None:
            return self
        return replace(self, patch_size=choose_patch(height, width, self.padding,
                                                     self.parallel, self.largest_patch))


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
    each tile; when it says yes, Cancelled is raised and no further tile starts (up to
    `parallel - 1` already handed out finish unread). A model with a `margin` gets each
    window with that many more pixels around it (edge pixels repeated beyond the image) and
    returns the window's output. `on_tile(region, pixels)`, for live
    previews, gets the output pixels each tile owns (RGB, unblended).

    Up to `options.parallel` predicts run at once; results are stitched in tile order.
    """
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
        raise InvalidImage(BAD_SHAPE.format(shape=image.shape, dtype=image.dtype))
    height, width, channels = image.shape
    options = options.for_image(height, width)
    scale = options.scale
    plan = TilePlan(height, width, options.patch_size, options.padding, scale)
    output = np.empty((height * scale, width * scale, channels), np.uint8)
    source = pad_up(image[..., :3], *plan.padded_shape)
    stitcher = Stitcher(output[..., :3], plan.patch * scale)
    want = (plan.patch * scale, plan.patch * scale, 3)
    total = len(plan)

    async def finish(tile: Tile, running: Awaitable) -> None:
        pixels = await running
        if pixels.shape != want:
            raise ModelOutputError(MODEL_OUTPUT.format(got=pixels.shape, want=want))
        stitcher.add(tile, pixels, scale)
        if on_tile is not None:
            owned = plan.owned(tile)
            within = owned.shifted(-tile.window.y * scale, -tile.window.x * scale)
            on_tile(owned, pixels[within.slices()])
        if on_progress is not None:
            on_progress(tile.index + 1, total, tile.window.clipped(height, width))

    parallel = max(1, options.parallel)
    in_flight: deque[tuple[Tile, Awaitable]] = deque()
    try:
        for tile in plan:
            if cancelled is not None and cancelled():
                raise Cancelled(tile.index, total)
            patch = cut(source, tile.window, options.margin)
            # One at a time, the coroutine is awaited at once (no event loop needed); more, and
            # each runs as a task so that its predict starts before the older ones finish.
            running = asyncio.ensure_future(predict(patch)) if parallel > 1 else predict(patch)
            in_flight.append((tile, running))
            if len(in_flight) >= parallel:
                await finish(*in_flight.popleft())
        while in_flight:
            await finish(*in_flight.popleft())
    finally:
        for _, running in in_flight:  # left unread after an error: let them end quietly
            if isinstance(running, asyncio.Future):
                running.add_done_callback(_discard)
            else:
                running.close()
    stitcher.finish()
    if channels == 4:
        output[..., 3] = resize_alpha(image[..., 3], scale)
    return output


def _discard(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()  # marks it retrieved: no "exception was never retrieved" noise
