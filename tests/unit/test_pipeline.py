"""The pipeline with a fake nearest-neighbour model returns exactly the NN enlargement."""

import asyncio
import concurrent.futures

import numpy as np
import pytest

from upscale.errors import (
    BAD_REDUCE,
    PATCH_TOO_SMALL,
    Cancelled,
    InvalidImage,
    InvalidOptions,
    ModelOutputError,
)
from upscale.pipeline import Options, enlarge_plainly, upscale
from upscale.stitch import reduce_into
from upscale.tiling import TilePlan


def run_sync(coroutine):
    """Drive a coroutine whose awaits never suspend (the fake models here never wait).

    Not asyncio.run: in a full run the e2e tests' Playwright loop may own this thread.
    """
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise AssertionError("the pipeline suspended although the fake model never waits")


def nearest(scale):
    calls = []

    async def predict(tile):
        assert tile.flags.c_contiguous and tile.dtype == np.uint8
        calls.append(tile.shape)
        return tile.repeat(scale, axis=0).repeat(scale, axis=1)

    predict.calls = calls
    return predict


def enlarge(image, scale):
    return image.repeat(scale, axis=0).repeat(scale, axis=1)


def random_image(height, width, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), np.uint8)


def run(image, scale, patch, padding, **kwargs):
    predict = nearest(scale)
    out = run_sync(upscale(image, predict, Options(scale, patch, padding), **kwargs))
    return out, predict.calls


SHAPES = [(1, 1), (1, 37), (37, 1), (7, 300), (32, 32), (33, 32), (32, 33), (100, 64), (65, 129)]


@pytest.mark.parametrize(("height", "width"), SHAPES)
@pytest.mark.parametrize(("patch", "padding"), [(32, 0), (32, 4), (32, 8), (16, 7), (48, 11)])
@pytest.mark.parametrize("scale", [2, 3])
def test_fake_model_gives_exact_nearest_neighbour(height, width, patch, padding, scale):
    image = random_image(height, width, seed=height * 1000 + width)
    out, calls = run(image, scale, patch, padding)
    np.testing.assert_array_equal(out, enlarge(image, scale))
    assert set(calls) == {(patch, patch, 3)}, "every tile has the same shape"


def test_exactly_one_tile_and_one_tile_plus_one_pixel():
    image = random_image(64, 64)
    _, calls = run(image, 2, 64, 8)
    assert len(calls) == 1
    out, calls = run(random_image(65, 65), 2, 64, 8)
    assert len(calls) == 4
    np.testing.assert_array_equal(out, enlarge(random_image(65, 65), 2))


def test_alpha_is_kept_and_opaque_stays_opaque():
    rgba = random_image(20, 30, 4)
    rgba[..., 3] = 255
    out, _ = run(rgba, 2, 16, 4)
    assert out.shape == (40, 60, 4)
    assert (out[..., 3] == 255).all()
    np.testing.assert_array_equal(out[..., :3], enlarge(rgba[..., :3], 2))
    rgba[:10, :, 3] = 0
    out, _ = run(rgba, 2, 16, 4)
    assert (out[:16, :, 3] == 0).all()
    assert (out[24:, :, 3] == 255).all()


def test_progress_reports_every_tile_in_order():
    seen = []
    run(random_image(50, 70), 2, 32, 4, on_progress=lambda d, t, w: seen.append((d, t, w)))
    total = len(TilePlan(50, 70, 32, 4, 2))
    assert [d for d, _, _ in seen] == list(range(1, total + 1))
    assert all(t == total for _, t, _ in seen)
    assert all(w.y + w.height <= 50 and w.x + w.width <= 70 for _, _, w in seen)


def test_cancel_stops_between_tiles():
    asked = []

    def cancelled():
        asked.append(1)
        return len(asked) > 2

    with pytest.raises(Cancelled, match=r"after 2 of \d+ tiles") as stopped:
        run(random_image(100, 100), 2, 32, 4, cancelled=cancelled)
    assert len(asked) == 3
    assert stopped.value.done == 2 and stopped.value.total > 2


def test_bad_model_output_is_named():
    async def wrong(tile):
        return tile

    with pytest.raises(ModelOutputError, match="expected"):
        run_sync(upscale(random_image(8, 8), wrong, Options(2, 16, 2)))


@pytest.mark.parametrize(("patch", "padding"), [(16, 8), (10, 5), (4, 9)])
def test_padding_must_leave_room(patch, padding):
    with pytest.raises(InvalidOptions) as error:
        run(random_image(8, 8), 2, patch, padding)
    assert str(error.value) == PATCH_TOO_SMALL.format(patch_size=patch, padding=padding)


@pytest.mark.parametrize("bad", [0, -1, 2.5, "64", True, None])
def test_patch_size_must_be_a_positive_integer(bad):
    with pytest.raises(InvalidOptions, match="patchSize must be a whole number"):
        TilePlan(8, 8, bad, 0, 2)


def test_rejects_images_that_are_not_rgb_uint8():
    with pytest.raises(InvalidImage):
        run(np.zeros((4, 4), np.uint8), 2, 16, 2)
    with pytest.raises(InvalidImage):
        run(np.zeros((4, 4, 3), np.float32), 2, 16, 2)


def test_on_tile_paints_every_output_pixel_once_with_model_pixels():
    image = random_image(70, 45)
    painted = np.zeros((140, 90, 3), np.uint8)
    count = np.zeros((140, 90), np.int32)

    def paint(region, pixels):
        assert pixels.shape == (region.height, region.width, 3)
        painted[region.slices()] = pixels
        count[region.slices()] += 1

    out, _ = run(image, 2, 32, 4, on_tile=paint)
    np.testing.assert_array_equal(count, 1)
    np.testing.assert_array_equal(painted, out)


def run_in_loop(coroutine):
    """asyncio.run on a thread of its own (Playwright's loop may own this one)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@pytest.mark.parametrize("parallel", [2, 3, 5])
def test_parallel_tiles_overlap_and_stitch_the_same(parallel):
    """Tiles finishing out of order (random delays) still stitch to the same image, with
    exactly `parallel` predicts running at once."""
    image = random_image(70, 90)
    rng = np.random.default_rng(parallel)
    running = {"now": 0, "most": 0}

    async def predict(tile):
        running["now"] += 1
        running["most"] = max(running["most"], running["now"])
        await asyncio.sleep(float(rng.uniform(0, 0.004)))
        running["now"] -= 1
        return tile.repeat(2, axis=0).repeat(2, axis=1)

    done = []
    out = run_in_loop(upscale(image, predict, Options(2, 32, 4, parallel),
                              on_progress=lambda d, t, w: done.append(d)))
    assert np.array_equal(out, enlarge(image, 2))
    assert running["most"] == parallel
    assert done == list(range(1, len(TilePlan(70, 90, 32, 4, 2)) + 1))


def test_parallel_error_and_cancel_leave_no_task_behind():
    """A failing tile surfaces as itself; the tiles still running end quietly."""
    image = random_image(64, 64)
    calls = []

    async def predict(tile):
        calls.append(1)
        number = len(calls)
        await asyncio.sleep(0.002 * number)
        if number == 2:
            raise RuntimeError("tile two failed")
        return tile.repeat(2, axis=0).repeat(2, axis=1)

    async def both():
        with pytest.raises(RuntimeError, match="tile two failed"):
            await upscale(image, predict, Options(2, 16, 2, 3))
        stop = iter([False, False, True])
        with pytest.raises(Cancelled):
            await upscale(image, predict, Options(2, 16, 2, 3), cancelled=lambda: next(stop))
        await asyncio.sleep(0.1)  # the discarded tiles finish; nothing is left pending
        return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    assert run_in_loop(both()) == []


def box_mean(image, margin):
    """A valid (unpadded) box filter of side 2 * margin + 1: the output shrinks by the margin
    on each side, as waifu2x's unpadded convolutions do."""
    side = 2 * margin + 1
    height, width = image.shape[0] - 2 * margin, image.shape[1] - 2 * margin
    total = np.zeros((height, width, image.shape[2]), np.int64)
    for dy in range(side):
        for dx in range(side):
            total += image[dy : dy + height, dx : dx + width]
    return (total // side**2).astype(np.uint8)


@pytest.mark.parametrize(("height", "width"), [(1, 1), (20, 33), (64, 64), (70, 41)])
@pytest.mark.parametrize(("margin", "padding"), [(3, 0), (7, 0), (7, 4)])
def test_a_model_with_a_margin_gets_it_from_neighbours_and_repeated_edges(height, width,
                                                                         margin, padding):
    """Tiled, the result is the whole image filtered at once, its edge pixels repeated
    beyond it: each window arrives with `margin` real neighbouring pixels around it."""
    scale, patch = 2, 24
    image = random_image(height, width, seed=margin * 100 + height)
    shapes = []

    async def predict(tile):
        shapes.append(tile.shape)
        return enlarge(box_mean(tile, margin), scale)

    options = Options(scale, patch, padding, margin=margin)
    out = run_sync(upscale(image, predict, options))
    padded = np.pad(image, ((margin, margin), (margin, margin), (0, 0)), mode="edge")
    want = enlarge(box_mean(padded, margin), scale)
    assert out.shape == want.shape
    # An image smaller than a patch is first mirrored up to one (pad_up), so near its bottom
    # and right edges the filter sees mirrored pixels rather than repeated ones.
    rows = height if height >= patch else max(0, height - margin)
    cols = width if width >= patch else max(0, width - margin)
    np.testing.assert_array_equal(out[: rows * scale, : cols * scale],
                                  want[: rows * scale, : cols * scale])
    assert set(shapes) == {(patch + 2 * margin, patch + 2 * margin, 3)}


# --- a network run above the scale asked for, its output reduced -------------------------


@pytest.mark.parametrize(("height", "width"), [(1, 1), (7, 300), (33, 32), (65, 129)])
@pytest.mark.parametrize(("scale", "reduce"), [(4, 2), (4, 4), (3, 3)])
def test_a_reduced_result_is_the_networks_stitched_output_made_smaller(height, width, scale,
                                                                       reduce):
    """Tiled at the network's scale (the tiles are its), then reduced: the same as the whole
    network output reduced at once, input x (scale / reduce) in size."""
    image = random_image(height, width, seed=height + width)
    predict = nearest(scale)
    out = run_sync(upscale(image, predict, Options(scale, 32, 4, reduce=reduce)))
    want = reduce_into(enlarge(image, scale),
                       np.empty((height * scale // reduce, width * scale // reduce, 3),
                                np.uint8), reduce)
    np.testing.assert_array_equal(out, want)
    assert set(predict.calls) == {(32, 32, 3)}


def test_a_reduced_result_keeps_alpha_at_its_own_size():
    rgba = random_image(21, 30, 4)
    rgba[:10, :, 3] = 0
    rgba[10:, :, 3] = 255
    out = run_sync(upscale(rgba, nearest(4), Options(4, 16, 4, reduce=2)))
    assert out.shape == (42, 60, 4)
    assert (out[:16, :, 3] == 0).all() and (out[24:, :, 3] == 255).all()
    opaque = rgba.copy()
    opaque[..., 3] = 255
    out = run_sync(upscale(opaque, nearest(4), Options(4, 16, 4, reduce=2)))
    assert (out[..., 3] == 255).all()


def test_a_reduced_result_is_painted_once_over_by_the_tiles():
    """Each tile previews the result pixels whose last network pixel it owns: together they
    cover the result once, each region its tile's own output there, reduced."""
    image = random_image(70, 45)
    network = enlarge(image, 4)  # what every tile of the fake model returns, where it reads
    count = np.zeros((140, 90), np.int32)

    def paint(region, pixels):
        block = network[region.scaled(2).slices()]
        want = reduce_into(block, np.empty((region.height, region.width, 3), np.uint8), 2)
        np.testing.assert_array_equal(pixels, want)
        count[region.slices()] += 1

    run_sync(upscale(image, nearest(4), Options(4, 32, 5, reduce=2), on_tile=paint))
    np.testing.assert_array_equal(count, 1)


@pytest.mark.parametrize("bad", [0, 3, 2.0, True])
def test_reduce_must_divide_the_scale(bad):
    with pytest.raises(InvalidOptions) as error:
        run_sync(upscale(random_image(8, 8), nearest(4), Options(4, 16, 2, reduce=bad)))
    assert str(error.value) == BAD_REDUCE.format(scale=4, reduce=bad)


def test_a_plain_enlargement_is_bicubic_with_alpha_resized_as_a_model_run_resizes_it():
    from PIL import Image

    image = random_image(21, 34, 4, seed=8)
    image[..., 3] = np.where(np.arange(34) < 17, 255, 40)
    out = enlarge_plainly(image, 3)
    rgb = np.asarray(Image.fromarray(image[..., :3]).resize((102, 63), Image.Resampling.BICUBIC))
    assert out.shape == (63, 102, 4) and np.array_equal(out[..., :3], rgb)
    modelled, _ = run(image, 3, 16, 4)
    assert np.array_equal(out[..., 3], modelled[..., 3])
    assert enlarge_plainly(image[..., :3], 2).shape == (42, 68, 3)
    with pytest.raises(InvalidImage):
        enlarge_plainly(image[..., 0], 2)
