"""Chromium against dist/ on localhost, with every request to another origin refused.

The browser is Debian's Chromium launched by path (Playwright cannot download browsers
here). A failing test leaves a screenshot and the console log under test-results/.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sitebuild import assemble, common, provision, serving

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-results"


def start_server(root: Path) -> tuple[str, object]:
    server = serving.make_server("127.0.0.1", 0, root)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


class PlainHandler(http.server.SimpleHTTPRequestHandler):
    """Someone else's server: no isolation headers, no CORS."""

    def log_message(self, *args) -> None:
        pass


def start_plain_server(root: Path) -> tuple[str, object]:
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(PlainHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


def built(path: str) -> str:
    """A path of the built dist/ with {web}, {pyodide} and {tfjs} filled in with those
    folders' content-hashed names ("/{pyodide}/pyodide.asm.wasm")."""
    return path.format(web=assemble.hashed_path("web"),
                       pyodide=assemble.hashed_path("vendor/pyodide"),
                       tfjs=assemble.hashed_path("vendor/tfjs"))


@pytest.fixture(scope="session")
def dist_dir() -> Path:
    dist = Path(os.environ.get("UPSCALE_DIST", common.DIST))
    if not (dist / "index.html").is_file():
        pytest.fail(f"{dist} is not built: run `python build.py test`, which builds it first")
    return dist


@pytest.fixture(scope="session")
def site(dist_dir: Path):
    """Base URL of dist/ served by build.py's own server (same headers as `serve`)."""
    os.environ.setdefault("UPSCALE_SERVE_QUIET", "1")
    url, server = start_server(dist_dir)
    yield url
    server.shutdown()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).is_file():
        pytest.fail(f"no Chromium at {chromium}: run `python build.py test`, which installs it")
    return {**browser_type_launch_args, "executable_path": chromium,
            "args": provision.CHROMIUM_TEST_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    """No service workers but where a test asks for one (test_offline.py): once the page's
    sw.js controls it, it answers requests that other tests route or count at the server."""
    return {**browser_context_args, "service_workers": "block"}


@pytest.fixture
def allowed_origins(site, request) -> set[str]:
    """Origins a test's pages may reach: the site, and a test's `other_origin` server."""
    origins = {origin_of(site)}
    if "other_origin" in request.fixturenames:
        origins.add(origin_of(request.getfixturevalue("other_origin")))
    return origins


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def guard_origins(context, allowed: set[str]) -> list[str]:
    """Abort and record every request of `context` to an origin not in `allowed`."""
    seen: list[str] = []

    def foreign(url: str) -> bool:
        return not url.startswith(("data:", "blob:")) and origin_of(url) not in allowed

    def record(url: str) -> None:
        if url not in seen:
            seen.append(url)

    def guard(route):
        if foreign(route.request.url):
            record(route.request.url)
            route.abort()
        else:
            route.continue_()

    def watch(request):
        if foreign(request.url):
            record(request.url)

    context.route("**/*", guard)
    context.on("request", watch)
    return seen


def watch_console(page) -> list[str]:
    """The console of `page` and of its workers, as lines."""
    lines: list[str] = []
    page.on("console", lambda m: lines.append(f"[{m.type}] {m.text}"))
    page.on("pageerror", lambda e: lines.append(f"[pageerror] {e}"))

    def worker_console(worker):
        worker.on("console", lambda m: lines.append(f"[worker {m.type}] {m.text}"))

    page.on("worker", worker_console)
    return lines


@pytest.fixture
def foreign_requests(context, allowed_origins) -> list[str]:
    """Every request to an origin not allowed is aborted and recorded; the test then fails."""
    return guard_origins(context, allowed_origins)


@pytest.fixture
def console_log(page) -> list[str]:
    return watch_console(page)


# Every page the suite opens reports what its Content-Security-Policy blocked.
CSP_WATCH = """document.addEventListener('securitypolicyviolation', (e) => console.error(
  `CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline code'}`));"""


def assert_stayed_home(foreign: list[str], console: list[str]) -> None:
    """What every page of the suite ends with: no request left the allowed origins, and no
    page hit its Content-Security-Policy."""
    assert not foreign, f"requests left the site's origin: {foreign}"
    violations = [line for line in console if "CSP violation" in line]
    assert not violations, violations


def open_blank(page, site: str) -> None:
    """`page` on an empty page of our own origin, served with the site's headers."""
    page.add_init_script(CSP_WATCH)
    page.route(f"{site}/__test_blank__.html", lambda route: route.fulfill(
        body="<!doctype html><meta charset=utf-8><title>test</title>",
        content_type="text/html", headers=serving.SERVE_HEADERS))
    page.goto(f"{site}/__test_blank__.html")


@pytest.fixture
def app(page, site, foreign_requests, console_log, request):
    """An empty page on our own origin (served with the site's headers); at teardown, no
    foreign request may have happened and no page may have hit its CSP."""
    open_blank(page, site)
    yield page
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        stem = re.sub(r"[^\w.-]+", "_", request.node.nodeid)
        page.screenshot(path=str(ARTIFACTS / f"{stem}.png"), full_page=True)
        (ARTIFACTS / f"{stem}.console.txt").write_text("\n".join(console_log) + "\n")
    assert_stayed_home(foreign_requests, console_log)


@pytest.fixture(scope="module")
def shared_app(browser, browser_context_args, site):
    """One blank page for the tests of a module that share engines (harness.run_jobs keeps one
    Upscaler per backend in it and switches models with setModel): an engine boots once per
    module, not once per test. At teardown, as for `app`: no foreign request, no CSP hit."""
    context = browser.new_context(**browser_context_args)
    foreign = guard_origins(context, {origin_of(site)})
    page = context.new_page()
    lines = watch_console(page)
    open_blank(page, site)
    yield page
    context.close()
    assert_stayed_home(foreign, lines)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
