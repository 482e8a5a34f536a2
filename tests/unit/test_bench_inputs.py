"""The bench's real inputs (bench/realinputs.py) are plain sRGB: the engine decodes every file
made from them to the pixels the truth and the bicubic baseline are read as."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from upscale.imaging import to_array

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import realinputs  # noqa: E402


@pytest.mark.parametrize("name", realinputs.REAL_PHOTOS)
def test_every_file_made_from_a_photo_decodes_in_the_engine_as_pillow_reads_it(photos, name):
    crop = realinputs.crop(photos[name])
    assert "icc_profile" not in crop.info
    small = crop.resize((150, 150), Image.Resampling.BICUBIC)
    for made in realinputs.CONDITIONS:
        data = made.make(small)
        engine = to_array(Image.open(io.BytesIO(data)))
        plain = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        assert np.array_equal(engine, plain), made.condition.name


def test_a_photo_in_another_profile_is_converted_to_srgb(photos):
    """rocket.jpg carries Adobe RGB (1998): its greens are more saturated than sRGB can show
    with the same numbers, so in sRGB they change; the photo's own numbers are not the truth."""
    raw = np.asarray(Image.open(photos["rocket.jpg"]).convert("RGB"), np.float64)
    seen = np.asarray(realinputs.as_seen(photos["rocket.jpg"]), np.float64)
    assert raw.shape == seen.shape
    assert np.abs(raw - seen).mean() > 2
    # an sRGB photo is left as it is
    assert np.array_equal(np.asarray(realinputs.as_seen(photos["astronaut.png"])),
                          np.asarray(Image.open(photos["astronaut.png"]).convert("RGB")))
