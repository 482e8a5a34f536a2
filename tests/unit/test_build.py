"""build.py: the hash check, the cache, and the list of what dist/ serves."""

import hashlib
import json
import re
import zipfile
from io import BytesIO

import pytest

import build


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UPSCALE_CACHE", str(tmp_path))
    return tmp_path


def wheel_for(data: bytes) -> build.Pinned:
    return build.Pinned("numpy", "numpy-x.whl", hashlib.sha256(data).hexdigest())


def test_tampered_wheel_is_refused(cache):
    good = b"the real wheel"
    wheel = wheel_for(good)
    with pytest.raises(build.BuildError, match="hash mismatch for numpy-x.whl"):
        build.store_verified(wheel, good + b"!", "a test")
    assert not wheel.cached().exists()


def test_verified_wheel_is_cached_by_hash(cache):
    good = b"the real wheel"
    wheel = wheel_for(good)
    path = build.store_verified(wheel, good, "a test")
    assert path == cache / "blobs" / wheel.sha256 / "numpy-x.whl"
    assert build.verified_cache_hit(wheel) == path


def test_corrupted_cache_entry_is_dropped(cache):
    good = b"the real wheel"
    wheel = wheel_for(good)
    path = build.store_verified(wheel, good, "a test")
    path.write_bytes(b"bit rot")
    assert build.verified_cache_hit(wheel) is None
    assert not path.exists()


def test_no_network_and_no_cache_names_the_missing_piece(cache, monkeypatch):
    def no_cdn(wheel):
        raise OSError("no route to host")

    class Failed:
        returncode = 1
        stderr = "ERROR: No matching distribution found"

    monkeypatch.setattr(build, "fetch_from_cdn", no_cdn)
    monkeypatch.setattr(build.subprocess, "run", lambda *a, **k: Failed())
    lock = {"packages": {n: {"file_name": f"{n}.whl", "sha256": "0" * 64}
                         for n in build.PYODIDE_PACKAGES}}
    with pytest.raises(build.BuildError, match="no network and no cache"):
        build.ensure_wheels(lock)


def test_pinned_wheels_come_from_pyodides_own_lock():
    lock = json.loads((build.PYODIDE_DIR / "pyodide-lock.json").read_text())
    wheels = {w.name: w for w in build.pinned_wheels(lock)}
    assert wheels["numpy"].file_name == "numpy-2.0.2-cp312-cp312-pyodide_2024_0_wasm32.whl"
    assert wheels["pillow"].file_name == "pillow-10.2.0-cp312-cp312-pyodide_2024_0_wasm32.whl"
    assert all(len(w.sha256) == 64 for w in wheels.values())


def test_packed_wheel_is_reproducible_and_complete():
    name, first = build.pack_upscale_wheel("1.2.3")
    _, second = build.pack_upscale_wheel("1.2.3")
    assert name == "upscale-1.2.3-py3-none-any.whl"
    assert first == second
    members = set(zipfile.ZipFile(BytesIO(first)).namelist())
    sources = {p.relative_to(build.ROOT / "py").as_posix()
               for p in (build.ROOT / "py" / "upscale").rglob("*.py")}
    assert sources <= members
    assert "upscale-1.2.3.dist-info/RECORD" in members


def test_served_lock_lists_exactly_what_dist_serves():
    full = json.loads((build.PYODIDE_DIR / "pyodide-lock.json").read_text())
    wheel = build.pack_upscale_wheel("0.1.0")
    lock = build.served_lock(full, wheel)
    assert set(lock["packages"]) == {"numpy", "pillow", "upscale"}
    assert lock["packages"]["upscale"]["sha256"] == hashlib.sha256(wheel[1]).hexdigest()
    assert lock["packages"]["numpy"]["sha256"] == full["packages"]["numpy"]["sha256"]
    assert lock["info"]["version"] == build.PYODIDE_VERSION


def test_dist_plan_covers_every_model_wasm_file_and_pyodide_core(tmp_path):
    manifests = build.load_manifests()
    fake_wheels = {n: tmp_path / f"{n}.whl" for n in build.PYODIDE_PACKAGES}
    plan = build.dist_plan(manifests, fake_wheels, build.converted_models(manifests))
    upscalerjs = [m for m in manifests if m.get("format") != "ncnn"]
    for manifest in manifests:
        if manifest.get("format") == "ncnn":
            assert f"models/{manifest['id']}/model.json" in plan
            assert any(p.startswith(f"models/{manifest['id']}/group1-shard1of") for p in plan)
        else:
            folder = manifest["package"].removeprefix("@upscalerjs/")
            assert f"models/{folder}/{manifest['path']}" in plan
    shards = [p for p in plan if p.startswith("models/") and not p.endswith(".json")]
    assert sum(plan[p].stat().st_size for p in shards) >= sum(
        m["weightBytes"] for m in {m["package"] + m["path"]: m for m in upscalerjs}.values()
    )
    for flavour in ("", "-simd", "-threaded-simd"):
        assert f"vendor/tfjs/tfjs-backend-wasm{flavour}.wasm" in plan
    for core in build.PYODIDE_CORE:
        assert f"vendor/pyodide/{core}" in plan
    assert "worker.js" in plan and "upscale.js" in plan


def test_built_dist_serves_exactly_the_plan():
    """After `build.py` ran (the test command builds first), dist/ holds nothing extra."""
    if not (build.DIST / "index.html").exists():
        pytest.fail("dist/ is not built; run `python build.py test`")
    lock = json.loads((build.PYODIDE_DIR / "pyodide-lock.json").read_text())
    wheels = {w.name: w.cached() for w in build.pinned_wheels(lock)}
    manifests = build.load_manifests()
    converted = build.converted_models(manifests)
    expected = set(build.dist_plan(manifests, wheels, converted)) | set(
        build.generated_files(manifests, lock, converted))
    compressed = build.compressed_copies(sorted(expected))
    assert {"vendor/pyodide/pyodide.asm.wasm.br", "worker.js.gz"} <= set(compressed)
    expected |= set(compressed)
    on_disk = {p.relative_to(build.DIST).as_posix() for p in build.DIST.rglob("*") if p.is_file()}
    assert on_disk == expected
    served = json.loads((build.DIST / "vendor/pyodide/pyodide-lock.json").read_text())
    for package in served["packages"].values():
        path = build.DIST / "vendor/pyodide" / package["file_name"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == package["sha256"]


def test_catalogue_lists_the_sha256_of_every_model_file_served():
    """The engine refuses a model file whose sha256 differs from the catalogue's (each is
    computed from the file dist/ serves), and downloads exactly the files listed."""
    if not (build.DIST / "models" / "index.json").exists():
        pytest.fail("dist/ is not built; run `python build.py test`")
    catalogue = json.loads((build.DIST / "models" / "index.json").read_text())
    for entry in catalogue:
        folder = (build.DIST / entry["url"]).parent
        topology = json.loads((folder / "model.json").read_text())
        names = {"model.json"} | {p for g in topology["weightsManifest"] for p in g["paths"]}
        assert set(entry["files"]) == names, entry["id"]
        for name, digest in entry["files"].items():
            assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest


def test_manifest_weight_bytes_are_checked(monkeypatch):
    manifest = dict(next(m for m in build.load_manifests() if m.get("format") != "ncnn"))
    manifest["weightBytes"] += 1
    with pytest.raises(build.BuildError, match="weights are"):
        build.model_files(manifest)


@pytest.mark.parametrize(("header", "expected"), [
    ("gzip, deflate, br, zstd", ["br", "gzip"]), ("GZIP", ["gzip"]), ("br;q=0, gzip;q=0.5",
    ["gzip"]), ("identity", []), (None, []), ("br;q=x", [])])
def test_accepted_encodings_follow_the_header(header, expected):
    assert build.accepted_encodings(header) == expected


def test_serve_headers_allow_wasm_threads():
    assert build.SERVE_HEADERS["Cross-Origin-Opener-Policy"] == "same-origin"
    assert build.SERVE_HEADERS["Cross-Origin-Embedder-Policy"] == "require-corp"
    assert build.MIME_TYPES[".wasm"] == "application/wasm"
    assert build.MIME_TYPES[".mjs"] == "text/javascript"


def test_readme_snippet_carries_the_current_integrity_hash():
    readme = (build.ROOT / "README.md").read_text()
    assert f'integrity="{build.embed_integrity()}"' in readme, \
        "README's shop snippet is stale: paste the hash `python3 build.py` prints"


def test_shop_page_lists_every_product_photo_and_nothing_else():
    page = (build.ROOT / "web" / "shop.html").read_text()
    shown = re.findall(r'src="shop/small/([\w-]+)\.jpg"', page)
    assert sorted(shown) == sorted(build.SHOP_PRODUCTS)
    assert len(shown) >= 12
