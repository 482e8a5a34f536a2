"""dist/: every file in place, content-hashed folders, integrity lists, precompressed copies."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .common import DIST, NODE_MODULES, PYODIDE_DIR, ROOT, BuildError, cache_dir, log, sha256_file
from .demo import embed_integrity, shop_photos
from .models import converted_models, load_manifests, model_files, network_scale
from .provision import ensure_env
from .pyodide_patch import PATCHED, patched
from .serving import COMPRESSIBLE, ENCODINGS, HASHED_PREFIXES, headers_file
from .vendor import (
    PYODIDE_CORE,
    PYODIDE_STDLIB,
    PYODIDE_VERSION,
    TFJS_FILES,
    ensure_node_modules,
    ensure_wheels,
)
from .wheels import (
    pack_upscale_wheel,
    repacked,
    served_lock,
    stdlib_unused,
    wheel_unused,
    with_bytecode,
)

# Precompressed copies (file.br, file.gz) of what compresses (serving.COMPRESSIBLE: text,
# WebAssembly, Python's stdlib and the wheels, stored, not deflated, and model weights), kept
# only where they save at least MIN_SAVING. The server answers Accept-Encoding with them.
MIN_SAVING = 0.05

# Files of web/ served at a fixed address, revalidated on each use: the pages, the embed a
# shop's page links to, the service worker and the app manifest. Everything else dist/ serves
# sits in a folder named by a hash of its content and is cached for a year ("immutable"): the
# rest of web/ in web-<hash>/, Pyodide, TF.js and the packed package in vendor/<name>-<hash>/,
# each model in models/<id>-<hash>/. A new build of a file gets a new address, so a repeat
# visit asks the network for the fixed files only. In them, WEB_MARK stands for the web
# folder; the build writes its name there.
FIXED_WEB = ("index.html", "shop.html", "product.html", "embed.js", "sw.js",
             "manifest.webmanifest")
WEB_MARK = "web-HASH/"
HASH_LENGTH = 10

Content = Path | bytes


def content_sha256(content: Content) -> str:
    if isinstance(content, Path):
        return sha256_file(content)
    return hashlib.sha256(content).hexdigest()


def hashed_folder(prefix: str, files: dict[str, Content]) -> tuple[str, dict[str, Content]]:
    """`files` placed in f"{prefix}-{hash}/", the hash taken over their names and contents,
    as (folder, {dist path: content})."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{content_sha256(files[name])}\n".encode())
    folder = f"{prefix}-{digest.hexdigest()[:HASH_LENGTH]}"
    return folder, {f"{folder}/{name}": content for name, content in files.items()}


def model_sources(manifest: dict, converted: dict[str, Path]) -> dict[str, Path]:
    """A model's files by name: model.json and the weight shards it names beside it."""
    if manifest.get("format") == "ncnn":
        folder = converted[manifest["id"]]
        meta = json.loads((folder / "meta.json").read_text())
        declared = {"scale": network_scale(manifest), "margin": manifest["margin"]}
        for key, value in declared.items():
            if value != meta[key]:
                raise BuildError(f"model {manifest['id']}: the manifest says {key} "
                                 f"{value}, the converted network has {meta[key]}")
        return {path.name: path for path in sorted(folder.iterdir()) if path.name != "meta.json"}
    return {rel.rsplit("/", 1)[1]: NODE_MODULES / rel for rel in model_files(manifest)}


def catalogue_entry(manifest: dict, converted: dict[str, Path], folder: str,
                    sources: dict[str, Path]) -> dict:
    """A manifest as the catalogue serves it: its address (relative to the web folder, where
    the catalogue is), the sha256 of each of its files (the engine checks what it downloads
    against them) and, for a converted ncnn model, its weight bytes."""
    entry = {**manifest, "url": f"../{folder}/model.json",
             "files": {name: sha256_file(path) for name, path in sources.items()}}
    if manifest.get("format") == "ncnn":
        meta = json.loads((converted[manifest["id"]] / "meta.json").read_text())
        entry["weightBytes"] = meta["weightBytes"]
    return entry


def measured_speeds() -> dict[str, float]:
    """ms per megapixel of input on WASM, by model id, from the committed bench results (the
    page's speed hint); empty before the first bench run."""
    results = ROOT / "bench" / "results.json"
    if not results.is_file():
        return {}
    return json.loads(results.read_text()).get("ms_per_megapixel", {})


ROUTING = ROOT / "bench" / "routing.json"


def bench_routing():
    """bench/routing.json, parsed: which model `auto` runs for which input (the bench writes
    it)."""
    from upscale.errors import UpscaleError
    from upscale.routing import RoutingTable

    try:
        return RoutingTable.from_json(json.loads(ROUTING.read_text()))
    except (OSError, ValueError, KeyError, TypeError, UpscaleError) as error:
        raise BuildError(f"{ROUTING.relative_to(ROOT)}: {error}") from error


def routing_table(manifests: list[dict], table=None) -> bytes:
    """The routing table served (`table`, else bench/routing.json), checked: every model it
    names is served at the scale it routes."""
    table = table or bench_routing()
    scales = {m["id"]: m["scale"] for m in manifests}
    for scale, routes in table.scales.items():
        for model in sorted(routes.models()):
            if scales.get(model) != scale:
                raise BuildError(f"{ROUTING.relative_to(ROOT)}: ×{scale} routes to {model!r}, "
                                 + ("which no manifest in models/ names" if model not in scales
                                    else f"a ×{scales[model]} model"))
    return (json.dumps(table.to_json(), indent=1, ensure_ascii=False) + "\n").encode()


def assets_script(pyodide: str, tfjs: str, shell: list[str]) -> bytes:
    """web-<hash>/assets.js: where the engine finds Pyodide and TF.js, and what the service
    worker keeps for offline use (the app and the engine; models join when first used), all
    relative to the web folder."""
    assets = {"pyodide": f"../{pyodide}/", "tfjs": f"../{tfjs}/", "shell": shell,
              "hashed": [prefix.removeprefix("/") for prefix in HASHED_PREFIXES]}
    return (f"// Written by build.py: this build's content-hashed folders.\n"
            f"self.UPSCALE_ASSETS = {json.dumps(assets, indent=1)};\n").encode()


# The web folder's files the engine runs or reads (worker.js's imports and the tile worker's,
# the catalogue, the lock): with every file of the Pyodide and TF.js folders but the wheels
# (the lock gives their sha256, and Pyodide checks them), they make the integrity list that
# upscale.js carries. A page on another origin checks each before it runs (upscale.js
# checkedStart); the models are checked against the catalogue's sha256.
ENGINE_WEB = ("assets.js", "rpc.js", "worker.js", "tfbridge.js", "tilepool.js", "modelfiles.js",
              "pysnapshot.js", "tileworker.js", "models.json", "routing.json", "pyodide-lock.json")
INTEGRITY_MARK = "const INTEGRITY = {};"
# upscale.js speaks the workers' protocol: the build writes web/rpc.js in at this line.
RPC_MARK = "// web/rpc.js: the build writes it here (the message protocol the workers speak too)."


def sri(content: Content) -> str:
    """The Subresource Integrity value of `content` (sha384, as browsers check it)."""
    data = content.read_bytes() if isinstance(content, Path) else content
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def with_integrity(source: Path, web_files: dict[str, Content],
                   vendored: dict[str, Content]) -> bytes:
    """upscale.js with its integrity list written in (ENGINE_WEB by name, the vendored files
    (Pyodide, TF.js; wheels left to the lock) by their address relative to the web folder),
    and with web/rpc.js."""
    listed = {name: sri(web_files[name]) for name in ENGINE_WEB}
    listed.update({f"../{path}": sri(content) for path, content in sorted(vendored.items())
                   if not path.endswith(".whl")})
    text = source.read_text()
    for mark in (INTEGRITY_MARK, RPC_MARK):
        if text.count(mark) != 1:
            raise BuildError(f"{source} must hold `{mark}` once (the build fills it)")
    rpc = (ROOT / "web" / "rpc.js").read_text().strip()
    return text.replace(INTEGRITY_MARK, f"const INTEGRITY = {json.dumps(listed, indent=1)};") \
        .replace(RPC_MARK, f"// web/rpc.js, written in by build.py:\n{rpc}").encode()


# embed.js imports the engine's module; the build puts that module inside it instead, so the
# integrity value a shop gives embed.js covers the module and, through its list, the engine.
EMBED_IMPORT = "import { Upscaler } from './web-HASH/upscale.js';"
MODULE_HOME = ("const HOME = { root: new URL('../', import.meta.url), "
               "web: new URL('./', import.meta.url).pathname.split('/').at(-2) + '/' };")


def module_home(root: str, web: str) -> str:
    """upscale.js's HOME line for a module whose assets root is `root` relative to it ('./':
    embed.js in dist/; './assets/': the npm package's index.js), the web folder `web` in it.
    Not `new URL('…', import.meta.url)` as such: bundlers take that for a file to bundle."""
    return f"const HOME = {{ root: new URL({root!r}, String(import.meta.url)), web: '{web}/' }};"


def bundled_embed(web: str, module: bytes) -> bytes:
    """embed.js with the web folder's upscale.js (`module`) in place of its import."""
    text = (ROOT / "web" / "embed.js").read_text()
    source = module.decode()
    if text.count(EMBED_IMPORT) != 1 or source.count(MODULE_HOME) != 1:
        raise BuildError(f"embed.js must hold `{EMBED_IMPORT}` and upscale.js `{MODULE_HOME}` "
                         f"once each: the build bundles the module into the embed there")
    source = source.replace(MODULE_HOME, module_home("./", web))
    declaration = re.compile(r"export (?=(const|let|class|function|async function) )")
    lines = [declaration.sub("", line, count=1) for line in source.splitlines()]
    if any(line.startswith(("export", "import ")) for line in lines):
        raise BuildError("upscale.js may only export declarations (`export const|class|function`) "
                         "to be bundled into embed.js")
    inlined = "\n".join([
        f"// {web}/upscale.js, bundled by build.py so that embed.js's integrity covers it.",
        "const { Upscaler } = (() => {", *lines, "return { Upscaler };", "})();"])
    return text.replace(EMBED_IMPORT, inlined).replace(WEB_MARK, f"{web}/").encode()


def linked(name: str, web: str) -> bytes:
    """A fixed file of web/ with WEB_MARK replaced by the web folder's name."""
    text = (ROOT / "web" / name).read_text()
    if name.endswith((".html", ".js")) and WEB_MARK not in text:
        raise BuildError(f"web/{name} links to nothing in {WEB_MARK} (the build links the "
                         f"content-hashed folder there)")
    return text.replace(WEB_MARK, f"{web}/").encode()


def assemble(manifests: list[dict], full_lock: dict, wheels: dict[str, Path],
             converted: dict[str, Path], routing=None) -> dict[str, Content]:
    """Everything dist/ serves, as {dist path: source file or bytes}; `routing` is the table
    `auto` decides by (default: the bench's)."""
    served: dict[str, Content] = {}
    wheel_name, wheel = pack_upscale_wheel()
    zips = with_bytecode(repacked(PYODIDE_DIR / PYODIDE_STDLIB, stdlib_unused), {
        **{name: (path.name, repacked(path, wheel_unused)) for name, path in wheels.items()},
        "upscale": (wheel_name, wheel)})
    served_wheels = {name: (path.name, zips[name]) for name, path in wheels.items()}
    pyodide, files = hashed_folder("vendor/pyodide", {
        **{name: PYODIDE_DIR / name for name in PYODIDE_CORE},
        PATCHED: patched((PYODIDE_DIR / PATCHED).read_text()).encode(),
        PYODIDE_STDLIB: zips["stdlib"], **dict(served_wheels.values())})
    served.update(files)
    wheel = zips["upscale"]
    package, files = hashed_folder("vendor/upscale", {wheel_name: wheel})
    served.update(files)
    served_wheels["upscale"] = (f"../{package.removeprefix('vendor/')}/{wheel_name}", wheel)
    tfjs, files = hashed_folder("vendor/tfjs", {target: NODE_MODULES / source
                                                for source, target in TFJS_FILES.items()})
    served.update(files)

    speeds, catalogue = measured_speeds(), []
    for manifest in manifests:
        sources = model_sources(manifest, converted)
        folder, files = hashed_folder(f"models/{manifest['id']}", sources)
        served.update(files)
        entry = catalogue_entry(manifest, converted, folder, sources)
        if speed := speeds.get(manifest["id"]):
            entry["msPerMegapixel"] = round(speed)
        catalogue.append(entry)

    web_files: dict[str, Content] = {
        path.relative_to(ROOT / "web").as_posix(): path
        for path in sorted((ROOT / "web").rglob("*"))
        if path.is_file() and path.name not in FIXED_WEB
        # web/types/: the npm package's TypeScript declarations, nothing a browser loads
        and not path.is_relative_to(ROOT / "web" / "types")}
    web_files["models.json"] = (json.dumps(catalogue, indent=1, ensure_ascii=False)
                                + "\n").encode()
    web_files["routing.json"] = routing_table(manifests, routing)
    web_files["pyodide-lock.json"] = (json.dumps(served_lock(full_lock, served_wheels), indent=1)
                                      + "\n").encode()
    shell = ["../", "../index.html", "../upscale.js", "../manifest.webmanifest",
             *sorted([*web_files, "assets.js"]),
             *(f"../{path}" for path in served if path.startswith(("vendor/",)))]
    web_files["assets.js"] = assets_script(pyodide, tfjs, sorted(shell))
    web_files["upscale.js"] = with_integrity(ROOT / "web" / "upscale.js", web_files, {
        path: content for path, content in served.items()
        if path.startswith((f"{pyodide}/", f"{tfjs}/"))})
    web, files = hashed_folder("web", web_files)
    served.update(files)

    served.update({name: linked(name, web) for name in FIXED_WEB})
    served["embed.js"] = bundled_embed(web, web_files["upscale.js"])
    served["upscale.js"] = (
        "// Written by build.py: the module's fixed address; what it exports lives in the\n"
        f"// content-hashed {web}/.\nexport * from './{web}/upscale.js';\n").encode()
    served["_headers"] = headers_file(web).encode()
    served.update(shop_photos())
    return served


def copy_if_changed(source: Path, target: Path) -> bool:
    if not source.is_file():
        raise BuildError(f"missing source file {source}")
    stat = source.stat()
    if target.is_file():
        have = target.stat()
        if have.st_size == stat.st_size and int(have.st_mtime) == int(stat.st_mtime):
            return False
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    return True


def write_if_changed(data: bytes, target: Path) -> bool:
    if target.is_file() and target.read_bytes() == data:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return True


def compressed_copies(served: list[str]) -> dict[str, Path]:
    """{dist path + '.br' / '.gz': cached file} for every compressible file dist/ serves
    where it pays. Compressed once per content (brotli's best setting takes a minute on
    Pyodide's wasm), by the venv's brotli from PyPI; gzip from the standard library."""
    folder = cache_dir() / "compressed"
    folder.mkdir(parents=True, exist_ok=True)
    wanted, todo = {}, []
    for rel in served:
        source = DIST / rel
        if source.suffix not in COMPRESSIBLE or source.stat().st_size < 1024:
            continue
        digest = sha256_file(source)
        for suffix in ENCODINGS.values():
            cached = folder / f"{digest}{suffix}"
            wanted[rel + suffix] = (source, cached)
            if not cached.is_file():
                todo.append({"source": str(source), "out": str(cached)})
    if todo:
        python = ensure_env(test=False)
        log(f"compressing {len(todo)} file(s) with brotli and gzip (once per content)")
        result = subprocess.run([str(python), str(ROOT / "build.py"), "compress",
                                 json.dumps(todo)])
        if result.returncode != 0:
            raise BuildError("compressing dist/ failed (see above)")
    return {rel: cached for rel, (source, cached) in wanted.items()
            if cached.stat().st_size <= (1 - MIN_SAVING) * source.stat().st_size}


def compress(jobs: list[dict]) -> None:
    """Write each job's source compressed to job['out'] (by its suffix: .br or .gz)."""
    import brotli

    for job in jobs:
        data = Path(job["source"]).read_bytes()
        out = Path(job["out"])
        if out.suffix == ".br":
            # Weights (floats) gain ~10 % at any setting; the best one would take minutes.
            quality = 5 if job["source"].endswith(".bin") else 11
            packed = brotli.compress(data, quality=quality)
        else:
            packed = gzip.compress(data, compresslevel=9, mtime=0)
        out.with_suffix(".part").write_bytes(packed)
        out.with_suffix(".part").replace(out)


def engine_sources() -> tuple[dict, dict[str, Path]]:
    """Pyodide's full lock and its wheels, fetched and checked: what every build starts from."""
    ensure_node_modules()
    full_lock = json.loads((PYODIDE_DIR / "pyodide-lock.json").read_text())
    if full_lock["info"]["version"] != PYODIDE_VERSION:
        raise BuildError(f"node_modules has Pyodide {full_lock['info']['version']}, "
                         f"build.py pins {PYODIDE_VERSION}")
    return full_lock, ensure_wheels(full_lock)


def build() -> Path:
    started = time.monotonic()
    full_lock, wheels = engine_sources()
    manifests = load_manifests()
    served = assemble(manifests, full_lock, wheels, converted_models(manifests))
    changed = sum(copy_if_changed(content, DIST / rel) if isinstance(content, Path)
                  else write_if_changed(content, DIST / rel) for rel, content in served.items())
    compressed = compressed_copies(sorted(served))
    changed += sum(copy_if_changed(src, DIST / dst) for dst, src in compressed.items())
    kept = set(served) | set(compressed)
    for path in sorted(DIST.rglob("*"), reverse=True):
        rel = path.relative_to(DIST).as_posix()
        if path.is_file() and rel not in kept:
            path.unlink()
            changed += 1
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    log(f"dist/ ready: {len(kept)} files, {changed} changed, "
        f"{time.monotonic() - started:.2f} s; embed.js integrity {embed_integrity()}")
    return DIST


def built_catalogue() -> list[dict]:
    """The model catalogue of the built dist/, each entry's url made absolute from the site's
    root ("/models/<id>-<hash>/model.json"), for tests and the bench."""
    web = f"/{hashed_path('web')}/"
    catalogue = json.loads((DIST / web.strip("/") / "models.json").read_text())
    return [{**entry, "url": urllib.parse.urljoin(web, entry["url"])} for entry in catalogue]


def hashed_path(prefix: str) -> str:
    """The built folder of dist/ named `prefix`-<hash> ("web", "vendor/pyodide", a model's
    "models/<id>"), for tests and the bench."""
    parent, _, stem = prefix.rpartition("/")
    found = [p for p in (DIST / parent).glob(f"{stem}-*")
             if p.is_dir() and len(p.name) == len(stem) + 1 + HASH_LENGTH]
    if len(found) != 1:
        raise BuildError(f"dist/ has {len(found)} folders {prefix}-<hash>: build it first")
    return found[0].relative_to(DIST).as_posix()
