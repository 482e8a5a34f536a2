"""The dev server: MIME types and the isolation headers, as a browser would receive them."""

import gzip
import urllib.request

import brotli
import pytest
from conftest import built

from sitebuild import assemble, serving


@pytest.mark.parametrize(
    ("path", "mime"),
    [
        ("/{tfjs}/tfjs-backend-wasm-simd.wasm", "application/wasm"),
        ("/{pyodide}/pyodide.asm.wasm", "application/wasm"),
        ("/{pyodide}/python_stdlib.zip", "application/zip"),
        ("/upscale.js", "text/javascript"),
        ("/{web}/models.json", "application/json"),
        ("/manifest.webmanifest", "application/manifest+json"),
    ],
)
def test_mime_and_isolation_headers(site, path, mime):
    with urllib.request.urlopen(site + built(path)) as response:
        assert response.headers["Content-Type"].startswith(mime)
        assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp"


STRICT = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; "
          "img-src 'self' blob: data:; connect-src 'self'; style-src 'self'")


@pytest.mark.parametrize("path", ["/shop.html", "/product.html", "/upscale.js", "/embed.js"])
def test_pages_get_the_strict_content_security_policy(site, path):
    with urllib.request.urlopen(site + path) as response:
        assert response.headers["Content-Security-Policy"] == STRICT


@pytest.mark.parametrize("path", ["/", "/index.html"])
def test_the_upscaler_page_may_also_fetch_addresses_the_user_gives(site, path):
    with urllib.request.urlopen(site + path) as response:
        policy = response.headers["Content-Security-Policy"]
    assert policy == STRICT.replace("connect-src 'self'", "connect-src 'self' https: http:")


def test_no_policy_allows_eval_and_only_the_engine_worker_blob_scripts(site):
    """TF.js's threaded WASM starts its threads from blob: scripts in the engine worker;
    nothing evals (Pyodide 0.27, TF.js's ES2017 bundles), so no policy says 'unsafe-eval'."""
    with urllib.request.urlopen(site + built("/{web}/worker.js")) as response:
        policy = response.headers["Content-Security-Policy"]
    assert policy == STRICT.replace("'wasm-unsafe-eval';", "'wasm-unsafe-eval' blob:;")
    with urllib.request.urlopen(site + built("/{web}/tileworker.js")) as response:
        assert response.headers["Content-Security-Policy"] == STRICT


@pytest.mark.parametrize("name", ["index.html", "shop.html", "product.html"])
def test_every_page_runs_under_its_policy(app, site, name, console_log):
    """The page boots its engine (or its embeds finish) and nothing hits the CSP; the `app`
    fixture fails the test on any violation."""
    app.goto(f"{site}/{name}")
    if name == "index.html":
        app.wait_for_function(
            "() => document.querySelector('#engine').dataset.state === 'ready'", timeout=120_000)
    else:
        app.wait_for_function(
            "() => [...document.querySelectorAll('upscale-img')].slice(0, 1).every((el) => "
            "el.state === 'done')", timeout=240_000)
    assert not [line for line in console_log if line.startswith("[pageerror]")]


def test_the_policy_blocks_inline_script_and_the_suite_sees_it(app, site, console_log):
    """The violation is awaited, not slept on: the page's own event, then the console line
    the suite's watch writes for it."""
    app.goto(f"{site}/index.html")
    with app.expect_console_message(lambda m: "CSP violation: script-src" in m.text):
        directive = app.evaluate("""() => new Promise((resolve) => {
            document.addEventListener('securitypolicyviolation',
                (e) => resolve(e.violatedDirective), { once: true });
            const script = document.createElement('script');
            script.textContent = 'window.__inline = true';
            document.head.append(script);
        })""")
    assert directive.startswith("script-src"), directive
    assert app.evaluate("window.__inline") is None
    seen = [line for line in console_log if "CSP violation: script-src" in line]
    assert seen, console_log
    console_log[:] = [line for line in console_log if line not in seen]  # expected here


@pytest.mark.parametrize(("accept", "encoding"), [
    ("gzip, deflate, br, zstd", "br"), ("gzip", "gzip"), ("br;q=0, gzip", "gzip"), ("", None)])
@pytest.mark.parametrize("path", ["/{pyodide}/pyodide.asm.wasm", "/{web}/worker.js",
                                  "/{web}/models.json", "/{pyodide}/python_stdlib.zip"])
def test_precompressed_copies_answer_accept_encoding(site, dist_dir, path, accept, encoding):
    path = built(path)
    request = urllib.request.Request(site + path, headers={"Accept-Encoding": accept})
    with urllib.request.urlopen(request) as response:
        body = response.read()
        headers = response.headers
    assert headers.get("Content-Encoding") == encoding
    assert headers["Vary"] == "Accept-Encoding"
    assert headers["Content-Type"].startswith(("application/", "text/javascript"))
    assert int(headers["Content-Length"]) == len(body)
    unpack = {"br": brotli.decompress, "gzip": gzip.decompress, None: bytes}[encoding]
    original = (dist_dir / path.lstrip("/")).read_bytes()
    assert unpack(body) == original
    if encoding:
        assert len(body) < 0.95 * len(original)


@pytest.mark.parametrize(("path", "cache"), [
    ("/{pyodide}/pyodide.asm.wasm", serving.IMMUTABLE), ("/{web}/worker.js", serving.IMMUTABLE),
    ("/{web}/models.json", serving.IMMUTABLE), ("/{tfjs}/tf.es2017.min.js", serving.IMMUTABLE),
    ("/", "no-cache"), ("/index.html", "no-cache"), ("/embed.js", "no-cache"),
    ("/upscale.js", "no-cache"), ("/sw.js", "no-cache"),
    ("/shop/small/mission-patch.jpg", "no-cache"),
])
def test_content_hashed_files_are_kept_a_year_and_the_rest_revalidated(site, path, cache):
    with urllib.request.urlopen(site + built(path)) as response:
        assert response.headers["Cache-Control"] == cache


def test_a_models_files_are_kept_a_year(site):
    entry = next(m for m in assemble.built_catalogue() if m["id"] == "span-x2")
    with urllib.request.urlopen(site + entry["url"]) as response:
        assert response.headers["Cache-Control"] == serving.IMMUTABLE
