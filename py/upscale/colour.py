"""Embedded ICC colour profiles, converted to sRGB in numpy.

Browsers show a photo tagged Display P3 or Adobe RGB in its colours; the models were trained on
sRGB. So an RGB image with a matrix/TRC profile (three colorants and three tone curves: Display
P3, Adobe RGB, ProPhoto, linear RGB; almost every camera and phone profile) is converted to
sRGB before the model sees it. Pyodide's Pillow is built without Little CMS, hence numpy.
Other profiles (CMYK, lookup tables) are left as they are, and said so.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

# sRGB's colorants adapted to the ICC's D50 white (the columns: red, green, blue in XYZ), as
# the standard sRGB ICC profile carries them.
SRGB_TO_XYZ_D50 = np.array([[0.4361, 0.3851, 0.1431],
                            [0.2225, 0.7169, 0.0606],
                            [0.0139, 0.0971, 0.7141]])
XYZ_D50_TO_SRGB = np.linalg.inv(SRGB_TO_XYZ_D50)
HEADER_BYTES = 128
PARAMETERS = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}  # a parametric curve's type: how many it gives


@dataclass(frozen=True)
class Profile:
    """What an ICC profile says: its description and, for an RGB matrix/TRC profile, the
    colorants (3x3, to XYZ D50) and a 256-entry table per channel to linear light."""

    name: str
    matrix: np.ndarray | None = None
    curves: np.ndarray | None = None  # (3, 256) float64

    @property
    def convertible(self) -> bool:
        return self.matrix is not None

    @property
    def is_srgb(self) -> bool:
        return "srgb" in self.name.lower()


def read_profile(icc: bytes) -> Profile | None:
    """Parse an ICC profile; None when it is not one."""
    if len(icc) < HEADER_BYTES + 4 or icc[36:40] != b"acsp":
        return None
    tags = {}
    (count,) = struct.unpack_from(">I", icc, HEADER_BYTES)
    for i in range(min(count, 100)):
        signature, offset, size = struct.unpack_from(">4sII", icc, HEADER_BYTES + 4 + 12 * i)
        tags[signature] = icc[offset:offset + size]
    name = description(tags.get(b"desc", b"")) or "an embedded colour profile"
    if icc[16:20] != b"RGB " or icc[20:24] != b"XYZ ":
        return Profile(name)
    try:
        matrix = np.array([xyz(tags[t]) for t in (b"rXYZ", b"gXYZ", b"bXYZ")]).T
        curves = np.array([curve(tags[t]) for t in (b"rTRC", b"gTRC", b"bTRC")])
    except (KeyError, ValueError, struct.error):
        return Profile(name)  # a lookup-table profile: not converted
    return Profile(name, matrix, curves)


def description(tag: bytes) -> str:
    """A 'desc' (ICC v2: ASCII) or 'mluc' (v4: UTF-16) tag's text."""
    try:
        if tag[:4] == b"desc":
            (length,) = struct.unpack_from(">I", tag, 8)
            return tag[12:12 + length].split(b"\0")[0].decode("latin-1").strip()
        if tag[:4] == b"mluc":
            size, offset = struct.unpack_from(">II", tag, 16 + 4)
            return tag[offset:offset + size].decode("utf-16-be").strip()
    except (struct.error, UnicodeDecodeError):
        pass
    return ""


def xyz(tag: bytes) -> list[float]:
    if tag[:4] != b"XYZ ":
        raise ValueError("not an XYZ tag")
    return [v / 65536 for v in struct.unpack_from(">3i", tag, 8)]


def curve(tag: bytes) -> np.ndarray:
    """A tone curve ('curv' or 'para') sampled at the 256 values of an 8-bit channel."""
    x = np.arange(256) / 255
    if tag[:4] == b"curv":
        (count,) = struct.unpack_from(">I", tag, 8)
        if count == 0:
            return x
        if count == 1:
            return x ** (struct.unpack_from(">H", tag, 12)[0] / 256)
        table = np.array(struct.unpack_from(f">{count}H", tag, 12)) / 65535
        return np.interp(x, np.linspace(0, 1, count), table)
    if tag[:4] == b"para":
        # Y = (aX + b)^g + e where X >= d, else cX + f; each type fixes some of them.
        (kind,) = struct.unpack_from(">H", tag, 8)
        given = [v / 65536 for v in struct.unpack_from(f">{PARAMETERS[kind]}i", tag, 12)]
        g, a, b, c, d, e, f = [*given, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0][:7]
        if kind == 0:
            a, b, c, d, e, f = 1.0, 0.0, 0.0, 0.0, 0.0, 0.0
        elif kind in (1, 2):
            offset = c if kind == 2 else 0.0
            d, e, c, f = -b / a, offset, 0.0, offset
        elif kind == 3:
            e = f = 0.0
        return np.where(x >= d, np.clip(a * x + b, 0, None) ** g + e, c * x + f)
    raise ValueError("not a curve tag")


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0, 1)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def to_srgb(rgb: np.ndarray, profile: Profile) -> np.ndarray:
    """(H, W, 3) uint8 pixels in `profile` as sRGB uint8 (out-of-gamut colours clipped)."""
    linear = np.stack([profile.curves[c][rgb[..., c]] for c in range(3)], axis=-1)
    transform = (XYZ_D50_TO_SRGB @ profile.matrix).astype(np.float32)
    out = srgb_encode(linear.astype(np.float32) @ transform.T)
    return np.round(out * 255).astype(np.uint8)
