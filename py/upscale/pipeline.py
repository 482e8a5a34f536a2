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

from .errors import (
    BAD_REDUCE,
    BAD_SHAPE,
    MODEL_OUTPUT,
    Cancelled,
    InvalidImage,
    InvalidOptions,
    ModelOutputError,
)
from .imaging import resize_alpha
from .stitch import Stitcher, enlarge_into, reduce_into
from .tiling import Region, Tile, TilePlan, choose_patch, cut, pad_up

Predict = Callable[[np.ndarray], Awaitable[np.ndarray]]
Progress = Callable[[int, int, Region], None]
Paint = Callable[[Region, np.ndarray], None]


@dataclass(frozen=True)
class Options:
    scale: int  # the network's: the tiles' outputs are this many times larger
    patch_size: int | None = 128  # None: chosen per image (choose_patch), at most largest_patch
    padding: int = 16
    parallel: int = 1  # tiles in flight at once (one per tile worker)
    largest_patch: int = 320
    margin: int = 0  # pixels the model reads beyond its output on each side (waifu2x: 7)
    # The stitched output is made this many times smaller: a x4 network serving x2 (on blurred
    # photos realesr-general-x4v3 gains more that way than at x4). It must divide the scale.
    reduce: int = 1

    @property
    def result_scale(self) -> int:
        """How many times larger than its input the result is."""
        return self.scale // self.reduce

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
    """Return `image` (H, W, 3 or 4, uint8) enlarged `options.result_scale` times: the network
    enlarges `options.scale` times, and its stitched output is reduced `options.reduce` times.

    RGB goes through the model tile by tile; an alpha plane that is not fully opaque is
    resized with Pillow. `on_progress(done, total, window)` follows every tile, `window` being
    the input pixels that tile read (clipped to the image). `cancelled()` is asked before
    each tile; when it says yes, Cancelled is raised and no further tile starts (up to
    `parallel - 1` already handed out finish unread). A model with a `margin` gets each
    window with that many more pixels around it (edge pixels repeated beyond the image) and
    returns the window's output. `on_tile(region, pixels)`, for live
    previews, gets the result pixels each tile owns (RGB, unblended; where the output is
    reduced, the tile's own output reduced).

    Up to `options.parallel` predicts run at once; results are stitched in tile order.
    """
    _check_image(image)
    height, width, channels = image.shape
    options = options.for_image(height, width)
    scale, reduce = options.scale, options.reduce
    if isinstance(reduce, bool) or not isinstance(reduce, int) or reduce < 1 or scale % reduce:
        raise InvalidOptions(BAD_REDUCE.format(scale=scale, reduce=reduce))
    plan = TilePlan(height, width, options.patch_size, options.padding, scale)
    output = np.empty((height * options.result_scale, width * options.result_scale, channels),
                      np.uint8)
    # Reduced, the network's output is stitched whole first: the filter reads across tiles.
    network = output[..., :3] if reduce == 1 else np.empty((height * scale, width * scale, 3),
                                                           np.uint8)
    source = pad_up(image[..., :3], *plan.padded_shape)
    stitcher = Stitcher(network, plan.patch * scale)
    want = (plan.patch * scale, plan.patch * scale, 3)
    total = len(plan)

    async def finish(tile: Tile, running: Awaitable) -> None:
        pixels = await running
        if pixels.shape != want:
            raise ModelOutputError(MODEL_OUTPUT.format(got=pixels.shape, want=want))
        stitcher.add(tile, pixels, scale)
        if on_tile is not None:
            on_tile(*_preview(plan, tile, pixels, reduce))
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
    if reduce > 1:
        reduce_into(network, output[..., :3], reduce)
    _resize_alpha_into(image, output, options.result_scale)
    return output


def enlarge_plainly(image: np.ndarray, scale: int) -> np.ndarray:
    """`image` (H, W, 3 or 4, uint8) enlarged `scale` times with no model: RGB as Pillow's
    BICUBIC resize computes it, alpha as upscale() resizes it. `auto` gives this to files that
    every model measured enlarges worse (routing.plain_reason)."""
    _check_image(image)
    height, width, channels = image.shape
    output = np.empty((height * scale, width * scale, channels), np.uint8)
    enlarge_into(image[..., :3], output[..., :3], scale)
    _resize_alpha_into(image, output, scale)
    return output


def _check_image(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
        raise InvalidImage(BAD_SHAPE.format(shape=image.shape, dtype=image.dtype))


def _resize_alpha_into(image: np.ndarray, output: np.ndarray, scale: int) -> None:
    """An RGBA `image`'s alpha plane, resized with Pillow, into `output`'s."""
    if image.shape[2] == 4:
        output[..., 3] = resize_alpha(image[..., 3], scale)


def _preview(plan: TilePlan, tile: Tile, pixels: np.ndarray,
             reduce: int) -> tuple[Region, np.ndarray]:
    """The result pixels `tile` owns, and its own output there. Reduced, a tile owns the result
    rows and columns whose last network pixel it owns (so the tiles still cover the result
    once); their network pixels lie inside its output, whose edges are multiples of the scale."""
    owned = plan.owned(tile)
    if reduce > 1:
        top, left = owned.y // reduce, owned.x // reduce
        owned = Region(top, left, (owned.y + owned.height) // reduce - top,
                       (owned.x + owned.width) // reduce - left)
    scaled = owned.scaled(reduce).shifted(-tile.window.y * plan.scale, -tile.window.x * plan.scale)
    mine = pixels[scaled.slices()]
    if reduce > 1:
        mine = reduce_into(mine, np.empty((owned.height, owned.width, 3), np.uint8), reduce)
    return owned, mine


def _discard(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()  # marks it retrieved: no "exception was never retrieved" noise
