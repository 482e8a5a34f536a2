"""The stitcher writes uint8 through a band; constant tiles give a constant image."""

import numpy as np
import pytest

from upscale import stitch
from upscale.stitch import Stitcher, enlarge_into, reduce_into
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


def test_overlapping_tiles_hand_over_gradually_not_at_a_cut():
    """Two tiles of different constants: across their overlap the output steps through values
    between them, each pixel a convex mix (a hard cut would give only the two constants)."""
    plan = TilePlan(1, 48, 32, 8, 1)
    assert len(plan) == 2
    out = np.zeros((1, 48, 3), np.uint8)
    stitcher = Stitcher(out, 32)
    for tile, value in zip(plan, (40, 240), strict=True):
        stitcher.add(tile, np.full((32, 32, 3), value, np.uint8), 1)
    stitcher.finish()
    row = out[0, :, 0].astype(int)
    assert (np.diff(row) >= 0).all() and row[0] == 40 and row[-1] == 240
    between = row[(row > 40) & (row < 240)]
    assert len(between) >= 4, row


# --- reducing the network's output (a x4 network serving x2) ------------------------------


@pytest.mark.parametrize(("height", "width"), [(1, 1), (2, 7), (45, 30), (130, 3)])
@pytest.mark.parametrize("factor", [2, 3, 4])
def test_reduce_is_pillows_bilinear_to_within_a_level(height, width, factor):
    """Pillow's BILINEAR at a whole factor (a triangle, renormalised at the edges), in numpy:
    the worker has no Pillow unless a file was decoded. Pillow rounds between its two passes,
    hence one level."""
    from PIL import Image

    image = np.random.default_rng(factor).integers(
        0, 256, (height * factor, width * factor, 3), np.uint8)
    mine = reduce_into(image, np.empty((height, width, 3), np.uint8), factor)
    pillow = np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))
    assert np.abs(mine.astype(int) - pillow).max() <= 1


def test_reduce_works_in_bands_with_the_whole_images_edges(monkeypatch):
    image = np.random.default_rng(7).integers(0, 256, (2 * 75, 2 * 20, 3), np.uint8)
    whole = reduce_into(image, np.empty((75, 20, 3), np.uint8), 2)
    monkeypatch.setattr(stitch, "REDUCE_BAND_ROWS", 4)
    banded = reduce_into(image, np.empty((75, 20, 3), np.uint8), 2)
    np.testing.assert_array_equal(banded, whole)


def test_reduce_keeps_a_constant_and_a_ramp_inside_the_edges():
    flat = np.full((8, 12, 3), 77, np.uint8)
    assert (reduce_into(flat, np.empty((4, 6, 3), np.uint8), 2) == 77).all()
    ramp = np.ascontiguousarray(np.broadcast_to(
        np.arange(0, 256, 2, dtype=np.uint8)[None, :, None], (6, 128, 3)))
    halved = reduce_into(ramp, np.empty((3, 64, 3), np.uint8), 2)
    # pixels 2i and 2i + 1 hold 4i and 4i + 2: the filter is centred between them
    np.testing.assert_array_equal(halved[:, 1:-1], np.broadcast_to(
        (4 * np.arange(1, 63) + 1)[None, :, None], (3, 62, 3)))


def test_reduce_refuses_a_target_of_another_size():
    with pytest.raises(ValueError, match="is not 2 times"):
        reduce_into(np.zeros((10, 10, 3), np.uint8), np.zeros((4, 5, 3), np.uint8), 2)


# The stitcher, decided from data: on a real model the blend is closer to the whole-image
# result at the seams than writing each tile's owned region straight into the output.
# Measured with realesrgan-anime-x4 (numpy reference), 64 px crops, 32 px tiles, seam pixels:
# padding 2: blend wins by 0.63-0.79 dB; padding 4: 0.46-0.62 dB; padding 12 (the model's
# own): equal. span-x2 (96 px crops, 48 px tiles): 0.0-0.4 dB at padding 2-4.
BLEND_MARGIN_DB = 0.25


def _seam_psnr(model, crop, patch, padding, scale):
    """PSNR at the seams of the blended and the hard-cut result against the whole-image one."""
    from tests.unit.test_pipeline import run_in_loop
    from upscale.pipeline import Options, upscale

    whole = model(crop)
    cut = np.zeros_like(whole)

    async def predict(tile):
        return model(tile)

    def paint(region, pixels):
        cut[region.slices()] = pixels

    blended = run_in_loop(upscale(crop, predict, Options(scale, patch, padding), on_tile=paint))
    plan = TilePlan(*crop.shape[:2], patch, padding, scale)
    seams = np.zeros(whole.shape[:2], bool)
    reach = (padding + 1) * scale
    for tile in plan:
        owned = plan.owned(tile)
        for edge in (owned.y, owned.y + owned.height):
            if 0 < edge < whole.shape[0]:
                seams[max(0, edge - reach):edge + reach, :] = True
        for edge in (owned.x, owned.x + owned.width):
            if 0 < edge < whole.shape[1]:
                seams[:, max(0, edge - reach):edge + reach] = True

    def psnr(a):
        mse = np.mean((a[seams].astype(np.float64) - whole[seams]) ** 2)
        return 10 * np.log10(255**2 / mse)

    return psnr(blended), psnr(cut)


@pytest.mark.parametrize("padding", [2, 4])
def test_the_blend_beats_a_hard_cut_at_the_seams_of_a_real_model(ncnn_by_id, photos, padding):
    from PIL import Image

    from sitebuild import models
    from tests.ncnn_reference import NcnnNet

    manifest = next(m for m in models.load_manifests() if m["id"] == "realesrgan-anime-x4")
    param, weights = ncnn_by_id[manifest["id"]]
    net = NcnnNet.load(param.read_text(), weights.read_bytes())
    peak = manifest["inputRange"][1]

    def model(rgb):
        out = net.forward(rgb.astype(np.float32) / 255 * peak)
        return np.clip(np.round(out / peak * 255), 0, 255).astype(np.uint8)

    for name in ("astronaut.png", "chelsea.png", "coffee.png"):
        image = np.asarray(Image.open(photos[name]).convert("RGB"))
        top, left = (image.shape[0] - 64) // 2, (image.shape[1] - 64) // 2
        crop = np.ascontiguousarray(image[top:top + 64, left:left + 64])
        blend, cut = _seam_psnr(model, crop, 32, padding, 4)
        assert blend >= cut + BLEND_MARGIN_DB, (name, blend, cut)


@pytest.mark.parametrize("height, width, factor", [(1, 1, 2), (5, 7, 2), (31, 17, 3), (64, 65, 4),
                                                   (3, 200, 8), (150, 150, 2)])
def test_the_plain_enlargement_is_pillows_bicubic_pixel_for_pixel(height, width, factor):
    """What auto gives a faint file must be bicubic exactly as the bench scores it (Pillow's
    BICUBIC, fixed point, across then down): 0 dB from it, not about 0."""
    from PIL import Image

    pixels = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), np.uint8)
    pillow = np.asarray(Image.fromarray(pixels).resize((width * factor, height * factor),
                                                       Image.Resampling.BICUBIC))
    out = np.zeros((height * factor, width * factor, 4), np.uint8)
    enlarge_into(pixels, out[..., :3], factor)
    assert np.array_equal(out[..., :3], pillow)
    assert (out[..., 3] == 0).all()


def test_the_plain_enlargement_works_in_bands_and_refuses_a_wrong_target(monkeypatch):
    monkeypatch.setattr(stitch, "REDUCE_BAND_ROWS", 3)
    from PIL import Image

    pixels = np.random.default_rng(5).integers(0, 256, (20, 9, 3), np.uint8)
    pillow = np.asarray(Image.fromarray(pixels).resize((18, 40), Image.Resampling.BICUBIC))
    assert np.array_equal(enlarge_into(pixels, np.empty((40, 18, 3), np.uint8), 2), pillow)
    with pytest.raises(ValueError, match="is not 2 times"):
        enlarge_into(pixels, np.empty((40, 19, 3), np.uint8), 2)
