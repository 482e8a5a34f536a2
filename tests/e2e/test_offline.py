"""The upscaler page offline: its service worker (sw.js) keeps the app, the engine and the
models it used, so a second visit upscales with no network at all; the page is installable."""

from __future__ import annotations

import json
import os
import re

import pytest
from conftest import CSP_WATCH, start_server
from harness import photo_crop, png_bytes
from playwright.sync_api import expect

from sitebuild import assemble, common

READY_MS = 120_000
JOB_MS = 240_000

# Resolves once the service worker is active and its caches hold `shell` files of the shell
# and `model` files of models (the page names each model it loads to it).
CACHED = """async ({ shell, model }) => {
  const registration = await navigator.serviceWorker.ready;
  for (;;) {
    const names = await caches.keys();
    const shellCache = names.find((name) => name.startsWith('upscale-shell-'));
    const count = async (name) => (name ? (await (await caches.open(name)).keys()).length : 0);
    const have = {
      shell: await count(shellCache),
      model: await count(names.find((name) => name === 'upscale-models')),
    };
    if (registration.active && have.shell >= shell && have.model >= model) {
      return { ...have, controlled: Boolean(navigator.serviceWorker.controller) };
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}"""


def shell_files() -> list[str]:
    text = (common.DIST / assemble.hashed_path("web") / "assets.js").read_text()
    return json.loads(re.search(r"= (\{.*\});", text, re.S).group(1))["shell"]


@pytest.fixture
def offline_site(dist_dir):
    """dist/ on a server of its own, which the test shuts down: offline means nothing answers."""
    os.environ.setdefault("UPSCALE_SERVE_QUIET", "1")
    url, server = start_server(dist_dir)
    yield url, server
    server.shutdown()


def upscale_one(page, photos, name: str) -> None:
    crop = png_bytes(photo_crop(photos, "coffee.png", 48, 60, 90))
    page.set_input_files("#file", [{"name": name, "mimeType": "image/png", "buffer": crop}])
    item = page.locator(".item", has_text=name)
    expect(item).to_have_attribute("data-state", "done", timeout=JOB_MS)
    expect(item.locator(".state")).to_contain_text("96×96")


def test_the_page_upscales_offline_on_a_second_visit(browser, offline_site, photos):
    url, server = offline_site
    context = browser.new_context(service_workers="allow")
    page = context.new_page()
    page.add_init_script(CSP_WATCH)
    log: list[str] = []
    page.on("console", lambda m: log.append(f"[{m.type}] {m.text}"))
    page.on("pageerror", lambda e: log.append(f"[pageerror] {e}"))
    try:
        page.goto(f"{url}/")
        expect(page.locator("#engine")).to_have_attribute("data-state", "ready", timeout=READY_MS)
        upscale_one(page, photos, "online.png")
        default = next(m for m in assemble.built_catalogue() if m["id"] == "span-x2")
        cached = page.evaluate(CACHED, {"shell": len(shell_files()),
                                        "model": len(default["files"])})
        assert cached["shell"] == len(shell_files())

        server.shutdown()  # from here on, any request that reaches the network fails
        server.server_close()
        context.set_offline(True)
        page.reload()
        expect(page.locator("#engine")).to_have_attribute("data-state", "ready", timeout=READY_MS)
        assert page.evaluate("Boolean(navigator.serviceWorker.controller)")
        upscale_one(page, photos, "offline.png")
        assert not [line for line in log if "CSP violation" in line or
                    line.startswith("[pageerror]")], log
    finally:
        context.close()


def test_the_page_is_installable(browser_type, browser_type_launch_args, offline_site, tmp_path):
    """Chromium's own checks of the web app manifest and the service worker, in a profile on
    disk (an incognito context is never installable)."""
    url, _ = offline_site
    context = browser_type.launch_persistent_context(
        tmp_path / "profile", **browser_type_launch_args, service_workers="allow")
    page = context.new_page()
    try:
        page.goto(f"{url}/")
        expect(page.locator("#engine")).to_have_attribute("data-state", "ready", timeout=READY_MS)
        page.evaluate("navigator.serviceWorker.ready.then(() => true)")
        cdp = context.new_cdp_session(page)
        manifest = cdp.send("Page.getAppManifest")
        assert manifest["errors"] == [], manifest["errors"]
        data = json.loads(manifest["data"])
        assert data["short_name"] == "Upscale" and data["display"] == "standalone"
        icon = page.evaluate("async (src) => (await fetch(src)).status",
                             f"{url}/{data['icons'][0]['src']}")
        assert icon == 200
        errors = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
        assert errors == [], errors
    finally:
        context.close()
