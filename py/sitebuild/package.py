"""dist-npm/: the npm package web developers install (`python build.py package`).

    @upscale-web/upscale
      index.js, index.d.ts    the engine's module (Upscaler), its integrity list written in
      embed.js, embed.d.ts    <upscale-img>, importing ./index.js
      assets/                 what the engine fetches: web-<hash>/ (worker scripts, the
                              catalogue, the routing table), vendor/ (Pyodide and its wheels,
                              TF.js), models/ (only the selected ones)

The assets keep dist/'s layout and content-hashed names, so the folder can be served as it is
(a bundler's output, a CDN) and cached for a year. No precompressed copies: the server or the
CDN compresses.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from .assemble import (
    EMBED_IMPORT,
    MODULE_HOME,
    WEB_MARK,
    assemble,
    bench_routing,
    engine_sources,
    module_home,
)
from .common import ROOT, BuildError, log, project_version
from .models import converted_models, load_manifests

NAME = "@upscale-web/upscale"
OUT = ROOT / "dist-npm"
TYPES = ROOT / "web" / "types"
# What of the built site the package carries, by the first part of its path, less the
# upscaler page's own files (the engine never loads them).
ASSETS = ("web-", "vendor/", "models/")
PAGE_ONLY = ("app.css", "app.js", "compare.js", "favicon.svg", "jobs.js", "shop.css")
# The package's README: these sections of the project's README.
README_SECTIONS = ("Install from npm", "Licenses")


def selected(manifests: list[dict], ids: list[str] | None) -> tuple[list[dict], object]:
    """The manifests of `ids` (default: every model `auto` routes to) and the routing table
    cut to them; a selection that leaves `auto` nothing to run at any scale is refused."""
    table = bench_routing()
    known = {m["id"] for m in manifests}
    ids = ids or sorted(table.models())
    if unknown := sorted(set(ids) - known):
        raise BuildError(f"--models: no model {', '.join(unknown)} in models/ "
                         f"(known: {', '.join(sorted(known))})")
    routing = table.within(set(ids))
    if not routing.scales:
        lossless = ", ".join(f"{routes.lossless} (×{scale})"
                             for scale, routes in sorted(table.scales.items()))
        raise BuildError(f"--models: `auto` would have nothing to run; add the model it runs "
                         f"on lossless photos at one scale at least: {lossless}")
    for scale, routes in sorted(table.scales.items()):
        if scale not in routing.scales:
            log(f"package: no ×{scale} for `auto` ({routes.lossless} is not selected)")
        else:
            if routes.blurry and routes.blurry not in ids:
                log(f"package: ×{scale} `auto` leaves blurred files to their header's model "
                    f"({routes.blurry} is not selected)")
            if lost := sorted((routes.models() - {routes.blurry}) - set(ids)):
                log(f"package: ×{scale} `auto` runs {routes.lossless} where the table names "
                    f"{', '.join(lost)} (not selected)")
    return [m for m in manifests if m["id"] in ids], routing


def module(source: str, web: str) -> str:
    """The web folder's upscale.js as the package's index.js: it sits above assets/."""
    if source.count(MODULE_HOME) != 1:
        raise BuildError(f"upscale.js must hold `{MODULE_HOME}` once: the package's index.js "
                         f"finds its assets there")
    return source.replace(MODULE_HOME, module_home("./assets/", web))


def embed(web: str) -> str:
    """embed.js importing the package's index.js (a bundler then holds one copy of it)."""
    text = (ROOT / "web" / "embed.js").read_text()
    if text.count(EMBED_IMPORT) != 1:
        raise BuildError(f"embed.js must hold `{EMBED_IMPORT}` once: the package links it")
    return text.replace(EMBED_IMPORT, "import { Upscaler } from './index.js';") \
        .replace(WEB_MARK, f"{web}/")


def readme() -> str:
    """The sections of the project's README a package user needs."""
    text = (ROOT / "README.md").read_text()
    parts = [f"# {NAME}\n\nSuper-resolution in the user's own browser: Python (Pyodide) tiles "
             f"the image in a Web Worker, TensorFlow.js runs the model. Nothing is uploaded.\n"]
    for title in README_SECTIONS:
        found = re.search(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", text, re.M | re.S)
        if not found:
            raise BuildError(f"README.md has no section `## {title}` (the package's README)")
        parts.append(found.group(0).rstrip() + "\n")
    return "\n".join(parts)


def manifest(ids: list[str], web: str) -> dict:
    version = project_version()
    return {
        "name": NAME,
        "version": version,
        "description": "Super-resolution in the browser: Python tiling in Pyodide, "
                       "TensorFlow.js models, in a Web Worker",
        "license": "MIT",
        "type": "module",
        "main": "./index.js",
        "types": "./index.d.ts",
        "exports": {
            ".": {"types": "./index.d.ts", "default": "./index.js"},
            "./embed": {"types": "./embed.d.ts", "default": "./embed.js"},
            "./assets/*": "./assets/*",
            "./package.json": "./package.json",
        },
        "sideEffects": ["./embed.js"],
        "files": ["index.js", "index.d.ts", "embed.js", "embed.d.ts", "assets/"],
        "keywords": ["super-resolution", "upscale", "image", "tensorflowjs", "pyodide",
                     "webgpu", "webassembly", "web-component"],
        "upscale": {"models": ids, "web": f"{web}/"},
    }


def package(ids: list[str] | None = None) -> Path:
    """Write dist-npm/<name>-<version>.tgz with the models `ids` (default: `auto`'s)."""
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError("npm not found: install Node.js 20 or newer (Debian: apt-get install npm)")
    full_lock, wheels = engine_sources()
    manifests, routing = selected(load_manifests(), ids)
    served = assemble(manifests, full_lock, wheels, converted_models(manifests), routing)
    web = next(path.split("/")[0] for path in served if path.startswith("web-"))
    files = {f"assets/{path}": content for path, content in served.items()
             if path.startswith(ASSETS) and path.removeprefix(f"{web}/") not in PAGE_ONLY}
    files["index.js"] = module(served[f"{web}/upscale.js"].decode(), web).encode()
    files["embed.js"] = embed(web).encode()
    for name in ("index.d.ts", "embed.d.ts"):
        if not (TYPES / name).is_file():
            raise BuildError(f"missing {TYPES / name} (the package's TypeScript declarations)")
        files[name] = TYPES / name
    files["README.md"] = readme().encode()
    files["LICENSE"] = ROOT / "LICENSE"
    ids = [m["id"] for m in manifests]
    files["package.json"] = (json.dumps(manifest(ids, web), indent=2) + "\n").encode()

    stage = OUT / "package"
    if stage.exists():
        shutil.rmtree(stage)
    for rel, content in files.items():
        target = stage / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        else:
            target.write_bytes(content)
    for old in OUT.glob("*.tgz"):
        old.unlink()
    result = subprocess.run([npm, "pack", "--json", "--pack-destination", str(OUT), str(stage)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"npm pack failed:\n{result.stderr}")
    packed = json.loads(result.stdout)[0]
    tarball = OUT / packed["filename"]
    log(f"{tarball.relative_to(ROOT)}: {packed['size'] / 1e6:.1f} MB packed, "
        f"{packed['unpackedSize'] / 1e6:.1f} MB installed, {packed['entryCount']} files; "
        f"models: {', '.join(ids)}")
    return tarball
