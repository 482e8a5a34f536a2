"""The headers dist/ is served with, the dev server that sends them, and the same rules for
nginx and for static hosts that read a _headers file."""

from __future__ import annotations

import http.server
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .common import DIST

# Headers every response carries. COOP+COEP make the page cross-origin isolated, which is
# what lets TF.js run its threaded WASM build (SharedArrayBuffer).
# What every served page may do. Pyodide and TF.js compile WebAssembly ('wasm-unsafe-eval');
# the page reads the user's files through blob: URLs.
CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; "
       "img-src 'self' blob: data:; connect-src 'self'; style-src 'self'")
# The engine worker alone gets more: blob:, because TF.js's threaded WASM starts its thread
# pool from a blob: script. No 'unsafe-eval' anywhere: Pyodide 0.27 and TF.js's ES2017
# bundles never eval (the whole suite runs under this policy).
WORKER_CSP = CSP.replace("'wasm-unsafe-eval'", "'wasm-unsafe-eval' blob:")
# Tile workers run TF.js alone (its ES2017 bundles, which never eval): the pages' policy.
# The upscaler page fetches images from addresses the user types in: any http(s) origin,
# and only when asked. Every other page stays at connect-src 'self'.
UPSCALER_CSP = CSP.replace("connect-src 'self'", "connect-src 'self' https: http:")
CSP_BY_NAME = {"worker.js": WORKER_CSP}
CSP_BY_PATH = {"/": UPSCALER_CSP, "/index.html": UPSCALER_CSP}
IMMUTABLE = "public, max-age=31536000, immutable"
SERVE_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    # Public, static assets: a shop on another origin may load the embed, its worker and the
    # models (CORS), also from a cross-origin isolated page (CORP).
    "Access-Control-Allow-Origin": "*",
    "Cross-Origin-Resource-Policy": "cross-origin",
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
MIME_TYPES = {
    ".wasm": "application/wasm",
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".json": "application/json",
    ".whl": "application/zip",
    ".zip": "application/zip",
    ".bin": "application/octet-stream",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
    ".webmanifest": "application/manifest+json",
}

# Under these, every file sits in a folder named by a hash of its content: cached for a year.
HASHED_PREFIXES = ("/web-", "/vendor/", "/models/")
# What dist/ keeps precompressed copies of (assemble.compressed_copies), answered by
# Accept-Encoding (br first).
COMPRESSIBLE = {".js", ".mjs", ".json", ".css", ".html", ".svg", ".wasm", ".zip", ".whl", ".bin",
                ".txt", ".webmanifest"}
ENCODINGS = {"br": ".br", "gzip": ".gz"}



def headers_for(path: str) -> dict[str, str]:
    """What dist/ answers for `path` besides the file: SERVE_HEADERS with the path's CSP and,
    under a content-hashed folder, a year's caching."""
    csp = CSP_BY_PATH.get(path) or CSP_BY_NAME.get(path.rsplit("/", 1)[-1])
    headers = {**SERVE_HEADERS, "Content-Security-Policy": csp or CSP}
    if path.startswith(HASHED_PREFIXES):
        headers["Cache-Control"] = IMMUTABLE
    return headers


def accepted_encodings(header: str | None) -> list[str]:
    """The encodings of ENCODINGS an Accept-Encoding header allows, br first (q=0 refuses)."""
    allowed = set()
    for part in (header or "").split(","):
        name, _, params = part.strip().partition(";")
        q = params.strip().removeprefix("q=") if params.strip().startswith("q=") else "1"
        try:
            if float(q) > 0:
                allowed.add(name.strip().lower())
        except ValueError:
            continue
    return [name for name in ENCODINGS if name in allowed]


class DistHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}

    def end_headers(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        for name, value in headers_for(path).items():
            self.send_header(name, value)
        if Path(path).suffix in COMPRESSIBLE:
            self.send_header("Vary", "Accept-Encoding")
        super().end_headers()

    def send_head(self):
        """A precompressed copy when the client takes one, else the file as it is."""
        path = self.translate_path(self.path)
        if os.path.isfile(path) and Path(path).suffix in COMPRESSIBLE:
            for encoding in accepted_encodings(self.headers.get("Accept-Encoding")):
                variant = path + ENCODINGS[encoding]
                if os.path.isfile(variant):
                    return self.send_encoded(path, variant, encoding)
        return super().send_head()

    def send_encoded(self, path: str, variant: str, encoding: str):
        original = os.stat(path)
        modified = self.date_time_string(int(original.st_mtime))
        if self.headers.get("If-Modified-Since") == modified:
            self.send_response(http.HTTPStatus.NOT_MODIFIED)
            self.end_headers()
            return None
        handle = open(variant, "rb")  # noqa: SIM115 - the caller copies it out and closes it
        self.send_response(http.HTTPStatus.OK)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(os.fstat(handle.fileno()).st_size))
        self.send_header("Last-Modified", modified)
        self.end_headers()
        return handle

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        if os.environ.get("UPSCALE_SERVE_QUIET") != "1":
            super().log_message(format, *args)


# --- deploying: the same headers from a real server -----------------------------------------

NGINX_BROTLI = "/usr/lib/nginx/modules/ngx_http_brotli_static_module.so"


def nginx_config(root: Path, port: int = 8080, brotli: bool = True) -> str:
    """A whole nginx.conf serving `root` (a built dist/) as `build.py serve` does: isolation
    and CORS headers, CSP per path, MIME types, the precompressed copies, caching."""
    types = "\n".join(f"        {mime.split(';')[0]} {ext[1:]};"
                      for ext, mime in sorted(MIME_TYPES.items()))
    # Two maps give each path its CSP and its caching, as headers_for() does (an exact
    # string is matched before the regular expressions, which are tried in order).
    csp_map = [f'        default "{CSP}";']
    csp_map += [f'        "{path}" "{policy}";' for path, policy in CSP_BY_PATH.items()]
    csp_map += [f'        "~/{name.replace(".", "[.]")}$" "{policy}";'
                for name, policy in CSP_BY_NAME.items()]
    prefixes = "|".join(p.removeprefix("/") for p in HASHED_PREFIXES)
    cache_map = [f'        default "{SERVE_HEADERS["Cache-Control"]}";',
                 f'        "~^/({prefixes})" "{IMMUTABLE}";']
    fixed = {k: v for k, v in SERVE_HEADERS.items()
             if k not in ("Content-Security-Policy", "Cache-Control")}
    headers = [f'            add_header {name} "{value}" always;' for name, value in fixed.items()]
    headers += ['            add_header Content-Security-Policy $upscale_csp always;',
                '            add_header Cache-Control $upscale_cache always;']
    return "\n".join([
        "# Generated by `python build.py nginx`: serves a built dist/ like `build.py serve`.",
        f"load_module {NGINX_BROTLI};" if brotli else "# (no brotli_static module)",
        "worker_processes 1;",
        "events { worker_connections 256; }",
        "http {",
        "    include /etc/nginx/mime.types;",
        "    types {",
        types,
        "    }",
        "    default_type application/octet-stream;",
        "    sendfile on;",
        "    # Precompressed copies (file.br, file.gz) written by the build; Vary on both.",
        "    gzip_static on;",
        "    gzip_vary on;",
        "    brotli_static on;" if brotli else "",
        "    map $uri $upscale_csp {", *csp_map, "    }",
        "    map $uri $upscale_cache {", *cache_map, "    }",
        "    server {",
        f"        listen 127.0.0.1:{port};",
        f"        root {root};",
        "        index index.html;",
        "        location / {",
        *headers,
        "        }",
        "    }",
        "}",
        "",
    ])


def headers_file(web: str) -> str:
    """dist/_headers, for static hosts that read one (Cloudflare Pages' syntax; `! name`
    drops a header an earlier rule set, so a path gets one value, not two). `web` is the
    built web folder, where the worker scripts are."""
    out = ["# Generated by build.py: the headers `build.py serve` sends.", "/*"]
    out += [f"  {name}: {value}" for name, value in SERVE_HEADERS.items()]
    for prefix in HASHED_PREFIXES:
        out += [f"{prefix}*", "  ! Cache-Control", f"  Cache-Control: {IMMUTABLE}"]
    policies = {**CSP_BY_PATH, **{f"/{web}/{n}": p for n, p in CSP_BY_NAME.items()}}
    for path, policy in policies.items():
        out += [path, "  ! Content-Security-Policy", f"  Content-Security-Policy: {policy}"]
    return "\n".join(out) + "\n"


class DistServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A client that hangs up mid-file (a cancelled download, a closed tab) is no error."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def make_server(host: str, port: int, root: Path = DIST) -> http.server.ThreadingHTTPServer:
    handler = lambda *a, **k: DistHandler(*a, directory=str(root), **k)  # noqa: E731
    return DistServer((host, port), handler)
