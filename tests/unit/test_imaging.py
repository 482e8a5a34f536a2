"""Decoding strangers' files: every input gives pixels or one of our own named errors."""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.corpus import (
    LEVEL_TOLERANCE,
    P3_COLORANTS,
    SRGB_COLORANTS,
    encode,
    hostile_inputs,
    photo,
    rgb_profile,
)
from upscale import errors, imaging
from upscale.imaging import Limits, check_encoding, decode, describe_file, encode_png

CORPUS = hostile_inputs()


@pytest.mark.parametrize("name", CORPUS)
def test_hostile_and_awkward_inputs(name):
    case = CORPUS[name]
    if case.error:
        with pytest.raises(errors.UpscaleError) as raised:
            decode(case.data, 2, Limits())
        assert type(raised.value).__name__ == case.error, raised.value
    else:
        pixels = decode(case.data, 2, Limits())
        assert pixels.dtype == np.uint8 and pixels.shape == case.shape
        if case.level is not None:
            assert abs(pixels[..., :3].mean() - case.level) <= LEVEL_TOLERANCE, pixels.mean()


def test_limit_message_names_the_limit_and_the_size():
    with pytest.raises(errors.ImageTooLarge) as raised:
        decode(CORPUS["past the limit 4100x4100"].data, 2, Limits())
    assert "4100x4100 = 16,810,000 pixels" in str(raised.value)
    assert "the limit is 16,777,216 pixels" in str(raised.value)


def test_a_job_is_refused_by_all_the_memory_it_would_hold():
    """4096 x 4096 at x2 is a 256 MB result, accepted when only one copy of it was counted;
    with every copy (and the input's, and the blend band) it is over 1 GB: too much for a
    4 GB device, fine for one with 8. Nothing reaches x4 of it: 3 GB of result copies."""
    small, large = Limits.for_device(4), Limits.for_device(8)
    with pytest.raises(errors.ImageTooLarge) as raised:
        small.check(4096, 4096, 2)
    message = str(raised.value)
    assert message.startswith("a 8192x8192 result would hold about 1,")
    assert "the result, three copies 768 MB" in message and "allows 1,024 MB" in message
    large.check(4096, 4096, 2)
    for device in (large, Limits.for_device(64)):
        with pytest.raises(errors.ImageTooLarge, match="allows 2,048 MB"):
            device.check(4096, 4096, 4)
    assert Limits.for_device(None) == small, "a device that does not say: a mid-range one"
    assert Limits.for_device(0.5).memory_bytes < small.memory_bytes
    small.check(2048, 2048, 4)  # what a phone-sized budget still takes


def test_a_larger_fixed_patch_counts_a_taller_blend_band():
    limits = Limits.for_device(4)
    limits.check(3300, 3300, 2)
    with pytest.raises(errors.ImageTooLarge, match="the blend band"):
        limits.check(3300, 3300, 2, patch=3300)


def test_a_network_run_above_the_scale_counts_its_output_but_not_its_width():
    """A x4 network serving x2 stitches its whole output (RGB) before reducing it, and its
    blend band is as wide as that output; the canvas bound is the result's."""
    small, large = Limits.for_device(4), Limits.for_device(8)
    with pytest.raises(errors.ImageTooLarge) as raised:
        small.check(4096, 4096, 2, run_scale=4)
    message = str(raised.value)
    assert message.startswith("a 8192x8192 result would hold about 1,968 MB")
    assert "the network's output before it is reduced 768 MB" in message
    assert "the blend band 192 MB" in message
    large.check(4096, 4096, 2, run_scale=4)
    Limits().check(16_383, 16, 2, run_scale=4)  # the network's 65532 px are never a canvas


def test_what_the_awkward_ones_decode_to():
    rotated = decode(CORPUS["EXIF rotation"].data, 2, Limits())
    assert rotated.shape[:2] == (24, 16), "orientation 6 is applied: portrait"
    first = decode(CORPUS["animated GIF"].data, 2, Limits())
    assert (first[..., 0] > 200).all() and (first[..., 2] < 50).all(), "the first (red) frame"
    grey16 = decode(CORPUS["16-bit grey PNG"].data, 2, Limits())
    want = (np.arange(16 * 24).reshape(16, 24) * 170) >> 8
    np.testing.assert_array_equal(grey16[..., 0], want.astype(np.uint8))
    palette = decode(CORPUS["palette with transparency"].data, 2, Limits())
    assert palette[..., 3].min() == 0 and palette[..., 3].max() == 255


SEEDS = {fmt: encode(photo(20, 14, seed=3), fmt) for fmt in ("PNG", "JPEG", "GIF", "BMP")}


@st.composite
def mutated(draw):
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "header"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif data:  # rewrite bytes where the headers keep sizes and counts
            spot = draw(st.integers(0, min(len(data) - 1, 40)))
            data[spot:spot + 4] = draw(st.binary(min_size=4, max_size=4))
    return bytes(data)


@settings(max_examples=400, deadline=timedelta(seconds=2),
          suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_fuzzed_files_give_pixels_or_our_own_errors(data):
    """Mutated PNG, JPEG, GIF and BMP: each decodes or raises an UpscaleError, within 2 s."""
    try:
        pixels = decode(data, 2, Limits())
    except errors.UpscaleError:
        return
    assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] in (3, 4)


def test_a_result_wider_than_a_canvas_is_refused_before_any_work():
    """20000 x 16 passes the pixel limits, but x2 is 40000 px wide: no canvas shows that."""
    with pytest.raises(errors.ImageTooLarge) as raised:
        Limits().check(20_000, 16, 2)
    assert str(raised.value) == errors.TOO_WIDE.format(width=40_000, height=32, side=32_767)
    Limits().check(16_383, 16, 2)  # 32766 wide: fine


@pytest.mark.parametrize(("name", "colorants", "gamma"), [
    ("Display P3 (test)", P3_COLORANTS, None), ("Linear RGB (test)", SRGB_COLORANTS, 1.0),
    ("Gamma 2.2 (test)", P3_COLORANTS, 2.2)])
def test_colour_profiles_convert_to_srgb_as_little_cms_does(name, colorants, gamma):
    """Upscale's numpy conversion (Pyodide's Pillow has no Little CMS) against ImageCms."""
    from PIL import ImageCms

    icc = rgb_profile(name, colorants, gamma)
    rgb = np.asarray(photo(64, 48, seed=3))
    ours = decode(encode(Image.fromarray(rgb), "PNG", icc_profile=icc), 2, Limits())
    theirs = np.asarray(ImageCms.profileToProfile(
        Image.fromarray(rgb), ImageCms.ImageCmsProfile(io.BytesIO(icc)),
        ImageCms.createProfile("sRGB"), outputMode="RGB"))
    assert np.abs(ours.astype(int) - theirs).max() <= 2, name
    assert np.abs(ours.astype(int) - rgb).max() > 10, "a real change of colour"
    facts = describe_file(encode(Image.fromarray(rgb), "PNG", icc_profile=icc))
    assert (facts["colourProfile"], facts["colourConverted"]) == (name, True)


def test_an_srgb_or_a_cmyk_profile_is_left_as_it_is():
    rgb = np.asarray(photo(24, 16))
    srgb = rgb_profile("sRGB IEC61966-2.1 (test)")
    assert describe_file(encode(Image.fromarray(rgb), "PNG", icc_profile=srgb))[
        "colourProfile"] is None
    same = decode(encode(Image.fromarray(rgb), "PNG", icc_profile=srgb), 2, Limits())
    assert np.array_equal(same, rgb)


def test_a_result_is_written_as_png_rgb_when_opaque_rgba_when_not_and_nothing_else():
    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 256, (33, 47, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    with Image.open(io.BytesIO(encode_png(rgba))) as opaque:
        assert (opaque.format, opaque.mode) == ("PNG", "RGB")
        assert not {"exif", "icc_profile", "dpi"} & set(opaque.info), opaque.info
        assert np.array_equal(np.asarray(opaque), rgba[..., :3])
    rgba[0, 0, 3] = 0
    with Image.open(io.BytesIO(encode_png(rgba))) as clear:
        assert clear.mode == "RGBA" and np.array_equal(np.asarray(clear), rgba)


@pytest.mark.parametrize(("kind", "quality", "message"), [
    ("image/gif", 0.9, "type must be one of image/png, image/jpeg, image/webp: got 'image/gif'"),
    ("png", 0.9, "type must be one of image/png, image/jpeg, image/webp: got 'png'"),
    ("image/jpeg", 92, "quality must be a number from 0 to 1: got 92"),
    ("image/jpeg", -0.1, "quality must be a number from 0 to 1: got -0.1"),
    ("image/jpeg", "0.9", "quality must be a number from 0 to 1: got '0.9'"),
    ("image/jpeg", True, "quality must be a number from 0 to 1: got True"),
])
def test_a_result_file_type_and_quality_are_checked(kind, quality, message):
    with pytest.raises(errors.InvalidOptions) as caught:
        check_encoding(kind, quality)
    assert str(caught.value) == message
    assert check_encoding("image/webp", 1) == ("image/webp", 1.0)


def test_a_large_result_is_written_at_zlibs_fastest_level(monkeypatch):
    """The level is in the zlib header of the first IDAT chunk (FLEVEL: 0 fastest, 2 default)."""
    def level_bits(png: bytes) -> int:
        start = png.index(b"IDAT") + 4
        return png[start + 1] >> 6

    rgba = np.full((20, 30, 4), 255, np.uint8)
    assert level_bits(encode_png(rgba)) == 2
    monkeypatch.setattr(imaging, "PNG_FAST_PIXELS", 20 * 30 - 1)
    assert level_bits(encode_png(rgba)) == 0
