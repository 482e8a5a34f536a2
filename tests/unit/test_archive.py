"""The "download all" zip, written by Python's zipfile."""

import io
import time
import zipfile

import pytest

from upscale.archive import unique_names, zip_files
from upscale.errors import ImageTooLarge

WHEN = time.struct_time((2026, 12, 2, 10, 30, 0, 2, 336, -1))


def entries(pairs):
    """(name, data) pairs as zip_files takes them: name, size, and a reader."""
    return [(name, len(data), lambda data=data: data) for name, data in pairs]


def test_files_go_in_stored_with_their_bytes_and_a_valid_crc():
    files = [("a@2x.png", b"\x89PNG" + bytes(range(256)) * 40), ("b@2x.webp", b"RIFF" * 9)]
    data = zip_files(entries(files), 1 << 30, WHEN)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        assert [(i.filename, i.compress_type, i.date_time) for i in archive.infolist()] == [
            ("a@2x.png", zipfile.ZIP_STORED, (2026, 12, 2, 10, 30, 0)),
            ("b@2x.webp", zipfile.ZIP_STORED, (2026, 12, 2, 10, 30, 0))]
        assert [archive.read(name) for name, _ in files] == [d for _, d in files]


def test_a_repeated_name_gets_a_number_and_unicode_names_survive():
    assert unique_names(["p.png", "p.png", "p.png", "q", "q", ".png", ".png"]) == [
        "p.png", "p (2).png", "p (3).png", "q", "q (2)", ".png", ".png (2)"]
    assert unique_names(["p (2).png", "p.png", "p.png"]) == ["p (2).png", "p.png", "p (3).png"]
    data = zip_files(entries([("café@2x.png", b"x"), ("café@2x.png", b"y")]), 1 << 20, WHEN)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == ["café@2x.png", "café@2x (2).png"]
        assert archive.read("café@2x (2).png") == b"y"


def test_a_batch_too_large_to_zip_here_is_refused_before_any_work():
    with pytest.raises(ImageTooLarge, match=r"these 2 files are 6 MB: zipping them at once "
                                            r"would hold about 12 MB, and this device allows "
                                            r"10 MB"):
        zip_files(entries([("a.png", bytes(3 << 20)), ("b.png", bytes(3 << 20))]), 10 << 20,
                  WHEN)
    assert zip_files(entries([("a.png", bytes(3 << 20))]), 10 << 20, WHEN)
