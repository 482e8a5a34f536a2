"""The page boots a worker with Pyodide (numpy, PIL, upscale) and TF.js, from our origin only."""

import re

BOOT_TIMEOUT_MS = 90_000


def test_page_reports_ready_and_backend(app, site):
    app.goto(f"{site}/index.html")
    app.wait_for_function(
        "() => ['ready', 'error'].includes(document.querySelector('#engine').dataset.state)",
        timeout=BOOT_TIMEOUT_MS,
    )
    engine = app.locator("#engine")
    assert engine.get_attribute("data-state") == "ready", engine.text_content()
    backend = engine.get_attribute("data-backend")
    reason = app.locator("#engine-reason").text_content()
    # What this browser's WebGL runs on decides what `auto` must pick: a software renderer
    # (SwiftShader, llvmpipe: CI) is passed over for WASM, and the reason says so.
    renderer = app.evaluate("""() => {
        const gl = new OffscreenCanvas(1, 1).getContext('webgl2');
        if (!gl) return null;
        const info = gl.getExtension('WEBGL_debug_renderer_info');
        return gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER);
    }""")
    if renderer and not re.search(r"swiftshader|llvmpipe|software", renderer, re.I):
        assert backend in {"webgpu", "webgl"}, (renderer, reason)
    else:
        assert backend == "wasm", (renderer, reason)
        assert re.search(r"WASM (threaded SIMD|SIMD|scalar), \d+ threads?", reason), reason
        if renderer:
            assert "software renderer" in reason, "the reason says why WebGL was passed over"


def test_worker_imports_numpy_pil_and_upscale(app, site):
    app.goto(f"{site}/index.html")
    app.wait_for_function("() => document.querySelector('#engine').dataset.state === 'ready'",
                          timeout=BOOT_TIMEOUT_MS)
    info, later = app.evaluate(
        """async () => {
            const { Upscaler } = await import('./upscale.js');
            const up = new Upscaler();
            const info = await up.ready;
            await up.upscale(new ImageData(new Uint8ClampedArray(8 * 8 * 4).fill(255), 8, 8));
            const opaque = (await up.setModel(info.model.id)).versions.pillow;
            const canvas = new OffscreenCanvas(8, 8);
            canvas.getContext('2d').fillRect(0, 0, 8, 8);
            const png = await canvas.convertToBlob({ type: 'image/png' });
            await up.upscale(png);
            const later = (await up.setModel(info.model.id)).versions.pillow;
            up.dispose();
            return [{ ...info, opaque }, later];
        }"""
    )
    assert info["versions"]["python"].startswith("3.12")
    assert info["versions"]["tfjs"] == "4.22.0"
    assert info["versions"]["numpy"].startswith("2.0")
    assert info["model"]["id"] == "span-x2"  # the default: sharpest on photos per cost
    # Pillow loads only when a file has to be decoded: opaque pixels never need it.
    assert (info["versions"]["pillow"], info["opaque"], later) == (None, None, "10.2.0")


def test_page_is_cross_origin_isolated(app, site):
    app.goto(f"{site}/index.html")
    assert app.evaluate("crossOriginIsolated") is True


def test_foreign_request_guard_catches_worker_fetch(app, site, foreign_requests):
    """The guard itself: a worker reaching for another origin is seen (and then cleared)."""
    app.goto(f"{site}/index.html")
    app.evaluate(
        """() => new Promise((resolve) => {
            const src = "fetch('http://foreign.invalid/leak')"
                + ".catch(() => {}).finally(() => postMessage(1))";
            const w = new Worker(URL.createObjectURL(new Blob([src], { type: 'text/javascript' })));
            w.onmessage = () => { w.terminate(); resolve(); };
        })"""
    )
    assert foreign_requests == ["http://foreign.invalid/leak"]
    foreign_requests.clear()
