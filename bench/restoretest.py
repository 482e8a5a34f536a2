"""Where does the restore model help a blurred photo? The evidence for
upscale.routing.RESTORE_FROM_CONTRAST.

Each crop of bench/blurtest.py's photos (14 scikit-image photos, the bench's centre crop and
up to 4 off-centre ones: 68 crops) is made as the bench makes its `blur-q85` file: the 300 px
crop shrunk with bicubic (150 px for x2, 75 px for x4), Gaussian sigma 1, JPEG q85. The
restore network (Real-ESRGAN realesr-general-x4v3, the ncnn files the build converts) runs on
the decoded file in numpy (tests/ncnn_reference.py, as ncnn computes it); at x2 its x4 result
is halved as the engine halves it (upscale.stitch.reduce_into). The gain is PSNR-Y over
Pillow's bicubic of the same file, against the crop, as the bench scores it; `contrast` is
routing.contrast of the decoded file (luma's standard deviation, levels of 255).

Measured (the run at the commit that added it):
- x2: the 10 crops under 15 levels (retina.jpg's 5 and moon.png's 5) all lose, -0.6 to
  -3.5 dB; of the 58 from 16.9 levels up, 57 gain (+0.2 to +2.8) and one brick crop loses
  0.08. A floor of 16 parts them. Fitted without one photo (halfway between the highest
  losing crop under it and the lowest gaining one), the floor still puts that photo's crops on
  their side: without the moon 14.9 (its crops reach 14.6), without the retina 15.8 (12.8),
  without hubble_deep_field 16.2 (its lowest crop 16.9 gains).
- x4: no floor parts them. brick.png gains about 5 dB at 12-14 levels while retina.jpg loses
  up to 1.5 at 12.5; grass.png and gravel.png (fine texture, 15-18 levels) lose 0.2-0.8.

Run: PYTHONPATH=py .venv/bin/python bench/restoretest.py (about 5 minutes on 2 cores)
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "py"), str(ROOT / "bench")]

from blurtest import crops, photos  # noqa: E402
from metrics import psnr_y  # noqa: E402
from realinputs import CROP, blurred  # noqa: E402

from sitebuild import models  # noqa: E402
from tests.ncnn_reference import NcnnNet  # noqa: E402
from upscale.routing import RESTORE_FROM_CONTRAST, contrast  # noqa: E402
from upscale.stitch import reduce_into  # noqa: E402

RESTORE = "realesr-general-x4v3"
SHAVE = 4  # as the bench's real-input section scores x2 and x4 alike


def gain(net: NcnnNet, piece: Image.Image, scale: int) -> tuple[float, float]:
    """(PSNR-Y gain over bicubic, contrast of the file) for one crop at `scale`."""
    side = CROP // scale
    data = blurred(piece.resize((side, side), Image.Resampling.BICUBIC))
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    network = net.forward(decoded.astype(np.float32) / 255)
    result = np.clip(np.round(network * 255), 0, 255).astype(np.uint8)
    if scale != 4:
        result = reduce_into(result, np.empty((CROP, CROP, 3), np.uint8), 4 // scale)
    bicubic = np.asarray(Image.fromarray(decoded).resize((CROP, CROP),
                                                         Image.Resampling.BICUBIC))
    truth = np.asarray(piece)
    return psnr_y(result, truth, SHAVE) - psnr_y(bicubic, truth, SHAVE), contrast(decoded)


def main() -> None:
    param, weights = models.ncnn_sources(models.load_manifests())[RESTORE]
    net = NcnnNet.load(param.read_text(), weights.read_bytes())
    for scale in (2, 4):
        rows = []
        for name, path in photos().items():
            for centre in (True, False):
                for where, piece in crops(path, centre):
                    rows.append((*gain(net, piece, scale), name, where))
        rows.sort(key=lambda row: row[1])
        print(f"\nx{scale}: {len(rows)} crops, by contrast\n")
        print("| photo | crop | contrast | PSNR-Y gain |\n| --- | --- | --- | --- |")
        for db, level, name, where in rows:
            print(f"| {name} | {where} | {level:.1f} | {db:+.2f} |")
        floor = RESTORE_FROM_CONTRAST.get(scale)
        if floor is None:
            print(f"\nno floor at x{scale}")
            continue
        below = [db for db, level, *_ in rows if level < floor]
        above = [db for db, level, *_ in rows if level >= floor]
        print(f"\nfloor {floor}: below it {sum(d < 0 for d in below)} of {len(below)} lose; "
              f"from it {sum(d > 0 for d in above)} of {len(above)} gain")


if __name__ == "__main__":
    main()
