"""Decoding strangers' files: every input gives pixels or one of our own named errors."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.corpus import LEVEL_TOLERANCE, encode, hostile_inputs, photo
from upscale import errors
from upscale.imaging import Limits, decode

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
