#!/usr/bin/env python3
"""Build, serve, test and benchmark Upscale.

Standard library only: this file runs before anything is installed. Each step lives in
py/sitebuild/, one module per concern (see its __init__); this file is the command line.

    python build.py                 assemble dist/
    python build.py serve           build, then serve dist/ with the headers WASM threads need
    python build.py test [ARGS]     build, install test dependencies and Chromium, run pytest
    python build.py bench [--quick] build, then benchmark in Chromium (bench/REPORT.md)
    python build.py bench --only real   only the real-input section, merged into results.json
    python build.py bench --only auto   its routing table and 'auto' again, on stored outcomes
    python build.py bench --only cold   only the cold start, merged into results.json
    python build.py package [--models a,b]   the npm package, dist-npm/<name>-<version>.tgz
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "py"))

from sitebuild.assemble import build, compress  # noqa: E402
from sitebuild.common import DIST, ROOT, BuildError  # noqa: E402
from sitebuild.demo import make_shop_photos  # noqa: E402
from sitebuild.models import convert_ncnn  # noqa: E402
from sitebuild.package import package  # noqa: E402
from sitebuild.provision import (  # noqa: E402
    ensure_env,
    find_butteraugli,
    find_chromium,
    find_nginx,
)
from sitebuild.serving import make_server, nginx_config  # noqa: E402
from sitebuild.vendor import ensure_photos  # noqa: E402


def serve(host: str, port: int) -> None:
    build()
    server = make_server(host, port)
    url = f"http://{host}:{server.server_address[1]}/"
    print(f"Serving dist/ at {url}  (Ctrl+C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def run_tests(pytest_args: list[str]) -> int:
    build()
    ensure_photos()  # test inputs; fetched now so a failure names them before pytest starts
    python = ensure_env()
    chromium = find_chromium()
    find_nginx()
    find_butteraugli()  # the quick bench's metrics (tests/e2e/test_bench.py)
    env = {**os.environ, "CHROMIUM": str(chromium), "UPSCALE_DIST": str(DIST)}
    return subprocess.run([str(python), "-m", "pytest", *pytest_args], cwd=ROOT, env=env).returncode


def run_bench(bench_args: list[str]) -> int:
    build()
    ensure_photos()
    python = ensure_env()
    find_butteraugli()
    env = {**os.environ, "CHROMIUM": str(find_chromium())}
    script = ROOT / "bench" / "bench.py"
    return subprocess.run([str(python), str(script), *bench_args], cwd=ROOT, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("build", help="assemble dist/ (the default)")
    serve_parser = commands.add_parser("serve", help="build, then serve dist/")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=8000)
    commands.add_parser("test", help="build, then run pytest (extra arguments go to pytest)")
    commands.add_parser("bench", help="build, then benchmark in Chromium ([--quick])")
    photos_parser = commands.add_parser("shop-photos", help=argparse.SUPPRESS)
    photos_parser.add_argument("out", type=Path)
    convert_parser = commands.add_parser("convert-ncnn", help=argparse.SUPPRESS)
    convert_parser.add_argument("jobs", type=json.loads)
    nginx_parser = commands.add_parser("nginx", help="build, then print an nginx.conf for dist/")
    nginx_parser.add_argument("--root", type=Path, default=DIST)
    nginx_parser.add_argument("--port", type=int, default=8080)
    package_parser = commands.add_parser(
        "package", help="the npm package, dist-npm/<name>-<version>.tgz ([--models a,b])")
    package_parser.add_argument(
        "--models", type=lambda text: [m.strip() for m in text.split(",") if m.strip()],
        help="model ids to include (default: every model `auto` runs)")
    compress_parser = commands.add_parser("compress", help=argparse.SUPPRESS)
    compress_parser.add_argument("jobs", type=json.loads)
    args, rest = parser.parse_known_args(argv)
    if rest and args.command not in ("test", "bench"):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if args.command == "serve":
            serve(args.host, args.port)
        elif args.command == "test":
            return run_tests(rest)
        elif args.command == "bench":
            return run_bench(rest)
        elif args.command == "shop-photos":
            make_shop_photos(args.out)
        elif args.command == "convert-ncnn":
            convert_ncnn(args.jobs)
        elif args.command == "nginx":
            build()
            print(nginx_config(args.root.resolve(), args.port), end="")
        elif args.command == "package":
            package(args.models)
        elif args.command == "compress":
            compress(args.jobs)
        else:
            build()
    except BuildError as error:
        print(f"build.py: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
