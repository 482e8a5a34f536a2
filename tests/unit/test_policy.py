"""The tile rule and the job options, decided in Python from the facts the worker reports."""

import sys
import types

import pytest

from tests.unit.test_pipeline import run_in_loop
from upscale.errors import Cancelled, ImageTooLarge, InvalidOptions
from upscale.footprint import Footprint
from upscale.policy import (
    GPU_TILES_IN_FLIGHT,
    LIVE_ACTIVATIONS,
    SMALLEST_PATCH,
    TILE_MEMORY_BYTES,
    TileRule,
    check_patch,
    gpu_patch,
    gpu_side,
    largest_side,
    smaller_patch,
    tile_rule,
)

SLIM_X4 = {"id": "esrgan-slim-x4", "scale": 4, "patchSize": 64, "padding": 8}
WAIFU = {"id": "waifu2x-x2", "scale": 2, "patchSize": 128, "padding": 8, "margin": 7}
SLIM_WIDTHS = [32] * 10 + [48]


def test_webassembly_chooses_the_patch_per_image_within_an_output_tile_of_1024_px():
    for manifest in (SLIM_X4, WAIFU, {**SLIM_X4, "id": "x8", "scale": 8, "patchSize": 32}):
        rule = tile_rule(manifest, SLIM_WIDTHS, "wasm", 2, manifest["patchSize"])
        assert rule.patch is None and rule.max_patch is None and rule.parallel == 2
        assert manifest["patchSize"] <= rule.largest_patch <= 320
        assert rule.largest_patch * manifest["scale"] <= 1024
        assert rule.job().patch_size is None  # left to choose_patch, bounded by largest_patch


def test_a_model_published_with_a_larger_patch_keeps_it_as_the_bound():
    rule = tile_rule({**SLIM_X4, "patchSize": 300}, SLIM_WIDTHS, "wasm", 1, 300)
    assert rule.largest_patch == 300


def test_a_gpu_keeps_the_patch_it_warmed_up_at_and_overlaps_two_tiles():
    rule = tile_rule(SLIM_X4, SLIM_WIDTHS, "webgl", 0, 64)
    assert (rule.patch, rule.max_patch, rule.parallel) == (64, None, GPU_TILES_IN_FLIGHT)
    shrunk = tile_rule(SLIM_X4, SLIM_WIDTHS, "webgpu", 0, 32, too_large=64)
    assert (shrunk.patch, shrunk.max_patch, shrunk.padding) == (32, 32, 8)
    assert tile_rule(SLIM_X4, SLIM_WIDTHS, "webgl", 0, 16, too_large=32).padding == 4
    assert tile_rule(SLIM_X4, SLIM_WIDTHS, "wasm", 0, 64).parallel == 1


# slim x2 and x8 as upscale.footprint reads them from the catalogue's model.json
SLIM_X2_PRINT = Footprint(values=128, unrolled=1600)
SLIM_X8_PRINT = Footprint(values=12288, unrolled=110592)


def test_webgl_holds_a_tile_whose_largest_unrolled_input_fits_a_texture_four_values_a_texel():
    """The bounds TF.js itself drew in Chromium (WEBGL_MAX_TEXTURE_SIZE 1024, SwiftShader):
    slim x2 warmed up at 48 px and failed at 56; slim x8 at 24 px asked for a 3991² texture."""
    side = gpu_side(SLIM_X2_PRINT, "webgl", {"maxTextureSize": 1024})
    assert 48 <= side < 56
    assert gpu_side(SLIM_X8_PRINT, "webgl", {"maxTextureSize": 3991}) == 24
    assert gpu_side(SLIM_X8_PRINT, "webgl", {"maxTextureSize": 3990}) == 23


def test_webgpu_holds_a_tile_whose_largest_tensor_fits_one_buffer():
    limits = {"maxStorageBufferBindingSize": 128 << 20, "maxBufferSize": 256 << 20}
    side = gpu_side(SLIM_X8_PRINT, "webgpu", limits)
    assert side**2 * 12288 * 4 <= 128 << 20 < (side + 1) ** 2 * 12288 * 4
    smaller = gpu_side(SLIM_X8_PRINT, "webgpu", {**limits, "maxBufferSize": 64 << 20})
    assert smaller < side


@pytest.mark.parametrize(("footprint", "backend", "limits"), [
    (None, "webgl", {"maxTextureSize": 8192}),
    (SLIM_X2_PRINT, "webgl", {}),
    (SLIM_X2_PRINT, "wasm", {}),
    (SLIM_X2_PRINT, "webgpu", {"maxTextureSize": 8192}),
])
def test_without_the_footprint_or_the_limit_the_side_is_unknown(footprint, backend, limits):
    assert gpu_side(footprint, backend, limits) is None


def test_the_warm_up_patch_is_cut_to_a_multiple_of_8_that_fits_with_its_margin():
    assert gpu_patch(128, None, 0) == 128
    assert gpu_patch(128, 142, 7) == 128  # 128 + 2 x 7 fits exactly
    assert gpu_patch(128, 141, 7) == 120
    assert gpu_patch(128, 49, 0) == 48
    assert gpu_patch(128, 12, 0) == SMALLEST_PATCH  # fails its warm-up, by name


def test_a_gpu_refuses_a_job_patch_its_limits_do_not_hold():
    rule = tile_rule(SLIM_X4, SLIM_WIDTHS, "webgl", 0, 48, side=49)
    assert (rule.patch, rule.max_patch) == (48, 49)
    assert rule.job(49).patch_size == 49
    with pytest.raises(InvalidOptions, match="more than this GPU can hold .* at most 49"):
        rule.job(56)
    # a warm-up that got further than the limits said keeps what it ran
    assert tile_rule(SLIM_X4, SLIM_WIDTHS, "webgl", 0, 64, side=49).max_patch == 64
    # a warm-up that failed says more than the limits
    assert tile_rule(SLIM_X4, SLIM_WIDTHS, "webgl", 0, 32, too_large=64, side=70).max_patch == 32
    # WebAssembly has no such limit
    assert tile_rule(SLIM_X4, SLIM_WIDTHS, "wasm", 0, 64, side=49).max_patch is None


def test_a_patch_asked_for_up_front_is_every_jobs_tile_on_any_backend():
    for backend in ("wasm", "webgl"):
        rule = tile_rule(SLIM_X4, SLIM_WIDTHS, backend, 0, 32, asked=True)
        assert (rule.patch, rule.padding) == (32, 8)
        assert rule.job().patch_size == 32 and rule.job(48).patch_size == 48
    assert tile_rule(SLIM_X4, SLIM_WIDTHS, "wasm", 0, 512, asked=True).patch == 512


@pytest.mark.parametrize("patch", [8, 4096, "32", None])
def test_a_patch_asked_for_up_front_must_be_a_whole_number_from_16(patch):
    with pytest.raises(InvalidOptions, match="patchSize must be a whole number between 16"):
        check_patch(patch)


def test_the_warm_up_halves_down_to_the_smallest_patch_and_then_gives_up():
    seen, patch = [], 128
    while patch is not None:
        seen.append(patch)
        patch = smaller_patch(patch)
    assert seen == [128, 64, 32, 16] and seen[-1] == SMALLEST_PATCH


def test_the_largest_side_is_where_the_widest_activation_fills_the_tile_budget():
    for widths, scale in ([SLIM_WIDTHS, 4], [[64] * 20, 4], [[32], 8], [[], 2]):
        side = largest_side(scale, widths)
        per_pixel = max([3 * scale**2, *widths]) * 4 * LIVE_ACTIVATIONS
        assert side**2 * per_pixel <= TILE_MEMORY_BYTES < (side + 1) ** 2 * per_pixel
    assert largest_side(4, [64]) < largest_side(4, [32]), "wider layers, smaller tiles"


def test_a_patch_past_memory_is_refused_with_the_largest_that_fits():
    rule = tile_rule(SLIM_X4, SLIM_WIDTHS, "wasm", 1, 64)
    assert 512 < rule.largest_side < 2048
    with pytest.raises(InvalidOptions, match="its activations would need over 1 GiB") as refused:
        rule.job(2048)
    most = int(str(refused.value).rsplit(" ", 1)[1])
    assert "esrgan-slim-x4" in str(refused.value)
    assert rule.job(most).patch_size == most
    with pytest.raises(InvalidOptions):
        rule.job(most + 1)


def test_the_per_image_patch_stays_within_memory_for_a_very_wide_model():
    wide = tile_rule({**WAIFU, "patchSize": 64}, [4096], "wasm", 1, 64)
    assert wide.largest_patch + 2 * (wide.padding + wide.margin) <= wide.largest_side
    assert wide.job().patch_size is None


def test_a_patch_past_what_the_gpu_held_is_refused_by_name():
    rule = tile_rule({**SLIM_X4, "id": "esrgan-slim-x8"}, SLIM_WIDTHS, "webgl", 0, 32,
                     too_large=64)
    with pytest.raises(InvalidOptions, match=r"^patchSize 64 is more than this GPU can hold "
                                             r"for esrgan-slim-x8: at most 32"):
        rule.job(64)
    assert rule.job(32).patch_size == 32


def test_an_explicit_patch_too_small_for_the_padding_gets_a_quarter_of_it():
    rule = tile_rule({**SLIM_X4, "padding": 8}, SLIM_WIDTHS, "wasm", 1, 64)
    assert (rule.job(16).patch_size, rule.job(16).padding) == (16, 4)
    assert rule.job(17).padding == 8, "17 holds a padding of 8"
    assert rule.job(16, 2).padding == 2, "an explicit padding is kept"
    assert rule.job(None, 0).padding == 0


@pytest.mark.parametrize("patch", ["auto", "64", 64.5, True, 0, 4096, -1])
def test_a_patch_that_is_not_a_whole_number_in_range_is_refused(patch):
    rule = tile_rule(SLIM_X4, SLIM_WIDTHS, "wasm", 1, 64)
    with pytest.raises(InvalidOptions, match="patchSize must be a whole number"):
        rule.job(patch)


def test_the_rule_crosses_to_javascript_and_back_unchanged():
    for rule in (tile_rule(WAIFU, [64], "wasm", 3, 128),
                 tile_rule(SLIM_X4, SLIM_WIDTHS, "webgpu", 0, 32, too_large=64)):
        assert TileRule.from_js(rule.to_js()) == rule
    assert {"patchSize", "padding", "maxPatchSize", "largestSide"} <= set(rule.to_js())


@pytest.mark.parametrize(("backend", "workers"), [("webgl2", 0), ("wasm", -1), ("wasm", 65)])
def test_an_unknown_backend_or_worker_count_is_refused(backend, workers):
    with pytest.raises(InvalidOptions):
        tile_rule(SLIM_X4, SLIM_WIDTHS, backend, workers, 64)


@pytest.fixture
def bridge(monkeypatch):
    """upscale.bridge with a stand-in for Pyodide's ffi module (its entry points' error
    handling is pure Python)."""
    ffi = types.ModuleType("pyodide.ffi")
    ffi.JsProxy = type("JsProxy", (), {})
    monkeypatch.setitem(sys.modules, "pyodide", types.ModuleType("pyodide"))
    monkeypatch.setitem(sys.modules, "pyodide.ffi", ffi)
    monkeypatch.delitem(sys.modules, "upscale.bridge", raising=False)
    import upscale.bridge

    return upscale.bridge


def test_an_upscale_error_crosses_as_its_name_and_message_and_a_bug_as_itself(bridge):
    @bridge.crossing
    def refuse():
        raise ImageTooLarge("the image is too large")

    @bridge.crossing
    async def cancel():
        raise Cancelled(3, 40)

    @bridge.crossing
    def bug():
        raise KeyError("scale")

    assert refuse() == bridge.Refusal("ImageTooLarge", "the image is too large")
    cancelled = run_in_loop(cancel())
    assert cancelled.name == "AbortError" and cancelled.tiles == {"done": 3, "total": 40}
    assert cancelled.message == "the upscale was cancelled after 3 of 40 tiles"
    with pytest.raises(KeyError):
        bug()


def test_the_ncnn_entry_point_refuses_missing_files_and_a_bad_range(bridge):
    refusal = bridge.convert_ncnn(None, None, None, None)
    assert refusal.name == "InvalidOptions" and "needs both files" in refusal.message
    param = bridge.JsProxy()  # a stand-in buffer: never read, the range is refused first
    param.to_bytes = lambda: b""
    for bad in ([1, 2], [0, 0], [0], "0-1", [0, True]):
        refusal = bridge.convert_ncnn(param, param, None, bad)
        assert refusal.name == "InvalidOptions" and "inputRange" in refusal.message, bad


class Proxy:
    """A stand-in for a JsProxy the worker hands in: to_py() gives the value."""

    def __init__(self, value):
        self.value = value

    def to_py(self):
        return self.value


GENERAL_X2 = {"id": "general-x2", "scale": 2, "runScale": 4, "patchSize": 128, "padding": 24}


def test_a_network_run_above_the_scale_is_tiled_at_its_own_and_its_result_reduced(bridge):
    """A x4 network serving x2: the tile rule is the x4 network's (its tiles, its memory bound),
    and carries by how much the stitched output is reduced; a job's result is x2, checked as
    such, with the network's output counted."""
    rule = bridge.tile_for(Proxy(GENERAL_X2), Proxy([64] * 33 + [48]), "wasm", 2, 128, None,
                           False, None)
    own = tile_rule({**GENERAL_X2, "scale": 4}, [64] * 33 + [48], "wasm", 2, 128)
    assert rule == {**own.to_js(), "reduce": 2}
    options = bridge._job(Proxy(rule), 96)
    assert (options.scale, options.reduce, options.result_scale) == (4, 2, 2)
    assert options.patch_size == 96 and options.padding == 24
    plain = bridge.tile_for(Proxy(SLIM_X4), Proxy(SLIM_WIDTHS), "wasm", 2, 64, None, False,
                            None)
    assert plain["reduce"] == 1 and bridge._job(Proxy(plain)).result_scale == 4
    assert bridge.check_size(16_383, 16, Proxy(rule), None, 8) is None  # 32766 px wide
    refused = bridge.check_size(4096, 4096, Proxy(rule), None, 4)
    assert refused.name == "ImageTooLarge" and "8192x8192 result" in refused.message
    assert "the network's output before it is reduced" in refused.message


def test_a_run_scale_that_is_not_a_multiple_of_the_scale_is_refused(bridge):
    refusal = bridge.tile_for(Proxy({**GENERAL_X2, "scale": 3}), Proxy([48]), "wasm", 1, 32,
                              None, False, None)
    assert refusal == bridge.Refusal("InvalidOptions",
                                     "runScale 4 must be a whole multiple of the scale 3")
