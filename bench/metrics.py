"""Image quality metrics for the bench, each of an upscaled image against the original.

PSNR and SSIM on Y (the super-resolution papers' convention); SSIMULACRA2 and Butteraugli,
the perceptual metrics image-codec work uses: they see JPEG blocks, ringing and blur that
PSNR forgives (PSNR favours blur). SSIMULACRA2: higher is better (100: identical, 90: visually
lossless, 50: medium quality); Butteraugli: a distance, lower is better (below 1: no visible
difference).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

BUTTERAUGLI = Path("/usr/bin/butteraugli_main")  # Debian's libjxl-devtools


def luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 Y in [16, 235], the convention of super-resolution papers."""
    rgb = rgb.astype(np.float64)
    return 16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255


def psnr_y(a: np.ndarray, b: np.ndarray, shave: int) -> float:
    ya, yb = luma(a)[shave:-shave, shave:-shave], luma(b)[shave:-shave, shave:-shave]
    mse = np.mean((ya - yb) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255**2 / mse))


def _gaussian_filter(image: np.ndarray, sigma: float = 1.5, radius: int = 5) -> np.ndarray:
    x = np.arange(-radius, radius + 1)
    kernel = np.exp(-(x**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    rows = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="valid"), 1, image)
    return np.apply_along_axis(lambda c: np.convolve(c, kernel, mode="valid"), 0, rows)


def ssim_y(a: np.ndarray, b: np.ndarray, shave: int) -> float:
    """SSIM on Y (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03)."""
    x, y = luma(a)[shave:-shave, shave:-shave], luma(b)[shave:-shave, shave:-shave]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _gaussian_filter(x), _gaussian_filter(y)
    sxx = _gaussian_filter(x * x) - mx * mx
    syy = _gaussian_filter(y * y) - my * my
    sxy = _gaussian_filter(x * y) - mx * my
    ssim = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return float(ssim.mean())


def ssimulacra2(original: Path, distorted: Path) -> float:
    """SSIMULACRA2 of two image files (PyPI `ssimulacra2`, a port of libjxl's tool)."""
    from ssimulacra2 import compute_ssimulacra2

    return float(compute_ssimulacra2(str(original), str(distorted)))


def butteraugli(original: Path, distorted: Path) -> tuple[float, float]:
    """Butteraugli's distance (the max norm `butteraugli_main` prints first) and its 3-norm."""
    done = subprocess.run([str(BUTTERAUGLI), str(original), str(distorted)],
                          capture_output=True, text=True, check=False)
    lines = done.stdout.split()
    if done.returncode != 0 or len(lines) < 3 or lines[1] != "3-norm:":
        raise RuntimeError(f"{BUTTERAUGLI.name} {original.name} {distorted.name}: "
                           f"exit {done.returncode}: {done.stdout}{done.stderr[-500:]}")
    return float(lines[0]), float(lines[2])


def scores(original: Path, distorted: Path, shave: int) -> dict[str, float]:
    """Every metric of `distorted` against `original` (PNG files of the same size); PSNR-Y and
    SSIM leave a border of `shave` px out, as the papers do at that scale."""
    from PIL import Image

    truth = np.asarray(Image.open(original).convert("RGB"))
    ours = np.asarray(Image.open(distorted).convert("RGB"))
    worst, norm3 = butteraugli(original, distorted)
    return {"psnr_y": psnr_y(ours, truth, shave), "ssim": ssim_y(ours, truth, shave),
            "ssimulacra2": ssimulacra2(original, distorted),
            "butteraugli": worst, "butteraugli_3norm": norm3}
