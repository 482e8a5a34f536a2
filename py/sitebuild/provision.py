"""What the tests and the bench need on a fresh machine: a virtualenv, Debian's Chromium and
nginx; and running them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .common import ROOT, VENV, BuildError, log, sha256_file
from .serving import NGINX_BROTLI

# Debian's Chromium, launched by tests and benchmarks: no sandbox as root, and none of its
# background requests (this network refuses them).
# --enable-unsafe-webgpu: headless Chromium on Linux exposes WebGPU only with it (here through
# SwiftShader's Vulkan, a software adapter `auto` must not pick; the backend matrix runs it).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic", "--enable-unsafe-webgpu"]
# The tests' Chromium (never the bench's) turns off V8's eager WebAssembly tier-up: the same
# results, measured faster on two cores (test_engine.py: 140 -> 113 s). V8 still optimises hot
# functions (dynamic tiering, about 1 s of background CPU per engine start in a trace); turning
# that off too (--liftoff-only) made the model work slower than it saved (test_engine.py: 90 ->
# 159 s).
CHROMIUM_TEST_ARGS = [*CHROMIUM_ARGS, "--js-flags=--no-wasm-tier-up"]



def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_env(test: bool = True) -> Path:
    """A virtualenv with the package (numpy, Pillow), the build's brotli and, for `test`,
    the test extras; refreshed when pyproject changes."""
    stamp = VENV / ".upscale-pyproject.sha256"
    sha = sha256_file(ROOT / "pyproject.toml")
    have = stamp.read_text().split() if stamp.is_file() else []
    if venv_python().is_file() and have and have[0] == sha and (not test or "test" in have):
        return venv_python()
    if not venv_python().is_file():
        log("creating .venv")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    target = f"{ROOT}[build,test]" if test else f"{ROOT}[build]"
    log(f"installing {'the test dependencies' if test else 'numpy, Pillow and brotli'} into .venv")
    result = subprocess.run([str(venv_python()), "-m", "pip", "install", "--quiet", "-e", target])
    if result.returncode != 0:
        raise BuildError(f"pip install -e {target} failed: is PyPI reachable? (see above)")
    stamp.write_text(f"{sha} {'test' if test else 'base'}\n")
    return venv_python()


def debian_tool(wanted: Path, packages: list[str], what: str) -> Path:
    """`wanted`, installed with apt-get (as root on Debian) when it is missing."""
    if wanted.is_file():
        return wanted
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"installing Debian's {' '.join(packages)} with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update", "-qq"],
                        ["apt-get", "install", "-y", "-qq", *packages]):
            if subprocess.run(command, env=env).returncode != 0:
                raise BuildError(f"{' '.join(command)} failed")
        if wanted.is_file():
            return wanted
    raise BuildError(f"no {what} at {wanted}: install Debian's {' '.join(packages)} "
                     f"(sudo apt-get install {' '.join(packages)})")


def find_chromium() -> Path:
    """$CHROMIUM, else /usr/bin/chromium, installed when missing."""
    if "CHROMIUM" in os.environ:
        wanted = Path(os.environ["CHROMIUM"])
        if not wanted.is_file():
            raise BuildError(f"no Chromium at CHROMIUM={wanted}")
        return wanted
    return debian_tool(Path("/usr/bin/chromium"), ["chromium"], "Chromium")


def find_nginx() -> Path:
    """Debian's nginx with its brotli_static module, for the test of a real server."""
    debian_tool(Path(NGINX_BROTLI), ["nginx", "libnginx-mod-http-brotli-static"],
                "nginx brotli module")
    return debian_tool(Path("/usr/sbin/nginx"), ["nginx"], "nginx")


def find_butteraugli() -> Path:
    """Debian's Butteraugli (`butteraugli_main`, in libjxl-devtools), for the bench's metrics."""
    return debian_tool(Path("/usr/bin/butteraugli_main"), ["libjxl-devtools"], "Butteraugli")
