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
from upscale import errors
from upscale.imaging import Limits, decode, describe_file

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
    assert str(raised.value) == errors.TOO_LARGE.format(
        what="the image", width=4100, height=4100, pixels=4100 * 4100, limit=16_777_216)


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
