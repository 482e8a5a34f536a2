"""Accumulate weighted model outputs into a uint8 image, one band of rows at a time.

Tiles arrive in row-major order. Rows above the current tile row's top can no longer change,
so they are rounded into the output and dropped from the float32 band; the band is only one
tile-row tall, never the full output.
"""

from __future__ import annotations

import numpy as np

from .tiling import Tile


class Stitcher:
    """Writes blended tiles into `target`, a (height, width, channels) uint8 array or view."""

    def __init__(self, target: np.ndarray, band_height: int):
        self.target = target
        self.height, self.width, channels = target.shape
        self.band = np.zeros((min(band_height, self.height), self.width, channels), np.float32)
        self.top = 0  # output row that band[0] stands for

    def add(self, tile: Tile, pixels: np.ndarray, scale: int) -> None:
        """Blend the model's output for `tile` (patch*scale square) into the band."""
        region = tile.window.scaled(scale)
        self._advance(region.y)
        visible = region.clipped(self.height, self.width)
        weights = tile.weights()[: visible.height, : visible.width, None]
        rows = slice(visible.y - self.top, visible.y - self.top + visible.height)
        cols = slice(visible.x, visible.x + visible.width)
        self.band[rows, cols] += pixels[: visible.height, : visible.width] * weights

    def _advance(self, new_top: int) -> None:
        """Finish rows [top, new_top): no later tile touches them."""
        done = new_top - self.top
        if done <= 0:
            return
        self._flush(done)
        kept = self.band.shape[0] - done
        if kept > 0:
            self.band[:kept] = self.band[done:]
            self.band[kept:] = 0
        else:
            self.band[:] = 0
        self.top = new_top

    def _flush(self, rows: int) -> None:
        rows = min(rows, self.height - self.top, self.band.shape[0])
        out = self.target[self.top : self.top + rows]
        np.clip(np.rint(self.band[:rows]), 0, 255, out=self.band[:rows])
        out[...] = self.band[:rows]

    def finish(self) -> np.ndarray:
        self._flush(self.height - self.top)
        self.top = self.height
        return self.target



# Rows of the result reduced at a time: the float32 work holds this many rows (times the factor,
# plus the filter's reach) of the network's output, never all of it.
REDUCE_BAND_ROWS = 64


def _triangle_taps(factor: int) -> tuple[np.ndarray, np.ndarray]:
    """The input offsets (from `factor * i`) and weights of result pixel i: a triangle twice
    `factor` wide on the pixel's centre, as Pillow's BILINEAR resize filters by a whole factor.
    For 2: offsets -1..2, weights 1, 3, 3, 1 (over 8)."""
    offsets = np.arange(-factor, 2 * factor)
    weights = 1 - np.abs(offsets + 0.5 - factor / 2) / factor
    keep = weights > 0
    return offsets[keep], weights[keep].astype(np.float32)


def _reduce_axis(part: np.ndarray, axis: int, factor: int, first: int, count: int,
                 start: int, length: int) -> np.ndarray:
    """Result pixels [first, first + count) along `axis`, from `part`: the input's pixels
    [start, start + part.shape[axis]) of `length` along that axis (float32), which must hold
    every tap inside the input. Taps beyond the input are left out and the rest renormalised,
    as Pillow does at the edges."""
    offsets, weights = _triangle_taps(factor)
    shape = [1] * part.ndim
    shape[axis] = count
    acc = np.zeros(part.shape[:axis] + (count,) + part.shape[axis + 1:], np.float32)
    total = np.zeros(shape, np.float32)
    base = factor * np.arange(first, first + count)
    for offset, weight in zip(offsets, weights, strict=True):
        index = base + offset
        share = (weight * ((index >= 0) & (index < length))).reshape(shape)
        local = np.clip(index, start, start + part.shape[axis] - 1) - start
        acc += np.take(part, local, axis=axis) * share
        total += share
    return acc / total


def reduce_into(source: np.ndarray, target: np.ndarray, factor: int) -> np.ndarray:
    """Write `source` (H, W, C uint8) made `factor` times smaller into `target` (H / factor,
    W / factor, C uint8, or a view), a band of rows at a time: the stitched output of a network
    run above the scale asked for (a x4 network serving x2). The filter is a triangle
    (Pillow's BILINEAR at a whole factor): of Lanczos, bicubic, Hamming, box and bilinear, with
    and without reducing_gap, it gave the best PSNR-Y after realesr-general-x4v3 on blurred
    JPEG photos (README, "Models")."""
    height, width = target.shape[:2]
    if source.shape[:2] != (height * factor, width * factor):
        raise ValueError(f"{source.shape[:2]} is not {factor} times {target.shape[:2]}")
    offsets, _ = _triangle_taps(factor)
    for top in range(0, height, REDUCE_BAND_ROWS):
        rows = min(REDUCE_BAND_ROWS, height - top)
        low = max(0, factor * top + int(offsets[0]))
        high = min(source.shape[0], factor * (top + rows - 1) + int(offsets[-1]) + 1)
        band = source[low:high].astype(np.float32)
        tall = _reduce_axis(band, 0, factor, top, rows, low, source.shape[0])
        out = _reduce_axis(tall, 1, factor, 0, width, 0, source.shape[1])
        np.rint(out, out=out)
        np.clip(out, 0, 255, out=out)
        target[top:top + rows] = out
    return target


# --- a plain enlargement, for files no model improves (routing.plain_reason) ---------------

# Pillow's fixed-point resampling of 8-bit images: weights in 22 fractional bits.
_PRECISION_BITS = 22


def _bicubic(x: np.ndarray) -> np.ndarray:
    """Pillow's bicubic kernel (a = -0.5)."""
    a = -0.5
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1, near, np.where(x < 2, far, 0.0))


def _bicubic_taps(length: int, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """(input indices, fixed-point weights), each (length * factor, 4): Pillow's coefficients
    for enlarging `length` pixels `factor` times with BICUBIC (support 2; taps past the edge
    left out and the rest renormalised, then rounded to _PRECISION_BITS as Pillow rounds)."""
    centre = (np.arange(length * factor) + 0.5) / factor
    first = np.maximum(np.trunc(centre - 2 + 0.5), 0).astype(np.intp)  # np.take's, in wasm32 too
    last = np.minimum(np.trunc(centre + 2 + 0.5), length).astype(np.intp)
    taps = first[:, None] + np.arange(4)
    weights = np.where(taps < last[:, None], _bicubic(taps - centre[:, None] + 0.5), 0.0)
    weights /= weights.sum(axis=1, keepdims=True)
    scaled = weights * (1 << _PRECISION_BITS)
    fixed = np.where(scaled < 0, np.trunc(scaled - 0.5), np.trunc(scaled + 0.5))
    return np.minimum(taps, length - 1), fixed.astype(np.int32)


def _resample_axis(pixels: np.ndarray, axis: int, index: np.ndarray,
                   fixed: np.ndarray) -> np.ndarray:
    """`pixels` (uint8) resampled along `axis` (0 or 1) with taps `index` and weights `fixed`
    (_bicubic_taps', or rows of them), rounded and clipped to uint8 as Pillow does after each
    pass."""
    shape = [1] * pixels.ndim
    shape[axis] = len(index)
    total = np.full(pixels.shape[:axis] + (len(index),) + pixels.shape[axis + 1:],
                    1 << (_PRECISION_BITS - 1), np.int32)
    for tap in range(index.shape[1]):
        total += np.take(pixels, index[:, tap], axis=axis).astype(np.int32) \
            * fixed[:, tap].reshape(shape)
    np.right_shift(total, _PRECISION_BITS, out=total)
    return np.clip(total, 0, 255).astype(np.uint8)


def enlarge_into(source: np.ndarray, target: np.ndarray, factor: int) -> np.ndarray:
    """Write `source` (H, W, C uint8) enlarged `factor` times into `target` (H * factor,
    W * factor, C uint8, or a view), as Pillow's BICUBIC resize computes it (across, then down;
    each pass rounded to uint8), a band of rows at a time: the result where no model betters
    bicubic (`auto` on a faint, lightly compressed photo)."""
    height, width = source.shape[:2]
    if target.shape[:2] != (height * factor, width * factor):
        raise ValueError(f"{target.shape[:2]} is not {factor} times {source.shape[:2]}")
    across = _resample_axis(source, 1, *_bicubic_taps(width, factor))
    index, fixed = _bicubic_taps(height, factor)
    for top in range(0, height * factor, REDUCE_BAND_ROWS * factor):
        rows = slice(top, min(top + REDUCE_BAND_ROWS * factor, height * factor))
        target[rows] = _resample_axis(across, 0, index[rows], fixed[rows])
    return target
