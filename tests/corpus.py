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


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (20, 12), colour) for colour in ("red", "blue", "green")]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


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
        "animated GIF": Case(animated_gif(), shape=(12, 20, 3)),
        "EXIF rotation": Case(exif_rotated(), shape=(24, 16, 3)),
    }
