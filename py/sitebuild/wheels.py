"""The Python dist/ serves: the upscale wheel (built by pyproject's backend), Pyodide's stdlib
and wheels repacked without what the engine never imports, and their bytecode."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .common import PYODIDE_DIR, ROOT, ZIP_EPOCH, BuildError, cache_dir, log, project_version
from .provision import venv_python
from .vendor import PYODIDE_PACKAGES, PYODIDE_VERSION

# The zips dist/ serves (Python's stdlib, the wheels) are repacked stored, not deflated: they
# travel brotli-compressed, and brotli over a whole archive finds what repeats across files
# (measured: numpy 3.06 -> 1.95 MB, the stdlib 2.30 -> 1.49 MB on the wire). Left out of them:
# what the engine never imports. Its imports are numpy, Pillow, asyncio, json, zipfile and
# importlib.metadata (which reads METADATA with email); these modules serve none of them.
STDLIB_UNUSED = frozenset({
    "__hello__.py", "__phello__", "aifc.py", "antigravity.py", "bdb.py", "cProfile.py",
    "cgi.py", "cgitb.py", "chunk.py", "compileall.py", "crypt.py", "doctest.py", "ftplib.py",
    "imaplib.py", "imghdr.py", "mailbox.py", "mailcap.py", "modulefinder.py",
    "multiprocessing", "netrc.py", "nntplib.py", "pdb.py", "pipes.py", "poplib.py",
    "profile.py", "pstats.py", "pty.py", "pyclbr.py", "pydoc.py", "smtplib.py", "sndhdr.py",
    "sunau.py", "tabnanny.py", "telnetlib.py", "this.py", "timeit.py", "trace.py", "tty.py",
    "unittest", "uu.py", "wave.py", "webbrowser.py", "wsgiref", "xdrlib.py", "xmlrpc",
    "zipapp.py",
})
# Of the codecs, Python's own (UTF-*, Latin-1, ASCII, the escapes) and zipfile's cp437 stay;
# the national 8-bit and CJK tables, a seventh of the zip, decode nothing the engine reads.
CODECS_KEPT = frozenset({
    "__init__", "aliases", "ascii", "base64_codec", "charmap", "cp437", "hex_codec", "idna",
    "latin_1", "mbcs", "oem", "punycode", "quopri_codec", "raw_unicode_escape", "rot_13",
    "undefined", "unicode_escape", "utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be",
    "utf_32_le", "utf_7", "utf_8", "utf_8_sig", "uu_codec", "zlib_codec", "bz2_codec",
})
# numpy imports these subpackages only when asked (numpy.__getattr__); nothing here asks. Its
# C headers and static library serve builds against numpy, and the test extensions its tests.
# Pyodide compiles every extension a wheel holds when it loads the wheel (fft's and the tests'
# 0.4 MB of WebAssembly among them), whether Python imports it or not.
NUMPY_UNUSED = ("numpy/f2py/", "numpy/random/", "numpy/polynomial/", "numpy/testing/",
                "numpy/typing/", "numpy/_pyinstaller/", "numpy/doc/", "numpy/fft/", "numpy/ma/",
                "numpy/_core/include/", "numpy/_core/lib/",
                "numpy/_core/_operand_flag_tests.", "numpy/_core/_rational_tests.",
                "numpy/_core/_struct_ufunc_tests.", "numpy/_core/_umath_tests.",
                "numpy/_core/_simd.")


# --- the upscale package, packed for Pyodide ---------------------------------------------


def stored_zip(members: list[tuple[str, bytes]]) -> bytes:
    """A zip of `members`, stored (brotli compresses it whole) with fixed timestamps, so the
    same members give the same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, ZIP_EPOCH)
            info.external_attr = (0o755 if name.endswith("/") else 0o644) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


# The wheel of py/upscale is made by the build backend pyproject.toml declares (pip runs it in
# an isolated environment it fetches from PyPI), from a copy of what goes in, so that the
# tree stays clean; then repacked stored with fixed dates (`repacked`), so the same sources
# and backend give the same bytes. Kept in the cache by the hash of what goes in.
WHEEL_INPUTS = ("pyproject.toml", "README.md", "LICENSE")


def pack_upscale_wheel() -> tuple[str, bytes]:
    """The upscale wheel (name, bytes), byte-for-byte reproducible."""
    inputs = {name: (ROOT / name).read_bytes() for name in WHEEL_INPUTS}
    inputs.update({path.relative_to(ROOT).as_posix(): path.read_bytes()
                   for path in sorted((ROOT / "py" / "upscale").rglob("*.py"))})
    digest = hashlib.sha256()
    for name, data in sorted(inputs.items()):
        digest.update(hashlib.sha256(name.encode() + b"\0" + data).digest())
    folder = cache_dir() / "wheel" / digest.hexdigest()[:20]
    if not any(folder.glob("upscale-*.whl")):
        with tempfile.TemporaryDirectory() as temp:
            source, out = Path(temp) / "source", Path(temp) / "out"
            for name, data in inputs.items():
                (source / name).parent.mkdir(parents=True, exist_ok=True)
                (source / name).write_bytes(data)
            python = venv_python() if venv_python().exists() else Path(sys.executable)
            log("building the upscale wheel with pyproject.toml's build backend")
            result = subprocess.run([str(python), "-m", "pip", "wheel", "--no-deps", "--quiet",
                                     "--wheel-dir", str(out), str(source)],
                                    capture_output=True, text=True)
            built = sorted(out.glob("upscale-*.whl"))
            if result.returncode or not built:
                raise BuildError(f"the upscale wheel did not build:\n{result.stderr[-2000:]}")
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(built[0], folder / built[0].name)
    wheel = next(folder.glob("upscale-*.whl"))
    return wheel.name, repacked(wheel, lambda name: False)


def repacked(source: Path, unused) -> bytes:
    """`source` (a verified zip: the stdlib, a wheel) stored, without the members `unused`
    names; a wheel's RECORD loses the lines of what was left out."""
    with zipfile.ZipFile(source) as archive:
        members = [(info.filename, archive.read(info)) for info in archive.infolist()
                   if not unused(info.filename)]
    kept = {name for name, _ in members}
    out = []
    for name, data in members:
        if name.endswith(".dist-info/RECORD"):
            lines = data.decode().splitlines()
            data = ("\n".join(line for line in lines if line.rsplit(",", 2)[0] in kept)
                    + "\n").encode()
        out.append((name, data))
    return stored_zip(out)


# Python's bytecode for what the engine imports as it starts, compiled at build time by the very
# Pyodide that runs it (in Node.js, from node_modules): Pyodide ships sources only, and
# compiling them took about half of the engine's Python start. Which modules: those in
# sys.modules after that Pyodide loads the served wheels and runs BOOT_IMPORTS (bytecode for
# all would double the stdlib's bytes on the wire). In a wheel (Pyodide unpacks those) each
# gets its .pyc in __pycache__/ beside the source, which stays for tracebacks; in the stdlib
# zip the .pyc replaces the source, as Pyodide's own `py-compile` does (0.44 MB less on the
# wire; a traceback through the stdlib then shows no source line). Hash-based and unchecked:
# the files are content-addressed, so a source never changes under its bytecode.
BOOT_IMPORTS = "import upscale.bridge, PIL.Image; PIL.Image.init()"
PYC_COMPILER = r"""
import importlib._bootstrap_external as external, importlib.util, sys, zipfile

def imported(prefixes):
    found = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None) or ""
        if path.endswith(".py"):  # not an extension module's .so
            found.update(path[len(p):] for p in prefixes if path.startswith(p))
    return sorted(found)

def compile_zip(source, target, wheel, prefix, wanted):
    wanted = set(wanted)
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename not in wanted:
                new.writestr(info, data)
                continue
            if wheel:
                new.writestr(info, data)
            code = compile(data, prefix + info.filename, "exec", dont_inherit=True)
            pyc = external._code_to_hash_pyc(code, importlib.util.source_hash(data), False)
            if wheel:
                folder, _, name = info.filename.rpartition("/")
                cached = f"__pycache__/{name[:-3]}.{sys.implementation.cache_tag}.pyc"
                name = f"{folder}/{cached}" if folder else cached
            else:
                name = info.filename + "c"
            new.writestr(zipfile.ZipInfo(name, info.date_time), pyc)
"""
PYC_RUNNER = r"""
const [indexURL, task] = [process.argv[1], JSON.parse(process.argv[2])];
const fs = require('fs');
require(indexURL + 'pyodide.js').loadPyodide({ indexURL }).then(async (py) => {
  py.runPython(fs.readFileSync(0, 'utf8'));
  for (const wheel of task.wheels) await py.loadPackage(wheel, { messageCallback: () => {} });
  py.runPython(task.imports);
  const wanted = py.globals.get('imported')(task.prefixes).toJs();
  for (const job of task.jobs) {
    py.FS.writeFile('/tmp/in.zip', fs.readFileSync(job.source));
    py.globals.get('compile_zip')('/tmp/in.zip', '/tmp/out.zip', job.wheel, job.prefix, wanted);
    fs.writeFileSync(job.out, py.FS.readFile('/tmp/out.zip'));
  }
}).catch((error) => {
  console.error(String(error));
  process.exit(1);
});
"""
# Where Pyodide finds the stdlib zip and the wheels' modules at run time.
PYODIDE_STDLIB_PATH = "/lib/python312.zip/"
PYODIDE_SITE_PACKAGES = "/lib/python3.12/site-packages/"


def with_bytecode(stdlib: bytes, wheels: dict[str, tuple[str, bytes]]) -> dict[str, bytes]:
    """The stdlib zip and each wheel {name: (file name, data)} with the bytecode of what the
    engine imports as it starts (see PYC_COMPILER), as {"stdlib" or name: data}; once per
    content, cached under cache_dir()/pyc."""
    inputs = {"stdlib": ("python_stdlib.zip", stdlib), **wheels}
    key = hashlib.sha256((PYC_COMPILER + PYC_RUNNER + BOOT_IMPORTS + PYODIDE_VERSION).encode())
    for name in sorted(inputs):
        key.update(f"{name}\0{hashlib.sha256(inputs[name][1]).hexdigest()}\n".encode())
    folder = cache_dir() / "pyc" / key.hexdigest()[:32]
    if not all((folder / file_name).is_file() for file_name, _ in inputs.values()):
        node = shutil.which("node")
        if node is None:
            raise BuildError("node not found: install Node.js 20 or newer")
        scratch = folder.with_name(folder.name + ".partial")
        shutil.rmtree(scratch, ignore_errors=True)
        (scratch / "in").mkdir(parents=True)
        for file_name, data in inputs.values():
            (scratch / "in" / file_name).write_bytes(data)
        jobs = [{"source": str(scratch / "in" / file_name), "out": str(scratch / file_name),
                 "wheel": name != "stdlib",
                 "prefix": "" if name != "stdlib" else PYODIDE_STDLIB_PATH}
                for name, (file_name, _) in inputs.items()]
        task = {"wheels": [job["source"] for job in jobs if job["wheel"]], "jobs": jobs,
                "imports": BOOT_IMPORTS, "prefixes": [PYODIDE_STDLIB_PATH, PYODIDE_SITE_PACKAGES]}
        log(f"compiling the bytecode the engine's start imports, with Pyodide {PYODIDE_VERSION}")
        result = subprocess.run([node, "-e", PYC_RUNNER, f"{PYODIDE_DIR}/", json.dumps(task)],
                                input=PYC_COMPILER, text=True, capture_output=True)
        if result.returncode != 0:
            raise BuildError("compiling Python bytecode in Pyodide failed: "
                             + (result.stderr.strip() or result.stdout.strip())[-3000:])
        shutil.rmtree(scratch / "in")
        shutil.rmtree(folder, ignore_errors=True)
        scratch.rename(folder)
    return {name: (folder / file_name).read_bytes() for name, (file_name, _) in inputs.items()}


def stdlib_unused(name: str) -> bool:
    top, _, rest = name.partition("/")
    if top == "encodings" and rest.endswith(".py"):
        return rest[:-3] not in CODECS_KEPT
    return top in STDLIB_UNUSED


def wheel_unused(name: str) -> bool:
    """Type stubs, and numpy's subpackages the engine never imports."""
    return name.endswith(".pyi") or name.startswith(NUMPY_UNUSED)


def served_lock(full_lock: dict, wheels: dict[str, tuple[str, bytes]]) -> dict:
    """The pyodide-lock.json dist serves: exactly numpy, Pillow and upscale, each with the
    address (relative to Pyodide's folder) and sha256 of the wheel dist/ serves."""
    packages = {name: dict(full_lock["packages"][name]) for name in PYODIDE_PACKAGES}
    packages["upscale"] = {
        "name": "upscale",
        "version": project_version(),
        "install_dir": "site",
        "package_type": "package",
        "imports": ["upscale"],
        # Pillow is listed in the lock but loaded by the worker only when a file is decoded.
        "depends": ["numpy"],
        "unvendored_tests": False,
    }
    for name, (file_name, data) in wheels.items():
        packages[name].update(file_name=file_name, sha256=hashlib.sha256(data).hexdigest())
    return {"info": full_lock["info"], "packages": packages}
