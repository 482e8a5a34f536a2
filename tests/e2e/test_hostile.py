"""Strangers' files through the real worker: a result or a named error, and the very next
upscale in the same worker works; nothing is left behind."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from harness import BOOT_TIMEOUT_MS
from PIL import Image, ImageFilter, ImageOps

from sitebuild import assemble, common
from tests.corpus import LEVEL_TOLERANCE, encode, hostile_inputs, linear_rgb_profile, photo
from upscale.imaging import Limits
from upscale.routing import RoutingTable, read_facts, route_decoded

# One Upscaler ('auto'): a file for each model the routing table names first, so the models it
# keeps are loaded; then each hostile file, then a good one, in turn; then the worker's memory.
EACH_THEN_GOOD = """async ({ cases, good, prime }) => {
  const { Upscaler } = await import('./upscale.js');
  const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const up = new Upscaler({ backend: 'wasm' });
  await up.ready;
  for (const data of prime) await up.upscale(new Blob([bytes(data)]));
  const before = await up.memory();
  const outcomes = {};
  for (const [name, data] of Object.entries(cases)) {
    let outcome;
    try {
      const out = await up.upscale(new Blob([bytes(data)]));
      let sum = 0;
      const d = out.data;
      for (let i = 0; i < d.length; i += 4) sum += d[i] + d[i + 1] + d[i + 2];
      const level = sum / (d.length * 0.75);
      outcome = { width: out.width, height: out.height, alpha: d[3], level };
    } catch (error) {
      outcome = { error: error.name, message: error.message };
    }
    const next = await up.upscale(new Blob([bytes(good)]));
    outcome.next = [next.width, next.height];
    outcomes[name] = outcome;
  }
  const after = await up.memory();
  up.dispose();
  return { outcomes, before, after };
}"""


def routed_files() -> list[bytes]:
    """A small file for each kind `auto` routes at x2 (PNG, a JPEG in each quality band, each
    lossy format, and pixels that read blurred): every model the hostile files may run is
    loaded before the tensors are counted. They fit the models kept (MODELS_KEPT in
    web/worker.js): none is pushed out."""
    table = RoutingTable.from_json(json.loads(assemble.ROUTING.read_text()))
    routes = table.routes(2)
    files = [encode(photo(12, 10), "PNG")]
    files += [encode(photo(12, 10), "JPEG", quality=max(band.at_least, 1)) for band in routes.jpeg]
    files += [encode(photo(12, 10), kind.upper(), quality=70) for kind in routes.lossy]
    # stretched: blurred noise alone has too little contrast for the restore model at x2
    soft = ImageOps.autocontrast(photo(24, 24).filter(ImageFilter.GaussianBlur(2)))
    files.append(encode(soft, "PNG"))
    models = {route_decoded(read_facts(data), 2, table,
                            np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))).model
              for data in files}
    assert routes.blurry is None or routes.blurry in models
    assert len(models) <= 5
    return files


def test_each_hostile_input_gets_a_result_or_its_error_then_the_next_works(app, record_property):
    corpus = hostile_inputs()
    good = encode(photo(12, 10), "PNG")
    app.set_default_timeout(BOOT_TIMEOUT_MS * 3)
    got = app.evaluate(EACH_THEN_GOOD, {
        "cases": {name: base64.b64encode(case.data).decode() for name, case in corpus.items()},
        "good": base64.b64encode(good).decode(),
        "prime": [base64.b64encode(data).decode() for data in routed_files()]})
    table = []
    for name, case in corpus.items():
        outcome = got["outcomes"][name]
        table.append(f"{name}: {outcome.get('error') or (outcome['width'], outcome['height'])}")
        assert outcome["next"] == [24, 20], f"the upscale after {name!r} failed"
        if case.error:
            assert outcome.get("error") == case.error, (name, outcome)
            assert outcome["message"], name
        else:
            height, width = case.shape[:2]
            assert (outcome.get("height"), outcome.get("width")) == (2 * height, 2 * width), \
                (name, outcome)
            if case.level is not None:  # the model keeps a flat image's level within a few
                assert abs(outcome["level"] - case.level) <= 4 * LEVEL_TOLERANCE, (name, outcome)
    record_property("outcomes", "; ".join(table))
    assert got["after"]["tensors"] == got["before"]["tensors"], "no tensors left behind"


SOAK = """async ({ runs, image }) => {
  const { Upscaler } = await import('./upscale.js');
  const bytes = Uint8Array.from(atob(image), (c) => c.charCodeAt(0));
  const up = new Upscaler({ backend: 'wasm' });
  await up.ready;
  const samples = [];
  for (let i = 0; i < runs; i++) {
    await up.upscale(new Blob([bytes]));
    if (i % 10 === 0 || i === runs - 1) samples.push({ run: i + 1, ...(await up.memory()) });
  }
  up.dispose();
  return samples;
}"""

SOAK_RUNS = 50
HEAP_GROWTH_LIMIT = 32 << 20  # bytes the Pyodide heap may grow over the soak, after run 1


def test_soak_fifty_upscales_in_one_worker(app, record_property):
    """Tensors stay flat; the wasm heap of Python may grow once to its working size, then
    stays within a bound."""
    app.set_default_timeout(BOOT_TIMEOUT_MS * 3)
    image = encode(photo(96, 80, seed=7), "PNG")
    samples = app.evaluate(SOAK, {"runs": SOAK_RUNS, "image": base64.b64encode(image).decode()})
    record_property("soak", samples)
    assert len({s["tensors"] for s in samples}) == 1, samples
    assert len({s["bytes"] for s in samples}) == 1, samples
    growth = samples[-1]["pyHeapBytes"] - samples[0]["pyHeapBytes"]
    assert growth <= HEAP_GROWTH_LIMIT, f"Python's heap grew {growth} bytes: {samples}"


def test_a_worker_that_dies_rejects_what_is_pending_and_the_next_call_starts_afresh(app):
    """An uncaught error kills the worker mid-job: the pending upscale and the one queued
    behind it reject with WorkerCrashed, and the next upscale runs on a fresh worker."""
    app.set_default_timeout(BOOT_TIMEOUT_MS * 2)
    image = base64.b64encode(encode(photo(300, 200, seed=5), "PNG")).decode()
    app.evaluate("""async (image) => {
        const { Upscaler } = await import('./upscale.js');
        const bytes = Uint8Array.from(atob(image), (c) => c.charCodeAt(0));
        window.__up = new Upscaler({ backend: 'wasm' });
        await window.__up.ready;
        const settle = (p) => p.then(() => 'resolved', (e) => `${e.name}: ${e.message}`);
        window.__first = settle(window.__up.upscale(new Blob([bytes]), {
          onProgress: () => { window.__started = true; } }));
        window.__second = settle(window.__up.upscale(new Blob([bytes])));
    }""", image)
    app.wait_for_function("() => window.__started === true")
    [worker] = [w for w in app.workers if w.url.endswith("/worker.js")]
    worker.evaluate("setTimeout(() => { throw new Error('simulated crash'); })")
    first, second = app.evaluate("Promise.all([window.__first, window.__second])")
    for outcome in (first, second):
        assert outcome.startswith("WorkerCrashed: the Upscale worker crashed"), outcome
        assert "simulated crash" in outcome
    size = app.evaluate("""async (image) => {
        const bytes = Uint8Array.from(atob(image), (c) => c.charCodeAt(0));
        const out = await window.__up.upscale(new Blob([bytes]));
        window.__up.dispose();
        return [out.width, out.height];
    }""", image)
    assert size == [600, 400]


def start_upscaler(app, image: bytes, options: dict) -> dict:
    """window.__up, an Upscaler started with `options`, and window.__bytes, the encoded
    `image` each job of the test upscales; returns its info."""
    return app.evaluate("""async ({ image, options }) => {
        const { Upscaler } = await import('./upscale.js');
        window.__bytes = Uint8Array.from(atob(image), (c) => c.charCodeAt(0));
        window.__up = new Upscaler(options);
        return window.__up.ready;
    }""", {"image": base64.b64encode(image).decode(), "options": options})


def engine_worker(app):
    """The page's newest engine worker, to reach into as a fault would."""
    return [w for w in app.workers if w.url.endswith("/worker.js")][-1]


def test_a_lost_webgl_context_fails_the_job_clearly_and_the_next_runs_on_wasm(app):
    """WEBGL_lose_context mid-job: TF.js alone would wait forever. The job rejects with
    ContextLost, the engine reloads the model on WASM, and the next upscale works there."""
    app.set_default_timeout(BOOT_TIMEOUT_MS * 3)
    # Some two hundred 64 px tiles: even a real GPU is still busy with them when the context goes
    # (and SwiftShader compiles for 64 px far sooner than for the model's 128).
    big = base64.b64encode(encode(photo(480, 400, seed=9), "PNG")).decode()
    small = base64.b64encode(encode(photo(64, 48, seed=9), "PNG")).decode()
    app.evaluate("""async ([big, small]) => {
        const { Upscaler } = await import('./upscale.js');
        const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        window.__bytes = bytes(small);
        window.__up = new Upscaler({ backend: 'webgl', patchSize: 64 });
        window.__info = await window.__up.ready;
        window.__job = window.__up.upscale(new Blob([bytes(big)])).then(
            () => 'resolved', (e) => `${e.name}: ${e.message}`);
    }""", [big, small])
    assert app.evaluate("window.__info.backend") == "webgl"
    worker = engine_worker(app)
    lost = worker.evaluate("""() => {
        const gl = tf.backend().gpgpu.gl;
        gl.getExtension('WEBGL_lose_context').loseContext();
        return gl.isContextLost();
    }""")
    assert lost
    outcome = app.evaluate("window.__job")
    assert outcome.startswith("ContextLost: the WebGL context was lost"), outcome
    after = app.evaluate("""async () => {
        const out = await window.__up.upscale(new Blob([window.__bytes]));
        const memory = await window.__up.memory();
        window.__up.dispose();
        return { width: out.width, height: out.height, tensors: memory.tensors,
                 cores: navigator.hardwareConcurrency };
    }""")
    assert (after["width"], after["height"]) == (128, 96)
    # On WASM the model runs in one tile worker per core (up to 8), each with its weights.
    workers = min(after["cores"], 8)
    url = app.evaluate("window.__info.model.url")
    served = Path(os.environ.get("UPSCALE_DIST", common.DIST))
    topology = json.loads((served / urlsplit(url).path.lstrip("/")).read_text())
    weights = sum(len(group["weights"]) for group in topology["weightsManifest"])
    assert after["tensors"] == weights * workers, "only the models' weights, now on WASM"


def test_an_error_the_webgpu_device_reports_moves_the_engine_to_wasm(app):
    """A WebGPU error nobody captures (here a buffer past the device's limit, made in the
    engine worker) means wrong numbers without an exception. The device reports it when it
    next works (or sooner): a job it meets fails with ContextLost saying so, the engine moves
    to WASM as for a lost device, and the next job runs there."""
    app.set_default_timeout(BOOT_TIMEOUT_MS * 3)
    info = start_upscaler(app, encode(photo(24, 20, seed=9), "PNG"),
                          {"backend": "webgpu", "patchSize": 16})
    assert info["backend"] == "webgpu"
    engine_worker(app).evaluate("""() => {
        const { device } = tf.backend();
        const size = device.limits.maxBufferSize + 4;
        device.createBuffer({ size, usage: GPUBufferUsage.STORAGE });
    }""")
    after = app.evaluate("""async () => {
        const upscale = () => window.__up.upscale(new Blob([window.__bytes]));
        const failed = await upscale().then(() => 'resolved', (e) => `${e.name}: ${e.message}`);
        const out = await upscale();
        const info = await window.__up.ready;
        window.__up.dispose();
        return { failed, size: [out.width, out.height], backend: info.backend,
                 reason: info.reason };
    }""")
    reported = "the WebGPU device reported an error (GPUValidationError: Buffer size"
    # reported before the first job began, that job waits for WASM instead of failing
    assert after["failed"] == "resolved" or after["failed"].startswith(
        f"ContextLost: {reported}"), after
    assert after["size"] == [48, 40] and after["backend"] == "wasm", after
    assert after["reason"].startswith(reported), after


def test_a_gpu_loss_whose_move_to_wasm_fails_too_is_not_final(app):
    """The context goes, and WebAssembly cannot start either (its binary does not download):
    the engine used to refuse every later call with that failure. Now the worker is replaced,
    and the next call starts afresh."""
    app.set_default_timeout(BOOT_TIMEOUT_MS * 3)
    app.context.route("**/tfjs-backend-wasm*.wasm", lambda route: route.abort())
    start_upscaler(app, encode(photo(64, 48, seed=9), "PNG"), {"backend": "webgl", "patchSize": 32})
    engine_worker(app).evaluate(
        "tf.backend().gpgpu.gl.getExtension('WEBGL_lose_context').loseContext()")
    failed = app.evaluate("""async () => window.__up.upscale(new Blob([window.__bytes])).then(
        () => 'resolved', (e) => ({ name: e.name, message: e.message }))""")
    assert failed != "resolved" and failed["name"] == "ContextLost", failed
    assert "moving the model to WebAssembly failed" in failed["message"], failed
    app.context.unroute("**/tfjs-backend-wasm*.wasm")
    after = app.evaluate("""async () => {
        const out = await window.__up.upscale(new Blob([window.__bytes]));
        const info = await window.__up.ready;
        window.__up.dispose();
        return { size: [out.width, out.height], backend: info.backend };
    }""")
    assert after == {"size": [128, 96], "backend": "webgl"}, after


def test_limits_come_from_what_the_device_reports(app):
    app.set_default_timeout(BOOT_TIMEOUT_MS)
    info = app.evaluate("""async () => {
        const { Upscaler } = await import('./upscale.js');
        window.__up = new Upscaler({ backend: 'wasm' });
        return window.__up.ready;
    }""")
    worker = engine_worker(app)
    reported = worker.evaluate("navigator.deviceMemory ?? null")
    assert info["limits"] == Limits.for_device(reported).describe()
    app.evaluate("window.__up.dispose()")


def test_a_huge_canvas_or_bitmap_is_refused_before_its_pixels_are_read(app):
    """Each is refused by name while the caller still holds it (a bitmap handed to the worker
    would be detached: width 0), and the next job runs."""
    app.set_default_timeout(BOOT_TIMEOUT_MS * 2)
    got = app.evaluate("""async () => {
        const { Upscaler } = await import('./upscale.js');
        const up = new Upscaler({ model: 'esrgan-slim-x4', backend: 'wasm' });
        await up.ready;
        const refused = (promise) => promise.then(
            () => 'resolved', (e) => ({ name: e.name, message: e.message }));
        const canvas = document.createElement('canvas');
        canvas.width = 4096;
        canvas.height = 4096;  // x4: 3 GB of result copies
        const wide = new OffscreenCanvas(9000, 4);  // x4: 36000 px wide
        wide.getContext('2d').fillRect(0, 0, 9000, 4);
        const bitmap = await createImageBitmap(new ImageData(4200, 4100));  // over 4096 x 4096
        const got = {
            canvas: await refused(up.upscale(canvas)),
            wide: await refused(up.upscale(wide)),
            bitmap: await refused(up.upscale(bitmap)),
            bitmapKept: [bitmap.width, bitmap.height],
            check: await refused(up.check({ width: 4096, height: 4096 })),
        };
        const out = await up.upscale(new ImageData(32, 16));
        got.next = [out.width, out.height];
        up.dispose();
        return got;
    }""")
    for case in ("canvas", "wide", "bitmap", "check"):
        assert got[case] != "resolved" and got[case]["name"] == "ImageTooLarge", got
    assert "would hold about" in got["canvas"]["message"], got
    assert "a browser canvas holds at most 32767 pixels" in got["wide"]["message"], got
    assert "4200x4100 = 17,220,000 pixels" in got["bitmap"]["message"], got
    assert got["bitmapKept"] == [4200, 4100], "the bitmap stayed with its owner"
    assert got["next"] == [128, 64]


def test_a_worker_that_vanishes_silently_is_given_up_on(app):
    """No error event at all (the worker closes itself): the pending call rejects once the
    worker has been silent for stallMs, and the next call starts a fresh worker."""
    app.set_default_timeout(BOOT_TIMEOUT_MS * 2)
    start_upscaler(app, encode(photo(300, 200, seed=5), "PNG"),
                   {"backend": "wasm", "stallMs": 5000})
    app.evaluate("""() => {
        window.__job = window.__up.upscale(new Blob([window.__bytes]), {
          onProgress: () => { window.__started = true; } }).then(
            () => 'resolved', (e) => `${e.name}: ${e.message}`);
    }""")
    app.wait_for_function("() => window.__started === true")
    engine_worker(app).evaluate("setTimeout(() => close())")
    assert app.evaluate("window.__job") == \
        "WorkerCrashed: the Upscale worker stopped answering (silent for 5 s)"
    size = app.evaluate("""async () => {
        const out = await window.__up.upscale(new Blob([window.__bytes]));
        window.__up.dispose();
        return [out.width, out.height];
    }""")
    assert size == [600, 400]


def test_a_long_synchronous_step_is_not_taken_for_a_dead_worker(app):
    """Decoding a 4096 x 4096 PNG and converting its colour profile holds the worker for
    seconds, deaf to pings: with stallMs 1000 it used to be judged dead ("stopped answering").
    It says it is busy, and the page gives it the step limit; the job goes on to its tiles
    (and is cancelled there). Loading is judged so too: on a loaded machine the worker
    answered a ping, then went silent in Python's start past 1 s and was judged dead. Here its
    answers are held back for 2.5 s after its first word, and again in a setModel; it still
    starts, and the model still loads."""
    app.set_default_timeout(BOOT_TIMEOUT_MS * 2)
    y, x = np.mgrid[0:4096, 0:4096]
    rgb = np.stack([x * 255 // 4095, y * 255 // 4095, (x + y) * 255 // 8190], -1)
    image = base64.b64encode(encode(Image.fromarray(rgb.astype(np.uint8)), "PNG",
                                    icc_profile=linear_rgb_profile())).decode()
    got = app.evaluate("""async (image) => {
        const { Upscaler } = await import('./upscale.js');
        const busy = []; // what the worker says, with the time it said it
        let deliver = null; // the engine's own handler of its worker's messages
        let held = null; // while an array: they wait there, as in a long silent step
        const hold = (ms) => new Promise((resolve) => {
          held = [];
          setTimeout(() => {
            const late = held;
            held = null;
            late.forEach((event) => deliver(event));
            resolve();
          }, ms);
        });
        let firstWord = true;
        let started = null; // held back from its first word on, while starting
        const Real = window.Worker;
        window.Worker = class extends Real {
          constructor(...args) {
            super(...args);
            this.addEventListener('message', ({ data }) => {
              if (data && data.type === 'busy') {
                busy.push({ what: data.what, at: performance.now() });
              }
            });
          }
          set onmessage(handler) {
            deliver = handler;
            super.onmessage = (event) => {
              if (held) {
                held.push(event);
                return;
              }
              handler(event);
              if (firstWord) {
                firstWord = false;
                started = hold(2500);
              }
            };
          }
        };
        const named = (e) => `${e.name}: ${e.message}`;
        const up = new Upscaler({ model: 'esrgan-slim-x2', backend: 'wasm', stallMs: 1000 });
        const ready = await up.ready.then((info) => info.model.id, named);
        await started;
        const [swapped] = await Promise.all([
          up.setModel('default-model-x2').then((info) => info.model.id, named), hold(2500)]);
        const file = new Blob([Uint8Array.from(atob(image), (c) => c.charCodeAt(0))]);
        const controller = new AbortController();
        const outcome = await up.upscale(file, {
          signal: controller.signal, onProgress: () => controller.abort(),
        }).then(() => 'resolved', (e) => ({ name: e.name, message: e.message }));
        const out = await up.upscale(new ImageData(16, 16));
        up.dispose();
        window.Worker = Real;
        const start = busy.find((b) => b.what === 'decoding the image');
        const end = start && busy.find((b) => b.at >= start.at && b.what !== 'decoding the image');
        const decodingMs = end ? end.at - start.at : null;
        return { ready, swapped, outcome, decodingMs, next: out.width };
    }""", image)
    assert got["ready"] == "esrgan-slim-x2", f"silent 2.5 s while starting: {got}"
    assert got["swapped"] == "default-model-x2", f"silent 2.5 s while loading a model: {got}"
    assert got["decodingMs"] and got["decodingMs"] > 1000, f"not a step longer than stallMs: {got}"
    assert got["outcome"] != "resolved" and got["outcome"]["name"] == "AbortError", got
    assert got["next"] == 32


@pytest.mark.parametrize(("model", "texture", "asked", "patch", "most"), [
    ("esrgan-slim-x8", 4096, None, 24, 24),
    ("esrgan-slim-x2", 1024, 64, 48, 51),
])
def test_the_gpu_tile_comes_from_its_texture_limit_before_the_warm_up(app, model, texture, asked,
                                                                       patch, most):
    """slim x8 at its 128 px would ask WebGL for a 21288² texture (its last conv unrolls 8² x 9
    x 192 values per input pixel). Python reads the model's graph against the texture limit
    (4096, as on many phones; SwiftShader's 8192 would take 48 px tiles, four times the work
    on a software GPU) and warms up at once at the largest multiple of 8 that fits: a warm-up
    that failed would halve instead (to 64, 32, then 16). The next multiple of 8 does not fit,
    as TF.js says (32 px: 5322² > 4096²). The tile runs, and a patchSize beyond what fits is
    refused by name."""
    app.set_default_timeout(BOOT_TIMEOUT_MS * 2)
    got = app.evaluate("""async ({ model, texture, asked, beyond }) => {
        const { Upscaler } = await import('./upscale.js');
        const up = new Upscaler({ model, backend: 'webgl', patchSize: asked,
                                  tfFlags: { WEBGL_MAX_TEXTURE_SIZE: texture } });
        const info = await up.ready;
        const out = await up.upscale(new ImageData(12, 10));
        const refused = await up.upscale(new ImageData(12, 10), { patchSize: beyond }).then(
            () => 'resolved', (e) => ({ name: e.name, message: e.message }));
        up.dispose();
        return { tile: info.tile, size: [out.width, out.height], refused };
    }""", {"model": model, "texture": texture, "asked": asked, "beyond": patch + 8})
    tile, scale = got["tile"], got["tile"]["scale"]
    assert (tile["patchSize"], tile["maxPatchSize"]) == (patch, most), tile
    assert got["size"] == [12 * scale, 10 * scale]
    assert got["refused"]["name"] == "InvalidOptions", got
    assert got["refused"]["message"].startswith(
        f"patchSize {patch + 8} is more than this GPU can hold for {model}: at most {most}"), got


def test_a_patch_too_large_for_memory_is_refused_by_name_and_the_next_job_runs(app):
    """patchSize 2048 on slim x4 used to trap the WebAssembly heap ("table index is out of
    bounds") and break every later job: the model's widest activation says up front that it
    cannot fit."""
    app.set_default_timeout(BOOT_TIMEOUT_MS * 2)
    got = app.evaluate("""async () => {
        const { Upscaler } = await import('./upscale.js');
        const up = new Upscaler({ model: 'esrgan-slim-x4', backend: 'wasm' });
        const info = await up.ready;
        const refused = await up.upscale(new ImageData(64, 64), { patchSize: 2048 }).then(
            () => 'resolved', (e) => ({ name: e.name, message: e.message }));
        const out = await up.upscale(new ImageData(64, 64));
        up.dispose();
        return { refused, size: [out.width, out.height], largest: info.tile.largestSide };
    }""")
    assert got["refused"]["name"] == "InvalidOptions", got
    assert "its activations would need over 1 GiB" in got["refused"]["message"], got
    assert 512 < got["largest"] < 2048, got
    assert got["size"] == [256, 256]


def test_a_tile_worker_broken_by_a_trap_is_replaced_and_the_next_job_runs(app):
    """A WebAssembly trap in a tile worker fails the job as OutOfMemory; the worker is
    replaced (its model loaded again), and the next jobs use every worker as before."""
    app.set_default_timeout(BOOT_TIMEOUT_MS * 2)
    app.evaluate("""async () => {
        const { Upscaler } = await import('./upscale.js');
        window.__up = new Upscaler({ model: 'esrgan-slim-x2', backend: 'wasm', workers: 2 });
        window.__info = await window.__up.ready;
        window.__before = await window.__up.memory();
    }""")
    tiles = [w for w in app.workers if w.url.endswith("/tileworker.js")]
    assert len(tiles) == 2, [w.url for w in app.workers]
    # One worker answers as a heap corrupted by a trap would: every call fails.
    tiles[0].evaluate("""() => { handlers.predict = async () => {
        throw new WebAssembly.RuntimeError('memory access out of bounds'); }; }""")
    got = app.evaluate("""async () => {
        const image = new ImageData(64, 48);
        // Tiles enough for both workers, so the broken one gets one.
        const failed = await window.__up.upscale(new ImageData(256, 256)).then(
            () => 'resolved', (e) => ({ name: e.name, message: e.message }));
        const runs = [];
        for (let i = 0; i < 3; i++) {
          const out = await window.__up.upscale(image);
          runs.push([out.width, out.height]);
        }
        const after = await window.__up.memory();
        window.__up.dispose();
        return { failed, runs, after, before: window.__before };
    }""")
    assert got["failed"]["name"] == "OutOfMemory", got
    assert "its tile worker was replaced" in got["failed"]["message"], got
    assert got["runs"] == [[128, 96]] * 3
    assert got["after"]["tensors"] == got["before"]["tensors"], "the new workers hold the model"


def test_a_stall_limit_of_zero_or_nan_is_refused(app):
    got = app.evaluate("""async () => {
        const { Upscaler } = await import('./upscale.js');
        return [0, NaN, -5, 'soon'].map((stallMs) => {
          try {
            new Upscaler({ stallMs });
            return 'accepted';
          } catch (e) {
            return `${e.name}: ${e.message}`;
          }
        });
    }""")
    assert all(g.startswith("InvalidOptions: stallMs must be at least 1000") for g in got), got


def test_a_backend_or_an_assets_address_that_cannot_work_is_refused_by_name(app, site):
    app.set_default_timeout(BOOT_TIMEOUT_MS * 2)
    got = app.evaluate("""async () => {
        const { Upscaler } = await import('./upscale.js');
        const said = (e) => `${e.name}: ${e.message}`;
        const cuda = new Upscaler({ backend: 'cuda' });
        const backend = await cuda.ready.then(() => 'ready', said);
        cuda.dispose();
        let assets = 'accepted';
        try {
          new Upscaler({ assetsURL: 'javascript:void 0' });
        } catch (e) {
          assets = said(e);
        }
        const listed = await Upscaler.listModels({ assetsURL: '/nowhere/' })
          .then(() => 'listed', said);
        const elsewhere = new Upscaler({ assetsURL: '/nowhere/', backend: 'wasm' });
        const worker = await elsewhere.ready.then(() => 'ready', said);
        elsewhere.dispose();
        return { backend, assets, listed, worker };
    }""")
    assert got["backend"].startswith('InvalidOptions: unknown backend "cuda": use auto'), got
    assert got["assets"] == ("InvalidOptions: assetsURL must be the address of the folder that "
                             "holds the engine's files (the package's assets/), not "
                             "javascript:void 0"), got
    web = assemble.hashed_path("web")
    assert got["listed"] == f"FetchError: could not fetch {site}/nowhere/{web}/models.json: " \
                            "HTTP 404", got
    assert got["worker"] == ("FetchError: the Upscale engine's worker did not load from "
                             f"{site}/nowhere/{web}/worker.js: serve the package's assets/ "
                             "folder there, or pass assetsURL (where it is served)"), got


def test_a_failed_start_is_not_final_the_next_call_starts_afresh(app):
    """The catalogue fails once (a flaky network): `ready` rejects, and the next upscale
    starts a fresh engine that works."""
    failures = {"left": 1}

    def flaky(route):
        if failures["left"]:
            failures["left"] -= 1
            route.fulfill(status=503, body="busy")
        else:
            route.continue_()

    app.route("**/models.json", flaky)
    app.set_default_timeout(BOOT_TIMEOUT_MS * 2)
    got = app.evaluate("""async () => {
        const { Upscaler } = await import('./upscale.js');
        const up = new Upscaler({ backend: 'wasm' });
        const first = await up.ready.then(() => 'ready', (e) => `${e.name}: ${e.message}`);
        const out = await up.upscale(new ImageData(16, 12));
        up.dispose();
        return { first, size: [out.width, out.height] };
    }""")
    assert "HTTP 503" in got["first"], got
    assert got["size"] == [32, 24]


def test_an_explicit_patch_too_small_for_the_default_padding_runs_with_less_padding(app):
    """slim x2 pads 8 px: patchSize 16 cannot hold that, so the job runs at padding 4 and
    says so; a padding the caller gives is theirs, and too large is refused."""
    app.set_default_timeout(BOOT_TIMEOUT_MS * 2)
    got = app.evaluate("""async () => {
        const { Upscaler } = await import('./upscale.js');
        const up = new Upscaler({ model: 'esrgan-slim-x2', backend: 'wasm' });
        await up.ready;
        const out = await up.upscale(new ImageData(40, 24), { patchSize: 16 });
        const tiling = up.lastTiling;
        const refused = await up.upscale(new ImageData(40, 24), { patchSize: 16, padding: 8 })
          .then(() => 'resolved', (e) => e.name);
        up.dispose();
        return { size: [out.width, out.height], tiling, refused };
    }""")
    assert got["size"] == [80, 48]
    assert got["tiling"] == {"patchSize": 16, "padding": 4}, got
    assert got["refused"] == "InvalidOptions", got
