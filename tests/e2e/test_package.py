"""The npm package as a web developer meets it: `npm i` the tarball, build with Vite or
webpack from the README's own recipes, serve the output from a plain static server, upscale in
Chromium; the engine's files also from another origin, and from a CDN with no build step.

Every app must paint what dist/'s own page paints for the same file (≥ 45 dB PSNR; on WASM
the two are the same computation)."""

from __future__ import annotations

import base64
import functools
import http.server
import re
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import PlainHandler, guard_origins, origin_of, start_plain_server, watch_console
from harness import BOOT_TIMEOUT_MS, TO_BASE64, photo_crop, png_bytes, psnr, run_jobs, serve_bytes
from PIL import Image

from sitebuild import common, package

APPS = common.ROOT / "tests" / "apps"
MIN_PSNR = 45.0
CDN = "https://cdn.jsdelivr.net/npm/@upscale-web/upscale@0.1.0/"
NPM_TIMEOUT_S = 600


def recipes() -> dict[str, str]:
    """The README's code blocks that name a file (```js vite.config.js), by that name."""
    text = (common.ROOT / "README.md").read_text()
    return {name: body for name, body in
            re.findall(r"^```\w+ ([\w.-]+)\n(.*?)^```$", text, re.M | re.S)}


def npm(*args: str, cwd: Path) -> str:
    tool = shutil.which("npm")
    if tool is None:
        pytest.fail("npm not found: install Node.js 20 or newer")
    result = subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True,
                            timeout=NPM_TIMEOUT_S)
    assert result.returncode == 0, f"npm {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def tarball(npm_tarball) -> Path:
    return npm_tarball


@pytest.fixture(scope="module")
def photo(photos, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    path.write_bytes(png_bytes(photo_crop(photos, "chelsea.png", 96, 120, 40)))
    return path


@pytest.fixture(scope="module")
def reference(browser, browser_context_args, site, photo) -> np.ndarray:
    """What dist/'s own module paints for the photo (`auto`: a PNG gets span-x2)."""
    context = browser.new_context(**browser_context_args)
    page = context.new_page()
    page.goto(f"{site}/index.html")
    url = serve_bytes(page, "photo.png", photo.read_bytes())
    image = run_jobs(page, "span-x2", [{"url": url}])["results"][0]["image"]
    context.close()
    return image


class CorsHandler(PlainHandler):
    """A CDN: anyone may read."""

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()


@pytest.fixture(scope="module")
def cdn(tarball, tmp_path_factory):
    """The unpacked tarball on its own origin, with CORS, as a CDN serves npm packages."""
    root = tmp_path_factory.mktemp("cdn")
    with tarfile.open(tarball) as archive:
        archive.extractall(root, filter="data")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(CorsHandler, directory=str(root / "package")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def built_app(kind: str, tarball: Path, root: Path, assets: str | None = None) -> Path:
    """tests/apps/<kind> with the README's main.js and <kind>.config.js, the tarball and the
    app's pinned tools installed from the registry, built for production: its output folder.
    `assets`: the assetsURL written into main.js instead of the README's."""
    app = root / kind
    shutil.copytree(APPS / kind, app)
    found = recipes()
    main = found["main.js"]
    if assets is not None:
        main, count = re.subn(r"assetsURL: '/upscale/'", f"assetsURL: '{assets}'", main)
        assert count == 1
    (app / "main.js").write_text(main)
    (app / f"{kind}.config.js").write_text(found[f"{kind}.config.js"])
    npm("install", "--no-audit", "--no-fund", str(tarball), cwd=app)
    npm("run", "build", cwd=app)
    out = app / "dist"
    if kind == "webpack":
        shutil.copyfile(app / "index.html", out / "index.html")
    return out


def upscaled_on(browser, browser_context_args, url: str, photo: Path,
                origins: set[str]) -> np.ndarray:
    """Open `url`, choose `photo` in its file input, wait for the canvas it paints: its
    pixels. No request may leave `origins`."""
    context = browser.new_context(**browser_context_args)
    foreign = guard_origins(context, origins)
    page = context.new_page()
    lines = watch_console(page)
    page.set_default_timeout(BOOT_TIMEOUT_MS)
    try:
        page.goto(url)
        page.set_input_files("input[type=file]", str(photo))
        page.wait_for_selector("canvas")
        data = page.evaluate("""() => {""" + TO_BASE64 + """
          const canvas = document.querySelector('canvas');
          const { width, height } = canvas;
          const pixels = canvas.getContext('2d').getImageData(0, 0, width, height).data;
          return { width, height, rgba: toBase64(new Uint8Array(pixels.buffer)) };
        }""")
    except Exception:
        print("\n".join(lines))
        raise
    finally:
        context.close()
    assert not foreign, f"requests left the app's origins: {foreign}"
    flat = np.frombuffer(base64.b64decode(data["rgba"]), np.uint8)
    return flat.reshape(data["height"], data["width"], 4)


def upscaled_from(folder: Path, browser, browser_context_args, photo: Path,
                  other: str | None = None) -> np.ndarray:
    """`folder` served by a plain static server (no CORS, no isolation headers): what its
    index.html paints for `photo`. Requests may go to its origin and `other`'s only."""
    url, server = start_plain_server(folder)
    origins = {origin_of(url), *([origin_of(other)] if other else [])}
    try:
        return upscaled_on(browser, browser_context_args, f"{url}/index.html", photo, origins)
    finally:
        server.shutdown()


def assert_same_picture(image: np.ndarray, reference: np.ndarray) -> None:
    assert image.shape == reference.shape
    assert psnr(image[..., :3], reference[..., :3]) >= MIN_PSNR


def test_the_tarball_installs_in_an_empty_folder_with_its_types_and_entry_points(
        tarball, tmp_path):
    npm("install", "--no-audit", "--no-fund", str(tarball), cwd=tmp_path)
    installed = tmp_path / "node_modules" / "@upscale-web" / "upscale"
    meta = package.manifest([], "web-x")
    for entry in meta["exports"].values():
        if isinstance(entry, dict):
            for target in entry.values():
                assert (installed / target).is_file(), target
    web = next((installed / "assets").glob("web-*"))
    for name in ("worker.js", "models.json", "routing.json", "pyodide-lock.json"):
        assert (web / name).is_file(), name
    assert not (web / "app.js").exists(), "the upscaler page's own files stay out"
    index = (installed / "index.js").read_text()
    assert f"web: '{web.name}/'" in index and "sha384-" in index
    assert "import { Upscaler } from './index.js';" in (installed / "embed.js").read_text()


@pytest.mark.parametrize("kind", ["vite", "webpack"])
def test_a_bundled_app_upscales_like_the_site(kind, tarball, tmp_path, browser,
                                              browser_context_args, photo, reference):
    out = built_app(kind, tarball, tmp_path)
    assert_same_picture(upscaled_from(out, browser, browser_context_args, photo), reference)


def test_an_app_takes_the_engine_from_another_origin_through_assets_url(
        tarball, tmp_path, cdn, browser, browser_context_args, photo, reference):
    out = built_app("vite", tarball, tmp_path, assets=f"{cdn}assets/")
    shutil.rmtree(out / "upscale")  # nothing of the engine on the app's own origin
    image = upscaled_from(out, browser, browser_context_args, photo, other=cdn)
    assert_same_picture(image, reference)


def test_a_page_with_no_build_step_imports_the_module_from_a_cdn(
        cdn, tmp_path, browser, browser_context_args, photo, reference):
    page = recipes()["cdn.html"]
    assert page.count(CDN) == 1
    (tmp_path / "index.html").write_text(page.replace(CDN, cdn))
    image = upscaled_from(tmp_path, browser, browser_context_args, photo, other=cdn)
    assert_same_picture(image, reference)


def test_a_storefront_takes_the_element_from_a_cdn(cdn, tmp_path, browser, browser_context_args,
                                                   photos):
    """The README's storefront page, its embed.js from the CDN: a JPEG thumbnail gets the JPEG
    model and fills its 300 px box at twice its size."""
    page_text = recipes()["cdn-shop.html"]
    assert page_text.count(CDN) == 1
    (tmp_path / "index.html").write_text(page_text.replace(CDN, cdn))
    Image.fromarray(photo_crop(photos, "coffee.png", 150, 200, 100)).save(
        tmp_path / "mug-150.jpg", quality=70)
    url, server = start_plain_server(tmp_path)
    context = browser.new_context(**browser_context_args)
    foreign = guard_origins(context, {origin_of(url), origin_of(cdn)})
    page = context.new_page()
    page.set_default_timeout(BOOT_TIMEOUT_MS)
    try:
        page.goto(f"{url}/index.html")
        done = page.evaluate("""() => new Promise((resolve, reject) => {
          const element = document.querySelector('upscale-img');
          element.addEventListener('upscale-done', (event) => resolve(event.detail));
          element.addEventListener('upscale-error',
            (event) => reject(new Error(event.detail.message)));
        })""")
    finally:
        context.close()
        server.shutdown()
    assert not foreign, foreign
    assert (done["width"], done["height"]) == (300, 300)
    assert done["model"].startswith("waifu2x-photo-x2-denoise"), done
    assert done["reason"].startswith("JPEG, quality ≈ 70"), done


def test_a_bundled_module_without_assets_url_says_what_to_set(
        tarball, tmp_path, browser, browser_context_args, photo):
    """webpack writes the module's place on the build machine (file://) for import.meta.url:
    the engine cannot be beside it, and the error says to pass assetsURL."""
    out = built_app("webpack", tarball, tmp_path, assets="")
    url, server = start_plain_server(out)
    context = browser.new_context(**browser_context_args)
    page = context.new_page()
    try:
        with page.expect_event("pageerror") as error:
            page.goto(f"{url}/index.html")
    finally:
        context.close()
        server.shutdown()
    assert "bundled away from the engine's files: pass assetsURL" in str(error.value)
