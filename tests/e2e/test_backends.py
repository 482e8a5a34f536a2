"""The backend matrix: WebAssembly, CPU, WebGL and WebGPU, each running the same small jobs in
one engine. WebGL and WebGPU run on SwiftShader here (Chromium's software GPU; WebGPU through
`--enable-unsafe-webgpu`): far slower than a GPU, but the real backends. Each backend must
match the publisher's reference (esrgan-slim x2) and the numpy reference of a converted model
(span-x2), tiled as one tile, leak no tensor over repeated jobs, stop on cancel, and, on a
GPU backend, survive losing its device."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from harness import BOOT_TIMEOUT_MS, TO_BASE64, photo_crop, png_bytes, psnr, serve_bytes
from PIL import Image
from test_converted_models import reference

from sitebuild import assemble, common, models
from tests.corpus import bars

GOLDEN_DB = 45.0  # the publisher's reference vs ours: same model, another tiler and backend
PARITY_DB = 45.0  # TF.js (float32, another summation order) vs the numpy reference
SPAN = next(m for m in models.load_manifests() if m["id"] == "span-x2")
SPAN_X4 = next(m for m in models.load_manifests() if m["id"] == "span-x4")
SLIM = next(m for m in models.load_manifests() if m["id"] == "esrgan-slim-x2")
SIDE = 32  # the converted model's input, as one tile
SMALL = 20  # the repeated jobs' input: 16 px tiles at padding 2, four of them
# The golden: the publisher's fixture cut to its centre, in 32 px tiles (the shape compiled at
# the start: nine of them), compared with the reference's same region less REACH px of input on
# each side, where the cut changes what the model sees (esrgan-slim's 3x3 and 5x5 convolutions
# reach 9 px). The whole fixture, as one tile and in 32 px tiles, is test_engine's, on WASM:
# SwiftShader's WebGPU takes 26 s for it tiled, 7 s for this cut.
GOLDEN_CUT, GOLDEN_SIDE, REACH = 32, 64, 10

# One engine: the golden cut in 32 px tiles, then span-x2 (setModel) as one tile (and, on half
# floats, black and white bars as one tile, by span-x2 and span-x4), two more jobs counting
# tensors, a job cancelled at its first tile, and on half floats a model marked "float16": false
# (setModel), which moves the engine to WASM.
MATRIX = """async ({ backend, tfFlags, fixture, crop, pattern, small, side, marked }) => {
  const { Upscaler } = await import('./upscale.js');
""" + TO_BASE64 + """
  // Compiled for 32 px tiles (each model's warm-up): SwiftShader runs 128 px ones slowly.
  const up = new Upscaler({ model: 'esrgan-slim-x2', backend, tfFlags, patchSize: 32 });
  window.__up = up;
  const info = await up.ready;
  const file = async (url) => (await fetch(url)).blob();
  const image = (out) => toBase64(new Uint8Array(out.data.buffer));
  const golden = image(await up.upscale(await file(fixture), { patchSize: 32, padding: 4 }));
  await up.setModel('span-x2');
  const oneTile = { patchSize: side, padding: 0 };
  const span = image(await up.upscale(await file(crop), oneTile));
  const bars = pattern && image(await up.upscale(await file(pattern), oneTile));
  // span-x4 too: on half floats its attention runs as tanh, or the bars lose 4 dB past 45.
  let barsX4 = null;
  if (pattern) {
    await up.setModel('span-x4');
    barsX4 = image(await up.upscale(await file(pattern), oneTile));
    await up.setModel('span-x2');
  }
  const tiled = { patchSize: 16, padding: 2 };
  await up.upscale(await file(small), tiled);
  const before = await up.memory();
  for (let i = 0; i < 2; i += 1) await up.upscale(await file(small), tiled);
  const after = await up.memory();
  const controller = new AbortController();
  const progress = [];
  // Sixteen tiles: enough that the tile workers' queues cannot hold them all when it stops.
  const cancelled = await up.upscale(await file(crop), {
    patchSize: 16, padding: 4, signal: controller.signal,
    onProgress: ({ done, total }) => { progress.push([done, total]); controller.abort(); },
  }).then(() => 'resolved', (e) => e.name);
  // Requests run in order: this one answers once the cancelled job has stopped.
  const ranCancelled = (await up.memory()).tilesRun - after.tilesRun;
  const next = await up.upscale(await file(small), tiled);
  const afterCancel = await up.memory();
  const infoAfter = await up.ready;
  const moved = marked && await up.setModel(marked);
  return { info, golden, span, bars, barsX4, before, after, cancelled, progress, ranCancelled,
           next: [next.width, next.height], afterCancel, infoAfter, moved };
}"""

# In the engine worker: lose the GPU as a driver reset would, and answer once the loss has been
# signalled (the engine's own listener, registered first, has run by then). The browser signals
# it a task or more later; a job sent before that fails with ContextLost, as one running on the
# GPU when it goes does (test_hostile.py), which is not what the job after a loss checks.
LOSE = {
    "webgl": """new Promise((signalled) => {
      const gl = tf.backend().gpgpu.gl;
      gl.canvas.addEventListener('webglcontextlost', () => signalled(), { once: true });
      gl.getExtension('WEBGL_lose_context').loseContext();
    })""",
    "webgpu": """(() => {
      const { device } = tf.backend();
      device.destroy();
      return device.lost.then(() => {});
    })()""",
}

AFTER_LOSS = """async (small) => {
  const up = window.__up;
  const out = await up.upscale(await (await fetch(small)).blob(), { patchSize: 16, padding: 2 });
  const info = await up.ready;
  up.dispose();
  return { size: [out.width, out.height], backend: info.backend, reason: info.reason };
}"""


def rgb(encoded: str, width: int, height: int) -> np.ndarray:
    return np.frombuffer(base64.b64decode(encoded), np.uint8).reshape(height, width, 4)[..., :3]


# WebGL once more as a phone without float32 render targets runs it: half-float textures.
# esrgan-slim and span-x2 both run there (tests/unit/test_span_half_floats.py has why SPAN can);
# no catalogue model says "float16": false, so the test's catalogue marks one.
F16 = {"WEBGL_FORCE_F16_TEXTURES": True}
MARKED = "esrgan-slim-x3"
BACKENDS = {"wasm": ("wasm", None), "cpu": ("cpu", None), "webgl": ("webgl", None),
            "webgl-f16": ("webgl", F16), "webgpu": ("webgpu", None)}


def mark_half_float_breaking(app, dist_dir, model_id: str) -> None:
    """Serve the catalogue with `model_id` saying "float16": false."""
    catalogue = json.loads((dist_dir / assemble.hashed_path("web") / "models.json").read_text())
    for entry in catalogue:
        if entry["id"] == model_id:
            entry["float16"] = False
    app.route("**/models.json", lambda route: route.fulfill(
        body=json.dumps(catalogue), content_type="application/json"))


@pytest.mark.parametrize("case", list(BACKENDS))
def test_every_backend_matches_the_references_leaks_nothing_and_cancels(
        app, dist_dir, photos, ncnn_by_id, case):
    backend, flags = BACKENDS[case]
    app.set_default_timeout(BOOT_TIMEOUT_MS * 5)
    if flags == F16:
        mark_half_float_breaking(app, dist_dir, MARKED)
    package = common.NODE_MODULES / SLIM["package"]
    cut = slice(GOLDEN_CUT, GOLDEN_CUT + GOLDEN_SIDE)
    fixture = np.asarray(Image.open(package / SLIM["reference"]["fixture"]))[cut, cut]
    expected = np.asarray(Image.open(package / SLIM["reference"]["result"]).convert("RGB"))
    crop = photo_crop(photos, "astronaut.png", SIDE, left=180, top=90)
    small = serve_bytes(app, "small.png", png_bytes(crop[:SMALL, :SMALL]))
    got = app.evaluate(MATRIX, {
        "backend": backend, "tfFlags": flags, "side": SIDE,
        "fixture": serve_bytes(app, "fixture.png", png_bytes(fixture)),
        "crop": serve_bytes(app, "crop.png", png_bytes(crop)),
        "pattern": serve_bytes(app, "bars.png", png_bytes(bars(SIDE))) if flags == F16 else None,
        "marked": MARKED if flags == F16 else None,
        "small": small})
    assert got["info"]["backend"] == backend, got["info"]["reason"]
    assert got["info"]["tile"]["patchSize"] == 32, "the patch asked for at the start"
    golden = rgb(got["golden"], 2 * GOLDEN_SIDE, 2 * GOLDEN_SIDE)
    inside = slice(2 * REACH, 2 * (GOLDEN_SIDE - REACH))
    region = slice(2 * (GOLDEN_CUT + REACH), 2 * (GOLDEN_CUT + GOLDEN_SIDE - REACH))
    assert psnr(golden[inside, inside], expected[region, region]) >= GOLDEN_DB
    span = rgb(got["span"], SIDE * 2, SIDE * 2)
    assert psnr(span, reference(ncnn_by_id, SPAN, crop)) >= PARITY_DB
    assert got["after"]["tensors"] == got["before"]["tensors"], (got["before"], got["after"])
    assert got["after"]["bytes"] == got["before"]["bytes"]
    assert got["cancelled"] == "AbortError" and got["progress"][0][1] > 1, got["progress"]
    total = got["progress"][0][1]
    assert got["ranCancelled"] < total, f"the cancelled job ran {got['ranCancelled']} of {total}"
    assert got["next"] == [SMALL * 2, SMALL * 2]
    assert got["afterCancel"]["tensors"] == got["before"]["tensors"], "a cancel leaks nothing"
    worker = [w for w in app.workers if w.url.endswith("/worker.js")][-1]
    if flags == F16:
        # The flag took, span-x2 stayed on WebGL's half floats, and on black and white bars
        # (hard edges) it keeps to float32 as on the photo.
        assert worker.evaluate("tf.env().getBool('WEBGL_RENDER_FLOAT32_ENABLED')") is False
        assert got["infoAfter"]["backend"] == "webgl", got["infoAfter"]
        assert "half floats" not in got["infoAfter"]["reason"], got["infoAfter"]["reason"]
        pattern = rgb(got["bars"], SIDE * 2, SIDE * 2)
        assert psnr(pattern, reference(ncnn_by_id, SPAN, bars(SIDE))) >= PARITY_DB
        pattern = rgb(got["barsX4"], SIDE * 4, SIDE * 4)
        assert psnr(pattern, reference(ncnn_by_id, SPAN_X4, bars(SIDE))) >= PARITY_DB
        assert got["moved"]["backend"] == "wasm", got["moved"]
        assert f"{MARKED} overflows WebGL's half floats here" in got["moved"]["reason"]
    if backend not in LOSE or flags == F16:  # losing WebGL is the plain webgl case's
        app.evaluate("window.__up.dispose()")
        return
    assert got["infoAfter"]["backend"] == backend
    worker.evaluate(LOSE[backend])
    after = app.evaluate(AFTER_LOSS, small)
    assert after["size"] == [SMALL * 2, SMALL * 2] and after["backend"] == "wasm", after
    assert " was lost" in after["reason"], after  # "the WebGPU device was lost (...); now ..."


# TfBridge lives in the workers: a worker of the test's own loads it and classifies adapters
# the way `auto` sees them (GPUAdapter's fields: isFallbackAdapter, info).
CLASSIFY = """async ({ script, adapters }) => {
  const source = `importScripts(${JSON.stringify(script)});
    onmessage = ({ data }) => postMessage(data.map((a) => TfBridge.softwareAdapter(a)));`;
  const worker = new Worker(URL.createObjectURL(new Blob([source], { type: 'text/javascript' })));
  const answer = new Promise((resolve) => { worker.onmessage = ({ data }) => resolve(data); });
  worker.postMessage(adapters);
  try {
    return await answer;
  } finally {
    worker.terminate();
  }
}"""


def test_software_webgpu_adapters_are_told_apart_also_without_is_fallback_adapter(app, site):
    adapters = [
        {"isFallbackAdapter": True, "info": {}},
        {"info": {"isFallbackAdapter": True}},
        {"info": {"vendor": "google", "architecture": "swiftshader"}},  # this machine's
        {"info": {"vendor": "mesa", "description": "llvmpipe (LLVM 15.0.6, 256 bits)"}},
        {"info": {"vendor": "nvidia", "architecture": "ampere", "description": "RTX 3060"}},
        {"info": {"vendor": "apple", "architecture": "metal-3"}},
    ]
    got = app.evaluate(CLASSIFY, {
        "script": f"{site}/{assemble.hashed_path('web')}/tfbridge.js", "adapters": adapters})
    assert got[:2] == ["software fallback adapter"] * 2
    assert got[2] == "software adapter (swiftshader)"
    assert got[3] == "software adapter (llvmpipe (LLVM 15.0.6, 256 bits))"
    assert got[4:] == [None, None]


def test_auto_leaves_the_software_webgpu_adapter_alone(app):
    """The same browser runs backend 'webgpu' above (the adapter is there); `auto` says why it
    does not pick it."""
    app.set_default_timeout(BOOT_TIMEOUT_MS)
    info = app.evaluate("""async () => {
        const { Upscaler } = await import('./upscale.js');
        const up = new Upscaler({ backend: 'auto' });
        try {
          return await up.ready;
        } finally {
          up.dispose();
        }
    }""")
    assert info["backend"] != "webgpu"
    assert "WebGPU: software" in info["reason"], info["reason"]
