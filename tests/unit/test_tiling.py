"""Tile plans: constant shapes, full coverage, weights that sum to one."""

import heapq

import numpy as np
import pytest

from upscale.tiling import TilePlan, axis_spans, choose_patch, pad_up, window_starts


@pytest.mark.parametrize("length", [1, 5, 63, 64, 65, 100, 127, 128, 129, 300, 1000])
@pytest.mark.parametrize(("size", "padding"), [(64, 0), (64, 8), (64, 16), (64, 31), (17, 3)])
@pytest.mark.parametrize("scale", [1, 2, 4])
def test_axis_weights_partition_unity(length, size, padding, scale):
    spans = axis_spans(length, size, padding, scale)
    total = np.zeros(max(length, size) * scale)
    for span in spans:
        assert span.weights.shape == (size * scale,)
        assert span.start + size <= max(length, size), "windows stay inside the padded image"
        total[span.start * scale : (span.start + size) * scale] += span.weights
    np.testing.assert_allclose(total[: length * scale], 1.0, atol=1e-6)
    sharing = np.zeros_like(total)
    for span in spans:
        sharing[span.start * scale : (span.start + size) * scale] += span.weights > 0
    assert sharing.max() <= 2, "at most two windows share a pixel"


def test_windows_step_regularly_and_the_last_is_flush():
    assert window_starts(300, 64, 8) == [0, 48, 96, 144, 192, 236]
    assert window_starts(64, 64, 8) == [0]
    assert window_starts(10, 64, 8) == [0]


def test_weights_vanish_at_inner_tile_borders():
    first, second = axis_spans(200, 64, 16, 2)[:2]
    assert first.weights[0] == 1.0, "the image border belongs to the first tile alone"
    assert first.weights[-16:].max() == 0.0, "a tile's last pixels before a neighbour: no say"
    assert second.weights[:16].max() == 0.0


def test_pad_up_mirrors_and_leaves_big_images_alone():
    image = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert pad_up(image, 2, 3) is image
    padded = pad_up(image, 5, 4)
    assert padded.shape == (5, 4)
    np.testing.assert_array_equal(padded[:2, :3], image)
    np.testing.assert_array_equal(padded[2], image.reshape(2, 3)[1].tolist() + [5])
    assert (pad_up(np.full((1, 1, 3), 7, np.uint8), 64, 64) == 7).all()


def test_overhead_counts_model_pixels():
    assert TilePlan(128, 128, 128, 16, 2).overhead() == 1.0
    assert TilePlan(512, 512, 128, 16, 2).overhead() == pytest.approx(25 * 128**2 / 512**2)


@pytest.mark.parametrize(("height", "width"), [(1, 1), (40, 300), (129, 65), (300, 300)])
@pytest.mark.parametrize(("patch", "padding"), [(64, 0), (64, 16), (17, 3), (3, 1)])
@pytest.mark.parametrize("scale", [1, 3])
def test_owned_regions_cover_the_output_once(height, width, patch, padding, scale):
    plan = TilePlan(height, width, patch, padding, scale)
    cover = np.zeros((height * scale, width * scale), np.int32)
    for tile in plan:
        owned = plan.owned(tile)
        cover[owned.slices()] += 1
        inside = owned.shifted(-tile.window.y * scale, -tile.window.x * scale)
        assert inside.y >= 0 and inside.x >= 0, "a tile owns only pixels it predicted"
        assert inside.y + owned.height <= patch * scale
        assert inside.x + owned.width <= patch * scale
        rows, cols = inside.slices()
        for share in (tile.rows.weights[rows], tile.cols.weights[cols]):
            assert share.size == 0 or share.min() >= 0.5 - 1e-6, "the owner has the larger share"
    np.testing.assert_array_equal(cover, 1)


def _finish_time(height, width, patch, padding, parallel):
    """When the last of `parallel` workers is done, simulated: the plan's tiles are handed out
    in order to whichever worker is free first (as the pipeline does), each taking as long
    as its model input has pixels (measured on WASM: flat per pixel from 96 to 512 px)."""
    free = [0] * parallel
    for tile in TilePlan(height, width, patch, padding, 2):
        heapq.heappush(free, heapq.heappop(free) + tile.window.height * tile.window.width)
    return max(free)


@pytest.mark.parametrize("size", [1, 50, 128, 150, 256, 333, 512, 1000])
@pytest.mark.parametrize("parallel", [1, 2, 3, 4])
def test_chosen_patch_is_the_cheapest_candidate(size, parallel):
    """No other allowed patch (64..320 in steps of 8) finishes sooner on `parallel` workers."""
    chosen = choose_patch(size, size + 7, 8, parallel, 320)
    assert 64 <= chosen <= 320 and chosen % 8 == 0
    best = _finish_time(size, size + 7, chosen, 8, parallel)
    for patch in range(64, 321, 8):
        assert best <= _finish_time(size, size + 7, patch, 8, parallel), patch


def test_chosen_patch_shares_a_512_image_between_two_workers():
    """512 px on 2 workers: 4 tiles of 264, two each, within 7 % of the work of no overlap."""
    patch = choose_patch(512, 512, 8, 2, 320)
    assert (patch, len(TilePlan(512, 512, patch, 8, 2))) == (264, 4)
    assert _finish_time(512, 512, patch, 8, 2) / (512 * 512 / 2) < 1.07


def test_chosen_patch_leaves_room_for_the_padding():
    assert choose_patch(500, 500, 40, 2, 64) > 80
