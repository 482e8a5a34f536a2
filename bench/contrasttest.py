"""Do auto's JPEG routes lose to bicubic on faint, low-contrast photos? The evidence for
upscale.routing.PLAIN_FROM_QUALITY, as restoretest.py is for the restore model's floor.

Each crop of bench/blurtest.py's photos (14 scikit-image photos, the bench's centre crop and
up to 4 off-centre ones: 68 crops) is shrunk with bicubic (150 px for x2, 75 px for x4) and
saved as JPEG at the bench's qualities (95, 90, 75, 50; Pillow, 4:2:0). The model
bench/routing.json routes that quality to runs on the decoded file: in numpy where it was
converted from ncnn (tests/ncnn_reference.py, as ncnn computes it; a model with a margin gets
the file's edge repeated around it), else in the engine (Chromium, WebAssembly, dist/ served
as the bench serves it: `python build.py` first), which decodes the file itself. The gain is
PSNR-Y over Pillow's bicubic of the same file, against the crop, as the bench scores it;
`contrast` is routing.contrast of the decoded file (luma's standard deviation, levels of 255).

Measured (2026-12-07, routing.json of commit 9b85f10): under 16 levels are the 10 crops of
retina.jpg and moon.png; from 16 levels up, the 58 others.
- x2, q95 (span-x2-wide): under 16, 8 of 10 lose (mean -0.34 dB, best +0.45); from 16, none
  (mean +2.22, worst +0.89).
- x2, q90 (waifu2x-photo-x2-denoise0): under 16, 7 of 10 lose (mean +0.00, best +0.56); from
  16, none (mean +1.73, worst +0.49).
- x2, q75 and q50 (waifu2x-photo-x2-denoise3): none loses under 16 (means +0.16 and +0.60)
  or from it (worst +0.08 and +0.19).
- x4, q95 (span-x4-wide): under 16, 5 of 10 lose (mean +0.01, best +0.29; retina's 5 all
  lose); from 16, none (mean +1.81, worst +0.35).
- x4, q90 (span-x4-wide): under 16, 9 of 10 lose (mean -0.24, best +0.01); from 16, none
  (mean +1.22, worst +0.06).
- x4, q75 and q50 (esrgan-medium-x4, in the engine): under 16, all 10 lose (means -0.48 and
  -0.35, best -0.05 and -0.10); from 16, 28 and 51 of 58 lose too (means -0.03 and -0.15).

Run: PYTHONPATH=py .venv/bin/python bench/contrasttest.py (about 9 minutes on 2 cores)
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "py"), str(ROOT / "bench")]

from blurtest import crops, photos  # noqa: E402
from metrics import psnr_y  # noqa: E402
from realinputs import CROP, decoded, jpeg  # noqa: E402

from sitebuild import models  # noqa: E402
from tests.ncnn_reference import NcnnNet  # noqa: E402
from upscale.routing import RESTORE_FROM_CONTRAST, contrast  # noqa: E402

QUALITIES = (95, 90, 75, 50)
SHAVE = 4  # as the bench's real-input section scores


def routes(scale: int) -> dict[int, str]:
    """The model routing.json gives each of QUALITIES at `scale`."""
    table = json.loads((ROOT / "bench" / "routing.json").read_text())["scales"][str(scale)]
    return {q: next(r["model"] for r in table["jpeg"] if q >= r["atLeast"]) for q in QUALITIES}


class Runners:
    """Each model on a list of JPEG files: in numpy where it was converted from ncnn, else in
    the engine (Chromium, WebAssembly, dist/ served as the bench serves it), started once."""

    def __init__(self, stack: contextlib.ExitStack):
        self.manifests = {m["id"]: m for m in models.load_manifests()}
        self.sources = models.ncnn_sources(list(self.manifests.values()))
        self.nets: dict[str, NcnnNet] = {}
        self.stack = stack
        self.page = None

    def run(self, model: str, files: list[bytes], pixels: list[np.ndarray]) -> list[np.ndarray]:
        """`model` on each file (whose decoded `pixels` numpy starts from)."""
        if model in self.sources:
            return [self.in_numpy(model, each) for each in pixels]
        return self.in_engine(model, files)

    def in_numpy(self, model: str, pixels: np.ndarray) -> np.ndarray:
        if model not in self.nets:
            param, weights = self.sources[model]
            self.nets[model] = NcnnNet.load(param.read_text(), weights.read_bytes())
        margin = self.manifests[model].get("margin", 0)
        padded = np.pad(pixels, ((margin, margin), (margin, margin), (0, 0)), mode="edge")
        network = self.nets[model].forward(padded.astype(np.float32) / 255)
        return np.clip(np.round(network * 255), 0, 255).astype(np.uint8)

    def in_engine(self, model: str, files: list[bytes]) -> list[np.ndarray]:
        if self.page is None:
            import bench

            browser, base = self.stack.enter_context(bench.served_browser())
            self.page = bench.harness_page(browser.new_context(), base)
        got = self.page.evaluate("(a) => bench.realInputs(a)", {"model": model, "files": {
            str(i): {"data": base64.b64encode(data).decode(), "type": "image/jpeg"}
            for i, data in enumerate(files)}})
        out = []
        for i in range(len(files)):
            result = got[str(i)]
            if "error" in result:
                raise RuntimeError(f"{model}: {result['error']}")
            out.append(np.frombuffer(base64.b64decode(result["rgb"]), np.uint8).reshape(
                result["height"], result["width"], 3))
        return out


def main() -> None:
    with contextlib.ExitStack() as stack:
        runners = Runners(stack)
        for scale in (2, 4):
            table(scale, routes(scale), runners)


def table(scale: int, chosen: dict[int, str], runners: Runners) -> None:
    floor = RESTORE_FROM_CONTRAST[2]
    pieces = [(name, where, piece) for name, path in photos().items()
              for centre in (True, False) for where, piece in crops(path, centre)]
    files = {q: [] for q in chosen}
    for _, _, piece in pieces:
        small = piece.resize((CROP // scale,) * 2, Image.Resampling.BICUBIC)
        for quality in chosen:
            files[quality].append(jpeg(quality)(small))
    gains = {}
    pixels = {q: [np.asarray(decoded(data)) for data in files[q]] for q in chosen}
    for quality, model in chosen.items():
        print(f"x{scale} q{quality}: {model} on {len(pieces)} crops", file=sys.stderr, flush=True)
        results = runners.run(model, files[quality], pixels[quality])
        for i, ((_, _, piece), each, result) in enumerate(
                zip(pieces, pixels[quality], results, strict=True)):
            truth = np.asarray(piece)
            bicubic = np.asarray(Image.fromarray(each).resize((CROP, CROP),
                                                              Image.Resampling.BICUBIC))
            gains[i, quality] = psnr_y(result, truth, SHAVE) - psnr_y(bicubic, truth, SHAVE)
    rows = sorted(((contrast(pixels[next(iter(chosen))][i]), name, where,
                    [gains[i, q] for q in chosen]) for i, (name, where, _) in enumerate(pieces)),
                  key=lambda row: row[0])
    heads = " | ".join(f"q{q} ({model})" for q, model in chosen.items())
    print(f"\nx{scale}: {len(rows)} crops, by contrast\n")
    print(f"| photo | crop | contrast | {heads} |\n" + "| --- " * (3 + len(chosen)) + "|")
    for level, name, where, row in rows:
        print(f"| {name} | {where} | {level:.1f} | " + " | ".join(f"{g:+.2f}" for g in row)
              + " |")
    print()
    for i, quality in enumerate(chosen):
        below = [row[i] for level, _, _, row in rows if level < floor]
        above = [row[i] for level, _, _, row in rows if level >= floor]
        print(f"x{scale} q{quality}: under {floor:g} levels {sum(g < 0 for g in below)} of "
              f"{len(below)} lose (mean {np.mean(below):+.2f}, best {max(below):+.2f}); from it "
              f"{sum(g < 0 for g in above)} of {len(above)} lose (mean {np.mean(above):+.2f}, "
              f"worst {min(above):+.2f})")


if __name__ == "__main__":
    main()
