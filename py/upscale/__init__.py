"""Upscale: the image work of in-browser super-resolution (tiling, blending, alpha, formats).

Everything here runs in plain CPython and in Pyodide; only `upscale.bridge` touches JavaScript.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("upscale")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+source"
