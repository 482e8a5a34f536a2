"""Benchmarks in headless Chromium: Upscale against one whole-image `model.predict`.

Run with `python build.py bench [--quick]`; writes bench/results.json, bench/REPORT.md and
the charts bench/chart.svg (time against size), bench/quality.svg (quality against speed) and
bench/real.svg (real inputs: gain per condition and model); a full run also writes
bench/routing.json, the table `auto` routes by. `--only real` runs the real-input section
alone (bench/realinputs.py) and merges it into the stored results.json.
Every figure is the median of repeated runs, with min and max.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import io
import json
import os
import platform
import re
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "py"))

import realinputs  # noqa: E402
from metrics import psnr_y, ssim_y  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from sitebuild import assemble, common, provision, serving, vendor  # noqa: E402
from upscale import routing  # noqa: E402

# In index.html, before a photo is handed over: record long tasks (>= 50 ms, the browser's
# own definition) and, to see below 50 ms too, how late a 10 ms timer fires at worst.
WATCH_MAIN_THREAD = """() => {
  const watch = { tasks: [], worstDelay: 0, started: performance.now() };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) watch.tasks.push({ start: e.startTime, ms: e.duration });
  }).observe({ type: 'longtask' });
  let expected = performance.now() + 10;
  watch.timer = setInterval(() => {
    const now = performance.now();
    watch.worstDelay = Math.max(watch.worstDelay, now - expected);
    expected = now + 10;
  }, 10);
  window.__watch = watch;
}"""

MAIN_THREAD_REPORT = """() => {
  const watch = window.__watch;
  clearInterval(watch.timer);
  const during = watch.tasks.filter((t) => t.start >= watch.started);
  return { longTasks: during.length, longestTaskMs: Math.max(0, ...during.map((t) => t.ms)),
           worstTimerDelayMs: watch.worstDelay, elapsedMs: performance.now() - watch.started };
}"""


def measure_page(browser, base: str, png: bytes, size: int) -> dict:
    """The main thread of the upscaler page while it upscales one photo from the file input."""
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.set_default_timeout(300_000)
    page.route("**/__bench__/dropped.png",
               lambda route: route.fulfill(body=png, content_type="image/png"))
    page.goto(f"{base}/index.html")
    page.wait_for_function("() => document.querySelector('#engine').dataset.state === 'ready'")
    # The file is made before watching starts, so what is measured is the page's own work
    # from the drop on (not the test harness building the File).
    page.evaluate("""async () => {
      const bytes = await (await fetch('__bench__/dropped.png')).arrayBuffer();
      window.__drop = new DataTransfer();
      window.__drop.items.add(new File([bytes], 'photo.png', { type: 'image/png' }));
    }""")
    page.evaluate(WATCH_MAIN_THREAD)
    page.evaluate("""() => document.querySelector('#drop').dispatchEvent(
      new DragEvent('drop', { bubbles: true, cancelable: true, dataTransfer: window.__drop }))""")
    page.wait_for_function("() => document.querySelector('.item')?.dataset.state === 'done'")
    measured = page.evaluate(MAIN_THREAD_REPORT)
    page.close()
    return {"size": size, **measured}


SHOP_SETTLED = """() => {
  const near = [...document.querySelectorAll('upscale-img')].filter((el) => {
    const b = el.getBoundingClientRect();
    return b.bottom > 0 && b.top < innerHeight;
  }).map((el) => el.getAttribute('src'));
  return near.length > 0 && near.every((src) => (window.__settled || []).includes(src));
}"""

SHOP_WATCH = """
window.__settled = [];
window.__fromCache = 0;
document.addEventListener('upscale-done', (e) => {
  window.__settled.push(e.target.getAttribute('src'));
  if (e.detail.fromCache) window.__fromCache += 1;
});
document.addEventListener('upscale-error',
  (e) => window.__settled.push(e.target.getAttribute('src')));
"""

SHOP_NUMBERS = """() => {
  const visible = [...document.querySelectorAll('upscale-img')].filter((el) => {
    const b = el.getBoundingClientRect();
    return b.bottom > 0 && b.top < innerHeight;
  }).length;
  const photos = performance.getEntriesByType('resource')
    .filter((r) => r.name.includes('/shop/small/'));
  return { visible, ms: performance.now(), fromCache: window.__fromCache, photos: photos.length,
           photoBytes: photos.reduce((sum, r) => sum + r.encodedBodySize, 0) };
}"""


def measure_shop(browser, base: str, server) -> dict:
    """shop.html in a fresh profile: time until every visible image is upscaled, then again
    on a second visit (from the cache); what went over the wire each time (as the server
    counted it); bytes of the small photos vs the large ones."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(SHOP_WATCH)
    page = context.new_page()
    page.set_default_timeout(300_000)
    visits = []
    for _ in range(2):
        server.served.clear()
        if visits:
            page.reload()
        else:
            page.goto(f"{base}/shop.html")
        page.wait_for_function(SHOP_SETTLED)
        visits.append({**page.evaluate(SHOP_NUMBERS), "wire": wire_summary(server.served)})
    context.close()
    small = sorted((common.DIST / "shop" / "small").glob("*.jpg"))
    large = [common.DIST / "shop" / "large" / path.name for path in small]
    return {
        "products": len(small),
        "small_bytes": sum(path.stat().st_size for path in small),
        "large_bytes": sum(path.stat().st_size for path in large),
        "first_visit": visits[0],
        "second_visit": visits[1],
    }


class CountingHandler(serving.DistHandler):
    """build.py's handler, noting each response: path, status, encoding and body bytes."""

    def send_response(self, code, message=None) -> None:
        self.response = {"path": urllib.parse.urlsplit(self.path).path, "status": int(code),
                         "encoding": None, "bytes": 0}
        self.server.served.append(self.response)
        super().send_response(code, message)

    def send_header(self, name: str, value: str) -> None:
        if name.lower() == "content-encoding":
            self.response["encoding"] = value
        super().send_header(name, value)

    def copyfile(self, source, outputfile) -> None:
        self.response["bytes"] = os.fstat(source.fileno()).st_size
        super().copyfile(source, outputfile)


# What each request's bytes belong to, for the report (first match wins).
WIRE_PARTS = [("Pyodide wasm", "pyodide.asm.wasm"), ("Pyodide JS", "/pyodide."),
              ("Python stdlib", "python_stdlib.zip"), ("numpy", "/numpy-"),
              ("Pillow", "/pillow-"), ("upscale (wheel)", "/vendor/upscale-"),
              ("Pyodide lock", "pyodide-lock.json"), ("TF.js", "/vendor/tfjs-"),
              ("models", "/models/"), ("product photos", "/shop/"), ("page and app", "")]


def wire_summary(served: list[dict]) -> dict:
    """Bytes on the wire (bodies as sent, compressed or not) by part, and what a client
    taking brotli would have been sent (the .br copies build.py wrote), whatever the browser
    asked for."""
    parts: dict[str, int] = {}
    brotli = 0
    for response in served:
        part = next(name for name, key in WIRE_PARTS if key in response["path"])
        parts[part] = parts.get(part, 0) + response["bytes"]
        br = common.DIST / (response["path"].lstrip("/") + ".br")
        brotli += br.stat().st_size if response["encoding"] and br.is_file() else response["bytes"]
    return {
        "requests": len(served), "bytes": sum(r["bytes"] for r in served),
        "hashed_requests": sum(r["path"].startswith(serving.HASHED_PREFIXES) for r in served),
        "brotli_bytes": brotli, "not_modified": sum(r["status"] == 304 for r in served),
        "encodings": sorted({r["encoding"] for r in served if r["encoding"]}), "parts": parts,
    }


def serve() -> tuple[str, object]:
    os.environ["UPSCALE_SERVE_QUIET"] = "1"
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(CountingHandler, directory=str(common.DIST)))
    server.daemon_threads = True
    server.served = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def photo_png(size: int) -> bytes:
    image = Image.open(vendor.ensure_photos()["astronaut.png"]).convert("RGB")
    return png_bytes(image.resize((size, size), Image.Resampling.LANCZOS))


def commit() -> str:
    """The commit measured, marked when the working tree had changes."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "web", "py", "models",
                                "bench/bench.py", "bench/measure.js", "bench/realinputs.py",
                                "bench/metrics.py"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + (" with uncommitted changes" if dirty else "")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{memory}, {platform.system()} {platform.release()}"


# The harness: a bare page on the site's origin, without the site's CSP (TF.js on a page
# starts its WASM threads from blob: URLs), either cross-origin isolated like the site or not.
HARNESS_HTML = b"<!doctype html><meta charset=utf-8><title>bench</title>"
UPSCALERJS = common.NODE_MODULES / "upscaler" / "dist" / "browser" / "umd" / "upscaler.min.js"


def harness_page(context, base: str, isolated: bool = True):
    headers = {k: v for k, v in serving.SERVE_HEADERS.items() if k != "Content-Security-Policy"}
    if not isolated:
        headers = {k: v for k, v in headers.items() if not k.startswith("Cross-Origin-")}
    name = "__bench__.html" if isolated else "__bench__plain.html"
    page = context.new_page()
    page.set_default_timeout(900_000)
    photo = png_bytes(Image.open(vendor.ensure_photos()["astronaut.png"]).convert("RGB"))
    theirs = UPSCALERJS.read_bytes()
    page.route("**/__bench__/photo.png",
               lambda route: route.fulfill(body=photo, content_type="image/png"))
    page.route(f"{base}/{name}", lambda route: route.fulfill(
        body=HARNESS_HTML, content_type="text/html", headers=headers))
    page.route("**/__bench__/upscaler.min.js", lambda route: route.fulfill(
        body=theirs, content_type="text/javascript"))
    # Where this build's content-hashed folders are, for measure.js (also after a reload).
    folders = {key: f"/{assemble.hashed_path(path)}/" for key, path in
               (("web", "web"), ("tfjs", "vendor/tfjs"), ("pyodide", "vendor/pyodide"))}
    page.add_init_script(f"window.BENCH_FOLDERS = {json.dumps(folders)};")
    page.goto(f"{base}/{name}")
    page.add_script_tag(path=str(ROOT / "bench" / "measure.js"))
    return page


def reload_harness(page) -> None:
    """The harness page loaded again (the same profile: a returning visit), its bench ready."""
    page.reload()
    page.add_script_tag(path=str(ROOT / "bench" / "measure.js"))


# A first job this large leaves its freed buffers in Python's heap, which never shrinks: the
# snapshot the visit keeps, and the next visit's restore, with them.
LARGE_FIRST_JOB = 1024


def measure_cold_start(browser, base: str, runs: int, size: int = 256,
                       large: bool = True) -> dict:
    """Navigation to the first `size` px result, in a fresh profile, then again on reload
    (Python restored from the snapshot the first visit kept), and once more on reload with
    that snapshot deleted (Python started fresh, everything else cached); and the same for a
    bare loadPyodide() (the yardstick: Pyodide's own start, in a worker). With `large`, once
    more with a LARGE_FIRST_JOB px first job: the snapshot it keeps, and the next visit."""
    first, second, second_fresh, bare_first, bare_second = [], [], [], [], []
    job = {"model": "esrgan-slim-x2", "size": size}
    for _ in range(runs):
        context = browser.new_context()
        page = harness_page(context, base)
        bare_first.append(page.evaluate("() => bench.barePyodide()"))
        reload_harness(page)
        bare_second.append(page.evaluate("() => bench.barePyodide()"))
        context.close()
        context = browser.new_context()
        page = harness_page(context, base)
        first.append(page.evaluate("(a) => bench.firstResult(a)", {**job, "keep": True}))
        reload_harness(page)
        second.append(page.evaluate("(a) => bench.firstResult(a)", job))
        page.evaluate("() => caches.delete('upscale-python')")
        reload_harness(page)
        second_fresh.append(page.evaluate("(a) => bench.firstResult(a)", job))
        context.close()
    out = {"size": size, "first_visit": first, "second_visit": second,
           "second_visit_fresh": second_fresh,
           "bare_first_visit": bare_first, "bare_second_visit": bare_second}
    if large:
        context = browser.new_context()
        page = harness_page(context, base)
        kept = page.evaluate("(a) => bench.firstResult(a)",
                             {**job, "size": LARGE_FIRST_JOB, "keep": True})
        reload_harness(page)
        out["large_first_job"] = {"size": LARGE_FIRST_JOB, "first_visit": kept,
                                  "second_visit": page.evaluate("(a) => bench.firstResult(a)",
                                                                job)}
        context.close()
    return out


def snapshot_line(visits: list[dict]) -> str:
    """What the first visits' Python snapshots weighed and took to make (median)."""
    kept = [v["snapshot"] for v in visits if v.get("snapshot")]
    if not kept:
        return "none was kept"
    size = median([k["bytes"] for k in kept])["median"]
    heap = median([k["heapBytes"] for k in kept])["median"]
    zeroed = median([k.get("zeroedBytes", 0) for k in kept])["median"]
    copy = median([k["copyMs"] for k in kept])["median"]
    total = median([k["totalMs"] for k in kept])["median"]
    return (f"{size / 1e6:.1f} MB gzipped ({heap / 2**20:.0f} MiB heap, {zeroed / 2**20:.0f} "
            f"MiB of it free memory zeroed first); zeroing and copying the heap held the engine "
            f"{copy:.0f} ms, compressing and storing took {total:.0f} ms in all")


def large_first_job_line(cold: dict) -> list[str]:
    """The snapshot a visit keeps after a large first job, and the next visit's start (none
    in a quick run)."""
    large = cold.get("large_first_job")
    if not large:
        return []
    after = large["second_visit"]
    return [f"- after a first job of {large['size']} px instead (one profile): "
            f"{snapshot_line([large['first_visit']])}; the next visit (Python "
            f"{after['python']['from']}) had its first {cold['size']} px result at "
            f"{after['ms']:.0f} ms"]


# --- quality: PSNR (Y) and SSIM of each model against bicubic, on real photos ---------------

QUALITY_PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"]
QUALITY_SIDE = 192  # divisible by 2, 3, 4 and 8


def quality_inputs(models: list[dict], names: list[str]) -> tuple[dict, dict]:
    """High-resolution crops and their bicubic-downscaled inputs, per model's scale."""
    photos = vendor.ensure_photos()
    originals, inputs = {}, {}
    for name in names:
        image = realinputs.as_seen(photos[name])
        left, top = (image.width - QUALITY_SIDE) // 2, (image.height - QUALITY_SIDE) // 2
        originals[name] = image.crop((left, top, left + QUALITY_SIDE, top + QUALITY_SIDE))
    for model in models:
        side = QUALITY_SIDE // model["scale"]
        inputs[model["id"]] = {
            name: base64.b64encode(png_bytes(original.resize(
                (side, side), Image.Resampling.BICUBIC))).decode()
            for name, original in originals.items()
        }
    return originals, inputs


# Speed: one timed upscale of a centre crop of this photo per model, after an untimed one of a
# crop half its side; ms per megapixel of input. realesrgan-x4plus (16.7M parameters, about 70
# times esrgan-slim's work per pixel) would take minutes at 256 px on WASM: it gets 64 px.
SPEED_PHOTO = "astronaut.png"
SPEED_SIDE = 256
SPEED_SIDES = {"realesrgan-x4plus": 64}


def speed_inputs(models: list[dict]) -> dict:
    image = realinputs.as_seen(vendor.ensure_photos()[SPEED_PHOTO])

    def centre(side: int) -> str:
        left, top = (image.width - side) // 2, (image.height - side) // 2
        return base64.b64encode(png_bytes(image.crop((left, top, left + side,
                                                      top + side)))).decode()

    sides = {m["id"]: SPEED_SIDES.get(m["id"], SPEED_SIDE) for m in models}
    return {model: {"side": side, "photo": centre(side), "warm": centre(side // 2)}
            for model, side in sides.items()}


def measure_quality(page, models: list[dict], names: list[str]) -> dict:
    """PSNR-Y and SSIM against the crops and against bicubic, and each model's speed."""
    originals, inputs = quality_inputs(models, names)
    got = page.evaluate("(a) => bench.quality(a)",
                        {"models": [m["id"] for m in models], "photos": inputs,
                         "speed": speed_inputs(models)})
    table = {}
    for model in models:
        scale, rows = model["scale"], {}
        for name, original in originals.items():
            truth = np.asarray(original)
            out = got[model["id"]]["photos"][name]
            ours = np.frombuffer(base64.b64decode(out["rgb"]), np.uint8).reshape(
                out["height"], out["width"], 3)
            small = Image.open(io.BytesIO(base64.b64decode(inputs[model["id"]][name])))
            bicubic = np.asarray(small.resize(original.size, Image.Resampling.BICUBIC))
            rows[name] = {
                "psnr_y": psnr_y(ours, truth, scale), "ssim": ssim_y(ours, truth, scale),
                "bicubic_psnr_y": psnr_y(bicubic, truth, scale),
                "bicubic_ssim": ssim_y(bicubic, truth, scale),
            }
        speed = got[model["id"]].get("speed")
        if speed and "error" not in speed:
            speed["ms_per_megapixel"] = speed["ms"] / (speed["width"] * speed["height"] / 1e6)
        table[model["id"]] = {
            "scale": scale, "label": model["label"], "purpose": model.get("purpose"),
            "format": model.get("format", "layers"), "weightBytes": model.get("weightBytes"),
            "photos": rows, "speed": speed,
            **{key: float(np.mean([row[key] for row in rows.values()]))
               for key in ("psnr_y", "ssim", "bicubic_psnr_y", "bicubic_ssim")},
        }
    return table


def ms_per_megapixel(quality: dict) -> dict[str, float]:
    """What build.py copies into the catalogue: ms per megapixel of input on WASM, by id."""
    return {model: q["speed"]["ms_per_megapixel"] for model, q in quality.items()
            if q.get("speed") and "ms_per_megapixel" in q["speed"]}


# --- the run ---------------------------------------------------------------------------------

def default_model() -> str:
    """The model a page gets when it names none: DEFAULT_MODEL in web/upscale.js; for 'auto',
    the one routing.json gives pixels and PNGs at x2 (the engine loads it first)."""
    found = re.search(r"export const DEFAULT_MODEL = '([^']+)'",
                      (ROOT / "web" / "upscale.js").read_text())
    if not found:
        raise SystemExit("bench: no DEFAULT_MODEL in web/upscale.js")
    if found.group(1) == "auto":
        table = json.loads((ROOT / "bench" / "routing.json").read_text())
        return routing.RoutingTable.from_json(table).preferred(2)
    return found.group(1)


DEFAULT_MODEL = default_model()
PEER_MODEL = "esrgan-slim-x2"  # the model UpscalerJS's own docs start from
# Every backend TF.js has here, on the peer's model and ours (WebGL and WebGPU are SwiftShader
# on a machine without a GPU: software, and labelled so).
BACKENDS = ["wasm", "cpu", "webgl", "webgpu"]
BACKEND_MODELS = [PEER_MODEL, DEFAULT_MODEL]


def plan(quick: bool) -> dict:
    if quick:  # every section once, each at its smallest (the suite runs it)
        # The seam image: 192 px, the smallest that UpscalerJS's 128 px patches still tile.
        return {"models": [PEER_MODEL, DEFAULT_MODEL], "sizes": [64, 128],
                "repeats": {64: 1, 128: 1},
                "model_sizes": {}, "seam": 192, "cold_runs": 1, "threads_size": 128,
                "large": [("esrgan-slim-x2", 256), ("esrgan-slim-x4", 128)],
                "quality_models": ["esrgan-slim-x2", "esrgan-slim-x4", DEFAULT_MODEL, "span-x4"],
                "quality_photos": QUALITY_PHOTOS[:1], "page_size": 128,
                "backend_size": 16, "backend_repeats": 1, "backend_models": [DEFAULT_MODEL]}
    return {"models": [PEER_MODEL, "esrgan-medium-x2", DEFAULT_MODEL],
            "sizes": [128, 256, 512, 1024],
            "repeats": {128: 3, 256: 3, 512: 3, 1024: 2},
            # The default model stops at the target size: its 1024 px section (SPAN's 48
            # channels, the whole image in one predict among them) had not finished after 36
            # minutes on this machine.
            "model_sizes": {DEFAULT_MODEL: [128, 256, 512]}, "seam": 256, "cold_runs": 3,
            "threads_size": 512, "large": [("esrgan-slim-x2", 2048), ("esrgan-slim-x4", 1024)],
            "quality_models": None, "quality_photos": QUALITY_PHOTOS, "page_size": 512,
            "backend_size": 96, "backend_repeats": 3, "backend_models": BACKEND_MODELS}


def served_catalogue() -> list[dict]:
    """The catalogue as the site serves it (written by build.py into the web folder): the
    manifests plus what the build learns, such as a converted model's weight bytes."""
    try:
        return assemble.built_catalogue()
    except (common.BuildError, OSError) as error:
        raise SystemExit(
            f"bench: no catalogue in dist/ ({error}); run `python build.py` first") from error


def run(quick: bool) -> dict:
    settings = plan(quick)
    catalogue = {m["id"]: m for m in served_catalogue()}
    quality_models = [catalogue[i] for i in settings["quality_models"] or sorted(catalogue)]
    base, server = serve()
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    results = {
        "command": "python build.py bench" + (" --quick" if quick else ""),
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "commit": commit(),
        "quick": quick,
        "sizes": settings["sizes"],
        "repeats": {str(k): v for k, v in settings["repeats"].items()},
        "seam_size": settings["seam"],
        "threads_size": settings["threads_size"],
        "default_model": DEFAULT_MODEL,
        "backend_size": settings["backend_size"],
    }
    started = time.monotonic()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium,
                                                 args=provision.CHROMIUM_ARGS)
            results["browser"] = f"Chromium {browser.version} (headless)"
            context = browser.new_context()
            page = harness_page(context, base)
            results["contenders"] = {}
            for model in settings["models"]:
                log(f"contenders: {model}")
                sizes = settings["model_sizes"].get(model, settings["sizes"])
                results["contenders"][model] = page.evaluate(
                    "(a) => bench.contenders(a)",
                    {"model": model, "sizes": sizes, "seamSize": settings["seam"],
                     "repeats": {str(k): v for k, v in settings["repeats"].items()}})
            results["large"] = []
            for model, size in settings["large"]:
                log(f"large: {model} at {size} px")
                results["large"].append({"model": model, **page.evaluate(
                    "(a) => bench.large(a)", {"model": model, "size": size, "workers": "auto"})})
            results["backends"] = {}
            for model in settings["backend_models"]:
                for name in BACKENDS:
                    log(f"backends: {model} on {name}")
                    results["backends"].setdefault(model, {})[name] = page.evaluate(
                        "(a) => bench.backend(a)", {"model": model, "backend": name,
                                                     "size": settings["backend_size"],
                                                     "repeats": settings["backend_repeats"]})
            log("quality")
            results["quality"] = measure_quality(page, quality_models, settings["quality_photos"])
            results["quality_photos"] = settings["quality_photos"]
            results["ms_per_megapixel"] = ms_per_megapixel(results["quality"])
            context.close()
            results["real"] = measure_real(browser, base, quick, catalogue,
                                           results["ms_per_megapixel"])
            log("threads")
            results["threads"] = {}
            for isolated in (True, False):
                context = browser.new_context()
                page = harness_page(context, base, isolated)
                results["threads"]["isolated" if isolated else "not_isolated"] = page.evaluate(
                    "(a) => bench.threads(a)", {"model": "esrgan-slim-x2",
                                                "size": settings["threads_size"], "repeats": 2})
                context.close()
            log("cold start")
            results["cold_start"] = measure_cold_start(browser, base, settings["cold_runs"],
                                                       large=not quick)
            log("the upscaler page")
            results["page_main_thread"] = measure_page(browser, base,
                                                       photo_png(settings["page_size"]),
                                                       settings["page_size"])
            log("the shop")
            results["shop"] = measure_shop(browser, base, server)
            browser.close()
    finally:
        server.shutdown()
    results["minutes"] = round((time.monotonic() - started) / 60, 1)
    return results


def engine_page(browser, base: str, table: routing.RoutingTable | None):
    """A harness page in a fresh profile whose engine reads `table` as routing.json (None: the
    one the build ships)."""
    context = browser.new_context()
    if table is not None:
        body = json.dumps(table.to_json(), ensure_ascii=False)
        context.route("**/routing.json", lambda route: route.fulfill(
            body=body, content_type="application/json"))
    return harness_page(context, base)


def measure_real(browser, base: str, quick: bool, catalogue: dict, speeds: dict,
                 stored: dict | None = None) -> dict:
    """The real-input section. A full run builds the routing table from its outcomes and runs
    'auto' with it (main() writes it to bench/routing.json); a quick run, with the build's.
    `stored`: the outcomes of an earlier full run, every model's but auto's taken as they are,
    and a model added since measured (`--only auto`)."""
    started = time.monotonic()
    real_plan = realinputs.plan(quick, catalogue, speeds)
    measured = (f"python build.py bench, commit {commit()}, {time.strftime('%Y-%m-%d')}: "
                f"{len(real_plan.photos)} photos, {len(real_plan.conditions)} conditions")
    if stored is not None:
        measured = f"{stored['routing']['measured']}; table and auto again at commit {commit()}"
    real = realinputs.measure(lambda table: engine_page(browser, base, table), real_plan, speeds,
                              measured, log, (lambda built: None) if quick else (lambda b: b),
                              stored)
    real["minutes"] = round((time.monotonic() - started) / 60, 1)
    return real


@contextlib.contextmanager
def served_browser():
    """dist/ served and Chromium as users get it, for a section run alone: (browser, base)."""
    base, server = serve()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                args=provision.CHROMIUM_ARGS)
            try:
                yield browser, base
            finally:
                browser.close()
    finally:
        server.shutdown()


def run_cold_only(previous: dict) -> dict:
    """`--only cold`: the cold start alone (as a full run measures it), merged into the stored
    results."""
    measured = commit(), time.strftime("%Y-%m-%d")
    with served_browser() as (browser, base):
        cold = measure_cold_start(browser, base, plan(False)["cold_runs"])
    cold["command"] = "python build.py bench --only cold"
    cold["commit"], cold["date"] = measured
    return {**previous, "cold_start": cold}


def run_real_only(previous: dict, auto_only: bool = False) -> dict:
    """`--only real`: the real-input section alone, with the speeds of the stored results,
    merged into them; `--only auto`: the models added since measured, the table built again
    from the stored outcomes by today's rule, and 'auto' and the bytes at equal quality
    measured again with it."""
    catalogue = {m["id"]: m for m in served_catalogue()}
    measured = commit(), time.strftime("%Y-%m-%d")  # what runs, before a long run
    with served_browser() as (browser, base):
        if auto_only:
            previous = with_added_models(browser, base, previous, catalogue)
        real = measure_real(browser, base, False, catalogue, previous["ms_per_megapixel"],
                            previous["real"] if auto_only else None)
        real["browser"] = f"Chromium {browser.version} (headless)"
    if auto_only:
        before = previous["real"]
        real = {**real, "command": before["command"], "commit": before["commit"],
                "date": before["date"], "minutes": before["minutes"],
                "auto_again": {"command": "python build.py bench --only auto",
                               "commit": measured[0], "date": measured[1],
                               "minutes": real["minutes"]}}
    else:
        real["command"] = "python build.py bench --only real"
        real["commit"], real["date"] = measured
    return {**previous, "real": real}


def with_added_models(browser, base: str, previous: dict, catalogue: dict) -> dict:
    """`previous` with the quality and speed of the models its full run did not have. Each is
    timed beside its scale's reference model, and its ms/MP is kept as the reference's stored
    figure times that ratio: the rule compares it with figures measured in the stored run, on
    a machine as loaded as it was then."""
    added = [catalogue[m] for m in sorted(catalogue) if m not in previous["quality"]]
    if not added:
        return previous
    references = {realinputs.REFERENCES[m["scale"]] for m in added
                  if m["scale"] in realinputs.REFERENCES}
    log(f"quality and speed of the models added since: {', '.join(m['id'] for m in added)}")
    context = browser.new_context()
    page = harness_page(context, base)
    fresh = measure_quality(page, [*added, *(catalogue[r] for r in sorted(references))],
                            previous["quality_photos"])
    context.close()
    quality = dict(previous["quality"])
    for model in added:
        entry = fresh[model["id"]]
        reference = realinputs.REFERENCES.get(model["scale"])
        speed = entry.get("speed") or {}
        if reference and "ms_per_megapixel" in speed:
            ratio = speed["ms_per_megapixel"] / fresh[reference]["speed"]["ms_per_megapixel"]
            speed["measured_ms_per_megapixel"] = speed["ms_per_megapixel"]
            speed["ms_per_megapixel"] = ratio * previous["ms_per_megapixel"][reference]
            speed["against"] = f"{reference}, timed beside it: x{ratio:.2f}"
        quality[model["id"]] = entry
    return {**previous, "quality": quality, "ms_per_megapixel": ms_per_megapixel(quality)}


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- the report --------------------------------------------------------------------------------

TARGETS = {  # the targets, checked against this run
    "ratio_upscalerjs": 0.5, "ratio_limit": 1.15, "cold_start_ms": 2000,
    "second_start_ms": 1000, "shop_first_visit_mb": 8.0,
    "longest_task_ms": 50, "seam_db": 55, "ratio_default_model": 1.0,
}
TARGET_SIZE = 512  # the size the ratio targets are set at; a quick run has only smaller ones


def fmt(entry: dict | None, digits: int = 0) -> str:
    if not entry:
        return "-"
    if "error" in entry:
        return f"failed ({entry['error'][:60]})"
    return f"{entry['median']:.{digits}f} [{entry['min']:.{digits}f}-{entry['max']:.{digits}f}]"


def ratio(a: dict | None, b: dict | None) -> float | None:
    if not a or not b or "error" in a or "error" in b:
        return None
    return a["median"] / b["median"]


def median(values: list[float]) -> dict:
    s = sorted(values)
    mid = (len(s) - 1) / 2
    return {"median": (s[int(mid)] + s[int(mid + 0.5)]) / 2, "min": s[0], "max": s[-1]}


def default_vs_peer(results: dict, size: int) -> float | None:
    """The default model in Upscale against UpscalerJS running esrgan-slim-x2, at `size`."""
    ours = results["contenders"].get(results["default_model"], {}).get("upscale", {})
    theirs = results["contenders"].get(PEER_MODEL, {}).get("upscalerjs", {})
    return ratio(ours.get(str(size)), theirs.get(str(size)))


def target_rows(results: dict) -> list[tuple[str, str, bool | None]]:
    slim = results["contenders"][PEER_MODEL]
    size = str(TARGET_SIZE) if TARGET_SIZE in results["sizes"] else str(max(results["sizes"]))
    vs_theirs = ratio(slim["upscale"].get(size), slim["upscalerjs"].get(size))
    vs_limit = ratio(slim["upscale"].get(size), slim["limit"].get(size))
    default = results["default_model"]
    vs_peer = default_vs_peer(results, int(size))
    at = "" if int(size) == TARGET_SIZE else f" (measured at {size} px: a quick run)"
    cold = median([r["ms"] for r in results["cold_start"]["first_visit"]])["median"]
    second = median([r["ms"] for r in results["cold_start"]["second_visit"]])["median"]
    bare = median([r["ms"] for r in results["cold_start"].get("bare_first_visit")
                   or [{"ms": float("nan")}]])["median"]
    wire = results["shop"]["first_visit"].get("wire") or {}
    again = results["shop"]["second_visit"].get("wire") or {}
    longest = max(c["upscale"][s].get("longestTaskMs", 0) for c in results["contenders"].values()
                  for s in c["upscale"] if "error" not in c["upscale"][s])
    page = results["page_main_thread"]["longestTaskMs"]
    seams = min(c["seam"]["upscale"] for c in results["contenders"].values())

    def check(value, bound):
        return None if value is None else value <= bound

    return [
        (f"Upscale / UpscalerJS at {size} px, slim x2, WASM <= 0.5",
         "-" if vs_theirs is None else f"{vs_theirs:.2f}", check(vs_theirs, 0.5)),
        (f"Upscale / the limit at {size} px <= 1.15",
         "-" if vs_limit is None else f"{vs_limit:.2f}", check(vs_limit, 1.15)),
        ("cold start to the first 256 px result <= 2.0 s (second visit <= 1.0 s)",
         f"{cold / 1000:.1f} s (second visit {second / 1000:.1f} s); {cold / bare:.2f} times a "
         f"bare loadPyodide() ({bare / 1000:.2f} s)",
         cold <= TARGETS["cold_start_ms"] and second <= TARGETS["second_start_ms"]),
        ("the shop's first visit <= 8 MB on the wire; the second asks for no content-hashed file",
         f"{wire.get('bytes', 0) / 1e6:.2f} MB; second visit: {again.get('hashed_requests', '-')} "
         "requests for content-hashed files",
         wire.get("bytes", 1e12) <= TARGETS["shop_first_visit_mb"] * 1e6
         and again.get("hashed_requests") == 0),
        ("longest main-thread task during an upscale <= 50 ms",
         f"{longest:.0f} ms (bare page), {page:.0f} ms (upscaler page)",
         max(longest, page) <= 50),
        ("seam fidelity >= 55 dB", f"{seams:.1f} dB", seams >= 55),
        (f"default model ({default}) at {TARGET_SIZE} px on WASM / UpscalerJS {PEER_MODEL} at "
         f"{TARGET_SIZE} px <= 1.0",
         "-" if vs_peer is None else f"{vs_peer:.2f}{at}", check(vs_peer, 1.0)),
    ]


def report(results: dict) -> str:
    out = [
        "# Upscale benchmark",
        "",
        f"Command: `{results['command']}` ({results['minutes']} min)  ",
        f"Date: {results['date']}; commit {results['commit']}  ",
        f"Machine: {results['machine']}  ",
        f"Browser: {results['browser']}  ",
    ]
    first = next(iter(results["contenders"].values()))["info"]
    patch = first["tile"]["patchSize"]  # None: each image gets its own (WebAssembly)
    out += [
        f"Backend: {first['backend']} ({first['reason']}); Upscale ran "
        f"{first['workers']} tile worker(s), tile "
        f"{'chosen per image' if patch is None else patch}, padding {first['tile']['padding']}",
        "",
        "Every figure is the median of repeated runs with [min-max]; runs per size: "
        + ", ".join(f"{k} px: {v}" for k, v in results["repeats"].items()) + ".",
        "",
        "## Targets",
        "",
        "| target | measured | holds |",
        "| --- | --- | --- |",
    ]
    for name, value, holds in target_rows(results):
        out.append(f"| {name} | {value} | {'-' if holds is None else 'yes' if holds else 'no'} |")
    out += [
        "",
        "## Time to upscale (ms)",
        "",
        "A square photo (the astronaut, resampled to each size) on WebAssembly, in one page "
        "session. Upscale at its defaults; UpscalerJS 1.0.0 (npm `upscaler`) with the same "
        "model file, `patchSize: 128, padding: 2`, output as a tensor (a model converted from "
        "ncnn runs there as a graph model with its input and output range [0, 1]); the limit: "
        "one `model.predict` on the whole image on the page's TF.js. "
        f"{results['default_model']} is the model a page gets when it names none.",
        "",
        "![time against image size](chart.svg)",
        "",
    ]
    default = results["default_model"]
    if default in results["contenders"] and PEER_MODEL in results["contenders"]:
        ours = results["contenders"][default]["upscale"]
        peer = results["contenders"][PEER_MODEL]
        out += [f"### The default model against UpscalerJS's {PEER_MODEL}", "",
                f"What a page gets by default from each: Upscale with {default}, UpscalerJS "
                f"with {PEER_MODEL} (Upscale's own time with {PEER_MODEL} alongside).", "",
                f"| size | Upscale, {default} | UpscalerJS, {PEER_MODEL} | Upscale, {PEER_MODEL}"
                f" | {default} / UpscalerJS {PEER_MODEL} |", "| --- | --- | --- | --- | --- |"]
        for size in results["sizes"]:
            r = default_vs_peer(results, size)
            out.append(f"| {size} px | {fmt(ours.get(str(size)))} | "
                       f"{fmt(peer['upscalerjs'].get(str(size)))} | "
                       f"{fmt(peer['upscale'].get(str(size)))} | "
                       f"{'-' if r is None else f'{r:.2f}'} |")
        out.append("")
    for model, c in results["contenders"].items():
        out += [f"### {model}", "",
                "| size | Upscale | UpscalerJS | the limit | Upscale / UpscalerJS | "
                "Upscale / limit |", "| --- | --- | --- | --- | --- | --- |"]
        for size in results["sizes"]:
            key = str(size)
            ours, theirs, limit = (c[k].get(key) for k in ("upscale", "upscalerjs", "limit"))
            r1, r2 = ratio(ours, theirs), ratio(ours, limit)
            out.append(f"| {size} px | {fmt(ours)} | {fmt(theirs)} | {fmt(limit)} | "
                       f"{'-' if r1 is None else f'{r1:.2f}'} | "
                       f"{'-' if r2 is None else f'{r2:.2f}'} |")
        out.append("")
    out += ["## The main thread during an upscale", "",
            "Longest task (>= 50 ms is a long task; 0 means none) while each tool upscales, "
            "on the same bare page:", "",
            "| model | size | Upscale | UpscalerJS |", "| --- | --- | --- | --- |"]
    for model, c in results["contenders"].items():
        for size in results["sizes"]:
            ours, theirs = c["upscale"].get(str(size), {}), c["upscalerjs"].get(str(size), {})
            if not ours and not theirs:
                continue  # a size this model was not run at
            out.append(f"| {model} | {size} px | {ours.get('longestTaskMs', 0):.0f} ms | "
                       f"{theirs.get('longestTaskMs', 0):.0f} ms |")
    main = results["page_main_thread"]
    out += ["", f"The upscaler page (index.html) while it upscales a {main['size']} px photo "
            f"dropped on it ({main['elapsedMs']:.0f} ms, live tile previews on): "
            f"{main['longTasks']} long task(s), the longest {main['longestTaskMs']:.0f} ms; "
            f"a 10 ms timer fired at worst {main['worstTimerDelayMs']:.0f} ms late.", ""]
    out += ["## Seam fidelity", "",
            f"PSNR of the tiled output against one tile covering the whole "
            f"{results['seam_size']} px image (higher is better; identical is inf):", "",
            "| model | Upscale (defaults) | UpscalerJS (patchSize 128, padding 2) |",
            "| --- | --- | --- |"]
    for model, c in results["contenders"].items():
        seam = c["seam"]
        out.append(f"| {model} | {seam['upscale']:.1f} dB | {seam['upscalerjs']:.1f} dB |")
    cold = results["cold_start"]
    firsts = [r["ms"] for r in cold["first_visit"]]
    seconds = [r["ms"] for r in cold["second_visit"]]
    fresh_seconds = [r["ms"] for r in cold.get("second_visit_fresh", [])]
    timings = cold["first_visit"][0]["timings"]
    bares = [[r["ms"] for r in cold.get(key, [])] for key in ("bare_first_visit",
                                                              "bare_second_visit")]
    out += ["", "## Cold start", "",
            f"From navigation to the first {cold['size']} px result (esrgan-slim-x2, the "
            f"backend Upscale picks), {len(firsts)} fresh profile(s):", "",
            f"- first visit: {fmt(median(firsts))} ms",
            f"- second visit (reload, same profile; Python restored from its snapshot): "
            f"{fmt(median(seconds))} ms",
            f"- second visit with the snapshot deleted (Python started fresh): "
            f"{fmt(median(fresh_seconds)) if fresh_seconds else '-'} ms",
            f"- the Python snapshot: {snapshot_line(cold['first_visit'])}",
            *large_first_job_line(cold),
            "- the yardstick, a bare `loadPyodide()` in a worker (no packages), from navigation: "
            f"first visit {fmt(median(bares[0])) if bares[0] else '-'} ms, second "
            f"{fmt(median(bares[1])) if bares[1] else '-'} ms",
            "- where the first visit's engine start went (ms, in parallel): " + ", ".join(
                f"{k.removesuffix('Ms')} {v:.0f}" for k, v in timings.items()), ""]
    out += ["## Large images", "",
            "| model | input | output | time | TF.js WASM heaps (peak) | Python heap (peak) |",
            "| --- | --- | --- | --- | --- | --- |"]
    for run in results["large"]:
        if "error" in run:
            out.append(f"| {run['model']} | {run['size']} px | failed: {run['error']} | | | |")
            continue
        m = run["memory"]
        out.append(f"| {run['model']} | {run['size']}x{run['size']} | {run['width']}x"
                   f"{run['height']} | {run['ms'] / 1000:.1f} s | "
                   f"{m['tfHeapBytes'] / 2**20:.0f} MiB | {m['pyHeapBytes'] / 2**20:.0f} MiB |")
    out += backend_section(results)
    threads = results["threads"]
    out += ["", "## WASM threads: cross-origin isolated or not", "",
            f"On this machine ({os.cpu_count()} cores), esrgan-slim-x2 at "
            f"{results['threads_size']} px; the page's TF.js runs the threaded build only "
            "when the page is isolated, Upscale's tile workers always run one thread each:",
            "",
            "| page | the limit (page TF.js threads) | Upscale |", "| --- | --- | --- |"]
    for name, t in threads.items():
        out.append(f"| {name.replace('_', ' ')} | {fmt(t['limit'])} ms ({t['pageThreads']}) | "
                   f"{fmt(t['upscale'])} ms |")
    out += quality_section(results)
    out += realinputs.section(results["real"])
    shop = results["shop"]
    first_visit, second_visit = shop["first_visit"], shop["second_visit"]
    out += ["", "## The demo shop", "",
            f"shop.html, 1280x800 window, {first_visit['visible']} product photos visible: "
            f"every visible one upscaled {first_visit['ms']:.0f} ms after navigation on a first "
            f"visit (engine start included), {second_visit['ms']:.0f} ms on a second visit "
            f"({second_visit['fromCache']} painted from the cache). The {shop['products']} "
            f"product photos weigh {shop['small_bytes'] / 1e3:.0f} KB at 150 px (as sent) "
            f"against {shop['large_bytes'] / 1e3:.0f} KB at 300 px (JPEG q90): "
            f"{shop['large_bytes'] / shop['small_bytes']:.1f}x less to send.", ""]
    out += wire_section(shop)
    return "\n".join(out)


def backend_section(results: dict) -> list[str]:
    """ms per megapixel of input on each backend; a software GPU (SwiftShader here) says so."""
    backends = results.get("backends")
    if not backends:
        return []
    size = results.get("backend_size", "?")
    out = ["", f"## Backends (ms per megapixel of input, {size} px photo, median of runs after "
           "a warm one)", "", "| backend | device | " + " | ".join(backends) + " |",
           "| --- | --- |" + " --- |" * len(backends)]
    for name in BACKENDS:
        runs = [backends[model][name] for model in backends]
        label = runs[0]["device"] + (" (software)" if runs[0]["software"] else "")
        cells = [f"failed: {r['error']}" if "error" in r else f"{r['msPerMegapixel']:,.0f}"
                 for r in runs]
        out.append(f"| {name} | {label} | " + " | ".join(cells) + " |")
    return [*out, "", "No GPU machine ran this bench: a real GPU's numbers are missing."]


def wire_section(shop: dict) -> list[str]:
    first, second = shop["first_visit"].get("wire"), shop["second_visit"].get("wire")
    if not first:
        return []
    mb = 1e6
    out = ["### Bytes on the wire", "",
           f"Counted by the server, response bodies as sent. First visit: {first['requests']} "
           f"requests, {first['bytes'] / mb:.2f} MB (content encodings used: "
           f"{', '.join(first['encodings']) or 'none'}; with brotli wherever a .br copy exists, "
           f"{first['brotli_bytes'] / mb:.2f} MB). Second visit: {second['requests']} requests "
           f"({second['not_modified']} answered 304 Not Modified; "
           f"{second.get('hashed_requests', '-')} for content-hashed files), "
           f"{second['bytes'] / mb:.2f} MB.",
           "", "| part | first visit (MB) | second visit (MB) |", "| --- | --- | --- |"]
    for part, size in sorted(first["parts"].items(), key=lambda kv: -kv[1]):
        out.append(f"| {part} | {size / mb:.2f} | {second['parts'].get(part, 0) / mb:.2f} |")
    out.append("")
    return out


def quality_section(results: dict) -> list[str]:
    smaller = [f"{side} px for {model}" for model, side in SPEED_SIDES.items()
               if model in results["quality"]]
    smaller = (f" ({', '.join(smaller)}: its work per pixel would make a {SPEED_SIDE} px crop "
               "take minutes; at that size the fixed cost of an upscale weighs a little more in "
               "its figure)") if smaller else ""
    out = ["", "## Quality and speed of every model", "",
           f"{QUALITY_SIDE} px centre crops of {', '.join(results['quality_photos'])} (from "
           "scikit-image's wheel: astronaut and rocket are public domain, chelsea and coffee "
           "CC0), downscaled with Pillow's bicubic, upscaled by each model, compared with the "
           "crop: PSNR on Y (BT.601, a border of `scale` px shaved) and SSIM on Y; the gains are "
           "over Pillow's bicubic upscale of the same input. Means over the photos.", "",
           f"Speed: after those, one timed upscale of a {SPEED_SIDE} px centre crop of "
           f"{SPEED_PHOTO}{smaller}, after an untimed one of a crop half that side, on "
           "WebAssembly with Upscale at its defaults; in milliseconds per megapixel of input "
           "(build.py copies it into the catalogue as `msPerMegapixel`).", "",
           "Download: the model's weights. Purpose: the catalogue's grouping.", "",
           "![PSNR-Y gain over bicubic against time per megapixel](quality.svg)", "",
           "| model | purpose | scale | download | PSNR-Y | gain over bicubic | SSIM | SSIM gain "
           "| ms / MP (WASM) |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for model, q in results["quality"].items():
        speed = q.get("speed")
        if not speed:
            ms = "not measured"
        elif "error" in speed:
            ms = f"failed ({speed['error'][:60]})"
        else:
            ms = f"{speed['ms_per_megapixel']:,.0f}"
        weight = "-" if not q.get("weightBytes") else f"{q['weightBytes'] / 1e6:.1f} MB"
        out.append(f"| {model} | {q.get('purpose') or '-'} | x{q['scale']} | {weight} | "
                   f"{q['psnr_y']:.2f} dB | {q['psnr_y'] - q['bicubic_psnr_y']:+.2f} dB | "
                   f"{q['ssim']:.4f} | {q['ssim'] - q['bicubic_ssim']:+.4f} | {ms} |")
    return out


def chart(results: dict) -> str:
    """An SVG of time against image size, log-log, one line per contender and model."""
    width, height, left, right, top, bottom = 720, 440, 70, 200, 20, 50
    series = []
    colours = {"upscale": "#1a7f37", "upscalerjs": "#cf222e", "limit": "#6e7781"}
    names = {"upscale": "Upscale", "upscalerjs": "UpscalerJS", "limit": "the limit"}
    dashes = ["", "6 4", "2 3", "10 3 2 3"]  # one line style per model, in order
    for i, (model, c) in enumerate(results["contenders"].items()):
        for key in ("upscale", "upscalerjs", "limit"):
            points = [(size, c[key][str(size)]["median"]) for size in results["sizes"]
                      if str(size) in c[key] and "error" not in c[key][str(size)]]
            series.append((f"{names[key]}, {model.removeprefix('esrgan-')}", colours[key],
                           dashes[i % len(dashes)], points))
    values = [ms for *_, points in series for _, ms in points]
    xs = [np.log2(s) for s in results["sizes"]]
    y_low, y_high = np.log10(min(values)) - 0.1, np.log10(max(values)) + 0.1
    x_low, x_high = min(xs) - 0.2, max(xs) + 0.2

    def px(size, ms):
        x = left + (np.log2(size) - x_low) / (x_high - x_low) * (width - left - right)
        y = top + (y_high - np.log10(ms)) / (y_high - y_low) * (height - top - bottom)
        return f"{x:.1f},{y:.1f}"

    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12"><rect width="100%" height="100%" '
           f'fill="white"/>']
    for decade in range(int(np.floor(y_low)), int(np.ceil(y_high)) + 1):
        for step in (1, 2, 5):
            ms = step * 10**decade
            if y_low <= np.log10(ms) <= y_high:
                y = px(results["sizes"][0], ms).split(",")[1]
                svg.append(f'<line x1="{left}" x2="{width - right}" y1="{y}" y2="{y}" '
                           f'stroke="#d0d7de"/><text x="{left - 6}" y="{y}" text-anchor="end" '
                           f'dominant-baseline="middle">{ms / 1000:g} s</text>')
    for size in results["sizes"]:
        x = px(size, 10**y_low).split(",")[0]
        svg.append(f'<text x="{x}" y="{height - bottom + 18}" text-anchor="middle">'
                   f'{size} px</text>')
    svg.append(f'<text x="{(left + width - right) / 2}" y="{height - 10}" '
               f'text-anchor="middle">image side (square photo), x2, WebAssembly</text>')
    for i, (label, colour, dashed, points) in enumerate(series):  # dashed: a dash pattern
        if not points:
            continue
        dash = f' stroke-dasharray="{dashed}"' if dashed else ""
        svg.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} '
                   f'points="{" ".join(px(*p) for p in points)}"/>')
        for p in points:
            x, y = px(*p).split(",")
            svg.append(f'<circle cx="{x}" cy="{y}" r="3" fill="{colour}"/>')
        ly = top + 10 + i * 20
        svg.append(f'<line x1="{width - right + 12}" x2="{width - right + 40}" y1="{ly}" '
                   f'y2="{ly}" stroke="{colour}" stroke-width="2"{dash}/>'
                   f'<text x="{width - right + 46}" y="{ly}" dominant-baseline="middle">'
                   f'{label}</text>')
    svg.append("</svg>")
    return "\n".join(svg) + "\n"


PURPOSE_COLOURS = {"sharpest": "#1a7f37", "fastest": "#0969da", "jpeg": "#8250df",
                   "illustration": "#bf3989", "detail": "#cf222e", "legacy": "#6e7781"}


def quality_chart(results: dict) -> str:
    """An SVG of PSNR-Y gain over bicubic against ms per megapixel (log), a point per model."""
    points = sorted(((q["speed"]["ms_per_megapixel"], q["psnr_y"] - q["bicubic_psnr_y"], model,
                      q.get("purpose") or "other")
                     for model, q in results["quality"].items()
                     if q.get("speed") and "ms_per_megapixel" in q["speed"]),
                    key=lambda p: (-p[1], p[0]))
    width, height, left, right, top, bottom = 860, 560, 70, 20, 20, 70
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11"><rect width="100%" height="100%" '
           f'fill="white"/>']
    if not points:
        svg.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">'
                   'no model was timed</text></svg>')
        return "\n".join(svg) + "\n"
    xs = [np.log10(ms) for ms, *_ in points]
    gains = [gain for _, gain, *_ in points]
    x_low, x_high = min(xs) - 0.15, max(xs) + 0.15
    if x_high - x_low < 1:  # at least a decade, so that the axis has ticks to read
        x_low, x_high = (x_low + x_high - 1) / 2, (x_low + x_high + 1) / 2
    y_low = min(0.0, min(gains)) - 0.25
    y_high = max(gains) + 0.25
    plot_w, plot_h = width - left - right, height - top - bottom

    def x_of(ms):
        return left + (np.log10(ms) - x_low) / (x_high - x_low) * plot_w

    def y_of(gain):
        return top + (y_high - gain) / (y_high - y_low) * plot_h

    for decade in range(int(np.floor(x_low)), int(np.ceil(x_high)) + 1):
        for step in (1, 2, 5):
            ms = step * 10**decade
            if x_low <= np.log10(ms) <= x_high:
                x = x_of(ms)
                svg.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{height - bottom}" '
                           f'stroke="#d0d7de"/><text x="{x:.1f}" y="{height - bottom + 16}" '
                           f'text-anchor="middle">{ms / 1000:g} s</text>')
    step = 0.5 if y_high - y_low <= 6 else 1.0
    for k in range(int(np.ceil(y_low / step)), int(np.floor(y_high / step)) + 1):
        y = y_of(k * step)
        stroke = "#6e7781" if k == 0 else "#d0d7de"
        svg.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="{stroke}"/><text x="{left - 6}" y="{y:.1f}" text-anchor="end" '
                   f'dominant-baseline="middle">{k * step:+g} dB</text>'.replace("+0 dB", "0 dB"))
    svg.append(f'<text x="{left + plot_w / 2}" y="{height - bottom + 36}" '
               'text-anchor="middle">time per megapixel of input, WebAssembly (log scale)</text>')
    svg.append(f'<text transform="translate(16 {top + plot_h / 2}) rotate(-90)" '
               'text-anchor="middle">PSNR-Y gain over bicubic</text>')
    # Each label beside its point: right, left, above or below it, the first place that
    # covers no other label or point (several models share a speed, and their gains can differ
    # by hundredths of a dB); failing those, further up or down, with a leader line.
    spots = [(x_of(ms), y_of(gain)) for ms, gain, *_ in points]
    placed = []  # label boxes: (x0, x1, y_middle)

    def free(x0, x1, y, own):
        """Inside the plot, on no label placed so far and on no point but its own."""
        return (top <= y - 6 and y + 6 <= height - bottom and left <= x0 and x1 <= width - 4
                and not any(abs(y - py) < 12 and x0 < px1 and px0 < x1 for px0, px1, py in placed)
                and not any(x0 - 4 < sx < x1 + 4 and abs(y - sy) < 10
                            for i, (sx, sy) in enumerate(spots) if i != own))

    for own, ((*_, model, purpose), (x, y)) in enumerate(zip(points, spots, strict=True)):
        colour = PURPOSE_COLOURS.get(purpose, "#24292f")
        w = 6.2 * len(model)
        options = [(x + 7, y, "start"), (x - 7, y, "end"), (x + 4, y - 12, "start"),
                   (x - 4, y - 12, "end"), (x + 4, y + 12, "start"), (x - 4, y + 12, "end")]
        options += [(x + side * 12, y + sign * 12 * k, "start" if side > 0 else "end")
                    for k in range(2, 30) for sign in (1, -1) for side in (1, -1)]
        for lx, ly, anchor in options:
            x0, x1 = (lx, lx + w) if anchor == "start" else (lx - w, lx)
            if free(x0, x1, ly, own):
                break
        else:  # nowhere free: beside the point, over whatever is there
            lx, ly, anchor = options[0]
            x0, x1 = lx, lx + w
        placed.append((x0, x1, ly))
        leader = (f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{lx:.1f}" y2="{ly:.1f}" '
                  f'stroke="{colour}" stroke-width="0.5"/>') if abs(ly - y) > 12 else ""
        svg.append(f'<g data-model="{model}"><circle class="point" cx="{x:.1f}" cy="{y:.1f}" '
                   f'r="4" fill="{colour}"/>{leader}<text x="{lx:.1f}" y="{ly:.1f}" '
                   f'text-anchor="{anchor}" dominant-baseline="middle" fill="{colour}">{model}'
                   '</text></g>')
    purposes = [p for p in PURPOSE_COLOURS if any(point[3] == p for point in points)]
    lx = left
    for purpose in purposes:
        svg.append(f'<rect x="{lx}" y="{height - 17}" width="10" height="10" '
                   f'fill="{PURPOSE_COLOURS[purpose]}"/><text x="{lx + 14}" y="{height - 12}" '
                   f'dominant-baseline="middle">{purpose}</text>')
        lx += 30 + 7 * len(purpose)
    svg.append("</svg>")
    return "\n".join(svg) + "\n"


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    out = ROOT / "bench"
    if "--out" in argv:
        out = Path(argv[argv.index("--out") + 1])
        out.mkdir(parents=True, exist_ok=True)
    only = argv[argv.index("--only") + 1] if "--only" in argv else None
    if only not in (None, "real", "auto", "cold"):
        raise SystemExit(f"bench: --only {only}: the sections run alone are 'real', 'auto' "
                         "and 'cold'")
    if only:
        if quick:
            raise SystemExit(f"bench: --only {only} is a full run of that section, not --quick")
        previous = json.loads((out / "results.json").read_text())
        results = (run_cold_only(previous) if only == "cold"
                   else run_real_only(previous, only == "auto"))
    else:
        results = run(quick)
    if not quick:  # the table `auto` ran with, built from this run's outcomes
        (out / "routing.json").write_text(
            json.dumps(results["real"]["routing"], indent=1, ensure_ascii=False) + "\n")
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "REPORT.md").write_text(report(results))
    (out / "chart.svg").write_text(chart(results))
    (out / "quality.svg").write_text(quality_chart(results))
    (out / "real.svg").write_text(realinputs.chart(results["real"]))
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
