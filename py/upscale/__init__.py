"""Upscale: the image work of in-browser super-resolution (tiling, blending, alpha, formats).

Everything here runs in plain CPython and in Pyodide; only `upscale.bridge` touches JavaScript.
"""

# The one place the version is written: pyproject.toml reads it from here (its `dynamic`
# version). Not looked up with importlib.metadata, which scans every installed distribution:
# 7-21 ms of each engine start in Pyodide.
__version__ = "0.1.0"
