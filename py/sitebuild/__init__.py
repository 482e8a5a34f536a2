"""build.py's steps, one module per concern (the package is not part of the upscale wheel).

common     the project's paths, the cache, BuildError and the log
vendor     npm's packages, Pyodide's wheels and the sample photos, fetched and verified
wheels     the Python dist/ serves: the upscale wheel, the trimmed stdlib, their bytecode
models     the manifests, the ncnn conversions, each model's files
demo       the demo shop's product photos
assemble   dist/ itself: hashed folders, integrity lists, precompressed copies
serving    the headers, the dev server, nginx and _headers
provision  the virtualenv, Chromium and nginx the tests need, and running tests and bench
"""
