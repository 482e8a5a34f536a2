"""Models converted from ncnn, in Chromium: parity with the numpy reference, seams, and
models the user brings (setModel({ ncnn })).

Parity: each converted network runs once on a photo crop that is exactly one tile (so the
tiler adds nothing), and its uint8 output is compared with tests/ncnn_reference.py, an
independent numpy forward pass of the original .param/.bin, rounded the same way.
"""

from __future__ import annotations

import base64

import numpy as np
import pytest
from harness import BOOT_TIMEOUT_MS, TO_BASE64, photo_crop, png_bytes, psnr, serve_bytes

from sitebuild import models

pytestmark = pytest.mark.e2e

PARITY_DB = 45.0  # TF.js (float32, another summation order) against numpy, uint8 outputs
SEAM_DB = 55.0  # 64 px tiles against one whole-image tile
SEAM_SIDE = 112  # the photo crops of the seam test

NCNN_MODELS = [m for m in models.load_manifests() if m.get("format") == "ncnn"]
# Real-ESRGAN x4plus is GPU-class (16.7M parameters): on SwiftShader's WebGL one tile takes
# minutes, so it is checked on WASM only; every op it uses is in the other models too. A
# manifest that reduces its network's output (realesr-general-x2: the x4 network, halved) is
# checked on WASM, reduction included; its network's seams and WebGL run are the x4 one's.
WEBGL_MODELS = [m for m in NCNN_MODELS
                if m["id"] != "realesrgan-x4plus" and not m.get("runScale")]

# One Upscaler, several models: each is loaded with setModel and run on its own inputs.
RUN_MODELS = """async ({ backend, runs, patchSize = null }) => {
  const { Upscaler } = await import('./upscale.js');
""" + TO_BASE64 + """
  const up = new Upscaler({ model: runs[0].model, backend, patchSize });
  try {
    const info = await up.ready;
    const results = [];
    for (const run of runs) {
      if (up.options.model !== run.model) await up.setModel(run.model);
      const blob = await (await fetch(run.url)).blob();
      const out = await up.upscale(blob, run.options);
      results.push({ width: out.width, height: out.height,
                     rgba: toBase64(new Uint8Array(out.data.buffer)) });
    }
    return { info, results, memory: await up.memory() };
  } finally {
    up.dispose();
  }
}"""


def decode(result: dict) -> np.ndarray:
    flat = np.frombuffer(base64.b64decode(result["rgba"]), np.uint8)
    return flat.reshape(result["height"], result["width"], 4)[..., :3]


def parity_side(manifest: dict) -> int:
    return {2: 40, 3: 32, 4: 24}[manifest["scale"]] if manifest["id"] != "realesrgan-x4plus" \
        else 16


def reference(ncnn_by_id, manifest: dict, image: np.ndarray) -> np.ndarray:
    """The numpy reference on `image`, with the edge-repeated margin the tiler supplies; a
    manifest with a runScale gets it reduced to its scale as the engine does (numpy too)."""
    from ncnn_reference import NcnnNet  # tests/, for tests only

    from upscale.stitch import reduce_into

    param, weights = ncnn_by_id[manifest["id"]]
    net = NcnnNet.load(param.read_text(), weights.read_bytes())
    margin = manifest["margin"]
    source = np.pad(image, ((margin, margin), (margin, margin), (0, 0)), mode="edge")
    top = manifest["inputRange"][1]
    out = net.forward(source.astype(np.float32) / 255 * top)
    out = np.clip(np.round(out / top * 255), 0, 255).astype(np.uint8)
    scale, run_scale = manifest["scale"], models.network_scale(manifest)
    if run_scale == scale:
        return out
    target = np.empty((image.shape[0] * scale, image.shape[1] * scale, 3), np.uint8)
    return reduce_into(out, target, run_scale // scale)


@pytest.mark.parametrize("backend, models", [("wasm", NCNN_MODELS), ("webgl", WEBGL_MODELS)])
def test_converted_models_match_the_numpy_reference(app, site, photos, ncnn_by_id, backend,
                                                    models):
    app.set_default_timeout(30 * 60_000 if backend == "webgl" else BOOT_TIMEOUT_MS * 3)
    runs, inputs = [], {}
    for manifest in models:
        side = parity_side(manifest)
        image = photo_crop(photos, "astronaut.png", side, left=180, top=90)
        inputs[manifest["id"]] = image
        url = serve_bytes(app, f"parity-{side}.png", png_bytes(image))
        runs.append({"model": manifest["id"], "url": url,
                     "options": {"patchSize": side, "padding": 0}})
    # Each model compiles for small tiles: SwiftShader runs its 128 px ones slowly.
    outcome = app.evaluate(RUN_MODELS, {"backend": backend, "runs": runs, "patchSize": 24})
    assert outcome["info"]["backend"] == backend
    scores = {}
    for manifest, result in zip(models, outcome["results"], strict=True):
        got = decode(result)
        image = inputs[manifest["id"]]
        scale = manifest["scale"]
        assert got.shape == (image.shape[0] * scale, image.shape[1] * scale, 3)
        want = reference(ncnn_by_id, manifest, image)
        assert want.shape == got.shape, manifest["id"]
        scores[manifest["id"]] = psnr(got, want)
    print(f"parity on {backend}, PSNR dB:", {k: round(v, 1) for k, v in scores.items()})
    assert all(db >= PARITY_DB for db in scores.values()), scores
    assert outcome["memory"]["tensors"] < 50_000  # sanity: the run above did not blow up


def test_tiles_of_64_px_leave_no_seam(app, photos):
    """Each manifest's padding, measured: tiles of 64 px against one tile of the whole image,
    on two photos: 112 px crops, so two tiles a side, the last one cut short. (Real-ESRGAN
    x4plus is left to the GPU: minutes per image on WASM.)"""
    app.set_default_timeout(BOOT_TIMEOUT_MS * 6)
    crops = {name: photo_crop(photos, name, SEAM_SIDE, 100, 60)
             for name in ("coffee.png", "chelsea.png")}
    urls = [serve_bytes(app, f"seam-{name}", png_bytes(crop)) for name, crop in crops.items()]
    runs = []
    for manifest in WEBGL_MODELS:  # model by model: one setModel each
        for url in urls:
            runs.append({"model": manifest["id"], "url": url,
                         "options": {"patchSize": SEAM_SIDE, "padding": 0}})
            runs.append({"model": manifest["id"], "url": url,
                         "options": {"patchSize": 64, "padding": manifest["padding"]}})
    results = app.evaluate(RUN_MODELS, {"backend": "wasm", "runs": runs})["results"]
    scores = {}
    for i in range(0, len(runs), 2):
        whole, tiled = decode(results[i]), decode(results[i + 1])
        scores.setdefault(runs[i]["model"], []).append(round(psnr(tiled, whole), 1))
    print("seams, PSNR dB of 64 px tiles against one tile:", scores)
    assert all(min(db) >= SEAM_DB for db in scores.values()), scores


def test_the_x2_mode_tiles_its_x4_network_and_halves_the_result_without_pillow(app, photos):
    """realesr-general-x2 on ImageData (opaque, so Pillow is never loaded): tiled at the x4
    network's scale, halved in numpy; its previews cover the x2 result once, and 64 px tiles
    give the one-tile result within the seams' margin."""
    app.set_default_timeout(BOOT_TIMEOUT_MS * 2)
    crop = photo_crop(photos, "coffee.png", 72, 300, 120, height=56)
    rgba = np.concatenate([crop, np.full(crop.shape[:2] + (1,), 255, np.uint8)], axis=2)
    outcome = app.evaluate("""async ({ rgba, width, height }) => {
      const { Upscaler } = await import('./upscale.js');
""" + TO_BASE64 + """
      const bytes = Uint8ClampedArray.from(atob(rgba), (c) => c.charCodeAt(0));
      const image = new ImageData(bytes, width, height);
      const up = new Upscaler({ model: 'realesr-general-x2', backend: 'wasm' });
      try {
        const info = await up.ready;
        const previews = [];
        const tiled = await up.upscale(image, { patchSize: 64, padding: 24, preview: true,
          onProgress: ({ preview }) => preview && previews.push(
            [preview.x, preview.y, preview.image.width, preview.image.height]) });
        const whole = await up.upscale(image, { patchSize: 72, padding: 0 });
        const pillow = (await up.setModel('realesr-general-x2')).versions.pillow;
        return { tile: info.tile, previews, pillow,
                 tiled: { width: tiled.width, height: tiled.height,
                          rgba: toBase64(new Uint8Array(tiled.data.buffer)) },
                 whole: { width: whole.width, height: whole.height,
                          rgba: toBase64(new Uint8Array(whole.data.buffer)) } };
      } finally {
        up.dispose();
      }
    }""", {"rgba": base64.b64encode(rgba.tobytes()).decode(), "width": 72, "height": 56})
    assert (outcome["tile"]["scale"], outcome["tile"]["reduce"]) == (4, 2), outcome["tile"]
    assert outcome["tile"]["padding"] == 24
    assert outcome["pillow"] is None  # the halving is numpy's: no job here loaded Pillow
    tiled, whole = decode(outcome["tiled"]), decode(outcome["whole"])
    assert tiled.shape == whole.shape == (112, 144, 3)
    covered = np.zeros((112, 144), np.int32)
    for x, y, width, height in outcome["previews"]:
        covered[y:y + height, x:x + width] += 1
    assert len(outcome["previews"]) == 2 and (covered == 1).all()
    assert psnr(tiled, whole) >= SEAM_DB


# --- bring your own model ----------------------------------------------------------------

OWN_MODEL = """async ({ param, bin, image, spec, broken }) => {
  const { Upscaler } = await import('./upscale.js');
  const up = new Upscaler({ model: 'esrgan-slim-x2', backend: 'wasm' });
  const blob = await (await fetch(image)).blob();
  const attempt = async (promise) => {
    try {
      const info = await promise;
      return { ok: true, model: info.model };
    } catch (error) {
      return { ok: false, name: error.name, message: error.message };
    }
  };
  try {
    await up.ready;
    const bad = [];
    for (const b of broken) {
      const spec = { ncnn: { param: b.param, bin: b.bin }, ...b.spec };
      const result = await attempt(up.setModel(spec));
      const after = await up.upscale(blob);  // the model in use before still runs
      bad.push({ ...result, stillWidth: after.width, stillModel: up.options.model });
    }
    const own = await attempt(up.setModel({ ncnn: { param, bin: await (await fetch(bin)).blob() },
                                            ...spec }));
    const out = await up.upscale(blob);
    await up.setModel('span-x2');
    const builtIn = await up.upscale(blob);
    return { bad, own, out: { width: out.width, data: Array.from(out.data) },
             builtIn: Array.from(builtIn.data) };
  } finally {
    up.dispose();
  }
}"""


def test_a_model_the_user_brings_runs_like_the_catalogue_one(app, photos, ncnn_files):
    """setModel({ ncnn }) with URLs and Blobs: converted in the worker, scale inferred; broken
    pairs fail by name and leave the previous model working."""
    app.set_default_timeout(BOOT_TIMEOUT_MS * 2)
    param_path, bin_path = ncnn_files["spanx2_ch48"]
    text = param_path.read_text()
    weights = bin_path.read_bytes()
    param = serve_bytes(app, "own/spanx2.param", text.encode(), "text/plain")
    bin_url = serve_bytes(app, "own/spanx2.bin", weights, "application/octet-stream")
    unknown = serve_bytes(app, "own/unknown.param",
                          text.replace("Swish ", "Fancy ", 1).encode(), "text/plain")
    short = serve_bytes(app, "own/short.bin", weights[:1000], "application/octet-stream")
    image = serve_bytes(app, "own/photo.png", png_bytes(photo_crop(photos, "chelsea.png", 48)))
    broken = [
        {"param": unknown, "bin": bin_url, "spec": {}},
        {"param": param, "bin": short, "spec": {}},
        {"param": param, "bin": bin_url, "spec": {"scale": 4}},
    ]
    outcome = app.evaluate(OWN_MODEL, {"param": param, "bin": bin_url, "image": image,
                                       "spec": {"name": "spanx2_ch48"}, "broken": broken})
    unsupported, invalid, wrong_scale = outcome["bad"]
    assert unsupported["name"] == "UnsupportedModel"
    assert "layer type Fancy" in unsupported["message"]
    assert invalid["name"] == "InvalidModel" and "ends before" in invalid["message"]
    assert wrong_scale["name"] == "InvalidOptions"
    assert wrong_scale["message"] == "scale 4 was given, but this network enlarges 2 times"
    for failed in outcome["bad"]:
        assert failed["stillWidth"] == 96 and failed["stillModel"] == "esrgan-slim-x2"
    own = outcome["own"]
    assert own["ok"] and own["model"]["scale"] == 2 and own["model"]["custom"] is True
    assert own["model"]["id"] == "custom:spanx2_ch48"
    assert outcome["out"]["width"] == 96
    mine = np.array(outcome["out"]["data"], np.uint8)
    builtin = np.array(outcome["builtIn"], np.uint8)
    assert psnr(mine, builtin) == float("inf")  # the same network, the same converter


def test_inspect_reads_the_jpeg_quality_while_an_upscale_runs(app, photos):
    app.set_default_timeout(BOOT_TIMEOUT_MS)
    import io

    from PIL import Image

    crop = photo_crop(photos, "rocket.jpg", 96)
    encoded = {}
    for quality in (35, 95):
        buffer = io.BytesIO()
        Image.fromarray(crop).save(buffer, "JPEG", quality=quality)
        encoded[quality] = serve_bytes(app, f"q{quality}.jpg", buffer.getvalue(), "image/jpeg")
    big = serve_bytes(app, "big.png", png_bytes(photo_crop(photos, "astronaut.png", 384)))
    outcome = app.evaluate("""async ({ low, high, big }) => {
      const { Upscaler } = await import('./upscale.js');
      const up = new Upscaler({ model: 'span-x2', backend: 'wasm' });
      try {
        await up.ready;
        const job = up.upscale(await (await fetch(big)).blob());
        let finished = false;
        job.then(() => { finished = true; });
        const lowInfo = await up.inspect(await (await fetch(low)).blob());
        const answeredFirst = !finished;
        const highInfo = await up.inspect(await (await fetch(high)).blob());
        await job;
        let bad;
        try { await up.inspect(new Blob(['not an image'])); } catch (e) { bad = e.name; }
        return { lowInfo, highInfo, answeredFirst, bad };
      } finally { up.dispose(); }
    }""", {"low": encoded[35], "high": encoded[95], "big": big})
    assert outcome["lowInfo"]["format"] == "JPEG"
    assert outcome["lowInfo"]["jpegQuality"] == 35 and outcome["lowInfo"]["denoise"] == 3
    assert outcome["highInfo"]["jpegQuality"] == 95 and outcome["highInfo"]["denoise"] is None
    assert outcome["answeredFirst"]  # not queued behind the running upscale
    assert outcome["bad"] == "NotAnImage"
