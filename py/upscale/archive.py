"""The "download all" zip: results that are already compressed (PNG, JPEG, WebP), stored.

Python's zipfile writes it (CRC-32 in C, ZIP64 where a batch passes 4 GiB); this module adds
what a batch of downloads needs: unique names, and a refusal before the archive would not fit
in the worker's memory.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence

from .errors import ZIP_TOO_LARGE, ImageTooLarge
from .imaging import megabytes

# While it is written, the archive and the files it is made of are both held (each file is read
# in only as it is written, and the archive is handed out as a view, not copied).
COPIES_WHILE_ZIPPING = 2

# One file: its name, its size in bytes, and what reads its bytes when they are written.
Entry = tuple[str, int, Callable[[], bytes]]


def unique_names(names: Iterable[str]) -> list[str]:
    """`names` with a repeat made unique: "photo@2x.png", "photo@2x (2).png", ..."""
    used: set[str] = set()
    unique = []
    for name in names:
        stem, dot, suffix = name.rpartition(".")
        if not dot or not stem:
            stem, suffix = name, ""
        candidate, number = name, 2
        while candidate in used:
            candidate = f"{stem} ({number}).{suffix}" if suffix else f"{stem} ({number})"
            number += 1
        used.add(candidate)
        unique.append(candidate)
    return unique


def zip_files(files: Sequence[Entry], memory_bytes: int,
              when: time.struct_time | None = None) -> memoryview:
    """One stored zip of `files`, names made unique, dated `when` (now by default), as a view of
    its bytes; ImageTooLarge, before any is read, if making it would hold more than
    `memory_bytes`."""
    total = sum(size for _, size, _ in files)
    if total * COPIES_WHILE_ZIPPING > memory_bytes:
        raise ImageTooLarge(ZIP_TOO_LARGE.format(count=len(files), total=megabytes(total),
                                                 need=megabytes(total * COPIES_WHILE_ZIPPING),
                                                 limit=megabytes(memory_bytes)))
    stamp = (when or time.localtime())[:6]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, (_, _, read) in zip(unique_names(n for n, _, _ in files), files, strict=True):
            info = zipfile.ZipInfo(name, date_time=max(stamp, (1980, 1, 1, 0, 0, 0)))
            info.external_attr = 0o644 << 16  # a plain file, readable by all, when unpacked
            archive.writestr(info, read())
    return buffer.getbuffer()
