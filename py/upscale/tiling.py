"""Tile plans: every model input has the same shape; overlaps blend with smooth weights.

A plan is pure data computed from the image size, the patch size (the model's input side,
constant for every tile, so WebGL compiles one program) and the padding (context each tile
reads beyond the part of the output it owns). Windows step by `patch - 2 * padding`; the last
one is shifted back to the edge instead of shrinking, and an image smaller than a patch is
padded up to one (`pad_up`). Neighbouring tiles hand over inside their overlap through a
raised-cosine ramp, placed mid-overlap so that each tile's least reliable border pixels get
no weight. Along each axis the weights of all windows sum to exactly one everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .errors import BAD_INTEGER, PATCH_TOO_SMALL, InvalidOptions

MAX_PATCH = 2048


@dataclass(frozen=True)
class Region:
    """The rectangle rows [y, y + height) x columns [x, x + width)."""

    y: int
    x: int
    height: int
    width: int

    def slices(self) -> tuple[slice, slice]:
        return slice(self.y, self.y + self.height), slice(self.x, self.x + self.width)

    def scaled(self, factor: int) -> Region:
        """The same rectangle in an image `factor` times larger."""
        return Region(self.y * factor, self.x * factor, self.height * factor, self.width * factor)

    def shifted(self, dy: int, dx: int) -> Region:
        """The same rectangle moved by (dy, dx)."""
        return Region(self.y + dy, self.x + dx, self.height, self.width)

    def clipped(self, height: int, width: int) -> Region:
        """The part of this rectangle inside an image of height x width (origin-anchored)."""
        return Region(self.y, self.x, max(0, min(self.height, height - self.y)),
                      max(0, min(self.width, width - self.x)))


@dataclass(frozen=True)
class Span:
    """One window along one axis: input [start, start + size) and its output blend weights."""

    start: int
    size: int
    weights: np.ndarray  # float32, size * scale values: this window's share of each output px


def window_starts(length: int, size: int, padding: int) -> list[int]:
    """Window starts covering [0, length): regular steps, the last one flush with the end."""
    if length <= size:
        return [0]
    step = size - 2 * padding
    starts = list(range(0, length - size, step))
    starts.append(length - size)
    return starts


def _rise(positions: np.ndarray, low: float, high: float) -> np.ndarray:
    """0 before `low`, 1 from `high` on, a raised cosine in between (a step if low == high)."""
    if high <= low:
        return (positions >= low).astype(np.float64)
    u = np.clip((positions - low) / (high - low), 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * u)


def axis_spans(length: int, size: int, padding: int, scale: int) -> list[Span]:
    """The windows along one axis with weights that sum to one at every output pixel."""
    starts = window_starts(length, size, padding)
    # A ramp no wider than half a step keeps neighbouring hand-overs from overlapping, so at
    # most two windows share any pixel and their weights are r and 1 - r.
    ramp = min(padding, (size - 2 * padding + 1) // 2)
    zones = []
    for left, right in zip(starts, starts[1:], strict=False):
        middle = (right + left + size) / 2
        zones.append(((middle - ramp / 2) * scale, (middle + ramp / 2) * scale))
    spans = []
    for i, start in enumerate(starts):
        centres = (start * scale + np.arange(size * scale)) + 0.5
        weight = np.ones(size * scale)
        if i > 0:
            weight *= _rise(centres, *zones[i - 1])
        if i < len(starts) - 1:
            weight *= 1.0 - _rise(centres, *zones[i])
        spans.append(Span(start, size, weight.astype(np.float32)))
    return spans


@dataclass(frozen=True)
class Tile:
    """One model call on `window` of the padded-up image; its result lands on the window
    scaled up, weighted by `weights()`."""

    index: int
    window: Region
    rows: Span
    cols: Span

    def weights(self) -> np.ndarray:
        """This tile's share of each output pixel (separable: rows x columns)."""
        return np.outer(self.rows.weights, self.cols.weights)


def check_integer(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) \
            or not low <= value <= high:
        raise InvalidOptions(BAD_INTEGER.format(name=name, low=low, high=high, value=value))
    return int(value)


@dataclass(frozen=True)
class TilePlan:
    """How an image of height x width is cut into patch x patch model inputs."""

    height: int
    width: int
    patch: int
    padding: int
    scale: int

    def __post_init__(self) -> None:
        check_integer("height", self.height, 1, 1 << 20)
        check_integer("width", self.width, 1, 1 << 20)
        check_integer("patchSize", self.patch, 1, MAX_PATCH)
        check_integer("padding", self.padding, 0, MAX_PATCH)
        check_integer("scale", self.scale, 1, 16)
        if self.patch <= 2 * self.padding:
            raise InvalidOptions(PATCH_TOO_SMALL.format(patch_size=self.patch,
                                                        padding=self.padding))

    @cached_property
    def row_spans(self) -> list[Span]:
        return axis_spans(self.height, self.patch, self.padding, self.scale)

    @cached_property
    def col_spans(self) -> list[Span]:
        return axis_spans(self.width, self.patch, self.padding, self.scale)

    def __len__(self) -> int:
        return len(self.row_spans) * len(self.col_spans)

    def __iter__(self) -> Iterator[Tile]:
        """Tiles in row-major order, the order the stitcher finishes rows in."""
        index = 0
        for rows in self.row_spans:
            for cols in self.col_spans:
                window = Region(rows.start, cols.start, self.patch, self.patch)
                yield Tile(index, window, rows, cols)
                index += 1

    @cached_property
    def _row_handovers(self) -> list[int]:
        return _handovers(self.row_spans, self.scale)

    @cached_property
    def _col_handovers(self) -> list[int]:
        return _handovers(self.col_spans, self.scale)

    def owned(self, tile: Tile) -> Region:
        """The output pixels where `tile` has the larger share, clipped to the output.

        The owned regions of all tiles cover the output exactly once, so painting each tile's
        owned part as it finishes builds a preview of the whole image with no gaps.
        """
        row, col = divmod(tile.index, len(self.col_spans))
        top, bottom = _owned_range(self._row_handovers, row, self.height * self.scale)
        left, right = _owned_range(self._col_handovers, col, self.width * self.scale)
        return Region(top, left, bottom - top, right - left)

    @property
    def padded_shape(self) -> tuple[int, int]:
        """The image size after padding up to at least one patch per axis."""
        return max(self.height, self.patch), max(self.width, self.patch)

    def overhead(self) -> float:
        """Model pixels computed per image pixel (1.0 would be a single exact-size predict)."""
        return len(self) * self.patch**2 / (self.height * self.width)


AUTO_SMALLEST = 64  # below this a tile costs more per pixel than it saves in overlap
AUTO_STEP = 8


def choose_patch(height: int, width: int, padding: int, parallel: int, largest: int) -> int:
    """The patch size that finishes an image soonest on `parallel` equal workers.

    Each worker runs ceil(tiles / parallel) tiles one after another, and a tile costs about
    its area (measured on WASM: flat per pixel from 96 to 512 px), so minimise rounds x
    patch². Larger patches mean fewer overlaps but coarser sharing; `largest` bounds memory.
    Ties go to the smaller patch.
    """
    check_integer("parallel", parallel, 1, 64)
    largest = max(AUTO_SMALLEST, largest, 2 * padding + AUTO_STEP)
    best = None
    for patch in range(max(AUTO_SMALLEST, 2 * padding + AUTO_STEP), largest + 1, AUTO_STEP):
        tiles = len(window_starts(height, patch, padding)) * len(
            window_starts(width, patch, padding))
        cost = -(-tiles // parallel) * patch * patch
        if best is None or cost < best[0]:
            best = (cost, patch)
        if patch >= max(height, width):
            break  # one tile already: larger only pads more
    return best[1]


def _handovers(spans: list[Span], scale: int) -> list[int]:
    """Output index where each window hands over to the next: the first pixel of their
    overlap at which the later window weighs more."""
    points = []
    for a, b in zip(spans, spans[1:], strict=False):
        low, high = b.start * scale, (a.start + a.size) * scale
        ours = a.weights[low - a.start * scale : high - a.start * scale]
        later = np.flatnonzero(b.weights[: high - low] > ours)
        points.append(low + (int(later[0]) if later.size else high - low))
    return points


def _owned_range(handovers: list[int], index: int, length: int) -> tuple[int, int]:
    start = handovers[index - 1] if index > 0 else 0
    stop = handovers[index] if index < len(handovers) else length
    return min(start, length), min(stop, length)


def cut(image: np.ndarray, window: Region, margin: int = 0) -> np.ndarray:
    """A contiguous copy of `window` of `image` and `margin` pixels around it; beyond the
    image's edge the edge pixels repeat (what a network with unpadded convolutions, such as
    waifu2x, expects there)."""
    if not margin:
        return np.ascontiguousarray(image[window.slices()])
    rows = np.clip(np.arange(window.y - margin, window.y + window.height + margin), 0,
                   image.shape[0] - 1)
    cols = np.clip(np.arange(window.x - margin, window.x + window.width + margin), 0,
                   image.shape[1] - 1)
    return image[rows[:, None], cols]


def pad_up(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Extend `image` to at least height x width by mirroring it at the bottom and right edge.

    Returns the image itself (no copy) when it is already large enough.
    """
    extra_y = max(0, height - image.shape[0])
    extra_x = max(0, width - image.shape[1])
    if not extra_y and not extra_x:
        return image
    pad = [(0, extra_y), (0, extra_x)] + [(0, 0)] * (image.ndim - 2)
    # 'symmetric' repeats the edge pixel, so a 1-pixel image pads to a flat patch; numpy
    # mirrors again when the pad is longer than the image.
    return np.pad(image, pad, mode="symmetric")

