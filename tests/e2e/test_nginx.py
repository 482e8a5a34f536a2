"""dist/ behind Debian's nginx, configured by `build.py nginx`: the page and the shop work,
with the same headers as the dev server and the precompressed copies on the wire."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import CSP_WATCH, built
from harness import photo_crop, png_bytes
from playwright.sync_api import expect

from sitebuild import common, serving

READY_MS = 120_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def other_origin(tmp_path_factory, dist_dir):
    """nginx serving dist/ with the generated config (the name lets pages reach it)."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).is_file():
        pytest.fail("no nginx: run `python build.py test`, which installs Debian's nginx")
    folder = tmp_path_factory.mktemp("nginx")
    port = free_port()
    config = folder / "nginx.conf"
    config.write_text(serving.nginx_config(dist_dir.resolve(), port))
    server = subprocess.Popen(
        [nginx, "-p", str(folder), "-c", str(config), "-e", str(folder / "error.log"),
         "-g", f"daemon off; pid {folder / 'nginx.pid'};"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/upscale.js").close()
            break
        except OSError:
            if server.poll() is not None:
                pytest.fail(f"nginx did not start: {server.stdout.read().decode()}"
                            f"{(folder / 'error.log').read_text()}")
            time.sleep(0.1)
    yield url
    server.terminate()
    server.wait(10)


def fetch(url: str, accept: str = "") -> tuple[dict, bytes]:
    request = urllib.request.Request(url, headers={"Accept-Encoding": accept})
    with urllib.request.urlopen(request) as response:
        return response.headers, response.read()


@pytest.mark.parametrize("path", ["/", "/index.html", "/shop.html", "/{web}/worker.js",
                                  "/{web}/tileworker.js", "/upscale.js", "/{web}/models.json",
                                  "/{pyodide}/pyodide.asm.wasm", "/sw.js"])
def test_nginx_sends_the_dev_servers_headers(other_origin, site, path):
    path = built(path)
    theirs, _ = fetch(other_origin + path)
    ours, _ = fetch(site + path)
    for name in serving.SERVE_HEADERS:
        assert theirs[name] == ours[name], name
    assert theirs["Content-Type"].split(";")[0] == ours["Content-Type"].split(";")[0]


@pytest.mark.parametrize(("accept", "encoding"), [("gzip, deflate, br", "br"), ("gzip", "gzip")])
def test_nginx_serves_the_precompressed_copies(other_origin, accept, encoding):
    path = built("/{pyodide}/pyodide.asm.wasm")
    headers, body = fetch(other_origin + path, accept)
    assert headers["Content-Encoding"] == encoding
    assert "Accept-Encoding" in headers["Vary"]
    assert headers["Content-Type"] == "application/wasm"
    suffix = serving.ENCODINGS[encoding]
    assert body == (common.DIST / f"{path.lstrip('/')}{suffix}").read_bytes()


def test_the_upscaler_page_works_through_nginx(page, other_origin, foreign_requests, photos,
                                               console_log):
    page.add_init_script(CSP_WATCH)
    page.set_default_timeout(READY_MS)
    page.goto(f"{other_origin}/index.html")
    expect(page.locator("#engine")).to_have_attribute("data-state", "ready", timeout=READY_MS)
    crop = png_bytes(photo_crop(photos, "coffee.png", 40, 60, 90))
    page.set_input_files("#file", [{"name": "cup.png", "mimeType": "image/png", "buffer": crop}])
    expect(page.locator(".item")).to_have_attribute("data-state", "done", timeout=240_000)
    expect(page.locator(".item .state")).to_contain_text("80×80")
    assert not foreign_requests
    assert not [line for line in console_log if "CSP violation" in line or
                line.startswith("[pageerror]")], console_log


def test_the_shop_works_through_nginx(page, other_origin, foreign_requests, console_log):
    page.add_init_script(CSP_WATCH)
    page.goto(f"{other_origin}/shop.html")
    page.wait_for_function(
        "() => [...document.querySelectorAll('upscale-img')].slice(0, 1).every((el) => "
        "el.state === 'done')", timeout=240_000)
    assert not foreign_requests
    assert not [line for line in console_log if "CSP violation" in line or
                line.startswith("[pageerror]")], console_log
