"""The demo shop's assets: its product photos at two sizes, and the embed's integrity."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

from .common import DIST, ROOT, cache_dir, log
from .provision import ensure_env
from .vendor import PHOTOS, ensure_photos

SHOP_SMALL = 150  # px: what the shop serves to Upscale
SHOP_LARGE = 300  # px: what it would serve without Upscale (only for the byte comparison)
# stem -> (photo, (left, top, side)): square crops of the pinned photos. shop.html names the
# products and prices; a unit test keeps the two lists in step.
SHOP_PRODUCTS = {
    "astronaut-print": ("astronaut.png", (0, 0, 512)),
    "shuttle-model": ("astronaut.png", (322, 0, 190)),
    "flight-helmet": ("astronaut.png", (268, 318, 194)),
    "mission-patch": ("astronaut.png", (118, 338, 120)),
    "flight-suit": ("astronaut.png", (10, 150, 340)),
    "cat-portrait": ("chelsea.png", (76, 0, 300)),
    "green-eyes-poster": ("chelsea.png", (150, 60, 220)),
    "espresso-cup": ("coffee.png", (90, 0, 390)),
    "espresso-spoon": ("coffee.png", (320, 100, 150)),
    "walnut-board": ("coffee.png", (440, 220, 160)),
    "launch-pad-print": ("rocket.jpg", (110, 0, 427)),
    "night-launch-poster": ("rocket.jpg", (230, 40, 220)),
    "launch-tower": ("rocket.jpg", (0, 0, 220)),
}


def shop_photos() -> dict[str, Path]:
    """The shop's product photos as {dist path: file}, made once per spec and then cached.

    Pillow makes them, so this runs `shop-photos` in .venv (numpy and Pillow only)."""
    spec = json.dumps([SHOP_SMALL, SHOP_LARGE, SHOP_PRODUCTS, PHOTOS], sort_keys=True)
    folder = cache_dir() / "shop" / hashlib.sha256(spec.encode()).hexdigest()[:16]
    names = [f"{size}/{stem}.jpg" for stem in SHOP_PRODUCTS for size in ("small", "large")]
    if not all((folder / name).is_file() for name in names):
        ensure_photos()
        python = ensure_env(test=False)
        scratch = folder.with_name(folder.name + ".partial")
        shutil.rmtree(scratch, ignore_errors=True)
        log("making the demo shop's product photos")
        subprocess.run([str(python), str(ROOT / "build.py"), "shop-photos", str(scratch)],
                       check=True)
        shutil.rmtree(folder, ignore_errors=True)
        scratch.rename(folder)
    return {f"shop/{name}": folder / name for name in names}


def make_shop_photos(out: Path) -> None:
    """Crop, resize and save each product as a small and a large JPEG (needs Pillow)."""
    from PIL import Image

    photos = ensure_photos()
    for stem, (photo, (left, top, side)) in SHOP_PRODUCTS.items():
        with Image.open(photos[photo]) as image:
            crop = image.convert("RGB").crop((left, top, left + side, top + side))
        for size, quality in (("small", 80), ("large", 90)):
            pixels = SHOP_SMALL if size == "small" else SHOP_LARGE
            target = out / size / f"{stem}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            crop.resize((pixels, pixels), Image.Resampling.LANCZOS).save(
                target, "JPEG", quality=quality, optimize=True, progressive=True)


def embed_integrity() -> str:
    """The Subresource Integrity value of the built embed.js, for the snippet a shop pastes
    (it names the web folder, so each build of the engine has its own)."""
    digest = hashlib.sha384((DIST / "embed.js").read_bytes()).digest()
    return "sha384-" + base64.b64encode(digest).decode()
