"""Decoding with Pillow, alpha, the size and memory limits checked before any work, and the
results as files.

Pillow is imported inside the functions that use it: in the browser it is loaded only when a
file has to be decoded or a transparent image's alpha resized, so a page that hands over
pixels (ImageData, ImageBitmap, <img>) never downloads it.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

from .colour import Profile, read_profile
from .colour import to_srgb as convert_to_srgb
from .errors import (
    BAD_ENCODING,
    BAD_QUALITY,
    CORRUPT_IMAGE,
    EMPTY_FILE,
    NOT_AN_IMAGE,
    TOO_LARGE,
    TOO_MUCH_MEMORY,
    TOO_WIDE,
    UNSUPPORTED_FORMAT,
    CorruptImage,
    EmptyFile,
    ImageTooLarge,
    InvalidOptions,
    NotAnImage,
    UnsupportedFormat,
)
from .routing import BROWSER_FORMATS, read_facts, sniff

# Pillow opens only these; anything else is refused before a decoder runs.
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
ACCEPTED = ", ".join(ACCEPTED_FORMATS)


# What one job holds at its busiest, in bytes per pixel, counted from the code that runs it.
# The result: Python's RGBA array, the copy the worker hands to the page, the canvas that
# shows it. The input: the buffer the page sends, Python's copy, its RGBA form and the padded
# RGB source the tiles are cut from (4 + 4 + 4 + 3). The blend band: float32 RGB over the rows
# of one row of tiles, as wide as the network's output. A network run above the scale asked
# for (a x4 network serving x2) also has its whole RGB output stitched before it is reduced.
RESULT_BYTES = 3 * 4
INPUT_BYTES = 4 + 4 + 4 + 3
BAND_BYTES = 3 * 4
NETWORK_BYTES = 3
AUTO_BAND_ROWS = 1024  # the auto patch aims at about this many output rows (tiling.choose_patch)


def job_memory(width: int, height: int, scale: int, patch: int | None = None,
               run_scale: int | None = None) -> dict[str, int]:
    """What a job on a `width` x `height` image holds at its busiest, by part, in bytes;
    `patch`, where the caller fixed it, sets the rows of the blend band; `run_scale`, where
    the network enlarges more than `scale` and its output is reduced, is the network's."""
    run = run_scale or scale
    out_width, out_height = width * scale, height * scale
    net_width, net_height = width * run, height * run
    rows = min(net_height, max(AUTO_BAND_ROWS, (patch or 0) * run))
    parts = {
        "the result, three copies": out_width * out_height * RESULT_BYTES,
        "the input, four copies": width * height * INPUT_BYTES,
        "the blend band": net_width * rows * BAND_BYTES,
    }
    if run != scale:
        parts["the network's output before it is reduced"] = net_width * net_height * NETWORK_BYTES
    return parts


def megabytes(count: int) -> str:
    return f"{count / 2**20:,.0f} MB"


ASSUMED_GIGABYTES = 4  # a device that does not say (navigator.deviceMemory): mid-range
DEVICE_SHARE = 4  # one job may hold a quarter of the device's memory...
MOST_JOB_BYTES = 2 << 30  # ...and at most 2 GiB: Python's part then stays far inside wasm32's 4 GB


@dataclass(frozen=True)
class Limits:
    """Largest input, widest result and the memory a job may hold; checked from the header,
    before decoding. The worker sets `memory_bytes` from the device's memory."""

    input_pixels: int = 16_777_216  # 4096 x 4096
    output_side: int = 32_767  # the widest canvas browsers draw (Chromium, Firefox)
    memory_bytes: int = 1 << 30

    @classmethod
    def for_device(cls, gigabytes: float | None) -> Limits:
        """The limits for a device with `gigabytes` of memory, as navigator.deviceMemory says
        (browsers round it and report at most 8); None where it is not reported."""
        share = (gigabytes or ASSUMED_GIGABYTES) * 2**30 / DEVICE_SHARE
        return cls(memory_bytes=int(min(share, MOST_JOB_BYTES)))

    def describe(self) -> dict[str, int]:
        """For the page (info.limits)."""
        return {"inputPixels": self.input_pixels, "outputSide": self.output_side,
                "memoryBytes": self.memory_bytes}

    def check(self, width: int, height: int, scale: int, patch: int | None = None,
              run_scale: int | None = None) -> None:
        """Refuse a job on a `width` x `height` image whose result is `scale` times larger (the
        network's output `run_scale` times, where it is reduced)."""
        if width * height > self.input_pixels:
            raise ImageTooLarge(TOO_LARGE.format(width=width, height=height,
                                                 pixels=width * height, limit=self.input_pixels))
        if max(width, height) * scale > self.output_side:
            raise ImageTooLarge(TOO_WIDE.format(width=width * scale, height=height * scale,
                                                side=self.output_side))
        parts = job_memory(width, height, scale, patch, run_scale)
        if sum(parts.values()) > self.memory_bytes:
            raise ImageTooLarge(TOO_MUCH_MEMORY.format(
                width=width * scale, height=height * scale, total=megabytes(sum(parts.values())),
                parts=", ".join(f"{what} {megabytes(n)}" for what, n in parts.items()),
                limit=megabytes(self.memory_bytes)))


def _known_format(data: bytes) -> str | None:
    """Name a few formats we refuse by their signature, so the message can say which."""
    head = data[:64].lstrip()
    if head.startswith((b"<svg", b"<?xml")):
        return "SVG"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if sniff(data) in BROWSER_FORMATS:
        return "AVIF/HEIF"
    return None


def open_image(data: bytes) -> Image.Image:
    """Read the header only: format and size are known, no pixel is decoded yet."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise EmptyFile(EMPTY_FILE)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError:
        known = _known_format(data)
        if known:
            raise UnsupportedFormat(UNSUPPORTED_FORMAT.format(format=known,
                                                              accepted=ACCEPTED)) from None
        raise NotAnImage(NOT_AN_IMAGE.format(accepted=ACCEPTED)) from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise ImageTooLarge(str(error)) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise CorruptImage(CORRUPT_IMAGE.format(format="image", detail=error)) from None


def colour_profile(image: Image.Image) -> Profile | None:
    """The image's embedded ICC profile, where it is not sRGB (what the browser assumes
    without one and what the models saw in training); else None."""
    icc = image.info.get("icc_profile")
    profile = read_profile(icc) if icc else None
    return None if profile is None or profile.is_srgb else profile


def to_array(image: Image.Image) -> np.ndarray:
    """Pixels as (H, W, 3) or, where the image has any transparency, (H, W, 4) uint8; in
    sRGB, and of an animation its first frame."""
    from PIL import ImageOps

    image = ImageOps.exif_transpose(image)
    profile = colour_profile(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey (a PNG's, whichever of these modes Pillow gives it): scaled by its bit
        # depth, not by its brightest pixel, so a dark image stays dark. Pillow's own
        # conversion would clip at 255. A 32-bit "I" image (TIFF) is read as 16-bit when all
        # of it fits, else by its top 8 of 32 bits.
        grey = np.asarray(image, dtype=np.int64)
        depth = 16 if image.mode != "I" or (grey.min() >= 0 and grey.max() < 1 << 16) else 32
        shifted = (np.clip(grey, 0, (1 << depth) - 1) >> (depth - 8)).astype(np.uint8)
        return np.repeat(shifted[..., None], 3, axis=2)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        "transparency" in image.info
    )
    pixels = np.asarray(image.convert("RGBA" if has_alpha else "RGB"))
    if profile is not None and profile.convertible and image.mode in ("RGB", "RGBA", "P"):
        pixels = pixels.copy()
        pixels[..., :3] = convert_to_srgb(pixels[..., :3], profile)
    return pixels


def decode(data: bytes, scale: int, limits: Limits, patch: int | None = None,
           run_scale: int | None = None) -> np.ndarray:
    """Decode an encoded image to RGB(A), refusing what is too large before decoding it."""
    from PIL import Image

    image = open_image(data)
    limits.check(image.width, image.height, scale, patch, run_scale)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
            return to_array(image)
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise CorruptImage(CORRUPT_IMAGE.format(format=image.format, detail=error)) from None


def resize_alpha(alpha: np.ndarray, scale: int) -> np.ndarray:
    """The alpha plane `scale` times larger; fully opaque stays exactly opaque."""
    height, width = alpha.shape
    if alpha.min() == 255:
        return np.full((height * scale, width * scale), 255, np.uint8)
    from PIL import Image

    plane = Image.fromarray(np.ascontiguousarray(alpha), mode="L")
    return np.asarray(plane.resize((width * scale, height * scale), Image.Resampling.BICUBIC))


# --- results as files ---------------------------------------------------------------------

# A result carries nothing of its source's metadata: no EXIF (camera, place, time), no colour
# profile (its pixels were converted to sRGB on the way in, which is what an untagged image
# means), no text. PNG is written here, by Pillow, at zlib's level 6: measured on photos
# enlarged 2x, a third smaller than Chromium's own PNG (astronaut 1024²: 1.21 MB against
# 1.82 MB), a quarter of that from writing RGB where every pixel is opaque; it costs about
# 0.4 s a megapixel in Pyodide (Chromium: 0.04 s), so past PNG_FAST_PIXELS level 1 keeps a
# large result's wait to seconds (a quarter smaller than Chromium's, 4 times faster than 6).
# JPEG and WebP are the browser's (in the worker): as small as Pillow's, and 3 to 4 times
# faster.
RESULT_TYPES = ("image/png", "image/jpeg", "image/webp")
PNG_LEVEL = 6
PNG_FAST_LEVEL = 1
PNG_FAST_PIXELS = 8_000_000


def check_encoding(kind: object, quality: object) -> tuple[str, float]:
    """The file type (a MIME type) and quality (0 to 1, for JPEG and WebP) asked for."""
    if kind not in RESULT_TYPES:
        raise InvalidOptions(BAD_ENCODING.format(known=", ".join(RESULT_TYPES), got=kind))
    if isinstance(quality, bool) or not isinstance(quality, int | float) or not 0 <= quality <= 1:
        raise InvalidOptions(BAD_QUALITY.format(got=quality))
    return str(kind), float(quality)


def encode_png(rgba: np.ndarray) -> bytes:
    """A result (height, width, 4) as PNG: RGB where every pixel is opaque, else RGBA."""
    from PIL import Image

    opaque = bool((rgba[..., 3] == 255).all())
    pixels = np.ascontiguousarray(rgba[..., :3] if opaque else rgba)
    level = PNG_LEVEL if rgba.shape[0] * rgba.shape[1] <= PNG_FAST_PIXELS else PNG_FAST_LEVEL
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB" if opaque else "RGBA").save(out, "PNG", compress_level=level)
    return out.getvalue()


# waifu2x's noise levels by the quality they clean up (its authors' guidance: level 0 for
# light, 3 for heavy compression); above the first bound a JPEG needs no noise removal.
DENOISE_BELOW = ((90, 0), (80, 1), (65, 2), (45, 3))


def suggested_denoise(quality: int | None) -> int | None:
    """The waifu2x noise level for a JPEG of this quality, None when it needs none."""
    if quality is None:
        return None
    level = None
    for bound, noise in DENOISE_BELOW:
        if quality < bound:
            level = noise
    return level


def describe_file(data: bytes) -> dict:
    """Format, size, frames (an animation is upscaled as its first), the colour profile it
    is converted from (None for sRGB) and, for a JPEG, its estimated quality and the noise
    level to remove; from the header alone, no pixel decoded."""
    image = open_image(data)
    facts = read_facts(data)
    quality = facts.quality if image.format == "JPEG" else None
    profile = colour_profile(image)
    return {"format": image.format, "width": image.width, "height": image.height,
            "jpegQuality": quality, "denoise": suggested_denoise(quality),
            "frames": getattr(image, "n_frames", 1),
            "colourProfile": profile.name if profile else None,
            "colourConverted": bool(profile and profile.convertible),
            "facts": facts.to_js()}
