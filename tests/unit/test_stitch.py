"""The stitcher writes uint8 through a band; constant tiles give a constant image."""

import numpy as np

from upscale.stitch import Stitcher
from upscale.tiling import TilePlan


def test_constant_tiles_blend_to_the_same_constant():
    plan = TilePlan(90, 130, 32, 6, 3)
    out = np.zeros((270, 390, 3), np.uint8)
    stitcher = Stitcher(out, 32 * 3)
    for tile in plan:
        stitcher.add(tile, np.full((96, 96, 3), 200, np.uint8), 3)
    stitcher.finish()
    assert (out == 200).all()
    assert stitcher.band.nbytes < out.size * 4, "no full-size float32 buffer"


def test_writes_into_a_view_of_an_rgba_output():
    plan = TilePlan(40, 40, 16, 2, 2)
    out = np.zeros((80, 80, 4), np.uint8)
    stitcher = Stitcher(out[..., :3], 32)
    for tile in plan:
        stitcher.add(tile, np.full((32, 32, 3), 9, np.uint8), 2)
    stitcher.finish()
    assert (out[..., :3] == 9).all() and (out[..., 3] == 0).all()
