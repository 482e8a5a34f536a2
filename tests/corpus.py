"""Hostile and awkward inputs, made on the fly, each with what Upscale must make of it.

Shared by the CPython decode tests and the in-browser worker tests: the same bytes go through
Pillow here and through Pyodide's Pillow there.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Case:
    data: bytes
    error: str | None = None  # the error's name, or None for a result
    shape: tuple[int, ...] | None = None  # the decoded (height, width, channels)
    level: float | None = None  # the decoded pixels' mean (0-255), within LEVEL_TOLERANCE


LEVEL_TOLERANCE = 2.0


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def photo(width: int = 24, height: int = 16, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)
    return Image.fromarray(pixels)


def bars(side: int, width: int = 8) -> np.ndarray:
    """Black and white vertical bars: hard edges, 0 and 255 only, on which half floats are held
    against float32 (SPAN on WebGL). Not a checkerboard, a disc or a diagonal edge: there
    span-x2's own float32 output reaches +-25 (4 px checkerboard) to +-3600 (1 px) where [0, 1]
    is meant, and an input change of 1e-5 moves it by grey levels: any two ways of computing
    it, float32 ones included, disagree."""
    column = np.where((np.arange(side) // width) % 2 == 0, 255, 0).astype(np.uint8)
    return np.broadcast_to(column[None, :, None], (side, side, 3)).copy()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(side: int = 20_000) -> bytes:
    """A grey PNG of side x side that is a few KB: every row is one zero filter byte + zeros."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    rows = zlib.compressobj(9)
    body = b"".join(rows.compress(bytes(side + 1)) for _ in range(side)) + rows.flush()
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", body) + \
        png_chunk(b"IEND", b"")


def exif_rotated() -> bytes:
    """A 24x16 JPEG whose EXIF says 'rotate 90° clockwise to display' (orientation 6)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(photo(24, 16), "JPEG", exif=exif.tobytes())


def png16(samples: np.ndarray) -> bytes:
    """A 16-bit PNG, written by hand (Pillow writes 16-bit grey only): (H, W) grey or
    (H, W, 3) RGB uint16 samples."""
    height, width = samples.shape[:2]
    colour = 0 if samples.ndim == 2 else 2
    rows = samples.astype(">u2").reshape(height, -1)
    raw = b"".join(b"\0" + row.tobytes() for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b""))


SRGB_COLORANTS = ((0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141))
P3_COLORANTS = ((0.5151, 0.2412, -0.0011), (0.2920, 0.6922, 0.0419), (0.1571, 0.0666, 0.7841))


def rgb_profile(name: str, colorants=SRGB_COLORANTS, gamma: float | None = 1.0) -> bytes:
    """A minimal ICC v2 RGB matrix/TRC profile, written by hand (Pillow makes no RGB profile
    but sRGB): three colorants (XYZ, D50) and one tone curve for all channels, a plain gamma
    ('curv') or, with gamma None, sRGB's own curve ('para' type 3), as Display P3 has it."""
    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \0\0\0\0" + b"".join(struct.pack(">i", round(v * 65536)) for v in (x, y, z))

    text = name.encode() + b"\0"
    if gamma is not None:
        trc = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"
    else:
        srgb = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
        trc = b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + b"".join(
            struct.pack(">i", round(v * 65536)) for v in srgb)
    tags = {
        b"desc": b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + b"\0" * 79,
        b"wtpt": xyz(0.9642, 1.0, 0.8249),
        b"rXYZ": xyz(*colorants[0]), b"gXYZ": xyz(*colorants[1]), b"bXYZ": xyz(*colorants[2]),
        b"rTRC": trc, b"gTRC": trc, b"bTRC": trc,
    }
    table, body, offset = b"", b"", 128 + 4 + 12 * len(tags)
    for signature, data in tags.items():
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data + b"\0" * (-len(data) % 4)
    header = (struct.pack(">I", offset + len(body)) + b"lcms" + struct.pack(">I", 0x02100000)
              + b"mntrRGB XYZ " + b"\0" * 12 + b"acsp" + b"\0" * 28
              + xyz(0.9642, 1.0, 0.8249)[8:] + b"\0" * 48)
    return header + struct.pack(">I", len(tags)) + table + body


def linear_rgb_profile() -> bytes:
    """sRGB's primaries with a straight curve: linear mid-grey 128 is sRGB 188."""
    return rgb_profile("Linear RGB (test)")


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (20, 12), colour) for colour in ("red", "blue", "green")]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)


def hostile_inputs() -> dict[str, Case]:
    png = encode(photo(), "PNG")
    jpeg = encode(photo(), "JPEG", quality=90)
    palette = photo().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    wide16 = Image.fromarray(np.arange(16 * 24, dtype=np.uint16).reshape(16, 24) * 170)
    ramp16 = np.arange(16 * 24, dtype=np.uint16).reshape(16, 24)
    return {
        "zero bytes": Case(b"", error="EmptyFile"),
        "random bytes": Case(np.random.default_rng(1).bytes(4096), error="NotAnImage"),
        "text named .png": Case(b"not a picture, just words\n" * 40, error="NotAnImage"),
        "truncated PNG": Case(png[: len(png) // 2], error="CorruptImage"),
        "truncated JPEG": Case(jpeg[: len(jpeg) // 2], error="CorruptImage"),
        "SVG": Case(b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
                    error="UnsupportedFormat"),
        "PNG bomb 20000x20000": Case(png_bomb(), error="ImageTooLarge"),
        "past the limit 4100x4100": Case(encode(Image.new("L", (4100, 4100)), "PNG"),
                                         error="ImageTooLarge"),
        "1x1": Case(encode(Image.new("RGB", (1, 1), "orange"), "PNG"), shape=(1, 1, 3)),
        "16-bit grey PNG": Case(encode(wide16, "PNG"), shape=(16, 24, 3)),
        # A dark and a bright 16-bit image: scaled by the bit depth, not by the brightest pixel.
        "dark 16-bit grey PNG": Case(png16(ramp16 % 200), shape=(16, 24, 3), level=0.0),
        "bright 16-bit grey PNG": Case(png16(65535 - ramp16 % 200), shape=(16, 24, 3),
                                       level=255.0),
        "dark 16-bit RGB PNG": Case(png16(np.stack([ramp16 % 200] * 3, axis=2)),
                                    shape=(16, 24, 3), level=0.0),
        "mid 16-bit RGB PNG": Case(png16(np.full((16, 24, 3), 32768, np.uint16)),
                                   shape=(16, 24, 3), level=128.0),
        "greyscale": Case(encode(photo().convert("L"), "PNG"), shape=(16, 24, 3)),
        "palette with transparency": Case(encode(palette, "PNG"), shape=(16, 24, 4)),
        "CMYK JPEG": Case(encode(photo().convert("CMYK"), "JPEG"), shape=(16, 24, 3)),
        "animated GIF": Case(animated("GIF"), shape=(12, 20, 3)),
        "animated WebP": Case(animated("WEBP"), shape=(12, 20, 3)),
        "animated PNG": Case(animated("PNG"), shape=(12, 20, 3)),
        "progressive JPEG": Case(encode(photo(), "JPEG", progressive=True), shape=(16, 24, 3)),
        # Linear mid-grey in its own colour profile: converted to sRGB it is 188, not 128.
        "ICC linear-RGB PNG": Case(encode(Image.new("RGB", (24, 16), (128, 128, 128)), "PNG",
                                          icc_profile=linear_rgb_profile()),
                                   shape=(16, 24, 3), level=188.0),
        "EXIF rotation": Case(exif_rotated(), shape=(24, 16, 3)),
    }
