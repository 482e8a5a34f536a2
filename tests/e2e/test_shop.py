"""The storefront embed: <upscale-img> on shop.html, one shared engine, lazy, cached, and
working when the shop and the Upscale assets are on different origins."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import start_plain_server
from harness import photo_crop
from PIL import Image
from playwright.sync_api import expect

from sitebuild import assemble, common, demo, serving
from tests.corpus import encode
from upscale.routing import RoutingTable, read_facts, route

WAIT_MS = 300_000
PRODUCTS = len(demo.SHOP_PRODUCTS)

# Before any page script: log every element event, and count the workers the page starts
# (TF.js's own thread pool lives inside the engine's worker, so it is not counted here).
WATCH = """
window.__events = [];
for (const name of ['upscale-start', 'upscale-progress', 'upscale-done', 'upscale-error',
                    'upscale-skip']) {
  document.addEventListener(name, (e) => window.__events.push(
    { name, src: e.target.getAttribute('src'), detail: e.detail }));
}
window.__workers = 0;
const RealWorker = window.Worker;
window.Worker = class extends RealWorker {
  constructor(...args) { super(...args); window.__workers += 1; }
};
"""

# Elements whose box meets the viewport grown by `margin` px.
NEAR = """(margin) => [...document.querySelectorAll('upscale-img')].filter((el) => {
  const b = el.getBoundingClientRect();
  return b.bottom > -margin && b.top < innerHeight + margin;
}).map((el) => el.getAttribute('src'))"""


def events(page, name: str) -> list[dict]:
    return [e for e in page.evaluate("window.__events") if e["name"] == name]


def wait_finished(page, srcs: list[str]) -> None:
    page.wait_for_function(
        """(srcs) => srcs.every((src) => window.__events.some(
             (e) => e.src === src && ['upscale-done', 'upscale-error'].includes(e.name)))""",
        arg=srcs, timeout=WAIT_MS)


def uncaught(console_log: list[str]) -> list[str]:
    # A 404 image logs "Failed to load resource"; that is the browser, not an uncaught error.
    return [line for line in console_log if line.startswith("[pageerror]")
            or (line.startswith("[error]") and "Failed to load resource" not in line)]


@pytest.fixture
def shop(app, site):
    app.set_viewport_size({"width": 1280, "height": 800})
    app.add_init_script(WATCH)
    return app


def test_visible_images_upscale_once_the_rest_after_scrolling_with_one_engine(
        shop, site, console_log):
    shop.goto(f"{site}/shop.html")
    visible = shop.evaluate(NEAR, 0)
    far = [src for src in shop.evaluate(NEAR, 100_000) if src not in shop.evaluate(NEAR, 400)]
    assert visible and far, "the grid is taller than the window"
    boxes = shop.evaluate("[...document.querySelectorAll('upscale-img')].map((e) => "
                          "JSON.stringify(e.getBoundingClientRect()))")
    wait_finished(shop, visible)
    started = {e["src"] for e in events(shop, "upscale-start")}
    assert not started & set(far), "images far below the fold waited for a scroll"
    shop.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    every = shop.evaluate(NEAR, 100_000)
    assert len(every) == PRODUCTS
    wait_finished(shop, every)
    done = [e["src"] for e in events(shop, "upscale-done")]
    assert sorted(done) == sorted(every), "every image upscaled exactly once"
    assert all(e["detail"]["width"] == 300 for e in events(shop, "upscale-done"))
    assert shop.evaluate("window.__workers") == 1, "one engine for the whole page"
    shop.evaluate("window.scrollTo(0, 0)")
    after = shop.evaluate("[...document.querySelectorAll('upscale-img')].map((e) => "
                          "JSON.stringify(e.getBoundingClientRect()))")
    assert after == boxes, "swapping in the large image moved nothing"
    image = shop.get_by_role("img", name="Astronaut portrait, giclée print")
    expect(image).to_be_visible()
    assert not uncaught(console_log), uncaught(console_log)


def test_a_missing_image_falls_back_and_the_others_finish(shop, site, console_log):
    shop.route("**/shop/small/shuttle-model.jpg", lambda route: route.fulfill(status=404))
    shop.goto(f"{site}/shop.html")
    visible = shop.evaluate(NEAR, 0)
    assert "shop/small/shuttle-model.jpg" in visible
    wait_finished(shop, visible)
    errors = events(shop, "upscale-error")
    assert [e["src"] for e in errors] == ["shop/small/shuttle-model.jpg"]
    assert errors[0]["detail"]["name"] == "LoadError"
    done = {e["src"] for e in events(shop, "upscale-done")}
    missing = {"shop/small/shuttle-model.jpg"}
    # The visible ones, and maybe one just below the fold (they start 200 px early).
    assert set(visible) - missing <= done <= set(shop.evaluate(NEAR, 250)) - missing
    assert not uncaught(console_log), uncaught(console_log)


def test_second_visit_paints_from_the_cache_without_the_engine(shop, site):
    shop.goto(f"{site}/shop.html")
    near = shop.evaluate(NEAR, 250)  # all that the first visit starts without a scroll
    wait_finished(shop, near)
    shop.reload()
    wait_finished(shop, near)
    done = events(shop, "upscale-done")
    assert {e["src"] for e in done} == set(near)
    assert all(e["detail"]["fromCache"] for e in done)
    assert shop.evaluate("window.__workers") == 0, "no engine was started"


def test_save_data_leaves_the_originals(shop, site):
    shop.add_init_script("Object.defineProperty(Navigator.prototype, 'connection', "
                         "{ get: () => ({ saveData: true }) });")
    shop.goto(f"{site}/shop.html")
    shop.wait_for_function(f"() => window.__events.length === {PRODUCTS}")
    skips = events(shop, "upscale-skip")
    assert len(skips) == PRODUCTS and "save data" in skips[0]["detail"]["reason"]
    assert shop.evaluate("window.__workers") == 0


# The policy README gives a shop page that loads the embed from another origin ({assets}).
SHOP_CSP = ("default-src 'self'; script-src 'self' {assets} 'wasm-unsafe-eval' blob:; "
            "worker-src blob:; connect-src 'self' {assets}; img-src 'self' blob:; "
            "style-src 'self'")


@pytest.fixture
def other_origin(tmp_path, dist_dir, site, request):
    """The shop on its own origin, pasting README's snippet (with its integrity hash);
    the Upscale assets stay on `site`. Parametrized, the page carries that policy."""
    page = (dist_dir / "shop.html").read_text()
    snippet = (f'<script type="module" src="{site}/embed.js" '
               f'integrity="{demo.embed_integrity()}" crossorigin="anonymous"></script>')
    if policy := getattr(request, "param", None):
        snippet = (f'<meta http-equiv="Content-Security-Policy" '
                   f'content="{policy.format(assets=site)}">\n  {snippet}')
    page, count = re.subn(r'<script type="module" src="embed.js"></script>', snippet, page)
    assert count == 1
    (tmp_path / "shop.html").write_text(page)
    web = assemble.hashed_path("web")  # the shop's own stylesheet and icon, where it links them
    (tmp_path / web).mkdir()
    for name in ("shop.css", "favicon.svg"):
        (tmp_path / web / name).write_bytes((dist_dir / web / name).read_bytes())
    (tmp_path / "shop").mkdir()
    for folder in ("small",):
        target = tmp_path / "shop" / folder
        target.mkdir()
        for photo in (dist_dir / "shop" / folder).iterdir():
            (target / photo.name).write_bytes(photo.read_bytes())
    url, server = start_plain_server(tmp_path)  # a shop's own server: no CORS, no isolation
    yield url
    server.shutdown()


def test_shop_and_assets_on_different_origins(shop, other_origin, console_log):
    shop.goto(f"{other_origin}/shop.html")
    assert shop.evaluate("crossOriginIsolated") is False, "a plain shop page, not isolated"
    visible = shop.evaluate(NEAR, 0)
    wait_finished(shop, visible)
    done = {e["src"] for e in events(shop, "upscale-done")}
    # The visible ones, and maybe one just below the fold (they start 200 px early).
    assert set(visible) <= done <= set(shop.evaluate(NEAR, 250)), events(shop, "upscale-error")
    assert not events(shop, "upscale-error")
    assert shop.evaluate("window.__workers") == 1
    assert not uncaught(console_log), uncaught(console_log)



@pytest.mark.parametrize("other_origin", [SHOP_CSP], indirect=True)
def test_a_shop_with_readmes_policy_gets_its_enlargements(shop, other_origin, console_log):
    shop.goto(f"{other_origin}/shop.html")
    visible = shop.evaluate(NEAR, 0)
    wait_finished(shop, visible)
    done = {e["src"] for e in events(shop, "upscale-done")}
    assert set(visible) <= done <= set(shop.evaluate(NEAR, 250)), events(shop, "upscale-error")


@pytest.mark.parametrize("other_origin", [SHOP_CSP.replace("worker-src blob:",
                                                           "worker-src 'self'")], indirect=True)
def test_a_shop_policy_that_refuses_the_worker_keeps_the_originals_and_says_why(
        shop, other_origin, console_log):
    shop.goto(f"{other_origin}/shop.html")
    visible = shop.evaluate(NEAR, 0)
    wait_finished(shop, visible)
    errors = events(shop, "upscale-error")
    assert {e["src"] for e in errors} >= set(visible), events(shop, "upscale-done")
    assert not events(shop, "upscale-done")
    assert {e["detail"]["name"] for e in errors} == {"SecurityError"}, errors
    violations = [line for line in console_log if "CSP violation" in line]
    assert len(violations) == 1, "one refused engine, not one per image"
    assert "Content-Security-Policy stopped the Upscale engine: worker-src" in \
        errors[0]["detail"]["message"], errors[0]
    console_log[:] = [line for line in console_log if "CSP violation" not in line]  # expected


# A file of each kind the engine checks: a script it starts with, one only its tile workers
# run, Pyodide's WebAssembly (which Pyodide fetches itself), the catalogue (which names every
# model file's sha256) and the routing table (which the page reads itself, for `auto`).
CHANGED = {"worker.js": "web", "tf-backend-wasm.es2017.min.js": "vendor/tfjs",
           "pyodide.asm.wasm": "vendor/pyodide", "models.json": "web", "routing.json": "web"}


@pytest.mark.parametrize("name", sorted(CHANGED))
def test_a_changed_engine_file_stops_the_engine_and_the_originals_stay(
        shop, other_origin, site, dist_dir, name, console_log):
    """The asset host serves one file that is not the one built (a compromised host): the
    shop's page, whose snippet pins embed.js, never runs or uses it."""
    path = f"{assemble.hashed_path(CHANGED[name])}/{name}"
    changed = (dist_dir / path).read_bytes() + b"\n"  # one byte more: another hash
    fetched = []

    def serve_changed(route):
        fetched.append(route.request.url)
        route.fulfill(status=200, body=changed, headers={
            "Content-Type": serving.MIME_TYPES[Path(name).suffix],
            "Access-Control-Allow-Origin": "*",
            "Cross-Origin-Resource-Policy": "cross-origin", "Cache-Control": "no-store"})

    shop.context.route(f"{site}/{path}", serve_changed)
    shop.goto(f"{other_origin}/shop.html")
    visible = shop.evaluate(NEAR, 0)
    wait_finished(shop, visible)
    assert fetched, f"the page never asked for {path}"
    assert not events(shop, "upscale-done")
    errors = events(shop, "upscale-error")
    assert {e["src"] for e in errors} >= set(visible)
    assert {e["detail"]["name"] for e in errors} == {"IntegrityError"}, errors
    assert f"{name} is not the file this build of Upscale was made with" in \
        errors[0]["detail"]["message"], errors[0]
    # The page reads the routing table itself first: changed, it starts no engine at all.
    assert shop.evaluate("window.__workers") == (name != "routing.json"), "not one per image"
    # The browser logs the refused file itself; that is the check working.
    console_log[:] = [line for line in console_log if "integrity" not in line.lower()]
    assert not uncaught(console_log), uncaught(console_log)


def test_product_page_paints_its_large_photo(shop, site):
    shop.goto(f"{site}/product.html")
    wait_finished(shop, ["shop/small/astronaut-print.jpg"])
    [done] = events(shop, "upscale-done")
    assert (done["detail"]["width"], done["detail"]["height"]) == (600, 600), "scale=4"


def test_detached_elements_stop_and_resume_when_attached_again(shop, site, console_log):
    shop.goto(f"{site}/shop.html")
    first = "shop/small/astronaut-print.jpg"
    # Before the engine is up (it takes seconds), take every other product off the page.
    removed = shop.evaluate("""() => {
        window.__parked = [...document.querySelectorAll('.product')].slice(1);
        window.__parked.forEach((item) => item.remove());
        return window.__parked.map((item) => item.querySelector('upscale-img').getAttribute('src'));
    }""")
    wait_finished(shop, [first])
    assert {e["src"] for e in events(shop, "upscale-done")} == {first}
    assert not events(shop, "upscale-error"), "a detached image is stopped, not failed"
    shop.evaluate("document.querySelector('.grid').append(window.__parked[0])")
    wait_finished(shop, [removed[0]])
    assert {e["src"] for e in events(shop, "upscale-done")} == {first, removed[0]}
    assert not uncaught(console_log), uncaught(console_log)


def test_an_unknown_model_falls_back_with_its_name(shop, site):
    shop.goto(f"{site}/product.html")
    shop.evaluate("""() => {
        const el = document.createElement('upscale-img');
        el.setAttribute('src', 'shop/small/mission-patch.jpg');
        el.setAttribute('model', 'no-such-model');
        el.setAttribute('width', '300');
        el.setAttribute('height', '300');
        document.querySelector('main').prepend(el);
    }""")
    wait_finished(shop, ["shop/small/mission-patch.jpg"])
    [error] = events(shop, "upscale-error")
    assert error["detail"] == {"name": "UnknownModel", "message": 'unknown model "no-such-model"'}


CACHED = """async () => {
  const cache = await caches.open('upscale-img');
  const out = [];
  for (const request of await cache.keys()) {
    const params = new URL(request.url).searchParams;
    out.push({ src: params.get('src'), sha256: params.get('sha256'),
               bytes: (await (await cache.match(request)).blob()).size });
  }
  return out;
}"""


def test_a_photo_replaced_at_the_same_address_gets_a_new_enlargement(shop, site, photos):
    """The result cache is keyed by the photo's content: a new photo under the old URL is
    upscaled again, and the old result is dropped."""
    src = "shop/small/astronaut-print.jpg"
    served = {"photo": (common.DIST / src).read_bytes()}
    shop.route(f"**/{src}", lambda route: route.fulfill(
        body=served["photo"], content_type="image/jpeg", headers=serving.SERVE_HEADERS))
    shop.goto(f"{site}/product.html")
    wait_finished(shop, [src])
    [before] = shop.evaluate(CACHED)
    served["photo"] = encode(Image.fromarray(photo_crop(photos, "chelsea.png", 150, 100, 0)),
                             "JPEG")
    shop.reload()
    wait_finished(shop, [src])
    [done] = events(shop, "upscale-done")
    assert not done["detail"]["fromCache"], "a new photo is upscaled again"
    [after] = shop.evaluate(CACHED)
    assert after["src"].endswith(src) and after["sha256"] != before["sha256"]
    shop.reload()
    wait_finished(shop, [src])
    [done] = events(shop, "upscale-done")
    assert done["detail"]["fromCache"], "the same photo again comes from the cache"


def test_the_result_cache_stays_under_the_shops_cap(shop, site):
    shop.goto(f"{site}/shop.html")
    shop.evaluate("""() => document.head.append(Object.assign(document.createElement('meta'),
        { name: 'upscale-img-cache-mb', content: '0.25' }))""")
    near = shop.evaluate(NEAR, 250)
    wait_finished(shop, near)
    cached = shop.evaluate(CACHED)
    assert 0 < len(cached) < len(near), (len(cached), len(near))
    assert sum(entry["bytes"] for entry in cached) <= 0.25 * 2**20


PYTHON_SNAPSHOTS = """async () => {
  const cache = await caches.open('upscale-python');
  const kept = await Promise.all((await cache.keys()).map((r) => cache.match(r)));
  return kept.map((r) => Number(r.headers.get('x-upscale-bytes')));
}"""


def snapshots_when(page, done, timeout_s: float = 120) -> list[int]:
    """The snapshots' sizes once `done(sizes)` holds (kept in the background: polled)."""
    deadline = time.monotonic() + timeout_s
    while not done(sizes := page.evaluate(PYTHON_SNAPSHOTS)) and time.monotonic() < deadline:
        page.wait_for_timeout(500)
    return sizes


def test_the_python_snapshot_counts_against_the_cap(shop, site):
    """An engine on the shop's origin keeps Python's snapshot after its first job, an `auto`
    one on a file (a returning visit starts from it): a shop page whose cap is smaller deletes
    it."""
    def with_cap(route):
        page = route.fetch().text()
        meta = '<meta name="upscale-img-cache-mb" content="2">'
        route.fulfill(body=page.replace("<head>", f"<head>{meta}", 1),
                      content_type="text/html", headers=serving.SERVE_HEADERS)

    shop.set_default_timeout(WAIT_MS)
    shop.evaluate("""async () => {
        const { Upscaler } = await import('./upscale.js');
        const up = new Upscaler({ backend: 'wasm' });  // 'auto', as the embed runs
        const canvas = new OffscreenCanvas(24, 16);
        canvas.getContext('2d').fillRect(4, 4, 8, 8);
        await up.upscale(await canvas.convertToBlob({ type: 'image/png' }));
    }""")
    (size,) = snapshots_when(shop, lambda sizes: len(sizes) == 1)
    assert 2 * 2**20 < size < 50 * 2**20, size
    shop.route(f"{site}/shop.html", with_cap)
    shop.goto(f"{site}/shop.html")
    assert snapshots_when(shop, lambda sizes: not sizes) == []


def test_a_new_src_while_the_cached_result_loads_never_paints_the_old_one(shop, site):
    first, second = "shop/small/astronaut-print.jpg", "shop/small/mission-patch.jpg"
    shop.goto(f"{site}/product.html")
    wait_finished(shop, [first])
    # On the next visit, reading a body takes a while: the photo changes meanwhile.
    shop.add_init_script("""{
        window.__reads = 0;
        const blob = Response.prototype.blob;
        Response.prototype.blob = async function (...args) {
          window.__reads += 1;
          await new Promise((resolve) => setTimeout(resolve, 400));
          return blob.apply(this, args);
        };
    }""")
    shop.reload()
    shop.wait_for_function("() => window.__reads > 0")
    shop.evaluate(f"document.querySelector('upscale-img').setAttribute('src', '{second}')")
    shop.wait_for_function(
        "() => window.__events.some((e) => e.name === 'upscale-done' && !e.detail.fromCache)",
        timeout=WAIT_MS)
    done = events(shop, "upscale-done")
    assert [e["detail"]["fromCache"] for e in done] == [False], \
        "only the new photo's enlargement was painted, not the old one from the cache"


def test_each_photo_gets_the_model_its_file_calls_for(shop, site, photos):
    """`auto` in the embed: a q80 JPEG (the shop's thumbnails) gets a JPEG noise remover, a PNG
    gets SPAN, each as routing.json says for its header; upscale-done says which and why."""
    table = RoutingTable.from_json(json.loads(assemble.ROUTING.read_text()))
    jpeg = demo.shop_photos()["shop/small/mission-patch.jpg"].read_bytes()
    png = encode(Image.fromarray(photo_crop(photos, "chelsea.png", 150, 100, 40)), "PNG")
    shop.route("**/shop/small/cat.png",
               lambda request: request.fulfill(body=png, content_type="image/png"))
    shop.goto(f"{site}/product.html")
    shop.evaluate("""() => {
        for (const src of ['shop/small/mission-patch.jpg', 'shop/small/cat.png']) {
          const el = document.createElement('upscale-img');
          const attributes = { src, scale: '2', width: '300', height: '300' };
          for (const [name, value] of Object.entries(attributes)) el.setAttribute(name, value);
          document.querySelector('main').prepend(el);
        }
    }""")
    wait_finished(shop, ["shop/small/mission-patch.jpg", "shop/small/cat.png"])
    done = {e["src"]: e["detail"] for e in events(shop, "upscale-done")}
    for src, data in (("shop/small/mission-patch.jpg", jpeg), ("shop/small/cat.png", png)):
        want = route(read_facts(data), 2, table)
        assert (done[src]["model"], done[src]["reason"]) == (want.model, want.why), src
    catalogue = {m["id"]: m for m in assemble.built_catalogue()}
    assert done["shop/small/mission-patch.jpg"]["reason"] == "JPEG, quality ≈ 80, 4:2:0"
    assert catalogue[done["shop/small/mission-patch.jpg"]["model"]]["purpose"] == "jpeg"
    assert done["shop/small/cat.png"]["model"] == "span-x2"


# README's snippet on a page of our origin, with no styles but what a test gives it.
SNIPPET_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A shop</title>{stylesheet}
<script type="module" src="embed.js" integrity="{integrity}" crossorigin="anonymous"></script>
</head><body>
{body}
</body></html>"""
PHOTO = "shop/small/espresso-cup.jpg"  # 150 x 150
SIZE = "(el) => { const box = el.getBoundingClientRect(); return [box.width, box.height]; }"


def open_snippet_page(page, site: str, body: str, css: str = "") -> Callable[[], None]:
    """README's snippet and `body` on a page of our origin, `css` its only stylesheet. The
    requests for PHOTO wait until the test calls the function returned: the page is read
    before the photo has arrived."""
    held, gate = [], {"open": False}

    def photo(request):
        if gate["open"]:
            request.fallback()
        else:
            held.append(request)

    def release():
        gate["open"] = True
        for request in held:
            request.fallback()

    page.route(f"{site}/{PHOTO}", photo)
    link = '\n<link rel="stylesheet" href="__test_page__.css">' if css else ""
    html = SNIPPET_PAGE.format(stylesheet=link, integrity=demo.embed_integrity(), body=body)
    page.route(f"{site}/__test_page__.html", lambda request: request.fulfill(
        body=html, content_type="text/html", headers=serving.SERVE_HEADERS))
    page.route(f"{site}/__test_page__.css", lambda request: request.fulfill(
        body=css, content_type="text/css", headers=serving.SERVE_HEADERS))
    page.goto(f"{site}/__test_page__.html", wait_until="domcontentloaded")
    while not held:  # the element asked for its photo, which has not arrived
        page.wait_for_timeout(20)
    return release


def test_width_and_height_size_the_element_on_a_page_with_no_styles(shop, site):
    """README's snippet alone: width and height are the element's box, as for <img>: reserved
    before the photo arrives, and the same once the enlargement is in."""
    release = open_snippet_page(shop, site, f'<upscale-img src="{PHOTO}" alt="Espresso cup" '
                                            'width="300" height="300"></upscale-img>')
    element = shop.locator("upscale-img")
    assert element.evaluate("(el) => el.shadowRoot.querySelector('img').complete") is False
    assert element.evaluate(SIZE) == [300, 300], "the box is reserved before the photo arrives"
    release()
    wait_finished(shop, [PHOTO])
    [done] = events(shop, "upscale-done")
    assert (done["detail"]["width"], done["detail"]["height"]) == (300, 300)
    assert element.evaluate(SIZE) == [300, 300]
    inner = element.evaluate("""(el) => [...el.shadowRoot.querySelectorAll('img')].map((img) => {
        const box = img.getBoundingClientRect(), host = el.getBoundingClientRect();
        return [box.x - host.x, box.y - host.y, box.width, box.height];
    })""")
    assert inner == [[0, 0, 300, 300]] * 2, "the original and the enlargement fill the box"


# The page's CSS against the attributes: each case on an <upscale-img> and on an <img>.
CASES = {
    "narrow": ('width="300" height="300"', "width: 200px"),
    "short": ('width="300" height="300"', "height: 120px"),
    "both": ('width="300" height="300"', "width: 200px; height: 50px"),
    "fluid": ('width="300" height="300"', "width: 50%; height: auto"),
    "tall": ('width="300" height="300"', "height: auto"),
    "shrink": ('width="300" height="300"', "width: auto"),
    "wide": ('width="300" height="150"', "width: 400px; height: auto"),
    "plain": ('width="240" height="240"', ""),
    "hidden": ('width="300" height="300" hidden', ""),
    "width-only": ('width="300"', ""),
    "height-only": ('height="300"', ""),
    "not-a-width": ('width="wide" height="300"', ""),
    "negative": ('width="-300" height="300"', ""),
}


def test_page_css_sizes_the_element_as_it_sizes_an_img(shop, site):
    """Page CSS wins over width and height, and what the attributes leave open follows their
    ratio: the element's box is the one an <img> with the same attributes and CSS gets."""
    body = "\n".join(f'<div><upscale-img class="{name}" src="{PHOTO}" alt="" {attributes}>'
                     f'</upscale-img><img class="{name}" src="{PHOTO}" alt="" {attributes}></div>'
                     for name, (attributes, _) in CASES.items())
    css = "\n".join(f".{name} {{ {rule} }}" for name, (_, rule) in CASES.items() if rule)
    release = open_snippet_page(shop, site, body, css)
    boxes = f"""() => Object.fromEntries({json.dumps(list(CASES))}.map((name) => [name,
        [...document.querySelectorAll('.' + name)].map({SIZE})]))"""
    before = shop.evaluate(boxes)
    assert not shop.evaluate("[...document.images].some((img) => img.complete)")
    assert before["narrow"][1] == [200, 300], "<img>: the CSS width wins, the height stays"
    for name in CASES:  # <img> takes the ratio of its attributes until the photo arrives
        element, img = before[name]
        assert element == img, f"{name}, before the photo arrives"
    release()
    shop.wait_for_function("""() => [...document.querySelectorAll('upscale-img')].every(
        (el) => el.shadowRoot.querySelector('img').complete) && [...document.images].every(
        (img) => img.complete)""")
    after = shop.evaluate(boxes)
    for name in CASES:
        element, img = after[name]
        assert element == img, f"{name}, once the photo is in"
