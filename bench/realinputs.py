"""Real inputs: the files a shop or a seller hands over, not clean bicubic downscales.

Each photo's 300 px centre crop is the truth. The small image is the crop halved (x2) or
quartered (x4) with Pillow's bicubic, then saved under each condition: a clean PNG, JPEG at
several qualities, WebP, AVIF, blurred or noisy then JPEG. The engine gets each file as a Blob
and decodes it as a user's file; every photo model fast enough to be routed to upscales it, and
so does `model: 'auto'` (what it picked and why is kept). Each metric is a gain over Pillow's
bicubic upscale of the same decoded file, against the crop. The routing table is
routing.build_table applied to these outcomes.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import io
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from metrics import scores
from PIL import Image, ImageCms, ImageFilter

from upscale.routing import (
    BLUR_CHECKED_FROM_QUALITY,
    SPEED_FACTOR,
    Condition,
    Outcome,
    RoutingTable,
    build_table,
    read_facts,
    route_decoded,
)

# scikit-image's colour photos (sitebuild.vendor.PHOTOS).
REAL_PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
               "ihc.png", "hubble_deep_field.jpg", "retina.jpg"]
CROP = 300
# The model every other is timed against at each scale (routing.winner's `reference`).
REFERENCES = {2: "span-x2", 4: "span-x4"}
METRICS = ("psnr_y", "ssim", "ssimulacra2", "butteraugli", "butteraugli_3norm")
# Butteraugli is a distance: its gain is how much it went down.
LOWER_IS_BETTER = {"butteraugli", "butteraugli_3norm"}
NOISE_SEED = 30


def jpeg(quality: int) -> Callable[[Image.Image], bytes]:
    def save(small: Image.Image) -> bytes:
        return encoded(small, "JPEG", quality=quality, subsampling="4:2:0")
    return save


def encoded(image: Image.Image, kind: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, kind, **options)
    return out.getvalue()


def blurred(small: Image.Image) -> bytes:
    """A soft phone shot: Gaussian sigma 1 on the small image, then JPEG q85."""
    return jpeg(85)(small.filter(ImageFilter.GaussianBlur(1)))


def noisy(small: Image.Image) -> bytes:
    """A dim, noisy shot: Gaussian noise of sigma 5 levels, then JPEG q85."""
    rng = np.random.default_rng(NOISE_SEED)
    pixels = np.asarray(small, np.float64) + rng.normal(0, 5, (small.height, small.width, 3))
    return jpeg(85)(Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8)))


@dataclass(frozen=True)
class Made:
    """A condition and how its file is made from the small image (and its MIME type)."""

    condition: Condition
    make: Callable[[Image.Image], bytes]
    mime: str


CONDITIONS = [
    Made(Condition("clean", "lossless"), lambda small: encoded(small, "PNG"), "image/png"),
    *(Made(Condition(f"jpeg-q{q}", "jpeg", q), jpeg(q), "image/jpeg") for q in (95, 90, 75, 50)),
    Made(Condition("webp-q80", "webp"), lambda small: encoded(small, "WEBP", quality=80),
         "image/webp"),
    Made(Condition("avif-q60", "avif"), lambda small: encoded(small, "AVIF", quality=60),
         "image/avif"),
    # The facts of these are a JPEG q85's: the table cannot route on blur or noise.
    Made(Condition("blur-q85", "jpeg", 85, routable=False, blurry=True), blurred, "image/jpeg"),
    Made(Condition("noise-q85", "jpeg", 85, routable=False), noisy, "image/jpeg"),
]
QUICK_CONDITIONS = ["clean", "jpeg-q90", "jpeg-q50"]
# Bytes at equal quality: x2 thumbnails as shops send them.
BYTES_CONDITIONS = ["jpeg-q90", "jpeg-q75"]
BYTES_CONTENDERS = ["span-x2", "auto", "bicubic"]


@dataclass(frozen=True)
class Plan:
    photos: list[str]
    conditions: list[Made]
    models: dict[int, list[str]]  # by scale, 'auto' last
    skipped: dict[str, str]  # model -> why it was not run


def plan(quick: bool, catalogue: dict[str, dict], speeds: dict[str, float]) -> Plan:
    """Every photo model at x2 and x4 within SPEED_FACTOR of the reference's time, and 'auto';
    a quick run: one photo, three conditions, span-x2, one waifu2x and 'auto' at x2."""
    if quick:
        quick_conditions = [m for m in CONDITIONS if m.condition.name in QUICK_CONDITIONS]
        return Plan(REAL_PHOTOS[:1], quick_conditions,
                    {2: ["span-x2", "waifu2x-photo-x2-denoise1", "auto"]}, {})
    models, skipped = {}, {}
    for scale, reference in REFERENCES.items():
        limit = SPEED_FACTOR * speeds[reference]
        chosen = []
        for model in sorted(m for m, entry in catalogue.items() if entry["scale"] == scale):
            purpose = catalogue[model].get("purpose")
            if purpose == "illustration":
                skipped[model] = "an illustration model"
            elif purpose == "restore":
                # offered by a click ("Restore blur"), not routed unless timed within the factor
                # (routing.winner): measured on every file all the same
                chosen.append(model)
            elif model not in speeds:
                skipped[model] = "not timed"
            elif speeds[model] > limit:
                skipped[model] = (f"{speeds[model]:,.0f} ms/MP, over {SPEED_FACTOR}x "
                                  f"{reference}'s {speeds[reference]:,.0f}")
            else:
                chosen.append(model)
        models[scale] = [*chosen, "auto"]
    return Plan(REAL_PHOTOS, CONDITIONS, models, skipped)


def as_seen(photo: Path) -> Image.Image:
    """The photo as a browser shows it: RGB in sRGB, with no colour profile left. One that
    carries another profile (rocket.jpg: Adobe RGB) is converted to sRGB here, with
    littlecms; else its PNG and AVIF files would carry the profile (Pillow keeps it) and the
    engine, which converts such files to sRGB as a browser does, would be scored against
    pixels nobody sees (-0.7 dB on rocket's clean PNG for every model, -1.6 on its AVIF)."""
    image = Image.open(photo)
    icc = image.info.get("icc_profile")
    image = image.convert("RGB")
    if icc:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" not in ImageCms.getProfileDescription(source).lower():
            image = ImageCms.profileToProfile(
                image, source, ImageCms.createProfile("sRGB"),
                renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC, outputMode="RGB")
    image.info.pop("icc_profile", None)
    return image


def crop(photo: Path) -> Image.Image:
    image = as_seen(photo)
    left, top = (image.width - CROP) // 2, (image.height - CROP) // 2
    return image.crop((left, top, left + CROP, top + CROP))


def png(image: Image.Image | np.ndarray, path: Path) -> Path:
    """Saved without a colour profile: every file a metric reads is plain sRGB."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image.save(path, "PNG")
    return path


def decoded(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def expected_route(data: bytes, scale: int, table: RoutingTable) -> str:
    """The model the engine runs for this file with `auto` (upscale.bridge.choose_model, then
    the blur check on its decoded pixels), here in CPython, to check what the engine reported."""
    return route_decoded(read_facts(data), scale, table, np.asarray(decoded(data))).model


def table_from(outcomes: dict, conditions: list[Condition], speeds: dict[str, float],
               measured: str) -> RoutingTable:
    """routing.build_table on the stored outcomes ({scale: {condition: {model: entry}}}, each
    entry's per-photo gains): PSNR-Y per photo and the mean SSIMULACRA2 gain; 'auto' aside."""
    scales = {int(scale): {name: {model: Outcome(tuple(entry["photos"][p]["psnr_y"]
                                                       for p in sorted(entry["photos"])),
                                                 entry["mean"]["ssimulacra2"])
                                  for model, entry in by_model.items() if model != "auto"}
                           for name, by_model in by_condition.items()}
              for scale, by_condition in outcomes.items()}
    return build_table(scales, conditions, speeds, {s: REFERENCES[s] for s in scales}, measured)


def gains(model: dict[str, float], bicubic: dict[str, float]) -> dict[str, float]:
    return {k: (bicubic[k] - model[k]) if k in LOWER_IS_BETTER else (model[k] - bicubic[k])
            for k in METRICS}


def mean_of(per_photo: dict[str, dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([row[k] for row in per_photo.values()])) for k in METRICS}


class Scorer:
    """Metrics in worker processes while the browser upscales; equal images scored once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pool = concurrent.futures.ProcessPoolExecutor(max_workers=2)
        self.by_digest: dict[str, concurrent.futures.Future] = {}

    def submit(self, truth: Path, rgb: np.ndarray, shave: int) -> concurrent.futures.Future:
        digest = hashlib.sha256(truth.name.encode() + rgb.tobytes()).hexdigest()[:20]
        if digest not in self.by_digest:
            path = png(rgb, self.folder / f"{digest}.png")
            self.by_digest[digest] = self.pool.submit(scores, truth, path, shave)
        return self.by_digest[digest]

    def close(self) -> None:
        self.pool.shutdown()


def measure(new_engine_page, real_plan: Plan, speeds: dict[str, float], measured: str,
            log: Callable[[str], None], auto_table: Callable[[RoutingTable], RoutingTable | None],
            stored: dict | None = None) -> dict:
    """The whole section. `new_engine_page(table)`: a harness page whose engine is served
    `table` as routing.json (None: the build's). `auto_table(built)`: the table 'auto' runs
    with, given the one built from this run's outcomes (None: the build's). `stored`: an
    earlier full run of the section on the same plan, whose outcomes of every model but 'auto'
    are taken as they are (the files are made again, byte for byte: fixed crops, encoders and
    noise seed): the table is built from them by today's rule, and 'auto' and the bytes at
    equal quality are measured again."""
    from sitebuild import vendor

    sources = vendor.ensure_photos()
    with tempfile.TemporaryDirectory(prefix="upscale-real-") as tmp:
        folder = Path(tmp)
        scorer = Scorer(folder)
        try:
            crops = {p: crop(sources[p]) for p in real_plan.photos}
            truths = {p: png(crops[p], folder / f"truth-{p}.png") for p in real_plan.photos}
            files: dict[int, dict[str, dict[str, bytes]]] = {}
            for scale in real_plan.models:
                side = CROP // scale
                small = {p: crops[p].resize((side, side), Image.Resampling.BICUBIC)
                         for p in real_plan.photos}
                files[scale] = {made.condition.name: {p: made.make(small[p])
                                                      for p in real_plan.photos}
                                for made in real_plan.conditions}
            mimes = {m.condition.name: m.mime for m in real_plan.conditions}
            pending = {}  # (scale, condition, model, photo) -> Future of the scores

            def upscale_all(page, scale: int, model: str) -> dict:
                got = {}
                for name, by_photo in files[scale].items():
                    log(f"real inputs: x{scale} {model} on {name}")
                    got[name] = page.evaluate("(a) => bench.realInputs(a)", {
                        "model": model, "scale": scale, "files": {
                            p: {"data": base64.b64encode(data).decode(), "type": mimes[name]}
                            for p, data in by_photo.items()}})
                    for p, out in got[name].items():
                        if "error" in out:
                            raise RuntimeError(f"x{scale} {model} on {name} ({p}): {out['error']}")
                        rgb = np.frombuffer(base64.b64decode(out.pop("rgb")), np.uint8).reshape(
                            out["height"], out["width"], 3)
                        pending[scale, name, model, p] = scorer.submit(truths[p], rgb, scale)
                return got

            conditions = [m.condition for m in real_plan.conditions]
            if stored is not None:
                outcomes = {scale: {name: {m: e for m, e in by_model.items() if m != "auto"}
                                    for name, by_model in by_condition.items()}
                            for scale, by_condition in stored["outcomes"].items()}
                bicubic_scores = stored["bicubic"]
                added_models(new_engine_page, real_plan, files, outcomes, bicubic_scores,
                             pending, upscale_all)
            else:
                outcomes, bicubic_scores = every_model(new_engine_page, real_plan, files, truths,
                                                       scorer, pending, upscale_all)
            built = table_from(outcomes, conditions, speeds, measured)
            table = auto_table(built)

            log("real inputs: auto")
            page = new_engine_page(table)
            served = table or page.evaluate("""async () => {
              const url = new URL(window.BENCH_FOLDERS.web + 'routing.json', location.href);
              return (await fetch(url)).json(); }""")
            served = served if isinstance(served, RoutingTable) else RoutingTable.from_json(served)
            mismatches = []
            for scale in real_plan.models:
                got = upscale_all(page, scale, "auto")
                for name, by_photo in got.items():
                    base = bicubic_scores[str(scale)][name]
                    per_photo = {p: gains(pending[scale, name, "auto", p].result(), base[p])
                                 for p in real_plan.photos}
                    picks = {p: by_photo[p]["model"] for p in real_plan.photos}
                    for p, data in files[scale][name].items():
                        want = expected_route(data, scale, served)
                        if picks[p] != want:
                            mismatches.append(f"x{scale} {name} {p}: the engine ran {picks[p]}, "
                                              f"the table routes it to {want}")
                    outcomes[str(scale)][name]["auto"] = {
                        "photos": per_photo, "mean": mean_of(per_photo), "picked": picks,
                        "reasons": {p: by_photo[p]["reason"] for p in real_plan.photos}}
            page.context.close()
            sent = {str(scale): {name: {p: len(data) for p, data in by_photo.items()}
                                 for name, by_photo in files[scale].items()}
                    for scale in files}
            log("real inputs: bytes at equal quality")
            bytes_table = equal_quality_bytes(scorer, truths, sources, outcomes, bicubic_scores,
                                              sent, real_plan.photos)
        finally:
            scorer.close()
    return {
        "photos": real_plan.photos, "crop": CROP,
        "sides": {str(s): CROP // s for s in real_plan.models},
        "conditions": [{"name": c.name, "kind": c.kind, "quality": c.quality,
                        "routable": c.routable, "blurry": c.blurry} for c in conditions],
        "models": {str(s): m for s, m in real_plan.models.items()},
        "skipped": real_plan.skipped,
        "speeds": {m: speeds[m] for ms in real_plan.models.values() for m in ms if m in speeds},
        "sent_bytes": sent,
        "bicubic": bicubic_scores,
        "outcomes": outcomes,
        "routing": built.to_json(),
        "auto_table": served.measured,
        "auto_mismatches": mismatches,
        "bytes": bytes_table,
    }


def added_models(new_engine_page, real_plan: Plan, files: dict, outcomes: dict,
                 bicubic_scores: dict, pending: dict, upscale_all) -> None:
    """The models of the plan that the stored outcomes lack (added since that run), run on
    every file and put into `outcomes`."""
    missing = {scale: [m for m in models[:-1]
                       if any(m not in by_model for by_model in outcomes[str(scale)].values())]
               for scale, models in real_plan.models.items()}
    if not any(missing.values()):
        return
    page = new_engine_page(None)
    for scale, models in missing.items():
        for model in models:
            upscale_all(page, scale, model)
    page.context.close()
    for scale, models in missing.items():
        for name in files[scale]:
            base = bicubic_scores[str(scale)][name]
            for model in models:
                per_photo = {p: gains(pending[scale, name, model, p].result(), base[p])
                             for p in real_plan.photos}
                outcomes[str(scale)][name][model] = {"photos": per_photo,
                                                     "mean": mean_of(per_photo)}


def every_model(new_engine_page, real_plan: Plan, files: dict, truths: dict, scorer: Scorer,
                pending: dict, upscale_all) -> tuple[dict, dict]:
    """Bicubic and every model but 'auto' on every file: (outcomes, bicubic scores)."""
    for scale in files:
        for name, by_photo in files[scale].items():
            for p, data in by_photo.items():
                bicubic = np.asarray(decoded(data).resize((CROP, CROP), Image.Resampling.BICUBIC))
                pending[scale, name, "bicubic", p] = scorer.submit(truths[p], bicubic, scale)
    page = new_engine_page(None)
    for scale, models in real_plan.models.items():
        for model in models[:-1]:
            upscale_all(page, scale, model)
    page.context.close()

    def settled(scale, name, model) -> dict:
        return {p: pending[scale, name, model, p].result() for p in real_plan.photos}

    outcomes: dict[str, dict] = {}
    bicubic_scores: dict[str, dict] = {}
    for scale, models in real_plan.models.items():
        outcomes[str(scale)], bicubic_scores[str(scale)] = {}, {}
        for name in files[scale]:
            base = settled(scale, name, "bicubic")
            bicubic_scores[str(scale)][name] = base
            outcomes[str(scale)][name] = {}
            for model in models[:-1]:
                per_photo = {p: gains(s, base[p]) for p, s in settled(scale, name, model).items()}
                outcomes[str(scale)][name][model] = {"photos": per_photo,
                                                     "mean": mean_of(per_photo)}
    return outcomes, bicubic_scores


# --- bytes at equal quality ------------------------------------------------------------------

def jpeg_ladder(truth: Path, targets: dict[str, list[float]]) -> dict[str, list[dict]]:
    """For each metric and each target score, the smallest Pillow quality (4:2:0) at which the
    300 px JPEG of the original reaches the target, found by binary search (the metrics grow
    with quality, near enough), and its bytes. `bound` is '>' where even quality 100 falls
    short (its bytes are given), '<' where quality 1 already reaches it."""
    original = Image.open(truth).convert("RGB")
    probes: dict[int, tuple[int, dict[str, float]]] = {}

    def probe(q: int) -> tuple[int, dict[str, float]]:
        if q not in probes:
            data = jpeg(q)(original)
            path = png(decoded(data), truth.with_name(f"{truth.stem}-q{q}.png"))
            probes[q] = (len(data), scores(truth, path, 2))
        return probes[q]

    def reaches(value: float, target: float, metric: str) -> bool:
        return value <= target if metric in LOWER_IS_BETTER else value >= target

    found: dict[str, list[dict]] = {}
    for metric, wanted in targets.items():
        found[metric] = []
        for target in wanted:
            low, high = 1, 100
            if not reaches(probe(high)[1][metric], target, metric):
                found[metric].append({"quality": 100, "bytes": probe(100)[0], "bound": ">"})
                continue
            while low < high:
                middle = (low + high) // 2
                if reaches(probe(middle)[1][metric], target, metric):
                    high = middle
                else:
                    low = middle + 1
            found[metric].append({"quality": low, "bytes": probe(low)[0],
                                  "bound": "<" if low == 1 else ""})
    return found


BYTES_METRICS = ("psnr_y", "ssimulacra2", "butteraugli")


def equal_quality_bytes(scorer: Scorer, truths: dict[str, Path], sources, outcomes: dict,
                        bicubic_scores: dict, sent: dict, photos: list[str]) -> dict:
    """For x2 thumbnails sent as JPEG q90 / q75: what a 300 px JPEG of the original reaching
    the same score as each contender's upscale would weigh, over the bytes of the 150 px file
    sent. The contenders' scores are absolute: bicubic's plus the gain."""
    conditions = [c for c in BYTES_CONDITIONS if c in outcomes.get("2", {})]
    jobs = {}
    for p in photos:
        targets: dict[str, list[float]] = {m: [] for m in BYTES_METRICS}
        for name in conditions:
            base = bicubic_scores["2"][name][p]
            for who in BYTES_CONTENDERS:
                for m in BYTES_METRICS:
                    if who == "bicubic":
                        targets[m].append(base[m])
                        continue
                    gain = outcomes["2"][name][who]["photos"][p][m]
                    targets[m].append(base[m] - gain if m in LOWER_IS_BETTER else base[m] + gain)
        jobs[p] = scorer.pool.submit(jpeg_ladder, truths[p], targets)
    table: dict = {name: {who: {m: {} for m in BYTES_METRICS} for who in BYTES_CONTENDERS}
                   for name in conditions}
    for p in photos:
        ladder = jobs[p].result()
        for m in BYTES_METRICS:
            steps = iter(ladder[m])
            for name in conditions:
                for who in BYTES_CONTENDERS:
                    step = next(steps)
                    table[name][who][m][p] = {**step, "ratio": step["bytes"] / sent["2"][name][p]}
    for name in conditions:
        for who in BYTES_CONTENDERS:
            for m in BYTES_METRICS:
                ratios = [row["ratio"] for row in table[name][who][m].values()]
                table[name][who][m] = {"photos": table[name][who][m],
                                       "mean_ratio": float(np.mean(ratios)),
                                       "min_ratio": float(min(ratios)),
                                       "max_ratio": float(max(ratios))}
    return table



# --- the report --------------------------------------------------------------------------------

LABELS = {"psnr_y": "PSNR-Y (dB)", "ssim": "SSIM", "ssimulacra2": "SSIMULACRA2",
          "butteraugli": "Butteraugli", "butteraugli_3norm": "Butteraugli 3-norm"}


def worst(entry: dict, metric: str) -> float:
    return min(row[metric] for row in entry["photos"].values())


def picks(entry: dict) -> str:
    """'span-x2 ×6, waifu2x-photo-x2-denoise1 ×2': what auto ran, by how many photos."""
    counted: dict[str, int] = {}
    for model in entry["picked"].values():
        counted[model] = counted.get(model, 0) + 1
    return ", ".join(f"{m} ×{n}" for m, n in sorted(counted.items(), key=lambda kv: -kv[1]))


def section(real: dict) -> list[str]:
    photos = [p.rsplit(".", 1)[0] for p in real["photos"]]
    sides = ", ".join(f"{side} px for x{scale}" for scale, side in real["sides"].items())
    conditions = {c["name"]: c for c in real["conditions"]}
    table = RoutingTable.from_json(real["routing"])
    out = ["", "## Real inputs: JPEG thumbnails, WebP, AVIF, blur and noise", "",
           f"{real['crop']} px centre crops of {len(photos)} photos ({', '.join(photos)}; "
           "scikit-image's wheel) are the truth. Each is shrunk with Pillow's bicubic "
           f"({sides}: the small image) and saved as a user would get it: `clean` (PNG), "
           "`jpeg-qN` (Pillow, 4:2:0), `webp-q80`, `avif-q60` (Pillow's AVIF), `blur-q85` "
           "(Gaussian σ1 on the small image, then JPEG q85), `noise-q85` (Gaussian noise σ5 "
           "levels, then JPEG q85). The engine gets each file as a Blob (`up.upscale(blob, "
           "{ model })`, WebAssembly) and decodes it as a user's file. Every gain is over "
           "Pillow's bicubic upscale of the same decoded file, against the crop: PSNR-Y and SSIM "
           "(as above), SSIMULACRA2 (PyPI `ssimulacra2` 0.3.0; higher is better, 90 is visually "
           "lossless) and Butteraugli (Debian libjxl-devtools' `butteraugli_main`, its max-norm "
           "distance; lower is better, so the gain is how much it went down). Means over the "
           "photos; `worst` is the worst photo's PSNR-Y gain.", "",
           f"Models: every photo model no slower than {SPEED_FACTOR}x the reference "
           f"({', '.join(f'{m} at x{s}' for s, m in REFERENCES.items())}) by the quality "
           "section's ms/MP, and `auto` itself: the engine's own choice from the file's header, "
           f"with the routing table it was served ({real['auto_table']})."]
    if real.get("skipped"):
        out += ["", "Not run: " + "; ".join(f"{m} ({why})"
                                            for m, why in sorted(real["skipped"].items())) + "."]
    if real.get("command"):
        out += ["", f"This section was measured on its own: `{real['command']}` "
                f"({real['minutes']} min), commit {real['commit']}, {real['date']}; the other "
                "sections are from the run named at the top."]
    if again := real.get("auto_again"):
        out += ["", f"The routing table was built again from these outcomes by today's rule, and "
                f"`auto` and the bytes at equal quality measured again with it: "
                f"`{again['command']}` ({again['minutes']} min), commit {again['commit']}, "
                f"{again['date']}."]
    if real["auto_mismatches"]:
        out += ["", "**The engine's picks differ from the table's routes:** "
                + "; ".join(real["auto_mismatches"])]
    out += ["", "![gain over bicubic per condition and model](real.svg)", ""]
    for scale, by_condition in real["outcomes"].items():
        reference = REFERENCES[int(scale)]
        out += [f"### x{scale}: what `auto` ran, against {reference}", "",
                f"| condition | auto ran | PSNR-Y gain, auto (worst) | {reference} (worst) | "
                f"SSIMULACRA2 gain, auto | {reference} | Butteraugli reduction, auto | "
                f"{reference} |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, by_model in by_condition.items():
            auto, ref = by_model["auto"], by_model[reference]
            out.append(
                f"| {name} | {picks(auto)} | {auto['mean']['psnr_y']:+.2f} "
                f"({worst(auto, 'psnr_y'):+.2f}) | {ref['mean']['psnr_y']:+.2f} "
                f"({worst(ref, 'psnr_y'):+.2f}) | {auto['mean']['ssimulacra2']:+.1f} | "
                f"{ref['mean']['ssimulacra2']:+.1f} | {auto['mean']['butteraugli']:+.2f} | "
                f"{ref['mean']['butteraugli']:+.2f} |")
        reasons = sorted({r for entry in by_condition.values()
                          for r in entry["auto"]["reasons"].values()})
        out += ["", "Reasons the engine gave: " + "; ".join(f"“{r}”" for r in reasons) + ".", ""]
    out += table_section(table, real)
    for scale, by_condition in real["outcomes"].items():
        out += [f"### x{scale}: every model (mean of the photos)", "",
                "★: the routing rule's winner for the condition; blur is routed by the decoded "
                "pixels (routing.sharpness), where its winner is not the header's model; noise "
                "is not routed (neither the header nor the estimate tells it from a sharp JPEG "
                "q85).", "",
                "| condition | model | PSNR-Y gain | worst | SSIM gain | SSIMULACRA2 gain | "
                "Butteraugli reduction | 3-norm reduction |",
                "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        bicubic = real["bicubic"][scale]
        for name, by_model in by_condition.items():
            won = routed_winner(table, int(scale), name, conditions[name])
            base = bicubic[name]
            mean = {m: float(np.mean([row[m] for row in base.values()])) for m in METRICS}
            out.append(f"| {name} | bicubic (absolute) | {mean['psnr_y']:.2f} dB | | "
                       f"{mean['ssim']:.4f} | {mean['ssimulacra2']:.1f} | "
                       f"{mean['butteraugli']:.2f} | {mean['butteraugli_3norm']:.2f} |")
            for model, entry in by_model.items():
                m = entry["mean"]
                label = f"auto ({picks(entry)})" if model == "auto" else model
                star = " ★" if model == won else ""
                out.append(f"| {name} | {label}{star} | {m['psnr_y']:+.2f} | "
                           f"{worst(entry, 'psnr_y'):+.2f} | {m['ssim']:+.4f} | "
                           f"{m['ssimulacra2']:+.1f} | {m['butteraugli']:+.2f} | "
                           f"{m['butteraugli_3norm']:+.2f} |")
        out.append("")
    out += bytes_section(real)
    out += meaning(real)
    return out


def routed_winner(table: RoutingTable, scale: int, name: str, condition: dict) -> str | None:
    """The model the table gives the condition it was measured on (None: not routed)."""
    if scale not in table.scales:
        return None
    routes = table.scales[scale]
    if condition.get("blurry"):
        return routes.blurry
    if not condition["routable"]:
        return None
    if condition["kind"] == "lossless":
        return routes.lossless
    if condition["kind"] == "jpeg":
        return next((b.model for b in routes.jpeg if b.condition == name), None)
    return routes.lossy.get(condition["kind"])


def table_section(table: RoutingTable, real: dict) -> list[str]:
    out = ["### The routing table these outcomes give (routing.build_table)", "",
           f"`{table.measured}`" if table.measured else "", "",
           "| scale | input | model | measured on |", "| --- | --- | --- | --- |"]
    for scale, routes in sorted(table.scales.items()):
        out.append(f"| x{scale} | lossless (PNG, pixels) | {routes.lossless} | clean |")
        upper = 100
        for band in routes.jpeg:
            out.append(f"| x{scale} | JPEG quality {band.at_least}–{upper} | {band.model} | "
                       f"{band.condition} |")
            upper = band.at_least - 1
        for kind, model in sorted(routes.lossy.items()):
            out.append(f"| x{scale} | {kind.upper()} (lossy) | {model} | {kind} |")
        if routes.blurry:
            out.append(f"| x{scale} | pixels that read blurred (lossless, WebP, JPEG ≥ "
                       f"{BLUR_CHECKED_FROM_QUALITY}) | {routes.blurry} | blur |")
    return [*out, ""]


def bytes_section(real: dict) -> list[str]:
    table = real.get("bytes") or {}
    if not table:
        return []
    out = ["### Bytes at equal quality (x2 thumbnails)", "",
           "A shop sends the 150 px JPEG and the browser upscales it. What would a 300 px JPEG "
           "of the original weigh that scores as well (Pillow, 4:2:0, the lowest quality that "
           "reaches the score, by binary search)? Its bytes over the 150 px file's, mean over "
           "the photos [min–max]; '<'/'>': quality 1 already reaches it / quality 100 does not.",
           "", "| sent as | upscaled by | PSNR-Y | SSIMULACRA2 | Butteraugli |",
           "| --- | --- | --- | --- | --- |"]
    for name, by_who in table.items():
        for who, by_metric in by_who.items():
            cells = []
            for metric in BYTES_METRICS:
                entry = by_metric[metric]
                bounds = sorted({row["bound"] for row in entry["photos"].values()} - {""})
                cells.append(f"{entry['mean_ratio']:.1f}x [{entry['min_ratio']:.1f}–"
                             f"{entry['max_ratio']:.1f}]" + (f" {''.join(bounds)}" if bounds
                                                              else ""))
            out.append(f"| {name} | {who} | " + " | ".join(cells) + " |")
    return [*out, ""]


def meaning(real: dict) -> list[str]:
    x2 = real["outcomes"].get("2", {})
    if not x2:
        return []
    lines = []
    for name, by_model in x2.items():
        auto, span = by_model["auto"], by_model["span-x2"]
        lines.append(f"{name}: auto {auto['mean']['psnr_y']:+.2f} dB / "
                     f"{auto['mean']['ssimulacra2']:+.1f} SSIMULACRA2, span-x2 "
                     f"{span['mean']['psnr_y']:+.2f} dB / {span['mean']['ssimulacra2']:+.1f}")
    return ["### What this means", "",
            "SPAN is trained on clean bicubic downscales: on a clean file it is the sharpest, "
            "but it sharpens JPEG blocks and ringing too, which SSIMULACRA2 and Butteraugli see "
            "and PSNR half forgives. `auto` reads a file's header (format, a JPEG's quality) "
            "and runs the model the bench measured best for such files by the routing rule "
            "(the best mean SSIMULACRA2 of the models that keep PSNR-Y at or above bicubic on "
            "every photo, else on the mean). Blur and noise "
            "cannot be read from a header: such files get their JPEG quality's model, and no "
            "fast model here undoes blur. At x2, mean gains over bicubic (PSNR-Y / "
            "SSIMULACRA2), " + "; ".join(lines) + ".", ""]


# --- the chart ---------------------------------------------------------------------------------

CHART_METRICS = ("psnr_y", "ssimulacra2")
PALETTE = ["#1a7f37", "#0969da", "#8250df", "#bf3989", "#cf222e", "#bc4c00", "#6e7781",
           "#4d2d00", "#116329", "#0550ae", "#953800"]


def chart(real: dict) -> str:
    """An SVG per scale and metric (PSNR-Y and SSIMULACRA2 gain over bicubic): the conditions
    along x, a line per model; auto's drawn black and thick."""
    scales = list(real["outcomes"])
    panel_w, panel_h, left, top, gap, legend_w = 520, 260, 60, 30, 70, 230
    width = left + len(CHART_METRICS) * (panel_w + gap) + legend_w
    height = top + len(scales) * (panel_h + gap + 20)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11"><rect width="100%" height="100%" '
           f'fill="white"/>']
    models = [m for s in scales for m in real["outcomes"][s][next(iter(real["outcomes"][s]))]]
    colours = {m: ("#000000" if m == "auto" else PALETTE[i % len(PALETTE)])
               for i, m in enumerate(dict.fromkeys(m for m in models if m != "auto"))}
    colours["auto"] = "#000000"
    for row, scale in enumerate(scales):
        by_condition = real["outcomes"][scale]
        names = list(by_condition)
        y0 = top + row * (panel_h + gap + 20)
        for col, metric in enumerate(CHART_METRICS):
            x0 = left + col * (panel_w + gap)
            values = [e["mean"][metric] for c in names for e in by_condition[c].values()]
            low, high = min(0.0, min(values)), max(0.0, max(values))
            pad = (high - low) * 0.08 or 1
            low, high = low - pad, high + pad
            step = panel_w / len(names)

            def x_of(i, x0=x0, step=step):
                return x0 + (i + 0.5) * step

            def y_of(v, y0=y0, low=low, high=high):
                return y0 + (high - v) / (high - low) * panel_h

            svg.append(f'<text x="{x0}" y="{y0 - 10}" font-weight="bold">x{scale}: '
                       f'{LABELS[metric]} gain over bicubic</text>')
            svg.append(f'<rect x="{x0}" y="{y0}" width="{panel_w}" height="{panel_h}" '
                       'fill="none" stroke="#d0d7de"/>')
            for tick in np.linspace(low, high, 6):
                y = y_of(tick)
                svg.append(f'<text x="{x0 - 6}" y="{y:.1f}" text-anchor="end" '
                           f'dominant-baseline="middle">{tick:+.1f}</text>')
            svg.append(f'<line x1="{x0}" x2="{x0 + panel_w}" y1="{y_of(0):.1f}" '
                       f'y2="{y_of(0):.1f}" stroke="#6e7781"/>')
            for i, name in enumerate(names):
                svg.append(f'<text x="{x_of(i):.1f}" y="{y0 + panel_h + 14}" '
                           f'text-anchor="middle" font-size="10">{name}</text>')
            for model in by_condition[names[0]]:
                points = " ".join(
                    f"{x_of(i):.1f},{y_of(by_condition[c][model]['mean'][metric]):.1f}"
                    for i, c in enumerate(names))
                wide = 3 if model == "auto" else 1.5
                svg.append(f'<polyline data-model="{model}" data-scale="{scale}" '
                           f'data-metric="{metric}" fill="none" stroke="{colours[model]}" '
                           f'stroke-width="{wide}" points="{points}"/>')
    lx = left + len(CHART_METRICS) * (panel_w + gap)
    for i, (model, colour) in enumerate(colours.items()):
        y = top + 10 + i * 18
        wide = 3 if model == "auto" else 1.5
        svg.append(f'<line x1="{lx}" x2="{lx + 24}" y1="{y}" y2="{y}" stroke="{colour}" '
                   f'stroke-width="{wide}"/><text x="{lx + 30}" y="{y}" '
                   f'dominant-baseline="middle">{model}</text>')
    svg.append("</svg>")
    return "\n".join(svg) + "\n"
