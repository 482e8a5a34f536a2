"""The dev server: MIME types and the isolation headers, as a browser would receive them."""

import urllib.request

import pytest


@pytest.mark.parametrize(
    ("path", "mime"),
    [
        ("/vendor/tfjs/tfjs-backend-wasm-simd.wasm", "application/wasm"),
        ("/vendor/pyodide/pyodide.asm.wasm", "application/wasm"),
        ("/upscale.js", "text/javascript"),
        ("/models/index.json", "application/json"),
    ],
)
def test_mime_and_isolation_headers(site, path, mime):
    with urllib.request.urlopen(site + path) as response:
        assert response.headers["Content-Type"].startswith(mime)
        assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
