"""What every build step shares: the project's paths, its cache, errors and log."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "dist"
NODE_MODULES = ROOT / "node_modules"
VENV = ROOT / ".venv"
PYODIDE_DIR = NODE_MODULES / "pyodide"

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
    """The package's version, where pyproject.toml's backend reads it: `upscale.__version__`.
    Imported here, not at the top (build.py imports only the standard library); the package's
    __init__ imports nothing."""
    from upscale import __version__

    return __version__



def cache_dir() -> Path:
    """$UPSCALE_CACHE, else the user cache directory ($XDG_CACHE_HOME or ~/.cache)/upscale."""
    if override := os.environ.get("UPSCALE_CACHE"):
        return Path(override)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "upscale"
