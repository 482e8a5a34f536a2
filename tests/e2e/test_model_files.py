"""The engine downloads a model's files once, checks them, and never waits on them forever.

The site here is dist/ behind a server that can serve the models with `Cache-Control:
no-store` (some hosts do; so does DevTools' "Disable cache"), hold a file back, or corrupt
one, and that counts every request.
"""

from __future__ import annotations

import collections
import functools
import http.server
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sitebuild import assemble, serving


class ModelHost(serving.DistHandler):
    """build.py's own handler, with the models' responses under the test's control."""

    hits: collections.Counter
    stalled: set[str]  # paths that send a little, then nothing
    corrupt: set[str]  # paths whose bytes are altered

    def end_headers(self) -> None:
        if urlsplit(self.path).path.startswith("/models/"):
            self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        path = urlsplit(self.path).path
        self.hits[path] += 1
        if path in self.stalled or path in self.corrupt:
            body = (Path(self.directory) / path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if path in self.corrupt:
                self.wfile.write(body[:-1] + bytes([body[-1] ^ 0xFF]))
                return
            self.wfile.write(body[:1024])
            self.wfile.flush()
            time.sleep(60)  # the rest never comes (daemon thread: the server need not wait)
            return
        super().do_GET()


@pytest.fixture
def host(dist_dir):
    handler = type("Host", (ModelHost,), {
        "hits": collections.Counter(), "stalled": set(), "corrupt": set()})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(dist_dir)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def other_origin(host):
    """The model host is the one other origin these tests' pages may reach."""
    return host[1]


@pytest.fixture
def engine_page(page, host, other_origin, foreign_requests, console_log):
    """A blank page on the model host's origin, with the site's headers."""
    page.route(f"{other_origin}/__blank__.html", lambda route: route.fulfill(
        body="<!doctype html><meta charset=utf-8><title>t</title>", content_type="text/html",
        headers=serving.SERVE_HEADERS))
    page.goto(f"{other_origin}/__blank__.html")
    yield page
    assert not foreign_requests, foreign_requests


def model_paths(model_id: str) -> list[str]:
    """The served paths of a model's files, from the catalogue build.py wrote."""
    entry = next(m for m in assemble.built_catalogue() if m["id"] == model_id)
    folder = entry["url"].rsplit("/", 1)[0]
    return [f"{folder}/{name}" for name in entry["files"]]


def first_shard(model_id: str) -> str:
    return next(path for path in model_paths(model_id) if path.endswith(".bin"))


BOOT_AND_RUN = """async ({ model, stepLimitMs }) => {
  const { Upscaler } = await import('./upscale.js');
  const up = new Upscaler({ model, stepLimitMs });
  try {
    const info = await up.ready;
    const image = new ImageData(24, 24);
    for (let i = 0; i < image.data.length; i++) image.data[i] = (i * 37) % 256;
    const out = await up.upscale(image);
    return { workers: info.workers, width: out.width };
  } finally {
    up.dispose();
  }
}"""


def test_no_store_multi_shard_model_loads_once_for_every_tile_worker(engine_page, host):
    handler, _ = host
    got = engine_page.evaluate(BOOT_AND_RUN, {"model": "esrgan-thick-x2", "stepLimitMs": None})
    assert got["width"] == 48
    paths = model_paths("esrgan-thick-x2")
    assert len(paths) == 8  # model.json and 7 shards
    assert {path: handler.hits[path] for path in paths} == {path: 1 for path in paths}, (
        f"each file once, whatever the {got['workers']} tile workers need")


def test_a_download_that_stops_fails_by_name_and_the_next_call_starts_afresh(engine_page, host):
    handler, _ = host
    shard = first_shard("esrgan-slim-x2")
    handler.stalled.add(shard)
    got = engine_page.evaluate("""async () => {
      const { Upscaler } = await import('./upscale.js');
      const up = new Upscaler({ model: 'esrgan-slim-x2', stepLimitMs: 10000 });
      const error = await up.ready.then(() => null, (e) => ({ name: e.name, message: e.message }));
      window.__up = up;
      return { error };
    }""")
    assert got["error"] == {
        "name": "Stalled",
        "message": f"downloading esrgan-slim-x2's weights ({shard.rsplit('/', 1)[1]}) stalled: "
                   "no data for 10 s"}
    handler.stalled.clear()
    out = engine_page.evaluate("""async () => {
      const out = await window.__up.upscale(new ImageData(16, 16));
      window.__up.dispose();
      return out.width;
    }""")
    assert out == 32


def test_a_file_that_is_not_the_one_built_is_refused_and_the_model_stays(engine_page, host):
    handler, _ = host
    shard = first_shard("esrgan-medium-x2")
    handler.corrupt.add(shard)
    got = engine_page.evaluate("""async () => {
      const { Upscaler } = await import('./upscale.js');
      const up = new Upscaler({ model: 'esrgan-slim-x2' });
      try {
        await up.ready;
        const error = await up.setModel('esrgan-medium-x2').then(
          () => null, (e) => ({ name: e.name, message: e.message }));
        const out = await up.upscale(new ImageData(16, 16));
        const info = await up.ready;
        return { error, width: out.width, model: info.model.id };
      } finally {
        up.dispose();
      }
    }""")
    assert got["error"]["name"] == "IntegrityError"
    assert got["error"]["message"].startswith(
        f"esrgan-medium-x2's weights ({shard.rsplit('/', 1)[1]}) is not the file this site was "
        "built with (sha256 ")
    assert (got["width"], got["model"]) == (32, "esrgan-slim-x2")
