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
