"""The npm package's TypeScript declarations (web/types/, written by hand) compile, and reject.

A throw-away package folder with the exports @upscale-web/upscale will have gets the two
declarations and empty modules; an app installs it and a pinned TypeScript from the npm
registry, and tsc checks tests/typed/example.ts (every option, method and event of both
modules, and `@ts-expect-error` lines for wrong uses) against it; the catalogue and the routing
table the build serves must fit the types declared for them. The example also compiles
against the real tarball (`python3 build.py package`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from sitebuild import package
from sitebuild.assemble import catalogue_entry, routing_table
from sitebuild.common import ROOT
from sitebuild.models import load_manifests

# The newest 5.x: typescript 7.x on npm is the Go port (a native tsc in a per-platform
# optional package), and 6.0 the bridge to it; 5.9 is the JavaScript compiler most users'
# projects build with today. (The declarations also pass 6.0.3 and 7.0.2, checked by hand.)
TYPESCRIPT = "5.9.3"

TYPES = ROOT / "web" / "types"
TYPED = ROOT / "tests" / "typed"


def npm(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """npm (or npx) in `cwd`; a machine without it fails the test, saying so."""
    command = shutil.which(args[0])
    if command is None:
        pytest.fail(f"{args[0]} not found: install Node.js 20 or newer with npm "
                    f"(Debian: apt-get install npm); the TypeScript check needs it")
    return subprocess.run([command, *args[1:]], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def package_folder(where: Path) -> Path:
    """A package folder shaped like @upscale-web/upscale: its package.json exports, the
    declarations as index.d.ts and embed.d.ts, and empty modules (tsc reads no JavaScript)."""
    folder = where / "package"
    folder.mkdir()
    exports = package.manifest([], "web-0")["exports"]  # the package's own
    meta = {"name": package.NAME, "version": "0.0.0", "type": "module", "exports": exports}
    (folder / "package.json").write_text(json.dumps(meta, indent=1) + "\n")
    for name in ("index", "embed"):
        shutil.copyfile(TYPES / f"{name}.d.ts", folder / f"{name}.d.ts")
        (folder / f"{name}.js").write_text("")
    return folder


def typed_app(where: Path, source: Path) -> Path:
    """An ES module app with `source` (a package folder or tarball) and TypeScript installed,
    and tests/typed/ (the example and its tsconfig.json) copied in."""
    app = where / "app"
    app.mkdir()
    meta = {"name": "typed-app", "private": True, "type": "module"}
    (app / "package.json").write_text(json.dumps(meta) + "\n")
    for file in TYPED.iterdir():
        shutil.copyfile(file, app / file.name)
    # --install-links: a folder is packed and copied, as a registry package would be
    installed = npm("npm", "install", "--no-audit", "--no-fund", "--ignore-scripts",
                    "--prefer-offline", "--install-links", f"typescript@{TYPESCRIPT}",
                    str(source), cwd=app)
    assert installed.returncode == 0, f"npm install failed:\n{installed.stderr[-3000:]}"
    return app


def tsc(app: Path, *args: str) -> subprocess.CompletedProcess:
    # `--no`: only the tsc installed here, never a download of npm's unrelated "tsc" package
    return npm("npx", "--no", "--", "tsc", "--noEmit", *args, cwd=app, timeout=120)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("types")
    return typed_app(where, package_folder(where))


# nodenext: Node's own ESM rules (strictest about exports and extensions); bundler: what Vite,
# webpack and esbuild users get
@pytest.mark.parametrize("resolution", [
    [],
    ["--module", "esnext", "--moduleResolution", "bundler"],
], ids=["nodenext", "bundler"])
def test_the_example_compiles_against_the_declarations(app: Path, resolution: list[str]):
    result = tsc(app, "-p", "tsconfig.json", *resolution)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_example_compiles_against_the_package_tarball(npm_tarball: Path, tmp_path: Path):
    app = typed_app(tmp_path, npm_tarball)
    result = tsc(app, "-p", "tsconfig.json")
    assert result.returncode == 0, result.stdout + result.stderr


WRONG = """\
import { Upscaler } from '@upscale-web/upscale';
import '@upscale-web/upscale/embed';

new Upscaler({ backnd: 'wasm' });
document.createElement('upscale-img')
  .addEventListener('upscale-done', (event) => event.detail.scale);
"""


def test_a_wrong_program_fails_with_the_errors_tsc_names(app: Path):
    (app / "wrong.ts").write_text(WRONG)
    config = {"extends": "./tsconfig.json", "files": ["wrong.ts"]}
    (app / "tsconfig.wrong.json").write_text(json.dumps(config))
    result = tsc(app, "-p", "tsconfig.wrong.json")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "wrong.ts(4,16): error TS2561: Object literal may only specify known properties, " \
           "but 'backnd' does not exist in type 'UpscalerOptions'." in output, output
    assert "wrong.ts(6,61): error TS2339: Property 'scale' does not exist on type " \
           "'UpscaleDoneDetail'." in output, output


def served_data(where: Path) -> tuple[list[dict], dict]:
    """models.json and routing.json as the build writes them (assemble.catalogue_entry and
    routing_table), without converting a model: each ncnn model's weight count is a stand-in."""
    manifests = load_manifests()
    converted = {}
    for manifest in manifests:
        if manifest.get("format") == "ncnn":
            converted[manifest["id"]] = folder = where / manifest["id"]
            folder.mkdir()
            (folder / "meta.json").write_text('{"weightBytes": 1}')
    catalogue = [catalogue_entry(manifest, converted, f"models/{manifest['id']}", {})
                 for manifest in manifests]
    return catalogue, json.loads(routing_table(manifests))


def test_the_catalogue_and_routing_table_fit_their_declared_types(app: Path, tmp_path: Path):
    # Written as literals, not imported as JSON: tsc then checks each field against the
    # declared unions, and names a field the declarations do not know.
    catalogue, table = served_data(tmp_path)
    (app / "served.ts").write_text(
        "import type { ModelManifest, RoutingTable } from '@upscale-web/upscale';\n"
        f"export const catalogue: ModelManifest[] = {json.dumps(catalogue, indent=1)};\n"
        f"export const table: RoutingTable = {json.dumps(table, indent=1)};\n")
    config = {"extends": "./tsconfig.json", "files": ["served.ts"]}
    (app / "tsconfig.served.json").write_text(json.dumps(config))
    result = tsc(app, "-p", "tsconfig.served.json")
    assert result.returncode == 0, result.stdout + result.stderr
