"""The house style is checked, not hoped for: ruff over build.py, py/, tests/ and bench/."""

import subprocess
import sys

from sitebuild import common


def test_ruff_is_clean():
    # ruff is a test dependency, installed next to this interpreter
    command = [sys.executable, "-m", "ruff", "check", "build.py", "py", "tests", "bench"]
    result = subprocess.run(command, cwd=common.ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
