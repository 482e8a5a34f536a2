"""The engine in Chromium: real Pyodide, real TF.js backends, the real pretrained models."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from harness import TO_BASE64, photo_crop, png_bytes, psnr, run_jobs, serve_bytes
from PIL import Image

from sitebuild import common, models

MANIFESTS = models.load_manifests()
WITH_REFERENCE = [m for m in MANIFESTS if "reference" in m]
GOLDEN_DB = 45.0  # publisher's reference vs ours: same model, another tiler and backend build
SEAM_DB = 55.0  # 64 px tiles vs one tile on a 256 px photo (UpscalerJS: ~48 dB at padding 2)


def package_file(manifest: dict, relative: str) -> bytes:
    return (common.NODE_MODULES / manifest["package"] / relative).read_bytes()


@pytest.mark.parametrize("manifest", WITH_REFERENCE, ids=[m["id"] for m in WITH_REFERENCE])
def test_golden_parity_one_tile_and_32px_tiles(shared_app, manifest):
    reference = package_file(manifest, manifest["reference"]["result"])
    expected = np.asarray(Image.open(io.BytesIO(reference)).convert("RGB"))
    fixture_png = package_file(manifest, manifest["reference"]["fixture"])
    fixture = serve_bytes(shared_app, f"fixture-{manifest['id']}.png", fixture_png)
    outcome = run_jobs(shared_app, manifest["id"], [
        {"url": fixture},
        {"url": fixture, "options": {"patchSize": 32, "padding": 4}},
    ])
    one_tile, tiled = (r["image"] for r in outcome["results"])
    assert one_tile.shape[:2] == expected.shape[:2]
    assert psnr(one_tile[..., :3], expected) >= GOLDEN_DB
    assert psnr(tiled[..., :3], expected) >= GOLDEN_DB
    assert (one_tile[..., 3] == 255).all(), "the opaque fixture stays opaque"


def test_rrdn_models_use_the_custom_layers():
    rrdn = [m for m in MANIFESTS if m["architecture"] == "rrdn"]
    assert {m["id"] for m in rrdn} >= {"esrgan-thick-x2", "esrgan-legacy-gans-x4"}
    assert all(m["inputRange"] == [0, 1] and "MultiplyBeta" in m["customLayers"] for m in rrdn)


@pytest.mark.parametrize("model", ["esrgan-slim-x8", "esrgan-medium-x8"])
def test_8x_models_without_reference_run_and_beat_bicubic(shared_app, photos, model):
    original = photo_crop(photos, "astronaut.png", 256, 128, 16)
    small = np.asarray(Image.fromarray(original).resize((32, 32), Image.Resampling.BICUBIC))
    url = serve_bytes(shared_app, f"small-{model}.png", png_bytes(small))
    (result,) = run_jobs(shared_app, model, [{"url": url}])["results"]
    assert result["image"].shape == (256, 256, 4)
    bicubic = np.asarray(Image.fromarray(small).resize((256, 256), Image.Resampling.BICUBIC))
    assert psnr(result["image"][..., :3], original) > psnr(bicubic, original) - 1.0


def test_no_visible_seams_with_64px_tiles(shared_app, photos, record_property):
    photo = photo_crop(photos, "astronaut.png", 256, 128, 16)
    url = serve_bytes(shared_app, "photo.png", png_bytes(photo))
    outcome = run_jobs(shared_app, "esrgan-slim-x2", [
        {"url": url, "options": {"patchSize": 256, "padding": 0}},
        {"url": url, "options": {"patchSize": 64}},
    ])
    whole, tiled = (r["image"][..., :3] for r in outcome["results"])
    seam_db = psnr(whole, tiled)
    record_property("seam_psnr_db", round(seam_db, 2))
    assert seam_db >= SEAM_DB, f"64 px tiles vs one tile: {seam_db:.2f} dB"


def test_transparency_is_kept_and_opaque_stays_opaque(shared_app, photos):
    rgba = np.dstack([photo_crop(photos, "coffee.png", 48, 200, 100),
                      np.zeros((48, 48), np.uint8)])
    rgba[:, 24:, 3] = 255  # right half opaque, left half fully transparent
    rgba[:8, 24:, 3] = 128  # and a semi-transparent strip
    transparent = serve_bytes(shared_app, "alpha.png", png_bytes(rgba))
    opaque = serve_bytes(shared_app, "opaque.png", png_bytes(rgba[..., :3]))
    outcome = run_jobs(shared_app, "esrgan-slim-x2", [{"url": transparent}, {"url": opaque}])
    with_alpha, without = (r["image"] for r in outcome["results"])
    assert (with_alpha[:, :44, 3] == 0).all(), "transparent stays transparent"
    assert (with_alpha[20:, 52:, 3] == 255).all(), "opaque stays opaque"
    assert abs(int(with_alpha[4, 70, 3]) - 128) <= 2, "semi-transparent keeps its level"
    assert (without[..., 3] == 255).all()


def test_no_tensors_leak_over_ten_upscales(shared_app, photos):
    crop = photo_crop(photos, "rocket.jpg", 40, 300, 200)
    url = serve_bytes(shared_app, "p.png", png_bytes(crop))
    outcome = run_jobs(shared_app, "esrgan-slim-x2",
                       [{"url": url, "options": {"patchSize": 32, "padding": 4}}] * 10)
    assert outcome["after"]["tensors"] == outcome["before"]["tensors"]
    assert outcome["after"]["bytes"] == outcome["before"]["bytes"]


def test_every_input_kind_and_abort(app, photos):
    url = serve_bytes(app, "in.png", png_bytes(photo_crop(photos, "chelsea.png", 40, 150, 60)))
    result = app.evaluate(
        """async (url) => {
          const { Upscaler } = await import('./upscale.js');
          const up = new Upscaler({ model: 'esrgan-slim-x2', backend: 'wasm' });
          await up.ready;
          const blob = await (await fetch(url)).blob();
          const bitmap = await createImageBitmap(blob);
          const canvas = document.createElement('canvas');
          canvas.width = bitmap.width; canvas.height = bitmap.height;
          const ctx = canvas.getContext('2d');
          ctx.drawImage(bitmap, 0, 0);
          const img = new Image(); img.src = url; await img.decode();
          const inputs = { blob, url, bitmap, canvas, img,
                           imageData: ctx.getImageData(0, 0, 40, 40) };
          const sizes = {};
          for (const [name, input] of Object.entries(inputs)) {
            const out = await up.upscale(input);
            sizes[name] = [out.width, out.height, out.data[0]];
          }
          const before = await up.memory();
          const controller = new AbortController();
          let aborted = null;
          const big = new OffscreenCanvas(300, 300).getContext('2d').getImageData(0, 0, 300, 300);
          const job = up.upscale(big, { patchSize: 32, padding: 4, signal: controller.signal,
            onProgress: (p) => { total = p.total; if (p.done === 2) controller.abort(); } });
          let total = null;
          try { await job; } catch (error) { aborted = error.name; }
          // Requests run in order: this one answers once the cancelled job has stopped.
          const ran = (await up.memory()).tilesRun - before.tilesRun;
          const again = await up.upscale(blob);
          const after = await up.memory();
          up.dispose();
          let disposed = null;
          try { await up.upscale(blob); } catch (error) { disposed = error.name; }
          return { sizes, aborted, ran, total, again: [again.width, again.height], before, after,
                   disposed };
        }""",
        url,
    )
    for name, (width, height, _) in result["sizes"].items():
        assert (width, height) == (80, 80), name
    assert result["aborted"] == "AbortError"
    assert result["ran"] < 10 < result["total"], "the worker stops handing out tiles on cancel"
    assert result["again"] == [80, 80], "the worker stays usable after a cancel"
    assert result["after"]["tensors"] == result["before"]["tensors"]
    assert result["disposed"] == "Disposed"


def test_list_models_returns_the_manifests(app, site):
    app.goto(f"{site}/index.html")
    listed = app.evaluate("async () => (await import('./upscale.js')).Upscaler.listModels()")
    assert [m["id"] for m in listed] == [m["id"] for m in MANIFESTS]
    assert json.loads(json.dumps(listed[0]))["url"].endswith("model.json")


def test_unknown_model_and_bad_options_are_named(app, site):
    app.goto(f"{site}/index.html")
    result = app.evaluate(
        """async () => {
          const { Upscaler } = await import('./upscale.js');
          const bad = new Upscaler({ model: 'nope' });
          let unknown = null;
          try { await bad.ready; } catch (error) { unknown = [error.name, error.message]; }
          bad.dispose();
          const up = new Upscaler({ backend: 'wasm' });
          await up.ready;
          const data = new ImageData(8, 8);
          let options = null;
          try { await up.upscale(data, { patchSize: 16, padding: 8 }); }
          catch (error) { options = [error.name, error.message]; }
          const ok = await up.upscale(data);
          up.dispose();
          return { unknown, options, ok: ok.width };
        }"""
    )
    assert result["unknown"][0] == "UnknownModel"
    assert "esrgan-slim-x2" in result["unknown"][1]
    assert result["options"] == [
        "InvalidOptions",
        "patchSize must be more than twice the padding: got patchSize 16, padding 8",
    ]
    assert result["ok"] == 16


ENCODE = """async () => {
  const { Upscaler } = await import('./upscale.js');
""" + TO_BASE64 + """
  window.__engines = window.__engines || {};
  const up = window.__engines.wasm || new Upscaler({ model: 'esrgan-slim-x2', backend: 'wasm' });
  window.__engines.wasm = up;
  await up.ready;
  const [width, height] = [40, 30];
  const pixels = new Uint8ClampedArray(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    const [x, y] = [i % width, Math.floor(i / width)]; // smooth, so JPEG keeps it well
    pixels.set([6 * x, 8 * y, 3 * (x + y), i % 5 ? 255 : 0], 4 * i);
  }
  const clear = new ImageData(pixels, width, height);
  const opaque = new ImageData(pixels.map((v, i) => (i % 4 === 3 ? 255 : v)), width, height);
  const files = {};
  const keep = async (key, image, options) => {
    const blob = await up.encode(image, options);
    files[key] = { type: blob.type, bytes: toBase64(new Uint8Array(await blob.arrayBuffer())) };
  };
  await keep('clear', clear);
  const bitmap = await createImageBitmap(opaque);
  await keep('opaque', bitmap);
  await keep('jpeg', bitmap, { type: 'image/jpeg', quality: 0.9 });
  await keep('webp', bitmap, { type: 'image/webp', quality: 0.9 });
  const refused = await up.encode(bitmap, { type: 'image/gif' }).then(
    () => 'resolved', (e) => ({ name: e.name, message: e.message }));
  return { files, refused, kept: bitmap.width, rgba: toBase64(new Uint8Array(opaque.data.buffer)) };
}"""


def test_a_result_is_encoded_in_the_worker_png_lossless_and_rgb_when_opaque(shared_app):
    """up.encode: PNG by Pillow (RGB for an opaque image, RGBA with its transparency), JPEG and
    WebP by the browser's encoders; the page's bitmap stays usable; a bad type is refused."""
    got = shared_app.evaluate(ENCODE)
    expected = np.frombuffer(base64.b64decode(got.pop("rgba")), np.uint8).reshape(30, 40, 4)
    images = {key: Image.open(io.BytesIO(base64.b64decode(file["bytes"])))
              for key, file in got["files"].items()}
    assert {key: file["type"] for key, file in got["files"].items()} == {
        "clear": "image/png", "opaque": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
    assert [images[key].format for key in ("clear", "opaque", "jpeg", "webp")] == [
        "PNG", "PNG", "JPEG", "WEBP"]
    assert images["opaque"].mode == "RGB"
    assert np.array_equal(np.asarray(images["opaque"]), expected[..., :3])
    clear = np.asarray(images["clear"])
    assert images["clear"].mode == "RGBA"
    assert np.array_equal(clear[..., 3], np.where(np.arange(1200).reshape(30, 40) % 5, 255, 0))
    shown = clear[..., 3] == 255
    assert np.array_equal(clear[shown][:, :3], expected[shown][:, :3])
    assert psnr(np.asarray(images["jpeg"].convert("RGB")), expected[..., :3]) > 35
    assert got["kept"] == 40
    assert got["refused"] == {"name": "InvalidOptions", "message": (
        "type must be one of image/png, image/jpeg, image/webp: got 'image/gif'")}
