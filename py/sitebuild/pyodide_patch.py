"""The pinned patch of Pyodide 0.27.7's pyodide.asm.js that lets a memory snapshot hold numpy.

Pyodide's own snapshot copies the heap only. A shared library (numpy's, Pillow's .so) keeps
its globals at a memory base and its functions at a table base chosen when it loads; the heap
points at both. So a restore must load every library at the base it had before the heap is
copied in (loading writes the library's initial data there, which the copy then replaces),
as Cloudflare's workerd does. Two hooks make that possible, both inert unless set:

- `Module.placeLibrary(libName, size, tableBase, getMemory)` chooses where a library's
  memory goes (web/pysnapshot.js records it on a fresh start, replays it on a restore, and
  checks the table base);
- `loadPyodide({ _beforeHeapRestore(Module) })` runs after Pyodide has checked a snapshot's
  build id and just before it copies the heap in: the libraries are loaded there.
"""

from __future__ import annotations

from dataclasses import dataclass

from .common import BuildError

PATCHED = "pyodide.asm.js"


@dataclass(frozen=True)
class Replacement:
    name: str
    old: str
    new: str


REPLACEMENTS = (
    Replacement(
        "library placement",
        "alignMemory(getMemory(metadata.memorySize+memAlign),memAlign)",
        "alignMemory(Module.placeLibrary?Module.placeLibrary(libName,metadata.memorySize"
        "+memAlign,wasmTable.length,getMemory):getMemory(metadata.memorySize+memAlign),"
        "memAlign)"),
    Replacement(
        "hook before the heap copy",
        "l=JSON.parse(s);return Module.HEAP8.set(t),l}",
        "l=JSON.parse(s);API.config._beforeHeapRestore&&API.config._beforeHeapRestore(Module);"
        "return Module.HEAP8.set(t),l}"),
)

NOT_ONCE = ("{file}: the snapshot patch {name!r} must match exactly once and matches "
            "{count} times: is this the pinned Pyodide?")


def patched(text: str, file: str = PATCHED) -> str:
    """`text` (pyodide.asm.js) with every replacement applied; a BuildError naming the first
    that does not match exactly once (another Pyodide, or a patch already applied)."""
    for replacement in REPLACEMENTS:
        count = text.count(replacement.old)
        if count != 1:
            raise BuildError(NOT_ONCE.format(file=file, name=replacement.name, count=count))
        text = text.replace(replacement.old, replacement.new)
    return text
