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


def measure_shop(browser, base: str) -> dict:
    """shop.html in a fresh profile: time until every visible image is upscaled, then again
    on a second visit (from the cache); bytes of the small photos vs the large ones."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(SHOP_WATCH)
    page = context.new_page()
    page.set_default_timeout(300_000)
    visits = []
    for _ in range(2):
        if visits:
            page.reload()
        else:
            page.goto(f"{base}/shop.html")
        page.wait_for_function(SHOP_SETTLED)
        visits.append(page.evaluate(SHOP_NUMBERS))
    context.close()
    small = sorted((build.DIST / "shop" / "small").glob("*.jpg"))
    large = [build.DIST / "shop" / "large" / path.name for path in small]
    return {
        "products": len(small),
        "small_bytes": sum(path.stat().st_size for path in small),
        "large_bytes": sum(path.stat().st_size for path in large),
        "first_visit": visits[0],
        "second_visit": visits[1],
    }


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
            # A bare harness page on the site's origin, isolated like the site (threads) but
            # without its CSP: "the limit" runs TF.js on this page, threads from blob: included.
            harness = {k: v for k, v in build.SERVE_HEADERS.items()
                       if k != "Content-Security-Policy"}
            page.route(f"{base}/__bench__.html", lambda route: route.fulfill(
                body="<!doctype html><meta charset=utf-8><title>bench</title>",
                content_type="text/html", headers=harness))
            page.goto(f"{base}/__bench__.html")
            version = browser.version
            measured = page.evaluate(MEASURE, {"model": "esrgan-slim-x2", "sizes": sizes,
                                               "repeats": repeats})
            page.close()
            main_thread = measure_page(browser, base, png, max(sizes))
            shop = measure_shop(browser, base)
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
        "shop": shop,
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
    shop = results.get("shop")
    if shop:
        first, second = shop["first_visit"], shop["second_visit"]
        lines += [
            f"shop.html, 1280x800 window, {first['visible']} product photos visible: every "
            f"visible one upscaled {first['ms']:.0f} ms after navigation on a first visit "
            f"(engine start included), {second['ms']:.0f} ms on a second visit "
            f"({second['fromCache']} painted from the cache).",
            f"The {shop['products']} product photos weigh {shop['small_bytes'] / 1e3:.0f} KB at "
            f"150 px (as sent) against {shop['large_bytes'] / 1e3:.0f} KB at 300 px "
            f"(JPEG q90): {shop['large_bytes'] / shop['small_bytes']:.1f}x less to send.",
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
