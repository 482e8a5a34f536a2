"""`model: 'auto'`: which model enlarges an image best, from what is known before inference.

An image's `Facts` (its container format, a JPEG's estimated quality and chroma subsampling)
are read from the file's header; the `RoutingTable` says which model wins for each kind of
input at each scale. The table is data: the bench measures every photo model on real photos
under each condition (clean, JPEG at several qualities, WebP, ...) and `build_table` applies
the rule to its measurements; the build ships the result as `routing.json`. Nothing here
knows a model by name.

The rule, per condition, among the models no slower than `SPEED_FACTOR` times the reference
model: the best mean SSIMULACRA2 gain over bicubic (a perceptual metric that sees JPEG blocks
and ringing, which PSNR forgives) of those whose PSNR-Y gain is at least 0 on every photo;
where none is, of those whose mean PSNR-Y gain is at least 0 (a photo the source itself
spoiled, such as a JPEG made clean, loses with every model); where none is, the one with the
best worst photo.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from .errors import BAD_ROUTING, InvalidOptions

TABLE_VERSION = 1

# Formats that keep every pixel: nothing to clean up, the sharpest model wins.
LOSSLESS_FORMATS = frozenset({"PNG", "GIF", "BMP"})
# Lossy containers routed as a whole (their quality is not read).
LOSSY_FORMATS = frozenset({"WEBP", "AVIF"})

SPEED_FACTOR = 3

# A JPEG's chroma subsampling by its first component's sampling factors (horizontal, vertical).
SUBSAMPLING = {(1, 1): "4:4:4", (2, 1): "4:2:2", (2, 2): "4:2:0"}


@dataclass(frozen=True)
class Facts:
    """What is known of an image before it runs: `format` as Pillow names it (None: raw
    pixels, no file), a JPEG's libjpeg `quality` estimate and chroma `subsampling`, and whether
    a WebP is `lossless`."""

    format: str | None = None
    quality: int | None = None
    subsampling: str | None = None
    lossless: bool = False

    @property
    def kind(self) -> str:
        """The condition family the table routes on: 'lossless', 'jpeg', or a lossy format's
        name in lower case."""
        if self.format is None or self.format in LOSSLESS_FORMATS or self.lossless:
            return "lossless"
        if self.format == "JPEG":
            return "jpeg"
        return self.format.lower()

    def describe(self) -> str:
        """The reason a person reads: 'JPEG, quality ≈ 78, 4:2:0'."""
        if self.format is None:
            return "pixels, not a file: no compression to undo"
        if self.format == "JPEG":
            parts = ["JPEG"]
            if self.quality is not None:
                parts.append(f"quality ≈ {self.quality}")
            if self.subsampling:
                parts.append(self.subsampling)
            return ", ".join(parts)
        if self.kind == "lossless":
            lossless = "lossless " if self.format == "WEBP" else ""
            return f"{lossless}{self.format}: no compression noise"
        return f"{self.format} (lossy)"

    def to_js(self) -> dict:
        return {"format": self.format, "quality": self.quality,
                "subsampling": self.subsampling, "lossless": self.lossless}


# --- the facts, read from a file's first bytes (no Pillow: the storefront's engine has none) ---

# How much of a file the facts are read from: a JPEG's tables sit before its first scan, after
# its metadata (EXIF and an ICC profile, up to 64 KB each).
HEADER_BYTES = 256 * 1024

# The IJG (libjpeg) luminance table at quality 50, which its quality setting scales.
IJG_LUMINANCE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])


def ijg_table(quality: int) -> np.ndarray:
    """The luminance table libjpeg writes at `quality` (1-100)."""
    factor = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((IJG_LUMINANCE * factor + 50) // 100, 1, 255)


def jpeg_quality(tables: Mapping[int, list[int]]) -> int | None:
    """The libjpeg quality whose luminance table is nearest to the file's, or None without
    one. Compared as sorted values, so the tables' coefficient order does not matter."""
    luminance = tables.get(0)
    if luminance is None or len(luminance) != 64:
        return None
    actual = np.sort(np.asarray(luminance, np.int64))
    errors = [np.abs(np.sort(ijg_table(q)) - actual).sum() for q in range(1, 101)]
    return int(np.argmin(errors)) + 1


# The blur estimate. Each 8x8 block of luma on the JPEG's own grid, through an orthonormal DCT:
# inside a block, JPEG's blocking is invisible and its quantisation only zeroes coefficients, so
# a sharp JPEG keeps the high frequencies of its strong edges while a blurred photo has none to
# keep. A coefficient's band is its larger index (0-7, eighths of the Nyquist frequency);
# Gaussian blur of sigma 1 leaves about 0.7 of band 2's amplitude and 0.3 of band 4's.
_DCT8 = np.cos(np.pi * np.outer(np.arange(8), 2 * np.arange(8) + 1) / 16) * 0.5
_DCT8[0] /= math.sqrt(2)
_BAND = np.maximum.outer(np.arange(8), np.arange(8))
_LUMA = np.array([0.299, 0.587, 0.114])  # BT.601, as JPEG's Y
# Sampled on an even grid of whole blocks past this many: a 2 MP photo costs what a 512 px
# square does.
SHARPNESS_BLOCKS = 4096
# How much of the score is the fall from band 1 to band 3 rather than the share of bands 4-7:
# it keeps soft but sharp content (a dark retina, the moon) and blurred fine texture (grass,
# brick) on their own sides, where the share alone cannot.
SHARPNESS_SLOPE = 0.7
# Below this, `sharpness` calls an image blurry. Both constants are bench/blurtest.py's fit
# (0.72, -0.485), rounded, on 14 scikit-image photos as the bench's real inputs make them (300 px
# crops halved with bicubic). With them, Gaussian blur of sigma 1 then JPEG q85 is called
# blurry on 62 of 62 files (8 of 8 of the bench's own) and the sharp conditions (clean, JPEG
# q95/90/75, WebP q80, AVIF q60) on 10 of 372 (none of the bench's 48): faint detail lost to
# JPEG q75 or AVIF on the dark retina and the moon. Leave-one-photo-out: 98 % and 2.7 %.
# Lighter blur is mostly not called (sigma 0.7: 13 %), nor is noise, nor JPEG q50 (13 %).
BLURRY_BELOW = -0.48


def sharpness(pixels: np.ndarray) -> float:
    """A no-reference measure of how sharp an image is at its own pixel scale: higher is
    sharper, below `BLURRY_BELOW` reads as blurred (Gaussian sigma about 1 or more).

    `pixels` is luma (H, W) or RGB (H, W, 3), 0-255, as decoded: before any EXIF rotation or
    crop, so that a JPEG's blocks start at the top left (read off its grid, a JPEG's block
    edges pass for detail). The score is `share` minus `SHARPNESS_SLOPE` times `fall`, of
    `sharpness_terms`. An image under 8 px on a side scores infinity: nothing to judge, and
    calling it sharp costs least."""
    terms = sharpness_terms(pixels)
    if terms is None:
        return math.inf
    share, fall = terms
    return share - SHARPNESS_SLOPE * fall


def sharpness_terms(pixels: np.ndarray) -> tuple[float, float] | None:
    """`sharpness`'s two terms (None under 8 px on a side): `share`, log10 of the energy of
    bands 4-7 over that of bands 1-2, and `fall`, log10 of band 3's mean energy per coefficient
    over band 1's. The 8x8 blocks from the top left (a JPEG's grid) go through a DCT, at most
    `SHARPNESS_BLOCKS` of them on an even grid. Every coefficient's energy starts at the noise
    of 8-bit rounding (1/12 per pixel), so a flat image scores as sharp and faint detail is not
    mistaken for missing detail."""
    rows, columns = pixels.shape[0] // 8, pixels.shape[1] // 8
    if rows == 0 or columns == 0:
        return None
    step = max(1, math.ceil(math.sqrt(rows * columns / SHARPNESS_BLOCKS)))
    grid = pixels[:rows * 8, :columns * 8].reshape(rows, 8, columns, 8, *pixels.shape[2:])
    blocks = np.moveaxis(grid[::step, :, ::step], 2, 1).astype(np.float64)
    if blocks.ndim == 5:
        blocks = blocks @ _LUMA
    blocks = blocks.reshape(-1, 8, 8)
    energy = np.square(_DCT8 @ blocks @ _DCT8.T).sum(axis=0) + len(blocks) / 12
    share = energy[_BAND >= 4].sum() / energy[(_BAND >= 1) & (_BAND <= 2)].sum()
    fall = energy[_BAND == 3].mean() / energy[_BAND == 1].mean()
    return float(math.log10(share)), float(math.log10(fall))


# Start-of-frame markers (baseline, progressive, lossless, arithmetic): not DHT, JPG or DAC.
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_START_OF_SCAN = 0xDA
_NO_LENGTH = frozenset({0x01, *range(0xD0, 0xDA)})  # TEM, RSTn, SOI, EOI


def jpeg_header(data: bytes) -> tuple[dict[int, list[int]], str | None]:
    """A JPEG's quantisation tables ({table id: 64 values}) and chroma subsampling, read from
    its markers up to the first scan; what is missing or cut short is left out."""
    tables: dict[int, list[int]] = {}
    subsampling = None
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            break
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in _NO_LENGTH:
            at += 2
            continue
        if marker == _START_OF_SCAN:
            break
        length = int.from_bytes(data[at + 2:at + 4], "big")
        segment = data[at + 4:at + 2 + length]
        if marker == 0xDB:
            i = 0
            while i < len(segment):
                wide, table = segment[i] >> 4, segment[i] & 0x0F
                size = 128 if wide else 64
                values = segment[i + 1:i + 1 + size]
                if len(values) < size:
                    break
                tables[table] = [int.from_bytes(values[k:k + 2], "big") for k in range(0, 128, 2)] \
                    if wide else list(values)
                i += 1 + size
        elif marker in _SOF and len(segment) >= 9 and segment[5] == 3:
            sampling = segment[7]
            subsampling = SUBSAMPLING.get((sampling >> 4, sampling & 0x0F))
        at += 2 + length
    return tables, subsampling


# Formats Pillow in Pyodide does not read and a browser may (AVIF everywhere, HEIF in Safari).
BROWSER_FORMATS = frozenset({"AVIF", "HEIF"})


def sniff(data: bytes) -> str | None:
    """The format of a file by its signature, as Pillow names it; None if not one routed."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:2] == b"BM":
        return "BMP"
    if data[4:12] in (b"ftypavif", b"ftypavis"):
        return "AVIF"
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1"):
        return "HEIF"
    return None


def read_facts(data: bytes) -> Facts:
    """The facts of a file from its first bytes (HEADER_BYTES are enough); a file of no
    routed format counts as pixels."""
    kind = sniff(data)
    if kind == "JPEG":
        tables, subsampling = jpeg_header(data)
        return Facts("JPEG", jpeg_quality(tables), subsampling)
    if kind == "WEBP":
        return Facts("WEBP", lossless=webp_is_lossless(data))
    return Facts(kind)


def webp_is_lossless(data: bytes) -> bool:
    """A WebP's first chunk: 'VP8L' is lossless, 'VP8 ' lossy; an extended file ('VP8X')
    names its image chunk after its optional ones."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return False
    at = 12
    while at + 8 <= len(data) and at < 4096:
        chunk, size = data[at:at + 4], int.from_bytes(data[at + 4:at + 8], "little")
        if chunk in (b"VP8L", b"VP8 "):
            return chunk == b"VP8L"
        at += 8 + size + (size & 1)
    return False


@dataclass(frozen=True)
class Route:
    """The model `auto` chose and why, in words."""

    model: str
    why: str

    def to_js(self) -> dict:
        return {"model": self.model, "reason": self.why}


@dataclass(frozen=True)
class Band:
    """JPEGs of estimated quality `at_least` and above (down to the next band) get `model`,
    as measured on `condition`."""

    at_least: int
    model: str
    condition: str


@dataclass(frozen=True)
class ScaleRoutes:
    """The routes at one scale: `lossless` inputs, JPEG by quality band (highest first, the
    last at 0), each other lossy format, and `blurry`: a file whose decoded pixels read as
    blurred (`sharpness`; see `blurred`), where the header alone would send it elsewhere."""

    lossless: str
    jpeg: tuple[Band, ...]
    lossy: Mapping[str, str]
    blurry: str | None = None

    def models(self) -> set[str]:
        return {self.lossless, *(band.model for band in self.jpeg), *self.lossy.values(),
                *([self.blurry] if self.blurry else [])}


@dataclass(frozen=True)
class RoutingTable:
    scales: Mapping[int, ScaleRoutes]
    measured: str = ""  # which bench run decided it

    def models(self) -> set[str]:
        return set().union(*(routes.models() for routes in self.scales.values()))

    def preferred(self, scale: int) -> str:
        """The model to load first at `scale` (lossless inputs' model: pixels and PNGs)."""
        return self.routes(scale).lossless

    def routes(self, scale: int) -> ScaleRoutes:
        if scale not in self.scales:
            routed = ", ".join(f"×{s}" for s in sorted(self.scales))
            raise InvalidOptions(BAD_ROUTING.format(
                detail=f"no route for ×{scale} (routed: {routed})"))
        return self.scales[scale]

    def within(self, models: set[str]) -> RoutingTable:
        """The table for a build that serves only `models` (the npm package's selection):
        a scale whose lossless model is missing goes; a route to a missing model gets the
        scale's lossless model instead. Empty when no scale is left."""
        def kept(model: str, routes: ScaleRoutes) -> str:
            return model if model in models else routes.lossless

        return RoutingTable({
            scale: ScaleRoutes(
                routes.lossless,
                tuple(Band(b.at_least, kept(b.model, routes), b.condition) for b in routes.jpeg),
                {name: kept(model, routes) for name, model in routes.lossy.items()},
                routes.blurry if routes.blurry in models else None)
            for scale, routes in self.scales.items() if routes.lossless in models
        }, self.measured)

    def to_json(self) -> dict:
        return {
            "version": TABLE_VERSION,
            "measured": self.measured,
            "scales": {str(scale): {
                "lossless": routes.lossless,
                "jpeg": [{"atLeast": b.at_least, "model": b.model, "condition": b.condition}
                         for b in routes.jpeg],
                "lossy": dict(sorted(routes.lossy.items())),
                **({"blurry": routes.blurry} if routes.blurry else {}),
            } for scale, routes in sorted(self.scales.items())},
        }

    @classmethod
    def from_json(cls, data: object) -> RoutingTable:
        """The table as routing.json holds it; anything malformed is InvalidOptions naming
        what is wrong."""
        def need(ok: bool, detail: str) -> None:
            if not ok:
                raise InvalidOptions(BAD_ROUTING.format(detail=detail))

        need(isinstance(data, dict), "not an object")
        need(data.get("version") == TABLE_VERSION,
             f"version {data.get('version')!r} is not {TABLE_VERSION}")
        scales = data.get("scales")
        need(isinstance(scales, dict) and bool(scales), "no scales")
        parsed = {}
        for key, routes in scales.items():
            need(key.isdigit() and 1 <= int(key) <= 16, f"scale {key!r}")
            need(isinstance(routes, dict), f"×{key} is not an object")
            bands = routes.get("jpeg") or []
            need(isinstance(bands, list) and bool(bands), f"×{key} has no JPEG bands")
            jpeg = tuple(Band(int(b["atLeast"]), str(b["model"]), str(b.get("condition", "")))
                         for b in bands)
            need([b.at_least for b in jpeg] == sorted({b.at_least for b in jpeg}, reverse=True),
                 f"×{key}'s JPEG bands must go from the highest quality down, each once")
            need(jpeg[-1].at_least == 0, f"×{key}'s last JPEG band must start at quality 0")
            lossy = routes.get("lossy") or {}
            need(isinstance(lossy, dict), f"×{key}'s lossy routes are not an object")
            need(isinstance(routes.get("lossless"), str), f"×{key} has no lossless model")
            blurry = routes.get("blurry")
            need(blurry is None or isinstance(blurry, str), f"×{key}'s blurry route")
            parsed[int(key)] = ScaleRoutes(routes["lossless"], jpeg,
                                           {str(k): str(v) for k, v in lossy.items()}, blurry)
        return cls(parsed, str(data.get("measured", "")))


def route(facts: Facts, scale: int, table: RoutingTable) -> Route:
    """The model for an image with these facts at `scale`, and why."""
    routes = table.routes(scale)
    kind = facts.kind
    if kind == "jpeg":
        quality = facts.quality if facts.quality is not None else 0
        band = next(b for b in routes.jpeg if quality >= b.at_least)
        return Route(band.model, facts.describe())
    if kind in routes.lossy:
        return Route(routes.lossy[kind], facts.describe())
    if kind != "lossless":
        # A lossy format the bench did not measure: treat it as the middle JPEG band.
        middle = routes.jpeg[len(routes.jpeg) // 2]
        return Route(middle.model, f"{facts.describe()}, routed as a JPEG of quality ≈ "
                                   f"{max(middle.at_least, 1)} or more")
    return Route(routes.lossless, facts.describe())


# Files whose header may hide a blurred photo: lossless ones, WebP, and JPEGs from this quality
# up. Below it (and in AVIF) compression itself strips faint detail as blur does: all 10 sharp
# files bench/blurtest.py read as blurry, of 372, were JPEG q75 or AVIF q60 (the guard was set
# after seeing them); every blurred file it caught stays caught.
BLUR_CHECKED_FROM_QUALITY = 80
BLUR_CHECKED_KINDS = ("lossless", "jpeg", "webp")


def blur_route(facts: Facts, scale: int, table: RoutingTable) -> str | None:
    """The model for this file at `scale` if its pixels read blurred (the table's blurry
    route), where its facts allow the check and that model is not the one `route` gives;
    else None (no pixels need reading)."""
    routes = table.routes(scale)
    if not routes.blurry or facts.kind not in BLUR_CHECKED_KINDS:
        return None
    if facts.kind == "jpeg" and (facts.quality or 0) < BLUR_CHECKED_FROM_QUALITY:
        return None
    return None if routes.blurry == route(facts, scale, table).model else routes.blurry


# The restore model wipes faint texture away as noise where a picture has little else. At x2, on
# bench/restoretest.py's 68 crops of 14 photos blurred as the bench blurs them, each of the 10
# whose luma varies by less than 15 levels (standard deviation; retina.jpg and moon.png) lost
# to bicubic with it (-0.6 to -3.5 dB PSNR-Y), and 57 of the 58 from 16.9 levels up gained
# (+0.2 to +2.8 dB; one brick crop -0.08). Such a file keeps the model its header gives. At x4
# no floor parts them (brick gains 5 dB at 12 levels, retina loses 1.5 at 12.5): none is set.
RESTORE_FROM_CONTRAST = {2: 16.0}
# Luma is sampled on an even grid past this many pixels: a 2 MP photo costs what 512 px does.
CONTRAST_PIXELS = 512 * 512


def contrast(pixels: np.ndarray) -> float:
    """Luma's standard deviation in levels of 255, of `pixels` (H, W) or (H, W, 3)."""
    step = max(1, math.ceil(math.sqrt(pixels.shape[0] * pixels.shape[1] / CONTRAST_PIXELS)))
    sample = pixels[::step, ::step].astype(np.float64)
    if sample.ndim == 3:
        sample = sample[..., :3] @ _LUMA
    return float(sample.std())


def restore_reason(pixels: np.ndarray, scale: int) -> str | None:
    """Why a file whose decoded `pixels` these are goes to the blurry route at `scale` (the
    words added to its header's reason), or None: they must read blurred and, where the scale
    has a floor, hold the contrast the restore model needs."""
    score = sharpness(pixels)
    if not score < BLURRY_BELOW:
        return None
    floor = RESTORE_FROM_CONTRAST.get(scale)
    if floor is not None and contrast(pixels) < floor:
        return None
    return blurred(score)


# A faint photo saved as JPEG: its compression noise is large beside what detail it has, and
# the models sharpen that noise or smooth the detail away. bench/contrasttest.py runs the
# table's JPEG routes on 68 crops of 14 photos (in numpy, or in the engine for a TF.js model);
# the 10 crops whose luma varies by less than 16 levels (retina.jpg, moon.png) are the faint
# ones. At x2, 8 of them lost to bicubic with the q95 route (mean -0.34 dB PSNR-Y) and 7 with
# the q90 route (mean 0.00); at x4, 5, 9, 10 and 10 with the q95, q90, q75 and q50 routes
# (means +0.01, -0.24, -0.48, -0.35). Every one of the 58 crops from 16 levels up gained with
# the q95 and q90 routes, at both scales. The table's own rule (the models whose PSNR-Y gain
# keeps every photo at or above bicubic) then leaves only bicubic for faint files there. At x2
# the q75 and q50 routes (the heavier clean-up) gained on all 10 faint crops, so those keep
# their model. Such a file gets a plain bicubic enlargement: Pillow's BICUBIC, exactly.
PLAIN = "bicubic"
PLAIN_BELOW_CONTRAST = 16.0
PLAIN_FROM_QUALITY = {2: 83, 4: 0}  # per scale: JPEGs of this estimated quality and above


def plain_below(facts: Facts, scale: int) -> float | None:
    """The contrast under which a file with these facts gets the plain enlargement at `scale`
    (run() measures its decoded pixels), or None where no measurement says so."""
    at_least = PLAIN_FROM_QUALITY.get(scale)
    if at_least is None or facts.kind != "jpeg" or facts.quality is None:
        return None
    return PLAIN_BELOW_CONTRAST if facts.quality >= at_least else None


def plain_reason(pixels: np.ndarray, below: float) -> str | None:
    """Why a file whose decoded `pixels` these are gets the plain enlargement (the words added
    to its header's reason), or None where its contrast reaches `below`."""
    level = contrast(pixels)
    if not level < below:
        return None
    return (f"faint (contrast {level:.1f}, under {below:g}): every model measured enlarges "
            f"such a file worse than bicubic")


def route_decoded(facts: Facts, scale: int, table: RoutingTable, pixels: np.ndarray) -> Route:
    """`auto`'s whole rule, as the engine applies it (bridge.choose_model, then run()'s check of
    the decoded `pixels`): for the bench and the tests, in CPython."""
    chosen = route(facts, scale, table)
    if (blurry := blur_route(facts, scale, table)) and (why := restore_reason(pixels, scale)):
        return Route(blurry, f"{chosen.why}; {why}")
    if (below := plain_below(facts, scale)) is not None and (why := plain_reason(pixels, below)):
        return Route(PLAIN, f"{chosen.why}; {why}")
    return chosen


def blurred(score: float) -> str:
    """Why a file whose pixels scored `score` went to the blurry route, added to the reason
    its header gave."""
    return f"looks blurred (sharpness {score:.2f}, below {BLURRY_BELOW})"


# --- deciding the table from the bench's measurements -----------------------------------------


@dataclass(frozen=True)
class Condition:
    """One of the bench's input conditions and the facts a file made under it shows: `kind`
    as Facts.kind, `quality` for a JPEG; `routable` False where the condition differs from
    another only in what the facts cannot see (a blurred photo saved as JPEG q85); `blurry`:
    its winner is the table's route for files whose pixels read blurred."""

    name: str
    kind: str
    quality: int | None = None
    routable: bool = True
    blurry: bool = False

    def facts(self) -> Facts:
        """What a file made under this condition shows in its header."""
        formats = {"lossless": "PNG", "jpeg": "JPEG"}
        return Facts(formats.get(self.kind, self.kind.upper()), self.quality)


@dataclass(frozen=True)
class Outcome:
    """One model on one condition, each as a gain over bicubic of the same decoded file:
    PSNR-Y per photo (dB) and the mean SSIMULACRA2 gain (points)."""

    psnr_y: tuple[float, ...]
    ssimulacra2: float


def winner(outcomes: Mapping[str, Outcome], speeds: Mapping[str, float], reference: str) -> str:
    """The rule (see the module's docstring) applied to one condition's outcomes by model;
    `speeds`: ms per megapixel by model, `reference`: the model the others are timed against."""
    limit = SPEED_FACTOR * speeds[reference]
    fast = {m: o for m, o in outcomes.items() if speeds.get(m, math.inf) <= limit}
    if not fast:
        raise ValueError(f"no model within {SPEED_FACTOR}x of {reference}'s time")
    for keeps in (min, lambda gains: sum(gains) / len(gains)):
        safe = {m: o for m, o in fast.items() if keeps(o.psnr_y) >= 0}
        if safe:
            return max(sorted(safe), key=lambda m: safe[m].ssimulacra2)
    return max(sorted(fast), key=lambda m: min(fast[m].psnr_y))


def build_table(scales: Mapping[int, Mapping[str, Mapping[str, Outcome]]],
                conditions: list[Condition], speeds: Mapping[str, float],
                references: Mapping[int, str], measured: str = "") -> RoutingTable:
    """The routing table from the bench's outcomes: {scale: {condition name: {model:
    Outcome}}}. JPEG bands split halfway between the measured qualities; a format the bench
    measured as a whole (WebP, AVIF) gets its condition's winner; lossless inputs the clean
    condition's."""
    by_name = {c.name: c for c in conditions}
    table = {}
    for scale, results in scales.items():
        wins = {name: winner(outcomes, speeds, references[scale])
                for name, outcomes in results.items() if by_name[name].routable}
        jpegs = sorted((c for c in conditions if c.kind == "jpeg" and c.name in wins),
                       key=lambda c: c.quality, reverse=True)
        if not jpegs:
            raise ValueError(f"×{scale}: no JPEG condition measured")
        bounds = [math.ceil((a.quality + b.quality) / 2)
                  for a, b in zip(jpegs, jpegs[1:], strict=False)]
        bands = tuple(Band(bound, wins[c.name], c.name)
                      for bound, c in zip([*bounds, 0], jpegs, strict=True))
        lossless = [c.name for c in conditions if c.kind == "lossless" and c.name in wins]
        if not lossless:
            raise ValueError(f"×{scale}: no lossless condition measured")
        lossy = {c.kind: wins[c.name] for c in conditions
                 if c.kind not in ("jpeg", "lossless") and c.name in wins}
        routes = ScaleRoutes(wins[lossless[0]], bands, lossy)
        table[scale] = replace(routes, blurry=blurry_winner(
            routes, scale, [c for c in conditions if c.blurry and c.name in results],
            results, speeds, references[scale]))
    return RoutingTable(table, measured)


def blurry_winner(routes: ScaleRoutes, scale: int, blurred: list[Condition],
                  results: Mapping[str, Mapping[str, Outcome]], speeds: Mapping[str, float],
                  reference: str) -> str | None:
    """The blurry route: the winner of the blurred condition, where it is not the model the
    header already gives those files (else checking their pixels would change nothing)."""
    if not blurred:
        return None
    condition = blurred[0]
    best = winner(results[condition.name], speeds, reference)
    header = route(condition.facts(), scale, RoutingTable({scale: routes}))
    return None if best == header.model else best
