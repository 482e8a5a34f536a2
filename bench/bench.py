"""Benchmarks in headless Chromium: Upscale against one whole-image `model.predict`.

Run with `python build.py bench [--quick]`; writes bench/results.json and bench/REPORT.md.
Every figure is the median of repeated runs, with min and max.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

import build  # noqa: E402

# In the page: time Upscale, then the limit (TF.js on this thread, one predict, same backend).
MEASURE = """async ({ model, sizes, repeats }) => {
  const { Upscaler } = await import('./upscale.js');
  const photo = await createImageBitmap(await (await fetch('__bench__/photo.png')).blob());
  const crop = (size) => {
    const ctx = new OffscreenCanvas(size, size).getContext('2d');
    ctx.drawImage(photo, 0, 0);
    return ctx.getImageData(0, 0, size, size);
  };
  const stats = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return { median: s[Math.floor(s.length / 2)], min: s[0], max: s[s.length - 1], runs: s };
  };
  const t0 = performance.now();
  const up = new Upscaler({ model, backend: 'wasm' });
  const info = await up.ready;
  const readyMs = performance.now() - t0;
  const upscale = {};
  for (const size of sizes) {
    const image = crop(size);
    const times = [];
    for (let i = 0; i < repeats; i++) {
      const start = performance.now();
      await up.upscale(image);
      times.push(performance.now() - start);
    }
    upscale[size] = stats(times);
  }
  up.dispose();

  for (const src of ['vendor/tfjs/tf.min.js', 'vendor/tfjs/tf-backend-wasm.min.js']) {
    await new Promise((resolve, reject) => {
      const script = Object.assign(document.createElement('script'), { src });
      script.onload = resolve; script.onerror = reject;
      document.head.append(script);
    });
  }
  tf.wasm.setWasmPaths(new URL('vendor/tfjs/', location.href).href);
  await tf.setBackend('wasm');
  const net = await tf.loadLayersModel(info.model.url);
  const limit = {};
  for (const size of sizes) {
    const x = tf.tidy(() => tf.browser.fromPixels(crop(size)).toFloat().expandDims(0));
    const run = async () => {
      const y = net.predict(x);
      await y.data();
      y.dispose();
    };
    await run(); // warm-up: the first call for a shape pays for set-up
    const times = [];
    for (let i = 0; i < repeats; i++) {
      const start = performance.now();
      await run();
      times.push(performance.now() - start);
    }
    x.dispose();
    limit[size] = stats(times);
  }
  return { info: { backend: info.backend, reason: info.reason, timings: info.timings },
           readyMs, upscale, limit, threads: tf.wasm.getThreadsCount() };
}"""


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
    page.goto(f"{base}/index.html")
    page.wait_for_function("document.querySelector('#engine').dataset.state === 'ready'")
    page.evaluate(WATCH_MAIN_THREAD)
    page.set_input_files("#file", {"name": "photo.png", "mimeType": "image/png", "buffer": png})
    page.wait_for_function("document.querySelector('.item')?.dataset.state === 'done'")
    measured = page.evaluate(MAIN_THREAD_REPORT)
    page.close()
    return {"size": size, **measured}


def serve() -> tuple[str, object]:
    os.environ["UPSCALE_SERVE_QUIET"] = "1"
    server = build.make_server("127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


def photo_png(size: int) -> bytes:
    import io

    image = Image.open(build.ensure_photos()["astronaut.png"]).convert("RGB")
    image = image.resize((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def run(quick: bool) -> dict:
    sizes = [128, 256] if quick else [128, 256, 512]
    repeats = 1 if quick else 3
    base, server = serve()
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=build.CHROMIUM_ARGS)
            page = browser.new_page()
            png = photo_png(max(sizes))
            page.route("**/__bench__/photo.png",
                       lambda route: route.fulfill(body=png, content_type="image/png"))
            page.goto(f"{base}/index.html")
            version = browser.version
            measured = page.evaluate(MEASURE, {"model": "esrgan-slim-x2", "sizes": sizes,
                                               "repeats": repeats})
            page.close()
            main_thread = measure_page(browser, base, png, max(sizes))
            browser.close()
    finally:
        server.shutdown()
    return {
        "command": "python build.py bench" + (" --quick" if quick else ""),
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "browser": f"Chromium {version} (headless)",
        "model": "esrgan-slim-x2",
        "backend": measured["info"]["backend"],
        "reason": measured["info"]["reason"],
        "wasm_threads": measured["threads"],
        "cold_start_ms": measured["readyMs"],
        "startup": measured["info"]["timings"],
        "upscale_ms": measured["upscale"],
        "limit_ms": measured["limit"],
        "page_main_thread": main_thread,
    }


def report(results: dict) -> str:
    lines = [
        "# Upscale benchmark",
        "",
        f"Command: `{results['command']}`  ",
        f"Date: {results['date']}; machine: {results['machine']}; {results['browser']}  ",
        f"Model {results['model']} on {results['backend']} ({results['reason']})",
        "",
        "Time to upscale a square crop of the astronaut photo (ms, median of runs, [min-max]);",
        "'the limit' is one `model.predict` on the whole image in the same page.",
        "",
        "| size | Upscale | the limit | Upscale / limit |",
        "| --- | --- | --- | --- |",
    ]
    for size, up in results["upscale_ms"].items():
        limit = results["limit_ms"][size]
        lines.append(
            f"| {size} px | {up['median']:.0f} [{up['min']:.0f}-{up['max']:.0f}] | "
            f"{limit['median']:.0f} [{limit['min']:.0f}-{limit['max']:.0f}] | "
            f"{up['median'] / limit['median']:.2f} |"
        )
    lines += ["", f"Worker ready (Pyodide + TF.js + model + warm-up): "
              f"{results['cold_start_ms']:.0f} ms", ""]
    main = results.get("page_main_thread")
    if main:
        lines += [
            f"The upscaler page's main thread while it upscales a {main['size']} px photo "
            f"dropped on it ({main['elapsedMs']:.0f} ms, live tile previews on):",
            f"long tasks (>= 50 ms): {main['longTasks']}, the longest "
            f"{main['longestTaskMs']:.0f} ms; a 10 ms timer fired at worst "
            f"{main['worstTimerDelayMs']:.0f} ms late.",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    results = run(quick)
    out = ROOT / "bench"
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "REPORT.md").write_text(report(results))
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
