"""The one module that talks to JavaScript: entry points the worker calls."""

from __future__ import annotations

import sys

import numpy as np
import PIL

from . import __version__


def versions() -> dict[str, str]:
    return {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "upscale": __version__,
    }
